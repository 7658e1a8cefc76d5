//! `LanguageModel` and its `TextStream`: zipp-factory's `LmSpec` and generation driver.
//!
//! Generation runs on a zipp thread with the GIL released; text comes back to the calling
//! Python thread, which runs the `on_text` callback (with the GIL) and checks for signals
//! between pieces, so Ctrl-C interrupts a generation (it is cancelled, then
//! `KeyboardInterrupt` is raised).

use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyString;
use zipp_core::lm::{Cancel, Generation, Message};
use zipp_factory::lm::{self as flm, Step, Stream, POLL};
use zipp_factory::LmSpec;

use crate::callback::Callbacks;
use crate::error::to_py_err;
use crate::json::{dumps, to_python, unlocated_text};
use crate::models::Models;
use crate::zipp_call;

/// A chat language model: `"smollm2"` (the embedded default), `{"gguf": {"path": …}}` or
/// `{"scripted": {"replies": […]}}`.
#[pyclass(frozen, module = "zipp_persona")]
pub struct LanguageModel {
    inner: Arc<dyn zipp_core::lm::LanguageModel>,
}

/// Messages: a list of `{"role", "content"}` dicts, or one string (a single user message).
fn messages(value: &Bound<'_, PyAny>) -> PyResult<Vec<Message>> {
    if value.is_instance_of::<PyString>() {
        let m = vec![Message::user(value.extract::<String>()?)];
        zipp_core::lm::validate_messages(&m).map_err(to_py_err)?;
        return Ok(m);
    }
    flm::messages_from_json(&dumps(value)?).map_err(|e| to_py_err(unlocated_text(e)))
}

fn sampling(value: Option<&Bound<'_, PyAny>>) -> PyResult<zipp_core::lm::Sampling> {
    let json = value.map(dumps).transpose()?;
    flm::sampling_from_json(json.as_deref()).map_err(|e| to_py_err(unlocated_text(e)))
}

fn generation<'py>(py: Python<'py>, g: &Generation) -> PyResult<Bound<'py, PyAny>> {
    to_python(py, g)
}

#[pymethods]
impl LanguageModel {
    /// Loads the model `spec` names (default: the embedded SmolLM2, shared through `models`
    /// when given).
    #[new]
    #[pyo3(signature = (spec = None, *, models = None))]
    fn new(py: Python<'_>, spec: Option<&Bound<'_, PyAny>>, models: Option<&Models>) -> PyResult<LanguageModel> {
        let spec = match spec {
            Some(s) => LmSpec::from_json(&dumps(s)?).map_err(|e| to_py_err(unlocated_text(e)))?,
            None => LmSpec::default(),
        };
        Ok(LanguageModel { inner: build_with(py, models, |m| spec.build(m))? })
    }

    /// What identifies the model and its output (weights, quantization, template).
    #[getter]
    fn id(&self) -> String {
        self.inner.id()
    }

    /// Generates a reply to `messages` (a list of `{"role", "content"}` dicts, or one user
    /// string) with `sampling` (a dict: temperature, top_k, top_p, repeat_penalty, seed,
    /// max_tokens, stop; default greedy). `on_text(piece)` is called on this thread as text
    /// arrives; returning `False` from it stops the generation. Returns
    /// `{"text", "finish", "prompt_tokens", "completion_tokens"}`.
    #[pyo3(signature = (messages, sampling = None, *, on_text = None))]
    fn generate<'py>(
        &self,
        py: Python<'py>,
        messages: &Bound<'py, PyAny>,
        sampling: Option<&Bound<'py, PyAny>>,
        on_text: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (msgs, s) = (self::messages(messages)?, self::sampling(sampling)?);
        let callbacks = Callbacks::default();
        let model = self.inner.clone();
        let result = py.detach(|| {
            flm::generate(
                model,
                msgs,
                s,
                |piece| callbacks.call(on_text.as_ref(), |py, cb| cb.call1(py, (piece,))),
                || callbacks.interrupted(),
            )
        });
        generation(py, &callbacks.finish(result)?)
    }

    /// The reply to `messages` as an iterator of text pieces; after the last one its
    /// `result` holds the generation's dict. Ctrl-C while waiting cancels it and raises
    /// `KeyboardInterrupt`; so does dropping the iterator (the generation is cancelled).
    #[pyo3(signature = (messages, sampling = None))]
    fn stream(&self, messages: &Bound<'_, PyAny>, sampling: Option<&Bound<'_, PyAny>>) -> PyResult<TextStream> {
        let stream = Stream::start(self.inner.clone(), self::messages(messages)?, self::sampling(sampling)?)
            .map_err(to_py_err)?;
        let cancel = stream.cancel_handle();
        Ok(TextStream { stream: Mutex::new(Some(stream)), cancel, result: Mutex::new(None) })
    }

    fn __repr__(&self) -> String {
        format!("LanguageModel(id='{}')", self.inner.id())
    }
}

/// The text of one generation, piece by piece (see `LanguageModel.stream`).
#[pyclass(frozen, module = "zipp_persona")]
pub struct TextStream {
    /// `None` once the generation has ended.
    stream: Mutex<Option<Stream>>,
    /// Outside the lock, which `__next__` holds while it waits.
    cancel: Cancel,
    result: Mutex<Option<Generation>>,
}

