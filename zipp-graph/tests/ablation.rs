//! The ablation encoders (SPEC §6) on small planted-partition graphs: each trainable one
//! learns, TF-IDF ranks by shared words, every gradient is finite, LightGCN propagates as
//! the paper's equations say on a graph small enough to do by hand, and the table runner
//! keeps its promises (same seeds → same numbers, TF-IDF + ImageAlign not applicable).

use candle_core::{Device, Tensor};
use zipp_core::rng::SplitMix;
use zipp_graph::ablation::{
    build, markdown_table, run_ablation, tokenize, AblationEncoder, AblationEvent, AblationRun, LightGcn, TfIdf,
};
use zipp_graph::model::{AlignHead, GraphEncoder, GraphView};
use zipp_graph::split::{EdgeSplit, Part, SplitOptions};
use zipp_graph::train::{embed, evaluate, train, TrainOptions};
use zipp_graph::{BipartiteGraph, GraphBuilder};

const CLUSTERS: usize = 4;
const COMMUNITIES: usize = 60;
const DIM: usize = 16;
/// One topic word per cluster, shared by that cluster's community texts.
const TOPICS: [&str; CLUSTERS] = ["jazz", "chess", "hiking", "baking"];
/// Words any community may use.
const COMMON: [&str; 6] = ["weekly", "photos", "talk", "club", "news", "fans"];

