//! The stable personalization API: [`Personalizer`], [`Request`], [`Personalization`],
//! [`Evidence`].
//!
//! A personalizer maps `(persona, request) → personalization` (SPEC §2). Each one here is a
//! [`Pipeline`] of two stages (STYLE "Stages and one factory"): [`Retriever`]s (none, the
//! persona's text, BRAG captions, VPRAG elements, or several in order) then a [`Composer`]
//! (the [`Concat`](compose::Concat) composer of SPEC §3 step 6; [`Verbatim`](compose::Verbatim)
//! for the Identity baseline). The five methods of the evaluation are compositions:
//!
//! | method | retrievers | composer |
//! |---|---|---|
//! | [`Identity`] | — | `Verbatim` |
//! | [`PersonaOnly`] | [`PersonaFacts`] | `Concat` |
//! | [`Brag`] (k = 3 captions) | [`BragCaptions`] | `Concat` |
//! | [`Vprag`] (SPEC §3) | [`VpragElements`] | `Concat` |
//! | [`Combined`] | [`BragCaptions`], [`VpragElements`] | `Concat` |
//!
//! All share one embedder, one token counter and one composer, so the evaluation compares
//! methods, not plumbing. Every output carries the [`Evidence`] that produced it, so a
//! person can see *why* a prompt changed.

pub mod compose;
mod methods;
mod pipeline;
mod retrievers;
mod stages;

pub use methods::{Brag, Combined, Identity, PersonaOnly, Vprag};
pub use pipeline::Pipeline;
pub use retrievers::{check_brag_k, BragCaptions, PersonaFacts, VpragElements};
pub use stages::{Composer, Context, Piece, Query, Retrieved, Retriever, Source};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::retrieve::IndexedPersona;

/// Longest base prompt accepted, in bytes. Far beyond any text encoder's context; the
/// bound exists so a runaway input fails fast instead of being embedded and tokenized.
pub const MAX_PROMPT_BYTES: usize = 16 * 1024;

/// What the person wants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Text-to-image generation.
    #[default]
    Generate,
    /// Editing an existing image (image-to-image).
    Edit,
}

impl Task {
    /// The task called `name` (`"generate"`, `"edit"`); another name is a
    /// [`Error::Schema`] at field `task`, as in a request's JSON.
    pub fn from_name(name: &str) -> Result<Task> {
        crate::json::from_value(serde_json::Value::from(name), "task")
    }
}

/// One personalization request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The base prompt.
    pub prompt: String,
    #[serde(default)]
    pub task: Task,
    /// Seed for stochastic methods (the methods here are deterministic and ignore it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Overrides the personalizer's token budget: the target encoder's context length
    /// *including* start/end markers (77 for CLIP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_budget: Option<usize>,
}

impl Request {
    /// A generation request.
    pub fn generate(prompt: impl Into<String>) -> Request {
        Request { prompt: prompt.into(), task: Task::Generate, seed: None, token_budget: None }
    }

    /// An editing request.
    pub fn edit(prompt: impl Into<String>) -> Request {
        Request { task: Task::Edit, ..Request::generate(prompt) }
    }

    /// Parses a request from JSON: an object (`{"prompt": "…", "task": "edit"}`) or just the
    /// prompt as a JSON string.
    pub fn from_json(json: &str) -> Result<Request> {
        let value: serde_json::Value = crate::json::parse(json, &crate::Location::default(), "request")?;
        request_from_value(value, "")
    }

    /// Parses a JSON array of requests (objects or prompt strings).
    pub fn list_from_json(json: &str) -> Result<Vec<Request>> {
        let values: Vec<serde_json::Value> = crate::json::parse(json, &crate::Location::default(), "request array")?;
        values.into_iter().enumerate().map(|(i, v)| request_from_value(v, &format!("[{i}]"))).collect()
    }

    /// Checks the request at the boundary: non-empty, bounded prompt; sane budget.
    pub fn validate(&self) -> Result<()> {
        if self.prompt.trim().is_empty() {
            return Err(Error::InvalidInput("the base prompt is empty".into()));
        }
        if self.prompt.len() > MAX_PROMPT_BYTES {
            return Err(Error::InvalidInput(format!(
                "the base prompt is {} bytes; the limit is {MAX_PROMPT_BYTES}",
                self.prompt.len()
            )));
        }
        if self.prompt.contains('\0') {
            return Err(Error::InvalidInput("the base prompt contains a NUL character".into()));
        }
        if let Some(b) = self.token_budget {
            check_token_budget(b)?;
        }
        Ok(())
    }
}

/// A request object or a bare prompt string, as parsed JSON.
fn request_from_value(value: serde_json::Value, field: &str) -> Result<Request> {
    match value {
        serde_json::Value::String(prompt) => Ok(Request::generate(prompt)),
        v @ serde_json::Value::Object(_) => crate::json::from_value(v, field),
        other => Err(Error::Schema {
            location: crate::Location { field: (!field.is_empty()).then(|| field.to_string()), ..Default::default() },
            message: format!(
                "expected a request object {{\"prompt\": …}} or a prompt string, found {}",
                json_type(&other)
            ),
        }),
    }
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

pub fn check_token_budget(b: usize) -> Result<()> {
    if b < 3 {
        return Err(Error::InvalidInput(format!(
            "token budget {b} leaves no room for content (it counts the start and end markers)"
        )));
    }
    Ok(())
}

/// Liked/disliked attribute text and strengths for embedding steering (ViPer, SPEC §7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Steering {
    pub liked: Vec<String>,
    pub disliked: Vec<String>,
    pub liked_strength: f32,
    pub disliked_strength: f32,
}

