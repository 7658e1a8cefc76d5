//! zipp mine-personas: persona mining end to end on MovieLens 100K (SPEC §6) — graph →
//! GATv2 encoder → attention evidence → persona. Trains the encoder (link prediction +
//! ImageAlign) on a per-user 85/5/10 split, reports held-out AUC and Hit@10, then mines
//! personas for a few users and prints each with its evidence.
//!
//! ```text
//! cargo run --release -p zipp-examples --bin mine-personas -- [options]
//!   --epochs N        most training epochs (default 100)
//!   --lambda L        ImageAlign weight λ (default 0.5; 0 = link prediction only)
//!   --lr R            AdamW learning rate (default 0.005)
//!   --seed S          initialisation and negatives (default 0)
//!   --split-seed S    the per-user 85/5/10 split (default 0)
//!   --users N         personas to print (default 3)
//!   --out FILE        write every user's persona as JSONL (default: not written)
//!   --checkpoint FILE write the trained weights (safetensors, PyG names)
//!   --weights FILE    load trained weights (zipp or PyG safetensors) instead of training
//!   --export DIR      also write graph, split and features in the PyTorch Geometric layout
//!                     (what benches/reference/gatv2_pyg.py epoch --graph DIR trains on)
//!   --embeddings DIR  write the evaluated encoder's embeddings as DIR/z_u.npy [U, out] and
//!                     DIR/z_s.npy [S, out] (f32; benches/reference/pyg_round_trip.sh compares
//!                     them with PyG's for the same weights)
//!   --models DIR      models folder (default: $ZIPP_MODELS_DIR or ~/.cache/zipp/models)
//! ```
//!
//! Community features are the MiniLM embeddings of each movie's title and genres. MovieLens
//! has no images: ImageAlign's "content" is the mean of those same MiniLM embeddings over the
//! user's training ratings (text, not images), as the docs of `zipp_graph::train` say.
#![forbid(unsafe_code)]

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use candle_core::Device;
use zipp_core::embed::MiniLm;
use zipp_core::models::{default_models_dir, ModelSource};
use zipp_core::tokenize::ClipTokenizer;
use zipp_core::Error;
use zipp_eval::datasets::movielens::{MovieLens, DATA_DIR};
use zipp_graph::evidence::{user_evidence, EvidenceOptions};
use zipp_graph::features::{community_features, mean_over_training_edges};
use zipp_graph::model::{Encoder, EncoderConfig, GraphView};
use zipp_graph::split::{EdgeSplit, Part, SplitOptions};
use zipp_graph::train::{evaluate, train, TrainOptions};
use zipp_lm::verbalize::{TemplateVerbalizer, Verbalizer};

