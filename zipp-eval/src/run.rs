//! The method table: methods × personas × queries, scored with VPTT, aggregated per query
//! (the VPTT paper's Tables 3 and 7) and per task kind.
//!
//! Streaming: [`Evaluation::add_persona`] personalizes and scores one persona and folds the
//! result into running aggregates (exact moments, win and head-to-head counts, a bounded
//! sample for Spearman ρ), so memory does not grow with the number of personas; the
//! per-sample rows it returns can be written out or dropped. Deterministic: the same
//! personas, methods, queries and options give the same report.
//!
//! Distributed: the aggregates are an [`EvalAggregate`] — plain data, serialisable to JSON,
//! mergeable. Shard the personas over threads, processes or machines (Ray actors, Spark
//! tasks), evaluate each shard with its own [`Evaluation`], merge the shards'
//! [`Evaluation::aggregate`]s in any order and grouping, and [`EvalAggregate::report`]
//! gives bit for bit the report of one local pass over all the personas (except
//! [`Report::timings`], which measure wall time and are summed over the shards): every sum is
//! exact ([`stats::Moments`]), every count an integer, and the Spearman sample is the
//! `spearman_sample` pairs of lowest seeded hash of (persona id, query, method), whichever
//! shard saw them.
//!
//! ```no_run
//! use std::sync::Arc;
//! use zipp_core::embed::MiniLm;
//! use zipp_core::models::ModelSource;
//! use zipp_core::personalize::{Identity, Vprag};
//! use zipp_core::tokenize::ClipTokenizer;
//! use zipp_core::IndexedPersona;
//! use zipp_eval::{EvalMethod, EvalOptions, Evaluation, Query};
//!
//! let minilm = Arc::new(MiniLm::load(&ModelSource::Default)?);
//! let clip = Arc::new(ClipTokenizer::load_default()?);
//! let methods = vec![
//!     EvalMethod::from_personalizer(Arc::new(Identity::new())),
//!     EvalMethod::from_personalizer(Arc::new(Vprag::new(minilm.clone(), clip, Default::default())?)),
//! ];
//! let mut ev = Evaluation::new(minilm, methods, Query::vptt(), EvalOptions::default())?;
//! for persona in zipp_core::persona::read_jsonl("personas.jsonl")? {
//!     ev.add_persona(&IndexedPersona::new(persona))?;
//! }
//! println!("{}", ev.report()?.table());
//! # Ok::<(), zipp_core::Error>(())
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::stats::{self, Moments};
use super::vptt::{PersonaScorer, VpttOptions, VpttScore};
use zipp_core::embed::Embedder;
use zipp_core::personalize::{Personalizer, Request, Task};
use zipp_core::retrieve::IndexedPersona;
use zipp_core::{Error, Result};

/// One evaluation query: a base prompt for a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    /// Short stable name (`"social_post"`), used in tables and JSON.
    pub name: String,
    pub task: Task,
    pub prompt: String,
}

impl Query {
    pub fn new(name: &str, task: Task, prompt: &str) -> Query {
        Query { name: name.into(), task, prompt: prompt.into() }
    }

    /// The four VPTT-Bench tasks (VPTT paper, Fig. 2 and Tables 7–10): two generations,
    /// two edits.
    pub fn vptt() -> Vec<Query> {
        vec![
            Query::new(
                "social_post",
                Task::Generate,
                "A photo showing my next social media post with my style and content.",
            ),
            Query::new("cultural_site", Task::Generate, "A photo of a cultural site in my region."),
            Query::new("living_room", Task::Edit, "Decorate this empty living room."),
            Query::new("garden", Task::Edit, "Redesign this garden."),
        ]
    }

    /// [`Query::vptt`] plus the two prompts of the paper's human study and three of ours
    /// (a broad portrait, a narrow everyday scene, a style edit).
    pub fn extended() -> Vec<Query> {
        let mut q = Query::vptt();
        q.extend([
            Query::new("outdoor_spot", Task::Generate, "A preferred outdoor spot."),
            Query::new("convention_center", Task::Edit, "Here is a convention center. Add a preferred event."),
            Query::new("portrait", Task::Generate, "A portrait of me on an ordinary day."),
            Query::new("weekend_table", Task::Generate, "What is on my table on a weekend morning."),
            Query::new("poster", Task::Edit, "Turn this photo into a poster in my style."),
        ]);
        q
    }

    /// A named query set: `"vptt"` or `"extended"`.
    pub fn set(name: &str) -> Result<Vec<Query>> {
        match name {
            "vptt" => Ok(Query::vptt()),
            "extended" => Ok(Query::extended()),
            other => Err(Error::InvalidInput(format!("unknown query set `{other}` (expected `vptt` or `extended`)"))),
        }
    }
}

/// Which queries an evaluation runs: a named set (`"vptt"`, `"extended"`) or a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum QuerySet {
    Named(String),
    List(Vec<Query>),
}

impl Default for QuerySet {
    fn default() -> Self {
        QuerySet::Named("vptt".into())
    }
}

impl QuerySet {
    pub fn queries(&self) -> Result<Vec<Query>> {
        match self {
            QuerySet::Named(name) => Query::set(name),
            QuerySet::List(list) => Ok(list.clone()),
        }
    }
}

