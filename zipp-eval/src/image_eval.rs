//! The image columns of an evaluation: CLIPScore (both conventions), personalization
//! CLIPScore and CMMD per method and query, computed from the images each method's prompts
//! produced, beside the VPTT text columns of [`crate::Report`].
//!
//! zipp-eval generates no image and loads no model: the caller renders every method's prompt
//! for a persona (with any image generator) and hands the images in, with the persona's
//! reference images when it has some (its own photos, its gallery). Embeddings come from an
//! [`ImageEmbedder`] — a CLIP model (zipp-factory implements it for zipp-diffusion's
//! `ClipModel`), or anything that maps images and texts into one joint space — and the
//! numbers from [`crate::image_metrics`].
//!
//! **What each column means.**
//!
//! - *CLIPScore*: every image made for a query is scored against **that query's base
//!   prompt** — the same text for every method — so the column compares methods on one
//!   prompt. Scoring each image against its own rewritten prompt would compare across
//!   prompts, which CLIPScore does not support: CLIP cosines of unrelated texts and images
//!   cluster around 0.1–0.3 whatever the quality, and their level differs from prompt to
//!   prompt. So compare CLIPScores of methods within one query's table; the task-kind tables
//!   average over the same queries for every method (each persona gives every method an
//!   image set for every query), which keeps methods comparable there too, but never compare
//!   a value of one query with one of another. Scales: `2.5 · max(cos, 0)` (Hessel et al.
//!   2021, in [0, 2.5]) and the ×100 convention `100 · max(cos, 0)` (torchmetrics, in
//!   [0, 100]); both are reported.
//! - *P-CLIP* (personalization CLIPScore): the mean cosine between an image and the
//!   persona's reference images, in [−1, 1]; only personas with references count.
//! - *CMMD* (Jayasumana et al. 2024): ×1000 the squared MMD (Gaussian kernel, σ = 10, on
//!   L2-normalised embeddings, biased estimator) between a method's images — of the personas
//!   with references — and all reference images, pooled over personas. 0 for identical sets;
//!   lower is closer to the people's own pictures. Sets are capped at
//!   [`ImageEvalOptions::cmmd_sample`] embeddings each (reservoir sampling, seeded), so memory
//!   stays bounded and the report's cost (quadratic in the set sizes) is predictable; CMMD on
//!   a few dozen images is noisy.
//!
//! Every (persona, query, method) cell is first averaged over its images, then the cells are
//! aggregated (mean and sample s.d. over cells), so a method that rendered more images per
//! prompt does not weigh more.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use zipp_core::image::Image;
//! # fn clip() -> Arc<dyn zipp_eval::image_eval::ImageEmbedder> { unimplemented!() }
//! # fn render(method: &str, prompt: &str) -> Vec<Image> { unimplemented!() }
//! use zipp_eval::image_eval::{ImageEvalOptions, ImageEvaluation, MethodImages};
//! use zipp_eval::Query;
//!
//! let methods = vec!["identity".to_string(), "vprag".to_string()];
//! let mut ev = ImageEvaluation::new(clip(), methods.clone(), Query::vptt(), ImageEvalOptions::default())?;
//! let references: Vec<Image> = Vec::new(); // the persona's own photos, if any
//! let mut images = Vec::new();
//! for q in Query::vptt() {
//!     for m in &methods {
//!         images.push(MethodImages { query: q.name.clone(), method: m.clone(), images: render(m, &q.prompt) });
//!     }
//! }
//! ev.add_persona("ana", &references, &images)?;
//! println!("{}", ev.report()?.table());
//! # Ok::<(), zipp_core::Error>(())
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use zipp_core::image::Image;
use zipp_core::personalize::Task;
use zipp_core::{Error, Result};

use crate::image_metrics;
use crate::stats::Moments;
use crate::{Query, Report, Stat};

/// Embeds images and texts into one joint space (CLIP's): what the image columns need.
/// Embeddings need not be normalised (the metrics normalise). `Send + Sync`: one embedder
/// serves every thread.
pub trait ImageEmbedder: Send + Sync {
    /// One embedding per image, in order, all of one dimension.
    fn embed_images(&self, images: &[Image]) -> Result<Vec<Vec<f32>>>;
    /// One embedding per text, in order, of the images' dimension.
    fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;
}

