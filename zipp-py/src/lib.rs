//! # zipp-py — Python bindings (`import zipp_persona as zipp`)
//!
//! The only crate that knows about Python. The native module is private
//! (`zipp_persona._zipp`) and re-exported by the pure-Python package in `python/zipp_persona`,
//! which adds the fork handlers, the exception classes and model provisioning.
//!
//! Every class here wraps a zipp-core type and only converts: personas
//! ([`persona`]), personalizers built from `MethodSpec` ([`personalize`]), their results
//! ([`result`]), the shared models with the embedder ([`models`]), the evaluation — VPTT
//! scorer, streaming runner, report, statistics ([`eval`]) — and the persona benches
//! ([`bench`]), language models with streaming generation ([`lm`]), and persona mining from
//! an activity graph ([`graph`]). Errors become one Python exception class per `zipp_core::Error::kind()`
//! ([`error`]).
//!
//! Concurrency: every call into zipp-core that computes or takes a lock goes through
//! [`zipp_call`], which releases the GIL and registers the call with
//! `zipp_core::runtime::enter`, so `os.fork()` (wired to `runtime::before_fork`) never
//! happens while zipp holds a lock.

use pyo3::prelude::*;

mod bench;
mod callback;
mod clip;
mod error;
mod eval;
mod graph;
mod image;
mod json;
mod lm;
mod models;
mod persona;
mod personalize;
mod result;

/// Runs `f` (zipp-core work) with the GIL released and the call registered with the fork
/// gate; converts its error into the matching Python exception.
///
/// `f` must not touch Python objects: the GIL is not held while it runs.
pub(crate) fn zipp_call<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> zipp_core::Result<T> + Send,
{
    py.detach(|| {
        let _inside = zipp_core::runtime::enter();
        f()
    })
    .map_err(error::to_py_err)
}

/// Fork handler (`os.register_at_fork(before=…)`): waits until no call is inside zipp.
#[pyfunction]
fn _before_fork(py: Python<'_>) {
    // Calls inside zipp run without the GIL, so they can finish while we wait; waiting
    // with the GIL released as well lets any thread that needs it proceed.
    py.detach(zipp_core::runtime::before_fork);
}

/// Fork handler (`after_in_parent`): this fork no longer holds calls back.
#[pyfunction]
fn _after_fork_in_parent() {
    zipp_core::runtime::after_fork_in_parent();
}

/// Fork handler (`after_in_child`): the child starts with nothing in progress.
#[pyfunction]
fn _after_fork_in_child() {
    zipp_core::runtime::after_fork_in_child();
}

/// Calls inside zipp right now (zipp-core's diagnostic; the fork tests read it in a child).
#[pyfunction]
fn _active_calls() -> usize {
    zipp_core::runtime::active_calls()
}

/// `$ZIPP_MODELS_DIR`, else `$XDG_CACHE_HOME/zipp/models`, else `~/.cache/zipp/models`.
#[pyfunction]
fn default_models_dir() -> std::path::PathBuf {
    zipp_core::models::default_models_dir()
}

/// Threads of this process's zipp compute pool (`$ZIPP_NUM_THREADS` or the core count).
#[pyfunction]
fn num_threads(py: Python<'_>) -> PyResult<usize> {
    zipp_call(py, || Ok(zipp_core::runtime::num_threads()))
}

#[pymodule]
fn _zipp(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", zipp_core::VERSION)?;
    m.add("PROVISION_HINT", zipp_core::models::PROVISION_HINT)?;
    m.add_function(wrap_pyfunction!(default_models_dir, m)?)?;
    m.add_function(wrap_pyfunction!(num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(_before_fork, m)?)?;
    m.add_function(wrap_pyfunction!(_after_fork_in_parent, m)?)?;
    m.add_function(wrap_pyfunction!(_after_fork_in_child, m)?)?;
    m.add_function(wrap_pyfunction!(_active_calls, m)?)?;
    m.add_function(wrap_pyfunction!(error::_error_kinds, m)?)?;
    models::register(m)?;
    persona::register(m)?;
    personalize::register(m)?;
    result::register(m)?;
    eval::register(m)?;
    bench::register(m)?;
    lm::register(m)?;
    image::register(m)?;
    graph::register(m)?;
    clip::register(m)?;
    Ok(())
}
