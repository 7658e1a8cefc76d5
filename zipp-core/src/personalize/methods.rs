//! The personalizers of SPEC §3 — Identity, PersonaOnly, Brag, Vprag, Combined — as typed
//! constructors of [`Pipeline`]s: each is a named composition of retrievers and a composer,
//! and converts into its pipeline ([`From`]).

use std::sync::Arc;

use super::compose::{Concat, Verbatim};
use super::pipeline::Pipeline;
use super::retrievers::{BragCaptions, PersonaFacts, VpragElements};
use super::stages::{Query, Retriever};

use super::{Personalization, Personalizer, Request};
use crate::embed::Embedder;
use crate::error::{Error, Result};
use crate::retrieve::vprag::VpragParams;
use crate::retrieve::IndexedPersona;
use crate::tokenize::TokenCounter;

/// Delegates [`Personalizer`], `with_token_budget` and the conversion into [`Pipeline`] to
/// the wrapped pipeline.
macro_rules! pipeline_wrapper {
    ($t:ident) => {
        impl $t {
            /// Sets the context length (including start/end markers) the prompt must fit.
            pub fn with_token_budget(mut self, budget: usize) -> Result<Self> {
                self.pipeline = self.pipeline.with_token_budget(budget)?;
                Ok(self)
            }

            /// The stages it runs.
            pub fn pipeline(&self) -> &Pipeline {
                &self.pipeline
            }
        }

        impl From<$t> for Pipeline {
            fn from(m: $t) -> Pipeline {
                m.pipeline
            }
        }

        impl Personalizer for $t {
            fn name(&self) -> &str {
                self.pipeline.name()
            }

            fn personalize(&self, persona: &IndexedPersona, request: &Request) -> Result<Personalization> {
                self.pipeline.personalize(persona, request)
            }

            fn personalize_batch(
                &self,
                persona: &IndexedPersona,
                requests: &[Request],
            ) -> Result<Vec<Personalization>> {
                self.pipeline.personalize_batch(persona, requests)
            }

            fn reads_memory(&self) -> bool {
                self.pipeline.reads_memory()
            }
        }
    };
}

fn concat_pipeline(name: &str, retrievers: Vec<Arc<dyn Retriever>>, counter: Arc<dyn TokenCounter>) -> Pipeline {
    let budget = counter.context_length();
    Pipeline::unchecked(name, retrievers, Arc::new(Concat::new(counter)), budget)
}

/// Baseline: the prompt unchanged (no retriever, the [`Verbatim`] composer).
#[derive(Debug, Clone)]
pub struct Identity {
    pipeline: Pipeline,
}

impl Identity {
    pub fn new() -> Identity {
        // The budget is never read: Verbatim adds nothing.
        Identity { pipeline: Pipeline::unchecked("identity", Vec::new(), Arc::new(Verbatim), 77) }
    }
}

impl Default for Identity {
    fn default() -> Identity {
        Identity::new()
    }
}

pipeline_wrapper!(Identity);

/// Baseline: the prompt plus the persona's summary sentences, demographics and interests
/// (no memory), under the token budget ([`PersonaFacts`] then `Concat`).
#[derive(Debug, Clone)]
pub struct PersonaOnly {
    pipeline: Pipeline,
}

impl PersonaOnly {
    pub fn new(counter: Arc<dyn TokenCounter>) -> PersonaOnly {
        PersonaOnly { pipeline: concat_pipeline("persona_only", vec![Arc::new(PersonaFacts)], counter) }
    }
}

pipeline_wrapper!(PersonaOnly);

/// Baseline RAG: the top-k (default 3) captions by cosine, appended to the prompt
/// ([`BragCaptions`] then `Concat`).
#[derive(Debug, Clone)]
pub struct Brag {
    pipeline: Pipeline,
}

impl Brag {
    /// `k` captions (the VPTT paper and Tailored Visions use 3).
    pub fn new(embedder: Arc<dyn Embedder>, counter: Arc<dyn TokenCounter>, k: usize) -> Result<Brag> {
        let captions = BragCaptions::new(embedder, k)?;
        Ok(Brag { pipeline: concat_pipeline("brag", vec![Arc::new(captions)], counter) })
    }
}

pipeline_wrapper!(Brag);

/// VPRAG (SPEC §3): entropy-guided post selection, quota allocation per category,
/// element ranking ([`VpragElements`]), `Concat` composition under the token budget.
#[derive(Debug, Clone)]
pub struct Vprag {
    pipeline: Pipeline,
    elements: Arc<VpragElements>,
}

impl Vprag {
    pub fn new(embedder: Arc<dyn Embedder>, counter: Arc<dyn TokenCounter>, params: VpragParams) -> Result<Vprag> {
        let elements = Arc::new(VpragElements::new(embedder, params)?);
        Ok(Vprag { pipeline: concat_pipeline("vprag", vec![elements.clone()], counter), elements })
    }

    pub fn params(&self) -> &VpragParams {
        self.elements.params()
    }

    /// Personalizes with a query vector the caller already embedded with this
    /// personalizer's embedder (steps 1–6 without the query embedding).
    pub fn personalize_with_query(
        &self,
        persona: &IndexedPersona,
        request: &Request,
        q: &[f32],
    ) -> Result<Personalization> {
        request.validate()?;
        let embedder = self.elements.embedder();
        if q.len() != embedder.dim() || q.iter().any(|x| !x.is_finite()) {
            return Err(Error::InvalidInput(format!(
                "query vector must hold {} finite values, got {} values",
                embedder.dim(),
                q.len()
            )));
        }
        let index = persona.index(embedder.as_ref())?;
        self.pipeline.run(persona, request, &[Some(Query { vector: q, index: &index })])
    }
}

pipeline_wrapper!(Vprag);

/// BRAG captions followed by VPRAG elements, one budget (the VPTT paper's "Comb."):
/// [`BragCaptions`], [`VpragElements`], then `Concat`.
#[derive(Debug, Clone)]
pub struct Combined {
    pipeline: Pipeline,
}

impl Combined {
    pub fn new(
        embedder: Arc<dyn Embedder>,
        counter: Arc<dyn TokenCounter>,
        brag_k: usize,
        params: VpragParams,
    ) -> Result<Combined> {
        let captions = BragCaptions::new(embedder.clone(), brag_k)?;
        let elements = VpragElements::new(embedder, params)?;
        Ok(Combined { pipeline: concat_pipeline("combined", vec![Arc::new(captions), Arc::new(elements)], counter) })
    }
}

pipeline_wrapper!(Combined);
