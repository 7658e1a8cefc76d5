//! The KL autoencoder (diffusers' `AutoencoderKL`), built from candle's public blocks.
//!
//! zipp assembles the encoder and decoder itself (candle's own `AutoEncoderKL` samples the
//! latent distribution with the device's unseeded generator and hides its mean): the
//! encoder here returns the distribution's mean and log-variance, and the pipeline samples
//! it with [`crate::noise::Noise`], so image-to-image is as deterministic as text-to-image.

use candle_core::{Module, Result, Tensor, D};
use candle_nn as nn;
use serde::Deserialize;

use crate::attention::VaeAttention;
use crate::layers::{self, Conv2d, GroupNorm, ResnetBlock, ResnetConfig};

/// The fields of a diffusers `vae/config.json` zipp reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct VaeConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub latent_channels: usize,
    pub block_out_channels: Vec<usize>,
    pub layers_per_block: usize,
    pub norm_num_groups: usize,
    pub scaling_factor: f64,
    /// SD3/Flux-style VAEs shift latents; SD 1/2/XL have none.
    pub shift_factor: Option<f64>,
    pub use_quant_conv: bool,
    pub use_post_quant_conv: bool,
    pub down_block_types: Vec<String>,
    pub up_block_types: Vec<String>,
    pub sample_size: usize,
    /// SDXL's VAE overflows in f16 (black images) unless upcast: diffusers' `force_upcast`.
    pub force_upcast: bool,
}

impl Default for VaeConfig {
    fn default() -> Self {
        // Stable Diffusion 1.x/2.x's VAE.
        VaeConfig {
            in_channels: 3,
            out_channels: 3,
            latent_channels: 4,
            block_out_channels: vec![128, 256, 512, 512],
            layers_per_block: 2,
            norm_num_groups: 32,
            scaling_factor: 0.18215,
            shift_factor: None,
            use_quant_conv: true,
            use_post_quant_conv: true,
            down_block_types: vec!["DownEncoderBlock2D".into(); 4],
            up_block_types: vec!["UpDecoderBlock2D".into(); 4],
            sample_size: 512,
            force_upcast: true,
        }
    }
}

impl VaeConfig {
    /// Checks what the blocks assume, so a wrong config is an error and not a panic.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.block_out_channels.is_empty() {
            return Err("block_out_channels is empty".into());
        }
        if self.norm_num_groups == 0 || self.block_out_channels.iter().any(|c| c % self.norm_num_groups != 0) {
            return Err(format!(
                "norm_num_groups {} does not divide every block width {:?}",
                self.norm_num_groups, self.block_out_channels
            ));
        }
        if let Some(t) = self
            .down_block_types
            .iter()
            .chain(&self.up_block_types)
            .find(|t| !matches!(t.as_str(), "DownEncoderBlock2D" | "UpDecoderBlock2D"))
        {
            return Err(format!("block type {t} is not supported (only DownEncoderBlock2D/UpDecoderBlock2D)"));
        }
        if self.latent_channels == 0 || self.in_channels == 0 || self.out_channels == 0 {
            return Err("channel counts must be positive".into());
        }
        Ok(())
    }

    /// How much smaller the latents are than the image (8 for SD: three downsamplers).
    pub fn downscale(&self) -> usize {
        1 << (self.block_out_channels.len() - 1)
    }
}

fn conv3(cin: usize, cout: usize, vs: nn::VarBuilder) -> Result<Conv2d> {
    layers::conv2d(cin, cout, 3, 1, 1, true, vs)
}

fn resnets(vs: nn::VarBuilder, count: usize, cin: usize, cout: usize, groups: usize) -> Result<Vec<ResnetBlock>> {
    (0..count)
        .map(|i| {
            let cin = if i == 0 { cin } else { cout };
            let cfg = ResnetConfig { cin, cout, temb: None, groups, eps: 1e-6, output_scale_factor: 1.0 };
            ResnetBlock::new(vs.pp("resnets").pp(i), cfg)
        })
        .collect()
}