/// A method under evaluation.
#[derive(Clone)]
pub struct EvalMethod {
    pub name: String,
    pub personalizer: Arc<dyn Personalizer>,
    /// Whether the method reads the persona's memory (see [`NoveltyConvention`]).
    pub reads_memory: bool,
}

impl std::fmt::Debug for EvalMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvalMethod").field("name", &self.name).field("reads_memory", &self.reads_memory).finish()
    }
}

impl EvalMethod {
    pub fn new(name: &str, personalizer: Arc<dyn Personalizer>, reads_memory: bool) -> EvalMethod {
        EvalMethod { name: name.into(), personalizer, reads_memory }
    }

    /// A method named by its personalizer, with the NV convention decided by whether it
    /// reads the persona's memory ([`Personalizer::reads_memory`]).
    pub fn from_personalizer(personalizer: Arc<dyn Personalizer>) -> EvalMethod {
        let (name, reads_memory) = (personalizer.name().to_string(), personalizer.reads_memory());
        EvalMethod { name, personalizer, reads_memory }
    }
}

/// What NV is for methods that never read the persona's memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoveltyConvention {
    /// The VPTT paper's convention: NV = 0 for methods that do not read the memory (their
    /// prompts cannot copy a caption, so "novelty" would reward not personalizing). Tables
    /// show "—" in their NV column.
    #[default]
    ZeroWithoutMemory,
    /// NV as measured for every method.
    Measured,
}

/// Options of an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalOptions {
    pub vptt: VpttOptions,
    pub novelty: NoveltyConvention,
    /// Scores closer than this are a tie (for win % and head-to-head counts).
    pub tie_epsilon: f64,
    /// Confidence level of the Wilson intervals.
    pub confidence: f64,
    /// The method Cohen's d is also reported against (Tables 7–10 use the Baseline); `None`
    /// for none. Must be one of the methods when set.
    pub baseline: Option<String>,
    /// Per query, how many (VPTT, VPTT_c) pairs are kept for Spearman ρ (reservoir sampling
    /// beyond that, seeded by `vptt.seed`).
    pub spearman_sample: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            vptt: VpttOptions::default(),
            novelty: NoveltyConvention::default(),
            tie_epsilon: 1e-9,
            confidence: 0.95,
            baseline: Some("identity".into()),
            spearman_sample: 100_000,
        }
    }
}

/// One scored prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub persona: String,
    pub query: String,
    pub method: String,
    pub prompt: String,
    #[serde(flatten)]
    pub score: VpttScore,
    /// What a language-model composer did (methods with the ZIPP rewriter only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<RewriteSample>,
}

/// The part of a rewriter's evidence an evaluation keeps per prompt: enough for the
/// fallback and concept-preservation rates and the latency distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RewriteSample {
    pub outcome: zipp_core::personalize::RewriteOutcome,
    /// Subjects of the base prompt the model's cleaned answer lost (before any repair).
    pub missing_subjects: Vec<String>,
    pub generation_ms: f64,
    pub completion_tokens: usize,
}

/// Where the time went, summed over personas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Embedding each persona's memory (captions, elements, category descriptions): shared
    /// by the retrieving personalizers and the scorer.
    pub index_memory: Duration,
    /// Embedding the persona text and building the basis and clusters.
    pub persona_state: Duration,
    /// The personalizers themselves (query embeddings included).
    pub personalize: Duration,
    /// Embedding the rewritten prompts (one batch per persona; repeated prompts once).
    pub embed_prompts: Duration,
    /// Everything else in scoring (projections, clusters, trigrams) and aggregation.
    pub score: Duration,
}

impl Timings {
    pub fn total(&self) -> Duration {
        self.index_memory + self.persona_state + self.personalize + self.embed_prompts + self.score
    }
}

/// Running aggregates of one method on one query (or a group of queries).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MethodAcc {
    pa: Moments,
    gs: Moments,
    cp: Moments,
    cp_soft: Moments,
    nv: Moments,
    nv_soft: Moments,
    vptt: Moments,
    vptt_c: Moments,
    wins: [u64; 2],
    ties: [u64; 2],
}

impl MethodAcc {
    fn merge(&mut self, o: &MethodAcc) {
        for (a, b) in [
            (&mut self.pa, &o.pa),
            (&mut self.gs, &o.gs),
            (&mut self.cp, &o.cp),
            (&mut self.cp_soft, &o.cp_soft),
            (&mut self.nv, &o.nv),
            (&mut self.nv_soft, &o.nv_soft),
            (&mut self.vptt, &o.vptt),
            (&mut self.vptt_c, &o.vptt_c),
        ] {
            a.merge(b);
        }
        for s in 0..2 {
            self.wins[s] += o.wins[s];
            self.ties[s] += o.ties[s];
        }
    }
}

/// Aggregates of one query (or group): per method, plus head-to-head counts
/// `beats[s][a * m + b]` = how often method a scored above method b on score s (0 = VPTT,
/// 1 = VPTT_c), and the sample of (VPTT, VPTT_c) pairs for Spearman ρ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryAcc {
    methods: Vec<MethodAcc>,
    beats: [Vec<u64>; 2],
    /// `(key, VPTT, VPTT_c)`: a bottom-k sample by [`sample_key`] — the pairs of the lowest
    /// keys, so which pairs are kept does not depend on the order or the sharding. May hold
    /// up to twice the cap between compactions; [`QueryAcc::normalize`] sorts and trims it.
    sample: Vec<(u64, f64, f64)>,
}

