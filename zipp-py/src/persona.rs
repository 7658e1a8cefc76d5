//! `Persona` (immutable, with its memory embeddings cached) and JSONL collections.

use std::collections::BTreeMap;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::BufReader;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use zipp_core::persona::{self, JsonlReader};
use zipp_core::{IndexedPersona, Post};

use crate::error::to_py_err;
use crate::json;
use crate::models::Models;
use crate::result::py_repr;
use crate::zipp_call;

/// One person's conditioning (SPEC §2). Immutable: the memory embeddings a personalizer
/// computes are cached on the object and depend on its content, so edits (`replace`,
/// `add_post`) return a new, validated `Persona`. Every constructor validates strictly:
/// unknown fields, empty captions and duplicate post ids are errors naming the field.
#[pyclass(frozen, module = "zipp_persona")]
pub struct Persona {
    /// Shared by every personalizer call on this object, so the memory is embedded once.
    pub(crate) inner: Arc<IndexedPersona>,
}

impl Persona {
    pub(crate) fn wrap(p: zipp_core::Persona) -> Persona {
        Persona { inner: Arc::new(IndexedPersona::new(p)) }
    }

    fn core(&self) -> &zipp_core::Persona {
        self.inner.persona()
    }

    fn from_py_dict(d: &Bound<'_, PyDict>) -> PyResult<Persona> {
        let text = json::dumps(d.as_any())?;
        zipp_core::Persona::from_json_str(&text).map(Persona::wrap).map_err(|e| to_py_err(json::unlocated_text(e)))
    }
}

/// A post as a dict with every key present.
fn post_dict<'py>(py: Python<'py>, post: &Post) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("id", post.id.as_deref())?;
    d.set_item("caption", &post.caption)?;
    d.set_item("elements", &post.elements)?;
    Ok(d)
}

#[pymethods]
impl Persona {
    /// A persona from its parts (the same fields as the JSON format; `None` leaves a part out).
    #[new]
    #[pyo3(signature = (id, *, summary = None, demographics = None, interests = None, traits = None,
                        preferences = None, memory = None, examples = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        id: Bound<'_, PyAny>,
        summary: Option<Bound<'_, PyAny>>,
        demographics: Option<Bound<'_, PyAny>>,
        interests: Option<Bound<'_, PyAny>>,
        traits: Option<Bound<'_, PyAny>>,
        preferences: Option<Bound<'_, PyAny>>,
        memory: Option<Bound<'_, PyAny>>,
        examples: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Persona> {
        let d = PyDict::new(py);
        d.set_item("id", id)?;
        for (key, value) in [
            ("summary", summary),
            ("demographics", demographics),
            ("interests", interests),
            ("traits", traits),
            ("preferences", preferences),
            ("memory", memory),
            ("examples", examples),
        ] {
            if let Some(v) = value {
                d.set_item(key, v)?;
            }
        }
        Persona::from_py_dict(&d)
    }

    /// A persona from a dict shaped like its JSON (what `to_dict()` returns).
    #[staticmethod]
    fn from_dict(d: &Bound<'_, PyDict>) -> PyResult<Persona> {
        Persona::from_py_dict(d)
    }

    /// Parses one persona from JSON text (errors give line, column and field).
    #[staticmethod]
    fn from_json(py: Python<'_>, text: String) -> PyResult<Persona> {
        zipp_call(py, || zipp_core::Persona::from_json_str(&text)).map(Persona::wrap)
    }

