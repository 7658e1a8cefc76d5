//! zipp's CLIP against transformers 5.24: `CLIPImageProcessorPil` preprocessing on real
//! photos (at the tiny test model's 32 px and at the real 224 px), and a tiny random
//! `CLIPModel`'s `get_image_features` / `get_text_features`. Fixtures written by
//! `benches/reference/clip_reference.py` (see its docstring): `tests/fixtures/tiny-clip/`,
//! `clip_images.safetensors` (the input images' bytes), `clip_reference.{json,safetensors}`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::{DType, Device, Tensor};
use zipp_core::image::Image;
use zipp_core::Error;
use zipp_diffusion::clip_model::ClipModel;
use zipp_diffusion::preprocess::{resize_bicubic, ClipPreprocess};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn load(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixtures().join(name), &Device::Cpu).unwrap()
}

fn inputs() -> &'static HashMap<String, Tensor> {
    static I: OnceLock<HashMap<String, Tensor>> = OnceLock::new();
    I.get_or_init(|| load("clip_images.safetensors"))
}

fn reference() -> &'static HashMap<String, Tensor> {
    static R: OnceLock<HashMap<String, Tensor>> = OnceLock::new();
    R.get_or_init(|| load("clip_reference.safetensors"))
}

fn meta() -> &'static serde_json::Value {
    static M: OnceLock<serde_json::Value> = OnceLock::new();
    M.get_or_init(|| {
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("clip_reference.json")).unwrap()).unwrap()
    })
}

fn r(name: &str) -> Tensor {
    reference().get(name).unwrap_or_else(|| panic!("no reference array {name}")).clone()
}

fn model() -> &'static ClipModel {
    static M: OnceLock<ClipModel> = OnceLock::new();
    M.get_or_init(|| ClipModel::load(fixtures().join("tiny-clip")).unwrap())
}

fn image_names() -> Vec<String> {
    meta()["image_order"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

/// An input image as transformers got it: RGB bytes, or a grayscale one replicated to RGB
/// (`do_convert_rgb` on a mode-L PIL image).
fn image(name: &str) -> Image {
    let t = &inputs()[name];
    let bytes: Vec<u8> = t.flatten_all().unwrap().to_vec1().unwrap();
    match *t.dims() {
        [h, w, 3] => Image::new(w as u32, h as u32, bytes).unwrap(),
        [h, w] => Image::new(w as u32, h as u32, bytes.iter().flat_map(|&v| [v, v, v]).collect()).unwrap(),
        ref d => panic!("image {name}: shape {d:?}"),
    }
}

fn u8_chw(name: &str) -> (Vec<u8>, usize, usize) {
    let t = r(name);
    let (c, h, w) = t.dims3().unwrap();
    assert_eq!(c, 3);
    (t.flatten_all().unwrap().to_vec1().unwrap(), h, w)
}

fn f32s(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Compares an 8-bit RGB image with a `[3, h, w]` reference: (values differing, max levels).
fn compare_u8(what: &str, got: &Image, reference: &str) -> (usize, u8) {
    let (want, h, w) = u8_chw(reference);
    assert_eq!((got.width() as usize, got.height() as usize), (w, h), "{what}: size");
    let mut differing = 0;
    let mut max = 0u8;
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let a = got.rgb()[(y * w + x) * 3 + c];
                let b = want[(c * h + y) * w + x];
                if a != b {
                    differing += 1;
                    max = max.max(a.abs_diff(b));
                }
            }
        }
    }
    eprintln!("{what}: {differing} of {} bytes differ (max {max} levels)", 3 * h * w);
    (differing, max)
}

#[test]
fn the_tiny_model_has_the_processor_settings_of_its_folder() {
    let text = std::fs::read_to_string(fixtures().join("tiny-clip/preprocessor_config.json")).unwrap();
    let p = ClipPreprocess::from_config(&serde_json::from_str(&text).unwrap()).unwrap();
    assert_eq!(p, ClipPreprocess::openai(32));
    assert_eq!(model().preprocess(), &p);
}

