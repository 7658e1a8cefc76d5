//! The language-model boundary (SPEC §5–7): chat messages in, text out.
//!
//! The ZIPP rewriter, the persona verbalizer and ViPer's preference extraction talk to a
//! [`LanguageModel`]; the backends (a local quantized GGUF model, any OpenAI-compatible
//! server) and the methods built on them live in `zipp-lm`, so this crate depends on none of
//! them. Everything here is plain data plus one small `Send + Sync` trait.
//!
//! Contract of every backend:
//! - [`Sampling::validate`] passes before any work starts (a bad value is
//!   [`Error::InvalidInput`] naming the field);
//! - the same messages, sampling and seed give the same text;
//! - `on_text` receives the generated text in order, piece by piece, as it is generated
//!   (possibly on another thread: backends compute in zipp's pool, hence `Send`), and the
//!   pieces concatenate to [`Generation::text`];
//! - generation stops at the end-of-turn token, at the first stop sequence (which is not
//!   part of the text), after `max_tokens` tokens, or when [`Cancel`] is set (checked at least
//!   once per token): [`Generation::finish`] says which, and a cancelled generation returns
//!   the text produced so far.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Who says a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Message {
        Message { role: Role::System, content: content.into() }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Message {
        Message { role: Role::User, content: content.into() }
    }

    /// An assistant message (a prior answer, or a k-shot example's answer).
    pub fn assistant(content: impl Into<String>) -> Message {
        Message { role: Role::Assistant, content: content.into() }
    }
}

/// How tokens are drawn. The defaults are greedy decoding of at most 256 tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sampling {
    /// 0 = greedy (the most likely token every step); otherwise logits are divided by it.
    pub temperature: f32,
    /// Keep only the k most likely tokens (after temperature); `None` = all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<usize>,
    /// Keep the smallest set of most likely tokens whose probability reaches p; `None` = all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Divides the positive logits (multiplies the negative ones) of tokens already in the
    /// context; 1 = off.
    pub repeat_penalty: f32,
    /// Seeds the sampler: the same seed and inputs give the same output.
    pub seed: u64,
    /// Tokens to generate at most.
    pub max_tokens: usize,
    /// Generation ends before the first of these strings (not included in the text).
    pub stop: Vec<String>,
}

impl Default for Sampling {
    fn default() -> Sampling {
        Sampling {
            temperature: 0.0,
            top_k: None,
            top_p: None,
            repeat_penalty: 1.0,
            seed: 0,
            max_tokens: 256,
            stop: Vec::new(),
        }
    }
}

/// The most tokens one call may ask for: far above any context this library runs, low enough
/// that a typo (a byte count, a negative number through C) is caught.
pub const MAX_TOKENS_LIMIT: usize = 1 << 20;

impl Sampling {
    /// Greedy decoding of at most `max_tokens` tokens.
    pub fn greedy(max_tokens: usize) -> Sampling {
        Sampling { max_tokens, ..Sampling::default() }
    }

    /// Parses sampling parameters from JSON (unknown fields are an error) and validates them.
    pub fn from_json(json: &str) -> Result<Sampling> {
        let s: Sampling = crate::json::from_str(json, "sampling parameters")?;
        s.validate()?;
        Ok(s)
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, why: String| Err(Error::InvalidInput(format!("sampling.{field}: {why}")));
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return bad("temperature", format!("must be a finite number ≥ 0, got {}", self.temperature));
        }
        if self.top_k == Some(0) {
            return bad("top_k", "must be ≥ 1 (omit it to keep every token)".into());
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return bad("top_p", format!("must be in (0, 1], got {p}"));
            }
        }
        if !self.repeat_penalty.is_finite() || self.repeat_penalty <= 0.0 {
            return bad("repeat_penalty", format!("must be a finite number > 0, got {}", self.repeat_penalty));
        }
        if self.max_tokens == 0 || self.max_tokens > MAX_TOKENS_LIMIT {
            return bad("max_tokens", format!("must be in 1..={MAX_TOKENS_LIMIT}, got {}", self.max_tokens));
        }
        if let Some(i) = self.stop.iter().position(String::is_empty) {
            return bad(&format!("stop[{i}]"), "an empty stop sequence would stop before the first token".into());
        }
        Ok(())
    }
}

/// A cooperative cancellation flag shared between the caller and a running generation.
/// Clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A flag that is not set.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Asks every generation holding this flag (or a clone) to stop after its current token.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// The model ended its turn.
    EndOfTurn,
    /// A stop sequence appeared (it is not part of the text).
    StopSequence,
    /// `max_tokens` tokens were generated.
    MaxTokens,
    /// The caller cancelled; the text is what was produced until then.
    Cancelled,
}

