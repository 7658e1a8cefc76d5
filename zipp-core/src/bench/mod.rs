//! Persona benches: a seeded synthetic bench in the shape of VPTT-Bench (SPEC §2), the
//! real-data MovieLens 100K bench (SPEC §11: fetched at setup, never committed), and the
//! evaluation queries.
//!
//! Their raw inputs (phrase lists, MovieLens files) are provisioned into the models folder
//! by `scripts/provision-models.sh`, next to the default models.
//!
//! `movielens` is compiled only with the cargo feature `movielens` (off by default).

// The MovieLens 100K bench; needs zipp-core's `movielens` cargo feature (it adds a
// parquet reader to the build).
#[cfg(feature = "movielens")]
pub mod movielens;
pub mod synthetic;
