//! Python values ↔ JSON text, so dicts reach zipp-core's own parsers (and their located
//! errors) instead of a second, hand-written conversion.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

/// `json.dumps(value)`: non-JSON values are a `TypeError`, NaN/inf a `ValueError`, as in
/// Python.
pub(crate) fn dumps(value: &Bound<'_, PyAny>) -> PyResult<String> {
    static DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let py = value.py();
    let dumps = DUMPS.import(py, "json", "dumps")?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("ensure_ascii", false)?;
    kwargs.set_item("allow_nan", false)?;
    dumps.call((value,), Some(&kwargs))?.extract()
}

/// `json.loads(text)`.
pub(crate) fn loads<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    LOADS.import(py, "json", "loads")?.call1((text,))
}

/// A value zipp-core serialises (serde) as a Python object.
pub(crate) fn to_python<'py, T: serde::Serialize>(py: Python<'py>, value: &T) -> PyResult<Bound<'py, PyAny>> {
    // Plain strings, numbers, maps and vectors: serialisation cannot fail.
    let text = serde_json::to_string(value).expect("zipp-core values serialise to JSON");
    loads(py, &text)
}

/// A zipp-core error about JSON text the bindings made from a Python value: the line and
/// column point into that internal text, so only the field path is kept.
pub(crate) fn unlocated_text(e: zipp_core::Error) -> zipp_core::Error {
    use zipp_core::{Error, Location};
    let strip = |l: Location| Location { line: None, column: None, ..l };
    match e {
        Error::Parse { location, message } => Error::Parse { location: strip(location), message },
        Error::Schema { location, message } => Error::Schema { location: strip(location), message },
        other => other,
    }
}
