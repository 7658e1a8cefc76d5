//! The diffusion runner's hot paths at the sizes that matter, interleaved with the reference
//! they replace: attention over 1024 tokens (the UNet's second level at 512 px: 10 heads of
//! 64) and its softmax — zipp's blocked attention and softmax against candle's plain
//! `softmax(q·kᵀ)·v`, and the per-head CPU tasks the UNet runs —, a 3×3 convolution (zipp's
//! shifted GEMMs against candle's `conv2d`), zipp's linear layer against candle's (a text
//! encoder's 77 tokens; the transformer's proj_out onto a feature map) and a whole 4-step generation of the tiny fixture model (the
//! pipeline's own overhead: scheduling, guidance, noise, decoding). Full-size UNet/VAE
//! timings take seconds each and run through `examples/diffusion_speed.rs` (BENCHMARKS.md).

use candle_core::Module;
use candle_core::{Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use zipp_core::image::{ImageGenerator, ImageRequest};
use zipp_core::lm::Cancel;
use zipp_diffusion::attention::{attend, attend_heads_cpu, softmax_last_dim, QUERY_BLOCK};

fn attention(c: &mut Criterion) {
    let dev = Device::Cpu;
    let (heads, n, d) = (10, 1024, 64);
    let q = (Tensor::randn(0f32, 1., (heads, n, d), &dev).unwrap() * 0.125).unwrap();
    let k = Tensor::randn(0f32, 1., (heads, n, d), &dev).unwrap();
    let v = Tensor::randn(0f32, 1., (heads, n, d), &dev).unwrap();
    let scores = q.matmul(&k.t().unwrap()).unwrap();
    let run = |f: &mut (dyn FnMut() + Send)| zipp_core::runtime::compute(&dev, &mut *f);
    let mut g = c.benchmark_group("attention_10x1024x64");
    g.sample_size(20);
    g.bench_function("softmax/zipp", |b| b.iter(|| run(&mut || drop(softmax_last_dim(&scores).unwrap()))));
    g.bench_function("softmax/candle", |b| {
        b.iter(|| run(&mut || drop(candle_nn::ops::softmax_last_dim(&scores).unwrap())))
    });
    g.bench_function("attention/zipp_blocked", |b| {
        b.iter(|| run(&mut || drop(attend(&q, &k, &v, heads, QUERY_BLOCK).unwrap())))
    });
    // The UNet's CPU path: heads side by side in [1, n, heads·d], as the projections emit them.
    let merge = |t: &Tensor| t.transpose(0, 1).unwrap().reshape((1, n, heads * d)).unwrap().contiguous().unwrap();
    let (qm, km, vm) = (merge(&(&q * 8.0).unwrap()), merge(&k), merge(&v));
    g.bench_function("attention/zipp_heads_cpu", |b| {
        b.iter(|| run(&mut || drop(attend_heads_cpu(&qm, &km, &vm, heads, 0.125).unwrap())))
    });
    g.bench_function("attention/candle_plain", |b| {
        b.iter(|| {
            run(&mut || {
                let w = candle_nn::ops::softmax_last_dim(&q.matmul(&k.t().unwrap()).unwrap()).unwrap();
                drop(w.matmul(&v).unwrap())
            })
        })
    });
    g.finish();
}

/// A 3×3 convolution at the UNet's second level (640 channels, 32×32 at 512 px): zipp's
/// Winograd form (what `forward` takes there), zipp's shifted-GEMM form and candle's
/// `conv2d` on the same weights.
fn convolution(c: &mut Criterion) {
    let dev = Device::Cpu;
    let map = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&map, candle_core::DType::F32, &dev);
    let conv = zipp_diffusion::layers::conv2d(640, 640, 3, 1, 1, true, vb.pp("conv")).unwrap();
    let x = Tensor::randn(0f32, 1., (1, 640, 32, 32), &dev).unwrap();
    let run = |f: &mut (dyn FnMut() + Send)| zipp_core::runtime::compute(&dev, &mut *f);
    let mut g = c.benchmark_group("conv3x3_640x32x32");
    g.sample_size(20);
    g.bench_function("zipp", |b| b.iter(|| run(&mut || drop(conv.forward(&x).unwrap()))));
    g.bench_function("zipp_shifted", |b| b.iter(|| run(&mut || drop(conv.forward_shifted(&x).unwrap()))));
    g.bench_function("candle", |b| {
        b.iter(|| run(&mut || drop(zipp_diffusion::layers::candle_conv(&conv, &x).unwrap())))
    });
    g.finish();
}

/// zipp's linear layer against candle's `Linear` on the same weights, at the two shapes it
/// changed most: a text encoder's 77 tokens × 1024 → 1024 (output split by columns across
/// threads) and the spatial transformer's `proj_out` at 64×64×320 (tokens back to a feature
/// map, plus the residual; candle: linear, permute, copy, add).
fn linear(c: &mut Criterion) {
    let dev = Device::Cpu;
    let map = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&map, candle_core::DType::F32, &dev);
    let run = |f: &mut (dyn FnMut() + Send)| zipp_core::runtime::compute(&dev, &mut *f);
    let theirs = candle_nn::linear(1024, 1024, vb.pp("text")).unwrap();
    let ours = zipp_diffusion::layers::linear(1024, 1024, vb.pp("text")).unwrap();
    let x = Tensor::randn(0f32, 1., (1, 77, 1024), &dev).unwrap();
    let mut g = c.benchmark_group("linear_77x1024x1024");
    g.sample_size(50);
    g.bench_function("zipp", |b| b.iter(|| run(&mut || drop(ours.forward(&x).unwrap()))));
    g.bench_function("candle", |b| b.iter(|| run(&mut || drop(theirs.forward(&x).unwrap()))));
    g.finish();
    let theirs = candle_nn::linear(320, 320, vb.pp("proj")).unwrap();
    let ours = zipp_diffusion::layers::linear(320, 320, vb.pp("proj")).unwrap();
    let tokens = Tensor::randn(0f32, 1., (1, 4096, 320), &dev).unwrap();
    let residual = Tensor::randn(0f32, 1., (1, 320, 64, 64), &dev).unwrap();
    let mut g = c.benchmark_group("proj_out_64x64x320");
    g.sample_size(30);
    g.bench_function("zipp", |b| b.iter(|| run(&mut || drop(ours.forward_to_map(&tokens, &residual).unwrap()))));
    g.bench_function("candle", |b| {
        b.iter(|| {
            run(&mut || {
                let y = theirs.forward(&tokens).unwrap().reshape((1, 64, 64, 320)).unwrap();
                drop((y.permute((0, 3, 1, 2)).unwrap().contiguous().unwrap() + &residual).unwrap())
            })
        })
    });
    g.finish();
}

fn tiny_pipeline(c: &mut Criterion) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../zipp-diffusion/tests/fixtures/tiny-sd");
    let m = zipp_diffusion::StableDiffusion::load(dir, &Default::default()).unwrap();
    let req = ImageRequest { steps: Some(4), ..ImageRequest::new("a photo of a red cat") };
    let mut g = c.benchmark_group("tiny_sd");
    g.sample_size(20);
    g.bench_function("generate_4_steps_cfg_64px", |b| {
        b.iter(|| m.generate(&req, &Cancel::new(), &mut |_| {}).unwrap())
    });
    g.finish();
}

criterion_group!(benches, attention, convolution, linear, tiny_pipeline);
criterion_main!(benches);
