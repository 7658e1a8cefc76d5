//! The image boundary: RGB images, what a text-to-image request asks for, and the
//! [`ImageGenerator`] stage trait `zipp-diffusion` implements.
//!
//! Plain data only: no tensors, no backend. A request carries everything that changes the
//! output (prompt, negative prompt, ViPer steering, size, steps, guidance, seed, scheduler,
//! an init image for image-to-image, or precomputed conditioning), so the same request on
//! the same model gives the same image.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::lm::Cancel;
use crate::personalize::{Personalization, Steering};

/// An 8-bit RGB image, rows top to bottom, pixels packed (`width * 3` bytes per row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Image {
    /// An image from packed RGB bytes; the length must be `width * height * 3`.
    pub fn new(width: u32, height: u32, rgb: Vec<u8>) -> Result<Image> {
        let need = (width as usize).checked_mul(height as usize).and_then(|p| p.checked_mul(3));
        if width == 0 || height == 0 || need != Some(rgb.len()) {
            return Err(Error::InvalidInput(format!(
                "an RGB image of {width}x{height} needs {} bytes, got {}",
                need.map_or("too many".into(), |n| n.to_string()),
                rgb.len()
            )));
        }
        Ok(Image { width, height, rgb })
    }

    /// An image from rows `stride` bytes apart (`stride ≥ width * 3`; the bytes after each
    /// row's pixels are ignored). `data` must hold `stride * (height - 1) + width * 3` bytes.
    pub fn from_strided(width: u32, height: u32, stride: usize, data: &[u8]) -> Result<Image> {
        let row = width as usize * 3;
        if width == 0 || height == 0 {
            return Err(Error::InvalidInput(format!("image size {width}x{height} must be positive")));
        }
        if stride < row {
            return Err(Error::InvalidInput(format!("stride {stride} is shorter than a row of {row} bytes")));
        }
        let need = stride.checked_mul(height as usize - 1).and_then(|n| n.checked_add(row));
        if need.is_none_or(|n| data.len() < n) {
            return Err(Error::InvalidInput(format!(
                "a {width}x{height} RGB image with stride {stride} needs {} bytes, got {}",
                need.map_or("too many".into(), |n| n.to_string()),
                data.len()
            )));
        }
        let mut rgb = Vec::with_capacity(row * height as usize);
        for y in 0..height as usize {
            rgb.extend_from_slice(&data[y * stride..y * stride + row]);
        }
        Ok(Image { width, height, rgb })
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// The packed RGB bytes.
    pub fn rgb(&self) -> &[u8] {
        &self.rgb
    }

    pub fn into_rgb(self) -> Vec<u8> {
        self.rgb
    }
}

/// Text-encoder conditioning: what a pipeline feeds its UNet for one prompt. Shapes are
/// `[1, tokens, dim]` (`tokens` = 77 × chunks) and, for SDXL, a pooled `[1, pooled_dim]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embeds {
    pub tokens: usize,
    pub dim: usize,
    /// `tokens * dim` numbers, row-major.
    pub data: Vec<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooled: Option<Vec<f32>>,
}

impl Embeds {
    /// Checks sizes and finiteness.
    pub fn validate(&self, what: &str) -> Result<()> {
        if self.tokens == 0 || self.dim == 0 || self.tokens.checked_mul(self.dim) != Some(self.data.len()) {
            return Err(Error::InvalidInput(format!(
                "{what}: {} numbers do not make {} tokens of width {}",
                self.data.len(),
                self.tokens,
                self.dim
            )));
        }
        if self.data.iter().chain(self.pooled.iter().flatten()).any(|x| !x.is_finite()) {
            return Err(Error::InvalidInput(format!("{what}: embeddings hold NaN or infinity")));
        }
        Ok(())
    }
}

/// A prompt's conditioning, as a pipeline computes it (embeddings out) or as a caller hands
/// it back (embeddings in): the prompt, the negative prompt, and ViPer's liked/disliked
/// attribute embeddings when steering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conditioning {
    /// Which model computed it (the generator's id); a pipeline refuses another model's.
    pub model: String,
    pub prompt: Embeds,
    pub negative: Embeds,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liked: Option<Embeds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disliked: Option<Embeds>,
}

/// An image-to-image start: the image and how much of it to re-noise (0 keeps it, 1 starts
/// from noise).
#[derive(Debug, Clone, PartialEq)]
pub struct InitImage {
    pub image: Image,
    pub strength: f32,
}

