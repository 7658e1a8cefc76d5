//! The pipeline's behaviour on the tiny fixture models (`tests/fixtures`, diffusers layout):
//! seeds, batches, progress, cancellation, long prompts, steering, embeddings in and out,
//! and the typed errors of bad requests, bad model folders and bad single-file checkpoints.

mod common;

use std::path::Path;
use std::sync::{Arc, OnceLock};

use common::fixtures;
use zipp_core::image::{Image, ImageGenerator, ImageOutput, ImageRequest, InitImage};
use zipp_core::lm::Cancel;
use zipp_core::personalize::Steering;
use zipp_core::ErrorKind;
use zipp_diffusion::{LoadOptions, StableDiffusion};

fn sd() -> &'static StableDiffusion {
    static M: OnceLock<StableDiffusion> = OnceLock::new();
    M.get_or_init(|| StableDiffusion::load(fixtures().join("tiny-sd"), &LoadOptions::default()).unwrap())
}

fn req(prompt: &str) -> ImageRequest {
    ImageRequest { steps: Some(4), seed: 7, negative_prompt: Some("blurry".into()), ..ImageRequest::new(prompt) }
}

fn gen(r: &ImageRequest) -> ImageOutput {
    sd().generate(r, &Cancel::new(), &mut |_| {}).unwrap()
}

fn err(r: &ImageRequest) -> zipp_core::Error {
    sd().generate(r, &Cancel::new(), &mut |_| {}).unwrap_err()
}

/// Mean absolute difference of two images' bytes.
fn dist(a: &Image, b: &Image) -> f64 {
    a.rgb().iter().zip(b.rgb()).map(|(x, y)| (*x as f64 - *y as f64).abs()).sum::<f64>() / a.rgb().len() as f64
}

#[test]
fn a_seed_gives_the_same_image_and_another_seed_another() {
    let a = gen(&req("a photo of a red cat"));
    let b = gen(&req("a photo of a red cat"));
    assert_eq!(a.images, b.images);
    assert_eq!((a.width, a.height), (64, 64), "the default size is sample_size x 8");
    let c = gen(&ImageRequest { seed: 8, ..req("a photo of a red cat") });
    assert!(dist(&a.images[0], &c.images[0]) > 1.0);
}

#[test]
fn batch_images_equal_single_images_of_their_index() {
    let batch = gen(&ImageRequest { batch: 3, ..req("a red cat") });
    assert_eq!(batch.images.len(), 3);
    for k in 0..3u64 {
        let single = gen(&ImageRequest { first_index: k, ..req("a red cat") });
        assert!(dist(&batch.images[k as usize], &single.images[0]) < 0.5, "image {k}");
    }
    assert!(dist(&batch.images[0], &batch.images[1]) > 1.0);
}

