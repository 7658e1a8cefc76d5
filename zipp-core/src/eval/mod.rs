//! Evaluation: the text-level VPTT score (SPEC §4), the statistics that go with it
//! (SPEC §9), and the streaming method-table runner (VPTT paper, Tables 3 and 7).

mod run;
pub mod stats;
pub mod vptt;

pub use run::{
    EvalConfig, EvalMethod, EvalOptions, Evaluation, HeadToHead, MethodRow, NoveltyConvention, Query, QuerySet, Report,
    Sample, Stat, Summary, Table, Timings,
};
pub use vptt::{Novelty, PersonaScorer, VpttOptions, VpttScore, Weights};
