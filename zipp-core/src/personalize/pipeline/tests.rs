//! Stages compose: chained retrievers share one embedding per batch, any composer follows
//! any retriever, and the typed methods are exactly their pipelines. A hashing embedder and a
//! word-counting tokenizer stand in for the models (the real ones: tests/personalize.rs).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::*;
use crate::embed::Embedder;
use crate::personalize::compose::tests::Words;
use crate::personalize::compose::Concat;
use crate::personalize::stages::{Composer, Context, Retrieved, Source};
use crate::personalize::{
    Brag, BragCaptions, Combined, CutPiece, Identity, PersonaFacts, PersonaOnly, Vprag, VpragElements,
};
use crate::rng::HashingEmbedder;
use crate::tokenize::TokenCounter;

/// Counts `embed` calls and texts; `id` decides which embedders count as the same.
struct Counting {
    id: &'static str,
    calls: AtomicUsize,
    texts: AtomicUsize,
}

impl Counting {
    fn new(id: &'static str) -> Arc<Counting> {
        Arc::new(Counting { id, calls: AtomicUsize::new(0), texts: AtomicUsize::new(0) })
    }
    fn reset(&self) {
        self.calls.store(0, Ordering::SeqCst);
        self.texts.store(0, Ordering::SeqCst);
    }
    fn counts(&self) -> (usize, usize) {
        (self.calls.load(Ordering::SeqCst), self.texts.load(Ordering::SeqCst))
    }
}

impl Embedder for Counting {
    fn id(&self) -> &str {
        self.id
    }
    fn dim(&self) -> usize {
        16
    }
    fn embed(&self, texts: &[&str]) -> Result<crate::embed::Embeddings> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.texts.fetch_add(texts.len(), Ordering::SeqCst);
        HashingEmbedder(16).embed(texts)
    }
}

fn personas() -> Vec<IndexedPersona> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/data/personas.jsonl");
    crate::persona::read_jsonl(path).unwrap().into_iter().map(IndexedPersona::new).collect()
}

fn requests() -> Vec<Request> {
    ["a city street at night", "a harbour at dawn", "Redesign this garden."].map(Request::generate).to_vec()
}

fn arc<R: Retriever + 'static>(r: R) -> Arc<dyn Retriever> {
    Arc::new(r)
}

#[test]
fn chained_retrievers_embed_each_batch_once() {
    let ip = &personas()[2];
    let m = Counting::new("hashing");
    ip.index(&*m).unwrap(); // the memory, embedded once and cached
    let combined = Combined::new(m.clone(), Arc::new(Words), 3, Default::default()).unwrap();
    m.reset();
    combined.personalize_batch(ip, &requests()).unwrap();
    assert_eq!(m.counts(), (1, 3), "one call for the batch's three prompts, not one per retriever");

    // Two embedder objects with one id embed alike: still one call.
    let twin = Counting::new("hashing");
    let retrievers = vec![
        arc(BragCaptions::new(m.clone(), 3).unwrap()),
        arc(VpragElements::new(twin.clone(), Default::default()).unwrap()),
    ];
    let p = Pipeline::new("two", retrievers, Arc::new(Concat::new(Arc::new(Words))), 77).unwrap();
    m.reset();
    p.personalize_batch(ip, &requests()).unwrap();
    assert_eq!((m.counts(), twin.counts()), ((1, 3), (0, 0)));

    // Different embedders: each embeds the batch once (and indexes the memory once).
    let other = Counting::new("other");
    let retrievers = vec![
        arc(BragCaptions::new(m.clone(), 3).unwrap()),
        arc(VpragElements::new(other.clone(), Default::default()).unwrap()),
    ];
    let p = Pipeline::new("two", retrievers, Arc::new(Concat::new(Arc::new(Words))), 77).unwrap();
    m.reset();
    p.personalize_batch(ip, &requests()).unwrap();
    assert_eq!(m.counts(), (1, 3));
    assert_eq!(other.counts().0, 2, "the batch's prompts, then the memory index");
    other.reset();
    p.personalize_batch(ip, &requests()).unwrap();
    assert_eq!(other.counts(), (1, 3));
}

