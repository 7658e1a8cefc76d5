//! `zipp_core::Error` → the Python exception of its kind (`zipp_persona._errors`), by the
//! kind's stable name and code (`zipp_core::ErrorKind`).

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use zipp_core::{Error, Location};

/// The exception for `e`: the class of `e.kind()`, carrying the message, location, path and
/// hint zipp-core reported. `str(exc)` is zipp-core's full message.
pub(crate) fn to_py_err(e: Error) -> PyErr {
    Python::attach(|py| match build(py, &e) {
        Ok(exc) => PyErr::from_value(exc),
        // Only if `zipp_persona._errors` cannot be imported: still say what zipp said.
        Err(import_failure) => {
            let err = pyo3::exceptions::PyRuntimeError::new_err(format!("{} error: {e}", e.kind().name()));
            err.set_cause(py, Some(import_failure));
            err
        }
    })
}

fn build<'py>(py: Python<'py>, e: &Error) -> PyResult<Bound<'py, PyAny>> {
    static FROM_CORE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    static LOCATION: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let from_core = FROM_CORE.import(py, "zipp_persona._errors", "_from_core")?;
    let text = e.to_string();
    let display = |p: &std::path::Path| p.display().to_string();
    // (message, path, hint, errno); the location comes from `Error::location`.
    let (message, path, hint, errno) = match e {
        Error::Io { path, source } => (source.to_string(), Some(display(path)), None, source.raw_os_error()),
        Error::Parse { message, .. } | Error::Schema { message, .. } => (message.clone(), None, None, None),
        Error::InvalidInput(m) | Error::Tokenizer(m) | Error::Compute(m) | Error::Internal(m) => {
            (m.clone(), None, None, None)
        }
        Error::ModelNotFound { path, hint, .. } => (text.clone(), Some(display(path)), Some(hint.clone()), None),
        Error::ModelInvalid { path, message, hint, .. } => {
            (message.clone(), Some(display(path)), Some(hint.clone()), None)
        }
        // zipp_core::Error is non-exhaustive: a newer kind still reaches Python whole.
        _ => (text.clone(), None, None, None),
    };
    let location = match e.location() {
        Some(Location { file, line, column, field }) => {
            let class = LOCATION.import(py, "zipp_persona._errors", "Location")?;
            Some(class.call1((file.as_deref().map(display), *line, *column, field.as_deref()))?)
        }
        None => None,
    };
    from_core.call1((e.kind().name(), e.kind().code(), text, message, location, path, hint, errno))
}

/// `[(name, code, description), …]` for every zipp-core error kind, in code order:
/// `zipp_persona._errors` checks its classes against it and makes a class for any kind it
/// does not know yet.
#[pyfunction]
pub(crate) fn _error_kinds() -> Vec<(&'static str, i32, &'static str)> {
    zipp_core::ErrorKind::ALL.iter().map(|k| (k.name(), k.code(), k.description())).collect()
}
