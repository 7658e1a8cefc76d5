//! Structured answers: the verbalizer and ViPer extraction need JSON from a model that may
//! wrap it in chatter, code fences or `<think>` blocks, or get it wrong. [`generate_json`]
//! finds the first JSON value in the answer, parses it into the expected type, runs the
//! caller's check, and on failure asks again with the error fed back, a bounded number of
//! times. It never accepts malformed output: after the last attempt it fails with a typed
//! error that names what was wrong.

use serde::de::DeserializeOwned;
use serde::Serialize;
use zipp_core::error::{Error, Location, Result};
use zipp_core::lm::{Cancel, Finish, LanguageModel, Message, Sampling};

/// What [`generate_json`] returns: the value and every raw answer it took to get it.
#[derive(Debug, Clone, PartialEq)]
pub struct Structured<T> {
    pub value: T,
    /// The raw answers, one per attempt (the last one is the accepted one).
    pub answers: Vec<String>,
    /// Why each rejected answer was rejected.
    pub rejections: Vec<String>,
}

/// The conversation behind a structured answer, kept as evidence by the methods that ask for
/// one (ViPer extraction, the verbalizer): the model, what it was sent, every answer it gave
/// and why each rejected answer was rejected.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transcript {
    /// [`LanguageModel::id`] of the model asked.
    pub model: String,
    /// The conversation sent on the first attempt.
    pub messages: Vec<Message>,
    /// The raw answers, one per attempt (the last one is the accepted one).
    pub answers: Vec<String>,
    /// Why each rejected answer was rejected.
    pub rejections: Vec<String>,
}

impl Transcript {
    /// The transcript of `structured`, asked of `model` with `messages`.
    pub fn new<T>(model: &dyn LanguageModel, messages: Vec<Message>, structured: &Structured<T>) -> Transcript {
        Transcript {
            model: model.id(),
            messages,
            answers: structured.answers.clone(),
            rejections: structured.rejections.clone(),
        }
    }
}

/// The most attempts [`generate_json`] accepts: each is a full generation.
pub const MAX_ATTEMPTS: usize = 8;

/// Asks `model` for a JSON answer to `messages` until one parses as `T` and passes `check`,
/// at most `attempts` times (1..=[`MAX_ATTEMPTS`]). After a rejected answer the conversation
/// continues with that answer and a user message naming the error. Fails with
/// [`Error::Schema`] (field "model answer") when every attempt was rejected, with the last
/// reason; with [`Error::InvalidInput`] when the generation was cancelled; with the backend's
/// error when a generation failed.
pub fn generate_json<T: DeserializeOwned>(
    model: &dyn LanguageModel,
    messages: &[Message],
    sampling: &Sampling,
    cancel: &Cancel,
    attempts: usize,
    check: impl Fn(&T) -> std::result::Result<(), String>,
) -> Result<Structured<T>> {
    if attempts == 0 || attempts > MAX_ATTEMPTS {
        return Err(Error::InvalidInput(format!("attempts must be in 1..={MAX_ATTEMPTS}, got {attempts}")));
    }
    let mut conversation = messages.to_vec();
    let mut answers = Vec::new();
    let mut rejections = Vec::new();
    for attempt in 1..=attempts {
        let g = model.generate(&conversation, sampling, cancel, &mut |_| {})?;
        if g.finish == Finish::Cancelled {
            return Err(Error::InvalidInput("cancelled before a valid answer".into()));
        }
        answers.push(g.text.clone());
        let why = match parse::<T>(&g.text) {
            Ok(value) => match check(&value) {
                Ok(()) => return Ok(Structured { value, answers, rejections }),
                Err(why) => why,
            },
            Err(why) => why,
        };
        let why = if g.finish == Finish::MaxTokens { format!("{why} (the answer hit max_tokens)") } else { why };
        rejections.push(why.clone());
        if attempt < attempts {
            conversation.push(Message::assistant(if g.text.trim().is_empty() { "(empty)" } else { g.text.as_str() }));
            conversation.push(Message::user(format!(
                "That answer was not usable: {why}. Answer again with only the JSON, no other text."
            )));
        }
    }
    let last = rejections.last().cloned().unwrap_or_default();
    Err(Error::schema(
        Location::field("model answer"),
        format!("no valid JSON after {attempts} attempts; last: {last}"),
    ))
}

/// The first JSON object or array in `text` after `<think>` blocks are removed, parsed as
/// `T`; the error says what was wrong, in words a model can act on.
pub fn parse<T: DeserializeOwned>(text: &str) -> std::result::Result<T, String> {
    let cleaned = crate::clean::clean_think(text);
    let Some(json) = first_json(&cleaned) else {
        return Err("no JSON object or array found".into());
    };
    serde_json::from_str(json).map_err(|e| format!("the JSON does not have the expected shape: {e}"))
}

