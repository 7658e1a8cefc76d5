//! The text-level VPTT score (SPEC §4; VPTT paper §3.4): how much a rewritten prompt `p'`
//! reads like something this person would post, from text alone.
//!
//! With `v = unit(embed(p'))` and `V = {v_i}` the unit embeddings of the persona's captions:
//!
//! - **PA** (persona alignment) `= cos(v, unit(embed(persona text)))`.
//! - **GS** (subspace fidelity): `B` an orthonormal basis of `span(V)` by modified
//!   Gram–Schmidt (a vector whose residual norm is below [`VpttOptions::gs_tolerance`] is
//!   dropped, so duplicated or dependent captions are safe); `GS = cos(v, B Bᵀ v) = ‖Bᵀ v‖`.
//! - **CP** (cluster proximity): caption coordinates `x_i = unit(Bᵀ v_i)` are clustered by
//!   k-means (deterministic k-means++ seeding, `k = clamp(round(sqrt(N/2)), 1, N)`); with
//!   `x = unit(Bᵀ v)` and `d_k = ‖x − c_k‖`, hard `CP = exp(−min_k d_k)`, soft
//!   `CP~ = Σ_k π_k exp(−d_k)`, `π = softmax(−d/τ)`. The paper's raw coordinates `x = Bᵀ v`
//!   are [`VpttOptions::cp_unit_coordinates`]` = false`.
//! - **NV** (novelty) `= 1 − max_i |Tri(p') ∩ Tri(c_i)| / |Tri(p')|` over sets of lower-cased
//!   word trigrams; `NV = 1` when `p'` has fewer than three words. The soft variant
//!   ([`Novelty::Soft`]) replaces exact trigram matches by embedding similarity:
//!   `NV~ = 1 − max_i (1/|Tri(p')|) Σ_t max_s cos(φ(t), φ(s))`, `s` over `Tri(c_i)`.
//! - `VPTT = 0.2 PA + 0.3 GS + 0.3 CP + 0.2 NV` (weights: [`Weights`]) and
//!   `VPTT_c = (PA + GS + CP) / 3`.
//!
//! Everything that depends only on the persona — the persona-text vector, the caption
//! vectors (taken from the persona's [`MemoryIndex`], so the personalizers and the scorer
//! embed the captions once between them), the basis, the cluster centroids and the caption
//! trigram sets — is computed once in [`PersonaScorer::new`] and reused for every prompt.
//!
//! The paper sets NV to 0 for methods that never saw the captions; that convention is not
//! applied here (a score is a score) but by the evaluation, as an explicit option, through
//! [`VpttScore::with_novelty`].
//!
//! With vectors from any embedder (here three made-up 3-D ones):
//!
//! ```
//! use zipp_core::embed::Embeddings;
//! use zipp_eval::vptt::{PersonaScorer, VpttOptions};
//!
//! let texts = ["a red bicycle leaning on a blue wall", "morning light over the harbour"];
//! let captions = Embeddings::new(3, vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0])?;
//! let persona_vec = [0.6, 0.8, 0.0];
//! let scorer = PersonaScorer::from_parts("ana", &persona_vec, &captions, &texts, &VpttOptions::default())?;
//! // A caption itself: inside the span (GS = 1), all of its trigrams seen (NV = 0).
//! let s = scorer.score_vector(captions.row(0), texts[0])?;
//! assert!((s.gs - 1.0).abs() < 1e-12 && s.nv == 0.0 && (s.pa - 0.6).abs() < 1e-6);
//! // A prompt half outside the span: GS = cos 45°, and new words (NV = 1).
//! let s = scorer.score_vector(&[1.0, 0.0, 1.0], "a quiet library at night")?;
//! assert!((s.gs - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-6 && s.nv == 1.0);
//! # Ok::<(), zipp_core::Error>(())
//! ```

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use zipp_core::embed::{Embedder, Embeddings};
use zipp_core::retrieve::{IndexedPersona, MemoryIndex};
use zipp_core::rng::{fnv1a, SplitMix};
use zipp_core::{Error, Result};

