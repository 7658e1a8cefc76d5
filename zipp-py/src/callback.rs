//! Python callbacks of a generation that runs with the GIL released: the one way the
//! language model and the image model call back and watch for Ctrl-C.
//!
//! zipp-factory's drivers run the work on a zipp thread and hand events to the calling
//! thread; there [`Callbacks::call`] takes the GIL to run the user's callback and
//! [`Callbacks::interrupted`] to check for signals. The first Python error either raises (the
//! callback's exception, `KeyboardInterrupt`) is kept, cancels the work, and is what
//! [`Callbacks::finish`] raises.

use std::sync::{Mutex, PoisonError};

use pyo3::prelude::*;
use pyo3::types::PyBool;

use crate::error::to_py_err;

#[derive(Default)]
pub(crate) struct Callbacks {
    failure: Mutex<Option<PyErr>>,
}

impl Callbacks {
    fn keep(&self, e: PyErr) {
        self.failure.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert(e);
    }

    /// Runs `call` on the callback with the GIL held: `false` (cancel) when it returns
    /// `False` or raises (the exception is kept); `true` without a callback, or when it returns
    /// anything else (`None` included).
    pub(crate) fn call(
        &self,
        callback: Option<&Py<PyAny>>,
        call: impl FnOnce(Python<'_>, &Py<PyAny>) -> PyResult<Py<PyAny>>,
    ) -> bool {
        let Some(cb) = callback else { return true };
        Python::attach(|py| match call(py, cb) {
            Ok(r) => !r.bind(py).is(PyBool::new(py, false)),
            Err(e) => {
                self.keep(e);
                false
            }
        })
    }

    /// Whether a signal handler raised (Ctrl-C): the exception is kept.
    pub(crate) fn interrupted(&self) -> bool {
        Python::attach(|py| match py.check_signals() {
            Ok(()) => false,
            Err(e) => {
                self.keep(e);
                true
            }
        })
    }

    /// The kept Python error if there is one (it caused any cancellation), else the result.
    pub(crate) fn finish<R>(self, result: zipp_core::Result<R>) -> PyResult<R> {
        match self.failure.into_inner().unwrap_or_else(PoisonError::into_inner) {
            Some(e) => Err(e),
            None => result.map_err(to_py_err),
        }
    }
}
