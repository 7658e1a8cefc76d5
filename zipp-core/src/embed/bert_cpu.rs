//! A padding-free BERT encoder for the CPU (the hot path of [`super::MiniLm`]).
//!
//! Why not candle's `BertModel` on CPU: a batch is padded to its longest text and every
//! op allocates a tensor; measured on 2 cores it embedded 64 short sentences at ~0.64× the
//! speed of sentence-transformers on PyTorch. This encoder *packs* the batch — the token
//! rows of all texts are concatenated, so projections and the FFN never touch a padding
//! position — and runs attention per (text, head) on exactly that text's tokens. The math
//! is BERT's unchanged (post-LN, exact-erf GELU, scale 1/√d); the GEMMs are the same
//! `gemm` crate kernels candle uses. Non-CPU devices keep candle's `BertModel`.

use std::collections::HashMap;

use candle_core::Tensor;
use candle_transformers::models::bert::{Config, HiddenAct};
use gemm::Parallelism;
use rayon::prelude::*;

/// `y = x · Wᵀ + b` with `W` in PyTorch layout (`n × k`, row-major): column `j` of `Wᵀ` is
/// a contiguous row, which the small-batch path below needs.
struct Linear {
    w: Vec<f32>,
    b: Vec<f32>,
    k: usize,
    n: usize,
}

struct LayerNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
}

struct Layer {
    /// Query, key and value fused into one `h × 3h` projection: one GEMM instead of three.
    qkv: Linear,
    attn_out: Linear,
    ln1: LayerNorm,
    inter: Linear,
    out: Linear,
    ln2: LayerNorm,
}

pub(crate) struct CpuBert {
    hidden: usize,
    heads: usize,
    max_positions: usize,
    word: Vec<f32>,
    position: Vec<f32>,
    token_type0: Vec<f32>,
    emb_ln: LayerNorm,
    layers: Vec<Layer>,
    /// The AVX2 small-batch kernel, or `None` for gemm's portable one.
    small: Option<small_m::Kernel>,
}

/// Whether this CPU can run the AVX2 small-batch kernel.
pub(crate) fn avx2_available() -> bool {
    small_m::Kernel::detect().is_some()
}

/// Minimum multiply-adds before a GEMM is split across threads; below it the hand-off
/// costs more than it saves (a one-query forward is all small GEMMs).
const PARALLEL_MIN_FLOPS: usize = 1 << 19;

fn par(m: usize, n: usize, k: usize) -> Parallelism {
    if m * n * k >= PARALLEL_MIN_FLOPS && rayon::current_num_threads() > 1 {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    }
}

/// Rows up to which [`Linear::forward`] takes the small-batch path.
const SMALL_M: usize = 16;

/// `y += x · Wᵀ` for a handful of rows, reading every weight from memory once.
///
/// A one-query forward is memory-bound: ~42 MB of weights against ~10 token rows. gemm's
/// un-packed kernel works on 2×2 tiles, so it streams each weight row m/2 times; this
/// kernel takes two weight rows at a time, keeps them in L1, and runs four token rows per
/// pass against them with eight AVX2 accumulators.
mod small_m {
    #[derive(Clone, Copy)]
    pub(super) struct Kernel(());

    impl Kernel {
        /// The kernel where the CPU has AVX2 and FMA (checked at run time).
        pub(super) fn detect() -> Option<Kernel> {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return Some(Kernel(()));
            }
            None
        }

