//! The retrievers of SPEC §3: [`PersonaFacts`] (the persona's own text), [`BragCaptions`]
//! (top-k captions) and [`VpragElements`] (VPRAG's entropy-guided element selection).

use std::sync::Arc;

use super::stages::{Piece, Query, Retrieved, Retriever, Source};
use super::{EvidenceCategory, EvidenceElement, EvidencePost, Request};
use crate::embed::Embedder;
use crate::error::{Error, Result};
use crate::retrieve::vprag::{self, VpragParams};
use crate::retrieve::IndexedPersona;

/// The query a retriever with an embedder was promised (see [`Retriever::retrieve`]).
fn need<'a>(query: Option<Query<'a>>, who: &str) -> Result<Query<'a>> {
    query.ok_or_else(|| Error::InvalidInput(format!("the {who} retriever needs a query vector and memory index")))
}

fn evidence_post(persona: &crate::Persona, index: usize, score: f32, weight: Option<f64>) -> EvidencePost {
    let post = &persona.memory[index];
    EvidencePost { index, id: post.id.clone(), caption: post.caption.clone(), score, weight, caption_used: false }
}

/// Caption text as a prompt piece: a trailing full stop would read as a sentence break.
fn caption_piece(caption: &str) -> String {
    caption.trim().trim_end_matches('.').trim_end().to_string()
}

/// The persona's summary sentences, demographics (`"age: 34"`) and interests, in that
/// order (the PersonaOnly baseline; no memory, no embedding).
#[derive(Debug, Clone, Copy, Default)]
pub struct PersonaFacts;

impl Retriever for PersonaFacts {
    fn name(&self) -> &str {
        "persona"
    }

    fn retrieve(
        &self,
        persona: &IndexedPersona,
        _request: &Request,
        _query: Option<Query<'_>>,
        out: &mut Retrieved,
    ) -> Result<()> {
        let p = persona.persona();
        // Sentences, so a long summary contributes what fits instead of nothing.
        for sentence in p.summary.split_inclusive(['.', '!', '?']) {
            let s = sentence.trim().trim_end_matches(['.', '!', '?']).trim();
            if !s.is_empty() {
                out.pieces.push(Piece::new(s, Source::Fact));
            }
        }
        for (k, v) in &p.demographics {
            out.pieces.push(Piece::new(format!("{}: {}", k.replace('_', " "), v.trim()), Source::Fact));
        }
        out.pieces.extend(p.interests.iter().map(|i| Piece::new(i.trim(), Source::Fact)));
        Ok(())
    }
}

/// BRAG's `k` must be at least 1 (checked before any model loads).
pub fn check_brag_k(k: usize) -> Result<()> {
    if k == 0 {
        return Err(Error::InvalidInput("BRAG needs k ≥ 1 captions".into()));
    }
    Ok(())
}

/// Baseline RAG retrieval: the top-k captions by cosine to the query (ties to the lower
/// index), each a whole piece, recorded as evidence posts without weights.
#[derive(Clone)]
pub struct BragCaptions {
    embedder: Arc<dyn Embedder>,
    k: usize,
}

impl BragCaptions {
    /// `k` captions (the VPTT paper and Tailored Visions use 3); `k = 0` is
    /// [`Error::InvalidInput`].
    pub fn new(embedder: Arc<dyn Embedder>, k: usize) -> Result<BragCaptions> {
        check_brag_k(k)?;
        Ok(BragCaptions { embedder, k })
    }

    pub fn k(&self) -> usize {
        self.k
    }

    /// The embedder of its queries and of the memory index.
    pub fn embedder(&self) -> &Arc<dyn Embedder> {
        &self.embedder
    }
}

impl std::fmt::Debug for BragCaptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BragCaptions").field("embedder", &self.embedder.id()).field("k", &self.k).finish()
    }
}

impl Retriever for BragCaptions {
    fn name(&self) -> &str {
        "brag"
    }

    fn embedder(&self) -> Option<&Arc<dyn Embedder>> {
        Some(&self.embedder)
    }

    fn reads_memory(&self) -> bool {
        true
    }

    fn retrieve(
        &self,
        persona: &IndexedPersona,
        _request: &Request,
        query: Option<Query<'_>>,
        out: &mut Retrieved,
    ) -> Result<()> {
        let Query { vector, index } = need(query, "BRAG")?;
        let persona = persona.persona();
        let scores = index.captions.dots(vector);
        let weights: Vec<f64> = scores.iter().map(|&s| s as f64).collect();
        for i in vprag::top_k(&weights, self.k) {
            out.evidence.posts.push(evidence_post(persona, i, scores[i], None));
            let at = out.evidence.posts.len() - 1;
            out.pieces.push(Piece::new(caption_piece(&persona.memory[i].caption), Source::Caption(at)));
        }
        Ok(())
    }
}

/// VPRAG retrieval (SPEC §3 steps 1–5): entropy-guided post selection, quota allocation
/// per category, element ranking. Fills the evidence's posts (with weights), categories,
/// entropy, n_eff, K and budget; its pieces are the elements in category priority order.
#[derive(Clone)]
pub struct VpragElements {
    embedder: Arc<dyn Embedder>,
    params: VpragParams,
}

impl VpragElements {
    /// Invalid `params` (non-positive temperature …) are [`Error::InvalidInput`].
    pub fn new(embedder: Arc<dyn Embedder>, params: VpragParams) -> Result<VpragElements> {
        params.validate()?;
        Ok(VpragElements { embedder, params })
    }

    pub fn params(&self) -> &VpragParams {
        &self.params
    }

    /// The embedder of its queries and of the memory index.
    pub fn embedder(&self) -> &Arc<dyn Embedder> {
        &self.embedder
    }
}

impl std::fmt::Debug for VpragElements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VpragElements").field("embedder", &self.embedder.id()).field("params", &self.params).finish()
    }
}

impl Retriever for VpragElements {
    fn name(&self) -> &str {
        "vprag"
    }

    fn embedder(&self) -> Option<&Arc<dyn Embedder>> {
        Some(&self.embedder)
    }

    fn reads_memory(&self) -> bool {
        true
    }

    fn retrieve(
        &self,
        persona: &IndexedPersona,
        _request: &Request,
        query: Option<Query<'_>>,
        out: &mut Retrieved,
    ) -> Result<()> {
        let Query { vector, index } = need(query, "VPRAG")?;
        let sel = vprag::select(index, vector, &self.params)?;
        let persona = persona.persona();
        let ev = &mut out.evidence;
        ev.entropy = Some(sel.entropy);
        ev.n_eff = Some(sel.n_eff);
        ev.k = Some(sel.k);
        ev.total_budget = Some(sel.total_budget);
        ev.duplicates_dropped = sel.duplicates_dropped;
        ev.posts.extend(sel.posts.iter().map(|p| evidence_post(persona, p.post, p.score, Some(p.weight))));
        ev.categories = sel
            .categories
            .iter()
            .map(|c| EvidenceCategory {
                name: index.categories[c.category].clone(),
                priority: c.priority,
                budget: c.budget,
                available: c.available,
                allocated: c.quotas.iter().sum(),
            })
            .collect();
        let first = ev.elements.len();
        ev.elements.extend(sel.elements.iter().map(|e| EvidenceElement {
            category: index.categories[e.category].clone(),
            text: index.elements[e.element].clone(),
            post: e.post,
            score: e.score,
            used: false,
        }));
        out.pieces
            .extend((first..ev.elements.len()).map(|i| Piece::new(ev.elements[i].text.clone(), Source::Element(i))));
        Ok(())
    }
}