/// diffusers' `UNetMidBlock2D` in the VAE: ResNet, single-head self-attention, ResNet.
#[derive(Debug)]
struct MidBlock {
    first: ResnetBlock,
    attention: VaeAttention,
    second: ResnetBlock,
}

impl MidBlock {
    fn new(vs: nn::VarBuilder, channels: usize, groups: usize) -> Result<MidBlock> {
        let mut r = resnets(vs.clone(), 2, channels, channels, groups)?;
        let second = r.pop().expect("two resnets");
        let first = r.pop().expect("two resnets");
        let attention = VaeAttention::new(vs.pp("attentions").pp(0), channels, groups, 1e-6)?;
        Ok(MidBlock { first, attention, second })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let xs = self.first.forward(xs, None)?;
        self.second.forward(&self.attention.forward(&xs)?, None)
    }
}

/// diffusers' `DownEncoderBlock2D` (ResNets, then a stride-2 convolution after padding the
/// right and bottom edges by one) and `UpDecoderBlock2D` (ResNets, then nearest ×2
/// upsampling and a convolution).
#[derive(Debug)]
struct CoderBlock {
    resnets: Vec<ResnetBlock>,
    resample: Resample,
}

#[derive(Debug)]
enum Resample {
    Down(Conv2d),
    Up(Conv2d),
    None,
}

impl CoderBlock {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mut xs = xs.clone();
        for r in &self.resnets {
            xs = r.forward(&xs, None)?;
        }
        match &self.resample {
            Resample::Down(conv) => {
                conv.forward(&xs.pad_with_zeros(D::Minus1, 0, 1)?.pad_with_zeros(D::Minus2, 0, 1)?)
            }
            Resample::Up(conv) => {
                let (_, _, h, w) = xs.dims4()?;
                conv.forward(&xs.upsample_nearest2d(2 * h, 2 * w)?)
            }
            Resample::None => Ok(xs),
        }
    }
}

