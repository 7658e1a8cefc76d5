//! The UNet's spatial transformer (diffusers' `Transformer2DModel` with
//! `BasicTransformerBlock`s): self-attention, cross-attention to the text states, and a
//! GEGLU feed-forward.
//!
//! zipp's own rather than candle's: candle's GEGLU uses the tanh approximation of GELU where
//! diffusers (and the released weights' training) use the exact erf form, a systematic
//! difference of up to ~1e-3 per activation. With the exact form the tiny-model UNet
//! outputs match diffusers to ~1e-6 instead of ~4e-5.

use candle_core::{CpuStorage, CustomOp1, Layout, Module, Result, Shape, Tensor, D};
use candle_nn as nn;
use rayon::prelude::*;

/// Query rows per block on the CPU: a block's scores (`rows × keys` floats, 4 MiB for 4096
/// keys) stay in cache between the two matrix products and the softmax, and the full
/// `queries × keys` matrix (64 MiB per head at 512 px) is never allocated.
pub const QUERY_BLOCK: usize = 256;

/// `e^x` for `x ≤ 0` (softmax inputs after the row maximum is subtracted): Cody–Waite range
/// reduction and a degree-6 polynomial, in plain arithmetic the compiler vectorises (libm's
/// `expf` and `roundf` do not). Relative error below 2e-7 on [-87, 0]; 0 below -87.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    let x = x.max(-87.0);
    // Round to nearest with the 1.5·2²³ trick.
    let k = (x * std::f32::consts::LOG2_E + 12_582_912.0) - 12_582_912.0;
    let r = x - k * 0.693_145_75 - k * 1.428_606_8e-6;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (0.166_666_67 + r * (0.041_666_66 + r * (0.008_333_4 + r * 0.001_388_9)))));
    p * f32::from_bits(((k as i32 + 127) << 23) as u32)
}

