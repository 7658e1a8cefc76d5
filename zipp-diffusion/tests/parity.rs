//! zipp-diffusion against diffusers on identical random weights: text encoder, UNet, VAE,
//! and whole pipelines (text-to-image, image-to-image, ViPer steering), from the diffusers
//! layout and from single-file checkpoints (SD 1.x, 2.x, XL).
//!
//! References: `tests/fixtures/reference.{json,safetensors}`, written by
//! `/tmp/diffref/v/bin/python benches/reference/diffusion_reference.py --out
//! zipp-diffusion/tests/fixtures` (diffusers 0.42.1, transformers 5.24.0, torch 2.15.0 CPU,
//! float32). Tolerances are the ones the fixture README derives from diffusers' own
//! run-to-run and thread-count variation.

mod common;

use std::sync::OnceLock;

use candle_core::{Device, Tensor};
use common::*;
use zipp_core::image::{Image, ImageGenerator, ImageRequest, InitImage};
use zipp_core::lm::Cancel;
use zipp_core::personalize::Steering;
use zipp_diffusion::noise::Noise;
use zipp_diffusion::{LoadOptions, StableDiffusion};

fn load(name: &str) -> StableDiffusion {
    StableDiffusion::load(fixtures().join(name), &LoadOptions::default()).unwrap()
}

fn sd() -> &'static StableDiffusion {
    static M: OnceLock<StableDiffusion> = OnceLock::new();
    M.get_or_init(|| load("tiny-sd"))
}

fn sd2() -> &'static StableDiffusion {
    static M: OnceLock<StableDiffusion> = OnceLock::new();
    M.get_or_init(|| load("tiny-sd2"))
}

fn turbo() -> &'static StableDiffusion {
    static M: OnceLock<StableDiffusion> = OnceLock::new();
    M.get_or_init(|| load("tiny-turbo"))
}

fn sdxl() -> &'static StableDiffusion {
    static M: OnceLock<StableDiffusion> = OnceLock::new();
    M.get_or_init(|| load("tiny-sdxl"))
}

/// `tiny-<name>.safetensors` (the original single-file layout), with the folder's configs.
fn load_single(name: &str) -> StableDiffusion {
    let opts = LoadOptions { config_dir: Some(fixtures().join(name)), ..Default::default() };
    StableDiffusion::load(fixtures().join(format!("{name}.safetensors")), &opts).unwrap()
}

fn single_file() -> &'static StableDiffusion {
    static M: OnceLock<StableDiffusion> = OnceLock::new();
    M.get_or_init(|| load_single("tiny-sd"))
}

/// SD 2.x's single file: OpenCLIP names under `cond_stage_model.model.`.
fn sd2_single() -> &'static StableDiffusion {
    static M: OnceLock<StableDiffusion> = OnceLock::new();
    M.get_or_init(|| load_single("tiny-sd2"))
}

/// SDXL's single file: CLIP-L under `conditioner.embedders.0.transformer.`, OpenCLIP bigG
/// under `conditioner.embedders.1.model.`.
fn sdxl_single() -> &'static StableDiffusion {
    static M: OnceLock<StableDiffusion> = OnceLock::new();
    M.get_or_init(|| load_single("tiny-sdxl"))
}

const KEYS: [&str; 4] = ["prompt", "negative", "liked", "disliked"];

fn text_of(key: &str) -> String {
    meta()["prompts"][key].as_str().unwrap().to_string()
}

