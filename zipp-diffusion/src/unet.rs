//! The UNet (diffusers' `UNet2DConditionModel`), configured from its `unet/config.json`.
//!
//! zipp assembles the UNet from candle's public layers (ResNet block, spatial transformer,
//! timestep embedding) rather than using candle's `UNet2DConditionModel`, which sizes every
//! ResNet group norm at 32 groups whatever the config says and has no SDXL added
//! conditioning (`addition_embed_type: "text_time"`, pooled text + size/crop ids). Weight
//! names are diffusers'.

use candle_core::{Module, Result, Tensor};
use candle_nn as nn;
use candle_transformers::models::stable_diffusion::embeddings::{TimestepEmbedding, Timesteps};
use serde::Deserialize;

use crate::attention::{Transformer2D, TransformerConfig};
use crate::layers::{self, Conv2d, GroupNorm, ResnetBlock, ResnetConfig};

/// An integer or a per-block list, as diffusers configs write several fields.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum PerBlock {
    One(usize),
    Each(Vec<usize>),
}

impl PerBlock {
    fn at(&self, i: usize) -> Option<usize> {
        match self {
            PerBlock::One(v) => Some(*v),
            PerBlock::Each(v) => v.get(i).copied(),
        }
    }
}

/// The fields of a diffusers `UNet2DConditionModel` config zipp reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct UnetConfig {
    pub sample_size: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub center_input_sample: bool,
    pub flip_sin_to_cos: bool,
    pub freq_shift: f64,
    pub down_block_types: Vec<String>,
    pub up_block_types: Vec<String>,
    pub block_out_channels: Vec<usize>,
    pub layers_per_block: usize,
    pub downsample_padding: usize,
    pub mid_block_scale_factor: f64,
    pub norm_num_groups: usize,
    pub norm_eps: f64,
    pub cross_attention_dim: usize,
    /// Head counts in diffusers' legacy naming (used when `num_attention_heads` is unset).
    pub attention_head_dim: PerBlock,
    pub num_attention_heads: Option<PerBlock>,
    pub use_linear_projection: bool,
    pub transformer_layers_per_block: PerBlock,
    pub upcast_attention: bool,
    pub addition_embed_type: Option<String>,
    pub addition_time_embed_dim: Option<usize>,
    pub projection_class_embeddings_input_dim: Option<usize>,
    pub class_embed_type: Option<String>,
    pub time_cond_proj_dim: Option<usize>,
    pub mid_block_type: Option<String>,
}

impl Default for UnetConfig {
    fn default() -> Self {
        // Stable Diffusion 1.x's UNet.
        UnetConfig {
            sample_size: 64,
            in_channels: 4,
            out_channels: 4,
            center_input_sample: false,
            flip_sin_to_cos: true,
            freq_shift: 0.0,
            down_block_types: ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]
                .map(String::from)
                .to_vec(),
            up_block_types: ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
                .map(String::from)
                .to_vec(),
            block_out_channels: vec![320, 640, 1280, 1280],
            layers_per_block: 2,
            downsample_padding: 1,
            mid_block_scale_factor: 1.0,
            norm_num_groups: 32,
            norm_eps: 1e-5,
            cross_attention_dim: 768,
            attention_head_dim: PerBlock::One(8),
            num_attention_heads: None,
            use_linear_projection: false,
            transformer_layers_per_block: PerBlock::One(1),
            upcast_attention: false,
            addition_embed_type: None,
            addition_time_embed_dim: None,
            projection_class_embeddings_input_dim: None,
            class_embed_type: None,
            time_cond_proj_dim: None,
            mid_block_type: None,
        }
    }
}

/// One level of the UNet, as the config describes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    pub width: usize,
    /// `Some(transformer layers)` for a cross-attention level.
    pub attention: Option<usize>,
    pub heads: usize,
}