/// Checks an embedder's answer: `n` rows of one dimension (`dim` when given), non-empty.
fn checked(rows: Vec<Vec<f32>>, n: usize, what: &str, dim: Option<usize>) -> Result<Vec<Vec<f32>>> {
    if rows.len() != n {
        return Err(Error::Compute(format!("the image embedder returned {} {what} embeddings for {n}", rows.len())));
    }
    let d = dim.or_else(|| rows.first().map(Vec::len)).unwrap_or(0);
    if let Some((i, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != d || r.is_empty()) {
        return Err(Error::Compute(format!(
            "the image embedder returned a {what} embedding ({i}) of {} values, expected {d} (> 0)",
            r.len()
        )));
    }
    Ok(rows)
}

fn embed_images(embedder: &dyn ImageEmbedder, images: &[Image], dim: Option<usize>) -> Result<Vec<Vec<f32>>> {
    checked(embedder.embed_images(images)?, images.len(), "image", dim)
}

fn embed_texts(embedder: &dyn ImageEmbedder, texts: &[&str], dim: Option<usize>) -> Result<Vec<Vec<f32>>> {
    checked(embedder.embed_texts(texts)?, texts.len(), "text", dim)
}

fn non_empty(images: &[Image], what: &str) -> Result<()> {
    if images.is_empty() {
        Err(Error::InvalidInput(format!("no {what} to score")))
    } else {
        Ok(())
    }
}

/// CLIPScore of one image against one prompt, in both conventions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PromptScore {
    /// `2.5 · max(cos, 0)` (Hessel et al.), in [0, 2.5].
    pub clip_score: f64,
    /// `100 · max(cos, 0)`, in [0, 100].
    pub clip_score_100: f64,
}

impl PromptScore {
    fn of(image: &[f32], text: &[f32]) -> Result<PromptScore> {
        Ok(PromptScore {
            clip_score: image_metrics::clip_score(image, text)?,
            clip_score_100: image_metrics::clip_score_100(image, text)?,
        })
    }
}

/// CLIPScore of every image against one prompt (compare images of this prompt only).
pub fn prompt_scores(embedder: &dyn ImageEmbedder, images: &[Image], prompt: &str) -> Result<Vec<PromptScore>> {
    non_empty(images, "images")?;
    let text = embed_texts(embedder, &[prompt], None)?.remove(0);
    let vecs = embed_images(embedder, images, Some(text.len()))?;
    vecs.iter().map(|v| PromptScore::of(v, &text)).collect()
}

/// Personalization CLIPScore of every image: its mean cosine with the reference images'
/// embeddings.
pub fn personalization_scores(
    embedder: &dyn ImageEmbedder,
    images: &[Image],
    references: &[Image],
) -> Result<Vec<f64>> {
    non_empty(images, "images")?;
    non_empty(references, "reference images")?;
    let refs = embed_images(embedder, references, None)?;
    let vecs = embed_images(embedder, images, Some(refs[0].len()))?;
    vecs.iter().map(|v| image_metrics::personalization_clip_score(v, &refs)).collect()
}

/// CMMD between two image sets (σ = 10, ×1000, biased estimator; 0 for identical sets).
pub fn images_cmmd(embedder: &dyn ImageEmbedder, x: &[Image], y: &[Image]) -> Result<f64> {
    non_empty(x, "images in the first set")?;
    non_empty(y, "images in the second set")?;
    let xs = embed_images(embedder, x, None)?;
    let ys = embed_images(embedder, y, Some(xs[0].len()))?;
    image_metrics::cmmd(&xs, &ys)
}

/// Options of an [`ImageEvaluation`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImageEvalOptions {
    /// At most this many embeddings per set enter a CMMD (a method's images in one row; the
    /// reference images): reservoir samples beyond that. 0 turns the CMMD column off.
    pub cmmd_sample: usize,
    /// Seeds the reservoir samples.
    pub seed: u64,
}

impl Default for ImageEvalOptions {
    fn default() -> Self {
        ImageEvalOptions { cmmd_sample: 500, seed: 0 }
    }
}

impl ImageEvalOptions {
    /// Options from JSON (`{"cmmd_sample": 500, "seed": 0}`, every key optional).
    pub fn from_json(json: &str) -> Result<ImageEvalOptions> {
        zipp_core::json::from_str(json, "image evaluation options")
    }
}

