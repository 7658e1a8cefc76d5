//! TAESD's decoder against diffusers' `AutoencoderTiny` on a tiny random model
//! (`tests/fixtures/tiny-taesd`, `taesd_reference.safetensors`, written by
//! `/tmp/diffref/v/bin/python benches/reference/taesd_reference.py --out
//! zipp-diffusion/tests/fixtures`, diffusers 0.42.1), and the pipeline option that uses it.

mod common;

use candle_core::{DType, Device};
use common::{assert_close, fixtures};
use zipp_core::image::{ImageGenerator, ImageRequest};
use zipp_core::lm::Cancel;
use zipp_diffusion::taesd::TinyDecoder;
use zipp_diffusion::{LoadOptions, StableDiffusion};

#[test]
fn tiny_decoder_matches_diffusers() {
    let r = candle_core::safetensors::load(fixtures().join("taesd_reference.safetensors"), &Device::Cpu).unwrap();
    let d = TinyDecoder::load(&fixtures().join("tiny-taesd"), DType::F32, &Device::Cpu).unwrap();
    let got = d.decode(&r["latents"]).unwrap();
    assert_close("taesd decode", &got, &r["decoded"], 1e-5);
}

#[test]
fn the_pipeline_decodes_with_taesd_when_asked() {
    let opts = LoadOptions { taesd: Some(fixtures().join("tiny-taesd")), ..Default::default() };
    let fast = StableDiffusion::load(fixtures().join("tiny-sd"), &opts).unwrap();
    let full = StableDiffusion::load(fixtures().join("tiny-sd"), &LoadOptions::default()).unwrap();
    let req = ImageRequest { steps: Some(2), seed: 3, ..ImageRequest::new("a red cat") };
    let a = fast.generate(&req, &Cancel::new(), &mut |_| {}).unwrap();
    let b = full.generate(&req, &Cancel::new(), &mut |_| {}).unwrap();
    assert_eq!((a.width, a.height), (64, 64));
    assert_ne!(a.images, b.images, "a different decoder gives a different image");
    assert_ne!(fast.id(), full.id(), "the decoder is part of the model's identity");
    let e = StableDiffusion::load(
        fixtures().join("tiny-sd"),
        &LoadOptions { taesd: Some(fixtures().join("tiny-sd/unet")), ..Default::default() },
    )
    .err()
    .unwrap();
    assert_eq!(e.kind(), zipp_core::ErrorKind::ModelInvalid, "{e}");
}
