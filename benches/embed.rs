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

/// The machine's fp32 GEMM ceiling, measured in the same run: a 1024³ product with the
/// same `gemm` kernels the packed encoder calls, on all threads. 2·1024³ FLOP per iteration.
fn gemm_ceiling(c: &mut Criterion) {
    let n = 1024;
    let a = vec![1.0f32; n * n];
    let b = vec![0.5f32; n * n];
    let mut out = vec![0f32; n * n];
    let mut g = c.benchmark_group("gemm_ceiling");
    g.sample_size(20);
    g.throughput(Throughput::Elements(2 * (n * n * n) as u64)); // elements = FLOP
    g.bench_function("sgemm_1024", |bench| {
        // SAFETY: all three buffers are n×n row-major (strides n, 1), alive for the call, and
        // `out` is written by this call only.
        bench.iter(|| unsafe {
            gemm::gemm(
                n,
                n,
                n,
                out.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.as_ptr(),
                1,
                n as isize,
                b.as_ptr(),
                1,
                n as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::Rayon(0),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, embed, gemm_ceiling);
criterion_main!(benches);
