//! Evaluation: `PersonaScorer` and `VpttScore` (SPEC §4), the streaming `Evaluation` runner
//! and its `Report`, and the statistics functions (SPEC §9) that `zipp_persona.stats`
//! re-exports. Configurations cross as the JSON zipp-core parses (`VpttOptions`,
//! `EvalConfig`), so names, defaults and validation are zipp-core's.

use std::sync::Arc;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use zipp_core::Error;
use zipp_eval::{self as core, stats};
use zipp_factory::shared::{vptt_options, Scorer, SharedEvaluation};
use zipp_factory::EvalConfig;

use crate::error::to_py_err;
use crate::json;
use crate::models::Models;
use crate::persona::Persona;
use crate::result::py_repr;
use crate::zipp_call;

/// JSON text from a dict (errors then carry only the field path: the line and column would
/// point into text the caller never saw) or a JSON string (errors keep line and column).
/// `None` when the argument is `None`.
fn config_text(value: Option<&Bound<'_, PyAny>>, what: &str, example: &str) -> PyResult<Option<(String, bool)>> {
    let Some(value) = value.filter(|v| !v.is_none()) else { return Ok(None) };
    if let Ok(text) = value.downcast::<PyString>() {
        return Ok(Some((text.to_cow()?.into_owned(), false)));
    }
    if value.is_instance_of::<PyDict>() {
        return Ok(Some((json::dumps(value)?, true)));
    }
    Err(PyTypeError::new_err(format!("{what} is a dict ({example}) or JSON text, not {}", value.get_type().name()?)))
}

fn unlocated_if(from_dict: bool) -> impl Fn(Error) -> Error {
    move |e| if from_dict { json::unlocated_text(e) } else { e }
}

// ---------------------------------------------------------------------------------------
// VpttScore, PersonaScorer

/// The VPTT score of one prompt against one persona (SPEC §4). Components lie in [0, 1]
/// except PA, a cosine in [-1, 1]; `nv_soft` is `None` unless the scorer was built with
/// `novelty="soft"`.
#[pyclass(frozen, module = "zipp_persona")]
pub struct VpttScore {
    inner: core::VpttScore,
}

#[pymethods]
impl VpttScore {
    /// Persona alignment: cosine between the prompt and the persona text.
    #[getter]
    fn pa(&self) -> f64 {
        self.inner.pa
    }

    /// Subspace fidelity: the share of the prompt inside the span of the captions.
    #[getter]
    fn gs(&self) -> f64 {
        self.inner.gs
    }

    /// Cluster proximity (hard): `exp(-distance to the nearest caption cluster)`.
    #[getter]
    fn cp(&self) -> f64 {
        self.inner.cp
    }

    /// Cluster proximity, soft (softmax-weighted over the clusters).
    #[getter]
    fn cp_soft(&self) -> f64 {
        self.inner.cp_soft
    }

    /// Novelty: 1 − the largest share of the prompt's word trigrams found in one caption.
    #[getter]
    fn nv(&self) -> f64 {
        self.inner.nv
    }

    /// Soft novelty over trigram embeddings (`novelty="soft"` only).
    #[getter]
    fn nv_soft(&self) -> Option<f64> {
        self.inner.nv_soft
    }

    /// `w_pa·PA + w_gs·GS + w_cp·CP + w_nv·NV` (default weights 0.2, 0.3, 0.3, 0.2).
    #[getter]
    fn vptt(&self) -> f64 {
        self.inner.vptt
    }

    /// `(PA + GS + CP) / 3`.
    #[getter]
    fn vptt_c(&self) -> f64 {
        self.inner.vptt_c
    }

