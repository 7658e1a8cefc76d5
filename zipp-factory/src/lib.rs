//! # zipp-factory — the one place JSON becomes built objects
//!
//! Above every crate that implements something (zipp-core's text models and personalizers,
//! zipp-eval's evaluation, and the backends later issues add), below the bindings:
//!
//! - [`Models`]: a registry of models keyed by kind ([`ModelKind`], [`KINDS`]), each loaded
//!   once on first use and shared;
//! - [`MethodSpec`]: a personalizer as JSON, validated before any model loads, built against
//!   [`Models`];
//! - [`EvalConfig`]: an evaluation as JSON, built into a [`zipp_eval::Evaluation`];
//! - [`LmSpec`] and [`lm::generate`]: a language model as JSON, and the generation driver
//!   that streams its text to the caller's thread with cancellation; [`ExtractorSpec`] and
//!   [`VerbalizerSpec`]: ViPer preference extraction and the persona verbalizer as JSON;
//! - [`MiningSpec`] and [`graph::mine`]: persona mining from an activity graph (SPEC §6) as
//!   JSON, and its driver with progress and cancellation; [`GraphBuildSpec`] and
//!   [`graph::build_graph`]: an activity graph too large for memory built into an export
//!   folder in bounded memory;
//! - [`shared`]: what both bindings hand out (a scorer bound to its embedder, a lock-guarded
//!   evaluation, optional option objects) with the policy they share.
//!
//! Adding a model kind or a method touches this crate and the implementing crate only; the
//! bindings pick it up through the same calls.
//!
//! ```no_run
//! use zipp_core::personalize::Request;
//! use zipp_core::{IndexedPersona, Persona};
//! use zipp_factory::{MethodSpec, Models};
//!
//! let models = Models::new();
//! let vprag = MethodSpec::from_json(r#"{"method":"vprag","temperature":0.1}"#)?.build(&models)?;
//! let persona = IndexedPersona::new(Persona::from_json_file("ana.json")?);
//! println!("{}", vprag.personalize(&persona, &Request::generate("a portrait in the park"))?.explain());
//! # Ok::<(), zipp_core::Error>(())
//! ```
#![forbid(unsafe_code)]

pub mod clip;
mod eval;
pub mod graph;
pub mod image;
pub mod job;
pub mod lm;
mod models;
pub mod shared;
mod spec;

pub use clip::{ClipSpec, SharedImageEvaluation};
pub use eval::{eval_method, eval_methods, EvalConfig};
pub use graph::{GraphBuildSpec, MiningResult, MiningSpec};
pub use lm::{ExtractorSpec, LmSpec, VerbalizerSpec};
pub use models::{ClipBpeKind, KernelName, KindEntry, MiniLmKind, ModelKind, Models, ModelsOptions, KINDS};
pub use spec::MethodSpec;
