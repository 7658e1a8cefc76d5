//! A whole CLIP model (transformers' `CLIPModel`): image and text embeddings in the joint
//! space, with CLIP's official image preprocessing ([`crate::preprocess`]), for the image
//! metrics of zipp-eval (CLIPScore, personalization CLIPScore, CMMD).
//!
//! [`ClipModel::load`] reads a transformers CLIP folder, e.g. a snapshot of
//! `openai/clip-vit-base-patch32` or `openai/clip-vit-large-patch14`:
//!
//! - `config.json`: `text_config`, `vision_config` (or the legacy `text_config_dict` /
//!   `vision_config_dict`, which win, as in transformers), `projection_dim`; keys a config
//!   leaves out take transformers' defaults;
//! - `model.safetensors` (or an fp16 variant, or shards), transformers' names
//!   (`text_model.*`, `vision_model.*`, `text_projection.weight`,
//!   `visual_projection.weight`); pickled `.bin` files are refused;
//! - `merges.txt` for the tokenizer, else zipp's provisioned CLIP vocabulary
//!   ([`ClipTokenizer::load_default`], the same ids as OpenAI's);
//! - `preprocessor_config.json` for the image preprocessing, else OpenAI's at the vision
//!   model's `image_size`.
//!
//! The embeddings are **not normalised**: they are transformers'
//! `get_image_features(...)` / `get_text_features(...)` (the projected pooled outputs). Cosine
//! similarities (zipp-eval's `cosine`, `clip_score`, `cmmd`) normalise them; divide by the
//! L2 norm for a unit vector.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use serde_json::{Map, Value};
use zipp_core::image::Image;
use zipp_core::tokenize::ClipTokenizer;
use zipp_core::{Error, Result};

use crate::clip::{ClipText, ClipTextConfig};
use crate::clip_vision::{ClipVision, ClipVisionConfig};
use crate::preprocess::{ClipPreprocess, Resize};
use crate::weights::{component_files, Files, Weights};

const MODEL: &str = "clip";
/// Images or prompts encoded per forward pass (bounds the activations' memory).
const BATCH: usize = 16;

/// A loaded CLIP model. `Send + Sync`: share it in an `Arc`.
pub struct ClipModel {
    text: ClipText,
    vision: ClipVision,
    tokenizer: Arc<ClipTokenizer>,
    preprocess: ClipPreprocess,
    projection_dim: usize,
    device: Device,
    dtype: DType,
    path: PathBuf,
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ClipModel>();
};

impl std::fmt::Debug for ClipModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipModel")
            .field("path", &self.path)
            .field("projection_dim", &self.projection_dim)
            .field("image_size", &self.vision.config.image_size)
            .field("device", &self.device)
            .field("dtype", &self.dtype)
            .finish()
    }
}

fn invalid(path: &Path, message: impl Into<String>) -> Error {
    Error::ModelInvalid {
        model: MODEL.into(),
        path: path.to_path_buf(),
        message: message.into(),
        hint: "point at a transformers CLIPModel folder (config.json with text_config and vision_config, \
               model.safetensors, merges.txt, preprocessor_config.json), e.g. a snapshot of openai/clip-vit-base-patch32"
            .into(),
    }
}

fn compute_err(e: candle_core::Error) -> Error {
    Error::Compute(crate::candle_message(&e))
}

/// transformers' `CLIPTextConfig` defaults (zipp's [`ClipTextConfig::default`] is SD 1.x's
/// text encoder, a different model).
fn text_defaults() -> Value {
    serde_json::json!({
        "vocab_size": 49408, "hidden_size": 512, "intermediate_size": 2048, "projection_dim": 512,
        "num_hidden_layers": 12, "num_attention_heads": 8, "max_position_embeddings": 77,
        "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "eos_token_id": 49407
    })
}