/// Weights of the four components in `VPTT` (SPEC §4: 0.2, 0.3, 0.3, 0.2).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weights {
    pub pa: f64,
    pub gs: f64,
    pub cp: f64,
    pub nv: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights { pa: 0.2, gs: 0.3, cp: 0.3, nv: 0.2 }
    }
}

/// How novelty is measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Novelty {
    /// Exact word-trigram overlap (the paper's evaluation form). Cheap.
    #[default]
    Hard,
    /// Hard NV plus the soft relaxation `NV~` over MiniLM trigram embeddings. Costs one
    /// embedding per distinct caption trigram per persona and per prompt trigram.
    Soft,
}

/// Options of the VPTT score; the defaults are SPEC §4's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VpttOptions {
    pub weights: Weights,
    /// A caption whose Gram–Schmidt residual norm is below this is dropped from the basis.
    pub gs_tolerance: f64,
    /// Number of clusters; `None` = `clamp(round(sqrt(N/2)), 1, N)`.
    pub clusters: Option<usize>,
    /// Lloyd iterations at most (k-means stops earlier when assignments settle).
    pub kmeans_iterations: usize,
    /// Seed of k-means++ (mixed with the persona id, so personas get different draws but a
    /// given persona always gets the same clusters).
    pub seed: u64,
    /// Temperature τ of the soft CP.
    pub soft_cp_temperature: f64,
    /// CP on the direction of `x = Bᵀv` (`x/‖x‖`, SPEC §4; the default) instead of `x`
    /// itself (`false`: the paper's raw form, for comparison). With `x` as is, a prompt far
    /// outside the caption span has `x` near the origin, which can be closer to the
    /// (shrunken) centroids of diverse captions than a caption itself is; unit coordinates
    /// remove that effect. Caption coordinates are unit either way (captions lie in their
    /// own span); a prompt orthogonal to the span (`x = 0`, no direction) is scored at the
    /// origin in both forms.
    pub cp_unit_coordinates: bool,
    pub novelty: Novelty,
}

impl Default for VpttOptions {
    fn default() -> Self {
        VpttOptions {
            weights: Weights::default(),
            gs_tolerance: 1e-6,
            clusters: None,
            kmeans_iterations: 100,
            seed: 0,
            soft_cp_temperature: 0.1,
            cp_unit_coordinates: true,
            novelty: Novelty::Hard,
        }
    }
}

impl VpttOptions {
    /// Options from JSON (omitted fields take the defaults), validated; errors are located.
    pub fn from_json(json: &str) -> Result<VpttOptions> {
        let options: VpttOptions = zipp_core::json::from_str(json, "VPTT options")?;
        options.validate()?;
        Ok(options)
    }

    /// Checks every field: finite non-negative weights summing to 1 (± 1e-9), a tolerance in
    /// (0, 1), at least one k-means iteration, a positive finite temperature.
    pub fn validate(&self) -> Result<()> {
        let w = self.weights;
        let ws = [w.pa, w.gs, w.cp, w.nv];
        if ws.iter().any(|x| !x.is_finite() || *x < 0.0) || (ws.iter().sum::<f64>() - 1.0).abs() > 1e-9 {
            return Err(Error::InvalidInput(format!(
                "VPTT weights must be finite, non-negative and sum to 1, got pa {} gs {} cp {} nv {}",
                w.pa, w.gs, w.cp, w.nv
            )));
        }
        if !(self.gs_tolerance > 0.0 && self.gs_tolerance < 1.0) {
            return Err(Error::InvalidInput(format!("gs_tolerance must be in (0, 1), got {}", self.gs_tolerance)));
        }
        if self.clusters == Some(0) {
            return Err(Error::InvalidInput("clusters must be at least 1".into()));
        }
        if self.kmeans_iterations == 0 {
            return Err(Error::InvalidInput("kmeans_iterations must be at least 1".into()));
        }
        if !(self.soft_cp_temperature.is_finite() && self.soft_cp_temperature > 0.0) {
            return Err(Error::InvalidInput(format!(
                "soft_cp_temperature must be positive and finite, got {}",
                self.soft_cp_temperature
            )));
        }
        Ok(())
    }
}

