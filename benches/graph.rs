//! The persona-mining encoder's hot paths at MovieLens 100K's size (≈ 85,000 training edges
//! between 943 users and 1,682 movies; 384-d features; 2 heads × 64), interleaved with the
//! reference they replace: one GATv2 layer's forward + backward through zipp's fused kernel
//! against the same layer from candle's gather / index-add ops, and one training step's pair
//! scores (fused op against gather + multiply + sum). Whole epochs against PyTorch Geometric
//! run through `benches/reference/graph_side_by_side.sh` (BENCHMARKS.md).

use std::sync::Arc;

use candle_core::{Device, Tensor, Var};
use criterion::{criterion_group, criterion_main, Criterion};
use zipp_core::rng::SplitMix;
use zipp_graph::gatv2::{Adjacency, Gatv2Layer};

/// A random bipartite adjacency of MovieLens's shape: 85,000 edges, users as targets.
fn movielens_like() -> Arc<Adjacency> {
    let mut r = SplitMix(1);
    let edges: Vec<(u32, u32)> =
        (0..85_000).map(|_| ((r.next_u64() % 1682) as u32, (r.next_u64() % 943) as u32)).collect();
    Arc::new(Adjacency::from_edges(1682, 943, &edges).unwrap())
}

fn gatv2_layer(c: &mut Criterion) {
    let dev = Device::Cpu;
    let adj = movielens_like();
    let mut rng = SplitMix(2);
    let layer = Gatv2Layer::new(384, 384, 2, 64, true, &mut rng, &dev).unwrap();
    let xs = Tensor::randn(0f32, 0.05, (1682, 384), &dev).unwrap();
    let xu = Tensor::randn(0f32, 0.05, (943, 384), &dev).unwrap();
    let run = |f: &mut (dyn FnMut() + Send)| zipp_core::runtime::compute(&dev, &mut *f);
    let mut g = c.benchmark_group("gatv2_layer_85k_edges_384_to_2x64");
    g.sample_size(20);
    g.bench_function("forward_backward/zipp_fused", |b| {
        b.iter(|| run(&mut || drop(layer.forward(&adj, &xs, &xu).unwrap().sum_all().unwrap().backward().unwrap())))
    });
    g.bench_function("forward_backward/candle_composed", |b| {
        b.iter(|| {
            run(&mut || drop(layer.forward_composed(&adj, &xs, &xu).unwrap().sum_all().unwrap().backward().unwrap()))
        })
    });
    g.finish();
}

fn pair_scores(c: &mut Criterion) {
    let dev = Device::Cpu;
    let n = 170_000;
    let mut r = SplitMix(3);
    let users: Vec<u32> = (0..n).map(|_| (r.next_u64() % 943) as u32).collect();
    let comms: Vec<u32> = (0..n).map(|_| (r.next_u64() % 1682) as u32).collect();
    let zu = Var::from_tensor(&Tensor::randn(0f32, 1., (943, 64), &dev).unwrap()).unwrap();
    let zs = Var::from_tensor(&Tensor::randn(0f32, 1., (1682, 64), &dev).unwrap()).unwrap();
    let (ut, st) = (Tensor::new(users.as_slice(), &dev).unwrap(), Tensor::new(comms.as_slice(), &dev).unwrap());
    let (ua, sa) = (Arc::new(users), Arc::new(comms));
    let run = |f: &mut (dyn FnMut() + Send)| zipp_core::runtime::compute(&dev, &mut *f);
    let mut g = c.benchmark_group("pair_scores_170k_x64");
    g.sample_size(20);
    g.bench_function("forward_backward/zipp_fused", |b| {
        b.iter(|| {
            run(&mut || {
                let s = zipp_graph::train::pair_scores(zu.as_tensor(), zs.as_tensor(), &ua, &sa).unwrap();
                drop(s.sum_all().unwrap().backward().unwrap())
            })
        })
    });
    g.bench_function("forward_backward/candle_gather", |b| {
        b.iter(|| {
            run(&mut || {
                let s = (zu.index_select(&ut, 0).unwrap() * zs.index_select(&st, 0).unwrap()).unwrap().sum(1).unwrap();
                drop(s.sum_all().unwrap().backward().unwrap())
            })
        })
    });
    g.finish();
}

criterion_group!(benches, gatv2_layer, pair_scores);
criterion_main!(benches);
