//! zipp's own forward pass for llama-family GGUF models on the CPU: the hot path of the local
//! backend, written for the shapes of small chat models (a few hundred hidden units, one
//! prompt at a time), where a general tensor library spends most of its time outside the
//! arithmetic (candle's quantized llama ran SmolLM2-135M at ≈ 0.1× llama.cpp here).
//!
//! - Weights stay in their GGUF block layout (`Q4_1`, `Q8_0`); other quantized types are
//!   converted to `Q8_0` at load (one rounding of the file's values; the model id says so).
//! - Every matrix product quantizes its input rows to 8 bits per block of 32 and runs the
//!   integer dot products of [`kernels`] (AVX2 or portable, chosen by [`CpuKernel`]), split
//!   over output rows across zipp's pool; a prompt is one batched pass (each weight row is
//!   read once for all its tokens), a decoded token one more.
//! - The KV cache is f32, per generation, and grows with the tokens of that call.
//! - Only the last position's logits are computed.
//!
//! Architectures (the GGUF's `general.architecture`):
//! - `llama`: adjacent-pair RoPE, no biases — SmolLM2, Llama 2/3 and the like;
//! - `qwen2`: biases on the Q/K/V projections, half-split ("NeoX") RoPE — Qwen2, Qwen2.5;
//! - `qwen3`: no biases, an RMS norm on each query and key head, half-split RoPE, a head
//!   size of its own (`attention.key_length`) — Qwen3.

#[allow(unsafe_code)]
pub mod kernels;

use std::io::{Read, Seek, SeekFrom};

use candle_core::quantized::gguf_file;
use candle_core::quantized::GgmlDType;
use kernels::{BlockQ4_1, BlockQ8, BlockQ8_0, Isa, QK};
use rayon::prelude::*;
use zipp_core::embed::CpuKernel;

/// The architectures the engine runs (module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Qwen2,
    Qwen3,
}

impl Arch {
    /// The architecture a GGUF's `general.architecture` names, if supported.
    pub fn from_name(name: &str) -> Option<Arch> {
        match name {
            "llama" => Some(Arch::Llama),
            "qwen2" => Some(Arch::Qwen2),
            "qwen3" => Some(Arch::Qwen3),
            _ => None,
        }
    }

    /// The metadata key prefix (`llama`, `qwen2`, `qwen3`).
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
        }
    }

    /// Whether RoPE rotates the pairs `(i, i + d/2)` (NeoX) rather than `(2i, 2i + 1)`.
    fn rope_halves(self) -> bool {
        self != Arch::Llama
    }
}

/// The hyper-parameters the forward pass needs, from the GGUF metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub arch: Arch,
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub ffn: usize,
    pub vocab: usize,
    pub rope_base: f32,
    pub rope_dim: usize,
    pub norm_eps: f32,
    pub context: usize,
}

/// A weight matrix, `rows` outputs × `cols` inputs, rows contiguous.
#[derive(Debug, Clone)]
enum QMatrix {
    Q4_1 { rows: usize, cols: usize, blocks: Vec<BlockQ4_1> },
    Q8_0 { rows: usize, cols: usize, blocks: Vec<BlockQ8_0> },
}

impl QMatrix {
    fn rows(&self) -> usize {
        match self {
            QMatrix::Q4_1 { rows, .. } | QMatrix::Q8_0 { rows, .. } => *rows,
        }
    }

    fn cols(&self) -> usize {
        match self {
            QMatrix::Q4_1 { cols, .. } | QMatrix::Q8_0 { cols, .. } => *cols,
        }
    }

    /// Bytes of weights read per product with one input row.
    fn bytes(&self) -> usize {
        match self {
            QMatrix::Q4_1 { blocks, .. } => std::mem::size_of_val(blocks.as_slice()),
            QMatrix::Q8_0 { blocks, .. } => std::mem::size_of_val(blocks.as_slice()),
        }
    }

    /// Row `r` as f32 (the token embedding lookup).
    fn row(&self, r: usize, out: &mut [f32]) {
        let per = self.cols() / QK;
        match self {
            QMatrix::Q4_1 { blocks, .. } => {
                for (b, o) in blocks[r * per..(r + 1) * per].iter().zip(out.chunks_mut(QK)) {
                    kernels::dequantize_q4_1(b, o);
                }
            }
            QMatrix::Q8_0 { blocks, .. } => {
                for (b, o) in blocks[r * per..(r + 1) * per].iter().zip(out.chunks_mut(QK)) {
                    kernels::dequantize_q8_0(b, o);
                }
            }
        }
    }