/// The score of one prompt against one persona. All components lie in `[0, 1]`, except PA,
/// a cosine, which lies in `[-1, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VpttScore {
    pub pa: f64,
    pub gs: f64,
    pub cp: f64,
    /// The soft relaxation of CP.
    pub cp_soft: f64,
    pub nv: f64,
    /// The soft relaxation of NV, with [`Novelty::Soft`].
    pub nv_soft: Option<f64>,
    /// `w_pa PA + w_gs GS + w_cp CP + w_nv NV`.
    pub vptt: f64,
    /// `(PA + GS + CP) / 3`.
    pub vptt_c: f64,
}

impl VpttScore {
    /// Combines the components into `vptt` and `vptt_c`.
    pub fn new(pa: f64, gs: f64, cp: f64, cp_soft: f64, nv: f64, nv_soft: Option<f64>, w: &Weights) -> VpttScore {
        VpttScore {
            pa,
            gs,
            cp,
            cp_soft,
            nv,
            nv_soft,
            vptt: w.pa * pa + w.gs * gs + w.cp * cp + w.nv * nv,
            vptt_c: (pa + gs + cp) / 3.0,
        }
    }

    /// The same score with novelty replaced by `nv` (both forms) and `vptt` recombined: the
    /// paper's convention for methods that never saw the captions is `with_novelty(0.0, w)`.
    pub fn with_novelty(self, nv: f64, w: &Weights) -> VpttScore {
        let soft = self.nv_soft.map(|_| nv);
        VpttScore::new(self.pa, self.gs, self.cp, self.cp_soft, nv, soft, w)
    }
}

/// A persona's scoring state: everything that depends on the persona alone.
#[derive(Debug, Clone)]
pub struct PersonaScorer {
    id: String,
    dim: usize,
    options: VpttOptions,
    persona_vec: Vec<f64>,
    /// Orthonormal basis rows, `rank × dim`.
    basis: Vec<f64>,
    rank: usize,
    /// Cluster centroids in basis coordinates, `k × rank`.
    centroids: Vec<f64>,
    k: usize,
    words: HashMap<String, u32>,
    /// Per caption, its set of word-id trigrams.
    trigrams: Vec<HashSet<[u32; 3]>>,
    /// Per caption, unit embeddings of its distinct trigrams (soft novelty only).
    trigram_vecs: Vec<Embeddings>,
}

impl PersonaScorer {
    /// Builds the state of `persona` with `embedder`: the caption vectors come from the
    /// persona's memory index (built now if no personalizer built it yet), the persona text
    /// is embedded once. A persona without posts is an error: GS and CP need captions.
    pub fn new(persona: &IndexedPersona, embedder: &dyn Embedder, options: &VpttOptions) -> Result<PersonaScorer> {
        options.validate()?;
        let p = persona.persona();
        if p.memory.is_empty() {
            return Err(no_captions(&p.id));
        }
        let index: std::sync::Arc<MemoryIndex> = persona.index(embedder)?;
        let text = p.persona_text();
        let persona_vec = embedder.embed(&[if text.is_empty() { p.id.as_str() } else { text.as_str() }])?;
        zipp_core::embed::check_shape(embedder, 1, &persona_vec)?;
        let captions: Vec<&str> = p.memory.iter().map(|post| post.caption.as_str()).collect();
        let mut scorer = PersonaScorer::from_parts(&p.id, persona_vec.row(0), &index.captions, &captions, options)?;
        if options.novelty == Novelty::Soft {
            scorer.embed_caption_trigrams(embedder, &captions)?;
        }
        Ok(scorer)
    }