/// The images one method made for one query of a persona.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodImages {
    pub query: String,
    pub method: String,
    /// At least one image.
    pub images: Vec<Image>,
}

/// The scores of one (persona, query, method) cell, each averaged over its images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageSample {
    pub persona: String,
    pub query: String,
    pub method: String,
    /// How many images the cell had.
    pub images: usize,
    /// Against the query's base prompt.
    pub clip_score: f64,
    pub clip_score_100: f64,
    /// `None` for a persona without reference images.
    pub personalization_clip_score: Option<f64>,
}

/// A bounded uniform sample of embeddings (Algorithm R).
#[derive(Debug, Clone, Default)]
struct Reservoir {
    rows: Vec<Vec<f32>>,
    seen: u64,
}

impl Reservoir {
    fn push(&mut self, row: &[f32], cap: usize, rng: &mut u64) {
        self.seen += 1;
        if self.rows.len() < cap {
            self.rows.push(row.to_vec());
        } else if cap > 0 {
            let j = zipp_core::rng::splitmix64(rng) % self.seen;
            if (j as usize) < cap {
                self.rows[j as usize] = row.to_vec();
            }
        }
    }
}

/// Running aggregates of one method on one query.
#[derive(Debug, Clone, Default)]
struct CellAcc {
    clip: Moments,
    clip100: Moments,
    personal: Moments,
    images: u64,
    /// Image embeddings of personas with references, for CMMD.
    generated: Reservoir,
}

/// A streaming image evaluation; see the module documentation.
pub struct ImageEvaluation {
    embedder: Arc<dyn ImageEmbedder>,
    methods: Vec<String>,
    queries: Vec<Query>,
    options: ImageEvalOptions,
    prompt_vecs: Vec<Vec<f32>>,
    dim: usize,
    /// `acc[qi * methods + mi]`.
    acc: Vec<CellAcc>,
    references: Reservoir,
    personas: u64,
    personas_with_references: u64,
    rng: u64,
}

impl std::fmt::Debug for ImageEvaluation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageEvaluation")
            .field("methods", &self.methods)
            .field("queries", &self.queries)
            .field("options", &self.options)
            .field("personas", &self.personas)
            .finish_non_exhaustive()
    }
}

fn unique(what: &str, names: &[&str]) -> Result<()> {
    for (i, n) in names.iter().enumerate() {
        if n.trim().is_empty() || names[..i].contains(n) {
            return Err(Error::InvalidInput(format!("{what} names must be non-empty and unique, got `{n}`")));
        }
    }
    Ok(())
}

impl ImageEvaluation {
    /// An image evaluation of `methods` (names, in table order) on `queries`, embedding with
    /// `embedder` (the queries' prompts are embedded now). Checks: at least one method and
    /// query, unique non-empty names.
    pub fn new(
        embedder: Arc<dyn ImageEmbedder>,
        methods: Vec<String>,
        queries: Vec<Query>,
        options: ImageEvalOptions,
    ) -> Result<ImageEvaluation> {
        if methods.is_empty() || queries.is_empty() {
            return Err(Error::InvalidInput("an image evaluation needs at least one method and one query".into()));
        }
        unique("method", &methods.iter().map(String::as_str).collect::<Vec<_>>())?;
        unique("query", &queries.iter().map(|q| q.name.as_str()).collect::<Vec<_>>())?;
        let texts: Vec<&str> = queries.iter().map(|q| q.prompt.as_str()).collect();
        let prompt_vecs = embed_texts(&*embedder, &texts, None)?;
        let dim = prompt_vecs[0].len();
        Ok(ImageEvaluation {
            acc: vec![CellAcc::default(); methods.len() * queries.len()],
            rng: options.seed ^ 0x1A6E_5EED_C3D0_u64,
            embedder,
            methods,
            queries,
            options,
            prompt_vecs,
            dim,
            references: Reservoir::default(),
            personas: 0,
            personas_with_references: 0,
        })
    }

    pub fn methods(&self) -> &[String] {
        &self.methods
    }

    pub fn queries(&self) -> &[Query] {
        &self.queries
    }

    pub fn options(&self) -> &ImageEvalOptions {
        &self.options
    }

