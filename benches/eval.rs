//! The VPTT score's cost: per prompt with the persona state cached (the evaluation's inner
//! loop), the persona state itself (basis + k-means from caption vectors), hard novelty
//! alone, and one prompt end to end (embedding included) for scale.

use criterion::{criterion_group, criterion_main, Criterion};
use zipp_core::embed::Embedder;
use zipp_core::IndexedPersona;
use zipp_eval::{PersonaScorer, VpttOptions};

fn vptt(c: &mut Criterion) {
    let m = zipp_benches::minilm();
    let persona = IndexedPersona::new(zipp_benches::persona("ren-tokyo-night-streets"));
    assert_eq!(persona.persona().memory.len(), 30);
    let index = persona.index(&*m).unwrap();
    let options = VpttOptions::default();
    let scorer = PersonaScorer::new(&persona, &*m, &options).unwrap();
    let prompt = "a portrait of a person in a park at dusk, neon reflections on wet asphalt, \
                  rain-soaked alley, cinematic teal and magenta, shot on a 35mm lens";
    let v = m.embed_one(prompt).unwrap();
    let persona_vec = m.embed_one(&persona.persona().persona_text()).unwrap();
    let captions: Vec<&str> = persona.persona().memory.iter().map(|p| p.caption.as_str()).collect();

    let mut g = c.benchmark_group("vptt");
    g.bench_function("score_cached_persona_30_captions", |b| b.iter(|| scorer.score_vector(&v, prompt).unwrap()));
    g.bench_function("novelty_30_captions", |b| b.iter(|| scorer.novelty(prompt)));
    g.bench_function("persona_state_30_captions", |b| {
        b.iter(|| PersonaScorer::from_parts("ren", &persona_vec, &index.captions, &captions, &options).unwrap())
    });
    g.bench_function("score_one_prompt_with_embedding", |b| b.iter(|| scorer.score(&*m, &[prompt]).unwrap()));
    g.finish();
}

criterion_group!(benches, vptt);
criterion_main!(benches);