/// The output of a personalizer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Personalization {
    /// Which personalizer produced it.
    pub method: String,
    /// The rewritten prompt.
    pub prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negative_prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steering: Option<Steering>,
    pub evidence: Evidence,
}

impl Personalization {
    /// Parses a personalization back from the JSON it serialises to.
    pub fn from_json(json: &str) -> Result<Personalization> {
        crate::json::parse(json, &crate::Location::default(), "personalization")
    }

    /// A few human-readable lines: the prompt, then (for methods that retrieve) the token
    /// use, n_eff and K, the top posts, the categories that got elements, and any notes.
    pub fn explain(&self) -> String {
        use std::fmt::Write;
        let ev = &self.evidence;
        let mut out = format!("[{}] {}", self.method, self.prompt);
        if self.method == "identity" {
            return out; // nothing retrieved, nothing composed
        }
        let mut facts = vec![format!("{}/{} tokens", ev.tokens, ev.content_budget)];
        if let (Some(n_eff), Some(k)) = (ev.n_eff, ev.k) {
            facts.push(format!("n_eff {n_eff:.2}, K {k}"));
        }
        if ev.dropped_by_budget > 0 {
            facts.push(format!("{} cut by budget", ev.dropped_by_budget));
        }
        if let Some(cut) = &ev.cut_piece {
            facts.push(format!("last piece shortened to \"{}\"", cut.kept));
        }
        if ev.duplicates_dropped > 0 {
            facts.push(format!("{} duplicates dropped", ev.duplicates_dropped));
        }
        let _ = write!(out, "\n    evidence: {}", facts.join("; "));
        for post in ev.posts.iter().take(3) {
            let w = post.weight.map(|w| format!(" w={w:.3}")).unwrap_or_default();
            let _ = write!(out, "\n    post #{:<2} cos={:.3}{w}  {}", post.index, post.score, post.caption);
        }
        let cats: Vec<String> =
            ev.categories.iter().filter(|c| c.allocated > 0).map(|c| format!("{}:{}", c.name, c.allocated)).collect();
        if !cats.is_empty() {
            let _ = write!(out, "\n    categories (priority order, allocated): {}", cats.join(" "));
        }
        for n in &ev.notes {
            let _ = write!(out, "\n    note: {n}");
        }
        out
    }
}

/// Why a prompt came out as it did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Retrieved posts, most relevant first.
    pub posts: Vec<EvidencePost>,
    /// Chosen elements in the order they were offered to the composer.
    pub elements: Vec<EvidenceElement>,
    /// Categories in priority order with their budgets and allocations (VPRAG).
    pub categories: Vec<EvidenceCategory>,
    /// Softmax entropy H of the post weights (VPRAG).
    pub entropy: Option<f64>,
    /// `exp(H)`, the effective number of relevant posts (VPRAG).
    pub n_eff: Option<f64>,
    /// Posts kept, `K` (VPRAG).
    pub k: Option<usize>,
    /// `Q = Σ_k Q^(k)` (VPRAG).
    pub total_budget: Option<usize>,
    /// Content tokens allowed: the request's token budget less the start/end markers.
    pub content_budget: usize,
    /// Content tokens of the final prompt.
    pub tokens: usize,
    /// Selected elements that were exact duplicates of better ones.
    pub duplicates_dropped: usize,
    /// Pieces (captions, elements, persona facts) left out whole by the token budget (the
    /// piece cut to fit, if any, is not counted: see `cut_piece`).
    pub dropped_by_budget: usize,
    /// The piece that did not fit whole and was cut at a word boundary to end the prompt
    /// (SPEC §3 step 6); absent when none was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_piece: Option<CutPiece>,
    /// Anything else a reader should know (e.g. the base prompt alone exceeds the budget).
    pub notes: Vec<String>,
    /// What a language-model composer (the ZIPP rewriter) did; absent for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<RewriteEvidence>,
}

/// How a language-model rewrite ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RewriteOutcome {
    /// The model's cleaned answer is the prompt.
    Rewritten,
    /// The answer lost subjects of the base prompt; the base prompt was put back in front.
    Repaired,
    /// The answer was unusable (see `fallback_reason`); the prompt is the fallback
    /// composition of the same retrieved pieces.
    Fallback,
    /// Rewriting was switched off for this call; the prompt is the fallback composition.
    Off,
}

