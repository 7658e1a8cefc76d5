//! zipp graph-ablation: the encoder ablation of SPEC §6 on MovieLens 100K — TF-IDF,
//! LightGCN, GraphSAGE, GAT and GATv2, each without and with ImageAlign, over several seeds,
//! on the same per-user 85/5/10 split (seed 0) and the same negatives. Prints a markdown
//! table of test AUC and Hit@10 (mean ± s.d. over seeds) and seconds per epoch, then the
//! command line that produced it. Progress goes to stderr.
//!
//! ```text
//! cargo run --release -p zipp-examples --bin graph-ablation -- [options]
//!   --seeds N         runs per encoder, seeds 0..N (default 3)
//!   --epochs N        training epochs (default 100; the best validation epoch is kept)
//!   --encoders a,b,…  tfidf,lightgcn,graphsage,gat,gatv2 (default: all)
//!   --lambda L        ImageAlign weight λ of the "with" rows (default 0.5)
//!   --lr R            AdamW learning rate, every encoder (default 0.005)
//!   --models DIR      models folder (default: $ZIPP_MODELS_DIR or ~/.cache/zipp/models)
//! ```
//!
//! Community features and ImageAlign's content are those of `mine-personas`: MiniLM
//! embeddings of each movie's title and genres, and their mean over the user's training
//! ratings (text, not images: MovieLens has none). TF-IDF reads the same movie texts.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Instant;

use candle_core::Device;
use zipp_core::embed::MiniLm;
use zipp_core::models::{default_models_dir, ModelSource};
use zipp_core::Error;
use zipp_eval::datasets::movielens::{MovieLens, DATA_DIR};
use zipp_graph::ablation::{markdown_table, run_ablation, AblationEncoder, AblationEvent};
use zipp_graph::features::{community_features, mean_over_training_edges};
use zipp_graph::split::{EdgeSplit, SplitOptions};
use zipp_graph::train::TrainOptions;

const USAGE: &str =
    "usage: graph-ablation [--seeds N] [--epochs N] [--encoders a,b,…] [--lambda L] [--lr R] [--models DIR]";

struct Args {
    seeds: u64,
    epochs: usize,
    encoders: Vec<AblationEncoder>,
    lambda: f64,
    lr: f64,
    models: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        seeds: 3,
        epochs: 100,
        encoders: AblationEncoder::ALL.to_vec(),
        lambda: 0.5,
        lr: TrainOptions::default().lr,
        models: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--seeds" => a.seeds = value()?.parse().map_err(|e| format!("--seeds: {e}"))?,
            "--epochs" => a.epochs = value()?.parse().map_err(|e| format!("--epochs: {e}"))?,
            "--encoders" => {
                a.encoders =
                    value()?.split(',').map(str::parse).collect::<Result<_, Error>>().map_err(|e| e.to_string())?
            }
            "--lambda" => a.lambda = value()?.parse().map_err(|e| format!("--lambda: {e}"))?,
            "--lr" => a.lr = value()?.parse().map_err(|e| format!("--lr: {e}"))?,
            "--models" => a.models = Some(value()?.into()),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown option {other} (try --help)")),
        }
    }
    if a.seeds == 0 || a.epochs == 0 || a.encoders.is_empty() {
        return Err(format!("--seeds, --epochs and --encoders must not be empty or zero\n{USAGE}"));
    }
    Ok(a)
}

fn run(a: Args) -> Result<(), Error> {
    let models = a.models.clone().unwrap_or_else(default_models_dir);
    let t0 = Instant::now();
    let data = MovieLens::load(&models.join(DATA_DIR))?;
    let graph = zipp_graph::movielens::graph(&data)?;
    eprintln!(
        "graph: {} users × {} movies, {} ratings ({:.2} s)",
        graph.num_users(),
        graph.num_communities(),
        graph.num_edges(),
        t0.elapsed().as_secs_f64()
    );
    let split = EdgeSplit::new(&graph, SplitOptions { validation: 0.05, test: 0.1, seed: 0 })?;
    let minilm = MiniLm::load(&ModelSource::Dir(models.join("all-MiniLM-L6-v2")))?;
    let device = Device::Cpu;
    let (features, content) = zipp_core::runtime::compute(&device, || -> Result<_, Error> {
        let f = community_features(&minilm, &graph, &device, &mut |_, _| true)?;
        let c = mean_over_training_edges(&graph, &split, &f)?;
        Ok((f, c))
    })?;
    eprintln!(
        "features: {} movie texts embedded with MiniLM ({:.2} s)",
        graph.num_communities(),
        t0.elapsed().as_secs_f64()
    );

    let options = TrainOptions { epochs: a.epochs, lambda: a.lambda, lr: a.lr, ..TrainOptions::default() };
    let seeds: Vec<u64> = (0..a.seeds).collect();
    let started = Instant::now();
    let rows = zipp_core::runtime::compute(&device, || {
        run_ablation(&graph, &split, &features, Some(&content), &a.encoders, &seeds, &options, &mut |p| {
            let align = if p.image_align { " + ImageAlign" } else { "" };
            match p.event {
                AblationEvent::Epoch(r) if r.epoch % 25 == 0 => eprintln!(
                    "[{:>6.0} s] {}{align} seed {}: epoch {:>3} loss {:.4}{}",
                    started.elapsed().as_secs_f64(),
                    p.encoder,
                    p.seed,
                    r.epoch,
                    r.loss,
                    r.validation.map(|v| format!("  validation AUC {:.4}", v.auc)).unwrap_or_default()
                ),
                AblationEvent::Epoch(_) => {}
                AblationEvent::Done(run) => eprintln!(
                    "[{:>6.0} s] {}{align} seed {}: test AUC {:.4}  Hit@10 {:.4}  best epoch {}  {}",
                    started.elapsed().as_secs_f64(),
                    p.encoder,
                    p.seed,
                    run.test.auc,
                    run.test.hit10,
                    run.best_epoch,
                    run.seconds_per_epoch.map(|s| format!("{s:.3} s/epoch")).unwrap_or_else(|| "no training".into())
                ),
            }
            true
        })
    })?;
    println!("{}", markdown_table(&rows));
    println!(
        "MovieLens 100K, {} users × {} movies; per-user 85/5/10 split (seed 0), {} test edges; {} epochs, lr {}, \
         λ {}, {} threads; total {:.0} s.",
        graph.num_users(),
        graph.num_communities(),
        rows.iter().find_map(|r| r.runs.first()).map_or(0, |r| r.test.edges),
        a.epochs,
        a.lr,
        a.lambda,
        zipp_core::runtime::num_threads(),
        started.elapsed().as_secs_f64()
    );
    let command: Vec<String> = std::env::args().collect();
    println!("\ncommand: {}", command.join(" "));
    Ok(())
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