    /// `{"pa", "gs", "cp", "cp_soft", "nv", "nv_soft", "vptt", "vptt_c"}`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json::to_python(py, &self.inner)
    }

    fn __eq__(&self, other: &Bound<'_, VpttScore>) -> bool {
        self.inner == other.get().inner
    }

    fn __repr__(&self) -> String {
        let s = &self.inner;
        format!(
            "VpttScore(vptt={:.4}, vptt_c={:.4}, pa={:.4}, gs={:.4}, cp={:.4}, cp_soft={:.4}, nv={:.4}, nv_soft={})",
            s.vptt,
            s.vptt_c,
            s.pa,
            s.gs,
            s.cp,
            s.cp_soft,
            s.nv,
            s.nv_soft.map_or_else(|| "None".to_string(), |v| format!("{v:.4}"))
        )
    }
}

/// A persona's VPTT scoring state — persona-text vector, caption basis, clusters, caption
/// trigrams — built once (the memory embeddings are shared with the persona's personalizer
/// calls) and reused for every prompt. Safe to share between threads.
#[pyclass(frozen, module = "zipp_persona")]
pub struct PersonaScorer {
    inner: Scorer,
    options: core::VpttOptions,
}

#[pymethods]
impl PersonaScorer {
    /// `options`: the VPTT options as a dict or JSON text, every key optional —
    /// `weights` (`{"pa", "gs", "cp", "nv"}`, summing to 1), `clusters` (`None`: SPEC's
    /// `round(sqrt(N/2))`), `seed`, `novelty` (`"hard"` or `"soft"`), `cp_unit_coordinates`,
    /// `gs_tolerance`, `kmeans_iterations`, `soft_cp_temperature`. A persona without posts is
    /// an `InvalidInputError`.
    #[new]
    #[pyo3(signature = (models, persona, options = None))]
    fn new(
        py: Python<'_>,
        models: &Bound<'_, Models>,
        persona: &Bound<'_, Persona>,
        options: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PersonaScorer> {
        let options = config_text(options, "options", "{\"novelty\": \"soft\", …}")?;
        let (models, persona) = (&models.get().inner, &persona.get().inner);
        zipp_call(py, || {
            let options = match &options {
                Some((text, from_dict)) => vptt_options(Some(text)).map_err(unlocated_if(*from_dict))?,
                None => vptt_options(None)?,
            };
            let inner = Scorer::new(models, persona, &options)?;
            Ok(PersonaScorer { inner, options })
        })
    }

    /// Scores prompts (embedded in one batch): one `VpttScore` per prompt, in order. NV is
    /// measured (the evaluation's "NV = 0 without memory" convention is not applied here).
    fn score(&self, py: Python<'_>, prompts: Vec<String>) -> PyResult<Vec<VpttScore>> {
        let scores = zipp_call(py, || {
            let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
            self.inner.score_batch(&refs)
        })?;
        Ok(scores.into_iter().map(|inner| VpttScore { inner }).collect())
    }

    /// Scores one prompt.
    fn score_one(&self, py: Python<'_>, prompt: String) -> PyResult<VpttScore> {
        let inner = zipp_call(py, || self.inner.score(&prompt))?;
        Ok(VpttScore { inner })
    }

    /// The id of the persona it scores against.
    #[getter]
    fn persona_id(&self) -> &str {
        self.inner.scorer().id()
    }

    /// The dimension of the caption span (at most the number of posts).
    #[getter]
    fn rank(&self) -> usize {
        self.inner.scorer().rank()
    }

    /// The number of caption clusters CP measures against.
    #[getter]
    fn clusters(&self) -> usize {
        self.inner.scorer().clusters()
    }

    /// The options in effect, every default written out.
    #[getter]
    fn options<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json::to_python(py, &self.options)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "PersonaScorer(persona_id={}, rank={}, clusters={})",
            py_repr(py, self.inner.scorer().id())?,
            self.inner.scorer().rank(),
            self.inner.scorer().clusters()
        ))
    }
}

// ---------------------------------------------------------------------------------------
// Evaluation, Report

