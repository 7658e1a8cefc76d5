//! Image generation as JSON: the model spec, the request, and the driver both bindings use.
//!
//! [`DiffusionSpec`] loads a Stable Diffusion model:
//! `{"path": "…", "config_dir": …, "turbo": …, "prediction": "epsilon" | "v_prediction",
//! "sliced_attention": n, "with_encoder": true, "device": "cpu", "dtype": "f32",
//! "taesd": "…"}` (only `path` is required; see
//! `zipp_diffusion::LoadOptions`). [`request_from_json`] reads a request:
//! `{"prompt": …, "negative_prompt": …, "steering": {"liked": […], "disliked": […],
//! "liked_strength": 0.85, "disliked_strength": 0.85}, "disliked_as_negative": false,
//! "width": …, "height": …, "steps": …, "guidance": …, "scheduler": "ddim" | "euler" | "euler_a" |
//! "unipc", "seed": 0, "batch": 1, "first_index": 0, "strength": 0.75, "conditioning": {…},
//! "latents": […]}`, or `{"personalization": <a personalizer's output>, "seed": …, …}` to
//! render what a personalizer produced (its prompt, negative prompt and steering).
//! [`generate`] runs a generation on a worker thread and delivers step progress to the
//! calling thread.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use zipp_core::error::{Error, Result};
use zipp_core::image::{Conditioning, Image, ImageGenerator, ImageOutput, ImageRequest, InitImage, StepProgress};
use zipp_core::personalize::{Personalization, Steering};

use crate::job::{drive, Job};

/// A Stable Diffusion model as JSON (module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffusionSpec {
    pub path: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_dir: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turbo: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sliced_attention: Option<usize>,
    #[serde(default = "yes")]
    pub with_encoder: bool,
    /// `"cpu"` (default), `"cuda"`, `"cuda:N"` or `"metal"` (the GPU ones need zipp built
    /// with the `cuda` / `metal` feature).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// `"f32"` (default) or `"f16"` (GPUs; an SDXL VAE stays f32, see `force_upcast`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<String>,
    /// Decode with TAESD from this diffusers `AutoencoderTiny` folder instead of the VAE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taesd: Option<PathBuf>,
}

fn yes() -> bool {
    true
}

impl DiffusionSpec {
    /// Parses a spec; a bare JSON string is the path.
    pub fn from_json(json: &str) -> Result<DiffusionSpec> {
        let spec: DiffusionSpec = if json.trim().starts_with('"') {
            let path: PathBuf = zipp_core::json::from_str(json, "diffusion model spec")?;
            DiffusionSpec {
                path,
                config_dir: None,
                turbo: None,
                prediction: None,
                sliced_attention: None,
                with_encoder: true,
                device: None,
                dtype: None,
                taesd: None,
            }
        } else {
            zipp_core::json::from_str(json, "diffusion model spec")?
        };
        spec.options()?;
        Ok(spec)
    }

    fn options(&self) -> Result<zipp_diffusion::LoadOptions> {
        if self.path.as_os_str().is_empty() {
            return Err(Error::InvalidInput("the diffusion model spec needs a non-empty `path`".into()));
        }
        let prediction = match self.prediction.as_deref() {
            None => None,
            Some("epsilon") => Some(zipp_diffusion::scheduler::Prediction::Epsilon),
            Some("v_prediction") => Some(zipp_diffusion::scheduler::Prediction::VPrediction),
            Some(other) => {
                return Err(Error::InvalidInput(format!("prediction {other:?}: use \"epsilon\" or \"v_prediction\"")))
            }
        };
        if self.sliced_attention == Some(0) {
            return Err(Error::InvalidInput("sliced_attention must be at least 1 (or absent)".into()));
        }
        let dtype = match self.dtype.as_deref() {
            None | Some("f32") => zipp_diffusion::DType::F32,
            Some("f16") => zipp_diffusion::DType::F16,
            Some(other) => return Err(Error::InvalidInput(format!("dtype {other:?}: use \"f32\" or \"f16\""))),
        };
        let device = zipp_diffusion::device(self.device.as_deref().unwrap_or("cpu"))?;
        Ok(zipp_diffusion::LoadOptions {
            device,
            dtype,
            sliced_attention: self.sliced_attention,
            turbo: self.turbo,
            config_dir: self.config_dir.clone(),
            prediction,
            with_encoder: self.with_encoder,
            taesd: self.taesd.clone(),
        })
    }