struct Args {
    epochs: usize,
    lambda: f64,
    lr: f64,
    seed: u64,
    split_seed: u64,
    users: usize,
    out: Option<PathBuf>,
    checkpoint: Option<PathBuf>,
    export: Option<PathBuf>,
    weights: Option<PathBuf>,
    embeddings: Option<PathBuf>,
    models: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        epochs: 100,
        lambda: 0.5,
        lr: TrainOptions::default().lr,
        seed: 0,
        split_seed: 0,
        users: 3,
        out: None,
        checkpoint: None,
        export: None,
        weights: None,
        embeddings: None,
        models: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--epochs" => a.epochs = value()?.parse().map_err(|e| format!("--epochs: {e}"))?,
            "--lambda" => a.lambda = value()?.parse().map_err(|e| format!("--lambda: {e}"))?,
            "--lr" => a.lr = value()?.parse().map_err(|e| format!("--lr: {e}"))?,
            "--split-seed" => a.split_seed = value()?.parse().map_err(|e| format!("--split-seed: {e}"))?,
            "--seed" => a.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--users" => a.users = value()?.parse().map_err(|e| format!("--users: {e}"))?,
            "--out" => a.out = Some(value()?.into()),
            "--checkpoint" => a.checkpoint = Some(value()?.into()),
            "--weights" => a.weights = Some(value()?.into()),
            "--export" => a.export = Some(value()?.into()),
            "--embeddings" => a.embeddings = Some(value()?.into()),
            "--models" => a.models = Some(value()?.into()),
            "-h" | "--help" => {
                return Err("usage: mine-personas [--epochs N] [--lambda L] [--lr R] [--seed S] [--split-seed S] [--users N] [--out FILE] \
                            [--checkpoint FILE] [--weights FILE] [--export DIR] [--embeddings DIR] [--models DIR]"
                    .into())
            }
            other => return Err(format!("unknown option {other} (try --help)")),
        }
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
    let split = EdgeSplit::new(&graph, SplitOptions { validation: 0.05, test: 0.1, seed: a.split_seed })?;
    let minilm = MiniLm::load(&ModelSource::Dir(models.join("all-MiniLM-L6-v2")))?;
    let device = Device::Cpu;
    let t1 = Instant::now();
    let (features, content) = zipp_core::runtime::compute(&device, || -> Result<_, Error> {
        let f = community_features(&minilm, &graph, &device, &mut |_, _| true)?;
        let c = mean_over_training_edges(&graph, &split, &f)?;
        Ok((f, c))
    })?;
    eprintln!(
        "features: {} movie texts embedded with MiniLM ({:.2} s)",
        graph.num_communities(),
        t1.elapsed().as_secs_f64()
    );

    if let Some(dir) = &a.export {
        let f = features.flatten_all()?.to_vec1::<f32>()?;
        let c = content.flatten_all()?.to_vec1::<f32>()?;
        zipp_graph::export::export_pyg(&graph, &split, Some((&f, 384)), Some((&c, 384)), dir)?;
        eprintln!("exported the graph, split and features to {}", dir.display());
    }
    let with_align = a.lambda > 0.0;
    let config = EncoderConfig::new(384, with_align.then_some(384));
    let options = TrainOptions {
        epochs: a.epochs,
        lambda: a.lambda,
        lr: a.lr,
        seed: a.seed,
        checkpoint: a.checkpoint.clone(),
        ..TrainOptions::default()
    };
    let (trained, view) = zipp_core::runtime::compute(&device, || -> Result<_, Error> {
        let view = GraphView::new(&graph, &split, &features)?;
        if let Some(path) = &a.weights {
            let encoder = Encoder::load(path, &device)?;
            eprintln!("loaded {} (no training)", path.display());
            let history = vec![zipp_graph::train::EpochReport {
                epoch: 0,
                loss: f64::NAN,
                link_loss: f64::NAN,
                align_loss: None,
                validation: None,
                seconds: 0.0,
            }];
            return Ok((zipp_graph::train::Trained { encoder, history, best_epoch: 0 }, view));
        }
        let encoder = Encoder::new(config, a.seed, &device)?;
        let trained = train(encoder, &graph, &split, &view, with_align.then_some(&content), &options, &mut |r| {
            if let Some(v) = r.validation {
                eprintln!(
                    "epoch {:>3}  loss {:.4}  validation AUC {:.4}  Hit@10 {:.4}  {:.3} s",
                    r.epoch, r.loss, v.auc, v.hit10, r.seconds
                );
            }
            true
        })?;
        Ok((trained, view))
    })?;
    if let Some(dir) = &a.embeddings {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io { path: dir.clone(), source: e })?;
        let (z_u, z_s) = zipp_core::runtime::compute(&device, || trained.encoder.forward(&view))?;
        z_u.write_npy(dir.join("z_u.npy"))?;
        z_s.write_npy(dir.join("z_s.npy"))?;
        eprintln!("wrote the embeddings to {}", dir.display());
    }
    let secs: Vec<f64> = trained.history.iter().map(|r| r.seconds).collect();
    let mut sorted = secs.clone();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        sorted.push(f64::NAN);
    }
    let test =
        zipp_core::runtime::compute(&device, || evaluate(&trained.encoder, &view, &graph, &split, Part::Test, a.seed))?;
    println!(
        "{}",
        serde_json::json!({
            "impl": "zipp", "threads": zipp_core::runtime::num_threads(), "epochs": secs.len(),
            "best_epoch": trained.best_epoch, "epoch_s_median": sorted[sorted.len() / 2],
            "epoch_s_min": sorted[0], "epoch_s_max": sorted[sorted.len() - 1],
            "test_auc": test.auc, "hit10": test.hit10, "test_edges": test.edges, "lambda": a.lambda,
        })
    );

    // Evidence → persona, for every user (printed for the first few).
    let counter = ClipTokenizer::from_file(models.join("clip-bpe").join("bpe_simple_vocab_16e6.txt.gz"))?;
    let attention = zipp_core::runtime::compute(&device, || trained.encoder.user_attention(&view))?;
    let verbalizer = TemplateVerbalizer::default();
    let mut out = match &a.out {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| Error::Io { path: p.clone(), source: e })?,
        )),
        None => None,
    };
    for u in 0..graph.num_users() {
        if u >= a.users && out.is_none() {
            break;
        }
        let evidence = user_evidence(&graph, &view, &attention, u, &counter, &EvidenceOptions::default())?;
        let persona = verbalizer.verbalize(&evidence)?.persona;
        if u < a.users {
            println!("\n{} — top evidence (last-layer attention):", persona.id);
            for item in evidence.items.iter().take(5) {
                println!("  {:.3}  {} ({})", item.weight, item.name, item.description);
            }
            println!("persona: {}", persona.to_json_string(false)?);
        }
        if let (Some(w), Some(p)) = (out.as_mut(), &a.out) {
            writeln!(w, "{}", persona.to_json_string(false)?).map_err(|e| Error::Io { path: p.clone(), source: e })?;
        }
    }
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
