//! Prompt composition under a token budget (SPEC §3 step 6): the [`Concat`] composer and
//! its function [`concat`], and [`Verbatim`] (the prompt unchanged, for Identity).
//!
//! `p' = base, piece₁, piece₂, …` — the base prompt first and whole, then pieces in the
//! given priority order, comma-joined, while the text fits `budget` content tokens of the
//! target encoder. The base prompt is never cut, even when it alone exceeds the budget.
//!
//! The first piece that does not fit whole is **cut at a word boundary**, and composition
//! stops there (so the result is the base plus a prefix of the priority list, the last one
//! possibly shortened: the most relevant cues survive). Precisely, with `prompt` the text
//! composed so far:
//!
//! - the piece's *word prefixes* are its text up to the end of its 1st, 2nd, … word
//!   (words are separated by whitespace; the whole piece is not a prefix of itself), each
//!   with trailing `, ; : . ! ? -` and whitespace trimmed;
//! - a prefix *fits* when `count("{prompt}, {prefix}") ≤ budget`, counted on the whole
//!   composed text (BPE counts are not additive: `"!,"` can be one token);
//! - the longest fitting prefix is found by binary search over the word count (each count
//!   is a BPE tokenization). The search assumes a longer prefix never counts fewer tokens,
//!   which holds for CLIP (it tokenizes word by word); whatever it returns fits;
//! - that prefix is taken only if it counts at least [`MIN_CUT_TOKENS`] (3) tokens *alone*,
//!   `count(prefix) ≥ 3` — one or two words of a caption are noise, not a cue.
//!
//! (Dropping the piece whole made BRAG degenerate to Identity whenever one caption outgrew
//! the budget: measured on 74–82% of synthetic-bench prompts.)

use std::sync::Arc;

use super::stages::{Composer, Context, Retrieved, Source};
use super::{CutPiece, Evidence, Personalization};
use crate::error::Result;
use crate::tokenize::TokenCounter;

/// A piece that does not fit whole is cut only if the kept words count at least this many
/// tokens on their own.
pub const MIN_CUT_TOKENS: usize = 3;

/// The composed prompt and what went into it.
#[derive(Debug, Clone, PartialEq)]
pub struct Composed {
    pub prompt: String,
    /// How many pieces (a prefix of the input) were used whole. Empty pieces count as used.
    pub used: usize,
    /// The word prefix of piece `used` that ended the prompt, when that piece did not fit
    /// whole and was cut (see the module docs).
    pub cut: Option<Cut>,
    /// Tokens of `prompt` (without start/end markers).
    pub tokens: usize,
}

/// The kept part of a cut piece.
#[derive(Debug, Clone, PartialEq)]
pub struct Cut {
    /// The words kept (a prefix of the trimmed piece, trailing punctuation trimmed).
    pub kept: String,
    /// `count(kept)`, counted alone (≥ [`MIN_CUT_TOKENS`]).
    pub tokens: usize,
}

/// Joins `base` and a prefix of `pieces` with ", " within `budget` content tokens, cutting
/// the first piece that does not fit whole at a word boundary (module docs).
pub fn concat(base: &str, pieces: &[&str], counter: &dyn TokenCounter, budget: usize) -> Composed {
    let base = base.trim();
    let mut prompt = base.to_string();
    let mut tokens = counter.count(&prompt);
    let mut used = 0;
    let mut cut = None;
    for piece in pieces {
        let piece = piece.trim();
        if piece.is_empty() {
            used += 1;
            continue;
        }
        // Counted whole, not piece by piece: BPE counts are not additive where punctuation
        // runs merge across the ", " join ("!," can be one token).
        let candidate = format!("{prompt}, {piece}");
        let exact = counter.count(&candidate);
        if exact > budget {
            if let Some((kept, with_kept)) = cut_to_fit(&prompt, piece, counter, budget) {
                let own = counter.count(kept);
                if own >= MIN_CUT_TOKENS {
                    prompt = format!("{prompt}, {kept}");
                    tokens = with_kept;
                    cut = Some(Cut { kept: kept.to_string(), tokens: own });
                }
            }
            break;
        }
        prompt = candidate;
        tokens = exact;
        used += 1;
    }
    Composed { prompt, used, cut, tokens }
}

/// A word prefix of `piece` with trailing punctuation and whitespace trimmed.
fn trimmed_prefix(piece: &str, end: usize) -> &str {
    piece[..end].trim_end_matches(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | ':' | '.' | '!' | '?' | '-'))
}

