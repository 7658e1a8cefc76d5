//! The personalizers of SPEC §3: Identity, PersonaOnly, Brag, Vprag, Combined.

use std::sync::Arc;

use super::compose;
use super::{
    check_token_budget, Evidence, EvidenceCategory, EvidenceElement, EvidencePost, Personalization, Personalizer,
    Request,
};
use crate::embed::{Embedder, Embeddings};
use crate::error::{Error, Result};
use crate::retrieve::vprag::{self, Selection, VpragParams};
use crate::retrieve::{IndexedPersona, MemoryIndex};
use crate::tokenize::TokenCounter;

/// What a piece offered to the composer is, so evidence can say whether it was used.
enum Piece {
    Caption(usize),
    Element(usize),
    Fact,
}

/// The embedder, token counter and budget every composing personalizer shares.
#[derive(Clone)]
struct Backbone {
    embedder: Option<Arc<dyn Embedder>>,
    counter: Arc<dyn TokenCounter>,
    /// Context length including start/end markers.
    token_budget: usize,
}

impl Backbone {
    fn new(embedder: Option<Arc<dyn Embedder>>, counter: Arc<dyn TokenCounter>) -> Backbone {
        let token_budget = counter.context_length();
        Backbone { embedder, counter, token_budget }
    }

    fn with_budget(mut self, budget: usize) -> Result<Backbone> {
        check_token_budget(budget)?;
        self.token_budget = budget;
        Ok(self)
    }

    fn embedder(&self) -> &dyn Embedder {
        // Only constructed with `Some` by the embedding personalizers that call this.
        self.embedder.as_deref().expect("embedding personalizer has an embedder")
    }

    /// Validates every request, then embeds all their prompts in one batch.
    fn queries(&self, requests: &[Request]) -> Result<Embeddings> {
        for r in requests {
            r.validate()?;
        }
        let texts: Vec<&str> = requests.iter().map(|r| r.prompt.as_str()).collect();
        let qs = self.embedder().embed(&texts)?;
        crate::embed::check_shape(self.embedder(), texts.len(), &qs)?;
        Ok(qs)
    }

    /// Embeds every request's prompt in one batch, indexes the persona (cached), then runs
    /// `one` per request with its query vector.
    fn each_query(
        &self,
        persona: &IndexedPersona,
        requests: &[Request],
        one: impl Fn(&MemoryIndex, &Request, &[f32]) -> Result<Personalization>,
    ) -> Result<Vec<Personalization>> {
        let qs = self.queries(requests)?;
        let index = persona.index(self.embedder())?;
        requests.iter().enumerate().map(|(r, req)| one(&index, req, qs.row(r))).collect()
    }

    /// Composes `base` with the pieces, marks what was used, fills the budget fields.
    fn finish(
        &self,
        method: &str,
        request: &Request,
        pieces: Vec<(String, Piece)>,
        mut evidence: Evidence,
    ) -> Personalization {
        let budget = request.token_budget.unwrap_or(self.token_budget).saturating_sub(2);
        let texts: Vec<&str> = pieces.iter().map(|(t, _)| t.as_str()).collect();
        let composed = compose::concat(&request.prompt, &texts, self.counter.as_ref(), budget);
        for (i, (_, piece)) in pieces.iter().enumerate() {
            let used = i < composed.used;
            match *piece {
                Piece::Caption(p) => evidence.posts[p].caption_used = used,
                Piece::Element(e) => evidence.elements[e].used = used,
                Piece::Fact => {}
            }
        }
        evidence.dropped_by_budget = pieces.len() - composed.used;
        evidence.content_budget = budget;
        evidence.tokens = composed.tokens;
        if composed.tokens > budget {
            evidence.notes.push(format!(
                "the base prompt alone is {} tokens, over the budget of {budget}; it is kept whole and nothing was added",
                composed.tokens
            ));
        }
        Personalization {
            method: method.to_string(),
            prompt: composed.prompt,
            negative_prompt: None,
            steering: None,
            evidence,
        }
    }
}

fn evidence_post(persona: &crate::Persona, index: usize, score: f32, weight: Option<f64>) -> EvidencePost {
    let post = &persona.memory[index];
    EvidencePost { index, id: post.id.clone(), caption: post.caption.clone(), score, weight, caption_used: false }
}

/// Caption text as a prompt piece: a trailing full stop would read as a sentence break.
fn caption_piece(caption: &str) -> String {
    caption.trim().trim_end_matches('.').trim_end().to_string()
}