/// A streaming evaluation: methods × personas × queries, each rewritten prompt scored with
/// VPTT and folded into running aggregates, so memory does not grow with the number of
/// personas. Safe to share between threads (calls on one evaluation run one at a time).
#[pyclass(frozen, module = "zipp_persona")]
pub struct Evaluation {
    inner: SharedEvaluation,
}

#[pymethods]
impl Evaluation {
    /// `config` (a dict or JSON text; every key optional):
    /// `{"methods": ["identity", {"method": "vprag", "temperature": 0.2}, …],
    ///   "queries": "vptt" | "extended" | [{"name", "task", "prompt"}, …],
    ///   "options": {"novelty": "zero_without_memory" | "measured", "vptt": {VPTT options},
    ///               "tie_epsilon", "confidence", "baseline", "spearman_sample"}}`.
    /// `None`: the five methods (identity, persona_only, brag, vprag, combined) on the four
    /// VPTT queries. Errors name the field (`methods[1]`).
    #[new]
    #[pyo3(signature = (models, config = None))]
    fn new(py: Python<'_>, models: &Bound<'_, Models>, config: Option<&Bound<'_, PyAny>>) -> PyResult<Evaluation> {
        let config = config_text(config, "config", "{\"methods\": [\"identity\", \"vprag\"], …}")?;
        let models = &models.get().inner;
        let inner = zipp_call(py, || {
            let config = match &config {
                Some((text, from_dict)) => Some(EvalConfig::from_json(text).map_err(unlocated_if(*from_dict))?),
                None => None,
            };
            SharedEvaluation::new(models, config)
        })?;
        Ok(Evaluation { inner })
    }

    /// Personalizes `persona` with every method for every query, scores every prompt and
    /// adds the scores to the aggregates; all or nothing (on error nothing is added). Returns
    /// the samples, query-major: `{"persona", "query", "method", "prompt", "pa", "gs", "cp",
    /// "cp_soft", "nv", "nv_soft", "vptt", "vptt_c"}` each.
    fn add_persona<'py>(&self, py: Python<'py>, persona: &Bound<'py, Persona>) -> PyResult<Bound<'py, PyAny>> {
        let persona = &persona.get().inner;
        let samples = zipp_call(py, || self.inner.add_persona(persona))?;
        json::to_python(py, &samples)
    }

    /// Adds every persona of an iterable (a list, `iter_jsonl(path)`, a `PersonaSource`, a
    /// `SyntheticBench`, a generator …), one at a time, dropping the samples; returns how
    /// many were added. A failure raises, the personas before it staying added. Each
    /// persona's memory index is reused when it was already built (no copy, no re-embedding).
    fn add_personas(&self, py: Python<'_>, personas: &Bound<'_, PyAny>) -> PyResult<u64> {
        let mut added = 0;
        for item in personas.try_iter()? {
            let item = item?;
            let persona = item.downcast::<Persona>()?;
            let persona = &persona.get().inner;
            zipp_call(py, || self.inner.add_persona(persona))?;
            added += 1;
        }
        Ok(added)
    }