/// The total order of the Spearman sample: key, then the values' bits (equal keys only for
/// a persona id repeated in the input).
fn sample_order(a: &(u64, f64, f64), b: &(u64, f64, f64)) -> std::cmp::Ordering {
    (a.0, a.1.to_bits(), a.2.to_bits()).cmp(&(b.0, b.1.to_bits(), b.2.to_bits()))
}

/// The seeded hash a (persona, query, method) pair is sampled by for Spearman ρ.
fn sample_key(seed: u64, persona: &str, query: usize, method: usize) -> u64 {
    // FNV-1a over the id, then SplitMix64 over the id hash, indices and seed.
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in persona.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    let mut state = seed ^ 0x005E_ED0F_5EA2_u64;
    for word in [h, query as u64, method as u64] {
        state ^= word;
        zipp_core::rng::splitmix64(&mut state);
    }
    zipp_core::rng::splitmix64(&mut state)
}

impl QueryAcc {
    fn new(m: usize) -> QueryAcc {
        QueryAcc { methods: vec![MethodAcc::default(); m], beats: [vec![0; m * m], vec![0; m * m]], sample: Vec::new() }
    }

    /// Adds `other`'s counts and moments; the samples are pooled (callers trim them).
    fn merge(&mut self, o: &QueryAcc) {
        for (a, b) in self.methods.iter_mut().zip(&o.methods) {
            a.merge(b);
        }
        for s in 0..2 {
            for (a, b) in self.beats[s].iter_mut().zip(&o.beats[s]) {
                *a += b;
            }
        }
        self.sample.extend_from_slice(&o.sample);
    }

    /// Keeps the sample below twice `cap` (amortised trimming as pairs arrive).
    fn compact(&mut self, cap: usize) {
        if self.sample.len() > cap.saturating_mul(2).max(16) {
            let nth = cap.min(self.sample.len() - 1);
            self.sample.select_nth_unstable_by(nth, sample_order);
            self.sample.truncate(cap);
        }
    }

    /// The canonical sample: the `cap` lowest pairs, sorted.
    fn normalize(&mut self, cap: usize) {
        self.sample.sort_unstable_by(sample_order);
        self.sample.truncate(cap);
    }
}

/// A method's name and NV convention, as the aggregates record them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MethodInfo {
    pub name: String,
    pub reads_memory: bool,
}

/// An evaluation's running aggregates as plain data: what [`Evaluation::aggregate`] exports,
/// what shards evaluated apart [`merge`](EvalAggregate::merge) into, and what renders the
/// [`Report`] — without any model. Serialised with [`EvalAggregate::to_json`] (versioned:
/// `"format": 1`); see the module docs for why a merge of shards equals one local pass.
///
/// ```
/// # use std::sync::Arc;
/// # use zipp_core::personalize::Identity;
/// # use zipp_core::{IndexedPersona, Persona, Post};
/// # use zipp_eval::{EvalAggregate, EvalMethod, EvalOptions, Evaluation, Query};
/// # let embedder = Arc::new(zipp_core::rng::HashingEmbedder(8));
/// # let methods = || vec![EvalMethod::from_personalizer(Arc::new(Identity::new()))];
/// # let personas: Vec<Persona> = (0..4).map(|i| {
/// #     let mut p = Persona::new(format!("p{i}"));
/// #     p.summary = "likes walks".into();
/// #     p.memory.push(Post::new(format!("a walk at dusk, day {i}")));
/// #     p
/// # }).collect();
/// // Two shards, evaluated apart (e.g. on two machines) …
/// let mut shards = Vec::new();
/// for part in personas.chunks(2) {
///     let mut ev = Evaluation::new(embedder.clone(), methods(), Query::vptt(), EvalOptions::default())?;
///     for p in part {
///         ev.add_persona(&IndexedPersona::new(p.clone()))?;
///     }
///     shards.push(ev.aggregate().to_json()?); // travels as text
/// }
/// // … merged anywhere, with no model loaded.
/// let mut total = EvalAggregate::from_json(&shards[0])?;
/// total.merge(&EvalAggregate::from_json(&shards[1])?)?;
/// assert_eq!(total.personas(), 4);
/// println!("{}", total.report()?.table());
/// # Ok::<(), zipp_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalAggregate {
    /// The serialisation format, [`EvalAggregate::FORMAT`].
    format: u32,
    methods: Vec<MethodInfo>,
    queries: Vec<Query>,
    options: EvalOptions,
    personas: u64,
    timings: Timings,
    /// One per query, in query order.
    tables: Vec<QueryAcc>,
}

/// A streaming evaluation; see the module docs.
pub struct Evaluation {
    embedder: Arc<dyn Embedder>,
    methods: Vec<EvalMethod>,
    requests: Vec<Request>,
    /// Embeddings of the base prompts (Identity returns them unchanged for every persona).
    base_vecs: HashMap<String, Vec<f32>>,
    agg: EvalAggregate,
}

impl std::fmt::Debug for Evaluation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluation")
            .field("methods", &self.methods)
            .field("queries", &self.agg.queries)
            .field("personas", &self.agg.personas)
            .finish_non_exhaustive()
    }
}