#[test]
fn rescale_and_normalise_match_transformers_bit_for_bit() {
    let lut = r("normalize.lut");
    let want: Vec<f32> = f32s(&lut);
    let table = ClipPreprocess::openai(224).value_table();
    let got: Vec<f32> = table.iter().flatten().copied().collect();
    let d = max_diff(&got, &want);
    eprintln!("rescale + normalise table: max |diff| {d:e}");
    assert_eq!(d, 0.0);
}

#[test]
fn preprocessing_matches_clip_image_processor_at_the_test_size() {
    let p = ClipPreprocess::openai(32);
    let mut worst = 0f32;
    for name in image_names() {
        let img = image(&name);
        let geo = &meta()["images"][&name]["tiny"];
        let resized = p.resized_size(img.width(), img.height()).unwrap();
        assert_eq!(
            [resized.0 as u64, resized.1 as u64],
            [geo["resized"][0].as_u64().unwrap(), geo["resized"][1].as_u64().unwrap()]
        );
        let (differing, _) =
            compare_u8(&format!("tiny {name} uint8"), &p.resize_crop(&img).unwrap(), &format!("tiny.{name}.uint8"));
        assert_eq!(differing, 0, "{name}: PIL's bicubic + transformers' crop must match exactly");
        let (values, shape) = p.pixel_values(std::slice::from_ref(&img)).unwrap();
        assert_eq!(shape, [1, 3, 32, 32]);
        let d = max_diff(&values, &f32s(&r(&format!("tiny.{name}.pixel_values"))));
        eprintln!("tiny {name} pixel_values: max |diff| {d:e}");
        worst = worst.max(d);
    }
    assert!(worst <= 1e-5, "max |diff| {worst}");
    // All at once (one batch of different sizes and aspect ratios) gives the same values.
    let images: Vec<Image> = image_names().iter().map(|n| image(n)).collect();
    let batch = p.tensor(&images, &Device::Cpu).unwrap();
    assert_eq!(batch.dims(), &[images.len(), 3, 32, 32]);
    let want: Vec<f32> = image_names().iter().flat_map(|n| f32s(&r(&format!("tiny.{n}.pixel_values")))).collect();
    assert_eq!(max_diff(&f32s(&batch), &want), 0.0);
}

#[test]
fn preprocessing_matches_clip_image_processor_at_224() {
    let p = ClipPreprocess::openai(224);
    let lut = f32s(&r("normalize.lut"));
    for name in ["astronaut", "coffee", "chelsea"] {
        let img = image(name);
        let (differing, _) =
            compare_u8(&format!("224 {name} uint8"), &p.resize_crop(&img).unwrap(), &format!("real.{name}.uint8"));
        assert_eq!(differing, 0, "{name}");
        // transformers' float32 pixel_values are lut[c][byte] (checked by the script: 0.0).
        let (values, shape) = p.pixel_values(std::slice::from_ref(&img)).unwrap();
        assert_eq!(shape, [1, 3, 224, 224]);
        let (want_u8, h, w) = u8_chw(&format!("real.{name}.uint8"));
        let want: Vec<f32> = want_u8.iter().enumerate().map(|(i, &v)| lut[(i / (h * w)) * 256 + v as usize]).collect();
        let d = max_diff(&values, &want);
        let row: Vec<f32> = (0..3).flat_map(|c| values[c * h * w + 100 * w..c * h * w + 101 * w].to_vec()).collect();
        let d_row = max_diff(&row, &f32s(&r(&format!("real.{name}.pixel_values_row100"))));
        eprintln!("224 {name} pixel_values: max |diff| {d:e} (row 100 against the processor's own floats: {d_row:e})");
        assert!(d <= 1e-5 && d_row <= 1e-5);
    }
}

#[test]
fn a_crop_larger_than_the_image_pads_with_zeros_like_transformers() {
    let p = ClipPreprocess { resize: None, crop: Some((16, 24)), rescale: None, normalize: None };
    let (differing, _) = compare_u8("padded crop", &p.resize_crop(&image("synthetic")).unwrap(), "pad.synthetic.uint8");
    assert_eq!(differing, 0);
}

