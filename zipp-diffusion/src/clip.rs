//! CLIP's text transformer (the Stable Diffusion text encoders), on candle.
//!
//! zipp's own, because candle's keeps its configuration private (only the released presets
//! can be built, so no test-sized model) and does not expose the penultimate hidden state
//! SDXL conditions on. Weight names are transformers' (`text_model.encoder.layers.N…`).

use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn as nn;
use serde::Deserialize;

use rayon::prelude::*;

use crate::layers::{self, Linear};

/// The fields of a transformers `CLIPTextConfig` (`text_encoder/config.json`) zipp reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct ClipTextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub max_position_embeddings: usize,
    pub hidden_act: String,
    pub layer_norm_eps: f64,
    /// Width of `text_projection` (SDXL's second encoder, CLIP models).
    pub projection_dim: usize,
    /// The end-of-text id whose position gives the pooled output; transformers' legacy
    /// configs say 2 and then mean "the highest id in the row".
    pub eos_token_id: u32,
    pub architectures: Vec<String>,
}

impl Default for ClipTextConfig {
    fn default() -> Self {
        // openai/clip-vit-large-patch14's text model (SD 1.x).
        ClipTextConfig {
            vocab_size: 49408,
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            max_position_embeddings: 77,
            hidden_act: "quick_gelu".into(),
            layer_norm_eps: 1e-5,
            projection_dim: 768,
            eos_token_id: 2,
            architectures: Vec::new(),
        }
    }
}

impl ClipTextConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.num_attention_heads == 0 || !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.vocab_size == 0 || self.max_position_embeddings == 0 || self.num_hidden_layers == 0 {
            return Err("vocab_size, max_position_embeddings and num_hidden_layers must be positive".into());
        }
        Activation::parse(&self.hidden_act).map(|_| ())
    }

    /// Whether the checkpoint carries `text_projection` (`CLIPTextModelWithProjection`).
    pub fn with_projection(&self) -> bool {
        self.architectures.iter().any(|a| a.contains("WithProjection"))
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Activation {
    QuickGelu,
    Gelu,
}

impl Activation {
    pub(crate) fn parse(name: &str) -> std::result::Result<Activation, String> {
        match name {
            "quick_gelu" => Ok(Activation::QuickGelu),
            "gelu" => Ok(Activation::Gelu),
            other => Err(format!("hidden_act {other:?} is not supported (quick_gelu, gelu)")),
        }
    }

    fn apply(self, xs: &Tensor) -> Result<Tensor> {
        if layers::fast(xs) {
            // One pass of zipp's SIMD kernel; candle's ops make four for QuickGELU and call
            // libm's erf per element for GELU.
            const CHUNK: usize = 1 << 14;
            let quick = matches!(self, Activation::QuickGelu);
            let simd = crate::simd::Simd::current();
            let mut out = vec![0f32; xs.elem_count()];
            layers::with_slice(xs, |src| {
                out.par_chunks_mut(CHUNK)
                    .zip(src.par_chunks(CHUNK))
                    .for_each(|(dst, src)| crate::simd::gelu(simd, dst, src, quick));
                Ok(())
            })?;
            return Tensor::from_vec(out, xs.shape(), xs.device());
        }
        match self {
            Activation::QuickGelu => xs * nn::ops::sigmoid(&(xs * 1.702)?)?,
            // transformers' "gelu" is the exact (erf) form.
            Activation::Gelu => xs.gelu_erf(),
        }
    }
}

#[derive(Debug)]
struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: usize,
    head_dim: usize,
}

impl Attention {
    fn new(vs: nn::VarBuilder, hidden: usize, heads: usize) -> Result<Attention> {
        Ok(Attention {
            q: layers::linear(hidden, hidden, vs.pp("q_proj"))?,
            k: layers::linear(hidden, hidden, vs.pp("k_proj"))?,
            v: layers::linear(hidden, hidden, vs.pp("v_proj"))?,
            out: layers::linear(hidden, hidden, vs.pp("out_proj"))?,
            heads,
            head_dim: hidden / heads,
        })
    }