    /// `out[r..r + o.len()]` (n = 1) or `o[(i * n)..]` = row `r + i` against every input
    /// (n > 1): the work of one task.
    fn rows_into(&self, isa: Isa, r: usize, x: &[BlockQ8], n: usize, o: &mut [f32]) {
        let per = self.cols() / QK;
        if n == 1 {
            let rows = r * per..(r + o.len()) * per;
            match self {
                QMatrix::Q4_1 { blocks, .. } => isa.q4_1_rows(&blocks[rows], x, o),
                QMatrix::Q8_0 { blocks, .. } => isa.q8_0_rows(&blocks[rows], x, o),
            }
            return;
        }
        for (i, ro) in o.chunks_mut(n).enumerate() {
            let w = (r + i) * per..(r + i + 1) * per;
            match self {
                QMatrix::Q4_1 { blocks, .. } => isa.q4_1_row(&blocks[w], x, ro),
                QMatrix::Q8_0 { blocks, .. } => isa.q8_0_row(&blocks[w], x, ro),
            }
        }
    }
}

/// The products of several matrices with the same `n` quantized inputs `x` (each
/// `cols / 32` blocks), in one parallel pass over all their rows (one pool dispatch instead
/// of one per matrix): `out[t * rows + r] = row r · x_t` for each `(matrix, out)` pair.
fn matmuls(isa: Isa, products: &mut [(&QMatrix, &mut [f32])], x: &[BlockQ8], n: usize) {
    let total: usize = products.iter().map(|(m, _)| m.rows()).sum();
    // Tasks of at least 16 rows, about 8 per thread: enough to balance, few enough that
    // scheduling stays small next to a row's work.
    let chunk = (total / (rayon::current_num_threads() * 8)).max(16);
    // For n > 1, results land row-major by weight row (each task writes one contiguous
    // range and reads each weight row once for all n inputs), transposed into `out` after.
    let mut by_row: Vec<Vec<f32>> =
        products.iter().map(|(m, _)| if n == 1 { Vec::new() } else { vec![0f32; m.rows() * n] }).collect();
    let mut tasks: Vec<(&QMatrix, usize, &mut [f32])> = Vec::new();
    for ((m, out), buf) in products.iter_mut().zip(by_row.iter_mut()) {
        debug_assert_eq!(x.len(), n * m.cols() / QK);
        debug_assert_eq!(out.len(), n * m.rows());
        let target: &mut [f32] = if n == 1 { out } else { buf };
        for (c, o) in target.chunks_mut(chunk * n).enumerate() {
            tasks.push((*m, c * chunk, o));
        }
    }
    tasks.into_par_iter().for_each(|(m, r, o)| m.rows_into(isa, r, x, n, o));
    if n > 1 {
        for ((m, out), buf) in products.iter_mut().zip(&by_row) {
            let rows = m.rows();
            for (r, ro) in buf.chunks(n).enumerate() {
                for (t, v) in ro.iter().enumerate() {
                    out[t * rows + r] = *v;
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Layer {
    attn_norm: Vec<f32>,
    q: QMatrix,
    k: QMatrix,
    v: QMatrix,
    /// Q/K/V biases (qwen2).
    qkv_bias: Option<[Vec<f32>; 3]>,
    /// Per-head RMS norm weights of queries and keys (qwen3).
    qk_norm: Option<[Vec<f32>; 2]>,
    o: QMatrix,
    ffn_norm: Vec<f32>,
    gate: QMatrix,
    up: QMatrix,
    down: QMatrix,
}

/// A loaded model: weights, configuration and the dot-product implementation.
#[derive(Debug)]
pub struct Engine {
    pub config: Config,
    embed: QMatrix,
    /// `None`: the output head is the embedding matrix (tied).
    head: Option<QMatrix>,
    norm: Vec<f32>,
    layers: Vec<Layer>,
    /// RoPE inverse frequencies, one per rotated pair.
    inv_freq: Vec<f32>,
    isa: Isa,
    /// Types converted to Q8_0 at load, for the model id (empty when none).
    pub converted: Vec<String>,
}

/// One generation's KV cache: per layer, every position's keys and values (f32).
#[derive(Debug, Clone)]
pub struct Cache {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    len: usize,
}

impl Cache {
    /// Positions already in the cache.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// What reading the weights can report.
pub type LoadResult<T> = std::result::Result<T, String>;

impl Engine {
    /// Reads the configuration and weights of a llama-architecture GGUF (`content` already
    /// parsed from `file`). Errors are sentences for [`zipp_core::error::Error::ModelInvalid`].
    pub fn load<R: Read + Seek>(content: &gguf_file::Content, file: &mut R, kernel: CpuKernel) -> LoadResult<Engine> {
        let isa = match kernel.resolve().map_err(|e| e.to_string())? {
            CpuKernel::Avx2 => Isa::avx2().ok_or("the AVX2 kernel needs AVX2, FMA and F16C")?,
            _ => Isa::Portable,
        };
        let md = |k: &str| content.metadata.get(k).ok_or_else(|| format!("no {k} in the GGUF metadata"));
        let arch_name = md("general.architecture")?.to_string().map_err(|e| e.to_string())?.clone();
        let arch = Arch::from_name(&arch_name)
            .ok_or_else(|| format!("architecture {arch_name:?} is not supported (llama, qwen2 and qwen3 are)"))?;
        let key = |k: &str| format!("{}.{k}", arch.name());
        let int = |k: &str| -> LoadResult<usize> {
            md(&key(k))?.to_u32().map(|v| v as usize).map_err(|e| format!("{}: {e}", key(k)))
        };
        let float = |k: &str| -> LoadResult<f32> { md(&key(k))?.to_f32().map_err(|e| format!("{}: {e}", key(k))) };
        let hidden = int("embedding_length")?;
        let heads = int("attention.head_count")?;
        let kv_heads = int("attention.head_count_kv").unwrap_or(heads);
        if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 {
            return Err(format!("inconsistent attention shape: {heads} heads, {kv_heads} KV heads"));
        }
        let head_dim = match int("attention.key_length") {
            Ok(k) => k,
            Err(_) if hidden % heads == 0 => hidden / heads,
            Err(_) => return Err(format!("{hidden} hidden units do not split into {heads} heads")),
        };
        if head_dim == 0 || (heads * head_dim) % QK != 0 || (kv_heads * head_dim) % QK != 0 {
            return Err(format!("heads of {head_dim} values do not make whole blocks of {QK}"));
        }
        let rope_dim = int("rope.dimension_count").unwrap_or(head_dim);
        if rope_dim > head_dim || rope_dim % 2 != 0 {
            return Err(format!("RoPE dimension {rope_dim} does not fit heads of {head_dim}"));
        }
        let mut converted = Vec::new();
        let mut reader = TensorReader { content, file, converted: &mut converted };
        let embed = reader.matrix("token_embd.weight")?;
        let config = Config {
            arch,
            layers: int("block_count")?,
            hidden,
            heads,
            kv_heads,
            head_dim,
            ffn: int("feed_forward_length")?,
            vocab: embed.rows(),
            rope_base: float("rope.freq_base").unwrap_or(10_000.0),
            rope_dim,
            norm_eps: float("attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
            context: int("context_length").unwrap_or(4096),
        };
        let head = match content.tensor_infos.contains_key("output.weight") {
            true => Some(reader.matrix("output.weight")?),
            false => None,
        };
        let norm = reader.vector("output_norm.weight", hidden)?;
        let mut layers = Vec::with_capacity(config.layers);
        let (q_dim, kv) = (heads * head_dim, kv_heads * head_dim);
        for i in 0..config.layers {
            let name = |s: &str| format!("blk.{i}.{s}.weight");
            let bias = |s: &str| format!("blk.{i}.{s}.bias");
            let mut m = |s: &str, rows: usize, cols: usize| reader.matrix_shaped(&name(s), rows, cols);
            let (q, k, v) = (m("attn_q", q_dim, hidden)?, m("attn_k", kv, hidden)?, m("attn_v", kv, hidden)?);
            let (o, gate, up, down) = (
                m("attn_output", hidden, q_dim)?,
                m("ffn_gate", config.ffn, hidden)?,
                m("ffn_up", config.ffn, hidden)?,
                m("ffn_down", hidden, config.ffn)?,
            );
            let qkv_bias = match arch {
                Arch::Qwen2 => Some([
                    reader.vector(&bias("attn_q"), q_dim)?,
                    reader.vector(&bias("attn_k"), kv)?,
                    reader.vector(&bias("attn_v"), kv)?,
                ]),
                _ => None,
            };
            let qk_norm = match arch {
                Arch::Qwen3 => Some([
                    reader.vector(&name("attn_q_norm"), head_dim)?,
                    reader.vector(&name("attn_k_norm"), head_dim)?,
                ]),
                _ => None,
            };
            layers.push(Layer {
                q,
                k,
                v,
                qkv_bias,
                qk_norm,
                o,
                gate,
                up,
                down,
                attn_norm: reader.vector(&name("attn_norm"), hidden)?,
                ffn_norm: reader.vector(&name("ffn_norm"), hidden)?,
            });
        }
        if embed.cols() != hidden || head.as_ref().is_some_and(|h| h.cols() != hidden) {
            return Err("the embedding or output matrix does not match the hidden size".into());
        }
        let inv_freq = (0..rope_dim / 2).map(|i| config.rope_base.powf(-((2 * i) as f32) / rope_dim as f32)).collect();
        converted.sort();
        converted.dedup();
        Ok(Engine { config, embed, head, norm, layers, inv_freq, isa, converted })
    }

    /// Which dot-product implementation runs.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Weight bytes read per decoded token (every layer matrix and the output head).
    pub fn bytes_per_token(&self) -> usize {
        let layers: usize = self
            .layers
            .iter()
            .map(|l| [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down].iter().map(|m| m.bytes()).sum::<usize>())
            .sum();
        layers + self.head.as_ref().unwrap_or(&self.embed).bytes()
    }

    /// An empty KV cache.
    pub fn cache(&self) -> Cache {
        Cache { k: vec![Vec::new(); self.config.layers], v: vec![Vec::new(); self.config.layers], len: 0 }
    }

    /// Feeds `ids` after the cached positions and returns the next-token logits of the last
    /// one. Call inside zipp's pool ([`zipp_core::runtime::compute`]). `ids` must be
    /// non-empty and token ids below the vocabulary size (checked by the caller).
    pub fn forward(&self, cache: &mut Cache, ids: &[u32]) -> Vec<f32> {
        let c = &self.config;
        let (n, d) = (ids.len(), c.hidden);
        let (q_dim, kv) = (c.heads * c.head_dim, c.kv_heads * c.head_dim);
        let pos0 = cache.len;
        let mut x = vec![0f32; n * d];
        for (t, id) in ids.iter().enumerate() {
            self.embed.row(*id as usize, &mut x[t * d..(t + 1) * d]);
        }
        let mut h = vec![0f32; n * d];
        let mut xq = vec![BlockQ8::default(); n * d / QK];
        let mut fq = vec![BlockQ8::default(); n * c.ffn / QK];
        let mut aq = vec![BlockQ8::default(); n * q_dim / QK];
        let mut q = vec![0f32; n * q_dim];
        let mut k = vec![0f32; n * kv];
        let mut v = vec![0f32; n * kv];
        let mut att = vec![0f32; n * q_dim];
        let mut gate = vec![0f32; n * c.ffn];
        let mut up = vec![0f32; n * c.ffn];
        for (l, layer) in self.layers.iter().enumerate() {
            rms_norm(&x, &layer.attn_norm, c.norm_eps, &mut h);
            kernels::quantize_q8(&h, &mut xq);
            matmuls(self.isa, &mut [(&layer.q, &mut q), (&layer.k, &mut k), (&layer.v, &mut v)], &xq, n);
            if let Some([qb, kb, vb]) = &layer.qkv_bias {
                for (out, b) in [(&mut q, qb), (&mut k, kb), (&mut v, vb)] {
                    out.chunks_mut(b.len()).for_each(|row| row.iter_mut().zip(b).for_each(|(x, y)| *x += y));
                }
            }
            if let Some([qn, kn]) = &layer.qk_norm {
                // One RMS norm per head (rows of head_dim values), in place.
                for (x, w) in [(&mut q, qn), (&mut k, kn)] {
                    let copy = x.clone();
                    rms_norm(&copy, w, c.norm_eps, x);
                }
            }
            for t in 0..n {
                self.rope(&mut q[t * q_dim..(t + 1) * q_dim], pos0 + t);
                self.rope(&mut k[t * kv..(t + 1) * kv], pos0 + t);
            }
            cache.k[l].extend_from_slice(&k);
            cache.v[l].extend_from_slice(&v);
            self.attention(&q, &cache.k[l], &cache.v[l], pos0, &mut att);
            kernels::quantize_q8(&att, &mut aq);
            matmuls(self.isa, &mut [(&layer.o, &mut h)], &aq, n);
            x.iter_mut().zip(&h).for_each(|(a, b)| *a += b);
            rms_norm(&x, &layer.ffn_norm, c.norm_eps, &mut h);
            kernels::quantize_q8(&h, &mut xq);
            matmuls(self.isa, &mut [(&layer.gate, &mut gate), (&layer.up, &mut up)], &xq, n);
            gate.iter_mut().zip(&up).for_each(|(g, u)| *g = *g / (1.0 + (-*g).exp()) * u);
            kernels::quantize_q8(&gate, &mut fq);
            matmuls(self.isa, &mut [(&layer.down, &mut h)], &fq, n);
            x.iter_mut().zip(&h).for_each(|(a, b)| *a += b);
        }
        cache.len += n;
        let last = &x[(n - 1) * d..];
        let mut normed = vec![0f32; d];
        rms_norm(last, &self.norm, c.norm_eps, &mut normed);
        let mut lq = vec![BlockQ8::default(); d / QK];
        kernels::quantize_q8(&normed, &mut lq);
        let head = self.head.as_ref().unwrap_or(&self.embed);
        let mut logits = vec![0f32; head.rows()];
        matmuls(self.isa, &mut [(head, &mut logits)], &lq, 1);
        logits
    }

    /// Rotates each head of `x` (heads × head_dim) for position `pos`: the first `rope_dim`
    /// values of a head, in adjacent pairs (llama) or in pairs half the rotated span apart
    /// (qwen2/3, "NeoX").
    fn rope(&self, x: &mut [f32], pos: usize) {
        let hd = self.config.head_dim;
        let half = self.inv_freq.len();
        let halves = self.config.arch.rope_halves();
        for (i, f) in self.inv_freq.iter().enumerate() {
            let (sin, cos) = (pos as f32 * f).sin_cos();
            let (ia, ib) = if halves { (i, i + half) } else { (2 * i, 2 * i + 1) };
            for head in x.chunks_mut(hd) {
                let (a, b) = (head[ia], head[ib]);
                head[ia] = a * cos - b * sin;
                head[ib] = a * sin + b * cos;
            }
        }
    }

    /// Causal attention of the `n` queries in `q` (positions `pos0..pos0 + n`) over the
    /// cached keys and values, one task per (position, head).
    fn attention(&self, q: &[f32], keys: &[f32], values: &[f32], pos0: usize, out: &mut [f32]) {
        let c = &self.config;
        let (hd, kv) = (c.head_dim, c.kv_heads * c.head_dim);
        let group = c.heads / c.kv_heads;
        let scale = 1.0 / (hd as f32).sqrt();
        out.par_chunks_mut(hd).enumerate().for_each(|(i, o)| {
            let (t, head) = (i / c.heads, i % c.heads);
            let qh = &q[i * hd..(i + 1) * hd];
            let kvh = head / group;
            let seen = pos0 + t + 1;
            let mut scores: Vec<f32> =
                (0..seen).map(|p| dot(qh, &keys[p * kv + kvh * hd..p * kv + (kvh + 1) * hd]) * scale).collect();
            let max = scores.iter().fold(f32::NEG_INFINITY, |a, s| a.max(*s));
            let mut sum = 0f32;
            for s in scores.iter_mut() {
                *s = (*s - max).exp();
                sum += *s;
            }
            o.fill(0.0);
            for (p, s) in scores.iter().enumerate() {
                let w = s / sum;
                let vp = &values[p * kv + kvh * hd..p * kv + (kvh + 1) * hd];
                o.iter_mut().zip(vp).for_each(|(a, b)| *a += w * b);
            }
        });
    }
}

/// `out = x / rms(x) * w` per row of `w.len()` values.
fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    for (xr, or) in x.chunks(w.len()).zip(out.chunks_mut(w.len())) {
        let ms = xr.iter().map(|v| v * v).sum::<f32>() / w.len() as f32;
        let inv = 1.0 / (ms + eps).sqrt();
        or.iter_mut().zip(xr.iter().zip(w)).for_each(|(o, (a, b))| *o = a * inv * b);
    }
}

/// A dot product in 8 independent lanes (so the compiler vectorizes it).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for j in 0..8 {
            acc[j] += x[j] * y[j];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Reads named tensors of a GGUF file into the engine's layouts.
struct TensorReader<'a, R> {
    content: &'a gguf_file::Content,
    file: &'a mut R,
    converted: &'a mut Vec<String>,
}

impl<'a, R: Read + Seek> TensorReader<'a, R> {
    fn info(&self, name: &str) -> LoadResult<&'a gguf_file::TensorInfo> {
        let content: &'a gguf_file::Content = self.content;
        content.tensor_infos.get(name).ok_or_else(|| format!("no tensor {name}"))
    }

    /// The tensor's bytes as stored (for the types read without conversion).
    fn raw(&mut self, name: &str) -> LoadResult<Vec<u8>> {
        let info = self.info(name)?;
        let (dtype, elems) = (info.ggml_dtype, info.shape.elem_count());
        if elems % dtype.block_size() != 0 {
            return Err(format!("{name}: {elems} values are not whole {dtype:?} blocks"));
        }
        let len = elems / dtype.block_size() * dtype.type_size();
        let at = self.content.tensor_data_offset + info.offset;
        let mut bytes = vec![0u8; len];
        self.file
            .seek(SeekFrom::Start(at))
            .and_then(|_| self.file.read_exact(&mut bytes))
            .map_err(|e| format!("{name}: {len} bytes at offset {at}: {e} (truncated file?)"))?;
        Ok(bytes)
    }

    /// Any type as f32 values (through candle's dequantization for the quantized ones).
    fn floats(&mut self, name: &str) -> LoadResult<Vec<f32>> {
        let info = self.info(name)?;
        match info.ggml_dtype {
            GgmlDType::F32 => {
                Ok(self.raw(name)?.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
            }
            GgmlDType::F16 => {
                Ok(self.raw(name)?.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect())
            }
            _ => {
                let t = info
                    .read(self.file, self.content.tensor_data_offset, &candle_core::Device::Cpu)
                    .and_then(|q| q.dequantize(&candle_core::Device::Cpu))
                    .and_then(|t| t.flatten_all())
                    .and_then(|t| t.to_vec1::<f32>())
                    .map_err(|e| format!("{name}: {e}"))?;
                Ok(t)
            }
        }
    }

    fn vector(&mut self, name: &str, len: usize) -> LoadResult<Vec<f32>> {
        let v = self.floats(name)?;
        if v.len() != len {
            return Err(format!("{name}: {} values, expected {len}", v.len()));
        }
        if v.iter().any(|x| !x.is_finite()) {
            return Err(format!("{name}: not every value is finite"));
        }
        Ok(v)
    }

    fn matrix_shaped(&mut self, name: &str, rows: usize, cols: usize) -> LoadResult<QMatrix> {
        let m = self.matrix(name)?;
        if (m.rows(), m.cols()) != (rows, cols) {
            return Err(format!("{name}: {}×{}, expected {rows}×{cols}", m.rows(), m.cols()));
        }
        Ok(m)
    }

    fn matrix(&mut self, name: &str) -> LoadResult<QMatrix> {
        let info = self.info(name)?;
        let dims = info.shape.dims().to_vec();
        let [rows, cols] = dims[..] else {
            return Err(format!("{name}: {} dimensions, expected 2", dims.len()));
        };
        if cols % QK != 0 || rows == 0 {
            return Err(format!("{name}: rows of {cols} values are not whole blocks of {QK}"));
        }
        Ok(match info.ggml_dtype {
            GgmlDType::Q4_1 => {
                let blocks = self
                    .raw(name)?
                    .chunks_exact(20)
                    .map(|c| BlockQ4_1 {
                        d: u16::from_le_bytes([c[0], c[1]]),
                        m: u16::from_le_bytes([c[2], c[3]]),
                        qs: c[4..20].try_into().unwrap_or([0; 16]),
                    })
                    .collect();
                QMatrix::Q4_1 { rows, cols, blocks }
            }
            GgmlDType::Q8_0 => {
                let blocks = self
                    .raw(name)?
                    .chunks_exact(34)
                    .map(|c| {
                        let mut qs = [0i8; 32];
                        qs.iter_mut().zip(&c[2..34]).for_each(|(q, b)| *q = *b as i8);
                        BlockQ8_0 { d: u16::from_le_bytes([c[0], c[1]]), qs }
                    })
                    .collect();
                QMatrix::Q8_0 { rows, cols, blocks }
            }
            other => {
                self.converted.push(format!("{other:?}"));
                let values = self.floats(name)?;
                if values.iter().any(|x| !x.is_finite()) {
                    return Err(format!("{name}: not every value is finite"));
                }
                QMatrix::Q8_0 { rows, cols, blocks: values.chunks_exact(QK).map(kernels::quantize_q8_0).collect() }
            }
        })
    }
}
