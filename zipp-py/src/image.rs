//! `ImageModel`: zipp-factory's `DiffusionSpec`, request JSON and generation driver.
//!
//! Images are numpy `H×W×3 uint8` arrays (`PIL.Image.fromarray(a)` takes them as they are).
//! Generation runs on a zipp thread with the GIL released; the `on_step` callback runs on
//! the calling thread, which checks for signals between steps, so Ctrl-C cancels the
//! generation (within one step) and raises `KeyboardInterrupt`.

use std::sync::Arc;

use numpy::ndarray::{Array3, ArrayView3};
use numpy::{IntoPyArray, PyArray3, PyReadonlyArray3, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use serde_json::{json, Value};
use zipp_core::image::{Embeds, Image, ImageGenerator, ImageOutput, StepProgress};
use zipp_factory::image as fimg;

use crate::callback::Callbacks;
use crate::error::to_py_err;
use crate::json::{dumps, loads, unlocated_text};
use crate::result::Personalization;
use crate::zipp_call;

/// A Stable Diffusion model (SD 1.x, 2.x, XL, Turbo) that generates images.
///
/// `spec` is a path (a diffusers-layout folder, a Hugging Face cache entry or repo id found
/// in the local cache, or a single-file `.safetensors` checkpoint) or a dict
/// `{"path": …, "config_dir": …, "turbo": …, "prediction": "epsilon" | "v_prediction",
/// "sliced_attention": n, "with_encoder": True}`.
#[pyclass(frozen, module = "zipp_persona")]
pub struct ImageModel {
    inner: Arc<dyn ImageGenerator>,
}

/// The images of one generation (`images`: numpy `H×W×3 uint8` arrays) and what the
/// request resolved to (`info`: steps, guidance, scheduler, size, prompt report, timings).
#[pyclass(frozen, module = "zipp_persona")]
pub struct GeneratedImages {
    images: Vec<Py<PyArray3<u8>>>,
    info: String,
}

fn to_array<'py>(py: Python<'py>, img: Image) -> Bound<'py, PyArray3<u8>> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    // An Image always holds w·h·3 bytes.
    let a = Array3::from_shape_vec((h, w, 3), img.into_rgb()).expect("an image holds w*h*3 bytes");
    a.into_pyarray(py)
}

/// An `H×W×3 uint8` array (any strides) as an image.
fn from_array(a: &Bound<'_, PyAny>) -> PyResult<Image> {
    let arr: PyReadonlyArray3<u8> = a.extract().map_err(|_| {
        to_py_err(zipp_core::Error::InvalidInput(
            "init_image must be a numpy array of shape (height, width, 3) and dtype uint8 \
             (np.asarray(pil_image.convert('RGB')))"
                .into(),
        ))
    })?;
    let shape = arr.shape();
    if shape[2] != 3 {
        return Err(to_py_err(zipp_core::Error::InvalidInput(format!(
            "init_image has {} channels; RGB (3) is needed",
            shape[2]
        ))));
    }
    let view: ArrayView3<u8> = arr.as_array();
    let rgb: Vec<u8> = view.iter().copied().collect();
    Image::new(shape[1] as u32, shape[0] as u32, rgb).map_err(to_py_err)
}

/// Embeds as numpy: states `[1, tokens, dim]` and the pooled vector `[1, p]`, if any.
fn embeds_arrays<'py>(py: Python<'py>, e: &Embeds) -> PyResult<(Bound<'py, PyAny>, Option<Bound<'py, PyAny>>)> {
    let states = numpy::ndarray::Array3::from_shape_vec((1, e.tokens, e.dim), e.data.clone())
        .map_err(|err| pyo3::exceptions::PyValueError::new_err(err.to_string()))?
        .into_pyarray(py)
        .into_any();
    let pooled = match &e.pooled {
        Some(p) => Some(
            numpy::ndarray::Array2::from_shape_vec((1, p.len()), p.clone())
                .map_err(|err| pyo3::exceptions::PyValueError::new_err(err.to_string()))?
                .into_pyarray(py)
                .into_any(),
        ),
        None => None,
    };
    Ok((states, pooled))
}

