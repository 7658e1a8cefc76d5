//! zipp's GATv2 layer against PyTorch Geometric's `GATv2Conv` (bipartite, no self-loops) on
//! identical weights: forward output, attention coefficients and every gradient.
//!
//! Fixture: `tests/fixtures/gatv2_pyg.safetensors`, float64, written by
//! `/tmp/pygref/v/bin/python benches/reference/gatv2_pyg.py fixture --out zipp-graph/tests/fixtures/gatv2_pyg.safetensors`
//! (torch 2.15.0, torch_geometric 2.8.1; the script checks PyG against a hand-written float64
//! formula before writing). Two cases: `concat.` (2 heads × 3 channels, concatenated; a
//! target without in-edges, a repeated edge, edges not sorted by target) and `mean.` (3 heads
//! averaged, inputs scaled by 30 so the largest logit is ≈ 149: an unshifted softmax would
//! overflow f32).
//!
//! zipp computes in f32 (the fused CPU kernel, and the composed candle ops as a second
//! path); the tolerances are relative to each tensor's largest magnitude, 1e-5 for outputs
//! and attention and 1e-4 for gradients (f32 rounding over sums of a few terms).

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var};
use zipp_graph::gatv2::{Adjacency, Gatv2Layer};

fn fixture() -> HashMap<String, Tensor> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gatv2_pyg.safetensors");
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

fn f32v(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn assert_close(what: &str, got: &[f32], want: &[f32], rel: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
    let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst <= rel * scale, "{what}: max |zipp - PyG| = {worst:e}, scale {scale:e}");
}

fn check(prefix: &str, composed: bool) {
    let f = fixture();
    let t = |name: &str| f.get(&format!("{prefix}{name}")).unwrap_or_else(|| panic!("fixture lacks {prefix}{name}"));
    let src: Vec<i64> = t("edge_src").to_vec1().unwrap();
    let dst: Vec<i64> = t("edge_dst").to_vec1().unwrap();
    let (n_src, in_src) = t("x_src").dims2().unwrap();
    let (n_dst, in_dst) = t("x_dst").dims2().unwrap();
    let (heads, channels) = t("att").dims2().unwrap();
    let concat = t("bias").dims()[0] == heads * channels;
    let edges: Vec<(u32, u32)> = src.iter().zip(&dst).map(|(&j, &i)| (j as u32, i as u32)).collect();
    let adj = Arc::new(Adjacency::from_edges(n_src, n_dst, &edges).unwrap());
    let mut rng = zipp_core::rng::SplitMix(0);
    let layer = Gatv2Layer::new(in_src, in_dst, heads, channels, concat, &mut rng, &Device::Cpu).unwrap();
    let names = ["lin_l.weight", "lin_l.bias", "lin_r.weight", "lin_r.bias", "att", "bias"];
    for (name, var) in names.iter().zip(layer.params()) {
        var.set(&t(name).to_dtype(DType::F32).unwrap()).unwrap();
    }
    let xs = Var::from_tensor(&t("x_src").to_dtype(DType::F32).unwrap()).unwrap();
    let xd = Var::from_tensor(&t("x_dst").to_dtype(DType::F32).unwrap()).unwrap();
    let out = if composed {
        layer.forward_composed(&adj, xs.as_tensor(), xd.as_tensor()).unwrap()
    } else {
        layer.forward(&adj, xs.as_tensor(), xd.as_tensor()).unwrap()
    };
    assert_close(&format!("{prefix}out"), &f32v(&out), &f32v(t("out")), 1e-5);

    // Attention, read back per input edge.
    let alpha = layer.coefficients(&adj, xs.as_tensor(), xd.as_tensor()).unwrap();
    let slots = Adjacency::slots_of_edges(n_dst, &edges);
    let per_edge: Vec<f32> = slots.iter().flat_map(|&k| alpha[k * heads..(k + 1) * heads].to_vec()).collect();
    assert_close(&format!("{prefix}alpha"), &per_edge, &f32v(t("alpha")), 1e-5);

    let g = t("grad_out").to_dtype(DType::F32).unwrap();
    let grads = (&out * &g).unwrap().sum_all().unwrap().backward().unwrap();
    for (name, var) in names.iter().zip(layer.params()) {
        let got = grads.get(var).unwrap_or_else(|| panic!("no gradient for {name}"));
        assert_close(&format!("{prefix}grad.{name}"), &f32v(got), &f32v(t(&format!("grad.{name}"))), 1e-4);
    }
    assert_close(&format!("{prefix}grad.x_src"), &f32v(grads.get(&xs).unwrap()), &f32v(t("grad.x_src")), 1e-4);
    assert_close(&format!("{prefix}grad.x_dst"), &f32v(grads.get(&xd).unwrap()), &f32v(t("grad.x_dst")), 1e-4);
}

#[test]
fn fused_kernel_matches_pyg_concat_heads() {
    check("concat.", false);
}

#[test]
fn fused_kernel_matches_pyg_mean_heads_with_large_logits() {
    check("mean.", false);
}

#[test]
fn composed_ops_match_pyg_too() {
    check("concat.", true);
    check("mean.", true);
}