/// Users of cluster `u % CLUSTERS` post mostly (90%) in that cluster's communities
/// (community `s` is in cluster `s % CLUSTERS`, its text naming the cluster's topic).
fn planted(users: usize, seed: u64) -> BipartiteGraph {
    let mut rng = SplitMix(seed);
    let mut b = GraphBuilder::new();
    for s in 0..COMMUNITIES {
        let common = COMMON[(rng.next_u64() % COMMON.len() as u64) as usize];
        b.community(&format!("c{s}"), &format!("{} {common}", TOPICS[s % CLUSTERS])).unwrap();
    }
    for u in 0..users {
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

/// Content: a one-hot of the user's cluster plus noise.
fn content(g: &BipartiteGraph) -> Tensor {
    let mut rng = SplitMix(4);
    let v: Vec<f32> = (0..g.num_users())
        .flat_map(|u| (0..6).map(move |k| if k == u % CLUSTERS { 1.0 } else { 0.0 }))
        .map(|x: f32| x + 0.1 * rng.unit() as f32)
        .collect();
    Tensor::from_vec(v, (g.num_users(), 6), &Device::Cpu).unwrap()
}

fn options(epochs: usize) -> TrainOptions {
    TrainOptions { epochs, lr: 0.01, eval_every: 10, ..TrainOptions::default() }
}

fn split_of(g: &BipartiteGraph) -> EdgeSplit {
    EdgeSplit::new(g, SplitOptions { validation: 0.1, test: 0.2, seed: 5 }).unwrap()
}

const TRAINABLE: [AblationEncoder; 4] =
    [AblationEncoder::LightGcn, AblationEncoder::Sage, AblationEncoder::Gat, AblationEncoder::Gatv2];

#[test]
fn every_trainable_encoder_learns_the_planted_communities() {
    let g = planted(120, 1);
    let split = split_of(&g);
    let view = GraphView::new(&g, &split, &features()).unwrap();
    for kind in TRAINABLE {
        let enc = build(kind, &g, DIM, None, 7, &Device::Cpu).unwrap();
        assert_eq!(enc.name(), kind.name());
        let before = evaluate(&enc, &view, &g, &split, Part::Test, 0).unwrap();
        let t = train(enc, &g, &split, &view, None, &options(40), &mut |_| true).unwrap();
        let after = evaluate(&t.encoder, &view, &g, &split, Part::Test, 0).unwrap();
        assert!(after.auc > 0.7, "{kind}: test AUC {after:?} (untrained {before:?})");
        assert!(after.auc > before.auc, "{kind}: untrained {before:?}, trained {after:?}");
    }
}

#[test]
fn tfidf_ranks_communities_that_share_the_users_words() {
    let g = planted(120, 2);
    let split = split_of(&g);
    let view = GraphView::new(&g, &split, &features()).unwrap();
    let enc = build(AblationEncoder::TfIdf, &g, DIM, None, 0, &Device::Cpu).unwrap();
    assert!(enc.named_vars().is_empty() && enc.align().is_none());
    // c0..c59, 4 topics, 6 common words.
    assert_eq!(enc.out_dim(), COMMUNITIES + CLUSTERS + COMMON.len());
    let m = evaluate(&enc, &view, &g, &split, Part::Test, 0).unwrap();
    assert!(m.auc > 0.5, "{m:?}");
    // Every community vector and every user vector with training edges has unit length.
    let (zu, zs) = embed(&enc, &view).unwrap();
    let d = enc.out_dim();
    for row in zu.chunks(d).chain(zs.chunks(d)) {
        let n: f32 = row.iter().map(|x| x * x).sum();
        assert!((n - 1.0).abs() < 1e-5, "squared norm {n}");
    }
    // ImageAlign cannot train an encoder without parameters.
    let err = build(AblationEncoder::TfIdf, &g, DIM, Some(6), 0, &Device::Cpu).err().unwrap();
    assert_eq!(err.kind().name(), "invalid_input", "{err}");
}

#[test]
fn tfidf_matches_scikit_learns_smoothed_idf_by_hand() {
    // Documents "x y", "x z" and "z": N = 3, df(x) = 2, df(y) = 1, df(z) = 2.
    // idf = ln((1 + N) / (1 + df)) + 1 (TfidfVectorizer's default smooth_idf):
    // idf(x) = idf(z) = ln(4/3) + 1 = 1.28768, idf(y) = ln(2) + 1 = 1.69315.
    // "x y" → (1.28768, 1.69315, 0) / 2.12717 = (0.60534, 0.79596, 0).
    let mut b = GraphBuilder::new();
    for name in ["X y", "x-Z", "z"] {
        b.community(name, "").unwrap();
    }
    let u = b.user("u").unwrap();
    b.edge(u, 0, 3.0, None).unwrap();
    b.edge(u, 2, 1.0, None).unwrap();
    let g = b.build().unwrap();
    let tfidf = TfIdf::new(&g, &Device::Cpu).unwrap();
    assert_eq!(tfidf.vocabulary(), ["x", "y", "z"]);
    let view = GraphView::new(
        &g,
        &EdgeSplit::all_train(&g),
        &Tensor::zeros((3, 1), candle_core::DType::F32, &Device::Cpu).unwrap(),
    )
    .unwrap();
    let (zu, zs) = embed(&tfidf, &view).unwrap();
    let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4);
    assert!(close(&zs[0..3], &[0.60534, 0.79596, 0.0]), "{zs:?}");
    let r = std::f32::consts::FRAC_1_SQRT_2; // "x z": equal weights
    assert!(close(&zs[3..6], &[r, 0.0, r]), "{zs:?}");
    assert!(close(&zs[6..9], &[0.0, 0.0, 1.0]), "{zs:?}");
    // u = normalize(3 · doc0 + 1 · doc2) = (1.81605, 2.38788, 1) / 3.16228.
    assert!(close(&zu, &[0.57428, 0.75511, 0.31623]), "{zu:?}");
    assert_eq!(tokenize("Children's Film-Noir (1995)").collect::<Vec<_>>(), ["children", "s", "film", "noir", "1995"]);
}

#[test]
fn every_gradient_is_finite() {
    let g = planted(40, 3);
    let split = split_of(&g);
    let view = GraphView::new(&g, &split, &features()).unwrap();
    for kind in TRAINABLE {
        let enc = build(kind, &g, DIM, Some(6), 11, &Device::Cpu).unwrap();
        let (zu, zs) = enc.forward(&view).unwrap();
        let AlignHead(w, b) = enc.align().unwrap();
        let p = zu.matmul(&w.t().unwrap()).unwrap().broadcast_add(b.as_tensor()).unwrap();
        let loss = (zu.matmul(&zs.t().unwrap()).unwrap().tanh().unwrap().sum_all().unwrap()
            + p.sqr().unwrap().sum_all().unwrap())
        .unwrap();
        let grads = loss.backward().unwrap();
        let vars = enc.named_vars();
        assert!(vars.iter().any(|(n, _)| n == "align.weight"), "{kind}");
        for (name, var) in vars {
            let gr = grads.get(&var).unwrap_or_else(|| panic!("{kind}: no gradient for {name}"));
            assert_eq!(gr.dims(), var.dims(), "{kind} {name}");
            let v = gr.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(v.iter().all(|x| x.is_finite()), "{kind}: {name} has a non-finite gradient");
            assert!(v.iter().any(|&x| x != 0.0), "{kind}: {name}'s gradient is all zero");
        }
    }
}

#[test]
fn lightgcn_propagation_matches_a_hand_computed_path() {
    // The path u0 — s0 — u1: degrees |N(u0)| = |N(u1)| = 1, |N(s0)| = 2, so every edge's
    // weight is 1/√2. With E_u0 = (1, 0), E_u1 = (0, 2), E_s0 = (3, 3), by hand:
    //   layer 1: u0 = u1 = E_s0/√2 = (3/√2, 3/√2);   s0 = (E_u0 + E_u1)/√2 = (1/√2, 2/√2)
    //   layer 2: u0 = u1 = s0¹/√2 = (1/2, 1);          s0 = (u0¹ + u1¹)/√2 = (3, 3)
    //   z = (layer 0 + layer 1 + layer 2) / 3.
    let mut b = GraphBuilder::new();
    b.community("s0", "").unwrap();
    for u in ["u0", "u1"] {
        let id = b.user(u).unwrap();
        b.edge(id, 0, 5.0, None).unwrap(); // LightGCN ignores the weight
    }
    let g = b.build().unwrap();
    let x = Tensor::zeros((1, 1), candle_core::DType::F32, &Device::Cpu).unwrap();
    let view = GraphView::new(&g, &EdgeSplit::all_train(&g), &x).unwrap();
    let enc = LightGcn::new(2, 1, None, 0, &Device::Cpu).unwrap();
    let pad = |v: &[f32]| -> Vec<f32> { v.iter().copied().chain(std::iter::repeat(0.0)).take(64).collect() };
    let users = [pad(&[1.0, 0.0]), pad(&[0.0, 2.0])].concat();
    enc.user_embedding.set(&Tensor::from_vec(users, (2, 64), &Device::Cpu).unwrap()).unwrap();
    enc.community_embedding.set(&Tensor::from_vec(pad(&[3.0, 3.0]), (1, 64), &Device::Cpu).unwrap()).unwrap();
    let (zu, zs) = embed(&enc, &view).unwrap();
    let r = std::f32::consts::FRAC_1_SQRT_2;
    let want_u0 = [(1.0 + 3.0 * r + 0.5) / 3.0, (0.0 + 3.0 * r + 1.0) / 3.0];
    let want_u1 = [(0.0 + 3.0 * r + 0.5) / 3.0, (2.0 + 3.0 * r + 1.0) / 3.0];
    let want_s0 = [(3.0 + r + 3.0) / 3.0, (3.0 + 2.0 * r + 3.0) / 3.0];
    let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5);
    assert!(close(&zu[0..2], &want_u0), "{:?}", &zu[0..2]);
    assert!(close(&zu[64..66], &want_u1), "{:?}", &zu[64..66]);
    assert!(close(&zs[0..2], &want_s0), "{:?}", &zs[0..2]);
    assert!(zu[2..64].iter().chain(&zs[2..64]).all(|&v| v == 0.0));
    // Transductive: a view of another graph is an error, not a panic.
    let other = planted(10, 1);
    let v2 = GraphView::new(&other, &EdgeSplit::all_train(&other), &features()).unwrap();
    assert_eq!(enc.forward(&v2).unwrap_err().kind().name(), "invalid_input");
}

