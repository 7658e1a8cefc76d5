//! Feature pins, no code: see this crate's `Cargo.toml`. zipp-examples and zipp-py depend
//! on it so that the quick start, the wheel and the test build share one compile of candle
//! and the rest of the dependencies.
#![forbid(unsafe_code)]
#![no_std]