    /// Personas added so far.
    pub fn personas(&self) -> u64 {
        self.personas
    }

    /// Scores one persona's images and adds them to the aggregates: `images` holds exactly
    /// one entry per (query, method) pair, in any order, each with at least one image;
    /// `references` the persona's reference images (empty: none, so no P-CLIP and no CMMD
    /// for this persona). All or nothing: on error nothing is added. Returns one sample per
    /// cell, query-major in table order.
    pub fn add_persona(
        &mut self,
        persona: &str,
        references: &[Image],
        images: &[MethodImages],
    ) -> Result<Vec<ImageSample>> {
        let within = |e: Error| match e {
            Error::InvalidInput(m) => Error::InvalidInput(format!("persona `{persona}`: {m}")),
            other => other,
        };
        let (m, q) = (self.methods.len(), self.queries.len());
        // cell[qi * m + mi] = index into `images`.
        let mut cell: Vec<Option<usize>> = vec![None; m * q];
        for (i, item) in images.iter().enumerate() {
            let qi =
                self.queries.iter().position(|x| x.name == item.query).ok_or_else(|| {
                    within(Error::InvalidInput(format!("images[{i}]: unknown query `{}`", item.query)))
                })?;
            let mi =
                self.methods.iter().position(|x| *x == item.method).ok_or_else(|| {
                    within(Error::InvalidInput(format!("images[{i}]: unknown method `{}`", item.method)))
                })?;
            if item.images.is_empty() {
                return Err(within(Error::InvalidInput(format!(
                    "images[{i}] ({} × {}) has no image",
                    item.query, item.method
                ))));
            }
            if cell[qi * m + mi].replace(i).is_some() {
                return Err(within(Error::InvalidInput(format!(
                    "images for query `{}` and method `{}` are given twice",
                    item.query, item.method
                ))));
            }
        }
        if let Some(missing) = cell.iter().position(Option::is_none) {
            return Err(within(Error::InvalidInput(format!(
                "no images for query `{}` and method `{}` (every method needs images for every query, so \
                 the methods are compared on the same prompts)",
                self.queries[missing / m].name,
                self.methods[missing % m]
            ))));
        }
        let refs = if references.is_empty() {
            None
        } else {
            Some(embed_images(&*self.embedder, references, Some(self.dim)).map_err(within)?)
        };
        // One embedding call for every image of the persona, in cell order.
        let all: Vec<Image> =
            cell.iter().flat_map(|c| images[c.expect("checked above")].images.iter().cloned()).collect();
        let vecs = embed_images(&*self.embedder, &all, Some(self.dim)).map_err(within)?;
        let mut samples = Vec::with_capacity(m * q);
        let mut at = 0;
        for (ci, c) in cell.iter().enumerate() {
            let idx = c.expect("checked above");
            let item = &images[idx];
            let rows = &vecs[at..at + item.images.len()];
            at += item.images.len();
            let (qi, mi) = (ci / m, ci % m);
            let text = &self.prompt_vecs[qi];
            let (mut clip, mut clip100, mut personal) = (0.0, 0.0, 0.0);
            for (k, v) in rows.iter().enumerate() {
                let s = PromptScore::of(v, text).map_err(|e| match e {
                    Error::InvalidInput(msg) => within(Error::InvalidInput(format!("images[{idx}], image {k}: {msg}"))),
                    other => other,
                })?;
                clip += s.clip_score;
                clip100 += s.clip_score_100;
                if let Some(r) = &refs {
                    personal += image_metrics::personalization_clip_score(v, r).map_err(within)?;
                }
            }
            let n = rows.len() as f64;
            samples.push(ImageSample {
                persona: persona.to_string(),
                query: self.queries[qi].name.clone(),
                method: self.methods[mi].clone(),
                images: rows.len(),
                clip_score: clip / n,
                clip_score_100: clip100 / n,
                personalization_clip_score: refs.as_ref().map(|_| personal / n),
            });
        }
        // Everything is computed: only now does the persona count.
        let cap = self.options.cmmd_sample;
        let mut at = 0;
        for (ci, s) in samples.iter().enumerate() {
            let a = &mut self.acc[ci];
            a.clip.push(s.clip_score);
            a.clip100.push(s.clip_score_100);
            a.images += s.images as u64;
            if let Some(p) = s.personalization_clip_score {
                a.personal.push(p);
                for v in &vecs[at..at + s.images] {
                    a.generated.push(v, cap, &mut self.rng);
                }
            }
            at += s.images;
        }
        if let Some(r) = &refs {
            for v in r {
                self.references.push(v, cap, &mut self.rng);
            }
            self.personas_with_references += 1;
        }
        self.personas += 1;
        Ok(samples)
    }

