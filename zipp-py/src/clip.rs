//! `ClipModel` (zipp-factory's `ClipSpec`: CLIP image and text embeddings, and the image
//! scores over them) and the image columns of an evaluation (`ImageEvaluation`,
//! `ImageReport`: zipp-factory's `SharedImageEvaluation`). Images are numpy `H×W×3 uint8`
//! arrays of any strides, as `ImageModel` returns them; embeddings come back as float32
//! numpy arrays `(n, dim)`. Every number is zipp-eval's; this module only converts.

use std::sync::Arc;

use numpy::ndarray::{Array2, ArrayView3};
use numpy::{IntoPyArray, PyArray2, PyReadonlyArray3, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use serde_json::Value;
use zipp_core::image::Image;
use zipp_core::Error;
use zipp_eval::image_eval::{ImageEvalOptions, MethodImages};
use zipp_eval::Report as VpttReport;
use zipp_factory::clip::{self as fclip, ClipModel as Model, ClipSpec, SharedImageEvaluation};
use zipp_factory::EvalConfig;

use crate::error::to_py_err;
use crate::json::{dumps, unlocated_text};
use crate::persona::Persona;
use crate::result::py_repr;
use crate::zipp_call;

fn invalid(message: String) -> PyErr {
    to_py_err(Error::InvalidInput(message))
}

/// One `H×W×3 uint8` array (any strides) as an image; `what` names it in errors.
fn image_of(a: &Bound<'_, PyAny>, what: &str) -> PyResult<Image> {
    let arr: PyReadonlyArray3<u8> = a.extract().map_err(|_| {
        invalid(format!(
            "{what} must be a numpy array of shape (height, width, 3) and dtype uint8 \
             (np.asarray(pil_image.convert('RGB'))), not {}",
            describe(a)
        ))
    })?;
    let shape = arr.shape();
    if shape[2] != 3 {
        return Err(invalid(format!("{what} has {} channels; RGB (3) is needed", shape[2])));
    }
    let view: ArrayView3<u8> = arr.as_array();
    let rgb: Vec<u8> = view.iter().copied().collect();
    Image::new(shape[1] as u32, shape[0] as u32, rgb).map_err(|e| match e {
        Error::InvalidInput(m) => invalid(format!("{what}: {m}")),
        other => to_py_err(other),
    })
}

/// What a value is, for error messages: an array's shape and dtype, else its type.
fn describe(a: &Bound<'_, PyAny>) -> String {
    match a.cast::<PyUntypedArray>() {
        Ok(arr) => match arr.dtype().str() {
            Ok(dtype) => format!("an array of shape {:?} and dtype {dtype}", arr.shape()),
            Err(_) => format!("an array of shape {:?}", arr.shape()),
        },
        Err(_) => a.get_type().name().map_or_else(|_| "an object".to_string(), |n| n.to_string()),
    }
}

/// A sequence of images (a list of `H×W×3` arrays, or an `(n, H, W, 3)` array); one lone
/// `H×W×3` array is refused rather than read as rows.
fn images_of(seq: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<Image>> {
    if let Ok(arr) = seq.cast::<PyUntypedArray>() {
        if arr.ndim() != 4 {
            return Err(invalid(format!(
                "{what} must be a list of (height, width, 3) uint8 arrays or one (n, height, width, 3) array, \
                 not {}",
                describe(seq)
            )));
        }
    } else if seq.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!("{what} must be a sequence of images, not a str")));
    }
    seq.try_iter()?.enumerate().map(|(i, a)| image_of(&a?, &format!("{what}[{i}]"))).collect()
}

/// Rows of one width as a float32 `(n, dim)` array.
fn rows_array<'py>(py: Python<'py>, rows: Vec<Vec<f32>>) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let (n, d) = (rows.len(), rows.first().map_or(0, Vec::len));
    let flat: Vec<f32> = rows.into_iter().flatten().collect();
    let a = Array2::from_shape_vec((n, d), flat)
        .map_err(|e| to_py_err(Error::Internal(format!("embeddings of uneven width: {e}"))))?;
    Ok(a.into_pyarray(py))
}

/// JSON text of a spec-like argument: a str or `os.PathLike` is a path (JSON string), a
/// mapping is dumped.
fn spec_json(spec: &Bound<'_, PyAny>) -> PyResult<String> {
    match spec.extract::<std::path::PathBuf>() {
        Ok(path) => Ok(Value::String(path.to_string_lossy().into_owned()).to_string()),
        Err(_) => dumps(spec),
    }
}