#[test]
fn pipelines_built_from_stages_are_the_typed_methods() {
    let m: Arc<dyn Embedder> = Arc::new(HashingEmbedder(16));
    let words: Arc<dyn TokenCounter> = Arc::new(Words);
    let concat = || -> Arc<dyn Composer> { Arc::new(Concat::new(words.clone())) };
    let brag = || arc(BragCaptions::new(m.clone(), 3).unwrap());
    let vprag = || arc(VpragElements::new(m.clone(), Default::default()).unwrap());
    let typed: Vec<Box<dyn Personalizer>> = vec![
        Box::new(PersonaOnly::new(words.clone())),
        Box::new(Brag::new(m.clone(), words.clone(), 3).unwrap()),
        Box::new(Vprag::new(m.clone(), words.clone(), Default::default()).unwrap()),
        Box::new(
            Combined::new(m.clone(), words.clone(), 3, Default::default()).unwrap().with_token_budget(40).unwrap(),
        ),
    ];
    let built = [
        Pipeline::new("persona_only", vec![arc(PersonaFacts)], concat(), 77).unwrap(),
        Pipeline::new("brag", vec![brag()], concat(), 77).unwrap(),
        Pipeline::new("vprag", vec![vprag()], concat(), 77).unwrap(),
        Pipeline::new("combined", vec![brag(), vprag()], concat(), 40).unwrap(),
    ];
    for ip in &personas() {
        for (t, b) in typed.iter().zip(&built) {
            assert_eq!(t.name(), b.name());
            assert_eq!(t.reads_memory(), b.reads_memory());
            assert_eq!(t.personalize_batch(ip, &requests()).unwrap(), b.personalize_batch(ip, &requests()).unwrap());
        }
    }
    let reads: Vec<bool> = typed.iter().map(|t| t.reads_memory()).collect();
    assert_eq!(reads, [false, true, true, true]);
    assert!(!Identity::new().reads_memory());
}

/// A composer unlike Concat: the base prompt, then every piece upper-cased after " | ",
/// with no budget.
struct Shout;
impl Composer for Shout {
    fn name(&self) -> &str {
        "shout"
    }
    fn compose(&self, cx: &Context<'_>, retrieved: Retrieved) -> Result<Personalization> {
        let mut prompt = cx.request.prompt.clone();
        for p in &retrieved.pieces {
            prompt.push_str(" | ");
            prompt.push_str(&p.text.to_uppercase());
        }
        Ok(Personalization {
            method: cx.method.to_string(),
            prompt,
            negative_prompt: None,
            steering: None,
            evidence: retrieved.evidence,
        })
    }
}

#[test]
fn a_custom_composer_follows_every_retriever() {
    let m: Arc<dyn Embedder> = Arc::new(HashingEmbedder(16));
    let brag = || arc(BragCaptions::new(m.clone(), 2).unwrap());
    let vprag = || arc(VpragElements::new(m.clone(), Default::default()).unwrap());
    let chains: Vec<(&str, Vec<Arc<dyn Retriever>>)> = vec![
        ("none", vec![]),
        ("persona", vec![arc(PersonaFacts)]),
        ("brag", vec![brag()]),
        ("vprag", vec![vprag()]),
        ("both", vec![brag(), vprag()]),
    ];
    let ip = &personas()[0];
    let persona = ip.persona();
    let request = Request::generate("a market at noon");
    for (name, retrievers) in chains {
        let p = Pipeline::new(name, retrievers, Arc::new(Shout), 77).unwrap();
        let out = p.personalize(ip, &request).unwrap();
        let ev = &out.evidence;
        assert_eq!(out.method, name);
        // What the evidence says was retrieved, in retrieval order, upper-cased.
        let captions = ev.posts.iter().filter(|p| p.weight.is_none()).map(|p| p.caption.trim_end_matches('.'));
        let elements = ev.elements.iter().map(|e| e.text.as_str());
        let mut want = String::from("a market at noon");
        let facts: Vec<String> = if name == "persona" {
            let first = persona.summary.split('.').next().unwrap().trim().to_string();
            assert!(!first.is_empty());
            vec![first]
        } else {
            vec![]
        };
        for piece in facts.iter().map(String::as_str).chain(captions).chain(elements) {
            want.push_str(" | ");
            want.push_str(&piece.to_uppercase());
        }
        match name {
            "none" => assert_eq!(out.prompt, "a market at noon"),
            "persona" => assert!(out.prompt.starts_with(&want), "{}", out.prompt),
            _ => assert_eq!(out.prompt, want),
        }
        if name == "both" {
            assert_eq!(ev.posts.iter().filter(|p| p.weight.is_none()).count(), 2);
            assert!(!ev.elements.is_empty() && ev.k.is_some());
        }
    }
}

