//! Evaluation: the text-level VPTT score (SPEC §4), the statistics that go with it
//! (SPEC §9), and the streaming method-table runner (VPTT paper, Tables 3 and 7).

pub mod stats;
pub mod vptt;
