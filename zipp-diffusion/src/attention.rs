//! The UNet's spatial transformer (diffusers' `Transformer2DModel` with
//! `BasicTransformerBlock`s): self-attention, cross-attention to the text states, and a
//! GEGLU feed-forward.
//!
//! zipp's own rather than candle's: candle's GEGLU uses the tanh approximation of GELU where
//! diffusers (and the released weights' training) use the exact erf form, a systematic
//! difference of up to ~1e-3 per activation. With the exact form the tiny-model UNet
//! outputs match diffusers to ~1e-6 instead of ~4e-5.

use candle_core::{Module, Result, Tensor, D};
use candle_nn as nn;

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
        let mut parts = Vec::with_capacity(bh.div_ceil(step));
        let mut start = 0;
        while start < bh {
            let len = step.min(bh - start);
            let (q, k, v) = (q.narrow(0, start, len)?, k.narrow(0, start, len)?, v.narrow(0, start, len)?);
            let w = nn::ops::softmax_last_dim(&q.matmul(&k.t()?)?)?;
            parts.push(w.matmul(&v)?);
            start += len;
        }
        let o = if parts.len() == 1 { parts.remove(0) } else { Tensor::cat(&parts, 0)? };
        let o = o.reshape((b, self.heads, n, c / self.heads))?.transpose(1, 2)?.reshape((b, n, c))?;
        self.out.forward(&o)
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
