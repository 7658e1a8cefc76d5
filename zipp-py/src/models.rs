//! `Models`: the shared, lazily loaded MiniLM embedder and CLIP token counter.

use std::path::PathBuf;

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray2};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use zipp_core::embed::Embedder;
use zipp_core::tokenize::TokenCounter;
use zipp_factory::{Models as CoreModels, ModelsOptions};

use crate::error::to_py_err;
use crate::zipp_call;

/// The models personalizers share, read from one folder (default: `default_models_dir()`).
/// Each model loads once, on first use, and is shared by every personalizer built from
/// this object; `load_all()` loads them up front.
#[pyclass(frozen, module = "zipp_persona")]
pub struct Models {
    pub(crate) inner: CoreModels,
}

#[pymethods]
impl Models {
    /// `root=None` is `default_models_dir()`. The MiniLM options (`None`: zipp-core's
    /// default) take effect when the model loads.
    #[new]
    #[pyo3(signature = (root = None, *, max_tokens = None, batch_size = None, force_candle = None))]
    fn new(
        root: Option<PathBuf>,
        max_tokens: Option<usize>,
        batch_size: Option<usize>,
        force_candle: Option<bool>,
    ) -> PyResult<Models> {
        let defaults = ModelsOptions::default();
        let options = ModelsOptions {
            max_tokens: max_tokens.unwrap_or(defaults.max_tokens),
            batch_size: batch_size.unwrap_or(defaults.batch_size),
            force_candle: force_candle.unwrap_or(defaults.force_candle),
            ..defaults
        };
        // Checked here, before any model loads (zipp-factory's one rule for every binding).
        let inner = CoreModels::at(root).with_options(&options).map_err(to_py_err)?;
        Ok(Models { inner })
    }

    /// The folder models are read from.
    #[getter]
    fn root(&self) -> PathBuf {
        self.inner.root().to_path_buf()
    }

    /// Which model kinds are loaded, every kind this build knows: `{"clip_bpe": bool,
    /// "minilm": bool}`.
    #[getter]
    fn loaded<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let loaded = zipp_call(py, || Ok(self.inner.loaded()))?;
        let d = PyDict::new(py);
        for kind in zipp_factory::KINDS {
            d.set_item(kind.name, loaded.contains(&kind.name))?;
        }
        Ok(d)
    }

    /// Loads the model kind `kind` (`"minilm"`, `"clip_bpe"`) now; an unknown kind is an
    /// `InvalidInputError` listing the kinds.
    fn load(&self, py: Python<'_>, kind: String) -> PyResult<()> {
        zipp_call(py, || self.inner.load(&kind))
    }

    /// Loads every model now (a missing or corrupt file is reported here, not later).
    fn load_all(&self, py: Python<'_>) -> PyResult<()> {
        zipp_call(py, || self.inner.load_all())
    }

    /// Embeds `texts` with MiniLM: a `float32` array of shape `(len(texts), dim)` whose
    /// rows are unit vectors. Pass many texts per call: one batch costs far less than many.
    fn embed<'py>(&self, py: Python<'py>, texts: Vec<String>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let (rows, dim, data) = zipp_call(py, || {
            let minilm = self.inner.minilm()?;
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let embeddings = minilm.embed(&refs)?;
            Ok((embeddings.len(), minilm.dim(), embeddings.into_data()))
        })?;
        // `rows * dim == data.len()` by Embedder::embed's contract (checked by Embeddings).
        let array = Array2::from_shape_vec((rows, dim), data).expect("embedding rows have the model's dimension");
        Ok(array.into_pyarray(py))
    }

    /// The embedding dimension (loads MiniLM).
    #[getter]
    fn dim(&self, py: Python<'_>) -> PyResult<usize> {
        zipp_call(py, || Ok(self.inner.minilm()?.dim()))
    }

    /// The embedder's identity: model, settings and a fingerprint of its weights (loads MiniLM).
    #[getter]
    fn embedder_id(&self, py: Python<'_>) -> PyResult<String> {
        zipp_call(py, || Ok(self.inner.minilm()?.id().to_string()))
    }

    /// CLIP BPE tokens of `text`, without the start/end markers (loads the CLIP vocabulary).
    fn count_tokens(&self, py: Python<'_>, text: String) -> PyResult<usize> {
        zipp_call(py, || Ok(self.inner.clip()?.count(&text)))
    }

    /// The CLIP context length including the start/end markers (77).
    #[getter]
    fn context_length(&self, py: Python<'_>) -> PyResult<usize> {
        zipp_call(py, || Ok(self.inner.clip()?.context_length()))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        // `loaded` takes the models' locks, which a loading thread holds for seconds.
        let loaded = zipp_call(py, || Ok(self.inner.loaded()))?;
        let kinds: Vec<String> = zipp_factory::KINDS
            .iter()
            .map(|k| format!("'{}': {}", k.name, if loaded.contains(&k.name) { "True" } else { "False" }))
            .collect();
        Ok(format!("Models(root='{}', loaded={{{}}})", self.inner.root().display(), kinds.join(", ")))
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Models>()
}
