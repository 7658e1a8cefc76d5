//! Training on small planted-partition graphs: the encoder must learn (loss falls, held-out
//! AUC well above chance), be reproducible, represent a new user inductively, and round-trip
//! through its checkpoint.

use candle_core::{Device, Tensor};
use zipp_core::rng::SplitMix;
use zipp_graph::metrics::{link_metrics, Embeddings};
use zipp_graph::model::{Encoder, EncoderConfig, GraphView};
use zipp_graph::split::{EdgeSplit, Part, SplitOptions};
use zipp_graph::train::{embed, evaluate, train, TrainOptions};
use zipp_graph::{BipartiteGraph, GraphBuilder};

const CLUSTERS: usize = 4;
const COMMUNITIES: usize = 60;
const DIM: usize = 16;

/// Users of cluster `u % CLUSTERS` post mostly (90%) in that cluster's communities
/// (community `s` is in cluster `s % CLUSTERS`); `extra` adds users after the first `users`.
fn planted(users: usize, extra: &[usize], seed: u64) -> BipartiteGraph {
    let mut rng = SplitMix(seed);
    let mut b = GraphBuilder::new();
    for s in 0..COMMUNITIES {
        b.community(&format!("c{s}"), "").unwrap();
    }
    for u in (0..users).chain(extra.iter().copied()) {
        let id = b.user(&format!("u{u}")).unwrap();
        let mut urng = SplitMix(seed ^ (u as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for _ in 0..12 {
            let own = urng.unit() < 0.9;
            let k = (urng.next_u64() % (COMMUNITIES / CLUSTERS) as u64) as usize;
            let s = if own { k * CLUSTERS + u % CLUSTERS } else { (urng.next_u64() % COMMUNITIES as u64) as usize };
            b.edge(id, s as u32, 1.0 + (rng.next_u64() % 3) as f32, None).unwrap();
        }
    }
    b.build().unwrap()
}

/// Features: a weak cluster signal plus noise, so the graph has to do the work.
fn features() -> Tensor {
    let mut rng = SplitMix(99);
    let v: Vec<f32> = (0..COMMUNITIES)
        .flat_map(|s| {
            let mut row: Vec<f32> = (0..DIM).map(|_| (rng.unit() - 0.5) as f32).collect();
            row[s % CLUSTERS] += 0.3;
            row
        })
        .collect();
    Tensor::from_vec(v, (COMMUNITIES, DIM), &Device::Cpu).unwrap()
}

fn small_config(content: Option<usize>) -> EncoderConfig {
    EncoderConfig { feature_dim: DIM, hidden: 8, heads: 2, out: 8, content_dim: content }
}

fn options() -> TrainOptions {
    TrainOptions { epochs: 40, lr: 0.01, eval_every: 10, ..TrainOptions::default() }
}

#[test]
fn training_learns_the_planted_communities_and_is_reproducible() {
    let g = planted(120, &[], 1);
    let split = EdgeSplit::new(&g, SplitOptions { validation: 0.1, test: 0.2, seed: 5 }).unwrap();
    let view = GraphView::new(&g, &split, &features()).unwrap();
    let enc = Encoder::new(small_config(None), 7, &Device::Cpu).unwrap();
    let before = evaluate(&enc, &view, &g, &split, Part::Test, 0).unwrap();
    let mut seen = 0;
    let t = train(enc.clone(), &g, &split, &view, None, &options(), &mut |_| {
        seen += 1;
        true
    })
    .unwrap();
    assert_eq!(seen, 40);
    let first = t.history[0].loss;
    let last = t.history.last().unwrap().loss;
    assert!(last < 0.8 * first, "loss {first} -> {last}");
    let after = evaluate(&t.encoder, &view, &g, &split, Part::Test, 0).unwrap();
    assert!(after.auc > 0.8, "test AUC {after:?} (before training {before:?})");
    assert!(after.auc > before.auc + 0.1, "before {before:?}, after {after:?}");
    assert!(after.hit10 > 0.3, "{after:?}");

    // Same seeds → identical history and weights.
    let again = train(enc, &g, &split, &view, None, &options(), &mut |_| true).unwrap();
    let losses = |h: &[zipp_graph::train::EpochReport]| h.iter().map(|r| r.loss).collect::<Vec<_>>();
    assert_eq!(losses(&t.history), losses(&again.history));
    assert_eq!(embed(&t.encoder, &view).unwrap(), embed(&again.encoder, &view).unwrap());
}

#[test]
fn image_align_trains_and_cancellation_stops() {
    let g = planted(80, &[], 2);
    let split = EdgeSplit::new(&g, SplitOptions { validation: 0.1, test: 0.2, seed: 5 }).unwrap();
    let view = GraphView::new(&g, &split, &features()).unwrap();
    // Content: a one-hot of the user's cluster plus noise.
    let mut rng = SplitMix(4);
    let content: Vec<f32> = (0..g.num_users())
        .flat_map(|u| {
            let cluster = g.users()[u][1..].parse::<usize>().unwrap() % CLUSTERS;
            (0..6).map(move |k| if k == cluster { 1.0 } else { 0.0 }).collect::<Vec<f32>>()
        })
        .map(|x| x + 0.1 * rng.unit() as f32)
        .collect();
    let content = Tensor::from_vec(content, (g.num_users(), 6), &Device::Cpu).unwrap();
    let enc = Encoder::new(small_config(Some(6)), 3, &Device::Cpu).unwrap();
    let t = train(enc.clone(), &g, &split, &view, Some(&content), &options(), &mut |_| true).unwrap();
    let a0 = t.history[0].align_loss.unwrap();
    let a1 = t.history.last().unwrap().align_loss.unwrap();
    assert!(a1 < 0.8 * a0, "ImageAlign loss {a0} -> {a1}");
    let err = train(enc, &g, &split, &view, Some(&content), &options(), &mut |r| r.epoch < 3).unwrap_err();
    assert_eq!(err.kind().name(), "cancelled", "{err}");
}

#[test]
fn a_new_user_is_represented_from_their_edges_alone() {
    // Train without users 500..504, then embed them with the same weights from a graph that
    // includes them: their held-out communities must outrank random ones.
    let g = planted(120, &[], 3);
    let split = EdgeSplit::new(&g, SplitOptions { validation: 0.0, test: 0.0, seed: 5 }).unwrap();
    let view = GraphView::new(&g, &split, &features()).unwrap();
    let enc = Encoder::new(small_config(None), 7, &Device::Cpu).unwrap();
    let t = train(enc, &g, &split, &view, None, &TrainOptions { eval_every: 0, ..options() }, &mut |_| true).unwrap();

    let new_users = [500, 501, 502, 503, 504, 505, 506, 507];
    let g2 = planted(120, &new_users, 3);
    // The new users keep half their edges as input, half held out to test.
    let mut parts = vec![Part::Train; g2.num_edges()];
    for u in 120..g2.num_users() {
        for (k, e) in g2.by_user().range(u).enumerate() {
            if k % 2 == 1 {
                parts[e] = Part::Test;
            }
        }
    }
    let split2 = EdgeSplit::from_parts(&g2, parts).unwrap();
    let view2 = GraphView::new(&g2, &split2, &features()).unwrap();
    let (zu, zs) = embed(&t.encoder, &view2).unwrap();
    let emb = Embeddings { users: &zu, communities: &zs, dim: 8 };
    let m = link_metrics(&g2, &split2, Part::Test, &emb, 1, usize::MAX).unwrap();
    assert!(m.edges >= 30);
    assert!(m.auc > 0.75, "new users' held-out AUC {m:?}");
}

#[test]
fn checkpoint_round_trips_and_bad_files_are_refused() {
    let dir = std::env::temp_dir().join(format!("zipp-graph-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let enc = Encoder::new(small_config(Some(5)), 1, &Device::Cpu).unwrap();
    let path = dir.join("enc.safetensors");
    enc.save(&path).unwrap();
    let back = Encoder::load(&path, &Device::Cpu).unwrap();
    assert_eq!(back.config(), enc.config());
    for ((n1, v1), (n2, v2)) in enc.named_vars().iter().zip(back.named_vars()) {
        assert_eq!(n1, &n2);
        let (a, b) =
            (v1.flatten_all().unwrap().to_vec1::<f32>().unwrap(), v2.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        assert_eq!(a, b, "{n1}");
    }
    let missing = Encoder::load(&dir.join("nope.safetensors"), &Device::Cpu).unwrap_err();
    assert_eq!(missing.kind().name(), "model_not_found", "{missing}");
    std::fs::write(dir.join("bad.safetensors"), b"not a safetensors file").unwrap();
    let bad = Encoder::load(&dir.join("bad.safetensors"), &Device::Cpu).unwrap_err();
    assert_eq!(bad.kind().name(), "model_invalid", "{bad}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_block_with_unbounded_fanouts_equals_the_full_graph_forward() {
    use zipp_graph::sample::{MiniBatchOptions, Sampler};
    let g = planted(60, &[], 4);
    let split = EdgeSplit::new(&g, SplitOptions { validation: 0.0, test: 0.2, seed: 5 }).unwrap();
    let view = GraphView::new(&g, &split, &features()).unwrap();
    let enc = Encoder::new(small_config(None), 2, &Device::Cpu).unwrap();
    let (zu, zs) = enc.forward(&view).unwrap();
    let opts = MiniBatchOptions { batch_edges: 16, fanouts: [1000, 1000], max_batches: None };
    let mut sampler = Sampler::new(&view, &opts, 0).unwrap();
    let pairs = [(5u32, 9u32), (17, 2), (5, 40), (59, 33)];
    let block = sampler.block(&pairs, 1, 0).unwrap();
    let (bu, bs) = enc.forward_block(&view, &block).unwrap();
    let rows = |z: &Tensor, ids: &[u32]| {
        z.index_select(&Tensor::from_vec(ids.to_vec(), ids.len(), &Device::Cpu).unwrap(), 0).unwrap()
    };
    let diff = |a: &Tensor, b: &Tensor| {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    };
    assert!(diff(&bu, &rows(&zu, &block.users[0])) < 1e-5);
    assert!(diff(&bs, &rows(&zs, &block.communities[0])) < 1e-5);
    // With small fanouts the block differs (it samples), but stays finite.
    let mut small =
        Sampler::new(&view, &MiniBatchOptions { batch_edges: 16, fanouts: [2, 2], max_batches: None }, 0).unwrap();
    let (su, _) = enc.forward_block(&view, &small.block(&pairs, 1, 0).unwrap()).unwrap();
    assert!(diff(&su, &rows(&zu, &block.users[0])) > 1e-4);
}

#[test]
fn mini_batch_training_learns_and_is_reproducible() {
    use zipp_graph::sample::MiniBatchOptions;
    let g = planted(120, &[], 1);
    let split = EdgeSplit::new(&g, SplitOptions { validation: 0.1, test: 0.2, seed: 5 }).unwrap();
    let view = GraphView::new(&g, &split, &features()).unwrap();
    let enc = Encoder::new(small_config(None), 7, &Device::Cpu).unwrap();
    let before = evaluate(&enc, &view, &g, &split, Part::Test, 0).unwrap();
    let options = TrainOptions {
        epochs: 8,
        lr: 0.01,
        eval_every: 4,
        mini_batch: Some(MiniBatchOptions { batch_edges: 128, fanouts: [4, 4], max_batches: None }),
        ..TrainOptions::default()
    };
    let t = train(enc.clone(), &g, &split, &view, None, &options, &mut |_| true).unwrap();
    let after = evaluate(&t.encoder, &view, &g, &split, Part::Test, 0).unwrap();
    assert!(after.auc > 0.8 && after.auc > before.auc + 0.1, "before {before:?}, after {after:?}");
    assert!(t.history.last().unwrap().loss < 0.8 * t.history[0].loss);
    // The batch callback sees each step and cancels after the one it refuses.
    let mut seen = Vec::new();
    let e =
        zipp_graph::train::train_observed(enc.clone(), &g, &split, &view, None, &options, &mut |_| true, &mut |b| {
            seen.push((b.epoch, b.batch, b.batches));
            !(b.epoch == 2 && b.batch == 1)
        })
        .unwrap_err();
    assert!(matches!(e, zipp_core::Error::Cancelled(_)), "{e}");
    let per_epoch = seen[0].2;
    assert!(per_epoch > 1 && seen.len() == per_epoch + 1, "{seen:?}");
    assert_eq!(seen.last(), Some(&(2, 1, per_epoch)));
    // Same seed → the same weights, bit for bit, whatever the thread count (every parallel
    // sum of the kernels is taken in a fixed order).
    for threads in [1, 3] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let again = pool.install(|| train(enc.clone(), &g, &split, &view, None, &options, &mut |_| true)).unwrap();
        assert_eq!(embed(&t.encoder, &view).unwrap(), embed(&again.encoder, &view).unwrap(), "{threads} threads");
    }
}
