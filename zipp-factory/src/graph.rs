//! Persona mining as JSON (SPEC §6): [`MiningSpec`] and the driver both bindings use; and
//! building a graph too large for memory into an export folder: [`GraphBuildSpec`] and
//! [`build_graph`] (end of this module docs).
//!
//! A spec names an activity graph — edge files (`.jsonl`, `.csv`, `.parquet`, see
//! `zipp_graph::io`) with an optional communities file, or the provisioned MovieLens 100K
//! graph — and how to mine it:
//!
//! ```json
//! {"edges": ["comments.jsonl"], "communities": "subreddits.jsonl",
//!  "split": {"validation": 0.05, "test": 0.1, "seed": 0},
//!  "encoder": {"hidden": 64, "heads": 2, "out": 64},
//!  "train": {"epochs": 100, "lr": 0.005, "weight_decay": 0.01, "lambda": 0.5, "tau": 0.07,
//!            "seed": 0, "eval_every": 5, "patience": 0, "mini_batch": null},
//!  "content": "mean_of_communities",
//!  "evidence": {"token_budget": 512, "snippets_per_community": 3},
//!  "verbalizer": "template", "embedder": "minilm", "checkpoint": "encoder.safetensors"}
//! ```
//!
//! Only the graph is required (`edges`, or `"movielens": true`); every other field defaults
//! as shown (`content` to none: link prediction alone). `"mini_batch": {"batch_edges": 4096,
//! "fanouts": [10, 10], "max_batches": null}` (those are its defaults) trains on
//! neighbour-sampled mini-batches instead of the full graph, for graphs too large for a
//! full-batch step. `"weights": "encoder.safetensors"`
//! loads a trained encoder (zipp's or PyTorch Geometric's, `zipp_graph::model::Encoder::load`)
//! instead of training; `encoder`, `train`, `content` and `checkpoint` are then refused,
//! since the weights fix the sizes and nothing is trained.
//!
//! [`mine`] runs graph → split → community features (the embedder) → GATv2 training (or the
//! loaded weights) → held-out AUC and Hit@10 → last-layer attention → per-user evidence under
//! the token budget (counted by the CLIP BPE counter of [`Models`], as every prompt budget in
//! zipp is) → the verbalizer → one [`Persona`] per user, in the graph's user order. A user
//! whose evidence or persona cannot be made (no training edge, no community name within the
//! budget, a language model that fails) is a row with its error, not a failed run.
//!
//! The work runs on a zipp thread ([`crate::job`]); its [`MiningProgress`] events reach the
//! calling thread, whose callback returning `false` (or whose `interrupted()` returning
//! `true`) cancels at the next check — within one epoch (one mini-batch when training on
//! mini-batches), one batch of embedded texts, one user — with [`Error::Cancelled`].
//!
//! ## Building a graph on disk
//! A [`GraphBuildSpec`] names edge files and an output folder; [`build_graph`] writes the
//! graph there in PyTorch Geometric's layout (`zipp_graph::export`) with
//! `zipp_graph::ondisk::build_on_disk`, in memory bounded by `memory_budget_mb` however
//! large the graph (the id maps aside), and returns a [`GraphBuildReport`]:
//!
//! ```json
//! {"edges": ["comments.jsonl"], "communities": "subreddits.jsonl", "out": "graph-export",
//!  "split": {"validation": 0.05, "test": 0.1, "seed": 0}, "memory_budget_mb": 1024,
//!  "skip_bad_rows": false, "max_snippets_per_edge": 16, "format": "jsonl",
//!  "scratch_dir": "/big/disk/tmp"}
//! ```
//!
//! `edges` and `out` are required; `split` absent puts every edge in training, `format`
//! absent tells each file's from its extension, `scratch_dir` absent puts the scratch
//! files in a folder inside `out`. Progress ([`GraphBuildProgress`]) and cancellation work
//! as for [`mine`].

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use candle_core::Device;
use serde::{Deserialize, Serialize};
use zipp_core::embed::Embedder;
use zipp_core::error::{Error, Result};
use zipp_core::lm::Cancel;
use zipp_core::tokenize::TokenCounter;
use zipp_core::Persona;
use zipp_graph::evidence::{user_evidence, EvidenceOptions};
use zipp_graph::features::{community_features, mean_over_training_edges};
use zipp_graph::graph::MAX_SNIPPETS_PER_EDGE;
use zipp_graph::io::{load_edges_with_progress, EdgeFormat, LoadOptions, LoadProgress};
use zipp_graph::metrics::LinkMetrics;
use zipp_graph::model::{Encoder, EncoderConfig, GraphView};
use zipp_graph::ondisk::{build_on_disk_with_progress, OnDiskOptions, OnDiskStats};
use zipp_graph::sample::MiniBatchOptions;
use zipp_graph::split::{EdgeSplit, Part, SplitOptions};
use zipp_graph::train::{evaluate, train_observed, TrainOptions};
use zipp_graph::BipartiteGraph;
use zipp_lm::verbalize::{ActivityEvidence, VerbalizeEvidence, Verbalizer};

use crate::job::{drive, Job};
use crate::lm::VerbalizerSpec;
use crate::models::Models;

/// The text embedder of the community features, a model of [`Models`] by name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EmbedderName {
    /// all-MiniLM-L6-v2 (384 dimensions), the one of retrieval and scoring.
    #[default]
    Minilm,
}