    /// Builds the state from vectors already computed: the persona-text vector, the caption
    /// vectors (one row per caption, normalised here) and the caption texts (for novelty).
    /// With [`Novelty::Soft`] the trigram vectors are missing until
    /// [`PersonaScorer::new`] embeds them; here `nv_soft` stays `None`.
    pub fn from_parts(
        id: &str,
        persona_vec: &[f32],
        captions: &Embeddings,
        caption_texts: &[&str],
        options: &VpttOptions,
    ) -> Result<PersonaScorer> {
        options.validate()?;
        let n = captions.len();
        if n == 0 {
            return Err(no_captions(id));
        }
        if caption_texts.len() != n {
            return Err(Error::InvalidInput(format!(
                "persona `{id}`: {n} caption vectors but {} caption texts",
                caption_texts.len()
            )));
        }
        let dim = captions.dim();
        if persona_vec.len() != dim {
            return Err(Error::InvalidInput(format!(
                "persona `{id}`: persona vector has {} dimensions, captions have {dim}",
                persona_vec.len()
            )));
        }
        let persona_vec = unit_f64(persona_vec)
            .ok_or_else(|| Error::InvalidInput(format!("persona `{id}`: persona vector is zero or not finite")))?;
        let mut vs = Vec::with_capacity(n * dim);
        for (i, row) in captions.rows().enumerate() {
            let u = unit_f64(row).ok_or_else(|| {
                Error::InvalidInput(format!("persona `{id}`: caption vector {i} is zero or not finite"))
            })?;
            vs.extend(u);
        }
        let basis = gram_schmidt(&vs, dim, options.gs_tolerance);
        let rank = basis.len() / dim;
        let coords: Vec<f64> = (0..n).flat_map(|i| project(&basis, dim, &vs[i * dim..(i + 1) * dim])).collect();
        let k = options.clusters.unwrap_or_else(|| default_clusters(n)).clamp(1, n);
        let seed = options.seed ^ fnv1a(id.as_bytes());
        let centroids = kmeans(&coords, rank, k, options.kmeans_iterations, seed);
        let k = centroids.len() / rank.max(1);
        let mut words = HashMap::new();
        let trigrams = caption_texts
            .iter()
            .map(|c| {
                let ids: Vec<u32> = tokenize_words(c)
                    .map(|w| {
                        let next = words.len() as u32;
                        *words.entry(w).or_insert(next)
                    })
                    .collect();
                ids.windows(3).map(|t| [t[0], t[1], t[2]]).collect()
            })
            .collect();
        Ok(PersonaScorer {
            id: id.to_string(),
            dim,
            options: options.clone(),
            persona_vec,
            basis,
            rank,
            centroids,
            k: if rank == 0 { 0 } else { k },
            words,
            trigrams,
            trigram_vecs: Vec::new(),
        })
    }

    fn embed_caption_trigrams(&mut self, embedder: &dyn Embedder, captions: &[&str]) -> Result<()> {
        // Every distinct trigram of the persona is embedded once, in one batch.
        let per_caption: Vec<Vec<String>> = captions.iter().map(|c| distinct_trigram_texts(c)).collect();
        let mut all: Vec<&str> = per_caption.iter().flatten().map(String::as_str).collect();
        all.sort_unstable();
        all.dedup();
        let vecs = if all.is_empty() { Embeddings::empty(embedder.dim()) } else { embedder.embed(&all)? };
        zipp_core::embed::check_shape(embedder, all.len(), &vecs)?;
        let dim = embedder.dim();
        self.trigram_vecs = per_caption
            .iter()
            .map(|ts| {
                let mut data = Vec::with_capacity(ts.len() * dim);
                for t in ts {
                    let at = all.binary_search(&t.as_str()).expect("trigram collected above");
                    data.extend_from_slice(vecs.row(at));
                }
                if ts.is_empty() {
                    Ok(Embeddings::empty(dim))
                } else {
                    Embeddings::new(dim, data)
                }
            })
            .collect::<Result<_>>()?;
        Ok(())
    }

    /// The persona's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Dimension of the caption span (≤ number of captions).
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Number of caption clusters.
    pub fn clusters(&self) -> usize {
        self.k
    }

    /// Cluster centroids in basis coordinates (`clusters()` rows of `rank()` numbers).
    pub fn centroids(&self) -> impl Iterator<Item = &[f64]> {
        self.centroids.chunks_exact(self.rank.max(1)).take(self.k)
    }

