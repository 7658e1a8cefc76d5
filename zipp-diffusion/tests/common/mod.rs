//! Shared helpers of zipp-diffusion's tests: the fixtures written by
//! `benches/reference/diffusion_reference.py` (diffusers 0.42.1, transformers 5.24.0, torch
//! 2.15.0 CPU; see `tests/fixtures/README.md`).
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use candle_core::{Device, Tensor};

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every array diffusers computed.
pub fn reference() -> &'static HashMap<String, Tensor> {
    static R: OnceLock<HashMap<String, Tensor>> = OnceLock::new();
    R.get_or_init(|| candle_core::safetensors::load(fixtures().join("reference.safetensors"), &Device::Cpu).unwrap())
}

pub fn meta() -> &'static serde_json::Value {
    static M: OnceLock<serde_json::Value> = OnceLock::new();
    M.get_or_init(|| {
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("reference.json")).unwrap()).unwrap()
    })
}

pub fn r(name: &str) -> Tensor {
    reference().get(name).unwrap_or_else(|| panic!("no reference array {name}")).clone()
}

/// Max |a − b| over all elements (shapes must match).
pub fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

pub fn max_abs(a: &Tensor) -> f32 {
    a.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

/// Asserts `a ≈ b` within `tol · max(1, max|b|)`, printing the error.
pub fn assert_close(what: &str, a: &Tensor, b: &Tensor, tol: f32) {
    let d = max_diff(a, b);
    let bound = tol * max_abs(b).max(1.0);
    eprintln!("{what}: max |diff| {d:.3e} (bound {bound:.1e}, max |ref| {:.3})", max_abs(b));
    assert!(d <= bound, "{what}: max |diff| {d} > {bound}");
}

pub fn ids(model: &str, key: &str) -> Vec<u32> {
    meta()[model]["ids"][key].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect()
}
