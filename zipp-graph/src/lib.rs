//! # zipp-graph — persona mining from a user–community activity graph
//!
//! Everything that knows about graphs (SPEC §6) lives here: the bipartite users ×
//! communities graph ([`graph`]), deterministic edge splits ([`split`]), the two-layer GATv2
//! encoder trained with link prediction and ImageAlign, attention-ranked evidence, and the
//! hand-off of that evidence to the verbalizer that turns it into a [`zipp_core::Persona`].
//! No other crate knows about graphs; this one depends on `zipp-core`, never the reverse.
#![forbid(unsafe_code)]

pub mod ablation;
pub mod evidence;
pub mod export;
pub mod features;
pub mod gatv2;
pub mod graph;
pub mod io;
pub mod metrics;
pub mod model;
#[cfg(feature = "movielens")]
pub mod movielens;
pub mod ondisk;
pub mod sample;
pub mod split;
pub mod synthetic;
pub mod train;

pub use graph::{BipartiteGraph, Community, Csr, GraphBuilder};
pub use split::{EdgeSplit, Part, SplitOptions};

/// The persona schema version this crate produces, re-exported so dependants can check
/// that the miner and the core agree.
pub const PERSONA_SCHEMA_VERSION: u32 = zipp_core::persona::SCHEMA_VERSION;