#[test]
fn tokenizer_ids_match_transformers() {
    for (m, model) in [(sd(), "sd"), (sd2(), "sd2")] {
        for key in KEYS {
            let (w, _) = m.windows(&text_of(key), 1);
            assert_eq!(w, vec![ids(model, key)], "{model} {key}");
        }
        let (w, n) = m.windows(&text_of("long"), 1);
        let want: Vec<Vec<u32>> = meta()[model]["long_chunk_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect())
            .collect();
        assert_eq!(w, want, "{model} long prompt windows");
        assert_eq!(n, meta()[model]["long_body_ids"].as_array().unwrap().len());
    }
}

#[test]
fn text_encoder_matches_transformers() {
    for (m, p) in [(sd(), "sd"), (sd2(), "sd2"), (single_file(), "sd"), (sd2_single(), "sd2")] {
        for key in KEYS {
            let got = m.encode_windows(&[ids(p, key)]).unwrap();
            assert_close(&format!("{p} text {key}"), &got, &r(&format!("{p}.text.{key}.last_hidden_state")), 1e-4);
            let ids_t = Tensor::new(vec![ids(p, key)], &Device::Cpu).unwrap();
            let pooled = m.components().encoders[0].model.forward(&ids_t).unwrap().pooled;
            assert_close(&format!("{p} pooled {key}"), &pooled, &r(&format!("{p}.text.{key}.pooler_output")), 1e-4);
        }
        let (w, _) = m.windows(&text_of("long"), 1);
        let got = m.encode_windows(&w).unwrap();
        assert_close(&format!("{p} long chunked"), &got, &r(&format!("{p}.text.long_chunked.last_hidden_state")), 1e-4);
    }
}

#[test]
fn unet_matches_diffusers() {
    for (m, p) in [(sd(), "sd"), (sd2(), "sd2"), (single_file(), "sd"), (sd2_single(), "sd2")] {
        let ctx = Tensor::cat(
            &[r(&format!("{p}.text.negative.last_hidden_state")), r(&format!("{p}.text.prompt.last_hidden_state"))],
            0,
        )
        .unwrap();
        let x = r(&format!("{p}.unet.sample"));
        for t in [999, 500, 1] {
            let got =
                zipp_core::runtime::compute(&Device::Cpu, || m.components().unet.forward(&x, t as f64, &ctx, None))
                    .unwrap();
            assert_close(&format!("{p} unet t={t}"), &got, &r(&format!("{p}.unet.out_t{t}")), 1e-5);
        }
    }
}

#[test]
fn vae_matches_diffusers() {
    for (m, p) in [(sd(), "sd"), (single_file(), "sd")] {
        let got = m.decode(&r(&format!("{p}.vae.latents"))).unwrap();
        // `decode` undoes the scaling factor itself, as the pipeline does.
        assert_close(&format!("{p} vae decode"), &got, &r(&format!("{p}.vae.decoded")), 2e-4);
        let (mean, std) = m.components().vae.encode(&r(&format!("{p}.vae.image"))).unwrap();
        assert_close(&format!("{p} vae mean"), &mean, &r(&format!("{p}.vae.encoded_mean")), 2e-4);
        assert_close(&format!("{p} vae std"), &std, &r(&format!("{p}.vae.encoded_std")), 2e-4);
    }
}

fn latents0() -> Vec<f32> {
    r("pipe.latents0").flatten_all().unwrap().to_vec1().unwrap()
}

fn request(steps: u32, guidance: f32) -> ImageRequest {
    ImageRequest {
        negative_prompt: Some(text_of("negative")),
        width: Some(64),
        height: Some(64),
        steps: Some(steps),
        guidance: Some(guidance),
        latents: Some(latents0()),
        ..ImageRequest::new(text_of("prompt"))
    }
}

/// The image as the reference's `[1, H, W, 3]` floats in [0, 1] → bytes the way diffusers'
/// `numpy_to_pil` makes them.
fn reference_bytes(name: &str) -> Vec<u8> {
    let v: Vec<f32> = r(name).flatten_all().unwrap().to_vec1().unwrap();
    v.iter().map(|x| (x * 255.0).round() as u8).collect()
}

fn assert_image(what: &str, got: &Image, want: &[u8]) {
    let worst = got.rgb().iter().zip(want).map(|(a, b)| (*a as i32 - *b as i32).abs()).max().unwrap();
    eprintln!("{what}: worst byte difference {worst}");
    assert!(worst <= 1, "{what}: a byte differs by {worst}");
}

fn run(m: &StableDiffusion, req: &ImageRequest, noise: Vec<Tensor>) -> (Tensor, Image) {
    let mut noise = Noise::replay(noise, &Device::Cpu);
    let d = m.denoise(req, &mut noise, &Cancel::new(), &mut |_| {}).unwrap();
    let img = m.decode(&d.latents).unwrap();
    let img = (img / 2.0).unwrap() + 0.5;
    let img = img.unwrap().clamp(0f32, 1f32).unwrap().permute((0, 2, 3, 1)).unwrap();
    let bytes: Vec<u8> =
        img.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|x| (x * 255.0).round() as u8).collect();
    (d.latents, Image::new(64, 64, bytes).unwrap())
}

#[test]
fn text_to_image_ddim_matches_diffusers() {
    for (m, name, req) in [
        (sd(), "sd_ddim", request(3, 7.5)),
        (sd2(), "sd2_ddim", request(3, 7.5)),
        (single_file(), "sd_ddim", request(3, 7.5)),
    ] {
        let (lat, img) = run(m, &req, vec![]);
        assert_close(&format!("{name} latents"), &lat, &r(&format!("pipe.{name}.latents")), 1e-4);
        assert_image(name, &img, &reference_bytes(&format!("pipe.{name}.image")));
        // The public path gives the same image.
        let out = m.generate(&req, &Cancel::new(), &mut |_| {}).unwrap();
        assert_eq!(out.images[0], img);
    }
}

