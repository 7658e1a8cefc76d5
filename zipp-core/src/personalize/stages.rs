//! The two stages of a personalizer (STYLE "Stages and one factory"): a [`Retriever`]
//! gathers prompt [`Piece`]s and the [`Evidence`] behind them, then a [`Composer`] turns the
//! request and those pieces into a [`Personalization`].
//!
//! Retrievers are chained by appending to one [`Retrieved`] (BRAG captions then VPRAG
//! elements is the Combined method), and any composer follows any retriever: a composer
//! sees only plain data, never which retriever produced it. The [`Pipeline`](super::Pipeline)
//! runs the stages and embeds each batch of queries once per embedder, however many
//! retrievers read them.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Evidence, Personalization, Request};
use crate::embed::Embedder;
use crate::error::Result;
use crate::retrieve::{IndexedPersona, MemoryIndex};

/// Where a [`Piece`] came from, so evidence can say whether it was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The caption of `evidence.posts[i]`.
    Caption(usize),
    /// `evidence.elements[i]`.
    Element(usize),
    /// A fact of the persona's own text (summary sentence, demographic, interest).
    Fact,
}

/// One text offered to the composer, in priority order.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub text: String,
    pub source: Source,
}

impl Piece {
    pub fn new(text: impl Into<String>, source: Source) -> Piece {
        Piece { text: text.into(), source }
    }
}

/// What the retrievers found: pieces in priority order, and the evidence their
/// [`Source`] indices point into.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Retrieved {
    pub pieces: Vec<Piece>,
    pub evidence: Evidence,
}

/// A request's query as a retriever that embeds reads it: the unit query vector and the
/// persona's memory index, both from the retriever's own [`Retriever::embedder`].
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    pub vector: &'a [f32],
    pub index: &'a MemoryIndex,
}

/// Finds what to add to a prompt. Shared across threads.
pub trait Retriever: Send + Sync {
    /// A short stable name (`"persona"`, `"brag"`, `"vprag"`).
    fn name(&self) -> &str;

    /// The embedder whose query vector and memory index [`retrieve`](Self::retrieve) needs,
    /// or `None` when it embeds nothing. Retrievers of one pipeline that share an embedder
    /// (same [`Embedder::id`]) share one embedding of each query.
    fn embedder(&self) -> Option<&Arc<dyn Embedder>> {
        None
    }

    /// Whether it reads the persona's memory (captions, elements), which the VPTT paper's
    /// novelty convention depends on.
    fn reads_memory(&self) -> bool {
        false
    }

    /// Appends its pieces, and the evidence they point into, to `out` (which may already
    /// hold an earlier retriever's). `query` is `Some` exactly when
    /// [`embedder`](Self::embedder) is; the request is already validated.
    fn retrieve(
        &self,
        persona: &IndexedPersona,
        request: &Request,
        query: Option<Query<'_>>,
        out: &mut Retrieved,
    ) -> Result<()>;
}

/// What a composer is given besides the retrieved pieces.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The personalizer's name, for [`Personalization::method`].
    pub method: &'a str,
    pub persona: &'a IndexedPersona,
    /// The request, already validated.
    pub request: &'a Request,
    /// The target encoder's context length *including* start/end markers: the request's
    /// override, else the personalizer's budget.
    pub token_budget: usize,
}

/// Turns a request and retrieved pieces into the personalized prompt. Shared across threads.
pub trait Composer: Send + Sync {
    /// A short stable name (`"concat"`, `"verbatim"`).
    fn name(&self) -> &str;

    /// Composes the prompt; the evidence it returns is `retrieved.evidence` with what was
    /// used marked and the token fields filled.
    fn compose(&self, cx: &Context<'_>, retrieved: Retrieved) -> Result<Personalization>;
}