/// What ImageAlign aligns each user's embedding to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ContentSpec {
    /// The weighted mean of the community features over the user's *training* edges (text,
    /// not images; held-out edges never contribute).
    MeanOfCommunities,
}

/// `{"validation": 0.05, "test": 0.1, "seed": 0}`: fractions of each user's edges held out.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SplitSpec {
    pub validation: f64,
    pub test: f64,
    pub seed: u64,
}

impl Default for SplitSpec {
    fn default() -> Self {
        let d = SplitOptions::default();
        SplitSpec { validation: d.validation, test: d.test, seed: d.seed }
    }
}

impl SplitSpec {
    fn options(&self) -> SplitOptions {
        SplitOptions { validation: self.validation, test: self.test, seed: self.seed }
    }

    /// Fractions in [0, 1) summing to less than 1; `spec` names the spec in the message.
    fn validate(&self, spec: &str) -> Result<()> {
        let fraction = |f: f64| f.is_finite() && (0.0..1.0).contains(&f);
        if !fraction(self.validation) || !fraction(self.test) || self.validation + self.test >= 1.0 {
            return Err(Error::InvalidInput(format!(
                "{spec}: split: validation {} and test {} must be in [0, 1) and sum to less than 1",
                self.validation, self.test
            )));
        }
        Ok(())
    }
}

/// `{"hidden": 64, "heads": 2, "out": 64}`: the GATv2 encoder's sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EncoderSpec {
    pub hidden: usize,
    pub heads: usize,
    pub out: usize,
}

impl Default for EncoderSpec {
    fn default() -> Self {
        let d = EncoderConfig::new(1, None);
        EncoderSpec { hidden: d.hidden, heads: d.heads, out: d.out }
    }
}

/// Training options (`zipp_graph::train::TrainOptions`, whose defaults they take).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSpec {
    pub epochs: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub lambda: f64,
    pub tau: f64,
    pub seed: u64,
    pub eval_every: usize,
    pub patience: usize,
    /// Neighbour-sampled mini-batches (`zipp_graph::sample`) instead of full batch: for
    /// graphs whose full-batch activations do not fit in memory.
    pub mini_batch: Option<MiniBatchSpec>,
}

/// Mini-batch settings (`zipp_graph::sample::MiniBatchOptions`, whose defaults they take):
/// `{"batch_edges": 4096, "fanouts": [10, 10], "max_batches": null}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MiniBatchSpec {
    /// Training edges per batch (each with a negative).
    pub batch_edges: usize,
    /// Neighbours kept per node, layer 1 and layer 2.
    pub fanouts: [usize; 2],
    /// Stop each epoch after this many batches (null: every training edge once).
    pub max_batches: Option<usize>,
}

impl Default for MiniBatchSpec {
    fn default() -> Self {
        let d = MiniBatchOptions::default();
        MiniBatchSpec { batch_edges: d.batch_edges, fanouts: d.fanouts, max_batches: d.max_batches }
    }
}

impl Default for TrainSpec {
    fn default() -> Self {
        let d = TrainOptions::default();
        TrainSpec {
            epochs: d.epochs,
            lr: d.lr,
            weight_decay: d.weight_decay,
            lambda: d.lambda,
            tau: d.tau,
            seed: d.seed,
            eval_every: d.eval_every,
            patience: d.patience,
            mini_batch: None,
        }
    }
}

impl TrainSpec {
    fn options(&self, checkpoint: Option<PathBuf>) -> TrainOptions {
        TrainOptions {
            epochs: self.epochs,
            lr: self.lr,
            weight_decay: self.weight_decay,
            lambda: self.lambda,
            tau: self.tau,
            seed: self.seed,
            eval_every: self.eval_every,
            patience: self.patience,
            checkpoint,
            mini_batch: self.mini_batch.map(|m| MiniBatchOptions {
                batch_edges: m.batch_edges,
                fanouts: m.fanouts,
                max_batches: m.max_batches,
            }),
        }
    }
}

/// `{"token_budget": 512, "snippets_per_community": 3}`: how much evidence per user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvidenceSpec {
    pub token_budget: usize,
    pub snippets_per_community: usize,
}

impl Default for EvidenceSpec {
    fn default() -> Self {
        let d = EvidenceOptions::default();
        EvidenceSpec { token_budget: d.token_budget, snippets_per_community: d.snippets_per_community }
    }
}

/// Persona mining as JSON (module documentation).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MiningSpec {
    /// Edge files, read in order as one table.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub edges: Vec<PathBuf>,
    /// A communities file (JSONL `{"name", "description"}`) describing the communities.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub communities: Option<PathBuf>,
    /// The provisioned MovieLens 100K graph (users × movies) instead of edge files.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub movielens: bool,
    pub split: SplitSpec,
    /// Absent: the defaults (refused with `weights`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoder: Option<EncoderSpec>,
    /// Absent: the defaults (refused with `weights`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train: Option<TrainSpec>,
    pub evidence: EvidenceSpec,
    #[serde(deserialize_with = "crate::lm::named_or_object_field")]
    pub verbalizer: VerbalizerSpec,
    pub embedder: EmbedderName,
    /// Where to write the trained weights (safetensors, PyG's names).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<PathBuf>,
    /// Trained weights to load instead of training.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weights: Option<PathBuf>,
    /// ImageAlign's content; absent: none (link prediction alone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<ContentSpec>,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidInput(format!("mining spec: {}", message.into()))
}