    /// The report so far: one table per query, then one per task kind (all generation
    /// queries, all edit queries) when there are several queries of that kind — the tables
    /// of [`crate::Evaluation::report`], so the two line up by name.
    pub fn report(&self) -> Result<ImageReport> {
        let m = self.methods.len();
        let mut tables = Vec::new();
        for (qi, query) in self.queries.iter().enumerate() {
            tables.push(self.table(query.name.clone(), Some(query.clone()), &[qi])?);
        }
        for (task, label) in [(Task::Generate, "all generation queries"), (Task::Edit, "all edit queries")] {
            let idx: Vec<usize> = (0..self.queries.len()).filter(|&i| self.queries[i].task == task).collect();
            if idx.len() >= 2 {
                tables.push(self.table(label.to_string(), None, &idx)?);
            }
        }
        debug_assert!(tables.iter().all(|t| t.rows.len() == m));
        Ok(ImageReport {
            personas: self.personas,
            personas_with_references: self.personas_with_references,
            reference_images: self.references.seen,
            methods: self.methods.clone(),
            options: self.options.clone(),
            tables,
        })
    }

    fn table(&self, name: String, query: Option<Query>, queries: &[usize]) -> Result<ImageTable> {
        let m = self.methods.len();
        let cap = self.options.cmmd_sample;
        let stat = |mo: &Moments| Stat { mean: mo.mean(), sd: mo.sd() };
        let rows = (0..m)
            .map(|mi| {
                let mut acc = CellAcc::default();
                let mut generated: Vec<&[f32]> = Vec::new();
                for &qi in queries {
                    let a = &self.acc[qi * m + mi];
                    acc.clip.merge(&a.clip);
                    acc.clip100.merge(&a.clip100);
                    acc.personal.merge(&a.personal);
                    acc.images += a.images;
                    generated.extend(a.generated.rows.iter().map(Vec::as_slice));
                }
                // A task-kind table pools several reservoirs: thin them evenly to the cap.
                if generated.len() > cap && cap > 0 {
                    let n = generated.len();
                    generated = (0..cap).map(|i| generated[i * n / cap]).collect();
                }
                let cmmd = if cap > 0 && !generated.is_empty() && !self.references.rows.is_empty() {
                    let x: Vec<Vec<f32>> = generated.iter().map(|r| r.to_vec()).collect();
                    Some(image_metrics::cmmd(&x, &self.references.rows)?)
                } else {
                    None
                };
                Ok(ImageRow {
                    method: self.methods[mi].clone(),
                    n: acc.clip.count(),
                    images: acc.images,
                    clip_score: stat(&acc.clip),
                    clip_score_100: stat(&acc.clip100),
                    personalization_clip_score: (acc.personal.count() > 0).then(|| stat(&acc.personal)),
                    cmmd,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ImageTable { name, query, rows })
    }
}

/// One method's image columns in one table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRow {
    pub method: String,
    /// (persona, query) cells.
    pub n: u64,
    /// Images over those cells.
    pub images: u64,
    /// CLIPScore `2.5 · max(cos, 0)` against the query's prompt: mean and s.d. over cells.
    pub clip_score: Stat,
    /// The same in the ×100 convention.
    pub clip_score_100: Stat,
    /// Mean cosine to the persona's reference images, over the cells of personas with
    /// references; `None` when no persona had any.
    pub personalization_clip_score: Option<Stat>,
    /// CMMD (×1000) between this method's images and the reference images; `None` without
    /// references or with `cmmd_sample` 0.
    pub cmmd: Option<f64>,
}

/// The image columns of one table: a query, or a task kind's queries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageTable {
    pub name: String,
    /// The query, for a per-query table.
    pub query: Option<Query>,
    pub rows: Vec<ImageRow>,
}

/// The result of an [`ImageEvaluation`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageReport {
    pub personas: u64,
    /// Personas that came with reference images (P-CLIP and CMMD are over these).
    pub personas_with_references: u64,
    /// Reference images seen, over all personas.
    pub reference_images: u64,
    pub methods: Vec<String>,
    pub options: ImageEvalOptions,
    pub tables: Vec<ImageTable>,
}

