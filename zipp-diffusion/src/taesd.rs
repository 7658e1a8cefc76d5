//! TAESD, the tiny autoencoder's decoder (diffusers' `AutoencoderTiny`, madebyollin/taesd
//! for SD 1.x/2.x, taesdxl for SDXL): a plain conv/ReLU stack that decodes latents about
//! 50× cheaper than the KL VAE, at some cost in detail — the decoder for previews and for
//! users who want speed. Loaded from a diffusers `AutoencoderTiny` folder (`config.json`,
//! `diffusion_pytorch_model.safetensors`); checked against diffusers (`tests/taesd.rs`).

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn as nn;
use serde::Deserialize;

use crate::layers::{self, Conv2d};
use crate::weights::{component_files, Files, Weights};

/// The fields of an `AutoencoderTiny` `config.json` the decoder reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct TaesdConfig {
    pub latent_channels: usize,
    pub out_channels: usize,
    pub decoder_block_out_channels: Vec<usize>,
    pub num_decoder_blocks: Vec<usize>,
    pub upsampling_scaling_factor: usize,
    pub act_fn: String,
    pub upsample_fn: String,
    /// What the latents are divided by before decoding (1.0 for TAESD: it decodes the
    /// UNet's latents as they are).
    pub scaling_factor: f64,
}

impl Default for TaesdConfig {
    fn default() -> Self {
        TaesdConfig {
            latent_channels: 4,
            out_channels: 3,
            decoder_block_out_channels: vec![64; 4],
            num_decoder_blocks: vec![3, 3, 3, 1],
            upsampling_scaling_factor: 2,
            act_fn: "relu".into(),
            upsample_fn: "nearest".into(),
            scaling_factor: 1.0,
        }
    }
}

impl TaesdConfig {
    fn validate(&self) -> std::result::Result<(), String> {
        let c = &self.decoder_block_out_channels;
        if c.is_empty() || c.len() != self.num_decoder_blocks.len() {
            return Err("decoder_block_out_channels and num_decoder_blocks must be equally long and non-empty".into());
        }
        if c.iter().any(|&w| w != c[0]) {
            return Err(format!("decoder levels of different widths {c:?} are not supported (diffusers neither)"));
        }
        if self.act_fn != "relu" || self.upsample_fn != "nearest" || self.upsampling_scaling_factor != 2 {
            return Err("only ReLU, nearest 2x upsampling (TAESD's) are supported".into());
        }
        if !(self.scaling_factor.is_finite() && self.scaling_factor > 0.0) {
            return Err("scaling_factor must be positive".into());
        }
        Ok(())
    }
}

fn conv(cin: usize, cout: usize, k: usize, bias: bool, vs: nn::VarBuilder) -> Result<Conv2d> {
    layers::conv2d(cin, cout, k, k / 2, 1, bias, vs)
}

#[derive(Debug)]
enum Layer {
    /// A convolution then (when `relu`) a ReLU.
    Conv(Conv2d, bool),
    /// `relu(conv3(relu(conv2(relu(conv1(x))))) + x)`.
    Block([Conv2d; 3]),
    Upsample,
}

/// TAESD's decoder: latents `[n, 4, h, w]` → images `[n, 3, 8h, 8w]` in about `[-1, 1]`.
#[derive(Debug)]
pub struct TinyDecoder {
    layers: Vec<Layer>,
    pub config: TaesdConfig,
}

impl TinyDecoder {
    /// Builds the decoder from weights named as diffusers names them (`decoder.layers.N…`:
    /// the indices count every module of its `nn.Sequential`, activations and upsamplers
    /// included).
    pub fn new(vs: nn::VarBuilder, config: TaesdConfig) -> Result<TinyDecoder> {
        config.validate().map_err(candle_core::Error::Msg)?;
        let vs = vs.pp("decoder").pp("layers");
        let w = config.decoder_block_out_channels[0];
        let mut layers = vec![Layer::Conv(conv(config.latent_channels, w, 3, true, vs.pp(0))?, true)];
        let mut idx = 2; // 0: conv, 1: ReLU
        let n = config.num_decoder_blocks.len();
        for (i, &blocks) in config.num_decoder_blocks.iter().enumerate() {
            for _ in 0..blocks {
                let b = vs.pp(idx).pp("conv");
                layers.push(Layer::Block([
                    conv(w, w, 3, true, b.pp(0))?,
                    conv(w, w, 3, true, b.pp(2))?,
                    conv(w, w, 3, true, b.pp(4))?,
                ]));
                idx += 1;
            }
            let last = i + 1 == n;
            if !last {
                layers.push(Layer::Upsample);
                idx += 1;
            }
            let out = if last { config.out_channels } else { w };
            layers.push(Layer::Conv(conv(w, out, 3, last, vs.pp(idx))?, false));
            idx += 1;
        }
        Ok(TinyDecoder { layers, config })
    }

    /// Loads a diffusers `AutoencoderTiny` folder.
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> zipp_core::Result<TinyDecoder> {
        let invalid = |m: String| zipp_core::Error::ModelInvalid {
            model: "taesd".into(),
            path: dir.to_path_buf(),
            message: m,
            hint: "point at a diffusers AutoencoderTiny folder (e.g. madebyollin/taesd): config.json and \
                   diffusion_pytorch_model.safetensors"
                .into(),
        };
        if !dir.is_dir() {
            return Err(zipp_core::Error::ModelNotFound {
                model: "taesd".into(),
                path: dir.to_path_buf(),
                hint: "no such folder".into(),
            });
        }
        let text =
            std::fs::read_to_string(dir.join("config.json")).map_err(|e| invalid(format!("config.json: {e}")))?;
        let config: TaesdConfig = serde_json::from_str(&text).map_err(|e| invalid(format!("config.json: {e}")))?;
        let paths = component_files(dir, "diffusion_pytorch_model").map_err(invalid)?;
        let files = Files::open(&paths).map_err(|e| invalid(crate::candle_message(&e)))?;
        let weights = Weights::identity(Arc::new(files), "taesd");
        zipp_core::runtime::compute(device, || TinyDecoder::new(weights.var_builder(dtype, device), config))
            .map_err(|e| invalid(crate::candle_message(&e)))
    }

    /// Decodes latents (already divided by `scaling_factor`).
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        // TAESD's input clamp: tanh(x / 3) · 3.
        let mut x = ((z / 3.0)?.tanh()? * 3.0)?;
        for layer in &self.layers {
            x = match layer {
                Layer::Conv(c, relu) => {
                    let y = c.forward(&x)?;
                    if *relu {
                        y.relu()?
                    } else {
                        y
                    }
                }
                Layer::Block([a, b, c]) => {
                    let y = b.forward(&a.forward(&x)?.relu()?)?.relu()?;
                    c.forward_fused(&y, None, Some(&x), 1.0)?.relu()?
                }
                Layer::Upsample => {
                    let (_, _, h, w) = x.dims4()?;
                    x.upsample_nearest2d(2 * h, 2 * w)?
                }
            };
        }
        // [0, 1] → [-1, 1], as diffusers' AutoencoderTiny returns.
        (x * 2.0)? - 1.0
    }
}
