//! CLIP's vision transformer (ViT), on candle, under transformers' weight names
//! (`vision_model.*`, `visual_projection.weight`).
//!
//! The image is cut into `patch_size²` patches by a stride-`patch_size` convolution without
//! bias (`embeddings.patch_embedding`), a learned class token (`embeddings.class_embedding`)
//! is put in front, learned positions added (`embeddings.position_embedding`), then a layer
//! norm (`pre_layrnorm`, transformers' spelling), the pre-LN encoder layers (the same layers
//! as the text transformer, [`crate::clip::Layer`], unmasked), and a layer norm of the class
//! token (`post_layernorm`): that is the pooled output, and `visual_projection` (no bias)
//! maps it to the joint image–text space.
//!
//! Input pixels are `[n, 3, image_size, image_size]` as [`crate::preprocess`] makes them;
//! position embeddings are not interpolated to other sizes (transformers'
//! `interpolate_pos_encoding` is not supported).

use candle_core::{IndexOp, Module, Result, Tensor};
use candle_nn as nn;
use serde::Deserialize;

use crate::clip::{Activation, Layer};

/// The fields of a transformers `CLIPVisionConfig` zipp reads (the `vision_config` of a
/// CLIPModel's `config.json`). Defaults are transformers' (openai/clip-vit-base-patch32).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct ClipVisionConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_channels: usize,
    pub image_size: usize,
    pub patch_size: usize,
    pub hidden_act: String,
    pub layer_norm_eps: f64,
    /// Width of `visual_projection` when the vision config is used alone
    /// (`CLIPVisionModelWithProjection`); a CLIPModel uses its top-level `projection_dim`.
    pub projection_dim: usize,
}

impl Default for ClipVisionConfig {
    fn default() -> Self {
        ClipVisionConfig {
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            num_channels: 3,
            image_size: 224,
            patch_size: 32,
            hidden_act: "quick_gelu".into(),
            layer_norm_eps: 1e-5,
            projection_dim: 512,
        }
    }
}

impl ClipVisionConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.num_attention_heads == 0 || !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.patch_size == 0 || self.image_size == 0 || !self.image_size.is_multiple_of(self.patch_size) {
            return Err(format!(
                "image_size {} is not a positive multiple of patch_size {}",
                self.image_size, self.patch_size
            ));
        }
        if self.num_channels != 3 {
            return Err(format!("num_channels {} is not 3 (zipp feeds RGB images)", self.num_channels));
        }
        if self.num_hidden_layers == 0 || self.intermediate_size == 0 {
            return Err("num_hidden_layers and intermediate_size must be positive".into());
        }
        Activation::parse(&self.hidden_act).map(|_| ())
    }

    /// Patches along one side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }
}

/// What one vision pass returns.
#[derive(Debug, Clone)]
pub struct VisionOutput {
    /// `[n, 1 + patches, hidden]`, the encoder's output (before `post_layernorm`).
    pub last_hidden: Tensor,
    /// `[n, hidden]`: `post_layernorm` of the class token (transformers' `pooler_output`).
    pub pooled: Tensor,
    /// `[n, projection]`: `visual_projection(pooled)`, when the model has the projection.
    pub embeds: Option<Tensor>,
}

/// CLIP's vision transformer (`CLIPVisionModel`, with `visual_projection` when asked).
#[derive(Debug)]
pub struct ClipVision {
    patch_embedding: nn::Conv2d,
    class_embedding: Tensor,
    position_embedding: Tensor,
    pre_norm: nn::LayerNorm,
    layers: Vec<Layer>,
    post_norm: nn::LayerNorm,
    projection: Option<nn::Linear>,
    pub config: ClipVisionConfig,
}

impl ClipVision {
    /// Builds the model from weights named as transformers names them, `vs` at the model's
    /// root (`vision_model.*`); `projection`: the width of `visual_projection` (a CLIPModel's
    /// top-level `projection_dim`), or `None` to leave it out.
    pub fn new(vs: nn::VarBuilder, config: ClipVisionConfig, projection: Option<usize>) -> Result<ClipVision> {
        config.validate().map_err(candle_core::Error::Msg)?;
        let c = &config;
        let act = Activation::parse(&c.hidden_act).map_err(candle_core::Error::Msg)?;
        let vm = vs.pp("vision_model");
        let emb = vm.pp("embeddings");
        let conv = nn::Conv2dConfig { stride: c.patch_size, ..Default::default() };
        let patch_embedding =
            nn::conv2d_no_bias(c.num_channels, c.hidden_size, c.patch_size, conv, emb.pp("patch_embedding"))?;
        let class_embedding = emb.get(c.hidden_size, "class_embedding")?;
        let positions = c.grid() * c.grid() + 1;
        let position_embedding = emb.pp("position_embedding").get((positions, c.hidden_size), "weight")?;
        let pre_norm = nn::layer_norm(c.hidden_size, c.layer_norm_eps, vm.pp("pre_layrnorm"))?;
        let layers = Layer::stack(
            vm.pp("encoder"),
            c.num_hidden_layers,
            c.hidden_size,
            c.intermediate_size,
            c.num_attention_heads,
            c.layer_norm_eps,
            act,
        )?;
        let post_norm = nn::layer_norm(c.hidden_size, c.layer_norm_eps, vm.pp("post_layernorm"))?;
        let projection = match projection {
            Some(p) => Some(nn::linear_no_bias(c.hidden_size, p, vs.pp("visual_projection"))?),
            None => None,
        };
        Ok(ClipVision {
            patch_embedding,
            class_embedding,
            position_embedding,
            pre_norm,
            layers,
            post_norm,
            projection,
            config,
        })
    }

    /// Encodes preprocessed pixels `[n, 3, image_size, image_size]`.
    pub fn forward(&self, pixels: &Tensor) -> Result<VisionOutput> {
        let c = &self.config;
        let (n, ch, h, w) = pixels.dims4()?;
        if ch != c.num_channels || h != c.image_size || w != c.image_size {
            candle_core::bail!(
                "pixels of shape {:?}, the vision model takes [n, {}, {}, {}]",
                pixels.dims(),
                c.num_channels,
                c.image_size,
                c.image_size
            );
        }
        let pixels = pixels.to_dtype(self.class_embedding.dtype())?;
        // [n, hidden, g, g] -> [n, g*g, hidden]: patches in row-major order, as torch's flatten.
        let patches = self.patch_embedding.forward(&pixels)?.flatten_from(2)?.transpose(1, 2)?;
        let class = self.class_embedding.reshape((1, 1, c.hidden_size))?.broadcast_as((n, 1, c.hidden_size))?;
        let xs = Tensor::cat(&[&class, &patches], 1)?.broadcast_add(&self.position_embedding)?;
        let mut xs = self.pre_norm.forward(&xs)?;
        for layer in &self.layers {
            xs = layer.forward(&xs, None)?;
        }
        let pooled = self.post_norm.forward(&xs.i((.., 0, ..))?.contiguous()?)?;
        let embeds = match &self.projection {
            Some(p) => Some(p.forward(&pooled)?),
            None => None,
        };
        Ok(VisionOutput { last_hidden: xs, pooled, embeds })
    }
}