impl MiningSpec {
    /// Parses a spec (errors located by line, column and field) and validates it.
    pub fn from_json(json: &str) -> Result<MiningSpec> {
        let spec: MiningSpec = zipp_core::json::from_str(json, "mining spec")?;
        spec.validate()?;
        Ok(spec)
    }

    /// The spec as compact JSON (defaults written out).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("mining spec serialisation is infallible")
    }

    /// Checks everything that can be checked without reading a file or loading a model.
    pub fn validate(&self) -> Result<()> {
        match (self.edges.is_empty(), self.movielens) {
            (true, false) => return Err(invalid("give `edges` (edge files) or `\"movielens\": true`")),
            (false, true) => return Err(invalid("give either `edges` or `\"movielens\": true`, not both")),
            _ => {}
        }
        if self.movielens && self.communities.is_some() {
            return Err(invalid("`communities` describes edge files' communities; MovieLens has its own"));
        }
        if self.movielens && !cfg!(feature = "movielens") {
            return Err(invalid("this build has no MovieLens graph (zipp-factory's `movielens` feature)"));
        }
        let paths = self.edges.iter().chain(&self.communities).chain(&self.checkpoint).chain(&self.weights);
        if paths.into_iter().any(|p| p.as_os_str().is_empty()) {
            return Err(invalid("a file path is empty"));
        }
        self.split.validate("mining spec")?;
        if self.weights.is_some() {
            let fixed = [
                ("encoder", self.encoder.is_some()),
                ("train", self.train.is_some()),
                ("content", self.content.is_some()),
                ("checkpoint", self.checkpoint.is_some()),
            ];
            if let Some((field, _)) = fixed.iter().find(|(_, given)| *given) {
                return Err(invalid(format!(
                    "`{field}` is for training; with `weights` the encoder is loaded as it is, not trained"
                )));
            }
        }
        let e = self.encoder.unwrap_or_default();
        if e.hidden == 0 || e.heads == 0 || e.out == 0 {
            return Err(invalid(format!(
                "encoder: hidden {}, heads {}, out {} must be positive",
                e.hidden, e.heads, e.out
            )));
        }
        let t = self.train.clone().unwrap_or_default();
        if t.epochs == 0 {
            return Err(invalid("train: epochs must be at least 1 (load trained `weights` to skip training)"));
        }
        // zipp-graph's own check, here before the graph loads and the features are embedded.
        t.options(None).check().map_err(|e| match e {
            Error::InvalidInput(m) => invalid(m),
            other => other,
        })?;
        if self.evidence.token_budget == 0 {
            return Err(invalid("evidence: token_budget must be positive"));
        }
        self.verbalizer.validate()
    }
}

/// A stage of [`mine`], for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MiningStage {
    /// Reading the edge files (`done`: rows read; `total`: 0 until the end, unknown).
    Load,
    /// Embedding the communities' texts (`done` of `total` communities).
    Features,
    /// Training (`done` of `total` epochs, with the loss and, on evaluation epochs, the
    /// validation AUC).
    Train,
    /// Test metrics (`done` of `total` = 1).
    Evaluate,
    /// Evidence and personas (`done` of `total` users).
    Evidence,
}

impl MiningStage {
    /// The stage's stable name (`"load"`, `"features"`, `"train"`, `"evaluate"`,
    /// `"evidence"`).
    pub fn name(self) -> &'static str {
        match self {
            MiningStage::Load => "load",
            MiningStage::Features => "features",
            MiningStage::Train => "train",
            MiningStage::Evaluate => "evaluate",
            MiningStage::Evidence => "evidence",
        }
    }
}

/// One progress report of [`mine`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MiningProgress {
    pub stage: MiningStage,
    pub done: u64,
    pub total: u64,
    /// The epoch's training loss ([`MiningStage::Train`]).
    pub loss: Option<f64>,
    /// The epoch's validation AUC, on evaluation epochs ([`MiningStage::Train`]).
    pub auc: Option<f64>,
}

impl MiningProgress {
    fn at(stage: MiningStage, done: usize, total: usize) -> MiningProgress {
        MiningProgress { stage, done: done as u64, total: total as u64, loss: None, auc: None }
    }
}

/// AUC, Hit@10 and the number of held-out edges they were measured on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LinkScores {
    pub auc: f64,
    pub hit10: f64,
    pub edges: usize,
}

impl From<LinkMetrics> for LinkScores {
    fn from(m: LinkMetrics) -> LinkScores {
        LinkScores { auc: m.auc, hit10: m.hit10, edges: m.edges }
    }
}

/// How the encoder did: test metrics (absent when the split holds no test edge), epochs run,
/// the epoch whose weights were kept, the median seconds per epoch (absent when the weights
/// were loaded), and the whole run's wall time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MiningMetrics {
    pub test: Option<LinkScores>,
    pub trained: bool,
    pub epochs: usize,
    pub best_epoch: usize,
    pub seconds_per_epoch: Option<f64>,
    pub seconds: f64,
}

/// One epoch of the training history (`zipp_graph::train::EpochReport`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EpochRow {
    pub epoch: usize,
    pub loss: f64,
    pub link_loss: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub align_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation: Option<LinkScores>,
    pub seconds: f64,
}

/// The graph that was mined and its split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GraphSummary {
    pub users: usize,
    pub communities: usize,
    pub edges: usize,
    pub train_edges: usize,
    pub validation_edges: usize,
    pub test_edges: usize,
}

