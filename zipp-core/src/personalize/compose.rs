//! Prompt composition under a token budget (SPEC §3 step 6, the `Concat` composer).
//!
//! `p' = base, piece₁, piece₂, …` — the base prompt first and whole, then pieces in the
//! given priority order, comma-joined, while the text fits `budget` tokens of the target
//! encoder. Pieces are never cut mid-way: composition stops at the first piece that does
//! not fit, so the result is always a prefix of the priority list (the most relevant cues
//! survive). The base prompt is never cut, even when it alone exceeds the budget.

use crate::tokenize::TokenCounter;

/// The composed prompt and what went into it.
#[derive(Debug, Clone, PartialEq)]
pub struct Composed {
    pub prompt: String,
    /// How many pieces (a prefix of the input) were used.
    pub used: usize,
    /// Tokens of `prompt` (without start/end markers).
    pub tokens: usize,
}

/// Joins `base` and a prefix of `pieces` with ", " within `budget` content tokens.
pub fn concat(base: &str, pieces: &[&str], counter: &dyn TokenCounter, budget: usize) -> Composed {
    let base = base.trim();
    let mut prompt = base.to_string();
    let mut tokens = counter.count(&prompt);
    let mut used = 0;
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
            break;
        }
        prompt = candidate;
        tokens = exact;
        used += 1;
    }
    Composed { prompt, used, tokens }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One token per word and one per comma: predictable by hand.
    struct Words;
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
        assert_eq!((c.used, c.tokens), (2, 7));
    }

    #[test]
    fn stops_at_the_first_piece_that_does_not_fit() {
        let c = concat("a dog", &["very long misty harbour", "red"], &Words, 6);
        assert_eq!(c.prompt, "a dog");
        assert_eq!(c.used, 0);
    }

    #[test]
    fn never_cuts_the_base_prompt() {
        let c = concat("one two three four five", &["x"], &Words, 3);
        assert_eq!(c.prompt, "one two three four five");
        assert_eq!((c.used, c.tokens), (0, 5));
    }

    #[test]
    fn budget_larger_than_everything_uses_all_pieces() {
        let c = concat(" a dog ", &["red", "blue"], &Words, 1000);
        assert_eq!(c.prompt, "a dog, red, blue");
        assert_eq!(c.used, 2);
    }
}