    /// Reads one persona from a `.json` file.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Persona> {
        zipp_call(py, || zipp_core::Persona::from_json_file(&path)).map(Persona::wrap)
    }

    /// Writes this persona to a `.json` file (pretty-printed).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        zipp_call(py, || self.core().save_json(&path))
    }

    /// The persona as JSON text (compact, or indented with `pretty=True`).
    #[pyo3(signature = (pretty = false))]
    fn to_json(&self, pretty: bool) -> PyResult<String> {
        self.core().to_json_string(pretty).map_err(to_py_err)
    }

    /// The persona as a dict shaped like its JSON (empty parts left out).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json::to_python(py, self.core())
    }

    /// A copy with some fields replaced (`None` removes a field), validated like any other
    /// persona: `p.replace(summary="…", interests=["trams"])`.
    #[pyo3(signature = (**fields))]
    fn replace(&self, py: Python<'_>, fields: Option<&Bound<'_, PyDict>>) -> PyResult<Persona> {
        let d = json::to_python(py, self.core())?.downcast_into::<PyDict>()?;
        for (key, value) in fields.into_iter().flat_map(|f| f.iter()) {
            if value.is_none() {
                if d.contains(&key)? {
                    d.del_item(&key)?;
                }
            } else {
                d.set_item(key, value)?;
            }
        }
        Persona::from_py_dict(&d)
    }

    /// A copy with one more post in its memory: `elements` maps a category to its elements.
    #[pyo3(signature = (caption, elements = None, id = None))]
    fn add_post(
        &self,
        caption: String,
        elements: Option<BTreeMap<String, Vec<String>>>,
        id: Option<String>,
    ) -> PyResult<Persona> {
        let mut p = self.core().clone();
        p.memory.push(Post { id, caption, elements: elements.unwrap_or_default() });
        p.validate().map_err(to_py_err)?;
        Ok(Persona::wrap(p))
    }

    /// Embeds the memory now with `models`' embedder (otherwise the first embedding
    /// personalizer call does it). Cached on this object.
    fn index(&self, py: Python<'_>, models: &Bound<'_, Models>) -> PyResult<()> {
        let models = &models.get().inner;
        zipp_call(py, || {
            self.inner.index(models.embedder()?.as_ref())?;
            Ok(())
        })
    }

    #[getter]
    fn schema_version(&self) -> u32 {
        self.core().schema_version
    }

    #[getter]
    fn id(&self) -> &str {
        &self.core().id
    }

    #[getter]
    fn summary(&self) -> &str {
        &self.core().summary
    }

    /// Key → value (age band, country, profession …).
    #[getter]
    fn demographics(&self) -> BTreeMap<String, String> {
        self.core().demographics.clone()
    }

    #[getter]
    fn interests(&self) -> Vec<String> {
        self.core().interests.clone()
    }

    #[getter]
    fn traits(&self) -> Vec<String> {
        self.core().traits.clone()
    }

    /// `{"liked": [...], "disliked": [...]}`.
    #[getter]
    fn preferences<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let prefs = &self.core().preferences;
        let d = PyDict::new(py);
        d.set_item("liked", &prefs.liked)?;
        d.set_item("disliked", &prefs.disliked)?;
        Ok(d)
    }

    /// The posts, each `{"id": str | None, "caption": str, "elements": {category: [str]}}`.
    #[getter]
    fn memory<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let posts = self.core().memory.iter().map(|p| post_dict(py, p)).collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, posts)
    }

    #[getter]
    fn examples(&self) -> Vec<String> {
        self.core().examples.clone()
    }

    /// Summary, demographics and interests as one string (what PersonaOnly appends).
    fn persona_text(&self) -> String {
        self.core().persona_text()
    }

    /// Every category in the memory, sorted.
    fn categories(&self) -> Vec<&str> {
        self.core().categories()
    }

    fn __eq__(&self, other: &Bound<'_, Persona>) -> bool {
        self.core() == other.get().core()
    }

    fn __hash__(&self) -> PyResult<u64> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.core().to_json_string(false).map_err(to_py_err)?.hash(&mut h);
        Ok(h.finish())
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let p = self.core();
        let mut summary: String = p.summary.chars().take(40).collect();
        if summary.len() < p.summary.len() {
            summary.push('…');
        }
        Ok(format!("Persona(id={}, posts={}, summary={})", py_repr(py, &p.id)?, p.memory.len(), py_repr(py, &summary)?))
    }

    /// Pickles as JSON text (so personas travel to worker processes).
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let from_json = py.get_type::<Persona>().getattr("from_json")?;
        Ok((from_json, PyTuple::new(py, [self.to_json(false)?])?))
    }
}

/// Personas of a JSONL file, read one line at a time (the file is opened at once; a bad
/// record raises at its turn, naming the line, and ends the iteration).
#[pyclass(frozen, module = "zipp_persona")]
pub struct PersonaReader {
    reader: Mutex<JsonlReader<BufReader<File>>>,
    path: PathBuf,
}

#[pymethods]
impl PersonaReader {
    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Persona>> {
        let next = zipp_call(py, || {
            // A poisoned lock only means a panic elsewhere; the reader then returns errors or None.
            self.reader.lock().unwrap_or_else(|e| e.into_inner()).next().transpose()
        })?;
        Ok(next.map(Persona::wrap))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!("PersonaReader({})", py_repr(py, &self.path.display().to_string())?))
    }
}

/// Reads every persona of a JSONL file (the first bad record raises, naming its line).
#[pyfunction]
fn read_jsonl(py: Python<'_>, path: PathBuf) -> PyResult<Vec<Persona>> {
    let personas = zipp_call(py, || persona::read_jsonl(&path))?;
    Ok(personas.into_iter().map(Persona::wrap).collect())
}

/// Streams the personas of a JSONL file: memory stays bounded by one line.
#[pyfunction]
fn iter_jsonl(py: Python<'_>, path: PathBuf) -> PyResult<PersonaReader> {
    let reader = zipp_call(py, || JsonlReader::open(&path))?;
    Ok(PersonaReader { reader: Mutex::new(reader), path })
}

/// Writes personas as JSONL (one per line); duplicate ids are an error naming the line.
#[pyfunction]
fn write_jsonl(py: Python<'_>, path: PathBuf, personas: &Bound<'_, PyAny>) -> PyResult<()> {
    let personas = personas
        .try_iter()?
        .map(|p| Ok(p?.downcast::<Persona>()?.get().inner.clone()))
        .collect::<PyResult<Vec<Arc<IndexedPersona>>>>()?;
    zipp_call(py, || {
        // Into memory first, so a failure to write names the file (the writer API cannot).
        let mut text = Vec::new();
        persona::write_jsonl(&mut text, personas.iter().map(|p| p.persona()))?;
        std::fs::write(&path, text).map_err(|source| zipp_core::Error::Io { path: path.clone(), source })
    })
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Persona>()?;
    m.add_class::<PersonaReader>()?;
    m.add_function(wrap_pyfunction!(read_jsonl, m)?)?;
    m.add_function(wrap_pyfunction!(iter_jsonl, m)?)?;
    m.add_function(wrap_pyfunction!(write_jsonl, m)?)?;
    Ok(())
}