impl Evaluation {
    /// An evaluation of `methods` on `queries`, scoring with `embedder` (the personalizers'
    /// own embedder, so the memory index is shared). Checks: at least one method and query,
    /// unique names, valid options, the baseline among the methods.
    pub fn new(
        embedder: Arc<dyn Embedder>,
        methods: Vec<EvalMethod>,
        queries: Vec<Query>,
        options: EvalOptions,
    ) -> Result<Evaluation> {
        options.vptt.validate()?;
        if methods.is_empty() || queries.is_empty() {
            return Err(Error::InvalidInput("an evaluation needs at least one method and one query".into()));
        }
        for (what, names) in [
            ("method", methods.iter().map(|m| m.name.as_str()).collect::<Vec<_>>()),
            ("query", queries.iter().map(|q| q.name.as_str()).collect()),
        ] {
            for (i, n) in names.iter().enumerate() {
                if n.trim().is_empty() || names[..i].contains(n) {
                    return Err(Error::InvalidInput(format!("{what} names must be non-empty and unique, got `{n}`")));
                }
            }
        }
        if !(options.tie_epsilon.is_finite() && options.tie_epsilon >= 0.0) {
            return Err(Error::InvalidInput(format!(
                "tie_epsilon must be finite and ≥ 0, got {}",
                options.tie_epsilon
            )));
        }
        if !(options.confidence > 0.0 && options.confidence < 1.0) {
            return Err(Error::InvalidInput(format!("confidence must be in (0, 1), got {}", options.confidence)));
        }
        if let Some(b) = &options.baseline {
            if !methods.iter().any(|m| &m.name == b) {
                return Err(Error::InvalidInput(format!("baseline `{b}` is not one of the evaluated methods")));
            }
        }
        let requests: Vec<Request> = queries
            .iter()
            .map(|q| {
                let r = Request { task: q.task, ..Request::generate(q.prompt.clone()) };
                r.validate().map(|_| r)
            })
            .collect::<Result<_>>()?;
        let texts: Vec<&str> = queries.iter().map(|q| q.prompt.as_str()).collect();
        let vecs = embedder.embed(&texts)?;
        zipp_core::embed::check_shape(&*embedder, texts.len(), &vecs)?;
        let base_vecs = texts.iter().enumerate().map(|(i, t)| (t.to_string(), vecs.row(i).to_vec())).collect();
        let m = methods.len();
        let agg = EvalAggregate {
            format: EvalAggregate::FORMAT,
            methods: methods
                .iter()
                .map(|x| MethodInfo { name: x.name.clone(), reads_memory: x.reads_memory })
                .collect(),
            tables: (0..queries.len()).map(|_| QueryAcc::new(m)).collect(),
            queries,
            options,
            personas: 0,
            timings: Timings::default(),
        };
        Ok(Evaluation { embedder, methods, requests, base_vecs, agg })
    }

    /// The aggregates so far, as data: serialise them, merge them with other shards' and
    /// render the report anywhere ([`EvalAggregate`]).
    pub fn aggregate(&self) -> EvalAggregate {
        let mut agg = self.agg.clone();
        agg.normalize();
        agg
    }

    /// Adds another shard's aggregates (same methods, queries and options) to this
    /// evaluation's, as if its personas had been added here.
    pub fn merge(&mut self, other: &EvalAggregate) -> Result<()> {
        self.agg.merge(other)
    }

    pub fn methods(&self) -> &[EvalMethod] {
        &self.methods
    }

    pub fn queries(&self) -> &[Query] {
        &self.agg.queries
    }

    pub fn options(&self) -> &EvalOptions {
        &self.agg.options
    }

    /// Personas added (or merged in) so far.
    pub fn personas(&self) -> u64 {
        self.agg.personas
    }

    pub fn timings(&self) -> &Timings {
        &self.agg.timings
    }

