//! `mine_personas` and `MiningResult`: zipp-factory's `MiningSpec` and its mining driver;
//! `build_graph`: its `GraphBuildSpec` and on-disk graph build.
//!
//! The models load with the GIL released; the mining then runs on a zipp thread while the
//! calling thread waits with the GIL released, taking it only to run the `on_progress`
//! callback and to check for signals between reports, so Ctrl-C cancels (within one epoch)
//! and raises `KeyboardInterrupt`.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use zipp_factory::graph::{GraphBuildProgress, Miner, MiningProgress};
use zipp_factory::{GraphBuildSpec, MiningSpec};

use crate::callback::Callbacks;
use crate::error::to_py_err;
use crate::json::{dumps, to_python, unlocated_text};
use crate::models::Models;
use crate::persona::Persona;
use crate::zipp_call;

/// What `mine_personas` found: the mined `personas` (in the graph's user order) with their
/// `evidence`, the users whose persona could not be made (`errors`), the encoder's `metrics`,
/// the training `history` and the `graph`'s size and split.
#[pyclass(frozen, module = "zipp_persona")]
pub struct MiningResult {
    inner: zipp_factory::MiningResult,
}

#[pymethods]
impl MiningResult {
    /// The mined personas, in the graph's user order (users with an error left out).
    #[getter]
    fn personas(&self) -> Vec<Persona> {
        self.inner.mined().map(|m| Persona::wrap(m.persona.clone())).collect()
    }

    /// The evidence of each persona (same order): `{"user", "items": [{"kind", "name",
    /// "description", "weight", "snippets"}]}`, the user's communities ranked by the encoder's
    /// attention (the weights) with what they wrote there, as the verbalizer saw them.
    #[getter]
    fn evidence<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items = self.inner.mined().map(|m| to_python(py, &m.evidence)).collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// How the verbalizer wrote each persona (same order): `{"method", "named", "keywords",
    /// "notes", "transcript"}`.
    #[getter]
    fn verbalizations<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items = self.inner.mined().map(|m| to_python(py, &m.verbalization)).collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// The users without a persona: `[{"user", "kind", "message"}]` (`kind` is the error
    /// kind's name, as the exception classes are named).
    #[getter]
    fn errors<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let rows = PyList::empty(py);
        for u in &self.inner.personas {
            if let Err(e) = &u.outcome {
                let d = PyDict::new(py);
                d.set_item("user", &u.user)?;
                d.set_item("kind", e.kind().name())?;
                d.set_item("message", e.to_string())?;
                rows.append(d)?;
            }
        }
        Ok(rows)
    }

    /// `{"test": {"auc", "hit10", "edges"} | None, "trained", "epochs", "best_epoch",
    /// "seconds_per_epoch", "seconds"}`.
    #[getter]
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &self.inner.metrics)
    }

    /// One dict per epoch: `{"epoch", "loss", "link_loss", "align_loss", "validation",
    /// "seconds"}` (empty when the weights were loaded).
    #[getter]
    fn history<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &self.inner.history)
    }

    /// `{"users", "communities", "edges", "train_edges", "validation_edges", "test_edges"}`.
    #[getter]
    fn graph<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &self.inner.graph)
    }

    /// The whole result as JSON, as C's `zipp_mine_personas` returns it.
    fn to_json(&self) -> PyResult<String> {
        self.inner.to_json().map_err(to_py_err)
    }

    /// Writes the mined personas as JSONL (what `read_jsonl` reads).
    fn to_jsonl(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        zipp_call(py, || self.inner.write_jsonl(&path))
    }

    fn __len__(&self) -> usize {
        self.inner.personas.len()
    }

    fn __repr__(&self) -> String {
        let mined = self.inner.mined().count();
        let auc = self.inner.metrics.test.map_or_else(|| "None".to_string(), |t| format!("{:.4}", t.auc));
        format!(
            "MiningResult({mined} personas, {} errors, epochs={}, test_auc={auc})",
            self.inner.personas.len() - mined,
            self.inner.metrics.epochs
        )
    }
}