    /// Loads the model.
    pub fn build(&self) -> Result<Arc<dyn ImageGenerator>> {
        Ok(Arc::new(zipp_diffusion::StableDiffusion::load(&self.path, &self.options()?)?))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestJson {
    #[serde(default)]
    prompt: String,
    #[serde(default)]
    negative_prompt: Option<String>,
    #[serde(default)]
    steering: Option<Steering>,
    #[serde(default)]
    personalization: Option<Personalization>,
    #[serde(default)]
    disliked_as_negative: bool,
    #[serde(default)]
    width: Option<u32>,
    #[serde(default)]
    height: Option<u32>,
    #[serde(default)]
    steps: Option<u32>,
    #[serde(default)]
    guidance: Option<f32>,
    #[serde(default)]
    scheduler: Option<String>,
    #[serde(default)]
    seed: u64,
    #[serde(default = "one")]
    batch: u32,
    #[serde(default)]
    first_index: u64,
    #[serde(default)]
    strength: Option<f32>,
    #[serde(default)]
    conditioning: Option<Conditioning>,
    #[serde(default)]
    latents: Option<Vec<f32>>,
}

fn one() -> u32 {
    1
}

/// diffusers' default image-to-image strength.
pub const DEFAULT_STRENGTH: f32 = 0.75;

/// A request from JSON (module documentation), with the init image for image-to-image.
pub fn request_from_json(json: &str, init_image: Option<Image>) -> Result<ImageRequest> {
    let r: RequestJson = zipp_core::json::from_str(json, "image request")?;
    let mut req = ImageRequest {
        prompt: r.prompt,
        negative_prompt: r.negative_prompt,
        steering: r.steering,
        disliked_as_negative: r.disliked_as_negative,
        width: r.width,
        height: r.height,
        steps: r.steps,
        guidance: r.guidance,
        scheduler: r.scheduler,
        seed: r.seed,
        batch: r.batch,
        first_index: r.first_index,
        init_image: None,
        conditioning: r.conditioning,
        latents: r.latents,
    };
    if let Some(p) = r.personalization {
        if !req.prompt.is_empty() || req.negative_prompt.is_some() || req.steering.is_some() {
            return Err(Error::InvalidInput(
                "give either a personalization or prompt/negative_prompt/steering, not both".into(),
            ));
        }
        req.prompt = p.prompt;
        req.negative_prompt = p.negative_prompt;
        req.steering = p.steering;
    }
    match (init_image, r.strength) {
        (Some(image), s) => req.init_image = Some(InitImage { image, strength: s.unwrap_or(DEFAULT_STRENGTH) }),
        (None, Some(_)) => {
            return Err(Error::InvalidInput("`strength` is for image-to-image: pass an init image too".into()))
        }
        (None, None) => {}
    }
    Ok(req)
}

/// Generates on a worker thread, calling `on_step` for each finished step on *this*
/// thread; `on_step` returning `false` or `interrupted()` returning `true` (polled every
/// [`crate::job::POLL`]) cancels, and the result is then [`Error::Cancelled`].
pub fn generate(
    model: Arc<dyn ImageGenerator>,
    request: ImageRequest,
    on_step: impl FnMut(StepProgress) -> bool,
    interrupted: impl FnMut() -> bool,
) -> Result<ImageOutput> {
    let job = Job::start("zipp-image", move |cancel, emit| {
        model.generate(&request, cancel, &mut |p: &StepProgress| emit(*p))
    })?;
    drive(job, on_step, interrupted)
}

/// The conditioning of a request (embeddings out) with its tokenization report, as JSON:
/// the `Conditioning` object plus `"report"`.
pub fn conditioning_json(model: &dyn ImageGenerator, request: &ImageRequest) -> Result<String> {
    let (cond, report) = model.encode(request)?;
    let mut v = serde_json::to_value(&cond).map_err(|e| Error::Internal(e.to_string()))?;
    v["report"] = serde_json::to_value(&report).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(v.to_string())
}

/// The JSON of an output's metadata (everything but the pixels).
pub fn output_json(out: &ImageOutput) -> String {
    serde_json::json!({
        "count": out.images.len(),
        "width": out.width,
        "height": out.height,
        "steps": out.steps,
        "guidance": out.guidance,
        "scheduler": out.scheduler,
        "report": out.report,
        "timings": {"text_s": out.text_s, "denoise_s": out.denoise_s, "decode_s": out.decode_s},
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_strictly() {
        let r = request_from_json(r#"{"prompt": "a cat", "seed": 3, "steps": 2}"#, None).unwrap();
        assert_eq!((r.prompt.as_str(), r.seed, r.steps, r.batch), ("a cat", 3, Some(2), 1));
        assert!(request_from_json(r#"{"prompt": "a cat", "colour": 1}"#, None).is_err());
        assert!(request_from_json(r#"{"prompt": "a cat", "strength": 0.5}"#, None).is_err());
        let img = Image::new(8, 8, vec![0; 192]).unwrap();
        let r = request_from_json(r#"{"prompt": "a cat"}"#, Some(img)).unwrap();
        assert_eq!(r.init_image.unwrap().strength, DEFAULT_STRENGTH);
        let p = r#"{"personalization": {"method": "x", "prompt": "a red cat", "evidence": {}}}"#;
        let r = request_from_json(p, None);
        // An evidence object is required by the personalization schema; the error names it.
        if let Ok(r) = r {
            assert_eq!(r.prompt, "a red cat");
        }
        assert!(DiffusionSpec::from_json(r#"{"path": ""}"#).is_err());
        assert!(DiffusionSpec::from_json(r#"{"path": "m", "prediction": "x"}"#).is_err());
        assert!(DiffusionSpec::from_json(r#"{"path": "m", "dtype": "f8"}"#).is_err());
        assert!(DiffusionSpec::from_json(r#"{"path": "m", "device": "tpu"}"#).is_err());
        assert_eq!(DiffusionSpec::from_json(r#""/m""#).unwrap().path, PathBuf::from("/m"));
        let e = DiffusionSpec::from_json(r#""/nonexistent/model""#).unwrap().build().err().unwrap();
        assert_eq!(e.kind(), zipp_core::ErrorKind::ModelNotFound, "{e}");
    }
}