    /// Personalizes `persona` with every method for every query, scores every prompt and
    /// adds the scores to the aggregates. Returns the samples (methods × queries, query-major).
    /// On error nothing is added (the persona is all or nothing).
    ///
    /// The persona's memory index is reused when it was already built with this
    /// evaluation's embedder (a binding's persona handle, or a personalizer that ran on it),
    /// and cached in `persona` otherwise.
    pub fn add_persona(&mut self, persona: &IndexedPersona) -> Result<Vec<Sample>> {
        let id = persona.persona().id.clone();
        let within = |e: Error| match e {
            Error::InvalidInput(m) => Error::InvalidInput(format!("persona `{id}`: {m}")),
            other => other,
        };
        let t0 = Instant::now();
        persona.index(&*self.embedder).map_err(within)?;
        let t1 = Instant::now();
        let scorer = PersonaScorer::new(persona, &*self.embedder, &self.agg.options.vptt).map_err(within)?;
        let t2 = Instant::now();
        let mut prompts: Vec<Vec<String>> = Vec::with_capacity(self.methods.len());
        let mut rewrites: Vec<Vec<Option<RewriteSample>>> = Vec::with_capacity(self.methods.len());
        for m in &self.methods {
            let out = m.personalizer.personalize_batch(persona, &self.requests).map_err(within)?;
            if out.len() != self.requests.len() {
                return Err(Error::Compute(format!(
                    "method `{}` returned {} personalizations for {} requests",
                    m.name,
                    out.len(),
                    self.requests.len()
                )));
            }
            rewrites.push(
                out.iter()
                    .map(|p| {
                        p.evidence.rewrite.as_ref().map(|r| RewriteSample {
                            outcome: r.outcome,
                            missing_subjects: r.missing_subjects.clone(),
                            generation_ms: r.generation_ms,
                            completion_tokens: r.completion_tokens,
                        })
                    })
                    .collect(),
            );
            prompts.push(out.into_iter().map(|p| p.prompt).collect());
        }
        let t3 = Instant::now();
        // Embed each distinct prompt once; base prompts (Identity's output) are cached.
        let mut distinct: Vec<&str> =
            prompts.iter().flatten().map(String::as_str).filter(|p| !self.base_vecs.contains_key(*p)).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let vecs = if distinct.is_empty() { None } else { Some(self.embedder.embed(&distinct)?) };
        if let Some(v) = &vecs {
            zipp_core::embed::check_shape(&*self.embedder, distinct.len(), v)?;
        }
        let vector = |p: &str| -> &[f32] {
            match self.base_vecs.get(p) {
                Some(v) => v,
                // Every other prompt is in `distinct`, sorted.
                None => {
                    vecs.as_ref().expect("embedded above").row(distinct.binary_search(&p).expect("collected above"))
                }
            }
        };
        let t4 = Instant::now();
        let options = &self.agg.options;
        let w = options.vptt.weights;
        let (m, q) = (self.methods.len(), self.agg.queries.len());
        // scores[qi * m + mi]
        let mut scores = Vec::with_capacity(m * q);
        #[allow(clippy::needless_range_loop)] // query-major order over a method-major table
        for qi in 0..q {
            for (mi, method) in self.methods.iter().enumerate() {
                let p = &prompts[mi][qi];
                let mut s = scorer.score_vector(vector(p), p).map_err(within)?;
                if options.novelty == NoveltyConvention::ZeroWithoutMemory && !method.reads_memory {
                    s = s.with_novelty(0.0, &w);
                }
                scores.push(s);
            }
        }
        if options.vptt.novelty == super::vptt::Novelty::Soft {
            let texts: Vec<&str> =
                (0..q).flat_map(|qi| (0..m).map(move |mi| (mi, qi))).map(|(mi, qi)| prompts[mi][qi].as_str()).collect();
            let soft = scorer.soft_novelty(&*self.embedder, &texts)?;
            for ((s, nv), i) in scores.iter_mut().zip(soft).zip(0..) {
                let zeroed =
                    options.novelty == NoveltyConvention::ZeroWithoutMemory && !self.methods[i % m].reads_memory;
                s.nv_soft = Some(if zeroed { 0.0 } else { nv });
            }
        }
        // Everything is computed: only now does the persona count.
        let id = persona.persona().id.as_str();
        for qi in 0..q {
            let row = &scores[qi * m..(qi + 1) * m];
            self.agg.fold(qi, id, row);
        }
        self.agg.personas += 1;
        let samples = (0..q)
            .flat_map(|qi| (0..m).map(move |mi| (qi, mi)))
            .map(|(qi, mi)| Sample {
                persona: persona.persona().id.clone(),
                query: self.agg.queries[qi].name.clone(),
                method: self.methods[mi].name.clone(),
                prompt: prompts[mi][qi].clone(),
                score: scores[qi * m + mi],
                rewrite: rewrites[mi][qi].clone(),
            })
            .collect();
        let t5 = Instant::now();
        let t = &mut self.agg.timings;
        t.index_memory += t1 - t0;
        t.persona_state += t2 - t1;
        t.personalize += t3 - t2;
        t.embed_prompts += t4 - t3;
        t.score += t5 - t4;
        Ok(samples)
    }

    /// The report so far: one table per query, then one per task kind (all generation
    /// queries, all edit queries) when there are several queries of that kind.
    pub fn report(&self) -> Result<Report> {
        self.agg.report()
    }
}

impl EvalAggregate {
    /// The serialisation format this version writes and reads.
    pub const FORMAT: u32 = 1;

    pub fn methods(&self) -> &[MethodInfo] {
        &self.methods
    }

    pub fn queries(&self) -> &[Query] {
        &self.queries
    }

    pub fn options(&self) -> &EvalOptions {
        &self.options
    }

    /// Personas folded in.
    pub fn personas(&self) -> u64 {
        self.personas
    }

    pub fn timings(&self) -> &Timings {
        &self.timings
    }

    /// Adds `other`'s personas: counts and exact sums add, the Spearman samples pool and keep
    /// the lowest keys. Any order and grouping of merges gives the same aggregate. Refused
    /// (nothing changes) when the two were not made by the same methods, queries and options.
    pub fn merge(&mut self, other: &EvalAggregate) -> Result<()> {
        for (what, same) in [
            ("methods", self.methods == other.methods),
            ("queries", self.queries == other.queries),
            ("options", self.options == other.options),
        ] {
            if !same {
                return Err(Error::InvalidInput(format!(
                    "cannot merge evaluation aggregates with different {what} (each shard must run the same \
                     evaluation config)"
                )));
            }
        }
        for (a, b) in self.tables.iter_mut().zip(&other.tables) {
            a.merge(b);
        }
        self.personas = self.personas.saturating_add(other.personas);
        let (t, o) = (&mut self.timings, &other.timings);
        t.index_memory += o.index_memory;
        t.persona_state += o.persona_state;
        t.personalize += o.personalize;
        t.embed_prompts += o.embed_prompts;
        t.score += o.score;
        self.normalize();
        Ok(())
    }