    /// The configuration it was built from, omitted fields filled in with their defaults.
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json::to_python(py, self.inner.config())
    }

    /// Personas added so far.
    #[getter]
    fn personas(&self, py: Python<'_>) -> PyResult<u64> {
        zipp_call(py, || self.inner.personas())
    }

    /// The method names, in table order.
    #[getter]
    fn methods(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        zipp_call(py, || Ok(self.inner.lock()?.methods().iter().map(|m| m.name.clone()).collect()))
    }

    /// The queries: `{"name", "task", "prompt"}` each.
    #[getter]
    fn queries<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let queries = zipp_call(py, || Ok(self.inner.lock()?.queries().to_vec()))?;
        json::to_python(py, &queries)
    }

    /// The report so far (the evaluation goes on; call again for a later one).
    fn report(&self, py: Python<'_>) -> PyResult<Report> {
        let inner = zipp_call(py, || self.inner.report())?;
        Ok(Report { inner: Arc::new(inner) })
    }

    /// The aggregates so far as an `EvalAggregate`: exact sums and counts that merge with
    /// other shards' in any order into the report of one pass over all their personas.
    fn aggregate(&self, py: Python<'_>) -> PyResult<EvalAggregate> {
        let inner = zipp_call(py, || self.inner.aggregate())?;
        Ok(EvalAggregate { inner: Arc::new(inner) })
    }

    /// Adds another shard's aggregates (made by the same config) to this evaluation's, as if
    /// its personas had been added here. Another config raises `InvalidInputError`.
    fn merge(&self, py: Python<'_>, aggregate: &Bound<'_, EvalAggregate>) -> PyResult<()> {
        let other = &aggregate.get().inner;
        zipp_call(py, || self.inner.merge(other))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let (methods, queries, personas) = zipp_call(py, || {
            let ev = self.inner.lock()?;
            Ok((ev.methods().len(), ev.queries().len(), ev.personas()))
        })?;
        Ok(format!("Evaluation(methods={methods}, queries={queries}, personas={personas})"))
    }
}

/// An evaluation's aggregates as data (exact sums, counts, the Spearman sample; no model):
/// what shards evaluated apart — other processes, Ray actors, Spark tasks — send back to be
/// merged. Merging is exact and order-independent, so the merged report equals one local
/// pass over all the personas bit for bit (except `timings`, summed over the shards).
/// Pickles as its JSON.
#[pyclass(frozen, module = "zipp_persona")]
pub struct EvalAggregate {
    inner: Arc<core::EvalAggregate>,
}

#[pymethods]
impl EvalAggregate {
    /// An aggregate read back from `to_json()` text (checked: format, shapes, options).
    #[staticmethod]
    fn from_json(py: Python<'_>, text: String) -> PyResult<EvalAggregate> {
        let inner = zipp_call(py, || core::EvalAggregate::from_json(&text))?;
        Ok(EvalAggregate { inner: Arc::new(inner) })
    }

    /// The aggregate as JSON text (versioned, `"format": 1`; the same in Rust and C).
    fn to_json(&self, py: Python<'_>) -> PyResult<String> {
        zipp_call(py, || self.inner.to_json())
    }

    /// A new aggregate holding both this one's personas and `other`'s. Aggregates of
    /// another config raise `InvalidInputError`.
    fn merge(&self, py: Python<'_>, other: &Bound<'_, EvalAggregate>) -> PyResult<EvalAggregate> {
        let other = &other.get().inner;
        let merged = zipp_call(py, || {
            let mut merged = (*self.inner).clone();
            merged.merge(other)?;
            Ok(merged)
        })?;
        Ok(EvalAggregate { inner: Arc::new(merged) })
    }

    /// The report of the personas folded in.
    fn report(&self, py: Python<'_>) -> PyResult<Report> {
        let inner = zipp_call(py, || self.inner.report())?;
        Ok(Report { inner: Arc::new(inner) })
    }

    /// Personas folded in.
    #[getter]
    fn personas(&self) -> u64 {
        self.inner.personas()
    }

    /// The method names, in table order.
    #[getter]
    fn methods(&self) -> Vec<String> {
        self.inner.methods().iter().map(|m| m.name.clone()).collect()
    }

    fn __eq__(&self, other: &Bound<'_, EvalAggregate>) -> bool {
        *self.inner == *other.get().inner
    }

    /// Pickles as JSON text (so aggregates travel between processes).
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let from_json = py.get_type::<EvalAggregate>().getattr("from_json")?;
        Ok((from_json, PyTuple::new(py, [self.to_json(py)?])?))
    }

    fn __repr__(&self) -> String {
        format!(
            "EvalAggregate(personas={}, methods={}, queries={})",
            self.inner.personas(),
            self.inner.methods().len(),
            self.inner.queries().len()
        )
    }
}