/// The longest non-empty word prefix of `piece` (shorter than the whole) with
/// `count("{prompt}, {prefix}") ≤ budget`, and that count; by binary search.
fn cut_to_fit<'p>(prompt: &str, piece: &'p str, counter: &dyn TokenCounter, budget: usize) -> Option<(&'p str, usize)> {
    // Byte offsets where each word but the last ends.
    let mut ends: Vec<usize> = Vec::new();
    let mut in_word = false;
    for (i, c) in piece.char_indices() {
        if c.is_whitespace() {
            if in_word {
                ends.push(i);
            }
            in_word = false;
        } else {
            in_word = true;
        }
    }
    // Largest j in 0..ends.len() whose prefix fits; an empty (all-punctuation) prefix adds
    // nothing and so "fits" without a count.
    let fits = |j: usize| -> Option<usize> {
        let prefix = trimmed_prefix(piece, ends[j]);
        if prefix.is_empty() {
            return Some(0);
        }
        let n = counter.count(&format!("{prompt}, {prefix}"));
        (n <= budget).then_some(n)
    };
    let (mut lo, mut hi) = (0, ends.len()); // invariant: prefixes < lo fit, ≥ hi do not
    let mut best = None;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match fits(mid) {
            Some(n) => {
                best = Some((mid, n));
                lo = mid + 1;
            }
            None => hi = mid,
        }
    }
    let (j, n) = best?;
    let prefix = trimmed_prefix(piece, ends[j]);
    (!prefix.is_empty()).then_some((prefix, n))
}

/// The `Concat` composer (SPEC §3 step 6): [`concat`] with the target encoder's token
/// counter; marks in the evidence which pieces were used, and the one that was cut.
#[derive(Clone)]
pub struct Concat {
    counter: Arc<dyn TokenCounter>,
}

impl Concat {
    pub fn new(counter: Arc<dyn TokenCounter>) -> Concat {
        Concat { counter }
    }

    /// The token counter it composes against.
    pub fn counter(&self) -> &Arc<dyn TokenCounter> {
        &self.counter
    }
}

impl Composer for Concat {
    fn name(&self) -> &str {
        "concat"
    }

    fn compose(&self, cx: &Context<'_>, retrieved: Retrieved) -> Result<Personalization> {
        let Retrieved { pieces, mut evidence } = retrieved;
        let budget = cx.token_budget.saturating_sub(2);
        let texts: Vec<&str> = pieces.iter().map(|p| p.text.as_str()).collect();
        let composed = concat(&cx.request.prompt, &texts, self.counter.as_ref(), budget);
        let cut_at = composed.cut.as_ref().map(|_| composed.used);
        for (i, piece) in pieces.iter().enumerate() {
            mark_used(&mut evidence, piece.source, i < composed.used || cut_at == Some(i));
        }
        if let (Some(i), Some(cut)) = (cut_at, composed.cut) {
            evidence.cut_piece = Some(CutPiece { source: pieces[i].source, kept: cut.kept, tokens: cut.tokens });
        }
        evidence.dropped_by_budget = pieces.len() - composed.used - usize::from(cut_at.is_some());
        evidence.content_budget = budget;
        evidence.tokens = composed.tokens;
        if composed.tokens > budget {
            evidence.notes.push(format!(
                "the base prompt alone is {} tokens, over the budget of {budget}; it is kept whole and nothing was added",
                composed.tokens
            ));
        }
        Ok(Personalization {
            method: cx.method.to_string(),
            prompt: composed.prompt,
            negative_prompt: None,
            steering: None,
            evidence,
        })
    }
}

/// Marks the evidence item a piece came from as used or not (facts have none).
pub(crate) fn mark_used(evidence: &mut Evidence, source: Source, used: bool) {
    match source {
        Source::Caption(p) => {
            if let Some(post) = evidence.posts.get_mut(p) {
                post.caption_used = used;
            }
        }
        Source::Element(e) => {
            if let Some(el) = evidence.elements.get_mut(e) {
                el.used = used;
            }
        }
        Source::Fact => {}
    }
}

/// The prompt unchanged, with empty evidence, whatever was retrieved (the Identity
/// baseline's composer).
#[derive(Debug, Clone, Copy, Default)]
pub struct Verbatim;

impl Composer for Verbatim {
    fn name(&self) -> &str {
        "verbatim"
    }