/// The request JSON both bindings hand to zipp-factory, from keyword arguments.
#[allow(clippy::too_many_arguments)]
fn request_json(
    prompt: Option<&Bound<'_, PyAny>>,
    negative_prompt: Option<String>,
    steering: Option<&Bound<'_, PyAny>>,
    disliked_as_negative: bool,
    width: Option<u32>,
    height: Option<u32>,
    steps: Option<u32>,
    guidance: Option<f32>,
    scheduler: Option<String>,
    seed: u64,
    batch: u32,
    first_index: u64,
    strength: Option<f32>,
    conditioning: Option<&Bound<'_, PyAny>>,
) -> PyResult<String> {
    let mut r = serde_json::Map::new();
    if let Some(p) = prompt {
        if p.is_instance_of::<PyString>() {
            r.insert("prompt".into(), Value::String(p.extract()?));
        } else if let Ok(pers) = p.cast::<Personalization>() {
            r.insert("personalization".into(), serde_json::to_value(&*pers.get().inner).map_err(to_value_err)?);
        } else {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "prompt must be a str or a Personalization (what a personalizer returned)",
            ));
        }
    }
    let parse = |v: &Bound<'_, PyAny>| -> PyResult<Value> { serde_json::from_str(&dumps(v)?).map_err(to_value_err) };
    let opt = |v: Option<Value>| v.unwrap_or(Value::Null);
    r.insert("negative_prompt".into(), opt(negative_prompt.map(Value::String)));
    r.insert("steering".into(), opt(steering.map(parse).transpose()?));
    r.insert("disliked_as_negative".into(), json!(disliked_as_negative));
    r.insert("width".into(), json!(width));
    r.insert("height".into(), json!(height));
    r.insert("steps".into(), json!(steps));
    r.insert("guidance".into(), json!(guidance));
    r.insert("scheduler".into(), json!(scheduler));
    r.insert("seed".into(), json!(seed));
    r.insert("batch".into(), json!(batch));
    r.insert("first_index".into(), json!(first_index));
    r.insert("strength".into(), json!(strength));
    r.insert("conditioning".into(), opt(conditioning.map(conditioning_value).transpose()?));
    // Fields left at null take their defaults (the request parser treats null as absent).
    r.retain(|_, v| !v.is_null());
    Ok(Value::Object(r).to_string())
}

fn to_value_err(e: serde_json::Error) -> PyErr {
    pyo3::exceptions::PyValueError::new_err(e.to_string())
}

/// A conditioning dict as `encode` returns it (numpy arrays under diffusers' keyword names)
/// or as JSON-like dict: back to the `Conditioning` JSON value.
fn conditioning_value(c: &Bound<'_, PyAny>) -> PyResult<Value> {
    let d = c.cast::<PyDict>().map_err(|_| pyo3::exceptions::PyTypeError::new_err("conditioning must be a dict"))?;
    let model: String = d
        .get_item("model")?
        .ok_or_else(|| {
            pyo3::exceptions::PyKeyError::new_err("conditioning needs its \"model\" (the model that made it)")
        })?
        .extract()?;
    let embeds = |states: &str, pooled: &str| -> PyResult<Option<Value>> {
        let Some(s) = d.get_item(states)? else { return Ok(None) };
        let a: numpy::PyReadonlyArray3<f32> = s.extract().map_err(|_| {
            pyo3::exceptions::PyTypeError::new_err(format!(
                "{states} must be a float32 array of shape (1, tokens, dim)"
            ))
        })?;
        let shape = a.shape().to_vec();
        if shape[0] != 1 {
            return Err(pyo3::exceptions::PyValueError::new_err(format!("{states} must have a batch of 1")));
        }
        let data: Vec<f32> = a.as_array().iter().copied().collect();
        let pooled: Option<Vec<f32>> = match d.get_item(pooled)? {
            Some(p) => {
                let p: numpy::PyReadonlyArray2<f32> = p.extract().map_err(|_| {
                    pyo3::exceptions::PyTypeError::new_err(format!("{pooled} must be a float32 array of shape (1, p)"))
                })?;
                Some(p.as_array().iter().copied().collect())
            }
            None => None,
        };
        Ok(Some(json!({"tokens": shape[1], "dim": shape[2], "data": data, "pooled": pooled})))
    };
    let mut v = json!({
        "model": model,
        "prompt": embeds("prompt_embeds", "pooled_prompt_embeds")?
            .ok_or_else(|| pyo3::exceptions::PyKeyError::new_err("conditioning needs prompt_embeds"))?,
        "negative": embeds("negative_prompt_embeds", "negative_pooled_prompt_embeds")?
            .ok_or_else(|| pyo3::exceptions::PyKeyError::new_err("conditioning needs negative_prompt_embeds"))?,
    });
    if let Some(l) = embeds("liked_embeds", "_none")? {
        v["liked"] = l;
    }
    if let Some(n) = embeds("disliked_embeds", "_none")? {
        v["disliked"] = n;
    }
    Ok(v)
}