impl UnetConfig {
    /// The levels, checked: or why zipp cannot run this UNet.
    pub fn levels(&self) -> std::result::Result<Vec<Level>, String> {
        let n = self.block_out_channels.len();
        if n == 0 || self.down_block_types.len() != n || self.up_block_types.len() != n {
            return Err(format!(
                "{} block widths, {} down blocks and {} up blocks: they must be equal and non-zero",
                n,
                self.down_block_types.len(),
                self.up_block_types.len()
            ));
        }
        match self.addition_embed_type.as_deref() {
            None => {}
            Some("text_time")
                if self.addition_time_embed_dim.is_none() || self.projection_class_embeddings_input_dim.is_none() =>
            {
                return Err("text_time conditioning needs addition_time_embed_dim and \
                            projection_class_embeddings_input_dim"
                    .into());
            }
            Some("text_time") => {}
            Some(t) => return Err(format!("addition_embed_type {t:?} is not supported (only SDXL's text_time)")),
        }
        if self.class_embed_type.is_some() || self.time_cond_proj_dim.is_some() {
            return Err("class or time-condition embeddings (upscalers, LCM) are not supported".into());
        }
        if let Some(m) = &self.mid_block_type {
            if m != "UNetMidBlock2DCrossAttn" {
                return Err(format!("mid_block_type {m} is not supported"));
            }
        }
        if self.layers_per_block == 0 || self.norm_num_groups == 0 || self.in_channels == 0 || self.out_channels == 0 {
            return Err("layers_per_block, norm_num_groups and channel counts must be positive".into());
        }
        let heads = self.num_attention_heads.as_ref().unwrap_or(&self.attention_head_dim);
        let mut levels = Vec::with_capacity(n);
        for i in 0..n {
            let down = self.down_block_types[i].as_str();
            let up = self.up_block_types[n - 1 - i].as_str();
            let cross = match (down, up) {
                ("CrossAttnDownBlock2D", "CrossAttnUpBlock2D") => true,
                ("DownBlock2D", "UpBlock2D") => false,
                _ => return Err(format!("level {i}: {down} with {up} is not a supported pair")),
            };
            let width = self.block_out_channels[i];
            let h = heads.at(i).ok_or_else(|| format!("no head count for level {i}"))?;
            let layers = self
                .transformer_layers_per_block
                .at(i)
                .ok_or_else(|| format!("no transformer layers for level {i}"))?;
            if width == 0 || !width.is_multiple_of(self.norm_num_groups) || h == 0 || !width.is_multiple_of(h) {
                return Err(format!(
                    "level {i}: width {width} must be a positive multiple of norm_num_groups {} and of its {h} heads",
                    self.norm_num_groups
                ));
            }
            levels.push(Level { width, attention: cross.then_some(layers.max(1)), heads: h });
        }
        Ok(levels)
    }

    /// Whether the UNet takes SDXL's added conditioning (pooled text and size/crop ids).
    pub fn text_time(&self) -> bool {
        self.addition_embed_type.as_deref() == Some("text_time")
    }
}

struct Ctx<'a> {
    c: &'a UnetConfig,
    temb: usize,
    sliced: Option<usize>,
}

impl Ctx<'_> {
    fn resnet(&self, vs: nn::VarBuilder, cin: usize, cout: usize, scale: f64) -> Result<ResnetBlock> {
        let cfg = ResnetConfig {
            cin,
            cout,
            temb: Some(self.temb),
            groups: self.c.norm_num_groups,
            eps: self.c.norm_eps,
            output_scale_factor: scale,
        };
        ResnetBlock::new(vs, cfg)
    }

    fn transformer(&self, vs: nn::VarBuilder, width: usize, heads: usize, depth: usize) -> Result<Transformer2D> {
        let cfg = TransformerConfig {
            channels: width,
            heads,
            depth,
            groups: self.c.norm_num_groups,
            context_dim: self.c.cross_attention_dim,
            linear_projection: self.c.use_linear_projection,
            slice: self.sliced,
        };
        Transformer2D::new(vs, cfg)
    }
}

fn conv3(cin: usize, cout: usize, stride: usize, padding: usize, vs: nn::VarBuilder) -> Result<Conv2d> {
    layers::conv2d(cin, cout, 3, padding, stride, true, vs)
}

#[derive(Debug)]
struct Down {
    resnets: Vec<ResnetBlock>,
    attentions: Vec<Transformer2D>,
    downsampler: Option<Conv2d>,
}

