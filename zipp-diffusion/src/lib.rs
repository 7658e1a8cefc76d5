//! # zipp-diffusion — the frozen text-to-image runner
//!
//! This crate will own everything that knows about UNets and schedulers (SPEC §8):
//! Stable-Diffusion-family models through candle-transformers, classifier-free guidance,
//! negative prompts, ViPer embedding steering (SPEC §7), seeds, progress and cancellation,
//! text-to-image and image-to-image. It consumes a [`zipp_core::Personalization`].
//!
//! - [`StableDiffusion`] loads SD 1.x / 2.x / SD-Turbo models from a diffusers-layout
//!   directory, a Hugging Face cache entry or a single-file checkpoint ([`model`]) and
//!   implements [`zipp_core::image::ImageGenerator`] ([`pipeline`]).
//! - [`scheduler`]: DDIM, Euler-ancestral and UniPC, configured from the model's own
//!   `scheduler_config.json`; [`noise`]: seeded noise drawn on the CPU.
//! - [`clip`] (CLIP text transformer), [`vae`], [`unet`]: the networks, on candle; [`layers`]
//!   and [`simd`]: zipp's CPU convolution, group norm, ResNet block and element-wise kernels.
//! - [`weights`], [`ldm`]: safetensors loading under diffusers' names, single-file renaming.
//!
//! SDXL is not supported yet (it needs the UNet's added text/time conditioning).
// Unsafe code, each with its SAFETY note: the memory map of weight files (weights.rs), the
// GEMM calls of the CPU convolution and attention (layers.rs, attention.rs) and the calls into
// the feature-gated kernel copies (simd.rs).
#![deny(unsafe_code)]

pub mod attention;
pub mod clip;
pub mod clip_model;
pub mod clip_vision;
pub mod layers;
pub mod ldm;
pub mod model;
pub mod noise;
pub mod pipeline;
pub mod preprocess;
pub mod scheduler;
pub mod simd;
pub mod taesd;
pub mod unet;
pub mod vae;
pub mod weights;
mod winograd;

pub use winograd::release_scratch;

pub use candle_core::{DType, Device};
pub use model::LoadOptions;

/// The compute device a name means: `"cpu"`, `"cuda"` (GPU 0), `"cuda:N"`, `"metal"`. A GPU
/// zipp was built without (features `cuda`, `metal`) is an error that says so.
pub fn device(name: &str) -> zipp_core::Result<Device> {
    let bad = |e: candle_core::Error| {
        zipp_core::Error::InvalidInput(format!("device {name:?} is not available: {}", candle_message(&e)))
    };
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Device::new_cuda(0).map_err(bad),
        "metal" => Device::new_metal(0).map_err(bad),
        other => match other.strip_prefix("cuda:").and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => Device::new_cuda(n).map_err(bad),
            None => Err(zipp_core::Error::InvalidInput(format!(
                "device {other:?}: use \"cpu\", \"cuda\", \"cuda:N\" or \"metal\""
            ))),
        },
    }
}

/// A candle error's message without the backtrace candle appends when `RUST_BACKTRACE` is
/// set (zipp's errors say what went wrong, not where in candle).
pub fn candle_message(e: &candle_core::Error) -> String {
    let s = e.to_string();
    match s.find("\n   0: ") {
        Some(i) => s[..i].trim_end().to_string(),
        None => s,
    }
}
pub use pipeline::StableDiffusion;

/// Image sizes handed to a UNet must be multiples of this (the VAE downsamples by 8).
pub const LATENT_SCALE: u32 = 8;

/// Validates a requested image size before any model sees it.
pub fn validate_size(width: u32, height: u32) -> zipp_core::Result<()> {
    for (name, v) in [("width", width), ("height", height)] {
        if v == 0 || v % LATENT_SCALE != 0 {
            return Err(zipp_core::Error::InvalidInput(format!(
                "{name} {v} must be a positive multiple of {LATENT_SCALE}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_by_name() {
        assert!(device("cpu").unwrap().is_cpu());
        assert!(device("tpu").is_err());
        // Built without CUDA / Metal: a clear error, not a panic.
        #[cfg(not(feature = "cuda"))]
        assert!(device("cuda:0").is_err());
        #[cfg(not(feature = "metal"))]
        assert!(device("metal").is_err());
    }

    #[test]
    fn sizes_must_be_multiples_of_eight() {
        assert!(validate_size(512, 768).is_ok());
        assert!(validate_size(510, 512).is_err());
        assert!(validate_size(512, 0).is_err());
    }
}
