//! Token counting for prompt budgets.
//!
//! A composed prompt must fit the *target* text encoder's context (77 CLIP tokens for Stable
//! Diffusion, SPEC §3 step 6), so budgets are counted with the real CLIP BPE tokenizer
//! ([`ClipTokenizer`]), not by words or characters.

mod clip;

pub use clip::ClipTokenizer;

/// Counts tokens of a target text encoder.
pub trait TokenCounter: Send + Sync {
    /// Tokens `text` occupies, *without* the start/end markers.
    fn count(&self, text: &str) -> usize;

    /// The encoder's context length *including* start/end markers (77 for CLIP).
    fn context_length(&self) -> usize;

    /// Tokens available to content: the context less the start and end markers.
    fn content_budget(&self) -> usize {
        self.context_length().saturating_sub(2)
    }
}