/// A dict (errors keep only the field path) or JSON text (errors keep line and column), or
/// `None`.
fn config_text(value: Option<&Bound<'_, PyAny>>, what: &str) -> PyResult<Option<(String, bool)>> {
    let Some(value) = value.filter(|v| !v.is_none()) else { return Ok(None) };
    if let Ok(text) = value.cast::<PyString>() {
        return Ok(Some((text.to_cow()?.into_owned(), false)));
    }
    if value.is_instance_of::<PyDict>() {
        return Ok(Some((dumps(value)?, true)));
    }
    Err(PyTypeError::new_err(format!("{what} is a dict or JSON text, not {}", value.get_type().name()?)))
}

fn located(from_dict: bool) -> impl Fn(Error) -> Error {
    move |e| if from_dict { unlocated_text(e) } else { e }
}

/// A CLIP model (transformers' `CLIPModel` folder, e.g. a snapshot of
/// `openai/clip-vit-base-patch32`): image and text embeddings in the joint space, with
/// CLIP's own image preprocessing, and the image scores over them. Safe to share between
/// threads.
///
/// `spec` is a path (a folder with `config.json`, `model.safetensors`, `merges.txt`,
/// `preprocessor_config.json`, or a Hugging Face cache entry or repo id already in the local
/// cache) or a dict `{"path": …}`.
#[pyclass(frozen, module = "zipp_persona")]
pub struct ClipModel {
    pub(crate) inner: Arc<Model>,
}

#[pymethods]
impl ClipModel {
    #[new]
    fn new(py: Python<'_>, spec: &Bound<'_, PyAny>) -> PyResult<ClipModel> {
        // The JSON text is made here: errors keep only the field path.
        let spec = ClipSpec::from_json(&spec_json(spec)?).map_err(|e| to_py_err(unlocated_text(e)))?;
        let inner = zipp_call(py, || spec.build())?;
        Ok(ClipModel { inner })
    }

    /// The width of the embeddings (`projection_dim`).
    #[getter]
    fn dim(&self) -> usize {
        self.inner.projection_dim()
    }

    /// The folder the model was loaded from.
    #[getter]
    fn path(&self) -> std::path::PathBuf {
        self.inner.path().to_path_buf()
    }

    /// Image embeddings, float32 `(n, dim)`, **unnormalised** (transformers'
    /// `get_image_features` after `CLIPImageProcessor`). `images`: a list of `H×W×3 uint8`
    /// arrays (any sizes) or one `(n, H, W, 3)` array. An empty list is an
    /// `InvalidInputError`.
    fn image_embeddings<'py>(
        &self,
        py: Python<'py>,
        images: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let images = images_of(images, "images")?;
        let rows = zipp_call(py, || self.inner.image_embeddings(&images))?;
        rows_array(py, rows)
    }

    /// Text embeddings, float32 `(n, dim)`, **unnormalised** (transformers'
    /// `get_text_features`). A text over 77 tokens with its markers is an
    /// `InvalidInputError` (not cut).
    fn text_embeddings<'py>(&self, py: Python<'py>, texts: Vec<String>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let rows = zipp_call(py, || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            self.inner.text_embeddings(&refs)
        })?;
        rows_array(py, rows)
    }

    /// CLIPScore of every image against `prompt`: `2.5 · max(cos, 0)` (Hessel et al.), or
    /// `100 · max(cos, 0)` with `scale100=True`. Compares images of this prompt only, never
    /// scores of different prompts.
    #[pyo3(signature = (images, prompt, *, scale100 = false))]
    fn clip_scores(
        &self,
        py: Python<'_>,
        images: &Bound<'_, PyAny>,
        prompt: String,
        scale100: bool,
    ) -> PyResult<Vec<f64>> {
        let images = images_of(images, "images")?;
        let scores = zipp_call(py, || fclip::clip_scores(&self.inner, &images, &prompt))?;
        Ok(scores.iter().map(|s| if scale100 { s.clip_score_100 } else { s.clip_score }).collect())
    }

    /// Personalization CLIPScore of every image: its mean cosine with the reference images
    /// (the person's own pictures), in [-1, 1].
    fn personalization_clip_scores(
        &self,
        py: Python<'_>,
        images: &Bound<'_, PyAny>,
        references: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<f64>> {
        let (images, references) = (images_of(images, "images")?, images_of(references, "references")?);
        zipp_call(py, || fclip::personalization_clip_scores(&self.inner, &images, &references))
    }

    /// CMMD between two image sets: ×1000 the squared MMD of their CLIP embeddings (σ = 10,
    /// biased estimator); 0 for identical sets.
    fn cmmd(&self, py: Python<'_>, x: &Bound<'_, PyAny>, y: &Bound<'_, PyAny>) -> PyResult<f64> {
        let (x, y) = (images_of(x, "x")?, images_of(y, "y")?);
        zipp_call(py, || fclip::cmmd(&self.inner, &x, &y))
    }

    fn __repr__(&self) -> String {
        format!("ClipModel(path='{}', dim={})", self.inner.path().display(), self.inner.projection_dim())
    }
}

