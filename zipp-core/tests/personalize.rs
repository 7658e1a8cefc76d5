//! End-to-end personalization on the real MiniLM and the real CLIP BPE vocabulary, over
//! the example personas in `examples/data/personas.jsonl`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use zipp_core::embed::{Embedder, Embeddings, MiniLm};
use zipp_core::models::ModelSource;
use zipp_core::persona::read_jsonl;
use zipp_core::personalize::{compose, Brag, Combined, Identity, PersonaOnly, Personalizer, Request, Source, Vprag};
use zipp_core::tokenize::{ClipTokenizer, TokenCounter};
use zipp_core::{Error, IndexedPersona, Persona};

/// MiniLM that counts how many texts it embedded (to prove the memory index is reused).
struct Counting {
    inner: MiniLm,
    texts: AtomicUsize,
}

impl Embedder for Counting {
    fn id(&self) -> &str {
        self.inner.id()
    }
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn embed(&self, texts: &[&str]) -> zipp_core::Result<Embeddings> {
        self.texts.fetch_add(texts.len(), Ordering::SeqCst);
        self.inner.embed(texts)
    }
}

fn embedder() -> Arc<Counting> {
    static M: OnceLock<Arc<Counting>> = OnceLock::new();
    M.get_or_init(|| {
        let inner = MiniLm::load(&ModelSource::Default).unwrap_or_else(|e| panic!("{e}"));
        Arc::new(Counting { inner, texts: AtomicUsize::new(0) })
    })
    .clone()
}

fn clip() -> Arc<ClipTokenizer> {
    static C: OnceLock<Arc<ClipTokenizer>> = OnceLock::new();
    C.get_or_init(|| Arc::new(ClipTokenizer::load_default().unwrap_or_else(|e| panic!("{e}")))).clone()
}