/// The BRAG retrieval: the top-k captions by cosine (ties to the lower index), written
/// into evidence and returned as caption pieces.
fn brag_pieces(
    persona: &crate::Persona,
    index: &MemoryIndex,
    q: &[f32],
    k: usize,
    ev: &mut Evidence,
) -> Vec<(String, Piece)> {
    let scores = index.captions.dots(q);
    let weights: Vec<f64> = scores.iter().map(|&s| s as f64).collect();
    vprag::top_k(&weights, k)
        .into_iter()
        .map(|i| {
            ev.posts.push(evidence_post(persona, i, scores[i], None));
            (caption_piece(&persona.memory[i].caption), Piece::Caption(ev.posts.len() - 1))
        })
        .collect()
}

/// Writes a VPRAG selection into evidence and returns its element pieces.
fn vprag_evidence(
    persona: &crate::Persona,
    index: &MemoryIndex,
    sel: &Selection,
    ev: &mut Evidence,
) -> Vec<(String, Piece)> {
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
    (first..ev.elements.len()).map(|i| (ev.elements[i].text.clone(), Piece::Element(i))).collect()
}

/// Baseline: the prompt unchanged.
#[derive(Debug, Clone, Default)]
pub struct Identity;

impl Identity {
    pub fn new() -> Identity {
        Identity
    }
}

impl Personalizer for Identity {
    fn name(&self) -> &str {
        "identity"
    }

    fn personalize(&self, _persona: &IndexedPersona, request: &Request) -> Result<Personalization> {
        request.validate()?;
        Ok(Personalization {
            method: self.name().into(),
            prompt: request.prompt.clone(),
            negative_prompt: None,
            steering: None,
            evidence: Evidence::default(),
        })
    }
}

/// Baseline: the prompt plus the persona's summary sentences, demographics and interests
/// (no memory), under the token budget.
#[derive(Clone)]
pub struct PersonaOnly {
    backbone: Backbone,
}

impl PersonaOnly {
    pub fn new(counter: Arc<dyn TokenCounter>) -> PersonaOnly {
        PersonaOnly { backbone: Backbone::new(None, counter) }
    }

    /// Sets the context length (including start/end markers) the prompt must fit.
    pub fn with_token_budget(mut self, budget: usize) -> Result<Self> {
        self.backbone = self.backbone.with_budget(budget)?;
        Ok(self)
    }
}

impl Personalizer for PersonaOnly {
    fn name(&self) -> &str {
        "persona_only"
    }

    fn personalize(&self, persona: &IndexedPersona, request: &Request) -> Result<Personalization> {
        request.validate()?;
        let p = persona.persona();
        let mut pieces: Vec<(String, Piece)> = Vec::new();
        // Sentences, so a long summary contributes what fits instead of nothing.
        for sentence in p.summary.split_inclusive(['.', '!', '?']) {
            let s = sentence.trim().trim_end_matches(['.', '!', '?']).trim();
            if !s.is_empty() {
                pieces.push((s.to_string(), Piece::Fact));
            }
        }
        for (k, v) in &p.demographics {
            pieces.push((format!("{}: {}", k.replace('_', " "), v.trim()), Piece::Fact));
        }
        pieces.extend(p.interests.iter().map(|i| (i.trim().to_string(), Piece::Fact)));
        Ok(self.backbone.finish(self.name(), request, pieces, Evidence::default()))
    }
}

/// BRAG's `k` must be at least 1.
pub fn check_brag_k(k: usize) -> Result<()> {
    if k == 0 {
        return Err(Error::InvalidInput("BRAG needs k ≥ 1 captions".into()));
    }
    Ok(())
}

/// Baseline RAG: the top-k (default 3) whole captions by cosine, appended to the prompt.
#[derive(Clone)]
pub struct Brag {
    backbone: Backbone,
    k: usize,
}

impl Brag {
    /// `k` captions (the VPTT paper and Tailored Visions use 3).
    pub fn new(embedder: Arc<dyn Embedder>, counter: Arc<dyn TokenCounter>, k: usize) -> Result<Brag> {
        check_brag_k(k)?;
        Ok(Brag { backbone: Backbone::new(Some(embedder), counter), k })
    }

    /// Sets the context length (including start/end markers) the prompt must fit.
    pub fn with_token_budget(mut self, budget: usize) -> Result<Self> {
        self.backbone = self.backbone.with_budget(budget)?;
        Ok(self)
    }

    fn run(&self, persona: &IndexedPersona, index: &MemoryIndex, request: &Request, q: &[f32]) -> Personalization {
        let mut ev = Evidence::default();
        let pieces = brag_pieces(persona.persona(), index, q, self.k, &mut ev);
        self.backbone.finish(self.name(), request, pieces, ev)
    }
}