#[test]
fn progress_reports_every_step_and_cancel_stops_within_one() {
    let mut seen = Vec::new();
    gen(&req("a cat"));
    sd().generate(&req("a cat"), &Cancel::new(), &mut |p| seen.push((p.step, p.total))).unwrap();
    assert_eq!(seen, vec![(1, 4), (2, 4), (3, 4), (4, 4)]);

    let cancel = Cancel::new();
    let mut calls = 0;
    let c2 = cancel.clone();
    let e = sd()
        .generate(&req("a cat"), &cancel, &mut |_| {
            calls += 1;
            c2.cancel();
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Cancelled, "{e}");
    assert_eq!(calls, 1, "no step may run after the cancel");
}

#[test]
fn long_prompts_are_chunked_and_reported_not_cut() {
    let long = vec!["a photo of a red cat"; 30].join(", ");
    let (cond, report) = sd().encode(&req(&long)).unwrap();
    assert!(report.prompt_tokens > 75, "{report:?}");
    assert_eq!(report.chunks, report.prompt_tokens.div_ceil(75));
    assert_eq!(cond.prompt.tokens, 77 * report.chunks);
    assert_eq!(cond.negative.tokens, cond.prompt.tokens, "the negative prompt gets as many windows");
    let out = gen(&req(&long));
    assert_eq!(out.report.chunks, report.chunks);
}

#[test]
fn embeddings_out_and_back_in_give_the_same_image() {
    let r = req("a photo of a red cat");
    let (cond, _) = sd().encode(&r).unwrap();
    let json = serde_json::to_string(&cond).unwrap();
    let back: zipp_core::image::Conditioning = serde_json::from_str(&json).unwrap();
    let via = gen(&ImageRequest { conditioning: Some(back), prompt: String::new(), ..r.clone() });
    assert_eq!(via.images, gen(&r).images);
    let mut other = cond.clone();
    other.model = "sd:base:someone-else".into();
    let e = err(&ImageRequest { conditioning: Some(other), ..r.clone() });
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let mut short = cond;
    short.prompt.data.pop();
    let e = err(&ImageRequest { conditioning: Some(short), ..r });
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}

fn steering(liked: &[&str], disliked: &[&str], beta: f32) -> Steering {
    Steering {
        liked: liked.iter().map(|s| s.to_string()).collect(),
        disliked: disliked.iter().map(|s| s.to_string()).collect(),
        liked_strength: beta,
        disliked_strength: beta,
    }
}

/// Pearson correlation of two equally long vectors.
fn corr(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().map(|&x| x as f64).sum::<f64>() / n, b.iter().map(|&x| x as f64).sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(&x, &y)| (x as f64 - ma) * (y as f64 - mb)).sum();
    let va: f64 = a.iter().map(|&x| (x as f64 - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|&y| (y as f64 - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

/// SPEC §7's guided prediction adds `w·β₊·ε(P)` and subtracts `w·β₋·ε(N)` (plus the shifts
/// of `c` and `u`). One Euler step of the Turbo model from σ_max to 0 returns exactly the x₀
/// prediction `x − σ·ε̂`, so steering must move the result *against* `ε(P)` (toward what
/// the liked text predicts as the clean image) and *along* `ε(N)` (away from the disliked
/// text's clean image). `ε(P)`, `ε(N)` come straight from the UNet here.
#[test]
fn steering_moves_the_prediction_toward_liked_and_away_from_disliked() {
    use candle_core::{Device, Tensor};
    let x: Vec<f32> = zipp_diffusion::noise::Noise::seeded(5, 0, 1, &Device::Cpu)
        .sample(&[4, 8, 8])
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let turbo = StableDiffusion::load(fixtures().join("tiny-turbo"), &LoadOptions::default()).unwrap();
    let base =
        ImageRequest { guidance: Some(5.0), steps: Some(1), latents: Some(x.clone()), ..req("a photo of a red cat") };
    let run = |r: &ImageRequest| -> Vec<f32> {
        let mut noise = zipp_diffusion::noise::Noise::seeded(1, 0, 1, &Device::Cpu);
        let d = turbo.denoise(r, &mut noise, &Cancel::new(), &mut |_| {}).unwrap();
        d.latents.flatten_all().unwrap().to_vec1().unwrap()
    };
    let eps_of = |text: &str| -> Vec<f32> {
        let (w, _) = turbo.windows(text, 1);
        let ctx = turbo.encode_windows(&w).unwrap();
        // Euler's model input at σ_max: the initial latents × σ, scaled by 1/√(σ²+1).
        let sigma = 14.614646911621094f64;
        let xt = (Tensor::from_vec(x.clone(), (1, 4, 8, 8), &Device::Cpu).unwrap()
            * (sigma / (sigma * sigma + 1.0).sqrt()))
        .unwrap();
        turbo.components().unet.forward(&xt, 999.0, &ctx, None).unwrap().flatten_all().unwrap().to_vec1().unwrap()
    };
    let plain = run(&base);
    let liked =
        run(&ImageRequest { steering: Some(steering(&["watercolor, soft pastel light"], &[], 0.85)), ..base.clone() });
    let disliked = run(&ImageRequest { steering: Some(steering(&[], &["neon, harsh shadows"], 0.85)), ..base.clone() });
    let d_liked: Vec<f32> = liked.iter().zip(&plain).map(|(a, b)| a - b).collect();
    let d_disliked: Vec<f32> = disliked.iter().zip(&plain).map(|(a, b)| a - b).collect();
    let eps_p = eps_of("watercolor, soft pastel light");
    let eps_n = eps_of("neon, harsh shadows");
    let (cl, cd) = (corr(&d_liked, &eps_p), corr(&d_disliked, &eps_n));
    eprintln!("corr(Δ liked, ε(P)) = {cl:.3}, corr(Δ disliked, ε(N)) = {cd:.3}");
    assert!(cl < -0.5, "liked steering must move against ε(P): {cl}");
    assert!(cd > 0.5, "disliked steering must move along ε(N): {cd}");
    // And β = 0 is the plain pipeline, bit for bit.
    let zero = run(&ImageRequest { steering: Some(steering(&["watercolor"], &["neon"], 0.0)), ..base });
    assert_eq!(zero, plain);
}

#[test]
fn attributes_beyond_one_window_are_dropped_by_a_seeded_shuffle_and_reported() {
    let many: Vec<String> = (0..40).map(|i| format!("a red cat photo {i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let r = ImageRequest { steering: Some(steering(&many, &[], 0.5)), ..req("a cat") };
    let (_, a) = sd().encode(&r).unwrap();
    let (_, b) = sd().encode(&r).unwrap();
    assert!(!a.liked_dropped.is_empty());
    assert_eq!(a.liked_dropped, b.liked_dropped, "the same seed drops the same attributes");
    let (_, c) = sd().encode(&ImageRequest { seed: 99, ..r.clone() }).unwrap();
    assert_ne!(a.liked_dropped, c.liked_dropped, "another seed shuffles differently");
}

#[test]
fn disliked_attributes_can_join_the_negative_prompt() {
    let s = steering(&[], &["neon"], 0.0);
    let a = gen(&ImageRequest { steering: Some(s.clone()), disliked_as_negative: true, ..req("a cat") });
    let b = gen(&ImageRequest { negative_prompt: Some("blurry, neon".into()), ..req("a cat") });
    assert_eq!(a.images, b.images);
}

#[test]
fn image_to_image_keeps_the_size_and_starts_from_the_image() {
    let src = gen(&req("a photo of a red cat")).images.remove(0);
    let light =
        gen(&ImageRequest { init_image: Some(InitImage { image: src.clone(), strength: 0.25 }), ..req("a cat") });
    let heavy =
        gen(&ImageRequest { init_image: Some(InitImage { image: src.clone(), strength: 1.0 }), ..req("a cat") });
    assert_eq!((light.width, light.height), (64, 64));
    assert!(dist(&light.images[0], &src) < dist(&heavy.images[0], &src));
}

#[test]
fn concurrent_generations_equal_sequential_ones() {
    let model = Arc::new(StableDiffusion::load(fixtures().join("tiny-sd"), &LoadOptions::default()).unwrap());
    let want = gen(&req("a photo of a red cat")).images;
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let m = model.clone();
            std::thread::spawn(move || {
                m.generate(&req("a photo of a red cat"), &Cancel::new(), &mut |_| {}).unwrap().images
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), want);
    }
}

#[test]
fn bad_requests_are_typed_errors() {
    let bad = [
        ImageRequest { width: Some(100), ..req("a cat") },
        ImageRequest { height: Some(0), ..req("a cat") },
        ImageRequest { width: Some(8192), ..req("a cat") },
        ImageRequest { steps: Some(0), ..req("a cat") },
        ImageRequest { guidance: Some(f32::NAN), ..req("a cat") },
        ImageRequest { batch: 0, ..req("a cat") },
        ImageRequest { scheduler: Some("pndm".into()), ..req("a cat") },
        ImageRequest { latents: Some(vec![0.0; 3]), ..req("a cat") },
        ImageRequest { steering: Some(steering(&["x"], &[], f32::INFINITY)), ..req("a cat") },
        req(""),
        req("a\0cat"),
        ImageRequest {
            init_image: Some(InitImage { image: Image::new(72, 64, vec![0; 72 * 64 * 3]).unwrap(), strength: 0.5 }),
            width: Some(64),
            ..req("a cat")
        },
        ImageRequest {
            init_image: Some(InitImage { image: Image::new(64, 64, vec![0; 64 * 64 * 3]).unwrap(), strength: 1.5 }),
            ..req("a cat")
        },
        ImageRequest {
            init_image: Some(InitImage { image: Image::new(64, 64, vec![0; 64 * 64 * 3]).unwrap(), strength: 0.1 }),
            ..req("a cat")
        },
    ];
    for r in &bad {
        let e = err(r);
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

fn load_err(path: &Path) -> zipp_core::Error {
    StableDiffusion::load(path, &LoadOptions::default()).err().expect("loading must fail")
}

#[test]
fn missing_corrupt_and_mismatched_model_files_are_typed_errors() {
    let e = load_err(Path::new("/nonexistent/model"));
    assert_eq!(e.kind(), ErrorKind::ModelNotFound, "{e}");
    let e = load_err(Path::new("nobody/no-such-model"));
    assert_eq!(e.kind(), ErrorKind::ModelNotFound, "{e}");
    assert!(e.to_string().contains("huggingface"), "{e}");
    let e = load_err(&fixtures().join("tiny-sd/unet"));
    assert_eq!(e.kind(), ErrorKind::ModelInvalid, "{e}");

    let tmp = std::env::temp_dir().join(format!("zipp-diffusion-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let case = |name: &str, damage: &dyn Fn(&Path)| -> zipp_core::Error {
        let d = tmp.join(name);
        copy_dir(&fixtures().join("tiny-sd"), &d);
        damage(&d);
        load_err(&d)
    };
    let e = case("no-unet", &|d| std::fs::remove_file(d.join("unet/diffusion_pytorch_model.safetensors")).unwrap());
    assert_eq!(e.kind(), ErrorKind::ModelInvalid, "{e}");
    assert!(e.to_string().contains("unet"), "{e}");
    let e = case("truncated", &|d| {
        let p = d.join("vae/diffusion_pytorch_model.safetensors");
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    });
    assert_eq!(e.kind(), ErrorKind::ModelInvalid, "{e}");
    let e = case("bad-json", &|d| std::fs::write(d.join("unet/config.json"), "{\"layers_per_block\": ").unwrap());
    assert_eq!(e.kind(), ErrorKind::ModelInvalid, "{e}");
    let e = case("mismatched", &|d| {
        std::fs::copy(
            fixtures().join("tiny-sdxl/unet/diffusion_pytorch_model.safetensors"),
            d.join("unet/diffusion_pytorch_model.safetensors"),
        )
        .unwrap();
    });
    assert_eq!(e.kind(), ErrorKind::ModelInvalid, "{e}");
    assert!(e.to_string().contains("shape") || e.to_string().contains("missing"), "{e}");
    let e = case("pickle-only", &|d| {
        std::fs::rename(d.join("vae/diffusion_pytorch_model.safetensors"), d.join("vae/diffusion_pytorch_model.bin"))
            .unwrap()
    });
    assert!(e.to_string().contains("safetensors"), "{e}");
    // An SDXL folder missing its second text encoder.
    let e = case("xl-half", &|d| {
        std::fs::copy(fixtures().join("tiny-sdxl/unet/config.json"), d.join("unet/config.json")).unwrap();
    });
    assert_eq!(e.kind(), ErrorKind::ModelInvalid, "{e}");
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Single-file checkpoints whose layout zipp cannot run, or whose weights do not fit the
/// configuration, say so.
#[test]
fn single_file_checkpoints_with_the_wrong_parts_are_typed_errors() {
    // The tiny SDXL file without its config folder: zipp's built-in SDXL-base configuration
    // does not fit the tiny weights, and the error names the tensor and both shapes.
    let e = load_err(&fixtures().join("tiny-sdxl.safetensors"));
    assert_eq!(e.kind(), ErrorKind::ModelInvalid, "{e}");
    assert!(e.to_string().contains("has shape") && e.to_string().contains("token_embedding"), "{e}");

    let tmp = std::env::temp_dir().join(format!("zipp-diffusion-single-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let file = |name: &str, tensors: &[&str]| -> zipp_core::Error {
        let t = candle_core::Tensor::zeros(4, candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
        let map: std::collections::HashMap<String, candle_core::Tensor> =
            tensors.iter().map(|n| (n.to_string(), t.clone())).collect();
        let p = tmp.join(format!("{name}.safetensors"));
        candle_core::safetensors::save(&map, &p).unwrap();
        load_err(&p)
    };
    let unet = "model.diffusion_model.out.2.bias";
    let e = file("refiner", &[unet, "conditioner.embedders.0.model.positional_embedding"]);
    assert_eq!(e.kind(), ErrorKind::ModelInvalid, "{e}");
    assert!(e.to_string().contains("refiner"), "{e}");
    let e = file("half-xl", &[unet, "conditioner.embedders.0.transformer.text_model.final_layer_norm.bias"]);
    assert!(e.to_string().contains("pair of text encoders"), "{e}");
    let e = file("no-text", &[unet]);
    assert!(e.to_string().contains("no text encoder"), "{e}");
    let e = file("no-unet", &["first_stage_model.decoder.conv_out.bias"]);
    assert!(e.to_string().contains("not a Stable Diffusion checkpoint"), "{e}");
    let _ = std::fs::remove_dir_all(&tmp);
}

/// With real weights: `ZIPP_SD_MODEL=/path/to/sd-turbo` (a diffusers folder, a Hugging Face
/// cache entry, or a single .safetensors checkpoint) runs one real generation; the test is
/// skipped (and says so) without it. `ZIPP_SD_OUT=out.ppm` keeps the image;
/// `ZIPP_SD_TURBO=1` says a single-file checkpoint is a Turbo (its weights cannot tell).
#[test]
fn real_weights_when_given() {
    let Some(path) = std::env::var_os("ZIPP_SD_MODEL") else {
        eprintln!("skipped: set ZIPP_SD_MODEL to a Stable Diffusion model to run this test");
        return;
    };
    let turbo = std::env::var("ZIPP_SD_TURBO").is_ok_and(|v| v == "1").then_some(true);
    let m = StableDiffusion::load(Path::new(&path), &LoadOptions { turbo, ..LoadOptions::default() }).unwrap();
    let steps = if m.is_turbo() { 1 } else { 20 };
    let out = m
        .generate(
            &ImageRequest { steps: Some(steps), seed: 1, ..ImageRequest::new("a photo of a red cat on a sofa") },
            &Cancel::new(),
            &mut |p| eprintln!("step {}/{} at {:.1}s", p.step, p.total, p.elapsed_s),
        )
        .unwrap();
    let img = &out.images[0];
    let mean = img.rgb().iter().map(|&b| b as f64).sum::<f64>() / img.rgb().len() as f64;
    let var = img.rgb().iter().map(|&b| (b as f64 - mean).powi(2)).sum::<f64>() / img.rgb().len() as f64;
    eprintln!(
        "{}x{} in {:.1}s text + {:.1}s denoise + {:.1}s decode; pixel mean {mean:.1} sd {:.1}",
        out.width,
        out.height,
        out.text_s,
        out.denoise_s,
        out.decode_s,
        var.sqrt()
    );
    assert!(var.sqrt() > 10.0, "a real image has contrast (a black or flat image means a broken model path)");
    if let Some(p) = std::env::var_os("ZIPP_SD_OUT") {
        let mut ppm = format!("P6\n{} {}\n255\n", img.width(), img.height()).into_bytes();
        ppm.extend_from_slice(img.rgb());
        std::fs::write(p, ppm).unwrap();
    }
}

/// f16 (the GPU setting) keeps an SDXL VAE in f32 (`force_upcast`: diffusers' rule; f16
/// SDXL VAEs overflow into black images) and still generates; on the CPU it runs slowly.
#[test]
fn f16_models_keep_an_upcast_vae_in_f32() {
    use candle_core::DType;
    let opts = LoadOptions { dtype: DType::F16, ..LoadOptions::default() };
    let xl = StableDiffusion::load(fixtures().join("tiny-sdxl"), &opts).unwrap();
    assert_eq!((xl.components().dtype, xl.components().vae_dtype), (DType::F16, DType::F32));
    let out =
        xl.generate(&ImageRequest { steps: Some(2), ..ImageRequest::new("a red cat") }, &Cancel::new(), &mut |_| {});
    let out = out.unwrap();
    let f32_model = StableDiffusion::load(fixtures().join("tiny-sdxl"), &LoadOptions::default()).unwrap();
    let want = f32_model
        .generate(&ImageRequest { steps: Some(2), ..ImageRequest::new("a red cat") }, &Cancel::new(), &mut |_| {})
        .unwrap();
    assert!(dist(&out.images[0], &want.images[0]) < 2.0, "f16 and f32 images agree to rounding");
}