#[pymethods]
impl TextStream {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<String>> {
        let mut guard = self.stream.lock().map_err(|_| PyRuntimeError::new_err("the stream was poisoned"))?;
        loop {
            let Some(stream) = guard.as_mut() else { return Ok(None) };
            match py.detach(|| stream.next(POLL)) {
                Step::Text(piece) => return Ok(Some(piece)),
                Step::Pending => {
                    if let Err(e) = py.check_signals() {
                        stream.cancel();
                        return Err(e);
                    }
                }
                Step::Done(result) => {
                    *guard = None;
                    let g = result.map_err(to_py_err)?;
                    *self.result.lock().unwrap_or_else(|p| p.into_inner()) = Some(g);
                    return Ok(None);
                }
            }
        }
    }

    /// Stops the generation; the iterator then ends with `finish == "cancelled"`.
    fn cancel(&self) {
        self.cancel.cancel();
    }

    /// The generation's dict once the iterator is exhausted, else `None`.
    #[getter]
    fn result<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let g = self.result.lock().unwrap_or_else(|p| p.into_inner()).clone();
        g.map(|g| generation(py, &g)).transpose()
    }
}

/// The models handle of a binding call: the given one, else the defaults.
fn build_with<T: Send>(
    py: Python<'_>,
    models: Option<&Models>,
    build: impl FnOnce(&zipp_factory::Models) -> zipp_core::Result<T> + Send,
) -> PyResult<T> {
    match models {
        Some(m) => zipp_call(py, || build(&m.inner)),
        None => zipp_call(py, || build(&zipp_factory::Models::new())),
    }
}

/// ViPer preference extraction: free-form comments on images → liked / disliked visual
/// attributes. `"vocabulary"` (phrase matching with negation, no model; the default),
/// `{"vocabulary": {"path": …}}` or `{"llm": {"model": …, "options": {…}}}`.
#[pyclass(frozen, module = "zipp_persona")]
pub struct Extractor {
    inner: Arc<dyn flm::Extractor>,
}

#[pymethods]
impl Extractor {
    #[new]
    #[pyo3(signature = (spec = None, *, models = None))]
    fn new(py: Python<'_>, spec: Option<&Bound<'_, PyAny>>, models: Option<&Models>) -> PyResult<Extractor> {
        let spec = match spec {
            Some(s) => zipp_factory::ExtractorSpec::from_json(&dumps(s)?).map_err(|e| to_py_err(unlocated_text(e)))?,
            None => zipp_factory::ExtractorSpec::default(),
        };
        Ok(Extractor { inner: build_with(py, models, |m| spec.build(m))? })
    }

    /// `{"preferences": {"liked": […], "disliked": […]}, "evidence": {…}}` for the comments
    /// (an attribute both liked and disliked is in neither list).
    fn extract<'py>(&self, py: Python<'py>, comments: Vec<String>) -> PyResult<Bound<'py, PyAny>> {
        let out = zipp_call(py, || {
            let refs: Vec<&str> = comments.iter().map(String::as_str).collect();
            self.inner.extract(&refs)
        })?;
        to_python(py, &out)
    }

    fn __repr__(&self) -> String {
        format!("Extractor('{}')", self.inner.name())
    }
}

/// The persona verbalizer: activity evidence (communities or posts with weights and
/// snippets) → a persona. `"template"` (deterministic, no model; the default) or
/// `{"llm": {"model": …, "options": {…}}}`.
#[pyclass(frozen, module = "zipp_persona")]
pub struct Verbalizer {
    inner: Arc<dyn flm::Verbalizer>,
}

#[pymethods]
impl Verbalizer {
    #[new]
    #[pyo3(signature = (spec = None, *, models = None))]
    fn new(py: Python<'_>, spec: Option<&Bound<'_, PyAny>>, models: Option<&Models>) -> PyResult<Verbalizer> {
        let spec = match spec {
            Some(s) => zipp_factory::VerbalizerSpec::from_json(&dumps(s)?).map_err(|e| to_py_err(unlocated_text(e)))?,
            None => zipp_factory::VerbalizerSpec::default(),
        };
        Ok(Verbalizer { inner: build_with(py, models, |m| spec.build(m))? })
    }

    /// `(persona, evidence)`: the persona the evidence (a dict or JSON text:
    /// `{"user": …, "items": [{"kind": "community", "name": …, "weight": …,
    /// "snippets": […]}]}`) describes, and how it was written.
    fn verbalize<'py>(
        &self,
        py: Python<'py>,
        evidence: &Bound<'py, PyAny>,
    ) -> PyResult<(crate::persona::Persona, Bound<'py, PyAny>)> {
        let json = if evidence.is_instance_of::<PyString>() { evidence.extract::<String>()? } else { dumps(evidence)? };
        let evidence = flm::ActivityEvidence::from_json_str(&json).map_err(|e| to_py_err(unlocated_text(e)))?;
        let out = zipp_call(py, || self.inner.verbalize(&evidence))?;
        Ok((crate::persona::Persona::wrap(out.persona), to_python(py, &out.evidence)?))
    }

    fn __repr__(&self) -> String {
        format!("Verbalizer('{}')", self.inner.name())
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<LanguageModel>()?;
    m.add_class::<TextStream>()?;
    m.add_class::<Extractor>()?;
    m.add_class::<Verbalizer>()
}