/// The result of one generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// The generated text (without the stop sequence).
    pub text: String,
    /// Tokens of the rendered conversation the model read (0 when a backend cannot say).
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
    pub finish: Finish,
}

/// A chat language model. Implementations are shared between threads; a call that needs
/// exclusive state (a KV cache) takes it inside.
pub trait LanguageModel: Send + Sync {
    /// Identifies the model and everything that changes its output (weights fingerprint,
    /// quantization, template), so cached results are never reused across models.
    fn id(&self) -> String;

    /// Generates the assistant's next message after `messages`, streaming the text to
    /// `on_text` (see the module documentation for the contract).
    fn generate(
        &self,
        messages: &[Message],
        sampling: &Sampling,
        cancel: &Cancel,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Generation>;
}

/// Checks what every backend must reject before it starts: no messages, or a message with an
/// empty or NUL-carrying content.
pub fn validate_messages(messages: &[Message]) -> Result<()> {
    if messages.is_empty() {
        return Err(Error::InvalidInput("messages: at least one message is needed".into()));
    }
    for (i, m) in messages.iter().enumerate() {
        if m.content.trim().is_empty() {
            return Err(Error::InvalidInput(format!("messages[{i}].content is empty")));
        }
        if m.content.contains('\0') {
            return Err(Error::InvalidInput(format!("messages[{i}].content contains a NUL character")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn invalid(s: Sampling) -> String {
        let e = s.validate().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        e.to_string()
    }

    #[test]
    fn defaults_are_greedy_and_valid() {
        let s = Sampling::default();
        assert_eq!((s.temperature, s.max_tokens, s.repeat_penalty), (0.0, 256, 1.0));
        s.validate().unwrap();
        assert_eq!(Sampling::greedy(7).max_tokens, 7);
    }

    #[test]
    fn each_bad_field_is_named() {
        assert!(invalid(Sampling { temperature: f32::NAN, ..Sampling::default() }).contains("sampling.temperature"));
        assert!(invalid(Sampling { temperature: -0.1, ..Sampling::default() }).contains("sampling.temperature"));
        assert!(invalid(Sampling { top_k: Some(0), ..Sampling::default() }).contains("sampling.top_k"));
        assert!(invalid(Sampling { top_p: Some(0.0), ..Sampling::default() }).contains("sampling.top_p"));
        assert!(invalid(Sampling { top_p: Some(1.5), ..Sampling::default() }).contains("sampling.top_p"));
        assert!(invalid(Sampling { top_p: Some(f32::NAN), ..Sampling::default() }).contains("sampling.top_p"));
        assert!(invalid(Sampling { repeat_penalty: 0.0, ..Sampling::default() }).contains("sampling.repeat_penalty"));
        assert!(invalid(Sampling { max_tokens: 0, ..Sampling::default() }).contains("sampling.max_tokens"));
        assert!(invalid(Sampling { max_tokens: MAX_TOKENS_LIMIT + 1, ..Sampling::default() }).contains("max_tokens"));
        assert!(invalid(Sampling { stop: vec!["\n".into(), String::new()], ..Sampling::default() })
            .contains("sampling.stop[1]"));
    }

    #[test]
    fn json_is_strict_and_validated() {
        let s = Sampling::from_json(r#"{"temperature": 0.7, "top_p": 0.9, "seed": 42, "stop": ["\n"]}"#).unwrap();
        assert_eq!((s.temperature, s.top_p, s.seed, s.max_tokens), (0.7, Some(0.9), 42, 256));
        assert_eq!(Sampling::from_json(r#"{"temprature": 0.7}"#).unwrap_err().kind(), ErrorKind::Schema);
        assert_eq!(Sampling::from_json(r#"{"max_tokens": 0}"#).unwrap_err().kind(), ErrorKind::InvalidInput);
        let back: Sampling = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn messages_are_checked() {
        assert_eq!(validate_messages(&[]).unwrap_err().kind(), ErrorKind::InvalidInput);
        let e = validate_messages(&[Message::system("be brief"), Message::user("  ")]).unwrap_err();
        assert!(e.to_string().contains("messages[1]"), "{e}");
        assert!(validate_messages(&[Message::user("a\0b")]).unwrap_err().to_string().contains("NUL"));
        validate_messages(&[Message::user("hello")]).unwrap();
        let m: Message = serde_json::from_str(r#"{"role": "assistant", "content": "hi"}"#).unwrap();
        assert_eq!(m, Message::assistant("hi"));
        assert!(serde_json::from_str::<Message>(r#"{"role": "tool", "content": "hi"}"#).is_err());
    }

    #[test]
    fn cancel_is_shared_by_clones() {
        let a = Cancel::new();
        let b = a.clone();
        assert!(!b.is_cancelled());
        a.cancel();
        assert!(b.is_cancelled());
    }
}