    /// Coordinates `Bᵀ v` of a vector in the caption basis (`v` is used as given).
    pub fn coordinates(&self, v: &[f32]) -> Result<Vec<f64>> {
        self.check_vector(v)?;
        let v: Vec<f64> = v.iter().map(|&x| x as f64).collect();
        Ok(project(&self.basis, self.dim, &v))
    }

    /// Hard and soft cluster proximity of basis coordinates `x`.
    pub fn cluster_proximity(&self, x: &[f64]) -> Result<(f64, f64)> {
        if x.len() != self.rank || x.iter().any(|v| !v.is_finite()) {
            return Err(Error::InvalidInput(format!(
                "coordinates must be {} finite numbers, got {}",
                self.rank,
                x.len()
            )));
        }
        Ok(self.cp(x))
    }

    fn cp(&self, x: &[f64]) -> (f64, f64) {
        if self.k == 0 {
            return (0.0, 0.0);
        }
        let d: Vec<f64> =
            self.centroids().map(|c| c.iter().zip(x).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt()).collect();
        let dmin = d.iter().copied().fold(f64::INFINITY, f64::min);
        let tau = self.options.soft_cp_temperature;
        // Softmax of −d/τ, shifted by the minimum so the largest term is exp(0).
        let e: Vec<f64> = d.iter().map(|di| (-(di - dmin) / tau).exp()).collect();
        let z: f64 = e.iter().sum();
        let soft = e.iter().zip(&d).map(|(ei, di)| ei / z * (-di).exp()).sum();
        ((-dmin).exp(), soft)
    }

    /// Hard novelty of `text` against the captions.
    pub fn novelty(&self, text: &str) -> f64 {
        // Words no caption has get fresh ids past the captions' vocabulary, so a trigram
        // containing one counts in |Tri(p')| but can never match.
        let mut unknown: HashMap<String, u32> = HashMap::new();
        let ids: Vec<u32> = tokenize_words(text)
            .map(|w| match self.words.get(&w) {
                Some(&id) => id,
                None => {
                    let next = (self.words.len() + unknown.len()) as u32;
                    *unknown.entry(w).or_insert(next)
                }
            })
            .collect();
        let prompt: HashSet<[u32; 3]> = ids.windows(3).map(|t| [t[0], t[1], t[2]]).collect();
        if prompt.is_empty() {
            return 1.0;
        }
        let best =
            self.trigrams.iter().map(|set| prompt.iter().filter(|t| set.contains(*t)).count()).max().unwrap_or(0);
        1.0 - best as f64 / prompt.len() as f64
    }

    fn check_vector(&self, v: &[f32]) -> Result<()> {
        if v.len() != self.dim {
            return Err(Error::InvalidInput(format!(
                "prompt vector has {} dimensions, persona `{}` was scored with {}",
                v.len(),
                self.id,
                self.dim
            )));
        }
        if v.iter().any(|x| !x.is_finite()) {
            return Err(Error::InvalidInput("prompt vector is not finite".into()));
        }
        Ok(())
    }

    /// Scores a prompt whose embedding `v` (same embedder as the persona) is given. `v` is
    /// normalised here. `nv_soft` is `None` (it needs the embedder: use [`Self::score`]).
    pub fn score_vector(&self, v: &[f32], text: &str) -> Result<VpttScore> {
        self.check_vector(v)?;
        let v = unit_f64(v).ok_or_else(|| Error::InvalidInput("prompt vector is zero".into()))?;
        let pa = dot(&v, &self.persona_vec).clamp(-1.0, 1.0);
        let x = project(&self.basis, self.dim, &v);
        let norm = x.iter().map(|a| a * a).sum::<f64>().sqrt();
        let gs = norm.min(1.0);
        let (cp, cp_soft) = if self.options.cp_unit_coordinates && norm > 0.0 {
            self.cp(&x.iter().map(|a| a / norm).collect::<Vec<_>>())
        } else {
            self.cp(&x)
        };
        let nv = self.novelty(text);
        Ok(VpttScore::new(pa, gs, cp, cp_soft, nv, None, &self.options.weights))
    }