#[test]
fn full_resize_agrees_with_the_cropped_window() {
    // resize_crop computes only the crop's pixels; the whole PIL resize, then the crop, is
    // the same image.
    let img = image("chelsea");
    let p = ClipPreprocess::openai(224);
    let (rw, rh) = p.resized_size(img.width(), img.height()).unwrap();
    let full = resize_bicubic(&img, rw, rh).unwrap();
    let (top, left) = ((rh as usize - 224) / 2, (rw as usize - 224) / 2);
    let crop: Vec<u8> = (0..224)
        .flat_map(|y| {
            full.rgb()[((y + top) * rw as usize + left) * 3..((y + top) * rw as usize + left + 224) * 3].to_vec()
        })
        .collect();
    assert_eq!(p.resize_crop(&img).unwrap().rgb(), &crop[..]);
}

#[test]
fn extreme_aspect_ratios_cost_only_the_crop() {
    // 1 x 20000: the resized image would be 224 x 4 480 000 (3 GB); only the crop is made.
    let rgb: Vec<u8> = (0..20000u32).flat_map(|i| [(i % 256) as u8, 7, 250]).collect();
    let img = Image::new(1, 20000, rgb).unwrap();
    let p = ClipPreprocess::openai(224);
    assert_eq!(p.resized_size(1, 20000).unwrap(), (224, 4_480_000));
    let out = p.resize_crop(&img).unwrap();
    assert_eq!((out.width(), out.height()), (224, 224));
    assert!(out.rgb().chunks_exact(3).all(|px| px[1] == 7 && px[2] == 250));
}

#[test]
fn image_embeddings_match_get_image_features() {
    let images: Vec<Image> = image_names().iter().map(|n| image(n)).collect();
    let want = r("image_embeds");
    assert_eq!(want.dims(), &[images.len(), 16]);
    let got = model().image_embeddings(&images).unwrap();
    assert_eq!(got.len(), images.len());
    assert!(got.iter().all(|e| e.len() == model().projection_dim()));
    let flat: Vec<f32> = got.concat();
    let d = max_diff(&flat, &f32s(&want));
    eprintln!(
        "image embeddings: max |diff| {d:e} (max |ref| {:.3})",
        f32s(&want).iter().fold(0f32, |m, x| m.max(x.abs()))
    );
    assert!(d <= 1e-4, "{d}");
    // From transformers' own pixel values: the model alone.
    let pixels =
        Tensor::stack(&image_names().iter().map(|n| r(&format!("tiny.{n}.pixel_values"))).collect::<Vec<_>>(), 0)
            .unwrap();
    let d2 = max_diff(&model().embed_pixels(&pixels).unwrap().concat(), &f32s(&want));
    eprintln!("image embeddings from the reference pixels: max |diff| {d2:e}");
    assert!(d2 <= 1e-4);
    // One at a time gives the same as the batch.
    let one = model().image_embeddings(&images[2..3]).unwrap();
    assert!(max_diff(&one[0], &got[2]) <= 1e-6);
}