#[derive(Debug)]
struct Up {
    resnets: Vec<ResnetBlock>,
    attentions: Vec<Transformer2D>,
    upsampler: Option<Conv2d>,
}

#[derive(Debug)]
struct AddEmbedding {
    time_proj: Timesteps,
    embedding: TimestepEmbedding,
}

/// The UNet. `forward` takes latents `[n, c, h, w]`, one timestep for the batch, text
/// states `[n, tokens, cross_attention_dim]`, and for SDXL the pooled text `[n, p]` and
/// size/crop ids `[n, 6]`.
#[derive(Debug)]
pub struct Unet {
    conv_in: Conv2d,
    time_proj: Timesteps,
    time_embedding: TimestepEmbedding,
    add: Option<AddEmbedding>,
    down: Vec<Down>,
    mid: (ResnetBlock, Transformer2D, ResnetBlock),
    up: Vec<Up>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
    pub config: UnetConfig,
}

impl Unet {
    /// Builds the UNet; `sliced_attention` computes attention that many heads at a time.
    pub fn new(vs: nn::VarBuilder, config: UnetConfig, sliced_attention: Option<usize>) -> Result<Unet> {
        let levels = config.levels().map_err(candle_core::Error::Msg)?;
        let c = &config;
        let n = levels.len();
        let b0 = levels[0].width;
        let temb = 4 * b0;
        let cx = Ctx { c, temb, sliced: sliced_attention };
        let conv_in = conv3(c.in_channels, b0, 1, 1, vs.pp("conv_in"))?;
        let time_proj = Timesteps::new(b0, c.flip_sin_to_cos, c.freq_shift);
        let time_embedding = TimestepEmbedding::new(vs.pp("time_embedding"), b0, temb)?;
        let add = match (c.text_time(), c.addition_time_embed_dim, c.projection_class_embeddings_input_dim) {
            (true, Some(d), Some(input)) => Some(AddEmbedding {
                time_proj: Timesteps::new(d, c.flip_sin_to_cos, c.freq_shift),
                embedding: TimestepEmbedding::new(vs.pp("add_embedding"), input, temb)?,
            }),
            _ => None,
        };
        let mut down = Vec::with_capacity(n);
        for (i, l) in levels.iter().enumerate() {
            let vs = vs.pp("down_blocks").pp(i);
            let cin = if i == 0 { b0 } else { levels[i - 1].width };
            let resnets = (0..c.layers_per_block)
                .map(|j| cx.resnet(vs.pp("resnets").pp(j), if j == 0 { cin } else { l.width }, l.width, 1.0))
                .collect::<Result<Vec<_>>>()?;
            let attentions = match l.attention {
                Some(depth) => (0..c.layers_per_block)
                    .map(|j| cx.transformer(vs.pp("attentions").pp(j), l.width, l.heads, depth))
                    .collect::<Result<Vec<_>>>()?,
                None => Vec::new(),
            };
            let downsampler = if i + 1 < n {
                Some(conv3(l.width, l.width, 2, c.downsample_padding, vs.pp("downsamplers").pp(0).pp("conv"))?)
            } else {
                None
            };
            down.push(Down { resnets, attentions, downsampler });
        }
        let last = levels[n - 1];
        let vm = vs.pp("mid_block");
        let mid = (
            cx.resnet(vm.pp("resnets").pp(0), last.width, last.width, c.mid_block_scale_factor)?,
            cx.transformer(vm.pp("attentions").pp(0), last.width, last.heads, last.attention.unwrap_or(1))?,
            cx.resnet(vm.pp("resnets").pp(1), last.width, last.width, c.mid_block_scale_factor)?,
        );
        let rev: Vec<Level> = levels.iter().rev().copied().collect();
        let mut up = Vec::with_capacity(n);
        for (i, l) in rev.iter().enumerate() {
            let vs = vs.pp("up_blocks").pp(i);
            let prev = if i == 0 { rev[0].width } else { rev[i - 1].width };
            let input = rev[(i + 1).min(n - 1)].width;
            let layers = c.layers_per_block + 1;
            let resnets = (0..layers)
                .map(|j| {
                    let skip = if j + 1 == layers { input } else { l.width };
                    let rin = if j == 0 { prev } else { l.width };
                    cx.resnet(vs.pp("resnets").pp(j), rin + skip, l.width, 1.0)
                })
                .collect::<Result<Vec<_>>>()?;
            let attentions = match l.attention {
                Some(depth) => (0..layers)
                    .map(|j| cx.transformer(vs.pp("attentions").pp(j), l.width, l.heads, depth))
                    .collect::<Result<Vec<_>>>()?,
                None => Vec::new(),
            };
            let upsampler = if i + 1 < n {
                Some(conv3(l.width, l.width, 1, 1, vs.pp("upsamplers").pp(0).pp("conv"))?)
            } else {
                None
            };
            up.push(Up { resnets, attentions, upsampler });
        }
        let norm_out = layers::group_norm(c.norm_num_groups, b0, c.norm_eps, vs.pp("conv_norm_out"))?;
        let conv_out = conv3(b0, c.out_channels, 1, 1, vs.pp("conv_out"))?;
        Ok(Unet { conv_in, time_proj, time_embedding, add, down, mid, up, norm_out, conv_out, config })
    }