/// A sub-config: `defaults` overlaid with `<key>_dict` if the file has one (transformers
/// builds the whole sub-config from it then), else with `<key>`.
fn sub_config(top: &Map<String, Value>, key: &str, defaults: Value) -> std::result::Result<Value, String> {
    let mut merged = match defaults {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let legacy = top.get(&format!("{key}_dict")).filter(|v| !v.is_null());
    let Some(src) = legacy.or_else(|| top.get(key).filter(|v| !v.is_null())) else {
        return Err(format!("no `{key}`: not a CLIPModel config (a lone text or vision model is not supported)"));
    };
    let src = src.as_object().ok_or_else(|| format!("`{key}` is not an object"))?;
    for (k, v) in src {
        merged.insert(k.clone(), v.clone());
    }
    // transformers allows a list of end ids; the first is the end-of-text token.
    if let Some(Value::Array(ids)) = merged.get("eos_token_id") {
        let first = ids.first().cloned().unwrap_or(Value::Null);
        merged.insert("eos_token_id".into(), first);
    }
    Ok(Value::Object(merged))
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            invalid(path, "the file is missing")
        } else {
            Error::io(path, e)
        }
    })?;
    serde_json::from_str(&text).map_err(|e| invalid(path, format!("malformed JSON: {e}")))
}

impl ClipModel {
    /// Loads a CLIP model on the CPU in `f32` (see the module documentation for the folder).
    /// `path` may also be a Hugging Face cache entry or repo id already in the local cache
    /// (zipp never downloads).
    pub fn load(path: impl AsRef<Path>) -> Result<ClipModel> {
        ClipModel::load_on(path, &Device::Cpu, DType::F32)
    }

    /// [`ClipModel::load`] on `device` in `dtype` (F16/BF16 are for GPUs; embeddings are
    /// returned as `f32` either way).
    pub fn load_on(path: impl AsRef<Path>, device: &Device, dtype: DType) -> Result<ClipModel> {
        let path = crate::model::resolve_path(path.as_ref()).map_err(|e| match e {
            Error::ModelNotFound { path, hint, .. } => Error::ModelNotFound { model: MODEL.into(), path, hint },
            Error::ModelInvalid { path, message, hint, .. } => {
                Error::ModelInvalid { model: MODEL.into(), path, message, hint }
            }
            other => other,
        })?;
        if !path.is_dir() {
            return Err(invalid(&path, "not a directory"));
        }
        let config = read_json(&path.join("config.json"))?;
        let cfg_path = path.join("config.json");
        let top = config.as_object().ok_or_else(|| invalid(&cfg_path, "not a JSON object"))?;
        if let Some(t) = top.get("model_type").and_then(Value::as_str) {
            if t != "clip" {
                return Err(invalid(&cfg_path, format!("model_type {t:?} is not \"clip\"")));
            }
        }
        let text_value = sub_config(top, "text_config", text_defaults()).map_err(|m| invalid(&cfg_path, m))?;
        let mut text_config: ClipTextConfig =
            serde_json::from_value(text_value).map_err(|e| invalid(&cfg_path, format!("text_config: {e}")))?;
        let vision_value =
            sub_config(top, "vision_config", Value::Object(Map::new())).map_err(|m| invalid(&cfg_path, m))?;
        let vision_config: ClipVisionConfig =
            serde_json::from_value(vision_value).map_err(|e| invalid(&cfg_path, format!("vision_config: {e}")))?;
        let projection_dim = match top.get("projection_dim") {
            None | Some(Value::Null) => 512,
            Some(v) => v
                .as_u64()
                .filter(|&p| p > 0)
                .ok_or_else(|| invalid(&cfg_path, format!("projection_dim must be a positive integer, got {v}")))?
                as usize,
        };
        // CLIPModel's text_projection is projection_dim wide (the text config's own
        // projection_dim is for CLIPTextModelWithProjection).
        text_config.projection_dim = projection_dim;
        text_config.validate().map_err(|m| invalid(&cfg_path, format!("text_config: {m}")))?;
        vision_config.validate().map_err(|m| invalid(&cfg_path, format!("vision_config: {m}")))?;

        let tokenizer = if path.join("merges.txt").is_file() {
            ClipTokenizer::from_merges_file(path.join("merges.txt"))?
        } else {
            ClipTokenizer::load_default()?
        };
        if tokenizer.vocab_size() > text_config.vocab_size {
            return Err(invalid(
                &path,
                format!(
                    "the tokenizer has {} ids but the text model only {}: they do not belong together",
                    tokenizer.vocab_size(),
                    text_config.vocab_size
                ),
            ));
        }
        let eot = tokenizer.end_of_text_id();
        if text_config.eos_token_id == 2 {
            // transformers' legacy rule pools at the row's highest id: it must be the end token.
            if eot as usize + 1 != tokenizer.vocab_size() {
                return Err(invalid(
                    &cfg_path,
                    format!("eos_token_id 2 pools at the highest id, but the end-of-text id {eot} is not the highest"),
                ));
            }
        } else if text_config.eos_token_id != eot {
            return Err(invalid(
                &cfg_path,
                format!(
                    "text_config.eos_token_id {} is not the tokenizer's end-of-text id {eot}",
                    text_config.eos_token_id
                ),
            ));
        }

        let pre_path = path.join("preprocessor_config.json");
        let preprocess = if pre_path.is_file() {
            ClipPreprocess::from_config(&read_json(&pre_path)?).map_err(|m| invalid(&pre_path, m))?
        } else {
            ClipPreprocess::openai(vision_config.image_size as u32)
        };
        let side = vision_config.image_size as u32;
        let makes = match (preprocess.crop, preprocess.resize) {
            (Some(c), _) => Some(c),
            (None, Some(Resize::Exact { width, height })) => Some((width, height)),
            _ => None,
        };
        if makes != Some((side, side)) {
            let what = match makes {
                Some((w, h)) => format!("the preprocessing makes {w}x{h} images"),
                None => "the preprocessing has no centre crop nor fixed size, so images keep their aspect ratio".into(),
            };
            return Err(invalid(&pre_path, format!("{what}, the vision model takes {side}x{side}")));
        }

        let paths = component_files(&path, "model").map_err(|m| invalid(&path, m))?;
        let files = Files::open(&paths)
            .map(Arc::new)
            .map_err(|e| invalid(&path, format!("not a readable safetensors file: {}", crate::candle_message(&e))))?;
        let weights = Weights::identity(files, "clip");
        let load_err =
            |what: &str, e: candle_core::Error| invalid(&path, format!("{what}: {}", crate::candle_message(&e)));
        let text = zipp_core::runtime::compute(device, || {
            ClipText::new_with_projection(weights.var_builder(dtype, device), text_config, true)
        })
        .map_err(|e| load_err("text model", e))?;
        let vision = zipp_core::runtime::compute(device, || {
            ClipVision::new(weights.var_builder(dtype, device), vision_config, Some(projection_dim))
        })
        .map_err(|e| load_err("vision model", e))?;
        Ok(ClipModel {
            text,
            vision,
            tokenizer: Arc::new(tokenizer),
            preprocess,
            projection_dim,
            device: device.clone(),
            dtype,
            path,
        })
    }

