//! [`Pipeline`]: retrievers in order, then a composer, under a token budget — the one
//! [`Personalizer`] every method here is built from.

use std::sync::Arc;

use super::stages::{Composer, Context, Query, Retrieved, Retriever};
use super::{check_token_budget, Personalization, Personalizer, Request};
use crate::embed::{Embedder, Embeddings};
use crate::error::Result;
use crate::retrieve::{IndexedPersona, MemoryIndex};

/// A personalizer made of stages: each retriever appends its pieces and evidence in turn,
/// then the composer writes the prompt. Build one with [`Pipeline::new`]:
///
/// ```
/// # use std::sync::Arc;
/// # use zipp_core::personalize::{compose::Concat, BragCaptions, Pipeline, Retriever, VpragElements};
/// # fn f(embedder: Arc<dyn zipp_core::embed::Embedder>, counter: Arc<dyn zipp_core::tokenize::TokenCounter>) -> zipp_core::Result<Pipeline> {
/// // The Combined method: BRAG captions, then VPRAG elements, then Concat within 77 tokens.
/// let retrievers: Vec<Arc<dyn Retriever>> = vec![
///     Arc::new(BragCaptions::new(embedder.clone(), 3)?),
///     Arc::new(VpragElements::new(embedder, Default::default())?),
/// ];
/// Pipeline::new("combined", retrievers, Arc::new(Concat::new(counter)), 77)
/// # }
/// ```
///
/// A batch's prompts are embedded once per distinct embedder ([`Embedder::id`]) and the
/// persona's memory indexed once, however many retrievers read them.
#[derive(Clone)]
pub struct Pipeline {
    name: String,
    retrievers: Vec<Arc<dyn Retriever>>,
    composer: Arc<dyn Composer>,
    /// Context length including start/end markers, unless a request overrides it.
    token_budget: usize,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let retrievers: Vec<&str> = self.retrievers.iter().map(|r| r.name()).collect();
        f.debug_struct("Pipeline")
            .field("name", &self.name)
            .field("retrievers", &retrievers)
            .field("composer", &self.composer.name())
            .field("token_budget", &self.token_budget)
            .finish()
    }
}

/// One embedder's queries for a batch and the persona's index under it.
struct Embedded {
    embedder_id: String,
    queries: Embeddings,
    index: Arc<MemoryIndex>,
}

impl Pipeline {
    /// `name` is what [`Personalizer::name`] and [`Personalization::method`] report;
    /// `token_budget` is the target encoder's context length including start/end markers
    /// (77 for CLIP; a request's `token_budget` overrides it). A budget below 3 is
    /// [`Error::InvalidInput`](crate::Error::InvalidInput).
    pub fn new(
        name: impl Into<String>,
        retrievers: Vec<Arc<dyn Retriever>>,
        composer: Arc<dyn Composer>,
        token_budget: usize,
    ) -> Result<Pipeline> {
        check_token_budget(token_budget)?;
        Ok(Pipeline::unchecked(name, retrievers, composer, token_budget))
    }

    /// [`Pipeline::new`] for a budget taken from a token counter's context length, which
    /// the typed constructors have always accepted as is.
    pub(super) fn unchecked(
        name: impl Into<String>,
        retrievers: Vec<Arc<dyn Retriever>>,
        composer: Arc<dyn Composer>,
        token_budget: usize,
    ) -> Pipeline {
        Pipeline { name: name.into(), retrievers, composer, token_budget }
    }

    /// Sets the context length (including start/end markers) the prompt must fit.
    pub fn with_token_budget(mut self, budget: usize) -> Result<Pipeline> {
        check_token_budget(budget)?;
        self.token_budget = budget;
        Ok(self)
    }

    pub fn token_budget(&self) -> usize {
        self.token_budget
    }

    pub fn retrievers(&self) -> &[Arc<dyn Retriever>] {
        &self.retrievers
    }

    pub fn composer(&self) -> &Arc<dyn Composer> {
        &self.composer
    }

    /// Runs the stages for one validated request; `queries[i]` is retriever i's query
    /// (`Some` exactly for those with an embedder).
    pub(super) fn run(
        &self,
        persona: &IndexedPersona,
        request: &Request,
        queries: &[Option<Query<'_>>],
    ) -> Result<Personalization> {
        let mut retrieved = Retrieved::default();
        for (retriever, query) in self.retrievers.iter().zip(queries) {
            retriever.retrieve(persona, request, *query, &mut retrieved)?;
        }
        let cx = Context {
            method: &self.name,
            persona,
            request,
            token_budget: request.token_budget.unwrap_or(self.token_budget),
        };
        self.composer.compose(&cx, retrieved)
    }

    /// Embeds all prompts once per distinct embedder of the retrievers and indexes the
    /// persona under each.
    fn embed(&self, persona: &IndexedPersona, requests: &[Request]) -> Result<Vec<Embedded>> {
        let texts: Vec<&str> = requests.iter().map(|r| r.prompt.as_str()).collect();
        let mut out: Vec<Embedded> = Vec::new();
        for embedder in self.retrievers.iter().filter_map(|r| r.embedder()) {
            if out.iter().any(|e| e.embedder_id == embedder.id()) {
                continue;
            }
            let queries = embedder.embed(&texts)?;
            crate::embed::check_shape(embedder.as_ref(), texts.len(), &queries)?;
            let index = persona.index(embedder.as_ref())?;
            out.push(Embedded { embedder_id: embedder.id().to_string(), queries, index });
        }
        Ok(out)
    }
}

impl Personalizer for Pipeline {
    fn name(&self) -> &str {
        &self.name
    }

    fn personalize(&self, persona: &IndexedPersona, request: &Request) -> Result<Personalization> {
        let mut out = self.personalize_batch(persona, std::slice::from_ref(request))?;
        Ok(out.remove(0))
    }

    fn personalize_batch(&self, persona: &IndexedPersona, requests: &[Request]) -> Result<Vec<Personalization>> {
        for r in requests {
            r.validate()?;
        }
        let embedded = self.embed(persona, requests)?;
        let of = |embedder: &Arc<dyn Embedder>| embedded.iter().find(|e| e.embedder_id == embedder.id());
        requests
            .iter()
            .enumerate()
            .map(|(r, request)| {
                let queries: Vec<Option<Query<'_>>> = self
                    .retrievers
                    .iter()
                    .map(|t| t.embedder().and_then(of).map(|e| Query { vector: e.queries.row(r), index: &e.index }))
                    .collect();
                self.run(persona, request, &queries)
            })
            .collect()
    }

    fn reads_memory(&self) -> bool {
        self.retrievers.iter().any(|r| r.reads_memory())
    }
}

#[cfg(test)]
mod tests;