#[test]
fn text_to_image_unipc_matches_diffusers() {
    let req = ImageRequest { scheduler: Some("unipc".into()), ..request(3, 7.5) };
    let (lat, img) = run(sd(), &req, vec![]);
    assert_close("sd_unipc latents", &lat, &r("pipe.sd_unipc.latents"), 1e-4);
    assert_image("sd_unipc", &img, &reference_bytes("pipe.sd_unipc.image"));
}

#[test]
fn turbo_euler_ancestral_matches_diffusers() {
    assert!(turbo().is_turbo());
    for n in [1u32, 4] {
        // Turbo defaults: no guidance, the model's Euler-a; the recorded step noise replayed.
        let req = ImageRequest {
            latents: Some(latents0()),
            width: Some(64),
            height: Some(64),
            steps: Some(n),
            ..ImageRequest::new(text_of("prompt"))
        };
        let noise: Vec<Tensor> = (0..n).map(|i| r(&format!("pipe.turbo{n}.noise{i}"))).collect();
        let (lat, img) = run(turbo(), &req, noise);
        assert_close(&format!("turbo{n} latents"), &lat, &r(&format!("pipe.turbo{n}.latents")), 1e-4);
        assert_image(&format!("turbo{n}"), &img, &reference_bytes(&format!("pipe.turbo{n}.image")));
    }
    // The defaults are Turbo's: one step, no guidance.
    let out = turbo()
        .generate(
            &ImageRequest { width: Some(64), height: Some(64), ..ImageRequest::new("a cat") },
            &Cancel::new(),
            &mut |_| {},
        )
        .unwrap();
    assert_eq!((out.steps, out.guidance, out.scheduler.as_str()), (1, 0.0, "euler_a"));
}

#[test]
fn image_to_image_matches_diffusers() {
    let init: Vec<f32> =
        r("img2img.init_image").permute((0, 2, 3, 1)).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let bytes: Vec<u8> = init.iter().map(|x| (x * 255.0).round() as u8).collect();
    let image = Image::new(64, 64, bytes).unwrap();
    let req = ImageRequest { init_image: Some(InitImage { image, strength: 0.6 }), latents: None, ..request(5, 7.5) };
    let (lat, img) = run(sd(), &req, vec![r("img2img.draw0"), r("img2img.draw1")]);
    assert_close("img2img latents", &lat, &r("img2img.latents"), 1e-4);
    assert_image("img2img", &img, &reference_bytes("img2img.image"));
}

fn viper_request(beta: f32) -> ImageRequest {
    ImageRequest {
        steering: Some(Steering {
            // One attribute each, so the seeded shuffle cannot reorder the reference's text.
            liked: vec![text_of("liked")],
            disliked: vec![text_of("disliked")],
            liked_strength: beta,
            disliked_strength: beta,
        }),
        ..request(2, 5.0)
    }
}

#[test]
fn viper_steering_matches_the_formula_run_in_diffusers() {
    let (lat, _) = run(sd(), &viper_request(0.85), vec![]);
    assert_close("viper latents", &lat, &r("viper.latents"), 1e-4);
    let (plain, _) = run(sd(), &viper_request(0.0), vec![]);
    assert_close("viper beta=0", &plain, &r("viper.latents_beta0"), 1e-4);
    let (cfg, _) = run(sd(), &request(2, 5.0), vec![]);
    // β = 0 is the plain pipeline, bit for bit.
    assert_eq!(max_diff(&plain, &cfg), 0.0);
    assert!(max_diff(&lat, &plain) > 1e-2, "steering must change the result");
}

/// Each single file and its diffusers folder give bit-identical text states, pooled outputs,
/// UNet outputs and VAE decodes (both store the same float16 values; the mapping must put
/// every one in its place, OpenCLIP's fused q/k/v rows and transposed projection included).
#[test]
fn single_files_load_the_same_weights() {
    for (folder, single, p) in
        [(sd(), single_file(), "sd"), (sd2(), sd2_single(), "sd2"), (sdxl(), sdxl_single(), "sdxl")]
    {
        let (a, b) = (folder.components(), single.components());
        assert_eq!(a.encoders.len(), b.encoders.len(), "{p}");
        let ids_t = Tensor::new(vec![ids(if p == "sdxl" { "sd" } else { p }, "prompt")], &Device::Cpu).unwrap();
        for (i, (ea, eb)) in a.encoders.iter().zip(&b.encoders).enumerate() {
            let (oa, ob) = (ea.model.forward(&ids_t).unwrap(), eb.model.forward(&ids_t).unwrap());
            assert_eq!(max_diff(&oa.last_hidden, &ob.last_hidden), 0.0, "{p} encoder {i}");
            assert_eq!(max_diff(&oa.pooled, &ob.pooled), 0.0, "{p} encoder {i} pooled");
        }
        assert_eq!(a.turbo, b.turbo, "{p}");
        assert_eq!(a.zeros_for_empty_negative, b.zeros_for_empty_negative, "{p}");
        let x = r(&format!("{p}.unet.sample"));
        let w = a.unet_config.cross_attention_dim;
        let ctx = Tensor::randn(0f32, 1.0, (x.dim(0).unwrap(), 77, w), &Device::Cpu).unwrap();
        let added = (p == "sdxl").then(|| (r("sdxl.pooled"), r("sdxl.time_ids")));
        let added = added.as_ref().map(|(e, t)| (e, t));
        let ua = a.unet.forward(&x, 500.0, &ctx, added).unwrap();
        let ub = b.unet.forward(&x, 500.0, &ctx, added).unwrap();
        assert_eq!(max_diff(&ua, &ub), 0.0, "{p} unet");
        let lat = r(&format!("{p}.vae.latents"));
        assert_eq!(max_diff(&folder.decode(&lat).unwrap(), &single.decode(&lat).unwrap()), 0.0, "{p} vae");
    }
}