    /// Merges every aggregate of `parts` into the first; `None` for none.
    pub fn merge_all<'a>(parts: impl IntoIterator<Item = &'a EvalAggregate>) -> Result<Option<EvalAggregate>> {
        let mut parts = parts.into_iter();
        let Some(first) = parts.next() else { return Ok(None) };
        let mut total = first.clone();
        for p in parts {
            total.merge(p)?;
        }
        Ok(Some(total))
    }

    fn normalize(&mut self) {
        let cap = self.options.spearman_sample;
        for t in &mut self.tables {
            t.normalize(cap);
        }
    }

    /// The aggregate as JSON. Every `EvalAggregate` a caller holds is already canonical
    /// ([`Evaluation::aggregate`], [`EvalAggregate::merge`] and [`EvalAggregate::from_json`]
    /// normalise the Spearman sample), so equal aggregates write equal text.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::InvalidInput(format!("aggregate is not serialisable: {e}")))
    }

    /// Parses and checks an aggregate written by [`EvalAggregate::to_json`]: the format, the
    /// shapes (one table per query, one row per method, m × m head-to-head counts), the
    /// options and names as [`Evaluation::new`] checks them.
    pub fn from_json(json: &str) -> Result<EvalAggregate> {
        let loc = zipp_core::Location::default();
        let mut agg: EvalAggregate = zipp_core::json::parse(json, &loc, "evaluation aggregate")?;
        let schema = |message: String| Error::Schema { location: loc.clone(), message };
        if agg.format != Self::FORMAT {
            return Err(schema(format!(
                "evaluation aggregate format {} is not supported (this version reads {})",
                agg.format,
                Self::FORMAT
            )));
        }
        agg.options.vptt.validate()?;
        let m = agg.methods.len();
        if m == 0 || agg.queries.is_empty() {
            return Err(schema("an evaluation aggregate needs at least one method and one query".into()));
        }
        if agg.tables.len() != agg.queries.len() {
            return Err(schema(format!("{} tables for {} queries", agg.tables.len(), agg.queries.len())));
        }
        for (i, t) in agg.tables.iter().enumerate() {
            if t.methods.len() != m || t.beats.iter().any(|b| b.len() != m * m) {
                return Err(schema(format!("table {i} does not have the shape of {m} methods")));
            }
            if t.sample.iter().any(|&(_, a, b)| !(a.is_finite() && b.is_finite())) {
                return Err(schema(format!("table {i}'s Spearman sample holds a non-finite score")));
            }
        }
        agg.normalize();
        Ok(agg)
    }

    fn fold(&mut self, qi: usize, persona: &str, row: &[VpttScore]) {
        let eps = self.options.tie_epsilon;
        let cap = self.options.spearman_sample;
        let seed = self.options.vptt.seed;
        let m = row.len();
        let acc = &mut self.tables[qi];
        for (a, s) in acc.methods.iter_mut().zip(row) {
            a.pa.push(s.pa);
            a.gs.push(s.gs);
            a.cp.push(s.cp);
            a.cp_soft.push(s.cp_soft);
            a.nv.push(s.nv);
            if let Some(n) = s.nv_soft {
                a.nv_soft.push(n);
            }
            a.vptt.push(s.vptt);
            a.vptt_c.push(s.vptt_c);
        }
        for (si, get) in [(0usize, (|s: &VpttScore| s.vptt) as fn(&VpttScore) -> f64), (1, |s: &VpttScore| s.vptt_c)] {
            let vals: Vec<f64> = row.iter().map(get).collect();
            if let Some((best, tied)) = stats::argmax_with_tie(&vals, eps) {
                let top = vals[best];
                if tied {
                    for (i, v) in vals.iter().enumerate() {
                        if top - v <= eps {
                            acc.methods[i].ties[si] += 1;
                        }
                    }
                } else {
                    acc.methods[best].wins[si] += 1;
                }
            }
            for a in 0..m {
                for b in 0..m {
                    if vals[a] - vals[b] > eps {
                        acc.beats[si][a * m + b] += 1;
                    }
                }
            }
        }
        // Bottom-k sample of (VPTT, VPTT_c) pairs for Spearman ρ (finite pairs only).
        if cap > 0 {
            for (mi, s) in row.iter().enumerate() {
                if s.vptt.is_finite() && s.vptt_c.is_finite() {
                    acc.sample.push((sample_key(seed, persona, qi, mi), s.vptt, s.vptt_c));
                }
            }
            acc.compact(cap);
        }
    }

    /// The report: one table per query, then one per task kind (all generation queries, all
    /// edit queries) when there are several queries of that kind.
    pub fn report(&self) -> Result<Report> {
        let names: Vec<String> = self.methods.iter().map(|m| m.name.clone()).collect();
        let mut tables = Vec::new();
        for (q, acc) in self.queries.iter().zip(&self.tables) {
            let mut acc = acc.clone();
            acc.normalize(self.options.spearman_sample);
            let rho = if acc.sample.len() >= 2 {
                let (a, b): (Vec<f64>, Vec<f64>) = acc.sample.iter().map(|&(_, a, b)| (a, b)).unzip();
                stats::spearman(&a, &b).ok()
            } else {
                None
            };
            tables.push(self.table(q.name.clone(), Some(q.clone()), &acc, rho)?);
        }
        for (task, label) in [(Task::Generate, "all generation queries"), (Task::Edit, "all edit queries")] {
            let idx: Vec<usize> = (0..self.queries.len()).filter(|&i| self.queries[i].task == task).collect();
            if idx.len() < 2 {
                continue;
            }
            let mut acc = QueryAcc::new(self.methods.len());
            for i in idx {
                acc.merge(&self.tables[i]);
            }
            acc.sample.clear();
            tables.push(self.table(label.to_string(), None, &acc, None)?);
        }
        Ok(Report {
            personas: self.personas,
            methods: names,
            novelty: self.options.novelty,
            weights: self.options.vptt.weights,
            confidence: self.options.confidence,
            baseline: self.options.baseline.clone(),
            tables,
            timings: self.timings,
        })
    }

    fn table(&self, name: String, query: Option<Query>, acc: &QueryAcc, rho: Option<f64>) -> Result<Table> {
        let m = self.methods.len();
        let baseline = self.options.baseline.as_ref().and_then(|b| self.methods.iter().position(|x| &x.name == b));
        let summarize = |si: usize, pick: fn(&MethodAcc) -> &Moments| -> Result<(Vec<Summary>, Option<usize>)> {
            let best = (0..m)
                .filter_map(|i| pick(&acc.methods[i]).mean().map(|v| (i, v)))
                .fold(None, |b: Option<(usize, f64)>, (i, v)| match b {
                    Some((_, bv)) if bv >= v => b,
                    _ => Some((i, v)),
                })
                .map(|(i, _)| i);
            let rows = (0..m)
                .map(|i| {
                    let a = &acc.methods[i];
                    let mo = pick(a);
                    let n = mo.count();
                    let ci = if n > 0 {
                        Some(stats::wilson_interval(a.wins[si], n, self.options.confidence)?)
                    } else {
                        None
                    };
                    let vs_best = match best {
                        Some(b) if b != i => {
                            let wins = acc.beats[si][i * m + b];
                            let losses = acc.beats[si][b * m + i];
                            let decided = wins + losses;
                            Some(HeadToHead {
                                against: self.methods[b].name.clone(),
                                wins,
                                losses,
                                ties: n.saturating_sub(decided),
                                win_rate: (decided > 0).then(|| wins as f64 / decided as f64),
                                p_value: if decided > 0 {
                                    Some(stats::binomial_test(wins, decided, 0.5)?)
                                } else {
                                    None
                                },
                                interval: if decided > 0 {
                                    Some(stats::wilson_interval(wins, decided, self.options.confidence)?)
                                } else {
                                    None
                                },
                            })
                        }
                        _ => None,
                    };
                    Ok(Summary {
                        mean: mo.mean(),
                        sd: mo.sd(),
                        win_pct: (n > 0).then(|| 100.0 * a.wins[si] as f64 / n as f64),
                        tie_pct: (n > 0).then(|| 100.0 * a.ties[si] as f64 / n as f64),
                        win_interval: ci,
                        d_vs_best: best.filter(|&b| b != i).and_then(|b| stats::cohens_d(mo, pick(&acc.methods[b]))),
                        d_vs_baseline: baseline
                            .filter(|&b| b != i)
                            .and_then(|b| stats::cohens_d(mo, pick(&acc.methods[b]))),
                        vs_best,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((rows, best))
        };
        let (vptt, best_v) = summarize(0, |a| &a.vptt)?;
        let (vptt_c, best_c) = summarize(1, |a| &a.vptt_c)?;
        let stat = |mo: &Moments| Stat { mean: mo.mean(), sd: mo.sd() };
        let rows = (0..m)
            .zip(vptt.into_iter().zip(vptt_c))
            .map(|(i, (v, c))| {
                let a = &acc.methods[i];
                let zeroed =
                    self.options.novelty == NoveltyConvention::ZeroWithoutMemory && !self.methods[i].reads_memory;
                MethodRow {
                    method: self.methods[i].name.clone(),
                    n: a.vptt.count(),
                    pa: stat(&a.pa),
                    gs: stat(&a.gs),
                    cp: stat(&a.cp),
                    cp_soft: stat(&a.cp_soft),
                    nv: (!zeroed).then(|| stat(&a.nv)),
                    nv_soft: (!zeroed && a.nv_soft.count() > 0).then(|| stat(&a.nv_soft)),
                    vptt_c: c,
                    vptt: v,
                }
            })
            .collect();
        Ok(Table {
            name,
            query,
            best_vptt: best_v.map(|i| self.methods[i].name.clone()),
            best_vptt_c: best_c.map(|i| self.methods[i].name.clone()),
            spearman_vptt_vs_vptt_c: rho,
            rows,
        })
    }
}

#[cfg(test)]
mod tests;

/// Mean and sample standard deviation (`None` without enough samples).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    pub mean: Option<f64>,
    pub sd: Option<f64>,
}

/// Pairwise comparison of a method with the best one (ties excluded from the test).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadToHead {
    pub against: String,
    pub wins: u64,
    pub losses: u64,
    pub ties: u64,
    /// wins / (wins + losses).
    pub win_rate: Option<f64>,
    /// Exact two-sided binomial test of the win rate against 1/2.
    pub p_value: Option<f64>,
    /// Wilson interval of the win rate.
    pub interval: Option<(f64, f64)>,
}

/// One composite score of one method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub mean: Option<f64>,
    pub sd: Option<f64>,
    /// Share of (persona, query) pairs where this method alone scored best.
    pub win_pct: Option<f64>,
    /// Share where it tied for best with another method.
    pub tie_pct: Option<f64>,
    /// Wilson interval of the win share (as a fraction).
    pub win_interval: Option<(f64, f64)>,
    /// Cohen's d (pooled s.d.) against the method with the best mean; `None` for that method.
    pub d_vs_best: Option<f64>,
    /// Cohen's d against the baseline method; `None` for the baseline itself.
    pub d_vs_baseline: Option<f64>,
    pub vs_best: Option<HeadToHead>,
}

