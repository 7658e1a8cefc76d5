//! Language models as JSON, and the one generation driver both bindings use.
//!
//! [`LmSpec`] names a backend: `"smollm2"` (the embedded default, shared through
//! [`Models`]), `{"gguf": {"path": "model.gguf", "kernel": "auto"}}` (any supported GGUF
//! file), `{"scripted": {"replies": ["…"]}}` (a deterministic fake for tests and demos),
//! `{"openai": {"base_url": …, "model": …}}` (any OpenAI-compatible server).
//!
//! [`Stream`] runs one generation on its own thread and hands its text to the caller's
//! thread piece by piece, so a binding can call back into its host language on the thread
//! that asked (Python with the GIL, C on the caller's thread), poll for interruption
//! (Ctrl-C, a C flag) between pieces, and cancel. [`generate`] is the blocking form.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use zipp_core::error::{Error, Result};
use zipp_core::lm::{Cancel, Generation, LanguageModel, Message, Sampling};

use crate::job::{Job, Polled};
use crate::models::{KernelName, Models};

pub use zipp_lm::extract::{Extraction, Extractor};
pub use zipp_lm::verbalize::{ActivityEvidence, Verbalization, Verbalizer};

/// A language model backend as JSON (module documentation).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum LmSpec {
    /// The embedded default, SmolLM2-135M-Instruct (loaded once per [`Models`]).
    #[default]
    Smollm2,
    /// A GGUF file (llama architecture, byte-level BPE vocabulary).
    Gguf(GgufSpec),
    /// Replies from a list, in order (see `zipp_lm::ScriptedModel`).
    Scripted(ScriptedSpec),
    /// Any OpenAI-compatible `/v1/chat/completions` server (llama.cpp, vLLM, Ollama…):
    /// `{"openai": {"base_url": "http://127.0.0.1:8080/v1", "model": "…",
    /// "api_key_env": "OPENAI_API_KEY", …}}` (see `zipp_lm::OpenAiOptions`).
    Openai(Box<zipp_lm::OpenAiOptions>),
}

/// `{"path": …, "kernel": "auto" | "portable" | "avx2"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GgufSpec {
    pub path: std::path::PathBuf,
    #[serde(default)]
    pub kernel: KernelName,
}

/// `{"replies": ["…", …]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptedSpec {
    pub replies: Vec<String>,
}

impl LmSpec {
    /// Parses a spec: `"smollm2"` or an object with one backend key.
    pub fn from_json(json: &str) -> Result<LmSpec> {
        let spec: LmSpec = zipp_core::json::from_str(json, "language model spec")?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks what can be checked without loading anything.
    pub fn validate(&self) -> Result<()> {
        match self {
            LmSpec::Smollm2 => Ok(()),
            LmSpec::Gguf(g) if g.path.as_os_str().is_empty() => {
                Err(Error::InvalidInput("the GGUF spec needs a non-empty `path`".into()))
            }
            LmSpec::Gguf(_) => Ok(()),
            LmSpec::Scripted(s) if s.replies.is_empty() => {
                Err(Error::InvalidInput("the scripted model needs at least one reply".into()))
            }
            LmSpec::Scripted(_) => Ok(()),
            LmSpec::Openai(o) => o.validate(),
        }
    }

    /// The model this spec names; the default one comes from (and is shared through)
    /// `models`.
    pub fn build(&self, models: &Models) -> Result<Arc<dyn LanguageModel>> {
        self.validate()?;
        Ok(match self {
            LmSpec::Smollm2 => models.language_model()?,
            LmSpec::Gguf(g) => Arc::new(zipp_lm::GgufModel::load_with(&g.path, g.kernel.into())?),
            LmSpec::Scripted(s) => Arc::new(zipp_lm::ScriptedModel::new(s.replies.clone())),
            LmSpec::Openai(o) => Arc::new(zipp_lm::OpenAiModel::new((**o).clone())?),
        })
    }
}

/// `{"model": <LmSpec>, "options": {…}}` of the methods that run on a language model
/// (both fields optional: the embedded default model, the method's default options).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnModel<O> {
    #[serde(default)]
    pub model: LmSpec,
    #[serde(default)]
    pub options: O,
}