        /// `y[i·ldy + j] += Σ_c x[i·k + c] · w[j·k + c]` for `i < m`, `j < w.len() / k`.
        ///
        /// # Safety
        /// `x` holds `m·k` values; `y` points at a block with `m` rows of stride `ldy`
        /// covering `w.len() / k` columns, written by no one else meanwhile.
        pub(super) unsafe fn run(self, x: &[f32], m: usize, k: usize, w: &[f32], y: *mut f32, ldy: usize) {
            assert!(x.len() >= m * k && w.len().is_multiple_of(k) && m > 0);
            // SAFETY: a `Kernel` exists only where detect() saw AVX2 and FMA; the slices and
            // `y` are as `avx2` needs by this function's own contract.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                avx2(x, m, k, w, y, ldy)
            }
            #[cfg(not(target_arch = "x86_64"))]
            unreachable!("Kernel::detect() returns None off x86_64")
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2(x: &[f32], m: usize, k: usize, w: &[f32], y: *mut f32, ldy: usize) {
        use std::arch::x86_64::*;
        #[inline(always)]
        unsafe fn hsum(v: __m256) -> f32 {
            // SAFETY: AVX intrinsics on registers only; called (inlined) from `avx2` alone,
            // which runs where the CPU has AVX2.
            unsafe {
                let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
                let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)))
            }
        }
        // SAFETY: the caller upholds `Kernel::run`'s contract (x holds m·k values; y has m
        // rows of stride ldy covering w.len()/k columns, written by no one else) and runs on
        // a CPU with AVX2 and FMA. Every read is then inside x (rows i0..i0+4 clamped to m−1,
        // columns < k) or w (rows j, j+1 < rows, columns < k), every write inside y's block.
        unsafe {
            let rows = w.len() / k;
            let k8 = k - k % 8;
            let xp = x.as_ptr();
            let mut j = 0;
            while j < rows {
                let two = j + 1 < rows;
                let w0 = w.as_ptr().add(j * k);
                let w1 = if two { w0.add(k) } else { w0 };
                let mut i0 = 0;
                while i0 < m {
                    let live = (m - i0).min(4);
                    // Rows past `live` re-read row i0 (valid memory) and are not stored.
                    let xr: [*const f32; 4] = std::array::from_fn(|r| xp.add((i0 + if r < live { r } else { 0 }) * k));
                    let mut a0 = [_mm256_setzero_ps(); 4];
                    let mut a1 = [_mm256_setzero_ps(); 4];
                    let mut c = 0;
                    while c < k8 {
                        let v0 = _mm256_loadu_ps(w0.add(c));
                        let v1 = _mm256_loadu_ps(w1.add(c));
                        for r in 0..4 {
                            let xv = _mm256_loadu_ps(xr[r].add(c));
                            a0[r] = _mm256_fmadd_ps(xv, v0, a0[r]);
                            a1[r] = _mm256_fmadd_ps(xv, v1, a1[r]);
                        }
                        c += 8;
                    }
                    for r in 0..live {
                        let (mut s0, mut s1) = (hsum(a0[r]), hsum(a1[r]));
                        for t in k8..k {
                            s0 += *xr[r].add(t) * *w0.add(t);
                            s1 += *xr[r].add(t) * *w1.add(t);
                        }
                        let out = y.add((i0 + r) * ldy + j);
                        *out += s0;
                        if two {
                            *out.add(1) += s1;
                        }
                    }
                    i0 += 4;
                }
                j += 2;
            }
        }
    }
}

impl Linear {
    /// Stacks PyTorch-layout `weight: [n_i, k]` blocks (and their biases) into one projection.
    fn new(weights: &[Vec<f32>], biases: &[Vec<f32>], k: usize) -> Linear {
        Linear { w: weights.concat(), b: biases.concat(), k, n: biases.iter().map(Vec::len).sum() }
    }

