//! Persona benches: the seeded synthetic bench (VPTT-Bench's shape) and MovieLens 100K.
//! Both make personas on demand, so iterating them streams (memory stays bounded).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pyo3::exceptions::{PyIndexError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use zipp_core::bench::movielens::{MovieLens as CoreMovieLens, MovieLensOptions};
use zipp_core::bench::synthetic::{SyntheticBench as CoreSyntheticBench, SyntheticOptions, Vocabulary};

use crate::json;
use crate::persona::Persona;
use crate::zipp_call;

/// A seeded synthetic persona bench in the shape of VPTT-Bench: persona `i` (id
/// `syn-<seed>-<i>`) is generated on demand from `(seed, i)` alone, so any persona is
/// reproducible on its own. `len(bench)`, `bench[i]` (negative indices count from the end)
/// and iteration (streamed, one persona at a time). Safe to share between threads.
#[pyclass(frozen, sequence, module = "zipp_persona")]
pub struct SyntheticBench {
    inner: Arc<CoreSyntheticBench>,
}

#[pymethods]
impl SyntheticBench {
    /// `seed`, `personas` and `posts_per_persona` left `None` take zipp-core's defaults (0,
    /// 10,000, 30); `options` sets any other generator option (`words_per_caption`,
    /// `vocabulary_per_category`, `styles_per_persona`, `interests_per_persona`,
    /// `themes_per_persona`, `categories_per_post` as `(min, max)`, `examples_per_persona`).
    /// `vocabulary_dir`: the folder of the clip-interrogator phrase lists (default: the
    /// provisioned `default_models_dir() / "clip-interrogator"`); loading classifies ~100k
    /// phrases once.
    #[new]
    #[pyo3(signature = (seed = None, personas = None, posts_per_persona = None, vocabulary_dir = None, *,
                        options = None))]
    fn new(
        py: Python<'_>,
        seed: Option<u64>,
        personas: Option<usize>,
        posts_per_persona: Option<usize>,
        vocabulary_dir: Option<PathBuf>,
        options: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<SyntheticBench> {
        let d = match options.filter(|o| !o.is_none()) {
            Some(o) => o
                .downcast::<PyDict>()
                .map_err(|_| PyTypeError::new_err("options is a dict of synthetic bench options"))?
                .copy()?,
            None => PyDict::new(py),
        };
        if let Some(v) = seed {
            d.set_item("seed", v)?;
        }
        if let Some(v) = personas {
            d.set_item("personas", v)?;
        }
        if let Some(v) = posts_per_persona {
            d.set_item("posts_per_persona", v)?;
        }
        let text = json::dumps(d.as_any())?;
        let inner = zipp_call(py, || {
            let options: SyntheticOptions =
                json::parse(&text, "synthetic bench options").map_err(json::unlocated_text)?;
            // Bad options fail before the phrase lists are read.
            options.validate()?;
            let vocabulary = match &vocabulary_dir {
                Some(dir) => Vocabulary::load(dir)?,
                None => Vocabulary::load_default()?,
            };
            CoreSyntheticBench::new(Arc::new(vocabulary), options)
        })?;
        Ok(SyntheticBench { inner: Arc::new(inner) })
    }

    /// The generator options in effect, every default written out.
    #[getter]
    fn options<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json::to_python(py, self.inner.options())
    }

    #[getter]
    fn seed(&self) -> u64 {
        self.inner.options().seed
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __getitem__(&self, py: Python<'_>, index: isize) -> PyResult<Persona> {
        let len = self.inner.len();
        let i = if index < 0 { index.checked_add_unsigned(len) } else { Some(index) };
        let i = match i {
            Some(i) if i >= 0 && (i as usize) < len => i as usize,
            _ => return Err(PyIndexError::new_err(format!("persona {index} of a bench of {len}"))),
        };
        zipp_call(py, || self.inner.persona(i)).map(Persona::wrap)
    }

    fn __iter__(&self) -> BenchPersonas {
        BenchPersonas { source: Source::Synthetic(self.inner.clone()), next: AtomicUsize::new(0) }
    }

    fn __repr__(&self) -> String {
        let o = self.inner.options();
        format!("SyntheticBench(seed={}, personas={}, posts_per_persona={})", o.seed, o.personas, o.posts_per_persona)
    }
}