#[test]
fn concat_marks_the_cut_piece_used_and_counts_only_whole_drops() {
    // Room for the base (2), the comma (1) and 5 tokens of the first caption, plus the markers.
    let m: Arc<dyn Embedder> = Arc::new(HashingEmbedder(16));
    let brag = Brag::new(m, Arc::new(Words), 3).unwrap().with_token_budget(2 + 1 + 5 + 2).unwrap();
    for ip in &personas() {
        let out = brag.personalize(ip, &Request::generate("a dog")).unwrap();
        let ev = &out.evidence;
        let cut = ev.cut_piece.as_ref().expect("the first caption is longer than 5 words");
        assert_eq!(cut.source, Source::Caption(0));
        // The most words whose count (a comma is a token) is at most 5, by a linear scan.
        let words: Vec<&str> = ev.posts[0].caption.split_whitespace().collect();
        let kept = (1..words.len())
            .rev()
            .map(|n| words[..n].join(" ").trim_end_matches([',', ';', ':', '.', '!', '?', '-']).to_string())
            .find(|k| Words.count(k) <= 5)
            .unwrap();
        assert_eq!((cut.kept.as_str(), cut.tokens), (kept.as_str(), Words.count(&kept)));
        assert_eq!(out.prompt, format!("a dog, {kept}"));
        let used: Vec<bool> = ev.posts.iter().map(|p| p.caption_used).collect();
        assert_eq!(used, [true, false, false]);
        assert_eq!(ev.dropped_by_budget, 2);
        assert!(out.explain().contains("shortened"), "{}", out.explain());
    }
}

#[test]
fn evidence_json_round_trips_with_and_without_a_cut_piece() {
    let ip = &personas()[1];
    let m: Arc<dyn Embedder> = Arc::new(HashingEmbedder(16));
    let combined = Combined::new(m, Arc::new(Words), 3, Default::default()).unwrap().with_token_budget(40).unwrap();
    let cut = combined.personalize(ip, &Request::generate("a harbour at dawn")).unwrap();
    // Two captions of about 20 words each overflow 38 tokens: the second one is cut.
    let Some(CutPiece { source: Source::Caption(1), .. }) = cut.evidence.cut_piece else { panic!("{cut:?}") };
    let json = serde_json::to_string(&cut).unwrap();
    assert!(json.contains(r#""cut_piece":{"source":{"caption":1},"kept":"#), "{json}");
    assert_eq!(Personalization::from_json(&json).unwrap(), cut);
    let whole = Combined::new(Arc::new(HashingEmbedder(16)), Arc::new(Words), 1, Default::default())
        .unwrap()
        .with_token_budget(500)
        .unwrap()
        .personalize(ip, &Request::generate("a harbour at dawn"))
        .unwrap();
    assert_eq!(whole.evidence.cut_piece, None);
    let json = serde_json::to_string(&whole).unwrap();
    assert!(!json.contains("cut_piece"), "older readers see the same JSON as before");
    assert_eq!(Personalization::from_json(&json).unwrap(), whole);
}