    /// `x` is `m × k` row-major; returns `m × n`.
    ///
    /// A packed GEMM copies all of `W` into its micro-kernel layout on every call: for a
    /// one-query forward (m ≈ 10) that copy of ~42 MB of weights costs more than the
    /// arithmetic. For m ≤ [`SMALL_M`] the product is instead cut into column blocks with
    /// `m · block ≤ 256`, which gemm runs with its "horizontal" dot-product kernel straight
    /// from the weights, without packing; blocks are shared out across threads.
    /// `small` is the AVX2 kernel for that path, `None` for gemm's portable one.
    fn forward(&self, x: &[f32], m: usize, small: Option<small_m::Kernel>) -> Vec<f32> {
        let (k, n) = (self.k, self.n);
        assert_eq!(x.len(), m * k, "activation shape");
        let mut y = Vec::with_capacity(m * n);
        for _ in 0..m {
            y.extend_from_slice(&self.b);
        }
        let yp = SendPtr(y.as_mut_ptr());
        // SAFETY: y is m×n and x is m×k row-major; Wᵀ is read as k×n with
        // column stride k and row stride 1, i.e. exactly the n×k buffer `w`. A block call
        // touches columns c0..c0+nb of y and rows c0..c0+nb of w only, so concurrent blocks
        // write disjoint memory.
        let block_gemm = |c0: usize, nb: usize, par: Parallelism| unsafe {
            gemm::gemm(
                m,
                nb,
                k,
                yp.get().add(c0),
                1,
                n as isize,
                true,
                x.as_ptr(),
                1,
                k as isize,
                self.w.as_ptr().add(c0 * k),
                k as isize,
                1,
                1.0,
                1.0,
                false,
                false,
                false,
                par,
            )
        };
        if m > SMALL_M {
            block_gemm(0, n, par(m, n, k));
            return y;
        }
        // Small batch: column blocks of Wᵀ (rows of W) handed out across threads.
        let parallel = m * n * k >= PARALLEL_MIN_FLOPS && rayon::current_num_threads() > 1;
        let (block, kernel): (usize, &(dyn Fn(usize, usize) + Sync)) = match small {
            // Reads each weight once from memory and keeps it in L1 while all m rows use it.
            Some(kern) => (64, &move |c0, nb| {
                // SAFETY: x is m×k; the weight rows c0..c0+nb are the columns c0..c0+nb of
                // y (m rows of stride n, inside the m×n buffer), which only this block writes.
                unsafe { kern.run(x, m, k, &self.w[c0 * k..(c0 + nb) * k], yp.get().add(c0), n) }
            }),
            // gemm's un-packed "horizontal" kernel needs m · block ≤ 256.
            None => ((256 / m.max(1)).max(1), &|c0, nb| block_gemm(c0, nb, Parallelism::None)),
        };
        let starts: Vec<usize> = (0..n).step_by(block.min(n)).collect();
        let run = |&c0: &usize| kernel(c0, block.min(n - c0));
        if parallel {
            starts.par_iter().for_each(run);
        } else {
            starts.iter().for_each(run);
        }
        y
    }
}

impl LayerNorm {
    fn apply(&self, x: &mut [f32]) {
        let h = self.gamma.len();
        for row in x.chunks_exact_mut(h) {
            let mean = row.iter().sum::<f32>() / h as f32;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / h as f32;
            let inv = 1.0 / (var + self.eps).sqrt();
            for ((v, g), b) in row.iter_mut().zip(&self.gamma).zip(&self.beta) {
                *v = (*v - mean) * inv * g + b;
            }
        }
    }
}

/// erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), vectorisable unlike a libm call.
#[inline]
fn erf(x: f32) -> f32 {
    let s = x.signum();
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    s * (1.0 - poly * exp_nonpositive(-a * a))
}

/// `e^x` for `x ≤ 0` (softmax and GELU only need that side), relative error < 2e-7.
///
/// libm's `expf` is a call per element and never vectorises; this is the classic
/// range reduction `x = n·ln2 + g`, `|g| ≤ ln2/2`, with Cephes' degree-6 polynomial for
/// `e^g` and `2^n` built in the exponent bits — straight-line code the compiler turns
/// into SIMD. Below −87.3 the result (< 1.2e-38) is flushed to 0.
#[inline]
fn exp_nonpositive(x_in: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5·2²³: adding it rounds to an integer
    let x = x_in.clamp(-87.3, 0.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let g = x - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * g + 1.398_199_9e-3) * g + 8.333_452e-3) * g + 4.166_579_6e-2) * g + 0.166_666_65) * g
        + 0.5;
    let e_g = p * g * g + g + 1.0;
    let n_bits = (t.to_bits() as i32).wrapping_sub(0x4B40_0000); // the integer n
    let e = e_g * f32::from_bits(((n_bits + 127) as u32) << 23);
    // A select, not a branch: the loop stays vectorisable.
    if x_in < -87.3 {
        0.0
    } else {
        e
    }
}