    /// Width of the embeddings (`projection_dim`).
    pub fn projection_dim(&self) -> usize {
        self.projection_dim
    }

    /// The image preprocessing in use.
    pub fn preprocess(&self) -> &ClipPreprocess {
        &self.preprocess
    }

    pub fn tokenizer(&self) -> &ClipTokenizer {
        &self.tokenizer
    }

    pub fn text_model(&self) -> &ClipText {
        &self.text
    }

    pub fn vision_model(&self) -> &ClipVision {
        &self.vision
    }

    /// The folder the model was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The token ids the text model sees for `text`: start marker, BPE ids, end marker.
    /// More than the model's positions (77) is [`Error::InvalidInput`] (transformers would
    /// cut the text; zipp says so instead).
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = Vec::with_capacity(text.len() / 3 + 2);
        ids.push(self.tokenizer.start_of_text_id());
        ids.extend(self.tokenizer.encode(text));
        ids.push(self.tokenizer.end_of_text_id());
        let max = self.text.config.max_position_embeddings;
        if ids.len() > max {
            return Err(Error::InvalidInput(format!(
                "the text is {} tokens long with its start and end markers; the CLIP text model takes at most {max} \
                 (shorten it by {})",
                ids.len(),
                ids.len() - max
            )));
        }
        Ok(ids)
    }

    /// CLIP image embeddings, one `projection_dim` vector per image, **unnormalised**
    /// (transformers' `CLIPModel.get_image_features(pixel_values).pooler_output` after
    /// `CLIPImageProcessor`). An empty list is [`Error::InvalidInput`].
    pub fn image_embeddings(&self, images: &[Image]) -> Result<Vec<Vec<f32>>> {
        if images.is_empty() {
            return Err(Error::InvalidInput("no images to embed".into()));
        }
        // Check every image first, so an error names its index in `images`.
        for (i, image) in images.iter().enumerate() {
            self.preprocess.output_size(image.width(), image.height()).map_err(|e| match e {
                Error::InvalidInput(m) => Error::InvalidInput(format!("image {i}: {m}")),
                other => other,
            })?;
        }
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(BATCH) {
            let (data, shape) = self.preprocess.pixel_values(chunk)?;
            out.extend(self.run_vision(data, shape)?);
        }
        Ok(out)
    }

    /// Image embeddings of already preprocessed pixels `[n, 3, S, S]` (`S` = the vision
    /// model's `image_size`), e.g. a `CLIPImageProcessor`'s `pixel_values`; unnormalised.
    pub fn embed_pixels(&self, pixels: &Tensor) -> Result<Vec<Vec<f32>>> {
        let s = self.vision.config.image_size;
        match pixels.dims() {
            &[n, 3, h, w] if n > 0 && h == s && w == s => {}
            d => {
                return Err(Error::InvalidInput(format!(
                    "pixels of shape {d:?}; the vision model takes [n > 0, 3, {s}, {s}]"
                )))
            }
        }
        let shape = pixels.dims().to_vec();
        let data: Vec<f32> =
            zipp_core::runtime::compute(&self.device, || pixels.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>())
                .map_err(compute_err)?;
        let mut out = Vec::with_capacity(shape[0]);
        let per = shape[1] * shape[2] * shape[3];
        for chunk in data.chunks(BATCH * per) {
            out.extend(self.run_vision(chunk.to_vec(), [chunk.len() / per, shape[1], shape[2], shape[3]])?);
        }
        Ok(out)
    }

    fn run_vision(&self, data: Vec<f32>, shape: [usize; 4]) -> Result<Vec<Vec<f32>>> {
        zipp_core::runtime::compute(&self.device, || {
            let pixels = Tensor::from_vec(data, shape.to_vec(), &self.device)?.to_dtype(self.dtype)?;
            let out = self.vision.forward(&pixels)?;
            let embeds = out.embeds.ok_or_else(|| candle_core::Error::Msg("no visual projection".into()))?;
            embeds.to_dtype(DType::F32)?.to_vec2::<f32>()
        })
        .map_err(compute_err)
    }

    /// CLIP text embeddings, one `projection_dim` vector per text, **unnormalised**
    /// (transformers' `CLIPModel.get_text_features(**tokenizer(texts, padding=True))
    /// .pooler_output`). An empty list, or a text longer than 77 tokens with its markers, is
    /// [`Error::InvalidInput`]; an empty string is a valid text.
    pub fn text_embeddings(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Err(Error::InvalidInput("no texts to embed".into()));
        }
        let ids: Vec<Vec<u32>> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                self.token_ids(t).map_err(|e| match e {
                    Error::InvalidInput(m) => Error::InvalidInput(format!("text {i}: {m}")),
                    other => other,
                })
            })
            .collect::<Result<_>>()?;
        let eot = self.tokenizer.end_of_text_id();
        let mut out = Vec::with_capacity(texts.len());
        for chunk in ids.chunks(BATCH) {
            // Padding after the end token changes nothing (causal mask, pooled at the end
            // token); pad with the end token itself.
            let len = chunk.iter().map(Vec::len).max().unwrap_or(0);
            let flat: Vec<u32> =
                chunk.iter().flat_map(|r| r.iter().copied().chain(std::iter::repeat(eot)).take(len)).collect();
            let rows = zipp_core::runtime::compute(&self.device, || {
                let ids = Tensor::from_vec(flat, (chunk.len(), len), &self.device)?;
                self.text.forward(&ids)?.pooled.to_dtype(DType::F32)?.to_vec2::<f32>()
            })
            .map_err(compute_err)?;
            out.extend(rows);
        }
        Ok(out)
    }
}