/// What the rewriter sent, got and changed (SPEC §5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RewriteEvidence {
    /// The language model's id.
    pub model: String,
    /// "off", "light" or "full".
    pub strength: String,
    pub outcome: RewriteOutcome,
    /// The conversation sent (empty when rewriting was off).
    pub messages: Vec<crate::lm::Message>,
    /// The model's answer as generated.
    pub raw: String,
    /// What cleaning removed (chatter, labels, quotes, markdown, think blocks) and what the
    /// budget cut.
    pub stripped: Vec<String>,
    /// Subjects of the base prompt the cleaned answer did not contain.
    pub missing_subjects: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    /// Tokens the model read and wrote.
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Wall time of the generation.
    pub generation_ms: f64,
}

/// A retrieved post.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidencePost {
    /// Position in the persona's memory.
    pub index: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub caption: String,
    /// Cosine between the query and the caption.
    pub score: f32,
    /// Softmax weight (VPRAG); absent for plain top-k retrieval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    /// Whether the caption itself was placed in the prompt (BRAG / Combined); also true when
    /// only its first words were (then `Evidence::cut_piece` names it).
    pub caption_used: bool,
}

/// A chosen element.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceElement {
    pub category: String,
    pub text: String,
    /// Position in the persona's memory of the post it came from.
    pub post: usize,
    /// Cosine between the query and the element.
    pub score: f32,
    /// Whether it made it into the prompt (false: left out by the token budget); also true
    /// when only its first words were (then `Evidence::cut_piece` names it).
    pub used: bool,
}

/// A piece the composer cut at a word boundary to fit the token budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CutPiece {
    /// Which piece: `{"caption": i}` (of `posts[i]`), `{"element": i}` (`elements[i]`) or
    /// `"fact"` (the persona's own text).
    pub source: Source,
    /// The words placed in the prompt.
    pub kept: String,
    /// Tokens of `kept`, counted alone.
    pub tokens: usize,
}

/// One category's budget and allocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceCategory {
    pub name: String,
    /// `q · unit(embed(description))`.
    pub priority: f32,
    /// `Q^(k)`.
    pub budget: usize,
    /// Elements available in the selected posts.
    pub available: usize,
    /// Elements allocated (`Σ_i q_i^(k)`).
    pub allocated: usize,
}

/// Turns a persona and a request into a personalization. Implementations are shared
/// across threads.
pub trait Personalizer: Send + Sync {
    /// A short stable name (`"vprag"`, `"brag"` …).
    fn name(&self) -> &str;

    /// Personalizes one request.
    fn personalize(&self, persona: &IndexedPersona, request: &Request) -> Result<Personalization>;

    /// Personalizes many requests for one persona; embedding personalizers embed all
    /// queries in one batch.
    fn personalize_batch(&self, persona: &IndexedPersona, requests: &[Request]) -> Result<Vec<Personalization>> {
        requests.iter().map(|r| self.personalize(persona, r)).collect()
    }

    /// Whether it reads the persona's memory (captions, elements). The VPTT paper scores
    /// novelty as 0 for methods that do not (Identity, PersonaOnly); the evaluation applies
    /// that convention only when asked.
    fn reads_memory(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod request_tests {
    #[test]
    fn tasks_parse_by_name() {
        use crate::personalize::Task;
        assert_eq!(Task::from_name("edit").unwrap(), Task::Edit);
        assert_eq!(Task::from_name("generate").unwrap(), Task::Generate);
        let e = Task::from_name("paint").unwrap_err();
        assert_eq!(e.kind(), "schema");
        assert_eq!(e.location().unwrap().field.as_deref(), Some("task"));
        assert!(e.to_string().contains("paint"), "{e}");
    }

    #[test]
    fn requests_parse_from_objects_or_prompt_strings_with_located_errors() {
        use crate::personalize::{Request, Task};
        assert_eq!(Request::from_json(r#""a red bike""#).unwrap(), Request::generate("a red bike"));
        let r = Request::from_json(r#"{"prompt":"a cat","task":"edit","seed":7,"token_budget":60}"#).unwrap();
        assert_eq!((r.task, r.seed, r.token_budget), (Task::Edit, Some(7), Some(60)));
        let rs = Request::list_from_json(r#"["a", {"prompt":"b","task":"edit"}]"#).unwrap();
        assert_eq!(rs, vec![Request::generate("a"), Request::edit("b")]);

        let e = Request::list_from_json(r#"["a", {"promt":"b"}]"#).unwrap_err();
        assert_eq!(e.kind(), "schema");
        assert_eq!(e.location().unwrap().field.as_deref(), Some("[1].promt"), "{e}");
        let e = Request::list_from_json(r#"["a", {"prompt":"b","task":"paint"}]"#).unwrap_err();
        assert_eq!(e.location().unwrap().field.as_deref(), Some("[1].task"), "{e}");
        let e = Request::list_from_json(r#"["a", 3]"#).unwrap_err();
        assert!(e.to_string().contains("found a number"), "{e}");
        assert_eq!(Request::list_from_json(r#"{"prompt":"a"}"#).unwrap_err().kind(), "schema");
        assert_eq!(Request::from_json(r#"{"prompt":"a""#).unwrap_err().kind(), "parse");
        assert_eq!(Request::from_json("null").unwrap_err().kind(), "schema");
    }
}