/// The image columns of an evaluation — CLIPScore (both conventions), personalization
/// CLIPScore, CMMD — per method and query, from the images each method's prompts produced,
/// embedded with a `ClipModel`. The methods and queries are those of an `Evaluation` config
/// (the same dict or JSON; `None`: the five methods on the four VPTT queries), so the tables
/// line up with its report; no method runs here. `options`: `{"cmmd_sample": 500, "seed":
/// 0}` (each CMMD set capped at `cmmd_sample` embeddings by seeded reservoir sampling; 0
/// turns CMMD off). Safe to share between threads.
#[pyclass(frozen, module = "zipp_persona")]
pub struct ImageEvaluation {
    inner: SharedImageEvaluation,
}

#[pymethods]
impl ImageEvaluation {
    #[new]
    #[pyo3(signature = (clip, config = None, *, options = None))]
    fn new(
        py: Python<'_>,
        clip: &Bound<'_, ClipModel>,
        config: Option<&Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<ImageEvaluation> {
        let config = config_text(config, "config")?;
        let options = config_text(options, "options")?;
        let model = clip.get().inner.clone();
        let inner = zipp_call(py, || {
            let config = match &config {
                Some((text, from_dict)) => Some(EvalConfig::from_json(text).map_err(located(*from_dict))?),
                None => None,
            };
            let options = match &options {
                Some((text, from_dict)) => Some(ImageEvalOptions::from_json(text).map_err(located(*from_dict))?),
                None => None,
            };
            SharedImageEvaluation::new(&model, config, options)
        })?;
        Ok(ImageEvaluation { inner })
    }

    /// Scores one persona's images and adds them to the aggregates; all or nothing.
    /// `persona`: its id (a str) or a `Persona`. `images`: `{query name: {method name:
    /// [H×W×3 uint8 arrays]}}` with every query and method present. `references`: the
    /// persona's own pictures (`None` or empty: no P-CLIP and no CMMD for this persona).
    /// Every image of a query is scored against that query's base prompt. Returns one dict
    /// per (query, method) cell, query-major: `{"persona", "query", "method", "images",
    /// "clip_score", "clip_score_100", "personalization_clip_score"}` (each averaged over the
    /// cell's images).
    #[pyo3(signature = (persona, images, references = None))]
    fn add_persona<'py>(
        &self,
        py: Python<'py>,
        persona: &Bound<'py, PyAny>,
        images: &Bound<'py, PyAny>,
        references: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let id: String = match persona.cast::<Persona>() {
            Ok(p) => p.get().inner.persona().id.clone(),
            Err(_) => persona.extract().map_err(|_| PyTypeError::new_err("persona is a str (its id) or a Persona"))?,
        };
        let references = match references.filter(|r| !r.is_none()) {
            Some(r) => images_of(r, "references")?,
            None => Vec::new(),
        };
        let mut items = Vec::new();
        for entry in images.call_method0("items")?.try_iter()? {
            let (query, per_method): (String, Bound<'py, PyAny>) = entry?.extract()?;
            for entry in per_method.call_method0("items")?.try_iter()? {
                let (method, imgs): (String, Bound<'py, PyAny>) = entry?.extract()?;
                let imgs = images_of(&imgs, &format!("images[{query:?}][{method:?}]"))?;
                items.push(MethodImages { query: query.clone(), method, images: imgs });
            }
        }
        let samples = zipp_call(py, || self.inner.add_persona(&id, &references, &items))?;
        crate::json::to_python(py, &samples)
    }

    /// The configuration it was built from, omitted fields filled in with their defaults.
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::json::to_python(py, self.inner.config())
    }

    /// The image options in effect.
    #[getter]
    fn options<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let options = zipp_call(py, || Ok(self.inner.lock()?.options().clone()))?;
        crate::json::to_python(py, &options)
    }

