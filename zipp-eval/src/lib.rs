//! # zipp-eval — measuring personalization
//!
//! The text-level **VPTT score** (SPEC §4, [`vptt`]), the statistics that go with it
//! (SPEC §9, [`stats`]), the streaming **method-table runner** (VPTT paper, Tables 3 and 7:
//! [`Evaluation`], [`Report`]) and the persona **datasets** the tables are computed on
//! ([`datasets`]: a seeded synthetic VPTT-Bench-shaped generator, MovieLens 100K behind the
//! `movielens` feature, JSONL files — all behind one [`datasets::PersonaSource`] trait),
//! and the image side: metrics over embeddings ([`image_metrics`]) and the image columns of
//! an evaluation from the images each method made ([`image_eval`], embedded by any
//! [`image_eval::ImageEmbedder`], e.g. a CLIP model).
//!
//! This crate depends on `zipp-core` only: it scores what any [`zipp_core::personalize::Personalizer`]
//! produces and embeds with any [`zipp_core::embed::Embedder`]. Building evaluations from JSON
//! (method specs, shared models) is `zipp-factory`'s job.
#![forbid(unsafe_code)]

pub mod datasets;
pub mod image_eval;
pub mod image_metrics;
mod run;
pub mod stats;
pub mod vptt;

pub use run::{
    EvalAggregate, EvalMethod, EvalOptions, Evaluation, HeadToHead, MethodInfo, MethodRow, NoveltyConvention, Query,
    QuerySet, Report, RewriteSample, Sample, Stat, Summary, Table, Timings,
};
pub use vptt::{Novelty, PersonaScorer, VpttOptions, VpttScore, Weights};