/// A mined persona with the evidence it was written from.
#[derive(Debug, Clone, PartialEq)]
pub struct Mined {
    pub persona: Persona,
    /// The ranked communities (weights: last-layer attention) and snippets under the budget.
    pub evidence: ActivityEvidence,
    /// How the verbalizer wrote the persona.
    pub verbalization: VerbalizeEvidence,
}

/// One user of the graph: their persona, or why there is none.
#[derive(Debug)]
pub struct MinedUser {
    pub user: String,
    pub outcome: Result<Mined>,
}

/// A user as JSON: `{"user", "persona", "evidence", "verbalization"}` or `{"user", "error":
/// {"kind", "message"}}`.
impl Serialize for MinedUser {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Row<'a> {
            user: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            persona: Option<&'a Persona>,
            #[serde(skip_serializing_if = "Option::is_none")]
            evidence: Option<&'a ActivityEvidence>,
            #[serde(skip_serializing_if = "Option::is_none")]
            verbalization: Option<&'a VerbalizeEvidence>,
            #[serde(skip_serializing_if = "Option::is_none")]
            error: Option<RowError>,
        }
        #[derive(Serialize)]
        struct RowError {
            kind: &'static str,
            message: String,
        }
        let row = match &self.outcome {
            Ok(m) => Row {
                user: &self.user,
                persona: Some(&m.persona),
                evidence: Some(&m.evidence),
                verbalization: Some(&m.verbalization),
                error: None,
            },
            Err(e) => Row {
                user: &self.user,
                persona: None,
                evidence: None,
                verbalization: None,
                error: Some(RowError { kind: e.kind().name(), message: e.to_string() }),
            },
        };
        row.serialize(serializer)
    }
}

/// What [`mine`] returns; [`MiningResult::to_json`] is what C receives:
/// `{"personas": [<MinedUser>…], "metrics": {…}, "history": [{…}…], "graph": {…}}`.
#[derive(Debug, Serialize)]
pub struct MiningResult {
    /// Every user, in the graph's user order.
    pub personas: Vec<MinedUser>,
    pub metrics: MiningMetrics,
    /// One row per training epoch (empty when the weights were loaded).
    pub history: Vec<EpochRow>,
    pub graph: GraphSummary,
}

impl MiningResult {
    /// The result as compact JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::Internal(format!("mining result as JSON: {e}")))
    }

    /// The mined personas (users with an error left out), in user order.
    pub fn mined(&self) -> impl Iterator<Item = &Mined> {
        self.personas.iter().filter_map(|u| u.outcome.as_ref().ok())
    }

    /// Writes the mined personas as JSONL (zipp's persona format, one per line).
    pub fn write_jsonl(&self, path: &Path) -> Result<()> {
        // Into memory first, so a failure to write names the file (the writer API cannot).
        let mut text = Vec::new();
        zipp_core::persona::write_jsonl(&mut text, self.mined().map(|m| &m.persona))?;
        std::fs::write(path, text).map_err(|e| Error::io(path, e))
    }
}

/// A spec with its models resolved: everything [`Miner::run`] needs, owned, so the run can
/// move to a worker thread.
pub struct Miner {
    spec: MiningSpec,
    embedder: Arc<dyn Embedder>,
    counter: Arc<dyn TokenCounter>,
    verbalizer: Arc<dyn Verbalizer>,
    /// The encoder of `weights`, loaded up front.
    loaded: Option<Encoder>,
    models_root: PathBuf,
}

impl std::fmt::Debug for Miner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Miner").field("spec", &self.spec).field("embedder", &self.embedder.id()).finish()
    }
}

/// Cancelled, unless the flag is clear.
fn check(cancel: &Cancel, what: &str) -> Result<()> {
    if cancel.is_cancelled() {
        Err(Error::Cancelled(format!("persona mining cancelled {what}")))
    } else {
        Ok(())
    }
}

/// The median of `values` (`None` when empty).
fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

impl Miner {
    /// Validates `spec`, checks that its input files exist, and loads the models: the
    /// embedder, the token counter and the verbalizer (once, shared through `models`) and
    /// the encoder's `weights` when given.
    pub fn new(spec: MiningSpec, models: &Models) -> Result<Miner> {
        spec.validate()?;
        // A missing input is reported before any model loads (and not after the embedding).
        for path in spec.edges.iter().chain(&spec.communities) {
            std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        }
        let embedder = match spec.embedder {
            EmbedderName::Minilm => models.embedder()?,
        };
        let loaded = match &spec.weights {
            Some(path) => {
                let encoder = Encoder::load(path, &Device::Cpu)?;
                let (want, got) = (embedder.dim(), encoder.config().feature_dim);
                if want != got {
                    return Err(invalid(format!(
                        "the weights in {} take {got}-dimensional community features; the embedder makes {want}",
                        path.display()
                    )));
                }
                Some(encoder)
            }
            None => None,
        };
        let counter = models.token_counter()?;
        let verbalizer = spec.verbalizer.build(models)?;
        Ok(Miner { spec, embedder, counter, verbalizer, loaded, models_root: models.root().to_path_buf() })
    }

    /// The spec it runs.
    pub fn spec(&self) -> &MiningSpec {
        &self.spec
    }

