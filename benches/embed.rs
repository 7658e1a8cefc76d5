//! MiniLM embedding: a batch of 64 short (~15-token) sentences, the same batch of long
//! (256-token) texts, and one ~10-token query. The sentences are the ones
//! `benches/reference/st_throughput.py` embeds with sentence-transformers.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use zipp_core::embed::Embedder;

fn embed(c: &mut Criterion) {
    let m = zipp_benches::minilm();
    let (short, query) = zipp_benches::sentences("short");
    let short: Vec<&str> = short.iter().map(String::as_str).collect();
    let (long, _) = zipp_benches::sentences("long");
    let long: Vec<&str> = long.iter().map(String::as_str).collect();

    let mut g = c.benchmark_group("minilm");
    g.sample_size(20);
    g.throughput(Throughput::Elements(short.len() as u64));
    g.bench_function("batch64_short", |b| b.iter(|| m.embed(&short).unwrap()));
    g.throughput(Throughput::Elements(1));
    g.bench_function("one_query", |b| b.iter(|| m.embed_one(&query).unwrap()));
    g.sample_size(10);
    g.throughput(Throughput::Elements(long.len() as u64));
    g.bench_function("batch64_long256", |b| b.iter(|| m.embed(&long).unwrap()));
    g.finish();

    // The same inputs through candle's generic BertModel: the in-process reference the
    // packed encoder is compared against.
    let options = zipp_core::embed::MiniLmOptions { force_candle: true, ..Default::default() };
    let candle = zipp_core::embed::MiniLm::load_with(&zipp_core::models::ModelSource::Default, options).unwrap();
    let mut g = c.benchmark_group("minilm_candle_bert");
    g.sample_size(20);
    g.throughput(Throughput::Elements(short.len() as u64));
    g.bench_function("batch64_short", |b| b.iter(|| candle.embed(&short).unwrap()));
    g.throughput(Throughput::Elements(1));
    g.bench_function("one_query", |b| b.iter(|| candle.embed_one(&query).unwrap()));
    g.finish();
}

criterion_group!(benches, embed);
criterion_main!(benches);