/// BERT's exact GELU: `x · Φ(x) = ½ x (1 + erf(x/√2))`.
fn gelu(x: &mut [f32]) {
    let f = |v: &mut f32| *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
    if x.len() >= 1 << 16 {
        x.par_chunks_mut(1 << 14).for_each(|c| c.iter_mut().for_each(f));
    } else {
        x.iter_mut().for_each(f);
    }
}

/// Raw pointer that may cross threads: each task writes a disjoint column block.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: the pointer is only dereferenced by tasks that write disjoint blocks of a buffer
// that outlives them (the callers' join points: `for_each` returns after every task).
unsafe impl Send for SendPtr {}
// SAFETY: as for Send; sharing the pointer value itself does not touch the memory.
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// Through a method, so closures capture the wrapper (Sync), not the raw field.
    fn get(self) -> *mut f32 {
        self.0
    }
}

impl CpuBert {
    /// Builds the encoder from safetensors tensors (names as in the HF checkpoint, with or
    /// without a `bert.` prefix). Errors name the missing or mis-shaped tensor.
    /// `avx2`: use the AVX2 small-batch kernel (ignored where the CPU lacks AVX2 or FMA; the
    /// caller checks first).
    pub(crate) fn new(tensors: &HashMap<String, Tensor>, cfg: &Config, avx2: bool) -> Result<CpuBert, String> {
        if cfg.hidden_act != HiddenAct::Gelu {
            return Err(format!("hidden_act {:?} is not supported by the CPU encoder (only gelu)", cfg.hidden_act));
        }
        let prefix = if tensors.contains_key("bert.embeddings.word_embeddings.weight") { "bert." } else { "" };
        let h = cfg.hidden_size;
        let get = |name: &str, shape: &[usize]| -> Result<Vec<f32>, String> {
            let full = format!("{prefix}{name}");
            let t = tensors.get(&full).ok_or_else(|| format!("tensor `{full}` is missing"))?;
            if t.dims() != shape {
                return Err(format!("tensor `{full}` has shape {:?}, config.json implies {shape:?}", t.dims()));
            }
            t.to_dtype(candle_core::DType::F32)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(|e| format!("tensor `{full}`: {e}"))
        };
        let ln = |name: &str| -> Result<LayerNorm, String> {
            Ok(LayerNorm {
                gamma: get(&format!("{name}.weight"), &[h])?,
                beta: get(&format!("{name}.bias"), &[h])?,
                eps: cfg.layer_norm_eps as f32,
            })
        };
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for l in 0..cfg.num_hidden_layers {
            let p = format!("encoder.layer.{l}");
            let w = |n: &str, rows: usize, cols: usize| get(&format!("{p}.{n}.weight"), &[rows, cols]);
            let b = |n: &str, rows: usize| get(&format!("{p}.{n}.bias"), &[rows]);
            let i = cfg.intermediate_size;
            layers.push(Layer {
                qkv: Linear::new(
                    &[
                        w("attention.self.query", h, h)?,
                        w("attention.self.key", h, h)?,
                        w("attention.self.value", h, h)?,
                    ],
                    &[b("attention.self.query", h)?, b("attention.self.key", h)?, b("attention.self.value", h)?],
                    h,
                ),
                attn_out: Linear::new(&[w("attention.output.dense", h, h)?], &[b("attention.output.dense", h)?], h),
                ln1: ln(&format!("{p}.attention.output.LayerNorm"))?,
                inter: Linear::new(&[w("intermediate.dense", i, h)?], &[b("intermediate.dense", i)?], h),
                out: Linear::new(&[w("output.dense", h, i)?], &[b("output.dense", h)?], i),
                ln2: ln(&format!("{p}.output.LayerNorm"))?,
            });
        }
        let token_types = get("embeddings.token_type_embeddings.weight", &[cfg.type_vocab_size, h])?;
        Ok(CpuBert {
            hidden: h,
            heads: cfg.num_attention_heads,
            max_positions: cfg.max_position_embeddings,
            word: get("embeddings.word_embeddings.weight", &[cfg.vocab_size, h])?,
            position: get("embeddings.position_embeddings.weight", &[cfg.max_position_embeddings, h])?,
            token_type0: token_types[..h].to_vec(),
            emb_ln: ln("embeddings.LayerNorm")?,
            layers,
            small: if avx2 { small_m::Kernel::detect() } else { None },
        })
    }