    /// Scores prompts, embedding them in one batch with `embedder` (the persona's).
    pub fn score(&self, embedder: &dyn Embedder, prompts: &[&str]) -> Result<Vec<VpttScore>> {
        if prompts.is_empty() {
            return Ok(Vec::new());
        }
        let vs = embedder.embed(prompts)?;
        zipp_core::embed::check_shape(embedder, prompts.len(), &vs)?;
        let mut out: Vec<VpttScore> =
            prompts.iter().enumerate().map(|(i, p)| self.score_vector(vs.row(i), p)).collect::<Result<_>>()?;
        if self.options.novelty == Novelty::Soft {
            let soft = self.soft_novelty(embedder, prompts)?;
            for (s, nv) in out.iter_mut().zip(soft) {
                s.nv_soft = Some(nv);
            }
        }
        Ok(out)
    }

    /// Soft novelty of each prompt (embeds the prompts' distinct trigrams in one batch).
    pub fn soft_novelty(&self, embedder: &dyn Embedder, prompts: &[&str]) -> Result<Vec<f64>> {
        if self.trigram_vecs.len() != self.trigrams.len() {
            return Err(Error::InvalidInput(format!(
                "persona `{}` was scored without Novelty::Soft: its caption trigrams are not embedded",
                self.id
            )));
        }
        let per_prompt: Vec<Vec<String>> = prompts.iter().map(|p| distinct_trigram_texts(p)).collect();
        let all: Vec<&str> = per_prompt.iter().flatten().map(String::as_str).collect();
        let vecs = if all.is_empty() { Embeddings::empty(embedder.dim()) } else { embedder.embed(&all)? };
        zipp_core::embed::check_shape(embedder, all.len(), &vecs)?;
        let mut at = 0;
        Ok(per_prompt
            .iter()
            .map(|ts| {
                let rows: Vec<&[f32]> = (at..at + ts.len()).map(|r| vecs.row(r)).collect();
                at += ts.len();
                if rows.is_empty() {
                    return 1.0;
                }
                let best = self
                    .trigram_vecs
                    .iter()
                    .map(|cap| {
                        if cap.is_empty() {
                            return 0.0;
                        }
                        let total: f64 = rows
                            .iter()
                            .map(|t| cap.dots(t).into_iter().fold(f32::NEG_INFINITY, f32::max).clamp(0.0, 1.0) as f64)
                            .sum();
                        total / rows.len() as f64
                    })
                    .fold(0.0, f64::max);
                (1.0 - best).clamp(0.0, 1.0)
            })
            .collect())
    }
}

fn no_captions(id: &str) -> Error {
    Error::InvalidInput(format!("persona `{id}` has no posts: the VPTT score (GS, CP, NV) needs at least one caption"))
}

/// `clamp(round(sqrt(N/2)), 1, N)`.
pub fn default_clusters(n: usize) -> usize {
    ((n as f64 / 2.0).sqrt().round() as usize).clamp(1, n.max(1))
}

/// Lower-cased words: maximal runs of alphanumeric characters (apostrophes inside a word
/// are kept, so "it's" is one word).
pub fn tokenize_words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .map(|w| w.trim_matches('\''))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// The distinct word trigrams of `text`, each as "w1 w2 w3", in first-seen order.
fn distinct_trigram_texts(text: &str) -> Vec<String> {
    let words: Vec<String> = tokenize_words(text).collect();
    let mut seen = HashSet::new();
    words.windows(3).map(|t| t.join(" ")).filter(|t| seen.insert(t.clone())).collect()
}

