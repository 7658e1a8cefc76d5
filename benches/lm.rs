//! The local language model's hot path: SmolLM2-135M-Instruct Q4_1 (the embedded default) on
//! zipp's own forward pass — a prompt's prefill, prefill + 32 greedy decoded tokens, and the
//! integer dot-product kernels (AVX2 and portable) — next to the machine's memory read
//! bandwidth measured in the same run (decoding reads every weight once per token, so
//! `weight bytes per token / bandwidth` is its floor). The prompt is the one
//! `benches/reference/llama_cpp_speed.py` gives llama.cpp; `benches/reference/lm_side_by_side.sh`
//! runs both, interleaved.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use zipp_lm::engine::kernels::{quantize_q8, BlockQ4_1, BlockQ8, Isa, QK};
use zipp_lm::GgufModel;

/// The prompt of `benches/reference/llama_cpp_speed.py` (57 tokens).
pub const PROMPT: &str =
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
<|im_start|>user\nWrite a long, detailed description of a quiet harbour at dawn, with boats, gulls and \
paper lanterns, for an image generator.<|im_end|>\n<|im_start|>assistant\n";

fn smollm2(c: &mut Criterion) {
    let m = GgufModel::load_default().expect("run scripts/provision-models.sh");
    let ids = m.encode(PROMPT).unwrap();
    eprintln!(
        "smollm2: {} prompt tokens, {:?} kernel, {:.1} MB of weights read per decoded token",
        ids.len(),
        m.engine().isa(),
        m.engine().bytes_per_token() as f64 / 1e6
    );
    let mut g = c.benchmark_group("smollm2_q4_1");
    g.sample_size(10);
    g.throughput(Throughput::Elements(ids.len() as u64));
    g.bench_function("prefill_57", |b| b.iter(|| m.logits(&ids).unwrap()));
    // Greedy continuation that never stops early (the reference decodes 64 the same way):
    // decode time per token = (this − prefill_57) / 32.
    g.throughput(Throughput::Elements(32));
    g.bench_function("prefill_57_decode_32", |b| {
        b.iter(|| {
            let out = m.greedy_ids(&ids, 32).unwrap();
            assert_eq!(out.len(), 32, "the continuation ended early");
        })
    });
    g.finish();
}

/// A `rows × cols` Q4_1 matrix and a quantized input, from a fixed xorshift stream.
fn operands(rows: usize, cols: usize) -> (Vec<BlockQ4_1>, Vec<BlockQ8>) {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let w = (0..rows * cols / QK)
        .map(|_| {
            let r = next();
            BlockQ4_1 {
                d: 0x2c00 | (r & 0x3ff) as u16,
                m: 0xa800,
                qs: next().to_le_bytes().repeat(2).try_into().unwrap(),
            }
        })
        .collect();
    let x: Vec<f32> = (0..cols).map(|_| (next() % 2000) as f32 / 1000.0 - 1.0).collect();
    let mut xq = vec![BlockQ8::default(); cols / QK];
    quantize_q8(&x, &mut xq);
    (w, xq)
}

fn kernels(c: &mut Criterion) {
    // SmolLM2's FFN up projection (1536 × 576), one input: a decoded token's product,
    // single-threaded. Throughput in weight bytes.
    let (rows, cols) = (1536, 576);
    let (w, x) = operands(rows, cols);
    let mut out = vec![0f32; rows];
    let mut g = c.benchmark_group("q4_1_matvec_1536x576");
    g.throughput(Throughput::Bytes(std::mem::size_of_val(w.as_slice()) as u64));
    let mut isas = vec![("portable", Isa::Portable)];
    isas.extend(Isa::avx2().map(|i| ("avx2", i)));
    for (name, isa) in isas {
        g.bench_function(name, |b| b.iter(|| isa.q4_1_rows(&w, &x, &mut out)));
    }
    g.finish();
}

/// Memory read bandwidth, the same run: summing 256 MiB of u64 (far beyond the caches), on
/// one thread and on every thread of zipp's pool.
fn bandwidth(c: &mut Criterion) {
    let data: Vec<u64> = (0..(256 << 20) / 8).map(|i| i as u64).collect();
    let mut g = c.benchmark_group("memory_read_256mib");
    g.sample_size(10);
    g.throughput(Throughput::Bytes((data.len() * 8) as u64));
    g.bench_function("one_thread", |b| b.iter(|| data.iter().fold(0u64, |a, v| a.wrapping_add(*v))));
    g.bench_function("pool", |b| {
        b.iter(|| {
            zipp_core::runtime::install(|| {
                use rayon::prelude::*;
                data.par_chunks(1 << 20).map(|c| c.iter().fold(0u64, |a, v| a.wrapping_add(*v))).sum::<u64>()
            })
        })
    });
    g.finish();
}

criterion_group!(benches, smollm2, kernels, bandwidth);
criterion_main!(benches);