fn personas() -> Vec<Persona> {
    read_jsonl(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/data/personas.jsonl")).unwrap()
}

fn persona(id: &str) -> IndexedPersona {
    IndexedPersona::new(personas().into_iter().find(|p| p.id == id).unwrap())
}

fn methods() -> Vec<Box<dyn Personalizer>> {
    let (m, c): (Arc<dyn Embedder>, Arc<dyn TokenCounter>) = (embedder(), clip());
    vec![
        Box::new(Identity::new()),
        Box::new(PersonaOnly::new(c.clone())),
        Box::new(Brag::new(m.clone(), c.clone(), 3).unwrap()),
        Box::new(Vprag::new(m.clone(), c.clone(), Default::default()).unwrap()),
        Box::new(Combined::new(m, c, 3, Default::default()).unwrap()),
    ]
}

#[test]
fn example_personas_load() {
    let all = personas();
    assert_eq!(all.len(), 5);
    assert!(all.iter().all(|p| (10..=30).contains(&p.memory.len())));
}

#[test]
fn every_method_keeps_the_base_prompt_and_fits_clip() {
    let clip = clip();
    let prompts = ["a city street at night", "a portrait of a person in a park", "Redesign this garden."];
    for p in personas() {
        let ip = IndexedPersona::new(p);
        for m in methods() {
            for prompt in prompts {
                let out = m.personalize(&ip, &Request::generate(prompt)).unwrap();
                assert!(out.prompt.starts_with(prompt), "{}: {}", m.name(), out.prompt);
                let tokens = clip.count(&out.prompt);
                assert!(tokens <= 75, "{}: {tokens} tokens: {}", m.name(), out.prompt);
                assert_eq!(out.method, m.name());
                if m.name() != "identity" {
                    assert_eq!(out.evidence.tokens, tokens);
                    assert!(out.prompt.len() > prompt.len(), "{} added nothing for {}", m.name(), ip.persona().id);
                }
            }
        }
    }
}

#[test]
fn vprag_evidence_is_consistent_and_grounded() {
    let ip = persona("ren-tokyo-night-streets");
    let vprag = Vprag::new(embedder(), clip(), Default::default()).unwrap();
    let out = vprag.personalize(&ip, &Request::generate("a city street at night")).unwrap();
    let ev = &out.evidence;
    let (n_eff, k) = (ev.n_eff.unwrap(), ev.k.unwrap());
    let q_total = ev.total_budget.unwrap();
    assert_eq!(k, (n_eff.floor() as usize).clamp(1, (2 * q_total).min(30)));
    assert_eq!(ev.posts.len(), k);
    // Posts by weight, descending; weights from a softmax sum to at most 1.
    let w: Vec<f64> = ev.posts.iter().map(|p| p.weight.unwrap()).collect();
    assert!(w.windows(2).all(|x| x[0] >= x[1]));
    assert!(w.iter().sum::<f64>() <= 1.0 + 1e-9);
    // Categories in priority order, allocations within budget and availability.
    assert!(ev.categories.windows(2).all(|c| c[0].priority >= c[1].priority));
    for c in &ev.categories {
        assert_eq!(c.allocated, c.budget.min(c.available), "{}", c.name);
    }
    // Every element is a real element of the post it names, and used ones are in the prompt.
    let persona = ip.persona();
    for (i, e) in ev.elements.iter().enumerate() {
        assert!(persona.memory[e.post].elements[&e.category].contains(&e.text));
        assert!(ev.posts.iter().any(|p| p.index == e.post));
        let cut = ev.cut_piece.as_ref().is_some_and(|c| c.source == Source::Element(i));
        assert_eq!(e.used, out.prompt.contains(&e.text) || cut, "{}", e.text);
    }
    assert!(ev.elements.iter().any(|e| e.used));
    // Relevance: the top post of a night-street query is about the night.
    let top = &ev.posts[0].caption.to_lowercase();
    assert!(["night", "neon", "rain", "midnight", "lantern"].iter().any(|w| top.contains(w)), "{top}");
}

#[test]
fn memory_is_embedded_once_and_repeated_queries_cost_one_embedding() {
    // Its own embedder: other tests run in parallel and would move a shared counter.
    let inner = MiniLm::load(&ModelSource::Default).unwrap_or_else(|e| panic!("{e}"));
    let m = Arc::new(Counting { inner, texts: AtomicUsize::new(0) });
    let ip = persona("mateo-oaxaca-flatlays");
    let vprag = Vprag::new(m.clone(), clip(), Default::default()).unwrap();
    let request = Request::generate("a cozy kitchen on a rainy morning");
    let first = vprag.personalize(&ip, &request).unwrap();
    let index = ip.index(&*m).unwrap();
    let p = ip.persona();
    let distinct: std::collections::HashSet<&String> =
        p.memory.iter().flat_map(|post| post.elements.values().flatten()).collect();
    // First call: the query, then captions + category descriptions + distinct elements.
    let indexed = p.memory.len() + index.categories.len() + distinct.len();
    assert_eq!(m.texts.load(Ordering::SeqCst), 1 + indexed);
    let again = vprag.personalize(&ip, &request).unwrap();
    assert_eq!(m.texts.load(Ordering::SeqCst), 1 + indexed + 1, "a repeated query embeds only itself");
    assert_eq!(first, again, "deterministic");
    assert!(Arc::ptr_eq(&index, &ip.index(&*m).unwrap()), "index rebuilt");
}

#[test]
fn batch_equals_one_by_one() {
    let ip = persona("einar-lofoten-watercolour");
    let requests: Vec<Request> =
        ["a harbour at dawn", "a portrait of a person in a park"].iter().map(|p| Request::generate(*p)).collect();
    for m in methods() {
        let batch = m.personalize_batch(&ip, &requests).unwrap();
        for (b, r) in batch.iter().zip(&requests) {
            let one = m.personalize(&ip, r).unwrap();
            assert_eq!(b.prompt, one.prompt, "{}", m.name());
        }
    }
}

#[test]
fn concurrent_use_of_shared_personalizer_and_persona() {
    let ip = Arc::new(persona("sam-squamish-climber"));
    // Four threads miss the cache together: the memory is still embedded once.
    let m = embedder();
    let indexes: Vec<_> = (0..4)
        .map(|_| {
            let (ip, m) = (ip.clone(), m.clone());
            std::thread::spawn(move || ip.index(&*m).unwrap())
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert!(indexes.iter().all(|ix| Arc::ptr_eq(ix, &indexes[0])));
    let vprag: Arc<dyn Personalizer> = Arc::new(Vprag::new(embedder(), clip(), Default::default()).unwrap());
    let want = vprag.personalize(&ip, &Request::generate("a preferred outdoor spot")).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (ip, vprag) = (ip.clone(), vprag.clone());
            std::thread::spawn(move || vprag.personalize(&ip, &Request::generate("a preferred outdoor spot")).unwrap())
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), want);
    }
}