#[test]
fn text_embeddings_match_get_text_features() {
    let order: Vec<String> =
        meta()["prompt_order"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    let prompts: Vec<String> = order.iter().map(|k| meta()["prompts"][k].as_str().unwrap().to_string()).collect();
    for (k, p) in order.iter().zip(&prompts) {
        let want: Vec<u32> = meta()["ids"][k].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(model().token_ids(p).unwrap(), want, "token ids of {k}");
    }
    let texts: Vec<&str> = prompts.iter().map(String::as_str).collect();
    let got = model().text_embeddings(&texts).unwrap();
    let want = r("text_embeds");
    let d = max_diff(&got.concat(), &f32s(&want));
    eprintln!(
        "text embeddings: max |diff| {d:e} (max |ref| {:.3})",
        f32s(&want).iter().fold(0f32, |m, x| m.max(x.abs()))
    );
    assert!(d <= 1e-4, "{d}");
    let one = model().text_embeddings(&texts[..1]).unwrap();
    assert!(max_diff(&one[0], &got[0]) <= 1e-6);
}

fn is_invalid_input(e: &Error) -> bool {
    matches!(e, Error::InvalidInput(_))
}

#[test]
fn bad_inputs_are_clear_errors() {
    let m = model();
    let e = m.image_embeddings(&[]).unwrap_err();
    assert!(is_invalid_input(&e), "{e}");
    let e = m.text_embeddings(&[]).unwrap_err();
    assert!(is_invalid_input(&e), "{e}");
    // 76 words + the markers: 78 tokens, one more than the 77 positions.
    let long = vec!["a"; 76].join(" ");
    let e = m.text_embeddings(&["fine", &long]).unwrap_err();
    assert!(is_invalid_input(&e) && e.to_string().contains("text 1") && e.to_string().contains("78"), "{e}");
    assert!(m.text_embeddings(&[&vec!["a"; 75].join(" ")]).is_ok());
    assert_eq!(m.text_embeddings(&[""]).unwrap()[0].len(), 16);
    // Zero-size or short images cannot be made as an Image; the raw-bytes entry point says so.
    assert!(Image::new(0, 4, vec![]).is_err());
    let p = ClipPreprocess::openai(224);
    let e = p.resize_crop_rgb(&[], 0, 5).unwrap_err();
    assert!(is_invalid_input(&e) && e.to_string().contains("0x5"), "{e}");
    let e = p.resize_crop_rgb(&[1, 2, 3], 2, 2).unwrap_err();
    assert!(is_invalid_input(&e), "{e}");
    let e = p.pixel_values(&[]).unwrap_err();
    assert!(is_invalid_input(&e), "{e}");
    let e = m.embed_pixels(&Tensor::zeros((1, 3, 16, 16), DType::F32, &Device::Cpu).unwrap()).unwrap_err();
    assert!(is_invalid_input(&e), "{e}");
}

/// A copy of tiny-clip in a fresh temporary folder, with `edit` applied to its files.
fn edited_copy(tag: &str, edit: impl FnOnce(&Path)) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zipp-clip-test-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(fixtures().join("tiny-clip")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    edit(&dir);
    dir
}

fn edit_json(path: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

#[test]
fn broken_model_folders_are_clear_errors() {
    let e = ClipModel::load(fixtures().join("no-such-clip")).unwrap_err();
    assert!(matches!(e, Error::ModelNotFound { .. }), "{e}");

    type Edit = Box<dyn FnOnce(&Path)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        ("noconfig", Box::new(|d: &Path| std::fs::remove_file(d.join("config.json")).unwrap()), "missing"),
        (
            "crop",
            Box::new(|d: &Path| {
                edit_json(&d.join("preprocessor_config.json"), |v| v["crop_size"] = serde_json::json!(48))
            }),
            "48x48 images, the vision model takes 32x32",
        ),
        (
            "width",
            Box::new(|d: &Path| {
                edit_json(&d.join("config.json"), |v| v["vision_config"]["hidden_size"] = serde_json::json!(64))
            }),
            "shape",
        ),
        (
            "type",
            Box::new(|d: &Path| edit_json(&d.join("config.json"), |v| v["model_type"] = serde_json::json!("siglip"))),
            "siglip",
        ),
        (
            "eos",
            Box::new(|d: &Path| {
                edit_json(&d.join("config.json"), |v| v["text_config"]["eos_token_id"] = serde_json::json!(7))
            }),
            "end-of-text",
        ),
        (
            "weights",
            Box::new(|d: &Path| std::fs::write(d.join("model.safetensors"), b"not safetensors").unwrap()),
            "safetensors",
        ),
    ];
    for (tag, edit, needle) in cases {
        let dir = edited_copy(tag, edit);
        let e = ClipModel::load(&dir).unwrap_err();
        eprintln!("{tag}: {e}");
        assert!(matches!(e, Error::ModelInvalid { .. }), "{tag}: {e}");
        assert!(e.to_string().contains(needle), "{tag}: {e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