/// The first balanced `{…}` or `[…]` in `text` (brackets inside JSON strings ignored).
pub fn first_json(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let mut start = 0;
    while let Some(off) = text[start..].find(['{', '[']) {
        let open = start + off;
        let mut depth = 0usize;
        let mut in_string = false;
        let mut escaped = false;
        for (i, &b) in bytes.iter().enumerate().skip(open) {
            if in_string {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        let candidate = &text[open..=i];
                        if serde_json::from_str::<serde_json::Value>(candidate).is_ok() {
                            return Some(candidate);
                        }
                        break;
                    }
                }
                _ => {}
            }
        }
        start = open + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ScriptedModel;
    use serde::Deserialize;
    use zipp_core::error::ErrorKind;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Prefs {
        liked: Vec<String>,
        disliked: Vec<String>,
    }

    fn ask(m: &ScriptedModel, attempts: usize) -> Result<Structured<Prefs>> {
        generate_json(m, &[Message::user("extract")], &Sampling::default(), &Cancel::new(), attempts, |p: &Prefs| {
            if p.liked.iter().any(|l| p.disliked.contains(l)) {
                Err("an attribute is both liked and disliked".into())
            } else {
                Ok(())
            }
        })
    }

    #[test]
    fn json_is_found_in_chatter_fences_and_think_blocks() {
        assert_eq!(first_json("Sure! ```json\n{\"a\": [1, \"}\"]}\n``` done"), Some("{\"a\": [1, \"}\"]}"));
        assert_eq!(first_json("[1, 2] and {\"b\": 2}"), Some("[1, 2]"));
        assert_eq!(first_json("{not json} then {\"ok\": true}"), Some("{\"ok\": true}"));
        assert_eq!(first_json("{\"open\": "), None);
        assert_eq!(first_json("no json"), None);
        let p: Prefs = parse("<think>{\"liked\": [\"x\"]}</think>{\"liked\": [\"teal\"], \"disliked\": []}").unwrap();
        assert_eq!(p, Prefs { liked: vec!["teal".into()], disliked: vec![] });
    }

    #[test]
    fn a_bad_answer_is_retried_with_the_error_fed_back() {
        let m = ScriptedModel::new([
            "Here you go: {\"liked\": [\"neon\"]}",
            "{\"liked\": [\"neon\"], \"disliked\": [\"neon\"]}",
            "{\"liked\": [\"neon\"], \"disliked\": [\"sepia\"]}",
        ]);
        let s = ask(&m, 3).unwrap();
        assert_eq!(s.value, Prefs { liked: vec!["neon".into()], disliked: vec!["sepia".into()] });
        assert_eq!(s.answers.len(), 3);
        assert!(s.rejections[0].contains("missing field `disliked`"), "{:?}", s.rejections);
        assert_eq!(s.rejections[1], "an attribute is both liked and disliked");
        let calls = m.calls();
        assert_eq!(calls[1].len(), 3);
        assert_eq!(calls[1][1], Message::assistant("Here you go: {\"liked\": [\"neon\"]}"));
        assert!(calls[1][2].content.contains("missing field `disliked`"));
        assert_eq!(calls[2].len(), 5);
    }

    #[test]
    fn malformed_output_is_never_accepted() {
        let m = ScriptedModel::new(["I like neon.", "{\"liked\": \"neon\", \"disliked\": []}"]);
        let e = ask(&m, 2).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Schema);
        let msg = e.to_string();
        assert!(
            msg.contains("model answer") && msg.contains("after 2 attempts") && msg.contains("expected a sequence"),
            "{msg}"
        );
    }

    #[test]
    fn attempts_are_bounded_and_cancellation_stops() {
        let m = ScriptedModel::new(["{}"]);
        assert_eq!(ask(&m, 0).unwrap_err().kind(), ErrorKind::InvalidInput);
        assert_eq!(ask(&m, MAX_ATTEMPTS + 1).unwrap_err().kind(), ErrorKind::InvalidInput);
        assert!(m.calls().is_empty());
        let cancel = Cancel::new();
        cancel.cancel();
        let e = generate_json::<Prefs>(&m, &[Message::user("x")], &Sampling::default(), &cancel, 3, |_| Ok(()))
            .unwrap_err();
        assert!(e.to_string().contains("cancelled"), "{e}");
        assert_eq!(m.calls().len(), 1);
    }
}