#[test]
fn bad_requests_are_rejected_not_panicked() {
    let ip = persona("adaeze-lagos-designer");
    for m in methods() {
        for bad in ["", "   ", "a\0b"] {
            assert!(matches!(m.personalize(&ip, &Request::generate(bad)), Err(Error::InvalidInput(_))), "{}", m.name());
        }
        let huge = "word ".repeat(10_000);
        assert!(matches!(m.personalize(&ip, &Request::generate(huge)), Err(Error::InvalidInput(_))));
        let tiny = Request { token_budget: Some(2), ..Request::generate("a cat") };
        assert!(matches!(m.personalize(&ip, &tiny), Err(Error::InvalidInput(_))));
    }
}

#[test]
fn long_base_prompt_is_kept_whole() {
    let ip = persona("adaeze-lagos-designer");
    let long = "a very detailed description of a market stall ".repeat(12);
    for m in methods().into_iter().skip(1) {
        let out = m.personalize(&ip, &Request::generate(long.trim())).unwrap();
        assert_eq!(out.prompt, long.trim(), "{}", m.name());
        assert!(out.evidence.notes.iter().any(|n| n.contains("over the budget")), "{}", m.name());
    }
}

#[test]
fn a_smaller_budget_cuts_pieces_not_the_prompt() {
    let ip = persona("ren-tokyo-night-streets");
    let vprag = Vprag::new(embedder(), clip(), Default::default()).unwrap();
    let full = vprag.personalize(&ip, &Request::generate("a city street at night")).unwrap();
    let short = vprag
        .personalize(&ip, &Request { token_budget: Some(20), ..Request::generate("a city street at night") })
        .unwrap();
    assert!(short.evidence.tokens <= 18);
    assert!(full.prompt.starts_with(&short.prompt), "budget cut is a prefix");
    assert!(short.evidence.dropped_by_budget > full.evidence.dropped_by_budget);
}

#[test]
fn personas_without_memory_or_summary_still_work() {
    let bare = IndexedPersona::new(Persona::new("bare"));
    for m in methods() {
        let out = m.personalize(&bare, &Request::generate("a lighthouse")).unwrap();
        assert_eq!(out.prompt, "a lighthouse", "{}", m.name());
    }
    let mut one = Persona::new("one");
    one.memory.push(zipp_core::Post::new("A red kayak on a glassy lake.").with("foreground", &["red kayak"]));
    let one = IndexedPersona::new(one);
    let vprag = Vprag::new(embedder(), clip(), Default::default()).unwrap();
    let out = vprag.personalize(&one, &Request::generate("a lake")).unwrap();
    assert_eq!(out.prompt, "a lake, red kayak");
    assert_eq!((out.evidence.k, out.evidence.n_eff), (Some(1), Some(1.0)));
}