    /// Personas added so far.
    #[getter]
    fn personas(&self, py: Python<'_>) -> PyResult<u64> {
        zipp_call(py, || self.inner.personas())
    }

    /// The method names, in table order.
    #[getter]
    fn methods(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        zipp_call(py, || Ok(self.inner.lock()?.methods().to_vec()))
    }

    /// The queries: `{"name", "task", "prompt"}` each.
    #[getter]
    fn queries<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let queries = zipp_call(py, || Ok(self.inner.lock()?.queries().to_vec()))?;
        crate::json::to_python(py, &queries)
    }

    /// The report so far.
    fn report(&self, py: Python<'_>) -> PyResult<ImageReport> {
        let inner = zipp_call(py, || self.inner.report())?;
        Ok(ImageReport { inner: Arc::new(inner) })
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let (methods, queries, personas) = zipp_call(py, || {
            let ev = self.inner.lock()?;
            Ok((ev.methods().len(), ev.queries().len(), ev.personas()))
        })?;
        Ok(format!("ImageEvaluation(methods={methods}, queries={queries}, personas={personas})"))
    }
}

/// The image columns: one table per query, then one per task kind with several queries
/// (the tables of the VPTT `Report`, by name). The same JSON as the Rust and C reports.
#[pyclass(frozen, module = "zipp_persona")]
pub struct ImageReport {
    inner: Arc<zipp_eval::image_eval::ImageReport>,
}

#[pymethods]
impl ImageReport {
    /// A report read back from `to_json()` text.
    #[staticmethod]
    fn from_json(py: Python<'_>, text: String) -> PyResult<ImageReport> {
        let inner = zipp_call(py, || zipp_eval::image_eval::ImageReport::from_json(&text))?;
        Ok(ImageReport { inner: Arc::new(inner) })
    }

    /// The tables as markdown (CLIPScore, CLIPScore×100, P-CLIP, CMMD per method).
    fn table(&self) -> String {
        self.inner.table()
    }

    /// The image columns beside the VPTT and VPTT_c columns of `report` (an `Evaluation`'s
    /// `Report` of the same methods and queries), as markdown.
    fn table_beside(&self, report: &Bound<'_, crate::eval::Report>) -> PyResult<String> {
        let text: String = report.call_method1("to_json", (false,))?.extract()?;
        let vptt = VpttReport::from_json(&text).map_err(to_py_err)?;
        Ok(self.inner.table_beside(&vptt))
    }

    /// The report as JSON text (compact, or indented with `pretty=True`).
    #[pyo3(signature = (pretty = false))]
    fn to_json(&self, pretty: bool) -> PyResult<String> {
        self.inner.to_json(pretty).map_err(to_py_err)
    }

    /// The report as a dict shaped like `to_json()`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::json::to_python(py, self.inner.as_ref())
    }

    /// Personas evaluated.
    #[getter]
    fn personas(&self) -> u64 {
        self.inner.personas
    }

    /// Personas that came with reference images (P-CLIP and CMMD are over these).
    #[getter]
    fn personas_with_references(&self) -> u64 {
        self.inner.personas_with_references
    }

    /// Method names, in table order.
    #[getter]
    fn methods(&self) -> Vec<String> {
        self.inner.methods.clone()
    }

    /// The tables as dicts: `name`, `query` and `rows` (per method: `n` cells, `images`,
    /// `clip_score` and `clip_score_100` (`{"mean", "sd"}`), `personalization_clip_score`
    /// (or `None`), `cmmd` (or `None`)).
    #[getter]
    fn tables<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::json::to_python(py, &self.inner.tables)
    }

    fn __eq__(&self, other: &Bound<'_, ImageReport>) -> bool {
        *self.inner == *other.get().inner
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let methods = self.inner.methods.iter().map(|m| py_repr(py, m)).collect::<PyResult<Vec<_>>>()?;
        Ok(format!(
            "ImageReport(personas={}, methods=[{}], tables={})",
            self.inner.personas,
            methods.join(", "),
            self.inner.tables.len()
        ))
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ClipModel>()?;
    m.add_class::<ImageEvaluation>()?;
    m.add_class::<ImageReport>()?;
    Ok(())
}