#[test]
fn the_table_runner_uses_the_same_seeds_and_marks_what_does_not_apply() {
    let g = planted(60, 4);
    let split = split_of(&g);
    let kinds = [AblationEncoder::TfIdf, AblationEncoder::Sage];
    let (mut epochs, mut done) = (0, 0);
    let rows = run_ablation(&g, &split, &features(), Some(&content(&g)), &kinds, &[3, 3], &options(10), &mut |p| {
        match p.event {
            AblationEvent::Epoch(_) => epochs += 1,
            AblationEvent::Done(_) => done += 1,
        }
        true
    })
    .unwrap();
    assert_eq!((epochs, done), (2 * 2 * 10, 2 + 2 * 2));
    let shape: Vec<_> = rows.iter().map(|r| (r.encoder, r.image_align, r.runs.len())).collect();
    assert_eq!(
        shape,
        [
            (AblationEncoder::TfIdf, false, 2),
            (AblationEncoder::TfIdf, true, 0),
            (AblationEncoder::Sage, false, 2),
            (AblationEncoder::Sage, true, 2)
        ]
    );
    // The same seed twice: identical numbers, so the spread is exactly zero.
    for r in rows.iter().filter(|r| !r.runs.is_empty()) {
        assert_eq!(r.auc().unwrap().sd, 0.0, "{r:?}");
        assert_eq!(r.runs[0], AblationRun { seconds_per_epoch: r.runs[0].seconds_per_epoch, ..r.runs[1].clone() });
    }
    assert!(rows[0].seconds_per_epoch().is_none() && rows[2].seconds_per_epoch().is_some());
    let table = markdown_table(&rows);
    assert_eq!(table.lines().count(), 2 + 4, "{table}");
    assert!(table.contains("| TF-IDF | yes | — (nothing to train) | — | — |"), "{table}");

    // Without content: no ImageAlign rows. Cancelling stops with a `cancelled` error.
    let rows = run_ablation(&g, &split, &features(), None, &kinds, &[0], &options(2), &mut |_| true).unwrap();
    assert_eq!(rows.len(), 2);
    let err = run_ablation(
        &g,
        &split,
        &features(),
        None,
        &kinds,
        &[0],
        &options(5),
        &mut |p| !matches!(p.event, AblationEvent::Epoch(r) if r.epoch == 2),
    )
    .unwrap_err();
    assert_eq!(err.kind().name(), "cancelled", "{err}");
    let err = run_ablation(&g, &split, &features(), None, &kinds, &[], &options(2), &mut |_| true).unwrap_err();
    assert_eq!(err.kind().name(), "invalid_input");
}

#[test]
fn encoder_names_parse_and_bad_views_are_errors() {
    for kind in AblationEncoder::ALL {
        assert_eq!(kind.name().parse::<AblationEncoder>().unwrap(), kind);
        assert_eq!(kind.label().parse::<AblationEncoder>().unwrap(), kind);
    }
    assert_eq!("sage".parse::<AblationEncoder>().unwrap(), AblationEncoder::Sage);
    assert!("gcn".parse::<AblationEncoder>().is_err());
    let g = planted(20, 5);
    let view = GraphView::new(&g, &EdgeSplit::all_train(&g), &features()).unwrap();
    for kind in [AblationEncoder::Sage, AblationEncoder::Gat, AblationEncoder::Gatv2] {
        let enc = build(kind, &g, DIM + 1, None, 0, &Device::Cpu).unwrap();
        assert!(enc.forward(&view).is_err(), "{kind}");
    }
    assert!(build(AblationEncoder::Sage, &g, DIM, Some(0), 0, &Device::Cpu).is_err());
}