/// `{"path": "phrases.txt"}` (optional): the vocabulary extractor's phrase list, one
/// `category<TAB>phrase` per line as in zipp-lm's built-in list; absent: the built-in one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VocabularySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<std::path::PathBuf>,
}

/// ViPer preference extraction as JSON (SPEC §7): `"vocabulary"` (phrase matching with
/// negation, no model; the default), `{"vocabulary": {"path": …}}`, or
/// `{"llm": {"model": <LmSpec>, "options": {"sampling": …, "attempts": 3,
/// "max_comment_chars": 6000}}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum ExtractorSpec {
    Vocabulary(VocabularySpec),
    Llm(OnModel<zipp_lm::extract::LlmExtractOptions>),
}

impl Default for ExtractorSpec {
    fn default() -> ExtractorSpec {
        ExtractorSpec::Vocabulary(VocabularySpec::default())
    }
}

/// The persona verbalizer as JSON (SPEC §6): `"template"` (deterministic, no model; the
/// default), `{"template": {"max_named": 5, "max_keywords": 6, "post_words": 8}}`, or
/// `{"llm": {"model": <LmSpec>, "options": {…}}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum VerbalizerSpec {
    Template(zipp_lm::verbalize::TemplateOptions),
    Llm(OnModel<zipp_lm::verbalize::LlmVerbalizeOptions>),
}

impl Default for VerbalizerSpec {
    fn default() -> VerbalizerSpec {
        VerbalizerSpec::Template(Default::default())
    }
}

/// Parses a spec where a bare name (`"template"`) means that variant with its defaults.
fn named_or_object<T: serde::de::DeserializeOwned>(json: &str, what: &str) -> Result<T> {
    let trimmed = json.trim();
    if trimmed.starts_with('"') {
        let name: String = zipp_core::json::from_str(trimmed, what)?;
        return zipp_core::json::from_str(&serde_json::json!({ name: {} }).to_string(), what);
    }
    zipp_core::json::from_str(json, what)
}

/// Deserializes a field where a bare name (`"template"`) means that variant with its
/// defaults, as [`named_or_object`] does for whole documents (`#[serde(deserialize_with)]`).
pub(crate) fn named_or_object_field<'de, D, T>(deserializer: D) -> std::result::Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::String(name) => serde_json::json!({ name: {} }),
        other => other,
    };
    serde_json::from_value(value).map_err(serde::de::Error::custom)
}

impl ExtractorSpec {
    /// Parses and validates a spec (module documentation for the forms).
    pub fn from_json(json: &str) -> Result<ExtractorSpec> {
        let spec: ExtractorSpec = named_or_object(json, "extractor spec")?;
        if let ExtractorSpec::Llm(m) = &spec {
            m.model.validate()?;
            m.options.validate()?;
        }
        Ok(spec)
    }

    /// The extractor (an LLM one loads its model; the default model through `models`).
    pub fn build(&self, models: &Models) -> Result<Arc<dyn zipp_lm::extract::Extractor>> {
        use zipp_lm::extract::{LlmExtractor, Vocabulary, VocabularyExtractor};
        Ok(match self {
            ExtractorSpec::Vocabulary(VocabularySpec { path: None }) => Arc::new(VocabularyExtractor::default()),
            ExtractorSpec::Vocabulary(VocabularySpec { path: Some(path) }) => {
                let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
                Arc::new(VocabularyExtractor::new(Arc::new(Vocabulary::parse(&text)?)))
            }
            ExtractorSpec::Llm(m) => Arc::new(LlmExtractor::new(m.model.build(models)?, m.options.clone())?),
        })
    }
}

