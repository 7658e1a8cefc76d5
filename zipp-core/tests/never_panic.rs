//! Arbitrary input at the boundary gives a value or an error, never a panic: persona JSON,
//! CLIP token counting, and composition under a budget with the real tokenizer (which must
//! also be maximal: a composer that appends nothing fails it).

use std::sync::OnceLock;

use proptest::prelude::*;
use zipp_core::personalize::compose;
use zipp_core::tokenize::{ClipTokenizer, TokenCounter};
use zipp_core::Persona;

fn clip() -> &'static ClipTokenizer {
    static C: OnceLock<ClipTokenizer> = OnceLock::new();
    C.get_or_init(|| ClipTokenizer::load_default().unwrap_or_else(|e| panic!("{e}")))
}

/// JSON-ish text: fragments of the real schema glued with arbitrary characters.
fn jsonish() -> impl Strategy<Value = String> {
    let frag = prop_oneof![
        Just("{".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just(",".to_string()),
        Just(":".to_string()),
        Just("\"id\"".to_string()),
        Just("\"memory\"".to_string()),
        Just("\"caption\"".to_string()),
        Just("\"elements\"".to_string()),
        Just("\"schema_version\"".to_string()),
        Just("1".to_string()),
        Just("null".to_string()),
        "\"[a-z ]{0,6}\"",
        any::<String>(),
    ];
    prop::collection::vec(frag, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn persona_parsing_never_panics(text in jsonish()) {
        let _ = Persona::from_json_str(&text);
    }

    #[test]
    fn clip_counting_never_panics_and_agrees_with_encode(text in any::<String>()) {
        let c = clip();
        prop_assert_eq!(c.count(&text), c.encode(&text).len());
    }

    #[test]
    fn composition_is_a_maximal_prefix_within_budget(
        base in "[a-z]{1,8}( [a-z]{1,8}){0,5}",
        pieces in prop::collection::vec("[a-zA-Z!?.,' -]{0,40}", 0..12),
        budget in 1usize..60,
    ) {
        let c = clip();
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let out = compose::concat(&base, &refs, c, budget);
        // Exactly the base plus the first `used` non-empty pieces, in order, then the cut
        // piece's kept words.
        let mut want = base.trim().to_string();
        for p in &pieces[..out.used] {
            if !p.trim().is_empty() {
                want.push_str(", ");
                want.push_str(p.trim());
            }
        }
        let fits = |text: &str| c.count(text) <= budget;
        if let Some(cut) = &out.cut {
            let next = pieces[out.used].trim();
            prop_assert!(word_prefixes(next).contains(&cut.kept.as_str()), "{:?} is no word prefix of {:?}", cut.kept, next);
            prop_assert!(cut.tokens >= compose::MIN_CUT_TOKENS && cut.tokens == c.count(&cut.kept));
            // Maximal: the next longer word prefix (and the whole piece) would not fit.
            for longer in word_prefixes(next).into_iter().chain([next]).filter(|p| p.len() > cut.kept.len()) {
                prop_assert!(!fits(&format!("{want}, {longer}")), "{:?} would fit after {:?}", longer, want);
            }
            want.push_str(", ");
            want.push_str(&cut.kept);
        } else if out.used < pieces.len() {
            // Stopped at a non-empty piece: it does not fit whole, and no word prefix of it
            // with at least 3 tokens of its own fits.
            let next = pieces[out.used].trim();
            prop_assert!(!next.is_empty());
            prop_assert!(!fits(&format!("{want}, {next}")), "{:?} fits after {:?} but was left out", next, want);
            for p in word_prefixes(next) {
                prop_assert!(
                    !fits(&format!("{want}, {p}")) || c.count(p) < compose::MIN_CUT_TOKENS,
                    "prefix {:?} of {:?} fits after {:?} but was left out", p, next, want
                );
            }
        }
        prop_assert_eq!(&out.prompt, &want);
        prop_assert_eq!(out.tokens, c.count(&out.prompt));
        if c.count(&base) <= budget {
            prop_assert!(out.tokens <= budget);
        }
        prop_assert!(out.used <= pieces.len());
    }
}

/// The non-empty word prefixes of `piece` shorter than itself, trailing `,;:.!?-` trimmed
/// (the candidates of the word-boundary cut), by a linear scan.
fn word_prefixes(piece: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut prev_ws = false;
    for (i, ch) in piece.char_indices() {
        if ch.is_whitespace() && !prev_ws && i > 0 {
            let p = piece[..i].trim_end_matches(|c: char| c.is_whitespace() || ",;:.!?-".contains(c));
            if !p.is_empty() && !out.contains(&p) {
                out.push(p);
            }
        }
        prev_ws = ch.is_whitespace();
    }
    out
}
