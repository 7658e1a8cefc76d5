//! # zipp-graph — persona mining from a user–community activity graph
//!
//! This crate will own everything that knows about graphs (SPEC §6): the bipartite
//! users × communities graph, the two-layer GATv2 encoder trained with link prediction
//! and ImageAlign, attention-ranked evidence, and the verbalizer that turns evidence into
//! a [`zipp_core::Persona`]. No other crate knows about graphs.
//!
//! Status: placeholder. The encoder lands with the persona-mining issue; today the crate
//! only fixes its place in the workspace and its dependency direction (it depends on
//! `zipp-core`, never the reverse).
#![forbid(unsafe_code)]

/// The persona schema version this crate produces, re-exported so dependants can check
/// that the miner and the core agree.
pub const PERSONA_SCHEMA_VERSION: u32 = zipp_core::persona::SCHEMA_VERSION;
