//! A scripted language model: the "fake" that every test of an LLM method uses where
//! behaviour does not depend on a real model, and a way to try the methods without one.

use std::sync::Mutex;

use zipp_core::error::{Error, Result};
use zipp_core::lm::{validate_messages, Cancel, Finish, Generation, LanguageModel, Message, Sampling};

/// Answers each call with the next reply of its script, keeping the [`LanguageModel`]
/// contract: sampling and messages are validated first; the reply streams in pieces of one
/// "token" each (a word with the whitespace before it); it ends at the first stop sequence,
/// after `max_tokens` tokens, or at cancellation (checked before every token). It records
/// every conversation it was sent ([`ScriptedModel::calls`]). Sampling parameters other than
/// `max_tokens` and `stop` do not change a scripted reply.
#[derive(Debug)]
pub struct ScriptedModel {
    id: String,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    replies: Vec<String>,
    next: usize,
    calls: Vec<Vec<Message>>,
}

impl ScriptedModel {
    /// A model that answers the i-th call with `replies[i]`; a call after the last reply is
    /// an [`Error::InvalidInput`] ("script exhausted").
    pub fn new<S: Into<String>>(replies: impl IntoIterator<Item = S>) -> ScriptedModel {
        let replies: Vec<String> = replies.into_iter().map(Into::into).collect();
        ScriptedModel {
            id: format!("scripted:{}", replies.len()),
            state: Mutex::new(State { replies, next: 0, calls: Vec::new() }),
        }
    }

    /// Every conversation sent so far, in call order.
    pub fn calls(&self) -> Vec<Vec<Message>> {
        self.lock().calls.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic inside `generate` cannot leave the state half-updated: recover it.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl LanguageModel for ScriptedModel {
    fn id(&self) -> String {
        self.id.clone()
    }

    fn generate(
        &self,
        messages: &[Message],
        sampling: &Sampling,
        cancel: &Cancel,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Generation> {
        sampling.validate()?;
        validate_messages(messages)?;
        let reply = {
            let mut state = self.lock();
            state.calls.push(messages.to_vec());
            let Some(reply) = state.replies.get(state.next).cloned() else {
                return Err(Error::InvalidInput(format!(
                    "scripted model: script exhausted after {} replies",
                    state.replies.len()
                )));
            };
            state.next += 1;
            reply
        };
        // The reply up to the first stop sequence.
        let (body, stopped) = match sampling.stop.iter().filter_map(|s| reply.find(s.as_str())).min() {
            Some(at) => (&reply[..at], true),
            None => (reply.as_str(), false),
        };
        let mut text = String::new();
        let mut tokens = 0;
        let mut finish = if stopped { Finish::StopSequence } else { Finish::EndOfTurn };
        for piece in pieces(body) {
            if cancel.is_cancelled() {
                finish = Finish::Cancelled;
                break;
            }
            if tokens == sampling.max_tokens {
                finish = Finish::MaxTokens;
                break;
            }
            on_text(piece);
            text.push_str(piece);
            tokens += 1;
        }
        let prompt_tokens = messages.iter().map(|m| pieces(&m.content).count()).sum();
        Ok(Generation { text, prompt_tokens, completion_tokens: tokens, finish })
    }
}

/// `text` split before each run of whitespace that follows a non-space: "a  b c" → "a",
/// "  b", " c". The pieces concatenate to `text`.
fn pieces(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let lead = rest.len() - rest.trim_start().len();
        let end = rest[lead..].find(char::is_whitespace).map_or(rest.len(), |i| lead + i);
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use zipp_core::error::ErrorKind;

    fn run(m: &ScriptedModel, sampling: &Sampling, cancel: &Cancel) -> (Generation, Vec<String>) {
        let mut streamed = Vec::new();
        let g = m.generate(&[Message::user("hi")], sampling, cancel, &mut |t| streamed.push(t.to_string())).unwrap();
        (g, streamed)
    }

    #[test]
    fn pieces_concatenate_to_the_text() {
        for text in ["", "a", "a  b\tc\n", "  lead", "über café ☕ x"] {
            assert_eq!(pieces(text).collect::<String>(), text);
        }
        assert_eq!(pieces("a  b c").collect::<Vec<_>>(), ["a", "  b", " c"]);
    }

    #[test]
    fn replies_in_order_streamed_and_recorded() {
        let m = ScriptedModel::new(["one two three", "four"]);
        let (g, streamed) = run(&m, &Sampling::default(), &Cancel::new());
        assert_eq!(g.text, "one two three");
        assert_eq!(streamed, ["one", " two", " three"]);
        assert_eq!((g.completion_tokens, g.prompt_tokens, g.finish), (3, 1, Finish::EndOfTurn));
        assert_eq!(run(&m, &Sampling::default(), &Cancel::new()).0.text, "four");
        let e = m.generate(&[Message::user("hi")], &Sampling::default(), &Cancel::new(), &mut |_| {}).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("exhausted"), "{e}");
        assert_eq!(m.calls().len(), 3);
        assert_eq!(m.calls()[0], vec![Message::user("hi")]);
    }

    #[test]
    fn stop_sequences_max_tokens_and_cancel() {
        let m = ScriptedModel::new(["a b\nc d", "a b c d", "a b"]);
        let stop = Sampling { stop: vec!["\n".into(), "zzz".into()], ..Sampling::default() };
        let (g, _) = run(&m, &stop, &Cancel::new());
        assert_eq!((g.text.as_str(), g.finish), ("a b", Finish::StopSequence));
        let (g, _) = run(&m, &Sampling::greedy(2), &Cancel::new());
        assert_eq!((g.text.as_str(), g.finish, g.completion_tokens), ("a b", Finish::MaxTokens, 2));
        let cancel = Cancel::new();
        cancel.cancel();
        let (g, streamed) = run(&m, &Sampling::default(), &cancel);
        assert_eq!((g.text.as_str(), g.finish), ("", Finish::Cancelled));
        assert!(streamed.is_empty());
    }

    #[test]
    fn bad_input_is_rejected_before_the_script_advances() {
        let m = ScriptedModel::new(["ok"]);
        let bad = Sampling { temperature: -1.0, ..Sampling::default() };
        assert_eq!(
            m.generate(&[Message::user("x")], &bad, &Cancel::new(), &mut |_| {}).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            m.generate(&[], &Sampling::default(), &Cancel::new(), &mut |_| {}).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert_eq!(run(&m, &Sampling::default(), &Cancel::new()).0.text, "ok");
    }
}