    fn compose(&self, cx: &Context<'_>, _retrieved: Retrieved) -> Result<Personalization> {
        Ok(Personalization {
            method: cx.method.to_string(),
            prompt: cx.request.prompt.clone(),
            negative_prompt: None,
            steering: None,
            evidence: Evidence::default(),
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// One token per word and one per comma: predictable by hand (the pipeline tests use it
    /// too).
    pub(in crate::personalize) struct Words;
    impl TokenCounter for Words {
        fn count(&self, text: &str) -> usize {
            let words = text.split(|c: char| c.is_whitespace() || c == ',').filter(|w| !w.is_empty()).count();
            words + text.matches(',').count()
        }
        fn context_length(&self) -> usize {
            77
        }
    }

    #[test]
    fn keeps_a_prefix_of_pieces_within_budget() {
        // base = 2 tokens; ", golden light" = 3 tokens; ", red" = 2.
        let c = concat("a dog", &["golden light", "red", "blue sky"], &Words, 7);
        assert_eq!(c.prompt, "a dog, golden light, red");
        assert_eq!((c.used, c.tokens, c.cut.is_none()), (2, 7, true));
    }

    #[test]
    fn the_piece_that_does_not_fit_is_cut_at_the_last_word_boundary_that_fits() {
        // Whole: 2 (base) + 1 (comma) + 4 words = 7 > 6. "very long misty" gives 6: fits.
        let c = concat("a dog", &["very long misty harbour", "red"], &Words, 6);
        assert_eq!(c.prompt, "a dog, very long misty");
        assert_eq!((c.used, c.tokens), (0, 6));
        assert_eq!(c.cut, Some(Cut { kept: "very long misty".into(), tokens: 3 }));
        // After a whole piece: 2 + 3 (", golden light") + 1 + 3 words = 9.
        let c = concat("a dog", &["golden light", "very long misty harbour at dawn", "red"], &Words, 9);
        assert_eq!(c.prompt, "a dog, golden light, very long misty");
        assert_eq!((c.used, c.tokens), (1, 9));
        assert_eq!(c.cut.unwrap().kept, "very long misty");
    }

    #[test]
    fn a_piece_with_fewer_than_three_fitting_tokens_is_dropped_and_composition_stops() {
        // Budget 5 leaves room for ", very long": 2 tokens of the piece, under the minimum
        // of 3. "red" would fit (", red" = 2) but composition stops at the first misfit.
        let c = concat("a dog", &["very long misty harbour", "red"], &Words, 5);
        assert_eq!(c.prompt, "a dog");
        assert_eq!((c.used, c.tokens, c.cut), (0, 2, None));
    }

    #[test]
    fn a_cut_prefix_loses_its_trailing_punctuation() {
        // Words: warm light soft shadows; film grain. "a dog, warm light, soft shadows" is
        // 6 words + 2 commas = 8; one more word ("film") is 9.
        let c = concat("a dog", &["warm light, soft shadows; film grain"], &Words, 8);
        assert_eq!(c.prompt, "a dog, warm light, soft shadows");
        assert_eq!(c.cut.unwrap(), Cut { kept: "warm light, soft shadows".into(), tokens: 5 });
        // Budget 6: the longest fitting prefix is "warm light," → "warm light", 2 tokens.
        let c = concat("a dog", &["warm light, soft shadows; film grain"], &Words, 6);
        assert_eq!((c.prompt.as_str(), c.cut), ("a dog", None));
    }

    #[test]
    fn a_single_word_piece_is_never_cut() {
        let c = concat("a dog", &["supercalifragilistic"], &Words, 3);
        assert_eq!((c.prompt.as_str(), c.used, c.cut), ("a dog", 0, None));
    }

    #[test]
    fn the_cut_is_found_by_binary_search() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        struct Counting(AtomicUsize);
        impl TokenCounter for Counting {
            fn count(&self, text: &str) -> usize {
                self.0.fetch_add(1, Ordering::Relaxed);
                Words.count(text)
            }
            fn context_length(&self) -> usize {
                77
            }
        }
        let words: Vec<String> = (0..64).map(|i| format!("w{i}")).collect();
        let counter = Counting(AtomicUsize::new(0));
        // 2 (base) + 1 (comma) + 40 words.
        let c = concat("a dog", &[&words.join(" ")], &counter, 43);
        assert_eq!(c.prompt, format!("a dog, {}", words[..40].join(" ")));
        assert_eq!(c.tokens, 43);
        // base + whole piece + ⌈log2 63⌉ = 6 probes + the kept prefix alone; a linear scan
        // would take 40.
        assert!(counter.0.load(Ordering::Relaxed) <= 9, "{} counts", counter.0.load(Ordering::Relaxed));
    }

    #[test]
    fn never_cuts_the_base_prompt() {
        let c = concat("one two three four five", &["x y z w v u"], &Words, 3);
        assert_eq!(c.prompt, "one two three four five");
        assert_eq!((c.used, c.tokens, c.cut), (0, 5, None));
    }

    #[test]
    fn budget_larger_than_everything_uses_all_pieces() {
        let c = concat(" a dog ", &["red", "blue"], &Words, 1000);
        assert_eq!(c.prompt, "a dog, red, blue");
        assert_eq!((c.used, c.cut), (2, None));
    }
}