/// One method's row of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodRow {
    pub method: String,
    pub n: u64,
    pub pa: Stat,
    pub gs: Stat,
    pub cp: Stat,
    pub cp_soft: Stat,
    /// `None` where the novelty convention set NV to 0 for this method.
    pub nv: Option<Stat>,
    pub nv_soft: Option<Stat>,
    pub vptt_c: Summary,
    pub vptt: Summary,
}

/// One table: a query, or a group of queries of one task kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub name: String,
    /// The query, for a per-query table.
    pub query: Option<Query>,
    pub best_vptt: Option<String>,
    pub best_vptt_c: Option<String>,
    /// Spearman ρ between VPTT and VPTT_c over this query's samples (reservoir).
    pub spearman_vptt_vs_vptt_c: Option<f64>,
    pub rows: Vec<MethodRow>,
}

/// The evaluation's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub personas: u64,
    pub methods: Vec<String>,
    pub novelty: NoveltyConvention,
    pub weights: super::vptt::Weights,
    pub confidence: f64,
    pub baseline: Option<String>,
    pub tables: Vec<Table>,
    pub timings: Timings,
}

impl Report {
    pub fn to_json(&self, pretty: bool) -> Result<String> {
        let r = if pretty { serde_json::to_string_pretty(self) } else { serde_json::to_string(self) };
        r.map_err(|e| Error::InvalidInput(format!("report is not serialisable: {e}")))
    }

