//! Persona benches: a seeded synthetic bench in the shape of VPTT-Bench (SPEC §2), the
//! real-data MovieLens 100K bench (SPEC §11: fetched at setup, never committed), and the
//! evaluation queries.
//!
//! Their raw inputs (phrase lists, MovieLens files) are provisioned into the models folder
//! by `scripts/provision-models.sh`, next to the default models.

pub mod movielens;
pub mod synthetic;
