//! zipp graph-scale: the persona-mining encoder at scale on a deterministic synthetic
//! power-law graph (`zipp_graph::synthetic`; default 1,000,000 users × 40,000 communities ×
//! 20,000,000 edges): build time and peak memory, then neighbour-sampled training with
//! time per batch and per epoch and peak memory. Prints one JSON line.
//!
//! ```text
//! cargo run --release -p zipp-examples --bin graph-scale -- [options]
//!   --users N --communities N --edges N   graph size (default 1000000 40000 20000000)
//!   --dim D           community feature width (default 384, MiniLM's)
//!   --batch B         training edges per batch (default 262144)
//!   --fanouts F1,F2   neighbours per node, layer 1 and 2 (default 5,5)
//!   --max-batches N   stop the epoch after N batches and extrapolate (default: the whole epoch)
//!   --seed S          graph, features, sampling (default 0)
//! ```
//!
//! Features are random unit vectors (seeded): the point is time and memory, not accuracy.
//! Each batch allocates buffers of hundreds of MB; `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`
//! (glibc ≥ 2.35) backs them with transparent huge pages and takes ~8% off an epoch here
//! (BENCHMARKS.md, "Scale").
#![forbid(unsafe_code)]

use std::time::Instant;

use candle_core::{Device, Tensor};
use zipp_core::rng::{unit_noise, SplitMix};
use zipp_core::Error;
use zipp_graph::model::{Encoder, EncoderConfig, GraphView};
use zipp_graph::sample::MiniBatchOptions;
use zipp_graph::split::EdgeSplit;
use zipp_graph::synthetic::{power_law, PowerLawOptions};
use zipp_graph::train::{train, TrainOptions};

#[path = "peak_memory.rs"]
mod peak_memory;

/// Peak resident memory so far in MiB (NaN, a JSON null, where unknown).
fn peak_mib() -> f64 {
    peak_memory::peak_rss_mib().unwrap_or(f64::NAN)
}

fn parse() -> Result<(PowerLawOptions, usize, MiniBatchOptions), String> {
    let mut g = PowerLawOptions::million();
    let mut dim = 384;
    // At this scale every batch samples ~all communities' neighbourhoods anyway, so large
    // batches amortise that fixed cost (BENCHMARKS.md, "Scale").
    let mut mb = MiniBatchOptions { batch_edges: 262_144, fanouts: [5, 5], max_batches: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--users" => g.users = num(&v)?,
            "--communities" => g.communities = num(&v)?,
            "--edges" => g.edges = num(&v)?,
            "--dim" => dim = num(&v)?,
            "--batch" => mb.batch_edges = num(&v)?,
            "--max-batches" => mb.max_batches = Some(num(&v)?),
            "--seed" => g.seed = num(&v)? as u64,
            "--fanouts" => {
                let f: Vec<usize> = v.split(',').map(num).collect::<Result<_, _>>()?;
                mb.fanouts = f.try_into().map_err(|_| "--fanouts takes two numbers".to_string())?;
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok((g, dim, mb))
}

fn run(g: PowerLawOptions, dim: usize, mb: MiniBatchOptions) -> Result<(), Error> {
    let t0 = Instant::now();
    let graph = power_law(&g)?;
    let build_s = t0.elapsed().as_secs_f64();
    let build_peak = peak_mib();
    eprintln!(
        "graph: {} users, {} communities, {} edges in {build_s:.1} s, peak {build_peak:.0} MiB",
        graph.num_users(),
        graph.num_communities(),
        graph.num_edges()
    );
    let device = Device::Cpu;
    let mut r = SplitMix(g.seed);
    let feats: Vec<f32> = (0..g.communities).flat_map(|_| unit_noise(r.next_u64(), dim)).map(|x| x as f32).collect();
    let features = Tensor::from_vec(feats, (g.communities, dim), &device)?;
    let split = EdgeSplit::all_train(&graph);
    let t1 = Instant::now();
    let view = zipp_core::runtime::compute(&device, || GraphView::new(&graph, &split, &features))?;
    let view_s = t1.elapsed().as_secs_f64();
    eprintln!("view (user features, both adjacencies) in {view_s:.1} s, peak {:.0} MiB", peak_mib());
    let batches_total = graph.num_edges().div_ceil(mb.batch_edges);
    let options = TrainOptions { epochs: 1, eval_every: 0, mini_batch: Some(mb), ..TrainOptions::default() };
    let encoder = Encoder::new(EncoderConfig::new(dim, None), g.seed, &device)?;
    let t2 = Instant::now();
    let trained =
        zipp_core::runtime::compute(&device, || train(encoder, &graph, &split, &view, None, &options, &mut |_| true))?;
    let train_s = t2.elapsed().as_secs_f64();
    let batches_run = mb.max_batches.unwrap_or(batches_total).min(batches_total);
    let epoch_s = train_s / batches_run as f64 * batches_total as f64;
    println!(
        "{}",
        serde_json::json!({
            "users": graph.num_users(), "communities": graph.num_communities(), "edges": graph.num_edges(),
            "dim": dim, "batch_edges": mb.batch_edges, "fanouts": mb.fanouts, "threads": zipp_core::runtime::num_threads(),
            "build_s": build_s, "build_peak_mib": build_peak, "view_s": view_s,
            "batches_run": batches_run, "batches_per_epoch": batches_total, "train_s": train_s,
            "s_per_batch": train_s / batches_run as f64, "epoch_s": epoch_s,
            "epoch_extrapolated": batches_run < batches_total, "loss": trained.history[0].loss,
            "peak_mib": peak_mib(),
        })
    );
    Ok(())
}

fn main() {
    let (g, dim, mb) = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(g, dim, mb) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
