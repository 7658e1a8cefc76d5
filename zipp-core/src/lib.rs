//! # zipp-core — zero-shot image personalization from personas
//!
//! zipp-core is the API boundary of zipp: plain data types, small `Send + Sync` traits and
//! one error enum. Everything else (graph mining, diffusion, Python, C) depends on it and
//! never the reverse.
//!
//! The pipeline (SPEC §1), as far as this crate carries it:
//!
//! ```text
//! Persona ──index──► IndexedPersona ─┐
//!                                    ├─► Personalizer (Identity | PersonaOnly | Brag | Vprag | Combined)
//! Request (base prompt, task, seed) ─┘        │ Embedder (MiniLM)  │ TokenCounter (CLIP BPE)
//!                                             ▼
//!                               Personalization { prompt, evidence }
//! ```
//!
//! [`lm`] is the language-model boundary (chat messages in, text out) that the LLM methods
//! of `zipp-lm` (the ZIPP rewriter, the verbalizer, preference extraction) are written
//! against.
//!
//! ```no_run
//! use std::sync::Arc;
//! use zipp_core::{embed::MiniLm, models, personalize::{Personalizer, Request, Vprag}, IndexedPersona, Persona};
//!
//! let embedder = Arc::new(MiniLm::load(&models::ModelSource::Default)?);
//! let tokens = Arc::new(zipp_core::tokenize::ClipTokenizer::load_default()?);
//! let vprag = Vprag::new(embedder, tokens, Default::default())?;
//! let persona = IndexedPersona::new(Persona::from_json_file("ana.json")?);
//! let out = vprag.personalize(&persona, &Request::generate("a portrait in the park"))?;
//! println!("{}", out.prompt);
//! # Ok::<(), zipp_core::Error>(())
//! ```

pub mod embed;
pub mod error;
pub mod image;
pub mod json;
pub mod lm;
pub mod models;
pub mod persona;
pub mod personalize;
pub mod retrieve;
pub mod rng;
pub mod runtime;
pub mod tokenize;

pub use error::{Error, ErrorKind, Location, Result};
pub use persona::{Persona, Post, Preferences};
pub use retrieve::IndexedPersona;

/// The version of this crate (also what `zipp_version()` reports over C).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