fn info_of(out: &ImageOutput) -> String {
    fimg::output_json(out)
}

#[pymethods]
impl ImageModel {
    #[new]
    fn new(py: Python<'_>, spec: &Bound<'_, PyAny>) -> PyResult<ImageModel> {
        // A str or os.PathLike is the path; a dict the whole spec.
        let json = match spec.extract::<std::path::PathBuf>() {
            Ok(path) => Value::String(path.to_string_lossy().into_owned()).to_string(),
            Err(_) => dumps(spec)?,
        };
        let spec = fimg::DiffusionSpec::from_json(&json).map_err(|e| to_py_err(unlocated_text(e)))?;
        let inner = zipp_call(py, || spec.build())?;
        Ok(ImageModel { inner })
    }

    /// The model's family and weights fingerprint.
    #[getter]
    fn id(&self) -> String {
        self.inner.id()
    }

    /// Generates images for `prompt` (a str, or a `Personalization` whose prompt, negative
    /// prompt and steering are used). `steering` is `{"liked": [...], "disliked": [...],
    /// "liked_strength": 0.85, "disliked_strength": 0.85}` (ViPer, SPEC §7; 0 = off). Unset
    /// `width`/`height`/`steps`/`guidance`/`scheduler` take the model's defaults (Turbo: 1
    /// step, no guidance). `init_image` (`H×W×3 uint8`) makes it image-to-image with
    /// `strength` (default 0.75). `conditioning` is what `encode` returned (embeddings in).
    /// `on_step(step, total, timestep, elapsed_s)` runs after each step on this thread;
    /// returning `False` cancels (`CancelledError`). Ctrl-C cancels and raises
    /// `KeyboardInterrupt`.
    #[pyo3(signature = (prompt = None, *, negative_prompt = None, steering = None, disliked_as_negative = false,
        width = None, height = None, steps = None, guidance = None, scheduler = None, seed = 0, batch = 1,
        first_index = 0, init_image = None, strength = None, conditioning = None, on_step = None))]
    #[allow(clippy::too_many_arguments)]
    fn generate(
        &self,
        py: Python<'_>,
        prompt: Option<&Bound<'_, PyAny>>,
        negative_prompt: Option<String>,
        steering: Option<&Bound<'_, PyAny>>,
        disliked_as_negative: bool,
        width: Option<u32>,
        height: Option<u32>,
        steps: Option<u32>,
        guidance: Option<f32>,
        scheduler: Option<String>,
        seed: u64,
        batch: u32,
        first_index: u64,
        init_image: Option<&Bound<'_, PyAny>>,
        strength: Option<f32>,
        conditioning: Option<&Bound<'_, PyAny>>,
        on_step: Option<Py<PyAny>>,
    ) -> PyResult<GeneratedImages> {
        let json = request_json(
            prompt,
            negative_prompt,
            steering,
            disliked_as_negative,
            width,
            height,
            steps,
            guidance,
            scheduler,
            seed,
            batch,
            first_index,
            strength,
            conditioning,
        )?;
        let init = init_image.map(from_array).transpose()?;
        let req = fimg::request_from_json(&json, init).map_err(|e| to_py_err(unlocated_text(e)))?;
        let callbacks = Callbacks::default();
        let model = self.inner.clone();
        let result = py.detach(|| {
            fimg::generate(
                model,
                req,
                |p: StepProgress| {
                    callbacks.call(on_step.as_ref(), |py, cb| cb.call1(py, (p.step, p.total, p.timestep, p.elapsed_s)))
                },
                || callbacks.interrupted(),
            )
        });
        let out = callbacks.finish(result)?;
        let info = info_of(&out);
        let images = out.images.into_iter().map(|img| to_array(py, img).unbind()).collect();
        Ok(GeneratedImages { images, info })
    }

    /// The conditioning `generate` would use (embeddings out), as a dict of float32 numpy
    /// arrays under diffusers' keyword names — `prompt_embeds`, `negative_prompt_embeds`
    /// (`[1, 77·k, dim]`), and for SDXL `pooled_prompt_embeds`,
    /// `negative_pooled_prompt_embeds` (`[1, p]`) — so `pipe(**{k: torch.from_numpy(v) …})`
    /// works in diffusers; plus ViPer's `liked_embeds` / `disliked_embeds` when steering,
    /// `model` (only this model accepts them back) and `report` (tokens, windows, dropped
    /// attributes). Pass the dict back as `generate(conditioning=…)`.
    #[pyo3(signature = (prompt = None, *, negative_prompt = None, steering = None, disliked_as_negative = false, seed = 0))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        prompt: Option<&Bound<'py, PyAny>>,
        negative_prompt: Option<String>,
        steering: Option<&Bound<'py, PyAny>>,
        disliked_as_negative: bool,
        seed: u64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let json = request_json(
            prompt,
            negative_prompt,
            steering,
            disliked_as_negative,
            None,
            None,
            None,
            None,
            None,
            seed,
            1,
            0,
            None,
            None,
        )?;
        let req = fimg::request_from_json(&json, None).map_err(|e| to_py_err(unlocated_text(e)))?;
        let model = self.inner.clone();
        let (cond, report) = zipp_call(py, move || model.encode(&req))?;
        let d = PyDict::new(py);
        d.set_item("model", &cond.model)?;
        let (ps, pp) = embeds_arrays(py, &cond.prompt)?;
        d.set_item("prompt_embeds", ps)?;
        let (ns, np) = embeds_arrays(py, &cond.negative)?;
        d.set_item("negative_prompt_embeds", ns)?;
        if let (Some(pp), Some(np)) = (pp, np) {
            d.set_item("pooled_prompt_embeds", pp)?;
            d.set_item("negative_pooled_prompt_embeds", np)?;
        }
        if let Some(l) = &cond.liked {
            d.set_item("liked_embeds", embeds_arrays(py, l)?.0)?;
        }
        if let Some(n) = &cond.disliked {
            d.set_item("disliked_embeds", embeds_arrays(py, n)?.0)?;
        }
        d.set_item("report", crate::json::to_python(py, &report)?)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!("ImageModel(id='{}')", self.inner.id())
    }
}