    /// The noise (or v) prediction at `timestep`.
    pub fn forward(
        &self,
        xs: &Tensor,
        timestep: f64,
        context: &Tensor,
        added: Option<(&Tensor, &Tensor)>,
    ) -> Result<Tensor> {
        let (b, _, _, _) = xs.dims4()?;
        let t = (Tensor::ones(b, candle_core::DType::F32, xs.device())? * timestep)?;
        let mut emb = self.time_embedding.forward(&self.time_proj.forward(&t)?.to_dtype(xs.dtype())?)?;
        match (&self.add, added) {
            (Some(add), Some((text_embeds, time_ids))) => {
                let ids = time_ids.flatten_all()?.to_dtype(candle_core::DType::F32)?;
                let t = add.time_proj.forward(&ids)?.reshape((b, ()))?.to_dtype(xs.dtype())?;
                let aug = add.embedding.forward(&Tensor::cat(&[text_embeds, &t], 1)?)?;
                emb = (emb + aug)?;
            }
            (Some(_), None) => candle_core::bail!("this UNet needs SDXL's added conditioning (pooled text, time ids)"),
            (None, _) => {}
        }
        let mut xs = self.conv_in.forward(xs)?;
        let mut skips = vec![xs.clone()];
        for d in &self.down {
            for (j, r) in d.resnets.iter().enumerate() {
                xs = r.forward(&xs, Some(&emb))?;
                if let Some(a) = d.attentions.get(j) {
                    xs = a.forward(&xs, context)?;
                }
                skips.push(xs.clone());
            }
            if let Some(ds) = &d.downsampler {
                xs = ds.forward(&xs)?;
                skips.push(xs.clone());
            }
        }
        xs = self.mid.0.forward(&xs, Some(&emb))?;
        xs = self.mid.1.forward(&xs, context)?;
        xs = self.mid.2.forward(&xs, Some(&emb))?;
        for u in &self.up {
            for (j, r) in u.resnets.iter().enumerate() {
                let skip = skips.pop().ok_or_else(|| candle_core::Error::Msg("unet skip stack underflow".into()))?;
                xs = r.forward(&Tensor::cat(&[&xs, &skip], 1)?, Some(&emb))?;
                if let Some(a) = u.attentions.get(j) {
                    xs = a.forward(&xs, context)?;
                }
            }
            if let Some(us) = &u.upsampler {
                // To the next skip's size (odd latent sizes halve with rounding up).
                let (h, w) = match skips.last() {
                    Some(s) => (s.dim(2)?, s.dim(3)?),
                    None => (2 * xs.dim(2)?, 2 * xs.dim(3)?),
                };
                xs = us.forward(&xs.upsample_nearest2d(h, w)?)?;
            }
        }
        let xs = self.norm_out.forward_silu(&xs)?;
        self.conv_out.forward(&xs)
    }
}