/// Merges aggregates (`EvalAggregate` objects or their JSON text) into one, in the order
/// given; an empty iterable raises `InvalidInputError`. No model is needed: this is what a
/// driver does with its workers' results.
#[pyfunction]
fn merge_aggregates(py: Python<'_>, aggregates: &Bound<'_, PyAny>) -> PyResult<EvalAggregate> {
    /// An item as given: an aggregate object, or text to parse with the GIL released.
    enum Part {
        Built(Arc<core::EvalAggregate>),
        Json(String),
    }
    let mut parts = Vec::new();
    for (i, item) in aggregates.try_iter()?.enumerate() {
        let item = item?;
        parts.push(if let Ok(a) = item.downcast::<EvalAggregate>() {
            Part::Built(a.get().inner.clone())
        } else if let Ok(text) = item.downcast::<PyString>() {
            Part::Json(text.to_cow()?.into_owned())
        } else {
            return Err(PyTypeError::new_err(format!(
                "merge_aggregates: item {i} is a {}, expected an EvalAggregate or its JSON text",
                item.get_type().name()?
            )));
        });
    }
    let merged = zipp_call(py, || {
        zipp_factory::shared::merge_parts(parts.iter().map(|p| match p {
            Part::Built(a) => Ok((**a).clone()),
            Part::Json(text) => core::EvalAggregate::from_json(text),
        }))
    })?;
    Ok(EvalAggregate { inner: Arc::new(merged) })
}

/// The result of an evaluation: one table per query, then one per task kind with several
/// queries. The same JSON as the Rust and C reports.
#[pyclass(frozen, module = "zipp_persona")]
pub struct Report {
    inner: Arc<core::Report>,
}

#[pymethods]
impl Report {
    /// A report read back from `to_json()` text.
    #[staticmethod]
    fn from_json(py: Python<'_>, text: String) -> PyResult<Report> {
        let inner = zipp_call(py, || core::Report::from_json(&text))?;
        Ok(Report { inner: Arc::new(inner) })
    }

    /// The tables as text, laid out like the VPTT paper's Table 7.
    fn table(&self) -> String {
        self.inner.table()
    }

    /// The report as JSON text (compact, or indented with `pretty=True`).
    #[pyo3(signature = (pretty = false))]
    fn to_json(&self, pretty: bool) -> PyResult<String> {
        self.inner.to_json(pretty).map_err(to_py_err)
    }

    /// The report as a dict shaped like `to_json()`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json::to_python(py, self.inner.as_ref())
    }

    /// Personas evaluated.
    #[getter]
    fn personas(&self) -> u64 {
        self.inner.personas
    }

    /// Method names, in table order.
    #[getter]
    fn methods(&self) -> Vec<String> {
        self.inner.methods.clone()
    }

    /// The novelty convention: `"zero_without_memory"` (the paper's) or `"measured"`.
    #[getter]
    fn novelty<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json::to_python(py, &self.inner.novelty)
    }

    /// The baseline Cohen's d is also reported against, or `None`.
    #[getter]
    fn baseline(&self) -> Option<String> {
        self.inner.baseline.clone()
    }

    /// The tables as dicts: `name`, `query`, `best_vptt`, `best_vptt_c`,
    /// `spearman_vptt_vs_vptt_c` and `rows` (per method: `n`, `pa`, `gs`, `cp`, `cp_soft`,
    /// `nv` (`None` where the novelty convention set it to 0), `nv_soft`, `vptt_c`, `vptt`).
    #[getter]
    fn tables<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json::to_python(py, &self.inner.tables)
    }

    /// Where the time went, in seconds: `index_memory`, `persona_state`, `personalize`,
    /// `embed_prompts`, `score`.
    #[getter]
    fn timings<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let t = &self.inner.timings;
        let d = PyDict::new(py);
        for (name, value) in [
            ("index_memory", t.index_memory),
            ("persona_state", t.persona_state),
            ("personalize", t.personalize),
            ("embed_prompts", t.embed_prompts),
            ("score", t.score),
        ] {
            d.set_item(name, value.as_secs_f64())?;
        }
        Ok(d)
    }

    fn __eq__(&self, other: &Bound<'_, Report>) -> bool {
        *self.inner == *other.get().inner
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let methods = self.inner.methods.iter().map(|m| py_repr(py, m)).collect::<PyResult<Vec<_>>>()?;
        Ok(format!(
            "Report(personas={}, methods=[{}], tables={})",
            self.inner.personas,
            methods.join(", "),
            self.inner.tables.len()
        ))
    }
}