    /// Self-attention of `xs`, plus `residual`.
    fn forward(&self, xs: &Tensor, mask: Option<&Tensor>, residual: &Tensor) -> Result<Tensor> {
        let (b, n, c) = xs.dims3()?;
        let split = |t: Tensor| t.reshape((b, n, self.heads, self.head_dim))?.transpose(1, 2)?.contiguous();
        let q = split((self.q.forward(xs)? * (self.head_dim as f64).powf(-0.5))?)?;
        let k = split(self.k.forward(xs)?)?;
        let v = split(self.v.forward(xs)?)?;
        let mut w = q.matmul(&k.t()?)?;
        if let Some(mask) = mask {
            w = w.broadcast_add(mask)?;
        }
        let w = nn::ops::softmax_last_dim(&w)?;
        let o = w.matmul(&v)?.transpose(1, 2)?.reshape((b, n, c))?;
        self.out.forward_residual(&o, residual)
    }
}

#[derive(Debug)]
pub(crate) struct Layer {
    norm1: nn::LayerNorm,
    attn: Attention,
    norm2: nn::LayerNorm,
    fc1: Linear,
    fc2: Linear,
    act: Activation,
}

impl Layer {
    pub(crate) fn new(
        vs: nn::VarBuilder,
        hidden: usize,
        inter: usize,
        heads: usize,
        eps: f64,
        act: Activation,
    ) -> Result<Layer> {
        Ok(Layer {
            norm1: nn::layer_norm(hidden, eps, vs.pp("layer_norm1"))?,
            attn: Attention::new(vs.pp("self_attn"), hidden, heads)?,
            norm2: nn::layer_norm(hidden, eps, vs.pp("layer_norm2"))?,
            fc1: layers::linear(hidden, inter, vs.pp("mlp").pp("fc1"))?,
            fc2: layers::linear(inter, hidden, vs.pp("mlp").pp("fc2"))?,
            act,
        })
    }

    /// The `n` layers under `encoder.layers.{i}` (text and vision encoders alike).
    pub(crate) fn stack(
        encoder: nn::VarBuilder,
        n: usize,
        hidden: usize,
        inter: usize,
        heads: usize,
        eps: f64,
        act: Activation,
    ) -> Result<Vec<Layer>> {
        (0..n).map(|i| Layer::new(encoder.pp("layers").pp(i), hidden, inter, heads, eps, act)).collect()
    }

    pub(crate) fn forward(&self, xs: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let h = self.attn.forward(&self.norm1.forward(xs)?, mask, xs)?;
        self.fc2.forward_residual(&self.act.apply(&self.fc1.forward(&self.norm2.forward(&h)?)?)?, &h)
    }
}

/// What one text-encoder pass returns.
#[derive(Debug, Clone)]
pub struct TextOutput {
    /// `[n, 77, hidden]` after the final layer norm (SD 1.x/2.x condition on it).
    pub last_hidden: Tensor,
    /// `[n, 77, hidden]` before the last layer (SDXL conditions on it).
    pub penultimate: Tensor,
    /// `[n, hidden]` (or `[n, projection_dim]` through `text_projection` when present): the
    /// final-norm state at each row's end-of-text token.
    pub pooled: Tensor,
}

/// CLIP's text transformer (`CLIPTextModel` / `CLIPTextModelWithProjection`).
#[derive(Debug)]
pub struct ClipText {
    token_embedding: nn::Embedding,
    position_embedding: Tensor,
    layers: Vec<Layer>,
    final_norm: nn::LayerNorm,
    projection: Option<nn::Linear>,
    pub config: ClipTextConfig,
}

impl ClipText {
    /// Builds the model from weights named as transformers names them (`vs` at the model's
    /// root: `text_model.*`, `text_projection.*`).
    pub fn new(vs: nn::VarBuilder, config: ClipTextConfig) -> Result<ClipText> {
        let projection = config.with_projection();
        ClipText::new_with_projection(vs, config, projection)
    }