/// Mines personas from an activity graph (SPEC §6): loads the graph, trains the GATv2
/// encoder (or loads its `weights`), ranks each user's communities by attention and
/// verbalizes them. `spec` is a dict (or its JSON text): `{"edges": ["edges.jsonl"],
/// "communities": …, "split": {…}, "encoder": {…}, "train": {…}, "content":
/// "mean_of_communities", "evidence": {…}, "verbalizer": "template", "embedder": "minilm",
/// "checkpoint": …}` (only `edges`, or `"movielens": True`, is required). `models` (default:
/// the default models folder) provides MiniLM and the CLIP vocabulary.
/// `on_progress(stage, done, total, loss, auc)` runs on this thread after each report
/// (`stage` is "load", "features", "train", "evaluate" or "evidence"; `loss` and `auc` are
/// `None` where they do not apply); returning `False` cancels (`CancelledError`). Ctrl-C
/// cancels and raises `KeyboardInterrupt`.
#[pyfunction]
#[pyo3(signature = (spec, *, models = None, on_progress = None))]
fn mine_personas(
    py: Python<'_>,
    spec: &Bound<'_, PyAny>,
    models: Option<&Models>,
    on_progress: Option<Py<PyAny>>,
) -> PyResult<MiningResult> {
    // JSON text keeps its own lines and columns in errors; a dict's only its field paths.
    let spec = if spec.is_instance_of::<PyString>() {
        MiningSpec::from_json(&spec.extract::<String>()?).map_err(to_py_err)?
    } else {
        MiningSpec::from_json(&dumps(spec)?).map_err(|e| to_py_err(unlocated_text(e)))?
    };
    let miner = match models {
        Some(m) => zipp_call(py, || Miner::new(spec, &m.inner))?,
        None => zipp_call(py, || Miner::new(spec, &zipp_factory::Models::new()))?,
    };
    let callbacks = Callbacks::default();
    let result = py.detach(|| {
        miner.mine(
            |p: MiningProgress| {
                callbacks
                    .call(on_progress.as_ref(), |py, cb| cb.call1(py, (p.stage.name(), p.done, p.total, p.loss, p.auc)))
            },
            || callbacks.interrupted(),
        )
    });
    Ok(MiningResult { inner: callbacks.finish(result)? })
}

/// Builds an activity graph into a folder in PyTorch Geometric's layout (what
/// `zipp_graph::export` writes: `meta.json`, `user_rowptr.npy`, `user_col.npy`,
/// `edge_weight.npy`, `edge_split.npy`, `users.txt`, `communities.jsonl`,
/// `edge_snippets.jsonl`) in bounded memory, however large the graph: rows are sorted
/// through scratch files, `memory_budget_mb` at a time, besides the id maps. `spec` is a dict
/// (or its JSON text): `{"edges": ["edges.jsonl"], "out": "graph-export", "communities": …,
/// "split": {"validation": 0.05, "test": 0.1, "seed": 0}, "memory_budget_mb": 1024,
/// "skip_bad_rows": False, "max_snippets_per_edge": 16, "format": "jsonl", "scratch_dir": …}`
/// (only `edges` and `out` are required; no `split`: every edge in training). Returns the
/// report: `{"out", "load": {"rows_read", "rows_skipped", "skipped", "users", "communities",
/// "edges", "snippets", "seconds"}, "ranges", "largest_range_bytes", "levels",
/// "scratch_bytes"}`. `on_progress(pass, rows)` runs on this thread (`pass` 1: reading ids,
/// 2: distributing rows, 3: sorting and writing); returning `False` cancels
/// (`CancelledError`; the scratch files are removed and `out` never holds a half-written
/// export with a `meta.json`), as does Ctrl-C (`KeyboardInterrupt`).
#[pyfunction]
#[pyo3(signature = (spec, *, on_progress = None))]
fn build_graph<'py>(
    py: Python<'py>,
    spec: &Bound<'py, PyAny>,
    on_progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    // JSON text keeps its own lines and columns in errors; a dict's only its field paths.
    let spec = if spec.is_instance_of::<PyString>() {
        GraphBuildSpec::from_json(&spec.extract::<String>()?).map_err(to_py_err)?
    } else {
        GraphBuildSpec::from_json(&dumps(spec)?).map_err(|e| to_py_err(unlocated_text(e)))?
    };
    let callbacks = Callbacks::default();
    let result = py.detach(|| {
        zipp_factory::graph::build_graph(
            &spec,
            |p: GraphBuildProgress| callbacks.call(on_progress.as_ref(), |py, cb| cb.call1(py, (p.pass, p.rows))),
            || callbacks.interrupted(),
        )
    });
    to_python(py, &callbacks.finish(result)?)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<MiningResult>()?;
    m.add_function(wrap_pyfunction!(mine_personas, m)?)?;
    m.add_function(wrap_pyfunction!(build_graph, m)?)?;
    Ok(())
}