    pub fn from_json(json: &str) -> Result<Report> {
        zipp_core::json::parse(json, &zipp_core::Location::default(), "evaluation report")
    }

    /// The tables as text, laid out like the VPTT paper's Table 7: PA, GS, CP, NV, then
    /// VPTT_c and VPTT each with mean, win % and Cohen's d against the best method ("—"
    /// for the best itself and for NV set to 0 by the novelty convention).
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let f3 = |x: Option<f64>| x.map_or_else(|| "—".to_string(), |v| format!("{v:.3}"));
        let fd = |x: Option<f64>| x.map_or_else(|| "—".to_string(), |v| format!("{v:.2}"));
        let fp = |x: Option<f64>| x.map_or_else(|| "—".to_string(), |v| format!("{v:.1}%"));
        let _ = writeln!(
            out,
            "{} personas · novelty: {} · VPTT = {}·PA + {}·GS + {}·CP + {}·NV · d = Cohen's d vs the best method",
            self.personas,
            match self.novelty {
                NoveltyConvention::ZeroWithoutMemory => "NV = 0 for methods that never read the memory (paper)",
                NoveltyConvention::Measured => "measured for every method",
            },
            self.weights.pa,
            self.weights.gs,
            self.weights.cp,
            self.weights.nv
        );
        let width = self.methods.iter().map(|m| m.len()).max().unwrap_or(6).max(6);
        for t in &self.tables {
            let _ = writeln!(out);
            match &t.query {
                Some(q) => {
                    let _ = writeln!(
                        out,
                        "{} ({}): \"{}\"",
                        t.name,
                        if q.task == Task::Generate { "generation" } else { "editing" },
                        q.prompt
                    );
                }
                None => {
                    let _ = writeln!(out, "{}", t.name);
                }
            }
            let _ = writeln!(
                out,
                "{:<width$}  {:>6} {:>6} {:>6} {:>6} │ {:>6} {:>6} {:>6} │ {:>6} {:>6} {:>6}",
                "method", "PA", "GS", "CP", "NV", "VPTT_c", "win%", "d", "VPTT", "win%", "d"
            );
            for r in &t.rows {
                let mark = |best: &Option<String>| if best.as_deref() == Some(r.method.as_str()) { "*" } else { " " };
                let _ = writeln!(
                    out,
                    "{:<width$}  {:>6} {:>6} {:>6} {:>6} │ {:>5}{} {:>6} {:>6} │ {:>5}{} {:>6} {:>6}",
                    r.method,
                    f3(r.pa.mean),
                    f3(r.gs.mean),
                    f3(r.cp.mean),
                    f3(r.nv.and_then(|s| s.mean)),
                    f3(r.vptt_c.mean),
                    mark(&t.best_vptt_c),
                    fp(r.vptt_c.win_pct),
                    fd(r.vptt_c.d_vs_best),
                    f3(r.vptt.mean),
                    mark(&t.best_vptt),
                    fp(r.vptt.win_pct),
                    fd(r.vptt.d_vs_best),
                );
            }
            if let Some(rho) = t.spearman_vptt_vs_vptt_c {
                let _ = writeln!(out, "Spearman ρ(VPTT, VPTT_c) over this query's samples: {rho:.3}");
            }
        }
        out
    }
}