#[test]
fn concat_cuts_a_long_caption_at_the_last_word_boundary_that_fits() {
    // Expected prompts and counts from an independent implementation (a port of open_clip's
    // tokenizer and the cut rule as a linear scan):
    //   python3 scripts/reference/concat_cut.py ~/.cache/zipp/models/clip-bpe/bpe_simple_vocab_16e6.txt.gz
    let base = "a city street at night";
    let caption = "Rain-slick alley in Omoide Yokocho, red paper lanterns reflected in puddles while a \
                   salaryman ducks under the smoky yakitori awnings";
    let clip = clip();
    assert_eq!(clip.count(caption), 31);
    let cases = [
        (8, "a city street at night", 5),
        // "Rain-slick" is 3 tokens alone (rain - slick): just enough to be cut in.
        (9, "a city street at night, Rain-slick", 9),
        (10, "a city street at night, Rain-slick alley", 10),
        (20, "a city street at night, Rain-slick alley in Omoide Yokocho, red paper lanterns reflected", 20),
        (
            30,
            "a city street at night, Rain-slick alley in Omoide Yokocho, red paper lanterns reflected in puddles \
             while a salaryman ducks under",
            30,
        ),
        (
            75,
            "a city street at night, Rain-slick alley in Omoide Yokocho, red paper lanterns reflected in puddles \
             while a salaryman ducks under the smoky yakitori awnings, neon signs",
            40,
        ),
    ];
    for (budget, want, tokens) in cases {
        let out = compose::concat(base, &[caption, "neon signs"], &*clip, budget);
        assert_eq!((out.prompt.as_str(), out.tokens), (want, tokens), "budget {budget}");
        assert_eq!(out.cut.is_some(), (9..75).contains(&budget), "budget {budget}");
    }
    // Budget 8 fits ", neon signs" (2 tokens alone): too few to cut in, and "rain" after it
    // is not tried (composition stops at the first piece that does not fit).
    let short = "neon signs glowing over wet asphalt";
    let out = compose::concat(base, &[short, "rain"], &*clip, 8);
    assert_eq!((out.prompt.as_str(), out.cut), ("a city street at night", None));
    let out = compose::concat(base, &[short, "rain"], &*clip, 9);
    assert_eq!(out.prompt, "a city street at night, neon signs glowing");
}

#[test]
fn brag_and_combined_no_longer_degenerate_to_identity_on_long_captions() {
    // Three ~30-token captions after the base overflow CLIP's 75: the one that does not fit
    // is cut, so every BRAG prompt carries its retrieved captions' first words at least.
    let (m, c): (Arc<dyn Embedder>, Arc<dyn TokenCounter>) = (embedder(), clip());
    let methods: [Box<dyn Personalizer>; 2] = [
        Box::new(Brag::new(m.clone(), c.clone(), 3).unwrap()),
        Box::new(Combined::new(m, c.clone(), 3, Default::default()).unwrap()),
    ];
    let mut cuts = 0;
    for p in personas() {
        let ip = IndexedPersona::new(p);
        for m in &methods {
            for prompt in ["a city street at night", "a portrait of a person in a park"] {
                let out = m.personalize(&ip, &Request::generate(prompt)).unwrap();
                let ev = &out.evidence;
                assert!(ev.posts[0].caption_used, "{}: {}", m.name(), out.prompt);
                assert_eq!(c.count(&out.prompt), ev.tokens);
                assert!(ev.tokens <= 75);
                let unused = ev.posts.iter().filter(|p| p.weight.is_none() && !p.caption_used).count()
                    + ev.elements.iter().filter(|e| !e.used).count();
                assert_eq!(ev.dropped_by_budget, unused, "{}: {}", m.name(), out.prompt);
                if let Some(cut) = &ev.cut_piece {
                    cuts += 1;
                    let Source::Caption(i) = cut.source else { panic!("{cut:?}") };
                    assert!(ev.posts[i].caption_used);
                    assert!(ev.posts[i].caption.starts_with(&cut.kept), "{cut:?}");
                    assert!(out.prompt.ends_with(&format!(", {}", cut.kept)), "{}", out.prompt);
                    assert!(cut.tokens >= compose::MIN_CUT_TOKENS && cut.tokens == c.count(&cut.kept));
                }
            }
        }
    }
    assert!(cuts >= 10, "only {cuts} of 20 prompts ended in a cut caption");
}
