//! # zipp-diffusion — the frozen text-to-image runner
//!
//! This crate will own everything that knows about UNets and schedulers (SPEC §8):
//! Stable-Diffusion-family models through candle-transformers, classifier-free guidance,
//! negative prompts, ViPer embedding steering (SPEC §7), seeds, progress and cancellation,
//! text-to-image and image-to-image. It consumes a [`zipp_core::Personalization`].
//!
//! Status: being built (the image issue). Today: seeded CPU noise ([`noise`]) and the
//! scheduler boundary ([`scheduler`]).
#![forbid(unsafe_code)]

pub mod noise;
pub mod scheduler;

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
    fn sizes_must_be_multiples_of_eight() {
        assert!(validate_size(512, 768).is_ok());
        assert!(validate_size(510, 512).is_err());
        assert!(validate_size(512, 0).is_err());
    }
}