    fn graph(&self, cancel: &Cancel, emit: &mut (dyn FnMut(MiningProgress) + Send)) -> Result<BipartiteGraph> {
        if self.spec.movielens {
            let graph = self.movielens()?;
            // Read in one go: one report, its ratings as the rows.
            emit(MiningProgress::at(MiningStage::Load, graph.num_edges(), graph.num_edges()));
            return Ok(graph);
        }
        let options = LoadOptions { communities: self.spec.communities.clone(), ..LoadOptions::default() };
        // The loader's callback is `Fn`: the emitter is borrowed mutably inside it.
        let emit = RefCell::new(emit);
        let (graph, stats) = load_edges_with_progress(&self.spec.edges, &options, &|p| {
            (emit.borrow_mut())(MiningProgress::at(MiningStage::Load, p.rows_read as usize, 0));
            !cancel.is_cancelled()
        })?;
        let rows = stats.rows_read as usize;
        (emit.borrow_mut())(MiningProgress::at(MiningStage::Load, rows, rows));
        Ok(graph)
    }

    #[cfg(feature = "movielens")]
    fn movielens(&self) -> Result<BipartiteGraph> {
        use zipp_eval::datasets::movielens::{MovieLens, DATA_DIR};
        zipp_graph::movielens::graph(&MovieLens::load(&self.models_root.join(DATA_DIR))?)
    }

    #[cfg(not(feature = "movielens"))]
    fn movielens(&self) -> Result<BipartiteGraph> {
        // `validate` refuses the spec first; kept for a spec built field by field.
        let _ = &self.models_root;
        Err(invalid("this build has no MovieLens graph (zipp-factory's `movielens` feature)"))
    }

    /// Runs the whole mining on this thread (module documentation); `emit` receives the
    /// progress, `cancel` is checked between epochs, batches and users.
    pub fn run(&self, cancel: &Cancel, emit: &mut (dyn FnMut(MiningProgress) + Send)) -> Result<MiningResult> {
        let started = Instant::now();
        let spec = &self.spec;
        let device = Device::Cpu;
        let graph = self.graph(cancel, emit)?;
        check(cancel, "after loading the graph")?;
        let split = EdgeSplit::new(&graph, spec.split.options())?;
        let summary = GraphSummary {
            users: graph.num_users(),
            communities: graph.num_communities(),
            edges: graph.num_edges(),
            train_edges: split.count(Part::Train),
            validation_edges: split.count(Part::Validation),
            test_edges: split.count(Part::Test),
        };
        let embedder = &*self.embedder;
        let (features, content) = zipp_core::runtime::compute(&device, || -> Result<_> {
            let features = community_features(embedder, &graph, &device, &mut |done, total| {
                emit(MiningProgress::at(MiningStage::Features, done, total));
                !cancel.is_cancelled()
            })?;
            let content = match spec.content {
                Some(ContentSpec::MeanOfCommunities) => Some(mean_over_training_edges(&graph, &split, &features)?),
                None => None,
            };
            Ok((features, content))
        })?;
        check(cancel, "after embedding the communities")?;
        let view = zipp_core::runtime::compute(&device, || GraphView::new(&graph, &split, &features))?;

        let train_spec = spec.train.clone().unwrap_or_default();
        // Loaded weights are used in place; a trained encoder lives here.
        let trained_encoder;
        let (encoder, history, best_epoch) = match &self.loaded {
            Some(encoder) => (encoder, Vec::new(), 0),
            None => {
                let sizes = spec.encoder.unwrap_or_default();
                let config = EncoderConfig {
                    feature_dim: self.embedder.dim(),
                    hidden: sizes.hidden,
                    heads: sizes.heads,
                    out: sizes.out,
                    content_dim: content.as_ref().map(|c| c.dims()[1]),
                };
                let options = train_spec.options(spec.checkpoint.clone());
                let epochs = options.epochs;
                let trained = zipp_core::runtime::compute(&device, || {
                    let encoder = Encoder::new(config, train_spec.seed, &device)?;
                    let progress = &mut |r: &zipp_graph::train::EpochReport| {
                        emit(MiningProgress {
                            stage: MiningStage::Train,
                            done: r.epoch as u64,
                            total: epochs as u64,
                            loss: Some(r.loss),
                            auc: r.validation.map(|v| v.auc),
                        });
                        !cancel.is_cancelled()
                    };
                    // Mini-batch epochs of a large graph take minutes: cancel between batches.
                    train_observed(encoder, &graph, &split, &view, content.as_ref(), &options, progress, &mut |_| {
                        !cancel.is_cancelled()
                    })
                })?;
                let history = trained
                    .history
                    .iter()
                    .map(|r| EpochRow {
                        epoch: r.epoch,
                        loss: r.loss,
                        link_loss: r.link_loss,
                        align_loss: r.align_loss,
                        validation: r.validation.map(LinkScores::from),
                        seconds: r.seconds,
                    })
                    .collect();
                trained_encoder = trained.encoder;
                (&trained_encoder, history, trained.best_epoch)
            }
        };
        check(cancel, "after training")?;

        let test = if summary.test_edges > 0 {
            let m = zipp_core::runtime::compute(&device, || {
                evaluate(encoder, &view, &graph, &split, Part::Test, train_spec.seed)
            })?;
            emit(MiningProgress::at(MiningStage::Evaluate, 1, 1));
            Some(LinkScores::from(m))
        } else {
            None
        };
        let attention = zipp_core::runtime::compute(&device, || encoder.user_attention(&view))?;

        let options = EvidenceOptions {
            token_budget: spec.evidence.token_budget,
            snippets_per_community: spec.evidence.snippets_per_community,
        };
        let users = graph.num_users();
        // About a hundred reports however many users there are.
        let every = users.div_ceil(100).max(1);
        let mut personas = Vec::with_capacity(users);
        for u in 0..users {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled(format!("persona mining cancelled after {u} of {users} users")));
            }
            let outcome = user_evidence(&graph, &view, &attention, u, &*self.counter, &options).and_then(|evidence| {
                let v = self.verbalizer.verbalize(&evidence)?;
                Ok(Mined { persona: v.persona, evidence, verbalization: v.evidence })
            });
            if let Err(e @ Error::Cancelled(_)) = outcome {
                return Err(e);
            }
            personas.push(MinedUser { user: graph.users()[u].clone(), outcome });
            if (u + 1) % every == 0 || u + 1 == users {
                emit(MiningProgress::at(MiningStage::Evidence, u + 1, users));
            }
        }
        let seconds: Vec<f64> = history.iter().map(|r: &EpochRow| r.seconds).collect();
        let metrics = MiningMetrics {
            test,
            trained: spec.weights.is_none(),
            epochs: history.len(),
            best_epoch,
            seconds_per_epoch: median(&seconds),
            seconds: started.elapsed().as_secs_f64(),
        };
        Ok(MiningResult { personas, metrics, history, graph: summary })
    }
}