#[pymethods]
impl GeneratedImages {
    /// The images, numpy `H×W×3 uint8` arrays.
    #[getter]
    fn images(&self, py: Python<'_>) -> Vec<Py<PyArray3<u8>>> {
        self.images.iter().map(|a| a.clone_ref(py)).collect()
    }

    /// What the request resolved to: count, width, height, steps, guidance, scheduler,
    /// report (prompt_tokens, negative_tokens, chunks, liked_dropped, disliked_dropped) and
    /// timings (text_s, denoise_s, decode_s).
    #[getter]
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        loads(py, &self.info)
    }

    fn __len__(&self) -> usize {
        self.images.len()
    }

    fn __getitem__(&self, py: Python<'_>, index: isize) -> PyResult<Py<PyArray3<u8>>> {
        let n = self.images.len() as isize;
        let i = if index < 0 { index + n } else { index };
        if i < 0 || i >= n {
            return Err(pyo3::exceptions::PyIndexError::new_err("image index out of range"));
        }
        Ok(self.images[i as usize].clone_ref(py))
    }

    fn __repr__(&self) -> String {
        format!("GeneratedImages({} images, info={})", self.images.len(), self.info)
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ImageModel>()?;
    m.add_class::<GeneratedImages>()?;
    Ok(())
}
