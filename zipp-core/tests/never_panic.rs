//! Arbitrary input at the boundary gives a value or an error, never a panic: persona JSON,
//! CLIP token counting, and composition under a budget with the real tokenizer.

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
    fn composition_is_a_prefix_within_budget(
        base in "[a-z]{1,8}( [a-z]{1,8}){0,5}",
        pieces in prop::collection::vec("[a-zA-Z!?.,' -]{0,20}", 0..12),
        budget in 1usize..60,
    ) {
        let c = clip();
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let out = compose::concat(&base, &refs, c, budget);
        // Exactly the base plus the first `used` non-empty pieces, in order.
        let mut want = base.trim().to_string();
        for p in &pieces[..out.used] {
            if !p.trim().is_empty() {
                want.push_str(", ");
                want.push_str(p.trim());
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