    /// Mean-pooled, L2-normalised embeddings of the texts whose token ids are given
    /// (each at most `max_position_embeddings` long, ids below the vocabulary size: the
    /// caller's tokenizer guarantees both). Returns `texts × hidden` row-major.
    pub(crate) fn embed(&self, texts: &[&[u32]]) -> Vec<f32> {
        let h = self.hidden;
        let offsets: Vec<usize> = std::iter::once(0)
            .chain(texts.iter().scan(0, |acc, t| {
                *acc += t.len();
                Some(*acc)
            }))
            .collect();
        let total = *offsets.last().unwrap_or(&0);
        let mut x = vec![0f32; total * h];
        for (t, ids) in texts.iter().enumerate() {
            debug_assert!(ids.len() <= self.max_positions);
            for (p, &id) in ids.iter().enumerate() {
                let row = &mut x[(offsets[t] + p) * h..(offsets[t] + p + 1) * h];
                let w = &self.word[id as usize * h..(id as usize + 1) * h];
                let pos = &self.position[p * h..(p + 1) * h];
                for j in 0..h {
                    row[j] = w[j] + pos[j] + self.token_type0[j];
                }
            }
        }
        self.emb_ln.apply(&mut x);
        for layer in &self.layers {
            x = self.layer(layer, x, &offsets);
        }
        // Masked mean pooling is a plain mean here: packed rows hold no padding.
        let mut out = vec![0f32; texts.len() * h];
        for t in 0..texts.len() {
            let (a, b) = (offsets[t], offsets[t + 1]);
            let dst = &mut out[t * h..(t + 1) * h];
            for r in a..b {
                for (d, v) in dst.iter_mut().zip(&x[r * h..(r + 1) * h]) {
                    *d += v;
                }
            }
            let n = (b - a).max(1) as f32;
            dst.iter_mut().for_each(|v| *v /= n);
            super::normalize(dst);
        }
        out
    }

    fn layer(&self, l: &Layer, x: Vec<f32>, offsets: &[usize]) -> Vec<f32> {
        let h = self.hidden;
        let total = x.len() / h;
        let qkv = l.qkv.forward(&x, total, self.small);
        let mut ctx = vec![0f32; total * h];
        self.attention(&qkv, &mut ctx, offsets);
        let mut x1 = l.attn_out.forward(&ctx, total, self.small);
        x1.iter_mut().zip(&x).for_each(|(a, b)| *a += b);
        l.ln1.apply(&mut x1);
        let mut inter = l.inter.forward(&x1, total, self.small);
        gelu(&mut inter);
        let mut x2 = l.out.forward(&inter, total, self.small);
        x2.iter_mut().zip(&x1).for_each(|(a, b)| *a += b);
        l.ln2.apply(&mut x2);
        x2
    }