/// Mines personas on a worker thread, calling `on_progress` for each report on *this*
/// thread; `on_progress` returning `false` or `interrupted()` returning `true` (polled every
/// [`crate::job::POLL`]) cancels, and the result is then [`Error::Cancelled`]. The models the
/// spec names load here, on this thread, before the work starts ([`Miner::new`]).
pub fn mine(
    spec: &MiningSpec,
    models: &Models,
    on_progress: impl FnMut(MiningProgress) -> bool,
    interrupted: impl FnMut() -> bool,
) -> Result<MiningResult> {
    Miner::new(spec.clone(), models)?.mine(on_progress, interrupted)
}

impl Miner {
    /// [`mine`] with the models already loaded: [`Miner::run`] on a worker thread, its
    /// reports delivered to this thread.
    pub fn mine(
        self,
        on_progress: impl FnMut(MiningProgress) -> bool,
        interrupted: impl FnMut() -> bool,
    ) -> Result<MiningResult> {
        let job = Job::start("zipp-mine", move |cancel, emit| self.run(cancel, emit))?;
        drive(job, on_progress, interrupted)
    }
}

/// Building a graph on disk as JSON (module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GraphBuildSpec {
    /// Edge files, read in order as one table.
    pub edges: Vec<PathBuf>,
    /// A communities file (JSONL `{"name", "description"}`) describing the communities.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub communities: Option<PathBuf>,
    /// The export folder (created if needed; an older export there is replaced).
    pub out: PathBuf,
    /// The split written to `edge_split.npy`; absent: every edge in training.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split: Option<SplitSpec>,
    /// The memory the build may use besides the id maps, in MiB (at least 1).
    pub memory_budget_mb: u64,
    /// Count and skip bad rows instead of failing on the first one.
    pub skip_bad_rows: bool,
    /// Snippets kept per edge, the first in input order (0: no text).
    pub max_snippets_per_edge: usize,
    /// The format of every edge file; absent: from each file's extension.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<EdgeFormat>,
    /// Where the scratch folder goes; absent: inside `out`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scratch_dir: Option<PathBuf>,
}

impl Default for GraphBuildSpec {
    fn default() -> Self {
        let load = LoadOptions::default();
        GraphBuildSpec {
            edges: Vec::new(),
            communities: None,
            out: PathBuf::new(),
            split: None,
            memory_budget_mb: zipp_graph::ondisk::DEFAULT_MEMORY_BUDGET >> 20,
            skip_bad_rows: load.skip_bad_rows,
            max_snippets_per_edge: load.max_snippets_per_edge,
            format: load.format,
            scratch_dir: None,
        }
    }
}

fn invalid_build(message: impl Into<String>) -> Error {
    Error::InvalidInput(format!("graph build spec: {}", message.into()))
}

impl GraphBuildSpec {
    /// Parses a spec (errors located by line, column and field) and validates it.
    pub fn from_json(json: &str) -> Result<GraphBuildSpec> {
        let spec: GraphBuildSpec = zipp_core::json::from_str(json, "graph build spec")?;
        spec.validate()?;
        Ok(spec)
    }

    /// The spec as compact JSON (defaults written out).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("graph build spec serialisation is infallible")
    }

    /// Checks everything that can be checked without reading a file.
    pub fn validate(&self) -> Result<()> {
        if self.edges.is_empty() {
            return Err(invalid_build("give `edges` (edge files)"));
        }
        if self.out.as_os_str().is_empty() {
            return Err(invalid_build("give `out` (the export folder)"));
        }
        if self.edges.iter().chain(&self.communities).chain(&self.scratch_dir).any(|p| p.as_os_str().is_empty()) {
            return Err(invalid_build("a file path is empty"));
        }
        if let Some(split) = &self.split {
            split.validate("graph build spec")?;
        }
        if self.memory_budget_mb == 0 || self.memory_budget_mb > u64::MAX >> 20 {
            return Err(invalid_build(format!("memory_budget_mb {} must be at least 1", self.memory_budget_mb)));
        }
        if self.max_snippets_per_edge > MAX_SNIPPETS_PER_EDGE {
            return Err(invalid_build(format!(
                "max_snippets_per_edge {} is more than {MAX_SNIPPETS_PER_EDGE}",
                self.max_snippets_per_edge
            )));
        }
        Ok(())
    }

    fn options(&self) -> OnDiskOptions {
        OnDiskOptions {
            load: LoadOptions {
                format: self.format,
                communities: self.communities.clone(),
                skip_bad_rows: self.skip_bad_rows,
                max_snippets_per_edge: self.max_snippets_per_edge,
            },
            split: self.split.as_ref().map(SplitSpec::options),
            memory_budget_bytes: self.memory_budget_mb << 20,
            scratch_dir: self.scratch_dir.clone(),
        }
    }
}

