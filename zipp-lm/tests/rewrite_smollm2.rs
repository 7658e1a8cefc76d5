//! The ZIPP rewriter with the real SmolLM2-135M-Instruct and the real CLIP BPE counter:
//! whatever the small model answers, the result keeps the base prompt's subjects, fits the
//! CLIP budget, and says in its evidence what happened.

use std::sync::Arc;

use zipp_core::personalize::{Composer, Context, Piece, Request, Retrieved, RewriteOutcome, Source};
use zipp_core::tokenize::{ClipTokenizer, TokenCounter};
use zipp_core::{IndexedPersona, Persona};
use zipp_lm::{subjects, GgufModel, RewriteOptions, Rewriter};

#[test]
fn rewrites_keep_subjects_and_fit_the_budget() {
    let model = Arc::new(GgufModel::load_default().expect("run scripts/provision-models.sh"));
    let clip: Arc<dyn TokenCounter> = Arc::new(ClipTokenizer::load_default().unwrap());
    // 48 tokens are enough for a prompt and keep the test short.
    let mut options = RewriteOptions::default();
    options.sampling.max_tokens = 48;
    let rewriter = Rewriter::new(model, clip.clone(), options).unwrap();
    let persona = IndexedPersona::new(
        Persona::from_json_str(
            r#"{"id": "mei", "summary": "I am a paper artist in Kyoto. I love pastel light, quiet harbours and film grain.",
                "interests": ["origami", "harbours"], "preferences": {"liked": ["pastel light"], "disliked": ["neon"]}}"#,
        )
        .unwrap(),
    );
    let mut outcomes = Vec::new();
    for base in ["paper clouds, brown origami birds", "a reading corner with a lamp", "a red bicycle in the rain"] {
        let request = Request { seed: Some(1), ..Request::generate(base) };
        let retrieved = Retrieved {
            pieces: vec![Piece::new("soft pastel morning light over a harbour", Source::Fact)],
            ..Retrieved::default()
        };
        let out = rewriter
            .compose(&Context { method: "zipp", persona: &persona, request: &request, token_budget: 77 }, retrieved)
            .unwrap();
        let ev = out.evidence.rewrite.as_ref().unwrap();
        println!(
            "{base:?} -> {:?}\n  {:?} raw {:?} missing {:?} stripped {:?} reason {:?} {:.0} ms",
            out.prompt, ev.outcome, ev.raw, ev.missing_subjects, ev.stripped, ev.fallback_reason, ev.generation_ms
        );
        assert!(subjects::missing(base, &out.prompt).is_empty(), "{:?}", out.prompt);
        assert!(clip.count(&out.prompt) <= 75);
        assert_eq!(ev.messages.len(), 2);
        assert!(ev.completion_tokens > 0 || ev.outcome == RewriteOutcome::Fallback);
        outcomes.push(ev.outcome);
    }
    println!("outcomes: {outcomes:?}");
}