impl VerbalizerSpec {
    /// Parses and validates a spec (module documentation for the forms).
    pub fn from_json(json: &str) -> Result<VerbalizerSpec> {
        let spec: VerbalizerSpec = named_or_object(json, "verbalizer spec")?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks what can be checked without loading a model (a spec inside another one, such
    /// as persona mining's, is checked through this).
    pub fn validate(&self) -> Result<()> {
        if let VerbalizerSpec::Llm(m) = self {
            m.model.validate()?;
            m.options.validate()?;
        }
        Ok(())
    }

    /// The verbalizer (an LLM one loads its model; the default model through `models`).
    pub fn build(&self, models: &Models) -> Result<Arc<dyn zipp_lm::verbalize::Verbalizer>> {
        use zipp_lm::verbalize::{LlmVerbalizer, TemplateVerbalizer};
        Ok(match self {
            VerbalizerSpec::Template(o) => Arc::new(TemplateVerbalizer::new(o.clone())?),
            VerbalizerSpec::Llm(m) => Arc::new(LlmVerbalizer::new(m.model.build(models)?, m.options.clone())?),
        })
    }
}

/// Comments from JSON: `["I love the teal", …]`.
pub fn comments_from_json(json: &str) -> Result<Vec<String>> {
    zipp_core::json::from_str(json, "comments")
}

/// Chat messages from JSON: `[{"role": "system" | "user" | "assistant", "content": "…"}]`.
pub fn messages_from_json(json: &str) -> Result<Vec<Message>> {
    let messages: Vec<Message> = zipp_core::json::from_str(json, "messages")?;
    zipp_core::lm::validate_messages(&messages)?;
    Ok(messages)
}

/// Sampling from JSON (`None`: the defaults, greedy), validated.
pub fn sampling_from_json(json: Option<&str>) -> Result<Sampling> {
    let sampling: Sampling = crate::shared::options_or_default(json, "sampling")?;
    sampling.validate()?;
    Ok(sampling)
}

/// What [`Stream::next`] found.
#[derive(Debug)]
pub enum Step {
    /// The next piece of text.
    Text(String),
    /// Nothing yet within the wait: poll for interruption and call again.
    Pending,
    /// The generation ended (its result, or its error); every piece was delivered before.
    Done(Result<Generation>),
}

/// One generation running on its own thread (module documentation). Dropping it cancels the
/// generation and waits for the thread.
#[derive(Debug)]
pub struct Stream(Job<String, Generation>);

impl Stream {
    /// Starts generating. Messages and sampling are validated before the thread starts.
    pub fn start(model: Arc<dyn LanguageModel>, messages: Vec<Message>, sampling: Sampling) -> Result<Stream> {
        zipp_core::lm::validate_messages(&messages)?;
        sampling.validate()?;
        Job::start("zipp-generate", move |cancel, emit| {
            model.generate(&messages, &sampling, cancel, &mut |piece| emit(piece.to_string()))
        })
        .map(Stream)
    }

    /// Waits up to `wait` for the next piece.
    pub fn next(&mut self, wait: Duration) -> Step {
        match self.0.next(wait) {
            Polled::Event(piece) => Step::Text(piece),
            Polled::Pending => Step::Pending,
            Polled::Done(r) => Step::Done(r),
        }
    }

    /// Asks the generation to stop; it ends with `Finish::Cancelled` at its next token.
    pub fn cancel(&self) {
        self.0.cancel();
    }

    /// The generation's cancellation flag (to cancel from another thread while this stream
    /// is borrowed).
    pub fn cancel_handle(&self) -> Cancel {
        self.0.cancel_handle()
    }
}

pub use crate::job::POLL;

/// Generates on a worker thread and calls `on_text(piece)` for each piece on *this* thread;
/// `on_text` returning `false`, or `interrupted()` returning `true` (polled every
/// [`POLL`] while waiting), cancels the generation, which then ends with
/// `Finish::Cancelled` and the text delivered so far. Errors of the callbacks are the
/// caller's to keep (they only return `false` here).
pub fn generate(
    model: Arc<dyn LanguageModel>,
    messages: Vec<Message>,
    sampling: Sampling,
    mut on_text: impl FnMut(&str) -> bool,
    interrupted: impl FnMut() -> bool,
) -> Result<Generation> {
    let Stream(job) = Stream::start(model, messages, sampling)?;
    crate::job::drive(job, |piece: String| on_text(&piece), interrupted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zipp_core::lm::Finish;

    fn scripted(replies: &[&str]) -> Arc<dyn LanguageModel> {
        LmSpec::Scripted(ScriptedSpec { replies: replies.iter().map(|s| s.to_string()).collect() })
            .build(&Models::in_dir("/nonexistent"))
            .unwrap()
    }

    #[test]
    fn specs_parse_strictly() {
        assert_eq!(LmSpec::from_json(r#""smollm2""#).unwrap(), LmSpec::Smollm2);
        let g = LmSpec::from_json(r#"{"gguf": {"path": "m.gguf", "kernel": "portable"}}"#).unwrap();
        assert_eq!(g, LmSpec::Gguf(GgufSpec { path: "m.gguf".into(), kernel: KernelName::Portable }));
        for bad in [
            r#""gpt5""#,
            r#"{"gguf": {"path": ""}}"#,
            r#"{"gguf": {"path": "m", "x": 1}}"#,
            r#"{"scripted": {"replies": []}}"#,
            "[1]",
            "{",
        ] {
            assert!(LmSpec::from_json(bad).is_err(), "{bad}");
        }
        let o =
            LmSpec::from_json(r#"{"openai": {"base_url": "http://127.0.0.1:9/v1", "model": "m", "max_retries": 0}}"#)
                .unwrap();
        let down = o.build(&Models::in_dir("/nonexistent")).unwrap();
        let e = down.generate(&[Message::user("hi")], &Sampling::default(), &Cancel::new(), &mut |_| {}).unwrap_err();
        assert_eq!(e.kind(), zipp_core::ErrorKind::Remote, "{e}");
        assert!(LmSpec::from_json(r#"{"openai": {"base_url": "https://api.example.com/v1", "model": "m"}}"#).is_err());
        let e = LmSpec::Gguf(GgufSpec { path: "/nonexistent/m.gguf".into(), kernel: KernelName::Auto })
            .build(&Models::in_dir("/nonexistent"))
            .err()
            .unwrap();
        assert_eq!(e.kind(), zipp_core::ErrorKind::ModelNotFound);
    }

    #[test]
    fn extractor_and_verbalizer_specs_parse_strictly_and_build() {
        let models = Models::in_dir("/nonexistent");
        assert_eq!(ExtractorSpec::from_json(r#""vocabulary""#).unwrap(), ExtractorSpec::default());
        let x = ExtractorSpec::from_json(r#""vocabulary""#).unwrap().build(&models).unwrap();
        let out = x.extract(&["I love the neon colours but I can't stand the lens flare"]).unwrap();
        assert_eq!(out.preferences.liked, vec!["neon colours".to_string()]);
        let llm = ExtractorSpec::from_json(
            r#"{"llm": {"model": {"scripted": {"replies": ["{\"liked\": [\"teal\"], \"disliked\": []}"]}}, "options": {"attempts": 2}}}"#,
        )
        .unwrap();
        let out = llm.build(&models).unwrap().extract(&["the teal is lovely"]).unwrap();
        assert_eq!(out.preferences.liked, vec!["teal".to_string()]);
        for bad in [r#""vocab""#, r#"{"llm": {"options": {"attempts": 0}}}"#, r#"{"vocabulary": {"x": 1}}"#, "3"] {
            assert!(ExtractorSpec::from_json(bad).is_err(), "{bad}");
        }
        let missing = ExtractorSpec::from_json(r#"{"vocabulary": {"path": "/nonexistent/v.txt"}}"#).unwrap();
        assert_eq!(missing.build(&models).err().unwrap().kind(), zipp_core::ErrorKind::Io);
        assert_eq!(VerbalizerSpec::from_json(r#""template""#).unwrap(), VerbalizerSpec::default());
        assert!(VerbalizerSpec::from_json(r#"{"template": {"max_named": 2}}"#).unwrap().build(&models).is_ok());
        assert!(VerbalizerSpec::from_json(r#"{"llm": {"model": "gpt9"}}"#).is_err());
        assert!(VerbalizerSpec::from_json(r#""poem""#).is_err());
    }

    #[test]
    fn messages_and_sampling_come_from_strict_json() {
        let m = messages_from_json(r#"[{"role": "user", "content": "hi"}]"#).unwrap();
        assert_eq!(m, vec![Message::user("hi")]);
        assert!(messages_from_json(r#"[{"role": "robot", "content": "hi"}]"#).is_err());
        assert!(messages_from_json("[]").is_err());
        assert_eq!(sampling_from_json(None).unwrap(), Sampling::default());
        assert_eq!(sampling_from_json(Some(r#"{"seed": 3}"#)).unwrap().seed, 3);
        assert!(sampling_from_json(Some(r#"{"temperature": -1}"#)).is_err());
        assert!(sampling_from_json(Some(r#"{"temprature": 1}"#)).is_err());
    }

    #[test]
    fn pieces_reach_the_caller_thread_in_order() {
        let caller = std::thread::current().id();
        let mut seen = String::new();
        let g = generate(
            scripted(&["one two three"]),
            vec![Message::user("count")],
            Sampling::default(),
            |p| {
                assert_eq!(std::thread::current().id(), caller);
                seen.push_str(p);
                true
            },
            || false,
        )
        .unwrap();
        assert_eq!((g.text.as_str(), g.finish), ("one two three", Finish::EndOfTurn));
        assert_eq!(seen, g.text);
    }

    /// Emits one piece, then waits (up to 10 s) for the cancellation: deterministic, unlike
    /// a scripted model that may finish before the caller reacts.
    struct WaitsForCancel;

    impl LanguageModel for WaitsForCancel {
        fn id(&self) -> String {
            "waits".into()
        }
        fn generate(
            &self,
            _: &[Message],
            _: &Sampling,
            cancel: &Cancel,
            on_text: &mut (dyn FnMut(&str) + Send),
        ) -> Result<Generation> {
            on_text("first");
            let t = std::time::Instant::now();
            while !cancel.is_cancelled() && t.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(1));
            }
            let finish = if cancel.is_cancelled() { Finish::Cancelled } else { Finish::EndOfTurn };
            Ok(Generation { text: "first".into(), prompt_tokens: 0, completion_tokens: 1, finish })
        }
    }

    #[test]
    fn the_callback_or_an_interruption_cancels() {
        let run = |stop_in_callback: bool| {
            let t = std::time::Instant::now();
            let g = generate(
                Arc::new(WaitsForCancel),
                vec![Message::user("x")],
                Sampling::default(),
                |_| !stop_in_callback,
                || true,
            )
            .unwrap();
            assert_eq!((g.text.as_str(), g.finish), ("first", Finish::Cancelled));
            assert!(t.elapsed() < Duration::from_secs(5));
        };
        run(true);
        run(false);
        // A stream dropped half-way cancels and joins its thread.
        let mut s = Stream::start(scripted(&["a b c"]), vec![Message::user("x")], Sampling::default()).unwrap();
        assert!(matches!(s.next(Duration::from_secs(5)), Step::Text(_)));
        drop(s);
        let bad = Stream::start(scripted(&["a"]), vec![], Sampling::default()).unwrap_err();
        assert_eq!(bad.kind(), zipp_core::ErrorKind::InvalidInput);
    }
}