    /// Self-attention of every text with itself, per head; writes `ctx` (total × h).
    fn attention(&self, qkv: &[f32], ctx: &mut [f32], offsets: &[usize]) {
        let h = self.hidden;
        let d = h / self.heads;
        let scale = 1.0 / (d as f32).sqrt();
        let tasks: Vec<(usize, usize)> =
            (0..offsets.len() - 1).flat_map(|t| (0..self.heads).map(move |hd| (t, hd))).collect();
        let ctx_ptr = SendPtr(ctx.as_mut_ptr());
        let run = |&(t, hd): &(usize, usize)| {
            let (o, len) = (offsets[t], offsets[t + 1] - offsets[t]);
            let mut scores = vec![0f32; len * len];
            let base = qkv.as_ptr();
            let row = (3 * h) as isize;
            // SAFETY: q, k, v of text t / head hd lie inside qkv (rows o..o+len, columns
            // hd·d.. of each third); scores is len×len; the ctx block (rows o..o+len,
            // columns hd·d..hd·d+d) is written by this task only.
            unsafe {
                let q = base.add(o * 3 * h + hd * d);
                let k = base.add(o * 3 * h + h + hd * d);
                let v = base.add(o * 3 * h + 2 * h + hd * d);
                gemm::gemm(
                    len,
                    len,
                    d,
                    scores.as_mut_ptr(),
                    1,
                    len as isize,
                    false,
                    q,
                    1,
                    row,
                    k,
                    row,
                    1,
                    0.0,
                    scale,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
                for r in scores.chunks_exact_mut(len) {
                    let max = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    r.iter_mut().for_each(|s| *s = exp_nonpositive(*s - max));
                    let inv = 1.0 / r.iter().sum::<f32>();
                    r.iter_mut().for_each(|s| *s *= inv);
                }
                gemm::gemm(
                    len,
                    d,
                    len,
                    ctx_ptr.get().add(o * h + hd * d),
                    1,
                    h as isize,
                    false,
                    scores.as_ptr(),
                    1,
                    len as isize,
                    v,
                    1,
                    row,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
            }
        };
        let work: usize = (0..offsets.len() - 1).map(|t| (offsets[t + 1] - offsets[t]).pow(2)).sum::<usize>() * h;
        if work * 2 >= PARALLEL_MIN_FLOPS && rayon::current_num_threads() > 1 {
            tasks.par_iter().for_each(run);
        } else {
            tasks.iter().for_each(run);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The small-batch paths (AVX2 kernel and gemm's un-packed one) and the packed GEMM agree
    /// with a plain triple loop, for every m on both sides of SMALL_M and ragged shapes.
    #[test]
    fn linear_paths_agree_with_a_naive_product() {
        let (k, n) = (37, 45); // k not a multiple of 8, n odd: every tail runs
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect();
        let b: Vec<f32> = (0..n).map(|i| i as f32 * 0.01).collect();
        let lin = Linear::new(std::slice::from_ref(&w), std::slice::from_ref(&b), k);
        for m in [1, 2, 3, 4, 5, 10, 16, 17, 40] {
            let x: Vec<f32> = (0..m * k).map(|i| ((i * 104_729 % 997) as f32 / 498.5) - 1.0).collect();
            // Both small-batch kernels, whatever this CPU would pick (AVX2 only where present).
            for small in [None, small_m::Kernel::detect()] {
                let y = lin.forward(&x, m, small);
                for i in 0..m {
                    for j in 0..n {
                        let want: f32 = b[j] + (0..k).map(|c| x[i * k + c] * w[j * k + c]).sum::<f32>();
                        let got = y[i * n + j];
                        assert!((got - want).abs() < 1e-4, "m={m} avx2={} ({i},{j}): {got} vs {want}", small.is_some());
                    }
                }
            }
        }
    }

    #[test]
    fn exp_matches_f64_exp() {
        let mut worst = 0f64;
        for i in 0..=200_000 {
            let x = -87.0 * i as f32 / 200_000.0;
            let want = (x as f64).exp();
            let rel = ((exp_nonpositive(x) as f64) - want).abs() / want;
            worst = worst.max(rel);
        }
        assert!(worst < 2e-7, "worst relative error {worst}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-200.0), 0.0);
        assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
    }

    #[test]
    fn erf_matches_known_values() {
        use super::erf;
        // Reference values from Python's math.erf. A&S 7.1.26 is within 1.5e-7 in exact
        // arithmetic; evaluated in f32 the measured worst case here is 3.7e-7 (at 0.5).
        for (x, want) in [
            (0.0f32, 0.0f64),
            (0.1, 0.112_462_916_018_284_9),
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (2.0, 0.995_322_265_018_952_7),
            (3.0, 0.999_977_909_503_001_4),
            (-1.0, -0.842_700_792_949_714_9),
        ] {
            let got = erf(x) as f64;
            assert!((got - want).abs() < 5e-7, "erf({x}) = {got}, want {want}");
        }
    }
}