/// What to generate. `None` fields take the model's defaults (its size, its scheduler, 50
/// steps and guidance 7.5 — or 1 step without guidance for a Turbo model).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImageRequest {
    pub prompt: String,
    pub negative_prompt: Option<String>,
    /// ViPer steering (SPEC §7); strengths of 0 are the plain pipeline, bit for bit.
    pub steering: Option<Steering>,
    /// Also append the disliked attributes to the negative prompt.
    pub disliked_as_negative: bool,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub steps: Option<u32>,
    pub guidance: Option<f32>,
    /// `ddim`, `euler`, `euler_a` or `unipc`; the model's own scheduler when unset.
    pub scheduler: Option<String>,
    pub seed: u64,
    /// Images per request (each from its own noise stream: image `k` equals the single image
    /// of the same seed with `first_index = k`).
    pub batch: u32,
    pub first_index: u64,
    pub init_image: Option<InitImage>,
    /// Precomputed conditioning instead of encoding the prompts.
    pub conditioning: Option<Conditioning>,
    /// Initial latents `[batch, 4, h/8, w/8]`, row-major, instead of seeded noise (to match
    /// another pipeline's start exactly).
    pub latents: Option<Vec<f32>>,
}

impl ImageRequest {
    /// A request for `prompt` with everything else at its default.
    pub fn new(prompt: impl Into<String>) -> ImageRequest {
        ImageRequest { prompt: prompt.into(), batch: 1, ..Default::default() }
    }

    /// The request a personalization makes: its prompt, negative prompt and steering.
    pub fn from_personalization(p: &Personalization, seed: u64) -> ImageRequest {
        ImageRequest {
            prompt: p.prompt.clone(),
            negative_prompt: p.negative_prompt.clone(),
            steering: p.steering.clone(),
            seed,
            batch: 1,
            ..Default::default()
        }
    }
}

/// One finished denoising step, for progress reporting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepProgress {
    /// Steps done (1-based) and to do in all.
    pub step: u32,
    pub total: u32,
    pub timestep: f64,
    pub elapsed_s: f64,
}

/// How a prompt was tokenized: nothing is cut silently.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PromptReport {
    /// CLIP tokens of the prompt and the negative prompt (without start/end markers).
    pub prompt_tokens: usize,
    pub negative_tokens: usize,
    /// 77-token windows the prompts were encoded in (75 tokens each).
    pub chunks: usize,
    /// Attributes dropped by the 77-token cut of the steering text, after the seeded shuffle.
    pub liked_dropped: Vec<String>,
    pub disliked_dropped: Vec<String>,
}

/// What a generation returns.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageOutput {
    pub images: Vec<Image>,
    pub report: PromptReport,
    /// The settings the defaults resolved to.
    pub steps: u32,
    pub guidance: f32,
    pub scheduler: String,
    pub width: u32,
    pub height: u32,
    /// Seconds spent encoding text, denoising, and decoding.
    pub text_s: f64,
    pub denoise_s: f64,
    pub decode_s: f64,
}

/// A text-to-image model. Shared between threads; each call is independent.
pub trait ImageGenerator: Send + Sync {
    /// Identifies the model and everything that changes its output.
    fn id(&self) -> String;

    /// Generates images, calling `progress` after each denoising step (on the calling thread)
    /// and stopping with [`Error::Cancelled`] within one step of `cancel` being set.
    fn generate(
        &self,
        request: &ImageRequest,
        cancel: &Cancel,
        progress: &mut dyn FnMut(&StepProgress),
    ) -> Result<ImageOutput>;

    /// The conditioning `generate` would compute for the request (embeddings out).
    fn encode(&self, request: &ImageRequest) -> Result<(Conditioning, PromptReport)>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_rows_drop_their_padding() {
        let data = [1, 2, 3, 4, 5, 6, 0, 0, 7, 8, 9, 10, 11, 12];
        let img = Image::from_strided(2, 2, 8, &data).unwrap();
        assert_eq!(img.rgb(), &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        assert!(Image::from_strided(2, 2, 5, &data).is_err());
        assert!(Image::from_strided(2, 2, 8, &data[..13]).is_err());
        assert!(Image::new(2, 2, vec![0; 11]).is_err());
        assert!(Image::new(0, 2, vec![]).is_err());
        assert!(Image::from_strided(u32::MAX, u32::MAX, usize::MAX, &data).is_err());
    }
}