fn unit_f64(v: &[f32]) -> Option<Vec<f64>> {
    let v: Vec<f64> = v.iter().map(|&x| x as f64).collect();
    let n = dot(&v, &v).sqrt();
    (n.is_finite() && n > 0.0).then(|| v.iter().map(|x| x / n).collect())
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `Bᵀ v` for a row-major basis.
fn project(basis: &[f64], dim: usize, v: &[f64]) -> Vec<f64> {
    basis.chunks_exact(dim).map(|b| dot(b, v)).collect()
}

/// Modified Gram–Schmidt over row vectors (`dim` each), with one re-orthogonalisation pass
/// ("twice is enough") so near-dependent captions do not leak non-orthogonal directions. A
/// vector whose residual norm falls below `tol` is dropped. Returns the basis rows.
pub fn gram_schmidt(vectors: &[f64], dim: usize, tol: f64) -> Vec<f64> {
    let mut basis: Vec<f64> = Vec::new();
    for v in vectors.chunks_exact(dim) {
        let mut w = v.to_vec();
        for _ in 0..2 {
            for b in basis.chunks_exact(dim) {
                let c = dot(b, &w);
                w.iter_mut().zip(b).for_each(|(x, y)| *x -= c * y);
            }
        }
        let n = dot(&w, &w).sqrt();
        if n >= tol && n.is_finite() {
            basis.extend(w.iter().map(|x| x / n));
        }
    }
    basis
}

fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// k-means over `n = points.len() / dim` points with k-means++ seeding from `seed`; returns
/// the centroids (row-major). Deterministic: the draws come from `seed` alone and ties go to
/// the lowest index. When fewer than `k` distinct points exist, fewer centroids are returned
/// (a duplicate point adds no new cluster).
pub fn kmeans(points: &[f64], dim: usize, k: usize, iterations: usize, seed: u64) -> Vec<f64> {
    if dim == 0 || points.is_empty() || k == 0 {
        return Vec::new();
    }
    let n = points.len() / dim;
    let point = |i: usize| &points[i * dim..(i + 1) * dim];
    let mut rng = SplitMix(seed);
    let mut centroids: Vec<f64> = Vec::with_capacity(k * dim);
    let first = (rng.unit() * n as f64) as usize % n;
    centroids.extend_from_slice(point(first));
    let mut d2: Vec<f64> = (0..n).map(|i| sq_dist(point(i), point(first))).collect();
    while centroids.len() / dim < k {
        let total: f64 = d2.iter().sum();
        if total <= 0.0 {
            break;
        }
        let mut r = rng.unit() * total;
        let mut pick = n - 1;
        for (i, d) in d2.iter().enumerate() {
            if *d > 0.0 && r < *d {
                pick = i;
                break;
            }
            r -= d;
        }
        if d2[pick] <= 0.0 {
            // Rounding ran past the end: take the farthest point instead.
            pick = (0..n).fold(0, |b, i| if d2[i] > d2[b] { i } else { b });
        }
        centroids.extend_from_slice(point(pick));
        for (i, d) in d2.iter_mut().enumerate() {
            *d = d.min(sq_dist(point(i), point(pick)));
        }
    }
    let k = centroids.len() / dim;
    let mut assign = vec![usize::MAX; n];
    for _ in 0..iterations {
        let mut changed = false;
        for (i, a) in assign.iter_mut().enumerate() {
            let best = (0..k)
                .map(|c| sq_dist(point(i), &centroids[c * dim..(c + 1) * dim]))
                .enumerate()
                .fold((0, f64::INFINITY), |b, (c, d)| if d < b.1 { (c, d) } else { b })
                .0;
            if *a != best {
                *a = best;
                changed = true;
            }
        }
        if !changed {
            break;
        }
        let mut sums = vec![0.0; k * dim];
        let mut counts = vec![0usize; k];
        for (i, &a) in assign.iter().enumerate() {
            counts[a] += 1;
            sums[a * dim..(a + 1) * dim].iter_mut().zip(point(i)).for_each(|(s, x)| *s += x);
        }
        for c in 0..k {
            // An empty cluster keeps its centroid.
            if counts[c] > 0 {
                for j in 0..dim {
                    centroids[c * dim + j] = sums[c * dim + j] / counts[c] as f64;
                }
            }
        }
    }
    centroids
}

#[cfg(test)]
mod tests;
