//! Persona datasets: the seeded synthetic bench (VPTT-Bench's shape), MovieLens 100K and
//! JSONL files, all streamed through zipp-eval's `PersonaSource` (memory stays bounded).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::exceptions::{PyIndexError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use zipp_eval::datasets::movielens::{MovieLens as CoreMovieLens, MovieLensOptions};
use zipp_eval::datasets::synthetic::SyntheticBench as CoreSyntheticBench;
use zipp_eval::datasets::{JsonlFile, PersonaSource as CoreSource, Personas};

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
            zipp_factory::shared::synthetic_bench(vocabulary_dir.as_deref(), Some(&text)).map_err(json::unlocated_text)
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

    fn __iter__(&self, py: Python<'_>) -> PyResult<PersonaStream> {
        PersonaStream::open(py, self.inner.clone())
    }

    /// The bench as a `PersonaSource`.
    fn source(&self) -> PersonaSource {
        PersonaSource { inner: self.inner.clone() }
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
        let inner = zipp_call(py, || zipp_factory::shared::movielens(dir.as_deref()))?;
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

    /// Every user's persona in user-id order as a `PersonaSource` (iterate it; each persona
    /// is built when the iteration reaches it).
    #[pyo3(signature = (max_posts = None, min_rating = None))]
    fn source(&self, py: Python<'_>, max_posts: Option<usize>, min_rating: Option<u8>) -> PyResult<PersonaSource> {
        let options = movielens_options(max_posts, min_rating);
        let source = zipp_call(py, || self.inner.source(options))?;
        Ok(PersonaSource { inner: Arc::new(source) })
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

/// Any stream of personas zipp can read — the synthetic bench, MovieLens users, a JSONL file
/// — behind one interface. Iterating starts a new stream each time; `len_hint` is the count
/// when known without reading (`None` for a file). Safe to share between threads.
#[pyclass(frozen, module = "zipp_persona")]
pub struct PersonaSource {
    inner: Arc<dyn CoreSource>,
}

#[pymethods]
impl PersonaSource {
    /// The personas of a JSONL file (one persona per line), read lazily; the stream stops
    /// at the first bad line, raising its located error.
    #[staticmethod]
    fn jsonl(path: PathBuf) -> PersonaSource {
        PersonaSource { inner: Arc::new(JsonlFile::new(path)) }
    }

    /// How many personas a full iteration yields, when known without reading.
    #[getter]
    fn len_hint(&self) -> Option<usize> {
        self.inner.len_hint()
    }

    fn __iter__(&self, py: Python<'_>) -> PyResult<PersonaStream> {
        PersonaStream::open(py, self.inner.clone())
    }

    fn __repr__(&self) -> String {
        format!("PersonaSource({})", self.inner.describe())
    }
}

/// Personas of a source, made one at a time as the iteration reaches them. Threads sharing
/// one stream each get different personas.
#[pyclass(frozen, module = "zipp_persona")]
pub struct PersonaStream {
    personas: Mutex<Personas<'static>>,
    len_hint: Option<usize>,
    taken: AtomicUsize,
}

impl PersonaStream {
    fn open<S: CoreSource + ?Sized + 'static>(py: Python<'_>, source: Arc<S>) -> PyResult<PersonaStream> {
        let len_hint = source.len_hint();
        let personas = zipp_call(py, || source.stream())?;
        Ok(PersonaStream { personas: Mutex::new(personas), len_hint, taken: AtomicUsize::new(0) })
    }
}

#[pymethods]
impl PersonaStream {
    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Persona>> {
        let next = zipp_call(py, || {
            // A panic inside a stream (contained by pyo3) poisons the lock: the stream is
            // then finished, reported as an internal error.
            let mut personas = zipp_factory::shared::lock(&self.personas, "this persona stream")?;
            personas.next().transpose()
        })?;
        if next.is_some() {
            self.taken.fetch_add(1, Ordering::SeqCst);
        }
        Ok(next.map(Persona::wrap))
    }

    /// How many personas are left, when the source knows its size (else 0, as
    /// `operator.length_hint` expects for "unknown").
    fn __length_hint__(&self) -> usize {
        self.len_hint.map_or(0, |n| n.saturating_sub(self.taken.load(Ordering::SeqCst)))
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<SyntheticBench>()?;
    m.add_class::<MovieLens>()?;
    m.add_class::<PersonaSource>()?;
    m.add_class::<PersonaStream>()?;
    Ok(())
}