#[derive(Debug)]
struct Encoder {
    conv_in: Conv2d,
    down: Vec<CoderBlock>,
    mid: MidBlock,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl Encoder {
    fn new(vs: nn::VarBuilder, c: &VaeConfig) -> Result<Encoder> {
        let ch = &c.block_out_channels;
        let conv_in = conv3(c.in_channels, ch[0], vs.pp("conv_in"))?;
        let down = (0..ch.len())
            .map(|i| {
                let vs = vs.pp("down_blocks").pp(i);
                let resnets =
                    resnets(vs.clone(), c.layers_per_block, ch[i.saturating_sub(1)], ch[i], c.norm_num_groups)?;
                let resample = if i + 1 < ch.len() {
                    Resample::Down(layers::conv2d(ch[i], ch[i], 3, 0, 2, true, vs.pp("downsamplers").pp(0).pp("conv"))?)
                } else {
                    Resample::None
                };
                Ok(CoderBlock { resnets, resample })
            })
            .collect::<Result<Vec<_>>>()?;
        let last = ch[ch.len() - 1];
        let mid = MidBlock::new(vs.pp("mid_block"), last, c.norm_num_groups)?;
        let norm_out = layers::group_norm(c.norm_num_groups, last, 1e-6, vs.pp("conv_norm_out"))?;
        let conv_out = conv3(last, 2 * c.latent_channels, vs.pp("conv_out"))?;
        Ok(Encoder { conv_in, down, mid, norm_out, conv_out })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mut xs = self.conv_in.forward(xs)?;
        for block in &self.down {
            xs = block.forward(&xs)?;
        }
        let xs = self.norm_out.forward_silu(&self.mid.forward(&xs)?)?;
        self.conv_out.forward(&xs)
    }
}

#[derive(Debug)]
struct Decoder {
    conv_in: Conv2d,
    mid: MidBlock,
    up: Vec<CoderBlock>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl Decoder {
    fn new(vs: nn::VarBuilder, c: &VaeConfig) -> Result<Decoder> {
        let rev: Vec<usize> = c.block_out_channels.iter().rev().copied().collect();
        let conv_in = conv3(c.latent_channels, rev[0], vs.pp("conv_in"))?;
        let mid = MidBlock::new(vs.pp("mid_block"), rev[0], c.norm_num_groups)?;
        let up = (0..rev.len())
            .map(|i| {
                let vs = vs.pp("up_blocks").pp(i);
                let cin = rev[i.saturating_sub(1)];
                let resnets = resnets(vs.clone(), c.layers_per_block + 1, cin, rev[i], c.norm_num_groups)?;
                let resample = if i + 1 < rev.len() {
                    Resample::Up(conv3(rev[i], rev[i], vs.pp("upsamplers").pp(0).pp("conv"))?)
                } else {
                    Resample::None
                };
                Ok(CoderBlock { resnets, resample })
            })
            .collect::<Result<Vec<_>>>()?;
        let first = c.block_out_channels[0];
        let norm_out = layers::group_norm(c.norm_num_groups, first, 1e-6, vs.pp("conv_norm_out"))?;
        let conv_out = conv3(first, c.out_channels, vs.pp("conv_out"))?;
        Ok(Decoder { conv_in, mid, up, norm_out, conv_out })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mut xs = self.mid.forward(&self.conv_in.forward(xs)?)?;
        for block in &self.up {
            xs = block.forward(&xs)?;
        }
        self.conv_out.forward(&self.norm_out.forward_silu(&xs)?)
    }
}

/// The autoencoder: images in `[-1, 1]` ↔ latents (unscaled; the pipeline applies
/// `scaling_factor`).
#[derive(Debug)]
pub struct Vae {
    encoder: Option<Encoder>,
    decoder: Decoder,
    quant_conv: Option<Conv2d>,
    post_quant_conv: Option<Conv2d>,
    pub config: VaeConfig,
}

impl Vae {
    /// Builds the autoencoder; `with_encoder = false` skips the encoder's weights (text-to-image
    /// never encodes).
    pub fn new(vs: nn::VarBuilder, config: VaeConfig, with_encoder: bool) -> Result<Vae> {
        let z = config.latent_channels;
        let encoder = if with_encoder { Some(Encoder::new(vs.pp("encoder"), &config)?) } else { None };
        let decoder = Decoder::new(vs.pp("decoder"), &config)?;
        let quant_conv = if config.use_quant_conv && with_encoder {
            Some(layers::conv2d(2 * z, 2 * z, 1, 0, 1, true, vs.pp("quant_conv"))?)
        } else {
            None
        };
        let post_quant_conv = if config.use_post_quant_conv {
            Some(layers::conv2d(z, z, 1, 0, 1, true, vs.pp("post_quant_conv"))?)
        } else {
            None
        };
        Ok(Vae { encoder, decoder, quant_conv, post_quant_conv, config })
    }

    /// The latent distribution of images `[n, 3, h, w]` in `[-1, 1]`: `(mean, std)`.
    pub fn encode(&self, xs: &Tensor) -> Result<(Tensor, Tensor)> {
        let Some(encoder) = &self.encoder else {
            candle_core::bail!("the autoencoder was loaded without its encoder");
        };
        let mut moments = encoder.forward(xs)?;
        if let Some(q) = &self.quant_conv {
            moments = q.forward(&moments)?;
        }
        let parts = moments.chunk(2, 1)?;
        let logvar = parts[1].clamp(-30f32, 20f32)?;
        let std = (logvar * 0.5)?.exp()?;
        Ok((parts[0].clone(), std))
    }

    /// Images `[n, 3, 8h, 8w]` (about `[-1, 1]`) from unscaled latents `[n, 4, h, w]`.
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        let z = match &self.post_quant_conv {
            Some(p) => p.forward(z)?,
            None => z.clone(),
        };
        self.decoder.forward(&z)
    }
}