/// Softmax of one row into `dst`.
fn softmax_row(src: &[f32], dst: &mut [f32]) {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let mut it = src.chunks_exact(8);
    for c in &mut it {
        for i in 0..8 {
            lanes[i] = if c[i] > lanes[i] { c[i] } else { lanes[i] };
        }
    }
    let max = lanes.iter().chain(it.remainder()).copied().fold(f32::NEG_INFINITY, f32::max);
    let mut acc = [0f32; 8];
    let mut out = dst.chunks_exact_mut(8);
    let mut inp = src.chunks_exact(8);
    for (d, s) in (&mut out).zip(&mut inp) {
        for i in 0..8 {
            let e = exp_nonpositive(s[i] - max);
            d[i] = e;
            acc[i] += e;
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (d, s) in out.into_remainder().iter_mut().zip(inp.remainder()) {
        *d = exp_nonpositive(s - max);
        sum += *d;
    }
    let inv = 1.0 / sum;
    dst.iter_mut().for_each(|d| *d *= inv);
}

/// Softmax over the last dimension of a contiguous `f32` CPU tensor, rows in parallel in
/// the current (zipp's) pool. candle's own spends ~2x longer on the exponentials.
struct FastSoftmax;

impl CustomOp1 for FastSoftmax {
    fn name(&self) -> &'static str {
        "zipp-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else { candle_core::bail!("zipp-softmax: f32 only") };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("zipp-softmax: contiguous input only")
        };
        let src = &data[start..end];
        let n = layout.dims().last().copied().unwrap_or(1).max(1);
        let mut out = vec![0f32; src.len()];
        out.par_chunks_mut(n).zip(src.par_chunks(n)).for_each(|(d, s)| softmax_row(s, d));
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// Softmax over the last dimension: zipp's CPU kernel for contiguous f32, candle's otherwise.
pub fn softmax_last_dim(xs: &Tensor) -> Result<Tensor> {
    if xs.device().is_cpu() && xs.dtype() == candle_core::DType::F32 && xs.is_contiguous() {
        xs.apply_op1_no_bwd(&FastSoftmax)
    } else {
        nn::ops::softmax_last_dim(xs)
    }
}

/// Multi-head attention (`attn1`/`attn2`): `to_q`, `to_k`, `to_v` without bias, `to_out.0`.
#[derive(Debug)]
struct Attention {
    q: nn::Linear,
    k: nn::Linear,
    v: nn::Linear,
    out: nn::Linear,
    heads: usize,
    scale: f64,
    /// Heads computed at a time (attention slicing), all when `None`.
    slice: Option<usize>,
}

impl Attention {
    fn new(vs: nn::VarBuilder, dim: usize, context: usize, heads: usize, slice: Option<usize>) -> Result<Attention> {
        Ok(Attention {
            q: nn::linear_no_bias(dim, dim, vs.pp("to_q"))?,
            k: nn::linear_no_bias(context, dim, vs.pp("to_k"))?,
            v: nn::linear_no_bias(context, dim, vs.pp("to_v"))?,
            out: nn::linear(dim, dim, vs.pp("to_out").pp(0))?,
            heads,
            scale: ((dim / heads) as f64).powf(-0.5),
            slice,
        })
    }

    fn heads(&self, xs: Tensor) -> Result<Tensor> {
        let (b, n, c) = xs.dims3()?;
        xs.reshape((b, n, self.heads, c / self.heads))?.transpose(1, 2)?.reshape((b * self.heads, n, c / self.heads))
    }

    fn forward(&self, xs: &Tensor, context: Option<&Tensor>) -> Result<Tensor> {
        let (b, n, c) = xs.dims3()?;
        let ctx = context.unwrap_or(xs);
        let q = self.heads((self.q.forward(xs)? * self.scale)?)?.contiguous()?;
        let k = self.heads(self.k.forward(ctx)?)?.contiguous()?;
        let v = self.heads(self.v.forward(ctx)?)?.contiguous()?;
        let bh = b * self.heads;
        let step = self.slice.map_or(bh, |s| s.clamp(1, bh));
        // On the CPU, long attention runs a block of query rows at a time (see QUERY_BLOCK).
        let rows = if q.device().is_cpu() { QUERY_BLOCK } else { n };
        let o = attend(&q, &k, &v, step, rows)?;
        let o = o.reshape((b, self.heads, n, c / self.heads))?.transpose(1, 2)?.reshape((b, n, c))?;
        self.out.forward(&o)
    }
}

/// `softmax(q·kᵀ)·v` for `[batch·heads, tokens, head_dim]` inputs (`q` already scaled),
/// `step` batch·heads at a time (attention slicing) and `rows` query rows at a time
/// ([`QUERY_BLOCK`] is what the UNet uses on the CPU).
pub fn attend(q: &Tensor, k: &Tensor, v: &Tensor, step: usize, rows: usize) -> Result<Tensor> {
    let (bh, n, _) = q.dims3()?;
    let kt = k.t()?.contiguous()?;
    let rows = rows.clamp(1, n.max(1));
    let mut parts = Vec::with_capacity(bh.div_ceil(step));
    let mut start = 0;
    while start < bh {
        let len = step.min(bh - start);
        let (q, kt, v) = (q.narrow(0, start, len)?, kt.narrow(0, start, len)?, v.narrow(0, start, len)?);
        let mut blocks = Vec::with_capacity(n.div_ceil(rows));
        let mut r0 = 0;
        while r0 < n {
            let r = rows.min(n - r0);
            let w = softmax_last_dim(&q.narrow(1, r0, r)?.matmul(&kt)?)?;
            blocks.push(w.matmul(&v)?);
            r0 += r;
        }
        parts.push(if blocks.len() == 1 { blocks.remove(0) } else { Tensor::cat(&blocks, 1)? });
        start += len;
    }
    if parts.len() == 1 {
        Ok(parts.remove(0))
    } else {
        Tensor::cat(&parts, 0)
    }
}

/// `ff`: GEGLU (`net.0.proj`, exact GELU on the gate) then `net.2`.
#[derive(Debug)]
struct FeedForward {
    proj: nn::Linear,
    out: nn::Linear,
}

impl FeedForward {
    fn new(vs: nn::VarBuilder, dim: usize) -> Result<FeedForward> {
        let inner = 4 * dim;
        Ok(FeedForward {
            proj: nn::linear(dim, 2 * inner, vs.pp("net").pp(0).pp("proj"))?,
            out: nn::linear(inner, dim, vs.pp("net").pp(2))?,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let h = self.proj.forward(xs)?;
        let parts = h.chunk(2, D::Minus1)?;
        self.out.forward(&(&parts[0] * parts[1].gelu_erf()?)?)
    }
}

#[derive(Debug)]
struct Block {
    norm1: nn::LayerNorm,
    attn1: Attention,
    norm2: nn::LayerNorm,
    attn2: Attention,
    norm3: nn::LayerNorm,
    ff: FeedForward,
}

impl Block {
    fn forward(&self, xs: &Tensor, context: &Tensor) -> Result<Tensor> {
        let xs = (self.attn1.forward(&self.norm1.forward(xs)?, None)? + xs)?;
        let xs = (self.attn2.forward(&self.norm2.forward(&xs)?, Some(context))? + xs)?;
        self.ff.forward(&self.norm3.forward(&xs)?)? + xs
    }
}

#[derive(Debug)]
enum Proj {
    Conv(nn::Conv2d),
    Linear(nn::Linear),
}

/// A spatial transformer over `[n, c, h, w]` features attending to `[n, tokens, context]`.
#[derive(Debug)]
pub struct Transformer2D {
    norm: nn::GroupNorm,
    proj_in: Proj,
    blocks: Vec<Block>,
    proj_out: Proj,
}

/// How a [`Transformer2D`] is shaped.
#[derive(Debug, Clone, Copy)]
pub struct TransformerConfig {
    pub channels: usize,
    pub heads: usize,
    pub depth: usize,
    pub groups: usize,
    pub context_dim: usize,
    pub linear_projection: bool,
    pub slice: Option<usize>,
}

impl Transformer2D {
    pub fn new(vs: nn::VarBuilder, c: TransformerConfig) -> Result<Transformer2D> {
        let dim = c.channels;
        let proj = |name: &str| -> Result<Proj> {
            Ok(if c.linear_projection {
                Proj::Linear(nn::linear(dim, dim, vs.pp(name))?)
            } else {
                Proj::Conv(nn::conv2d(dim, dim, 1, Default::default(), vs.pp(name))?)
            })
        };
        let ln = |v: nn::VarBuilder| nn::layer_norm(dim, 1e-5, v);
        let blocks = (0..c.depth)
            .map(|i| {
                let v = vs.pp("transformer_blocks").pp(i);
                Ok(Block {
                    norm1: ln(v.pp("norm1"))?,
                    attn1: Attention::new(v.pp("attn1"), dim, dim, c.heads, c.slice)?,
                    norm2: ln(v.pp("norm2"))?,
                    attn2: Attention::new(v.pp("attn2"), dim, c.context_dim, c.heads, c.slice)?,
                    norm3: ln(v.pp("norm3"))?,
                    ff: FeedForward::new(v.pp("ff"), dim)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Transformer2D {
            norm: nn::group_norm(c.groups, dim, 1e-6, vs.pp("norm"))?,
            proj_in: proj("proj_in")?,
            blocks,
            proj_out: proj("proj_out")?,
        })
    }

    pub fn forward(&self, xs: &Tensor, context: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = xs.dims4()?;
        let residual = xs;
        let xs = self.norm.forward(xs)?;
        let to_tokens = |t: Tensor| t.permute((0, 2, 3, 1))?.reshape((b, h * w, c));
        let mut x = match &self.proj_in {
            Proj::Conv(p) => to_tokens(p.forward(&xs)?)?,
            Proj::Linear(p) => p.forward(&to_tokens(xs)?)?,
        };
        for block in &self.blocks {
            x = block.forward(&x, context)?;
        }
        let to_map = |t: Tensor| t.reshape((b, h, w, c))?.permute((0, 3, 1, 2))?.contiguous();
        let out = match &self.proj_out {
            Proj::Conv(p) => p.forward(&to_map(x)?)?,
            Proj::Linear(p) => to_map(p.forward(&x)?)?,
        };
        out + residual
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_softmax_matches_candles() {
        let dev = candle_core::Device::Cpu;
        // Rows of 13 (a remainder past the 8-lane chunks), wide ranges, a -inf mask entry.
        let mut v: Vec<f32> = (0..13 * 40).map(|i| ((i * 7919 % 997) as f32 / 997.0 - 0.5) * 60.0).collect();
        v[5] = f32::NEG_INFINITY;
        let x = Tensor::from_vec(v, (40, 13), &dev).unwrap();
        let ours = softmax_last_dim(&x).unwrap();
        let theirs = nn::ops::softmax_last_dim(&x).unwrap();
        let d = (ours - theirs).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-6);
        // Blocked and sliced attention equal the plain formula (300 queries: a partial block).
        let q = Tensor::randn(0f32, 1., (6, 300, 8), &dev).unwrap();
        let k = Tensor::randn(0f32, 1., (6, 77, 8), &dev).unwrap();
        let v = Tensor::randn(0f32, 1., (6, 77, 8), &dev).unwrap();
        let plain = nn::ops::softmax_last_dim(&q.matmul(&k.t().unwrap()).unwrap()).unwrap().matmul(&v).unwrap();
        for (step, rows) in [(6, 300), (6, 64), (4, 256), (1, 7)] {
            let got = attend(&q, &k, &v, step, rows).unwrap();
            let d = (got - &plain).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap();
            assert!(d.to_scalar::<f32>().unwrap() < 1e-5, "step {step} rows {rows}");
        }
        for (x, want) in [(0.0f32, 1.0f32), (-1.0, (-1.0f32).exp()), (-20.5, (-20.5f32).exp()), (-100.0, 0.0)] {
            let got = exp_nonpositive(x);
            assert!((got - want).abs() <= 2e-7 * want.max(1e-30) + 1e-38, "exp({x}) = {got}, want {want}");
        }
    }
}
