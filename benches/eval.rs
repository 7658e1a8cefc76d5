//! The VPTT score's cost: per prompt with the persona state cached (the evaluation's inner
//! loop), the persona state itself (basis + k-means from caption vectors), hard novelty
//! alone, and one prompt end to end (embedding included) for scale. Then the aggregates a
//! distributed evaluation ships between processes: exact `Moments` against Welford's update
//! (the reference, measured in the same run), and an `EvalAggregate` of 5 methods × 4
//! queries through merge, JSON and report.

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

/// Welford's running mean and M₂: what `Moments` did before its sums became exact.
#[derive(Default)]
struct Welford {
    n: u64,
    mean: f64,
    m2: f64,
}

impl Welford {
    fn push(&mut self, x: f64) {
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }
}

fn aggregates(c: &mut Criterion) {
    use std::sync::Arc;
    use zipp_core::personalize::Identity;
    use zipp_core::{Persona, Post};
    use zipp_eval::stats::Moments;
    use zipp_eval::{EvalAggregate, EvalMethod, EvalOptions, Evaluation, Query};

    // Scores as the evaluation sees them: in [0, 1], full 53-bit mantissas.
    let mut state = 7u64;
    let xs: Vec<f64> =
        (0..1000).map(|_| (zipp_core::rng::splitmix64(&mut state) >> 11) as f64 / (1u64 << 53) as f64).collect();
    let mut g = c.benchmark_group("aggregate");
    g.bench_function("moments_push_1000_exact", |b| {
        b.iter(|| {
            let mut m = Moments::new();
            for &x in &xs {
                m.push(std::hint::black_box(x));
            }
            m
        })
    });
    g.bench_function("moments_push_1000_welford_reference", |b| {
        b.iter(|| {
            let mut m = Welford::default();
            for &x in &xs {
                m.push(std::hint::black_box(x));
            }
            (m.n, m.mean, m.m2)
        })
    });
    let moments = Moments::from_slice(&xs);
    g.bench_function("moments_mean_and_sd", |b| b.iter(|| (moments.mean(), moments.sd())));

    // Two shards of 100 personas each: 5 methods × 4 VPTT queries.
    let embedder = Arc::new(zipp_core::rng::HashingEmbedder(32));
    let shard = |from: usize| {
        let methods = (0..5)
            .map(|i| EvalMethod::new(["identity", "a", "b", "c", "d"][i], Arc::new(Identity::new()), i % 2 == 0))
            .collect();
        let mut ev = Evaluation::new(embedder.clone(), methods, Query::vptt(), EvalOptions::default()).unwrap();
        for i in from..from + 100 {
            let mut p = Persona::new(format!("p{i}"));
            p.summary = format!("person {i}");
            p.memory.push(Post::new(format!("a walk by the river, day {i}")));
            ev.add_persona(&IndexedPersona::new(p)).unwrap();
        }
        ev.aggregate()
    };
    let (a, b_) = (shard(0), shard(100));
    let text = a.to_json().unwrap();
    println!("aggregate of 100 personas × 5 methods × 4 queries: {} bytes of JSON", text.len());
    g.bench_function("merge_5x4", |b| {
        b.iter(|| {
            let mut m = a.clone();
            m.merge(&b_).unwrap();
            m
        })
    });
    g.bench_function("to_json_5x4_100_personas", |b| b.iter(|| a.to_json().unwrap()));
    g.bench_function("from_json_5x4_100_personas", |b| b.iter(|| EvalAggregate::from_json(&text).unwrap()));
    g.bench_function("report_5x4", |b| b.iter(|| a.report().unwrap()));
    g.finish();
}

criterion_group!(benches, vptt, aggregates);
criterion_main!(benches);