    /// [`ClipText::new`], saying whether to load the root `text_projection` (no bias,
    /// `projection_dim` wide) rather than reading it from `architectures`: a `CLIPModel`
    /// has one though its text config does not say `WithProjection`.
    pub fn new_with_projection(vs: nn::VarBuilder, config: ClipTextConfig, projection: bool) -> Result<ClipText> {
        let c = &config;
        let act = Activation::parse(&c.hidden_act).map_err(candle_core::Error::Msg)?;
        let tm = vs.pp("text_model");
        let emb = tm.pp("embeddings");
        let token_embedding = nn::embedding(c.vocab_size, c.hidden_size, emb.pp("token_embedding"))?;
        let position_embedding =
            emb.pp("position_embedding").get((c.max_position_embeddings, c.hidden_size), "weight")?;
        let layers = Layer::stack(
            tm.pp("encoder"),
            c.num_hidden_layers,
            c.hidden_size,
            c.intermediate_size,
            c.num_attention_heads,
            c.layer_norm_eps,
            act,
        )?;
        let final_norm = nn::layer_norm(c.hidden_size, c.layer_norm_eps, tm.pp("final_layer_norm"))?;
        let projection = if projection {
            Some(nn::linear_no_bias(c.hidden_size, c.projection_dim, vs.pp("text_projection"))?)
        } else {
            None
        };
        Ok(ClipText { token_embedding, position_embedding, layers, final_norm, projection, config })
    }

    /// Encodes rows of token ids `[n, len]` (`len` ≤ max positions), causally masked.
    pub fn forward(&self, ids: &Tensor) -> Result<TextOutput> {
        let (n, len) = ids.dims2()?;
        if len > self.config.max_position_embeddings {
            candle_core::bail!("{len} tokens exceed the encoder's {} positions", self.config.max_position_embeddings);
        }
        let pos = self.position_embedding.narrow(0, 0, len)?;
        let mut xs = self.token_embedding.forward(ids)?.broadcast_add(&pos)?;
        let mask = causal_mask(len, xs.dtype(), xs.device())?;
        let mut penultimate = xs.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            if i + 1 == self.layers.len() {
                penultimate = xs.clone();
            }
            xs = layer.forward(&xs, Some(&mask))?;
        }
        let last_hidden = self.final_norm.forward(&xs)?;
        // transformers: eos_token_id == 2 is the legacy "highest id" rule.
        let ids_host: Vec<Vec<u32>> = ids.to_dtype(DType::U32)?.to_vec2()?;
        let positions: Vec<u32> = ids_host
            .iter()
            .map(|row| {
                let p = if self.config.eos_token_id == 2 {
                    row.iter().enumerate().max_by_key(|(i, &v)| (v, std::cmp::Reverse(*i))).map(|(i, _)| i)
                } else {
                    row.iter().position(|&v| v == self.config.eos_token_id)
                };
                p.unwrap_or(row.len() - 1) as u32
            })
            .collect();
        let idx = Tensor::new(positions, ids.device())?;
        let rows: Vec<Tensor> =
            (0..n).map(|r| last_hidden.get(r)?.index_select(&idx.narrow(0, r, 1)?, 0)).collect::<Result<_>>()?;
        let mut pooled = Tensor::cat(&rows, 0)?;
        if let Some(p) = &self.projection {
            pooled = p.forward(&pooled)?;
        }
        Ok(TextOutput { last_hidden, penultimate, pooled })
    }
}

fn causal_mask(len: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let data: Vec<f32> =
        (0..len).flat_map(|i| (0..len).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 })).collect();
    Tensor::from_vec(data, (len, len), device)?.to_dtype(dtype)
}

/// Mean of a `[n, d]` tensor's rows' L2 norms, for tests and diagnostics.
pub fn row_norms(t: &Tensor) -> Result<Tensor> {
    t.sqr()?.sum_keepdim(D::Minus1)?.sqrt()
}