/// MovieLens 100K (943 users, 1682 movies, 100,000 ratings) in memory: one persona per user
/// (id `ml100k-<user id>`), built on demand. GroupLens's licence forbids redistributing the
/// data or personas made from it. Safe to share between threads.
#[pyclass(frozen, module = "zipp_persona")]
pub struct MovieLens {
    inner: Arc<CoreMovieLens>,
}

fn movielens_options(max_posts: Option<usize>, min_rating: Option<u8>) -> MovieLensOptions {
    let d = MovieLensOptions::default();
    MovieLensOptions { max_posts: max_posts.unwrap_or(d.max_posts), min_rating: min_rating.or(d.min_rating) }
}

#[pymethods]
impl MovieLens {
    /// Reads the three parquet files from `dir` (default: the provisioned
    /// `default_models_dir() / "movielens-100k"`). Missing files raise `ModelNotFoundError`,
    /// corrupt ones `ModelInvalidError`, bad values `SchemaError`.
    #[staticmethod]
    #[pyo3(signature = (dir = None))]
    fn load(py: Python<'_>, dir: Option<PathBuf>) -> PyResult<MovieLens> {
        let inner = zipp_call(py, || match &dir {
            Some(d) => CoreMovieLens::load(d),
            None => CoreMovieLens::load_default(),
        })?;
        Ok(MovieLens { inner: Arc::new(inner) })
    }

    /// Number of users (= personas).
    #[getter]
    fn users(&self) -> usize {
        self.inner.users()
    }

    #[getter]
    fn movies(&self) -> usize {
        self.inner.movies()
    }

    #[getter]
    fn ratings(&self) -> usize {
        self.inner.ratings()
    }

    /// The MovieLens id of the user at `index` (users are in id order), or `None`.
    fn user_id(&self, index: usize) -> Option<u32> {
        self.inner.user_id(index)
    }

    /// The persona of the user at `index` (0-based, in user-id order): at most `max_posts`
    /// rated movies become posts (default 30), only ratings of at least `min_rating` stars
    /// (1–5) when set.
    #[pyo3(signature = (index, max_posts = None, min_rating = None))]
    fn persona(
        &self,
        py: Python<'_>,
        index: usize,
        max_posts: Option<usize>,
        min_rating: Option<u8>,
    ) -> PyResult<Persona> {
        let options = movielens_options(max_posts, min_rating);
        zipp_call(py, || self.inner.persona(index, &options)).map(Persona::wrap)
    }

    /// Every user's persona in user-id order, each built when the iteration reaches it.
    #[pyo3(signature = (max_posts = None, min_rating = None))]
    fn personas(&self, max_posts: Option<usize>, min_rating: Option<u8>) -> BenchPersonas {
        let options = movielens_options(max_posts, min_rating);
        BenchPersonas { source: Source::MovieLens(self.inner.clone(), options), next: AtomicUsize::new(0) }
    }

    fn __repr__(&self) -> String {
        format!(
            "MovieLens(users={}, movies={}, ratings={})",
            self.inner.users(),
            self.inner.movies(),
            self.inner.ratings()
        )
    }
}

enum Source {
    Synthetic(Arc<CoreSyntheticBench>),
    MovieLens(Arc<CoreMovieLens>, MovieLensOptions),
}

/// Personas of a bench, made one at a time as the iteration reaches them. Threads sharing
/// one iterator each get different personas.
#[pyclass(frozen, module = "zipp_persona")]
pub struct BenchPersonas {
    source: Source,
    next: AtomicUsize,
}

#[pymethods]
impl BenchPersonas {
    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Persona>> {
        let len = match &self.source {
            Source::Synthetic(b) => b.len(),
            Source::MovieLens(m, _) => m.users(),
        };
        // Never past `len`, so a finished iterator stays finished.
        let Ok(i) = self.next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |i| (i < len).then_some(i + 1)) else {
            return Ok(None);
        };
        let persona = zipp_call(py, || match &self.source {
            Source::Synthetic(b) => b.persona(i),
            Source::MovieLens(m, options) => m.persona(i, options),
        })?;
        Ok(Some(Persona::wrap(persona)))
    }

    /// How many personas are left.
    fn __length_hint__(&self) -> usize {
        let len = match &self.source {
            Source::Synthetic(b) => b.len(),
            Source::MovieLens(m, _) => m.users(),
        };
        len.saturating_sub(self.next.load(Ordering::SeqCst))
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<SyntheticBench>()?;
    m.add_class::<MovieLens>()?;
    m.add_class::<BenchPersonas>()?;
    Ok(())
}