// ---------------------------------------------------------------------------------------
// Statistics (re-exported as zipp_persona.stats)

/// A count argument: a negative int is an `InvalidInputError` naming the function, like
/// every other bad argument here.
fn count(value: &Bound<'_, PyAny>, function: &str, name: &str) -> PyResult<u64> {
    match value.extract::<u64>() {
        Ok(v) => Ok(v),
        Err(e) => match value.extract::<i64>() {
            Ok(v) if v < 0 => {
                Err(to_py_err(Error::InvalidInput(format!("{function}: {name} = {v} must not be negative"))))
            }
            _ => Err(e),
        },
    }
}

/// The arithmetic mean (compensated sum). Empty input or a NaN/±inf value is an
/// `InvalidInputError`.
#[pyfunction]
fn mean(py: Python<'_>, xs: Vec<f64>) -> PyResult<f64> {
    zipp_call(py, || stats::mean(&xs))
}

/// Cohen's d between two groups with the pooled standard deviation,
/// `|mean(a) − mean(b)| / s_pooled`. `None` when d is undefined: a group has fewer than two
/// values, both groups are constant with equal means, or a value is NaN/±inf; `inf` for two
/// constant groups with different means.
#[pyfunction]
fn cohens_d(py: Python<'_>, a: Vec<f64>, b: Vec<f64>) -> PyResult<Option<f64>> {
    zipp_call(py, || Ok(stats::cohens_d(&stats::Moments::from_slice(&a), &stats::Moments::from_slice(&b))))
}

/// The exact two-sided binomial test (as `scipy.stats.binomtest(k, n, p).pvalue`): the
/// p-value of `k` successes in `n` trials with success probability `p`.
#[pyfunction]
#[pyo3(signature = (k, n, p = 0.5))]
fn binomial_test(py: Python<'_>, k: &Bound<'_, PyAny>, n: &Bound<'_, PyAny>, p: f64) -> PyResult<f64> {
    let (k, n) = (count(k, "binomial_test", "k")?, count(n, "binomial_test", "n")?);
    zipp_call(py, || stats::binomial_test(k, n, p))
}

/// The Wilson score interval `(lo, hi)` of `k` successes in `n` trials.
#[pyfunction]
#[pyo3(signature = (k, n, confidence = 0.95))]
fn wilson_interval(
    py: Python<'_>,
    k: &Bound<'_, PyAny>,
    n: &Bound<'_, PyAny>,
    confidence: f64,
) -> PyResult<(f64, f64)> {
    let (k, n) = (count(k, "wilson_interval", "k")?, count(n, "wilson_interval", "n")?);
    zipp_call(py, || stats::wilson_interval(k, n, confidence))
}

/// Ranks (1-based) with ties sharing their average rank (`scipy.stats.rankdata`).
#[pyfunction]
fn average_ranks(py: Python<'_>, xs: Vec<f64>) -> PyResult<Vec<f64>> {
    zipp_call(py, || stats::average_ranks(&xs))
}

/// Spearman's rank correlation ρ (`scipy.stats.spearmanr(x, y).statistic`).
#[pyfunction]
fn spearman(py: Python<'_>, x: Vec<f64>, y: Vec<f64>) -> PyResult<f64> {
    zipp_call(py, || stats::spearman(&x, &y))
}