fn f3(x: Option<f64>) -> String {
    x.map_or_else(|| "—".to_string(), |v| format!("{v:.3}"))
}

fn f2(x: Option<f64>) -> String {
    x.map_or_else(|| "—".to_string(), |v| format!("{v:.2}"))
}

fn heading(t: &ImageTable) -> String {
    match &t.query {
        Some(q) => format!(
            "### {} ({}): \"{}\"",
            t.name,
            if q.task == Task::Generate { "generation" } else { "editing" },
            q.prompt
        ),
        None => format!("### {}", t.name),
    }
}

impl ImageReport {
    pub fn to_json(&self, pretty: bool) -> Result<String> {
        let r = if pretty { serde_json::to_string_pretty(self) } else { serde_json::to_string(self) };
        r.map_err(|e| Error::InvalidInput(format!("image report is not serialisable: {e}")))
    }

    pub fn from_json(json: &str) -> Result<ImageReport> {
        zipp_core::json::parse(json, &zipp_core::Location::default(), "image evaluation report")
    }

    fn preamble(&self) -> String {
        format!(
            "{} personas, {} with reference images ({} images)\n\
             - CLIPScore: 2.5·max(cos, 0) of each image with its query's prompt; ×100: 100·max(cos, 0). \
             Compare methods within a table, never values of different queries.\n\
             - P-CLIP: mean cosine to the persona's reference images.\n\
             - CMMD: ×1000 squared MMD to the reference images (σ = 10, biased, ≤ {} embeddings a set); \
             lower is closer.",
            self.personas, self.personas_with_references, self.reference_images, self.options.cmmd_sample
        )
    }

    /// The tables as markdown: per table, a heading and one row per method with the cell
    /// count, the image count, CLIPScore (both conventions), P-CLIP and CMMD ("—" where a
    /// column has no value).
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut out = self.preamble();
        out.push('\n');
        for t in &self.tables {
            let _ = write!(out, "\n{}\n\n", heading(t));
            let _ = writeln!(out, "| method | n | images | CLIPScore | CLIPScore×100 | P-CLIP | CMMD |");
            let _ = writeln!(out, "|:--|--:|--:|--:|--:|--:|--:|");
            for r in &t.rows {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    r.method,
                    r.n,
                    r.images,
                    f3(r.clip_score.mean),
                    f2(r.clip_score_100.mean),
                    f3(r.personalization_clip_score.and_then(|s| s.mean)),
                    f3(r.cmmd),
                );
            }
        }
        out
    }

    /// The image columns beside the VPTT text columns of `text` (an evaluation of the same
    /// methods and queries), as markdown: one table per image table, the text table of the
    /// same name supplying VPTT and VPTT_c per method ("—" where it has none).
    pub fn table_beside(&self, text: &Report) -> String {
        use std::fmt::Write;
        let mut out = format!("VPTT over {} personas; images over {}\n", text.personas, self.preamble());
        for t in &self.tables {
            let vptt: HashMap<&str, (Option<f64>, Option<f64>)> = text
                .tables
                .iter()
                .find(|x| x.name == t.name)
                .map(|x| x.rows.iter().map(|r| (r.method.as_str(), (r.vptt.mean, r.vptt_c.mean))).collect())
                .unwrap_or_default();
            let _ = write!(out, "\n{}\n\n", heading(t));
            let _ = writeln!(out, "| method | VPTT | VPTT_c | CLIPScore | CLIPScore×100 | P-CLIP | CMMD |");
            let _ = writeln!(out, "|:--|--:|--:|--:|--:|--:|--:|");
            for r in &t.rows {
                let (v, c) = vptt.get(r.method.as_str()).copied().unwrap_or((None, None));
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    r.method,
                    f3(v),
                    f3(c),
                    f3(r.clip_score.mean),
                    f2(r.clip_score_100.mean),
                    f3(r.personalization_clip_score.and_then(|s| s.mean)),
                    f3(r.cmmd),
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