impl Personalizer for Brag {
    fn reads_memory(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        "brag"
    }

    fn personalize(&self, persona: &IndexedPersona, request: &Request) -> Result<Personalization> {
        Ok(self.personalize_batch(persona, std::slice::from_ref(request))?.remove(0))
    }

    fn personalize_batch(&self, persona: &IndexedPersona, requests: &[Request]) -> Result<Vec<Personalization>> {
        self.backbone.each_query(persona, requests, |index, req, q| Ok(self.run(persona, index, req, q)))
    }
}

/// VPRAG (SPEC §3): entropy-guided post selection, quota allocation per category,
/// element ranking, Concat composition under the token budget.
#[derive(Clone)]
pub struct Vprag {
    backbone: Backbone,
    params: VpragParams,
}

impl Vprag {
    pub fn new(embedder: Arc<dyn Embedder>, counter: Arc<dyn TokenCounter>, params: VpragParams) -> Result<Vprag> {
        params.validate()?;
        Ok(Vprag { backbone: Backbone::new(Some(embedder), counter), params })
    }

    /// Sets the context length (including start/end markers) the prompt must fit.
    pub fn with_token_budget(mut self, budget: usize) -> Result<Self> {
        self.backbone = self.backbone.with_budget(budget)?;
        Ok(self)
    }

    pub fn params(&self) -> &VpragParams {
        &self.params
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
        let embedder = self.backbone.embedder();
        if q.len() != embedder.dim() || q.iter().any(|x| !x.is_finite()) {
            return Err(Error::InvalidInput(format!(
                "query vector must hold {} finite values, got {} values",
                embedder.dim(),
                q.len()
            )));
        }
        let index = persona.index(embedder)?;
        self.run(persona, &index, request, q)
    }

    fn run(
        &self,
        persona: &IndexedPersona,
        index: &MemoryIndex,
        request: &Request,
        q: &[f32],
    ) -> Result<Personalization> {
        let sel = vprag::select(index, q, &self.params)?;
        let mut ev = Evidence::default();
        let pieces = vprag_evidence(persona.persona(), index, &sel, &mut ev);
        Ok(self.backbone.finish(self.name(), request, pieces, ev))
    }
}

impl Personalizer for Vprag {
    fn reads_memory(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        "vprag"
    }

    fn personalize(&self, persona: &IndexedPersona, request: &Request) -> Result<Personalization> {
        Ok(self.personalize_batch(persona, std::slice::from_ref(request))?.remove(0))
    }

    fn personalize_batch(&self, persona: &IndexedPersona, requests: &[Request]) -> Result<Vec<Personalization>> {
        self.backbone.each_query(persona, requests, |index, req, q| self.run(persona, index, req, q))
    }
}

/// BRAG captions followed by VPRAG elements, one budget (the VPTT paper's "Comb.").
#[derive(Clone)]
pub struct Combined {
    brag_k: usize,
    vprag: Vprag,
}

impl Combined {
    pub fn new(
        embedder: Arc<dyn Embedder>,
        counter: Arc<dyn TokenCounter>,
        brag_k: usize,
        params: VpragParams,
    ) -> Result<Combined> {
        check_brag_k(brag_k)?;
        Ok(Combined { brag_k, vprag: Vprag::new(embedder, counter, params)? })
    }

    /// Sets the context length (including start/end markers) the prompt must fit.
    pub fn with_token_budget(mut self, budget: usize) -> Result<Self> {
        self.vprag = self.vprag.with_token_budget(budget)?;
        Ok(self)
    }
}

impl Personalizer for Combined {
    fn reads_memory(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        "combined"
    }

    fn personalize(&self, persona: &IndexedPersona, request: &Request) -> Result<Personalization> {
        Ok(self.personalize_batch(persona, std::slice::from_ref(request))?.remove(0))
    }

    fn personalize_batch(&self, persona: &IndexedPersona, requests: &[Request]) -> Result<Vec<Personalization>> {
        let backbone = &self.vprag.backbone;
        backbone.each_query(persona, requests, |index, req, q| {
            let mut ev = Evidence::default();
            let mut pieces = brag_pieces(persona.persona(), index, q, self.brag_k, &mut ev);
            let sel = vprag::select(index, q, &self.vprag.params)?;
            pieces.extend(vprag_evidence(persona.persona(), index, &sel, &mut ev));
            Ok(backbone.finish(self.name(), req, pieces, ev))
        })
    }
}