/// CLIPScore of an image and a text embedding: `2.5 · max(cos, 0)` (Hessel et al.);
/// `scale100=True`: `100 · max(cos, 0)`. Compares images of one prompt, not across prompts.
#[pyfunction]
#[pyo3(signature = (image, text, *, scale100 = false))]
fn clip_score(py: Python<'_>, image: Vec<f32>, text: Vec<f32>, scale100: bool) -> PyResult<f64> {
    zipp_call(py, || match scale100 {
        true => zipp_eval::image_metrics::clip_score_100(&image, &text),
        false => zipp_eval::image_metrics::clip_score(&image, &text),
    })
}

/// Personalization CLIPScore: the mean cosine between an image embedding and the person's
/// reference image embeddings.
#[pyfunction]
fn personalization_clip_score(py: Python<'_>, image: Vec<f32>, references: Vec<Vec<f32>>) -> PyResult<f64> {
    zipp_call(py, || zipp_eval::image_metrics::personalization_clip_score(&image, &references))
}

/// CMMD between two sets of CLIP image embeddings (rows): σ = 10, ×1000, biased estimator.
#[pyfunction]
fn cmmd(py: Python<'_>, x: Vec<Vec<f32>>, y: Vec<Vec<f32>>) -> PyResult<f64> {
    zipp_call(py, || zipp_eval::image_metrics::cmmd(&x, &y))
}

/// IPF raking of a table's cells (row-major over `dims`) to target marginal shares:
/// `{"weights", "sweeps", "converged", "max_relative_error"}`, and with `values` (a metric's
/// mean per cell) also `"raw"`, `"ipf"` and `"delta_pct"`.
#[pyfunction]
#[pyo3(signature = (counts, dims, targets, values = None))]
fn rake<'py>(
    py: Python<'py>,
    counts: Vec<f64>,
    dims: Vec<usize>,
    targets: Vec<Vec<f64>>,
    values: Option<Vec<f64>>,
) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
    let (r, agg) = zipp_call(py, || {
        let r = zipp_eval::image_metrics::rake(&counts, &dims, &targets)?;
        let agg = values.as_ref().map(|v| zipp_eval::image_metrics::ipf_aggregate(v, &counts, &r)).transpose()?;
        Ok((r, agg))
    })?;
    let d = pyo3::types::PyDict::new(py);
    d.set_item("weights", r.weights)?;
    d.set_item("sweeps", r.sweeps)?;
    d.set_item("converged", r.converged)?;
    d.set_item("max_relative_error", r.max_relative_error)?;
    if let Some((raw, ipf, delta)) = agg {
        d.set_item("raw", raw)?;
        d.set_item("ipf", ipf)?;
        d.set_item("delta_pct", delta)?;
    }
    Ok(d)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(clip_score, m)?)?;
    m.add_function(wrap_pyfunction!(personalization_clip_score, m)?)?;
    m.add_function(wrap_pyfunction!(cmmd, m)?)?;
    m.add_function(wrap_pyfunction!(rake, m)?)?;
    m.add_class::<VpttScore>()?;
    m.add_class::<PersonaScorer>()?;
    m.add_class::<Evaluation>()?;
    m.add_class::<Report>()?;
    m.add_class::<EvalAggregate>()?;
    m.add_function(wrap_pyfunction!(merge_aggregates, m)?)?;
    m.add_function(wrap_pyfunction!(mean, m)?)?;
    m.add_function(wrap_pyfunction!(cohens_d, m)?)?;
    m.add_function(wrap_pyfunction!(binomial_test, m)?)?;
    m.add_function(wrap_pyfunction!(wilson_interval, m)?)?;
    m.add_function(wrap_pyfunction!(average_ranks, m)?)?;
    m.add_function(wrap_pyfunction!(spearman, m)?)?;
    Ok(())
}
