//! # zipp-py — Python bindings (`import zipp_persona as zipp`)
//!
//! The only crate that knows about Python. The native module is private
//! (`zipp_persona._zipp`) and wrapped by the pure-Python package in `python/zipp_persona`.
//! It will expose personas, personalizers, the embedder (numpy out) and model
//! provisioning, releasing the GIL around heavy calls (the bindings issue).
//!
//! Status: the version only.

use pyo3::prelude::*;

#[pymodule]
fn _zipp(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", zipp_core::VERSION)?;
    Ok(())
}