#[test]
fn sdxl_text_encoders_and_unet_match_diffusers() {
    for m in [sdxl(), sdxl_single()] {
        sdxl_matches_diffusers(m);
    }
}

fn sdxl_matches_diffusers(m: &StableDiffusion) {
    assert!(m.is_xl());
    for key in ["prompt", "negative"] {
        let (states, pooled, _, windows) = m.encode_text(&text_of(key), 1).unwrap();
        assert_eq!(windows, 1);
        let te1 = r(&format!("sdxl.te1.text.{key}.penultimate"));
        let te2 = r(&format!("sdxl.te2.text.{key}.penultimate"));
        assert_close(&format!("sdxl states {key}"), &states, &Tensor::cat(&[te1, te2], 2).unwrap(), 1e-4);
        assert_close(
            &format!("sdxl pooled {key}"),
            &pooled.unwrap(),
            &r(&format!("sdxl.te2.text.{key}.text_embeds")),
            1e-4,
        );
    }
    // The long prompt in two 77-token windows. The fixture keeps te1's chunked last hidden
    // state, not the penultimate one SDXL uses, so only the second encoder's part is compared.
    let (states, _, _, windows) = m.encode_text(&text_of("long"), 1).unwrap();
    assert_eq!(windows, 2);
    let width1 = m.components().encoders[0].model.config.hidden_size;
    let got2 = states.narrow(2, width1, states.dim(2).unwrap() - width1).unwrap();
    assert_close("sdxl long chunked te2", &got2, &r("sdxl.te2.text.long_chunked.penultimate"), 1e-4);
    let ctx = r("sdxl.prompt_embeds");
    let (text_embeds, time_ids) = (r("sdxl.pooled"), r("sdxl.time_ids"));
    let x = r("sdxl.unet.sample");
    for t in [999, 500, 1] {
        let got = m.components().unet.forward(&x, t as f64, &ctx, Some((&text_embeds, &time_ids))).unwrap();
        assert_close(&format!("sdxl unet t={t}"), &got, &r(&format!("sdxl.unet.out_t{t}")), 1e-5);
    }
    let got = m.decode(&r("sdxl.vae.latents")).unwrap();
    assert_close("sdxl vae decode", &got, &r("sdxl.vae.decoded"), 2e-4);
}

#[test]
fn sdxl_pipeline_matches_diffusers() {
    let req = ImageRequest {
        negative_prompt: Some(text_of("negative")),
        width: Some(64),
        height: Some(64),
        steps: Some(2),
        guidance: Some(5.0),
        latents: Some(r("sdxl.pipe.latents0").flatten_all().unwrap().to_vec1().unwrap()),
        ..ImageRequest::new(text_of("prompt"))
    };
    for m in [sdxl(), sdxl_single()] {
        let (lat, img) = run(m, &req, vec![]);
        assert_close("sdxl pipeline latents", &lat, &r("sdxl.pipe.latents"), 1e-4);
        assert_image("sdxl pipeline", &img, &reference_bytes("sdxl.pipe.image"));
    }
    let out = sdxl().generate(&req, &Cancel::new(), &mut |_| {}).unwrap();
    assert_eq!(out.scheduler, "euler", "the model's own scheduler");
    // No negative prompt: SDXL conditions on zeros (force_zeros_for_empty_prompt).
    let (cond, _) = sdxl().encode(&ImageRequest { negative_prompt: None, ..req }).unwrap();
    assert!(cond.negative.data.iter().all(|&x| x == 0.0));
    assert!(cond.negative.pooled.unwrap().iter().all(|&x| x == 0.0));
}
