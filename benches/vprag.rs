//! VPRAG select + compose on a 30-post indexed persona (query embedding precomputed), and
//! end-to-end personalize including the query embedding, for every method.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use zipp_core::embed::Embedder;
use zipp_core::personalize::{Brag, Combined, Identity, PersonaOnly, Personalizer, Request, Vprag};
use zipp_core::tokenize::{ClipTokenizer, TokenCounter};
use zipp_core::IndexedPersona;

fn vprag(c: &mut Criterion) {
    let m = zipp_benches::minilm();
    let clip: Arc<ClipTokenizer> = zipp_benches::clip();
    let persona = IndexedPersona::new(zipp_benches::persona("ren-tokyo-night-streets"));
    assert_eq!(persona.persona().memory.len(), 30);
    persona.index(&*m).unwrap();
    let request = Request::generate("a portrait of a person in a park at dusk");
    let q = m.embed_one(&request.prompt).unwrap();
    let vprag = Vprag::new(m.clone(), clip.clone(), Default::default()).unwrap();

    let mut g = c.benchmark_group("vprag");
    g.bench_function("select_compose_30_posts", |b| {
        b.iter(|| vprag.personalize_with_query(&persona, &request, &q).unwrap())
    });
    g.finish();

    let counter: Arc<dyn TokenCounter> = clip.clone();
    let methods: Vec<Box<dyn Personalizer>> = vec![
        Box::new(Identity::new()),
        Box::new(PersonaOnly::new(counter.clone())),
        Box::new(Brag::new(m.clone(), counter.clone(), 3).unwrap()),
        Box::new(vprag.clone()),
        Box::new(Combined::new(m.clone(), counter, 3, Default::default()).unwrap()),
    ];
    let mut g = c.benchmark_group("personalize_end_to_end");
    for method in &methods {
        g.bench_function(method.name(), |b| b.iter(|| method.personalize(&persona, &request).unwrap()));
    }
    g.finish();
}

criterion_group!(benches, vprag);
criterion_main!(benches);