/// One progress report of [`build_graph`]: `pass` 1 (reading ids), 2 (distributing rows to
/// scratch files) or 3 (sorting and writing), and the rows of that pass so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphBuildProgress {
    pub pass: u8,
    pub rows: u64,
}

/// What [`build_graph`] did: the folder and the build's counts
/// (`zipp_graph::ondisk::OnDiskStats`). As JSON: `{"out", "load": {"rows_read",
/// "rows_skipped", "skipped", "users", "communities", "edges", "snippets", "seconds"},
/// "ranges", "largest_range_bytes", "levels", "scratch_bytes"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphBuildReport {
    pub out: PathBuf,
    #[serde(flatten)]
    pub stats: OnDiskStats,
}

impl GraphBuildReport {
    /// The report as compact JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::Internal(format!("graph build report as JSON: {e}")))
    }
}

/// Builds the graph of `spec` into its export folder on a worker thread, calling
/// `on_progress` for each report on *this* thread; `on_progress` returning `false` or
/// `interrupted()` returning `true` (polled every [`crate::job::POLL`]) cancels within
/// 65,536 rows, and the result is then [`Error::Cancelled`] (the scratch files are removed
/// and `out` never holds a half-written export with a `meta.json`).
pub fn build_graph(
    spec: &GraphBuildSpec,
    on_progress: impl FnMut(GraphBuildProgress) -> bool,
    interrupted: impl FnMut() -> bool,
) -> Result<GraphBuildReport> {
    spec.validate()?;
    let spec = spec.clone();
    let job = Job::start("zipp-graph-build", move |cancel, emit| {
        // The builder's callback is `Fn`: the emitter is borrowed mutably inside it.
        let emit = RefCell::new(emit);
        let stats = build_on_disk_with_progress(&spec.edges, &spec.options(), &spec.out, &|p: LoadProgress| {
            (emit.borrow_mut())(GraphBuildProgress { pass: p.pass, rows: p.rows_read });
            !cancel.is_cancelled()
        })?;
        Ok(GraphBuildReport { out: spec.out.clone(), stats })
    })?;
    drive(job, on_progress, interrupted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_strictly_with_defaults() {
        let s = MiningSpec::from_json(r#"{"edges": ["e.jsonl"]}"#).unwrap();
        assert_eq!(s.edges, [PathBuf::from("e.jsonl")]);
        assert_eq!(s.split, SplitSpec { validation: 0.05, test: 0.1, seed: 0 });
        assert_eq!(s.encoder.unwrap_or_default(), EncoderSpec { hidden: 64, heads: 2, out: 64 });
        assert_eq!(s.train.clone().unwrap_or_default().options(None), TrainOptions::default());
        assert_eq!(s.evidence, EvidenceSpec { token_budget: 512, snippets_per_community: 3 });
        assert_eq!(
            (s.verbalizer.clone(), s.embedder, s.content),
            (VerbalizerSpec::default(), EmbedderName::Minilm, None)
        );
        assert_eq!(MiningSpec::from_json(&s.to_json()).unwrap(), s, "round trip");
        let full = MiningSpec::from_json(
            r#"{"edges": ["a.csv", "b.parquet"], "communities": "c.jsonl", "split": {"test": 0.2},
                "encoder": {"hidden": 8}, "train": {"epochs": 3, "lambda": 0}, "content": "mean_of_communities",
                "evidence": {"token_budget": 40}, "verbalizer": {"template": {"max_named": 2}},
                "embedder": "minilm", "checkpoint": "w.safetensors"}"#,
        )
        .unwrap();
        assert_eq!((full.split.test, full.split.validation), (0.2, 0.05));
        assert_eq!(full.encoder, Some(EncoderSpec { hidden: 8, heads: 2, out: 64 }));
        assert_eq!(full.content, Some(ContentSpec::MeanOfCommunities));
        assert_eq!(MiningSpec::from_json(&full.to_json()).unwrap(), full, "round trip");
        let bare = MiningSpec::from_json(r#"{"edges": ["e.jsonl"], "verbalizer": "template"}"#).unwrap();
        assert_eq!(bare.verbalizer, VerbalizerSpec::default());
    }

    #[test]
    fn bad_specs_are_located_errors_before_anything_loads() {
        for (bad, kind, needle) in [
            (r#"{"edges": ["e.jsonl"], "epochs": 3}"#, "schema", "epochs"),
            (r#"{"edges": ["e.jsonl"], "train": {"epoch": 3}}"#, "schema", "epoch"),
            (r#"{"edges": ["e.jsonl"], "verbalizer": "poem"}"#, "schema", "poem"),
            (r#"{"edges": ["e.jsonl"], "content": "images"}"#, "schema", "images"),
            (r#"{"edges": "e.jsonl"}"#, "schema", "edges"),
            (r#"{"edges": ["e.jsonl"]"#, "parse", "line 1"),
            ("{}", "invalid_input", "edges"),
            (r#"{"edges": ["e.jsonl"], "movielens": true}"#, "invalid_input", "not both"),
            (r#"{"edges": ["e.jsonl"], "split": {"test": 1.0}}"#, "invalid_input", "split"),
            (r#"{"edges": ["e.jsonl"], "train": {"epochs": 0}}"#, "invalid_input", "epochs"),
            (r#"{"edges": ["e.jsonl"], "train": {"lr": -1}}"#, "invalid_input", "lr"),
            (r#"{"edges": ["e.jsonl"], "train": {"mini_batch": {"fanouts": [0, 3]}}}"#, "invalid_input", "fanouts"),
            (r#"{"edges": ["e.jsonl"], "train": {"mini_batch": {"fanout": 3}}}"#, "schema", "fanout"),
            (r#"{"edges": ["e.jsonl"], "encoder": {"heads": 0}}"#, "invalid_input", "heads"),
            (r#"{"edges": ["e.jsonl"], "evidence": {"token_budget": 0}}"#, "invalid_input", "token_budget"),
            (r#"{"edges": ["e.jsonl"], "weights": "w.st", "train": {}}"#, "invalid_input", "train"),
            (r#"{"edges": [""]}"#, "invalid_input", "empty"),
        ] {
            let e = MiningSpec::from_json(bad).unwrap_err();
            assert_eq!(e.kind(), kind, "{bad}: {e}");
            assert!(e.to_string().contains(needle), "{bad}: {e}");
        }
        let e = MiningSpec::from_json("{\n  \"edges\": [\"e.jsonl\"],\n  \"train\": {\"epohcs\": 1}\n}").unwrap_err();
        assert!(e.to_string().contains("train") && e.to_string().contains("line 3"), "located: {e}");
    }

    #[test]
    fn graph_build_specs_parse_strictly_and_build_an_export() {
        let s = GraphBuildSpec::from_json(r#"{"edges": ["e.jsonl"], "out": "export"}"#).unwrap();
        assert_eq!((s.memory_budget_mb, s.max_snippets_per_edge, s.split, s.skip_bad_rows), (1024, 16, None, false));
        assert_eq!(GraphBuildSpec::from_json(&s.to_json()).unwrap(), s, "round trip");
        for (bad, kind, needle) in [
            (r#"{"edges": ["e.jsonl"]}"#, "invalid_input", "out"),
            (r#"{"out": "x"}"#, "invalid_input", "edges"),
            (r#"{"edges": ["e.jsonl"], "out": "x", "budget": 3}"#, "schema", "budget"),
            (r#"{"edges": ["e.jsonl"], "out": "x", "memory_budget_mb": 0}"#, "invalid_input", "memory_budget_mb"),
            (r#"{"edges": ["e.jsonl"], "out": "x", "split": {"test": 1}}"#, "invalid_input", "split"),
            (r#"{"edges": ["e.jsonl"], "out": "x", "max_snippets_per_edge": 99}"#, "invalid_input", "max_snippets"),
            (r#"{"edges": ["e.jsonl"], "out": "x", "format": "tsv"}"#, "schema", "tsv"),
        ] {
            let e = GraphBuildSpec::from_json(bad).unwrap_err();
            assert_eq!(e.kind(), kind, "{bad}: {e}");
            assert!(e.to_string().contains(needle), "{bad}: {e}");
        }

        let dir = std::env::temp_dir().join(format!("zipp-factory-build-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let edges = dir.join("edges.csv");
        std::fs::write(&edges, "user,community,text\nana,film,grain\nbo,film,\nana,bread,crust\nana,film,\n").unwrap();
        let spec = GraphBuildSpec {
            edges: vec![edges],
            out: dir.join("export"),
            split: Some(SplitSpec { validation: 0.0, test: 0.5, seed: 1 }),
            memory_budget_mb: 1,
            ..GraphBuildSpec::default()
        };
        let mut passes = Vec::new();
        let report = build_graph(
            &spec,
            |p| {
                passes.push(p.pass);
                true
            },
            || false,
        )
        .unwrap();
        assert_eq!((report.stats.load.users, report.stats.load.edges, report.stats.load.snippets), (2, 3, 2));
        assert_eq!(passes, [1, 2, 3]);
        let json: serde_json::Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
        assert_eq!((json["load"]["rows_read"].as_u64(), json["ranges"].as_u64()), (Some(4), Some(1)));
        let (graph, split, _, _) = zipp_graph::export::import_pyg(&spec.out).unwrap();
        assert_eq!(split, EdgeSplit::new(&graph, spec.split.unwrap().options()).unwrap());
        // Interrupted before the worker's first check (the end of pass 1): the export of
        // the first build is untouched (pass 3 never started), no scratch folder is left.
        let files = || {
            let mut names: Vec<_> = std::fs::read_dir(&spec.out).unwrap().map(|e| e.unwrap().file_name()).collect();
            names.sort();
            names
        };
        let before = files();
        let e = build_graph(&spec, |_| true, || true).unwrap_err();
        assert_eq!(e.kind(), "cancelled");
        assert_eq!(files(), before);
        assert!(zipp_graph::export::import_pyg(&spec.out).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
