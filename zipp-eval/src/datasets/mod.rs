//! Persona datasets: a seeded synthetic dataset in the shape of VPTT-Bench (SPEC §2), the
//! real-data MovieLens 100K users (SPEC §11: fetched at setup, never committed) and JSONL
//! files — each a [`PersonaSource`], so an evaluation, an example or a binding streams any of
//! them through one interface.
//!
//! (Named *datasets* so they are not confused with the criterion benchmarks in `benches/`
//! and `BENCHMARKS.md`.)
//!
//! Their raw inputs (phrase lists, MovieLens files) are provisioned into the models folder
//! by `scripts/provision-models.sh`, next to the default models.
//!
//! `movielens` is compiled only with the cargo feature `movielens` (off by default).
//!
//! ```no_run
//! use zipp_eval::datasets::{JsonlFile, PersonaSource};
//!
//! let source = JsonlFile::new("personas.jsonl");
//! for persona in source.personas()? {
//!     println!("{}", persona?.id);
//! }
//! # Ok::<(), zipp_core::Error>(())
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use zipp_core::{Persona, Result};

// The MovieLens 100K users; needs zipp-eval's `movielens` cargo feature (it adds a parquet
// reader to the build).
#[cfg(feature = "movielens")]
pub mod movielens;
pub mod synthetic;

/// A stream of personas, in a fixed order.
///
/// Implemented by [`synthetic::SyntheticBench`], [`movielens::MovieLensPersonas`] (feature
/// `movielens`) and [`JsonlFile`]. Streaming is the contract: a source holds at most what it
/// needs to make the next persona (the synthetic generator makes persona *i* from `(seed, i)`
/// alone; a JSONL file is read line by line), so a source may be far larger than memory.
/// Each item is a persona or the error that one record gave (a JSONL line that does not
/// parse, with its location). A JSONL stream ends after its first bad record (nothing after
/// a corrupt line is trusted); generated sources go on.
pub trait PersonaSource: Send + Sync {
    /// What the source is, for logs and reports (`synthetic(seed=0, personas=1000)`).
    fn describe(&self) -> String;

    /// How many personas the stream yields, when known without reading it (a JSONL file:
    /// `None`).
    fn len_hint(&self) -> Option<usize>;

    /// The personas, in order. Opening can fail (a missing file); each item can fail too.
    fn personas(&self) -> Result<Personas<'_>>;

    /// [`PersonaSource::personas`] as an owned stream (it keeps the source alive), for a
    /// stream that outlives the borrow: a binding's iterator object, a worker thread.
    fn stream(self: Arc<Self>) -> Result<Personas<'static>>;
}

/// A stream of personas (or the error one record gave).
pub type Personas<'a> = Box<dyn Iterator<Item = Result<Persona>> + Send + 'a>;

/// Personas in a JSONL file (one persona object per line, SPEC §2), read lazily.
#[derive(Debug, Clone)]
pub struct JsonlFile {
    path: PathBuf,
}

impl JsonlFile {
    pub fn new(path: impl Into<PathBuf>) -> JsonlFile {
        JsonlFile { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl PersonaSource for JsonlFile {
    fn describe(&self) -> String {
        format!("jsonl({})", self.path.display())
    }

    fn len_hint(&self) -> Option<usize> {
        None
    }

    fn personas(&self) -> Result<Personas<'_>> {
        Ok(Box::new(zipp_core::persona::JsonlReader::open(&self.path)?))
    }

    fn stream(self: Arc<Self>) -> Result<Personas<'static>> {
        Ok(Box::new(zipp_core::persona::JsonlReader::open(&self.path)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jsonl_file_streams_personas_and_locates_a_bad_line() {
        let dir = std::env::temp_dir().join(format!("zipp-eval-jsonl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.jsonl");
        std::fs::write(&path, "{\"id\":\"a\"}\n{\"id\":\"b\",\"nope\":1}\n{\"id\":\"c\"}\n").unwrap();
        let source = JsonlFile::new(&path);
        assert_eq!(source.len_hint(), None);
        assert!(source.describe().contains("p.jsonl"));
        let items: Vec<_> = source.personas().unwrap().collect();
        let owned: Vec<_> = Arc::new(source.clone()).stream().unwrap().map(|p| p.map(|p| p.id)).collect();
        assert_eq!(owned.len(), 2);
        assert_eq!(owned[0].as_deref().unwrap(), "a");
        assert_eq!(items.len(), 2, "the stream stops after the bad line");
        assert_eq!(items[0].as_ref().unwrap().id, "a");
        let e = items[1].as_ref().unwrap_err();
        assert_eq!(e.kind(), "schema");
        assert_eq!(e.location().unwrap().line, Some(2), "{e}");
        let missing = JsonlFile::new(dir.join("missing.jsonl"));
        assert_eq!(missing.personas().err().unwrap().kind(), "io");
    }
}
