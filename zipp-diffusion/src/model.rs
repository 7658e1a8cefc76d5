//! Finding and loading a Stable Diffusion model: a diffusers-layout directory, a Hugging
//! Face cache entry, or a single-file checkpoint.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device};
use serde::de::DeserializeOwned;
use zipp_core::tokenize::ClipTokenizer;
use zipp_core::{Error, Result};

use crate::clip::{ClipText, ClipTextConfig};
use crate::ldm::{self, TextLayout};
use crate::scheduler::{Prediction, SchedulerConfig, SchedulerKind, Spacing};
use crate::unet::{PerBlock, Unet, UnetConfig};
use crate::vae::{Vae, VaeConfig};
use crate::weights::{component_files, Files, Weights};

const MODEL: &str = "stable-diffusion";

/// How to load a model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub device: Device,
    /// F32 everywhere on the CPU; F16 is for GPUs.
    pub dtype: DType,
    /// Attention slicing: compute attention this many heads at a time (memory for speed).
    pub sliced_attention: Option<usize>,
    /// Treat the model as a Turbo (1–4 steps, no guidance); detected from its scheduler
    /// config when unset.
    pub turbo: Option<bool>,
    /// For a single-file checkpoint: a diffusers-layout directory whose `unet/`, `vae/`,
    /// `text_encoder/` (and `text_encoder_2/` for SDXL), `scheduler/` configs and tokenizers
    /// describe it. Without one, zipp's built-in SD 1.x / 2.1 / SDXL-base configurations are
    /// used, chosen from the checkpoint's tensor names; with `turbo: Some(true)` the built-in
    /// scheduler is the Turbo's (SD-Turbo: Euler, SDXL-Turbo: Euler-ancestral; `trailing`,
    /// ε-prediction), since a Turbo's weights look like its base model's.
    pub config_dir: Option<PathBuf>,
    /// For single files without `config_dir`, the prediction type when the weights cannot
    /// tell: the 768-px 2.x models predict `v`, the 512-px "base" ones and SD-Turbo `epsilon`.
    /// Default: `v_prediction` for SD 2.x (ε with `turbo: Some(true)`), ε otherwise.
    pub prediction: Option<Prediction>,
    /// Load the VAE encoder (needed for image-to-image only).
    pub with_encoder: bool,
    /// Decode with TAESD (a diffusers `AutoencoderTiny` folder: madebyollin/taesd for SD
    /// 1.x/2.x, taesdxl for SDXL) instead of the KL VAE: ~50× cheaper, less detail.
    pub taesd: Option<PathBuf>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            device: Device::Cpu,
            dtype: DType::F32,
            sliced_attention: None,
            turbo: None,
            config_dir: None,
            prediction: None,
            with_encoder: true,
            taesd: None,
        }
    }
}

/// A text encoder with its tokenizer and pad token.
pub struct TextEncoder {
    pub model: ClipText,
    pub tokenizer: Arc<ClipTokenizer>,
    pub pad_id: u32,
}

/// A loaded SD 1.x / 2.x / XL / Turbo model.
pub struct Components {
    pub id: String,
    /// One text encoder (SD 1.x/2.x) or two (SDXL: CLIP ViT-L, then OpenCLIP bigG).
    pub encoders: Vec<TextEncoder>,
    /// SDXL: an empty negative prompt conditions on zeros (diffusers'
    /// `force_zeros_for_empty_prompt`).
    pub zeros_for_empty_negative: bool,
    pub unet: Unet,
    pub unet_config: UnetConfig,
    pub vae: Vae,
    /// TAESD's decoder, when the options name one: images are decoded with it.
    pub tiny_decoder: Option<crate::taesd::TinyDecoder>,
    pub scheduler: SchedulerConfig,
    pub turbo: bool,
    pub device: Device,
    pub dtype: DType,
    /// The VAE's dtype: F32 when the model is F16 but its VAE config says `force_upcast`
    /// (SDXL's VAE overflows in f16 and decodes black images; diffusers upcasts it too).
    pub vae_dtype: DType,
    /// The weight files, for the record.
    pub files: Vec<PathBuf>,
}

fn invalid(path: &Path, message: impl Into<String>) -> Error {
    Error::ModelInvalid {
        model: MODEL.into(),
        path: path.to_path_buf(),
        message: message.into(),
        hint: "point at a diffusers-layout directory (model_index.json, unet/, vae/, text_encoder/, tokenizer/, \
               scheduler/), a Hugging Face cache entry, or a single-file .safetensors checkpoint"
            .into(),
    }
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            invalid(path, "the file is missing")
        } else {
            Error::io(path, e)
        }
    })?;
    serde_json::from_str(&text).map_err(|e| invalid(path, format!("not a valid config: {e}")))
}

/// Resolves a Hugging Face cache entry (`…/models--org--name`, or a repo id `org/name` looked
/// up in `$HF_HUB_CACHE`, `$HF_HOME/hub` or `~/.cache/huggingface/hub`) to its snapshot
/// directory; any other path is returned as it is.
pub fn resolve_path(path: &Path) -> Result<PathBuf> {
    if path.exists() {
        if path.join("snapshots").is_dir() {
            return snapshot(path);
        }
        return Ok(path.to_path_buf());
    }
    let s = path.to_string_lossy();
    if s.split('/').count() == 2 && !s.starts_with('.') && !s.contains('\\') {
        let caches: Vec<PathBuf> = [
            std::env::var_os("HF_HUB_CACHE").map(PathBuf::from),
            std::env::var_os("HF_HOME").map(|h| PathBuf::from(h).join("hub")),
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface/hub")),
        ]
        .into_iter()
        .flatten()
        .collect();
        for c in &caches {
            let entry = c.join(format!("models--{}", s.replace('/', "--")));
            if entry.join("snapshots").is_dir() {
                return snapshot(&entry);
            }
        }
        return Err(Error::ModelNotFound {
            model: MODEL.into(),
            path: path.to_path_buf(),
            hint: format!(
                "not a path, and no Hugging Face cache entry for {s} in {} (zipp never downloads: fetch it with \
                 huggingface-cli download {s}, or pass the directory)",
                caches.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", ")
            ),
        });
    }
    Err(Error::ModelNotFound {
        model: MODEL.into(),
        path: path.to_path_buf(),
        hint: "no such file or directory".into(),
    })
}

fn snapshot(entry: &Path) -> Result<PathBuf> {
    if let Ok(r) = std::fs::read_to_string(entry.join("refs/main")) {
        let p = entry.join("snapshots").join(r.trim());
        if p.is_dir() {
            return Ok(p);
        }
    }
    let mut snaps: Vec<PathBuf> = std::fs::read_dir(entry.join("snapshots"))
        .map_err(|e| Error::io(entry, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    snaps.sort();
    match snaps.len() {
        1 => Ok(snaps.remove(0)),
        0 => Err(invalid(entry, "the cache entry has no snapshot")),
        n => Err(invalid(entry, format!("{n} snapshots and no refs/main: pass the snapshot directory you mean"))),
    }
}

/// What the loader reads a model's parts from.
struct Layout {
    unet: Weights,
    vae: Weights,
    texts: Vec<TextPart>,
    unet_config: UnetConfig,
    vae_config: VaeConfig,
    scheduler: SchedulerConfig,
    zeros_for_empty_negative: bool,
    files: Vec<PathBuf>,
}

/// A text encoder's weights, config and tokenizer files.
struct TextPart {
    weights: Weights,
    config: ClipTextConfig,
    tokenizer_dir: Option<PathBuf>,
    /// Default pad token when the tokenizer files do not say.
    default_pad: &'static str,
}

fn open_files(paths: &[PathBuf], at: &Path) -> Result<Arc<Files>> {
    Files::open(paths).map(Arc::new).map_err(|e| invalid(at, format!("not a readable safetensors file: {e}")))
}

fn diffusers_layout(dir: &Path) -> Result<Layout> {
    if !dir.join("model_index.json").is_file() {
        return Err(invalid(dir, "no model_index.json: not a diffusers-layout directory"));
    }
    let index: serde_json::Value = read_json(&dir.join("model_index.json"))?;
    let xl = index.get("text_encoder_2").is_some_and(|v| !v.is_null());
    let part = |name: &str, stem: &str| -> Result<(Weights, Vec<PathBuf>)> {
        let d = dir.join(name);
        let paths = component_files(&d, stem).map_err(|m| invalid(&d, m))?;
        let files = open_files(&paths, &d)?;
        Ok((Weights::identity(files, name), paths))
    };
    let (unet, mut files) = part("unet", "diffusion_pytorch_model")?;
    let (vae, f) = part("vae", "diffusion_pytorch_model")?;
    files.extend(f);
    let mut texts = Vec::new();
    for &(enc, tok, pad) in &TEXT_PARTS[..if xl { 2 } else { 1 }] {
        let (weights, f) = part(enc, "model")?;
        files.extend(f);
        texts.push(TextPart {
            weights,
            config: read_json(&dir.join(enc).join("config.json"))?,
            tokenizer_dir: Some(dir.join(tok)).filter(|d| d.is_dir()),
            default_pad: pad,
        });
    }
    let scheduler = scheduler_config(dir)?;
    Ok(Layout {
        unet,
        vae,
        texts,
        unet_config: read_json(&dir.join("unet/config.json"))?,
        vae_config: read_json(&dir.join("vae/config.json"))?,
        scheduler,
        zeros_for_empty_negative: xl && force_zeros(Some(&index)),
        files,
    })
}

/// zipp's built-in SD 2.x configuration (stabilityai/stable-diffusion-2-1; SD-Turbo has the
/// same networks): UNet and text encoder.
pub fn sd2_configs() -> (UnetConfig, ClipTextConfig) {
    let unet = UnetConfig {
        attention_head_dim: PerBlock::Each(vec![5, 10, 20, 20]),
        cross_attention_dim: 1024,
        use_linear_projection: true,
        upcast_attention: true,
        sample_size: 96,
        ..UnetConfig::default()
    };
    let text = ClipTextConfig {
        hidden_size: 1024,
        intermediate_size: 4096,
        num_hidden_layers: 23,
        num_attention_heads: 16,
        hidden_act: "gelu".into(),
        projection_dim: 512,
        ..ClipTextConfig::default()
    };
    (unet, text)
}

/// zipp's built-in SDXL configuration (stabilityai/stable-diffusion-xl-base-1.0; SDXL-Turbo
/// has the same architecture): UNet, VAE, the two text encoders.
pub fn sdxl_configs() -> (UnetConfig, VaeConfig, [ClipTextConfig; 2]) {
    let unet = UnetConfig {
        sample_size: 128,
        down_block_types: ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"].map(String::from).to_vec(),
        up_block_types: ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"].map(String::from).to_vec(),
        block_out_channels: vec![320, 640, 1280],
        attention_head_dim: PerBlock::Each(vec![5, 10, 20]),
        transformer_layers_per_block: PerBlock::Each(vec![1, 2, 10]),
        cross_attention_dim: 2048,
        use_linear_projection: true,
        addition_embed_type: Some("text_time".into()),
        addition_time_embed_dim: Some(256),
        projection_class_embeddings_input_dim: Some(2816),
        ..UnetConfig::default()
    };
    let vae = VaeConfig { scaling_factor: 0.13025, sample_size: 1024, force_upcast: true, ..VaeConfig::default() };
    let big_g = ClipTextConfig {
        hidden_size: 1280,
        intermediate_size: 5120,
        num_hidden_layers: 32,
        num_attention_heads: 20,
        hidden_act: "gelu".into(),
        projection_dim: 1280,
        architectures: vec!["CLIPTextModelWithProjection".into()],
        ..ClipTextConfig::default()
    };
    (unet, vae, [ClipTextConfig::default(), big_g])
}

/// The scheduler SD-Turbo (Euler) and SDXL-Turbo (Euler-ancestral) ship: `trailing` spacing,
/// ε-prediction.
fn turbo_scheduler(ancestral: bool) -> SchedulerConfig {
    SchedulerConfig {
        class_name: if ancestral { "EulerAncestralDiscreteScheduler" } else { "EulerDiscreteScheduler" }.into(),
        timestep_spacing: Some(Spacing::Trailing),
        ..SchedulerConfig::default()
    }
}

/// SDXL base's scheduler (Euler, `leading` spacing).
fn sdxl_scheduler() -> SchedulerConfig {
    SchedulerConfig {
        class_name: "EulerDiscreteScheduler".into(),
        timestep_spacing: Some(Spacing::Leading),
        ..SchedulerConfig::default()
    }
}

/// The configurations a single-file checkpoint is loaded with.
struct SingleConfigs {
    unet: UnetConfig,
    vae: VaeConfig,
    /// Per text encoder: its config and tokenizer folder.
    texts: Vec<(ClipTextConfig, Option<PathBuf>)>,
    scheduler: SchedulerConfig,
    zeros_for_empty_negative: bool,
}

/// The configurations of a diffusers-layout folder, for a single file of the same model.
fn configs_from_dir(dir: &Path, xl: bool) -> Result<SingleConfigs> {
    let mut texts = Vec::new();
    for &(enc, tok, _) in &TEXT_PARTS[..if xl { 2 } else { 1 }] {
        texts.push((read_json(&dir.join(enc).join("config.json"))?, Some(dir.join(tok)).filter(|d| d.is_dir())));
    }
    let index = dir.join("model_index.json");
    let index: Option<serde_json::Value> = if index.is_file() { Some(read_json(&index)?) } else { None };
    Ok(SingleConfigs {
        unet: read_json(&dir.join("unet/config.json"))?,
        vae: read_json(&dir.join("vae/config.json"))?,
        texts,
        scheduler: scheduler_config(dir)?,
        zeros_for_empty_negative: xl && force_zeros(index.as_ref()),
    })
}

/// A diffusers folder's text encoders with their tokenizer folders and default pad tokens:
/// SD 1.x/2.x have the first, SDXL both.
const TEXT_PARTS: [(&str, &str, &str); 2] =
    [("text_encoder", "tokenizer", "<|endoftext|>"), ("text_encoder_2", "tokenizer_2", "!")];

/// A diffusers folder's `scheduler/scheduler_config.json`, or SD's training schedule without one.
fn scheduler_config(dir: &Path) -> Result<SchedulerConfig> {
    let path = dir.join("scheduler/scheduler_config.json");
    if path.is_file() {
        read_json(&path)
    } else {
        Ok(SchedulerConfig::default())
    }
}

/// diffusers' `force_zeros_for_empty_prompt` (SDXL; default true).
fn force_zeros(index: Option<&serde_json::Value>) -> bool {
    index.and_then(|v| v.get("force_zeros_for_empty_prompt")).and_then(|v| v.as_bool()).unwrap_or(true)
}

/// zipp's built-in configurations for a single file of `layouts` (one per text encoder).
fn builtin_configs(layouts: &[TextLayout], opts: &LoadOptions) -> SingleConfigs {
    let turbo = opts.turbo == Some(true);
    // (UNet, VAE, text encoders, scheduler, prediction when `opts` does not say)
    let (mut unet, vae, texts, scheduler, prediction) = match layouts {
        [_, _] => {
            let (unet, vae, texts) = sdxl_configs();
            let scheduler = if turbo { turbo_scheduler(true) } else { sdxl_scheduler() };
            (unet, vae, texts.to_vec(), scheduler, Prediction::Epsilon)
        }
        [TextLayout::OpenClip] => {
            // SD-Turbo is a 2.1 that predicts ε; the 2.x base models v.
            let (unet, text) = sd2_configs();
            let (scheduler, prediction) = if turbo {
                (turbo_scheduler(false), Prediction::Epsilon)
            } else {
                (SchedulerConfig::default(), Prediction::VPrediction)
            };
            (unet, VaeConfig::default(), vec![text], scheduler, prediction)
        }
        _ => (
            UnetConfig::default(),
            VaeConfig::default(),
            vec![ClipTextConfig::default()],
            SchedulerConfig::default(),
            Prediction::Epsilon,
        ),
    };
    if turbo {
        unet.sample_size = 64; // the Turbos make 512-px images by default (SD 1.x's is 64 too)
    }
    SingleConfigs {
        unet,
        vae,
        texts: texts.into_iter().map(|t| (t, None)).collect(),
        scheduler: SchedulerConfig { prediction_type: opts.prediction.unwrap_or(prediction), ..scheduler },
        zeros_for_empty_negative: layouts.len() == 2,
    }
}

fn single_file(path: &Path, opts: &LoadOptions) -> Result<Layout> {
    let files = open_files(&[path.to_path_buf()], path)?;
    let names = files.names();
    if !ldm::is_checkpoint(&names) {
        return Err(invalid(path, "no model.diffusion_model.* tensors: not a Stable Diffusion checkpoint"));
    }
    let xl = ldm::is_xl(&names);
    let prefixes: &[&str] = if xl { &ldm::XL_TEXT_PREFIXES } else { &[ldm::TEXT_PREFIX] };
    let layouts: Vec<Option<TextLayout>> = prefixes.iter().map(|p| ldm::text_layout(&names, p)).collect();
    let layouts: Vec<TextLayout> = match layouts.as_slice() {
        [Some(l)] => vec![*l],
        [Some(TextLayout::OpenAi), Some(TextLayout::OpenClip)] => vec![TextLayout::OpenAi, TextLayout::OpenClip],
        [Some(TextLayout::OpenClip), None] => {
            return Err(invalid(
                path,
                "an SDXL refiner checkpoint (one OpenCLIP encoder under conditioner.embedders.0.): zipp runs \
                 text-to-image base models (SDXL base, SDXL-Turbo)",
            ))
        }
        [None] => return Err(invalid(path, "no text encoder (cond_stage_model.*) in the checkpoint")),
        _ => {
            return Err(invalid(
                path,
                "conditioner.embedders.* is not SDXL's pair of text encoders (CLIP ViT-L under \
                 conditioner.embedders.0.transformer., OpenCLIP bigG under conditioner.embedders.1.model.)",
            ))
        }
    };
    let SingleConfigs { unet: unet_config, vae: vae_config, texts, scheduler, zeros_for_empty_negative } =
        match &opts.config_dir {
            Some(dir) => configs_from_dir(dir, xl)?,
            None => builtin_configs(&layouts, opts),
        };
    let unet = Weights::with_table(files.clone(), ldm::unet_table(&names, unet_config.layers_per_block), "unet");
    let vae = Weights::with_table(files.clone(), ldm::vae_table(&names, vae_config.block_out_channels.len()), "vae");
    let texts = texts
        .into_iter()
        .zip(prefixes.iter().zip(&layouts))
        .enumerate()
        .map(|(i, ((config, tokenizer_dir), (prefix, layout)))| TextPart {
            weights: Weights::with_table(
                files.clone(),
                ldm::text_table(&names, prefix, *layout, config.hidden_size),
                if i == 0 { "text encoder" } else { "second text encoder" },
            ),
            config,
            tokenizer_dir,
            default_pad: if *layout == TextLayout::OpenClip { "!" } else { "<|endoftext|>" },
        })
        .collect();
    Ok(Layout {
        unet,
        vae,
        texts,
        unet_config,
        vae_config,
        scheduler,
        zeros_for_empty_negative,
        files: vec![path.to_path_buf()],
    })
}

/// The pad token a tokenizer directory names (`special_tokens_map.json` or
/// `tokenizer_config.json`, a string or `{"content": …}`).
fn pad_token(dir: &Path) -> Option<String> {
    for f in ["special_tokens_map.json", "tokenizer_config.json"] {
        let Ok(text) = std::fs::read_to_string(dir.join(f)) else { continue };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
        match v.get("pad_token") {
            Some(serde_json::Value::String(s)) => return Some(s.clone()),
            Some(o) => {
                if let Some(s) = o.get("content").and_then(|c| c.as_str()) {
                    return Some(s.to_string());
                }
            }
            None => {}
        }
    }
    None
}

/// A short fingerprint of the weight files (names, sizes, modification times).
fn fingerprint(files: &[PathBuf]) -> String {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for f in files {
        let meta = std::fs::metadata(f).ok();
        let size = meta.as_ref().map_or(0, |m| m.len());
        let mtime = meta
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        h = zipp_core::rng::fnv1a(format!("{h}:{}:{size}:{mtime}", f.display()).as_bytes());
    }
    format!("{h:016x}")
}

impl Components {
    /// Loads a model from `path` (see [`resolve_path`]).
    pub fn load(path: &Path, opts: &LoadOptions) -> Result<Components> {
        let path = resolve_path(path)?;
        let layout = if path.is_file() {
            if path.extension().and_then(|e| e.to_str()) != Some("safetensors") {
                return Err(invalid(
                    &path,
                    "single-file checkpoints must be .safetensors (pickled .ckpt files can run code)",
                ));
            }
            single_file(&path, opts)?
        } else {
            diffusers_layout(&path)?
        };
        let Layout { unet, vae, texts, unet_config, vae_config, scheduler, zeros_for_empty_negative, files } = layout;

        let (dev, dt) = (&opts.device, opts.dtype);
        let load_err =
            |what: &str, e: candle_core::Error| invalid(&path, format!("{what}: {}", crate::candle_message(&e)));
        let mut encoders = Vec::with_capacity(texts.len());
        let mut width = 0;
        for (i, part) in texts.into_iter().enumerate() {
            let what = if i == 0 { "text encoder" } else { "second text encoder" };
            let tokenizer = match &part.tokenizer_dir {
                Some(d) => ClipTokenizer::from_merges_file(d.join("merges.txt"))?,
                None => ClipTokenizer::load_default()?,
            };
            let pad = part.tokenizer_dir.as_deref().and_then(pad_token).unwrap_or_else(|| part.default_pad.to_string());
            let pad_id = tokenizer
                .token_id(&pad)
                .ok_or_else(|| invalid(&path, format!("the pad token {pad:?} is not in the tokenizer's vocabulary")))?;
            if tokenizer.vocab_size() > part.config.vocab_size {
                return Err(invalid(
                    &path,
                    format!(
                        "the tokenizer has {} ids but the {what} only {}: they do not belong together",
                        tokenizer.vocab_size(),
                        part.config.vocab_size
                    ),
                ));
            }
            part.config.validate().map_err(|m| invalid(&path, format!("{what} config: {m}")))?;
            width += part.config.hidden_size;
            let model =
                zipp_core::runtime::compute(dev, || ClipText::new(part.weights.var_builder(dt, dev), part.config))
                    .map_err(|e| load_err(what, e))?;
            encoders.push(TextEncoder { model, tokenizer: Arc::new(tokenizer), pad_id });
        }
        let xl = encoders.len() == 2;
        if xl != unet_config.text_time() {
            return Err(invalid(
                &path,
                "SDXL needs both: two text encoders and a UNet with text_time conditioning (this model has only one)",
            ));
        }
        if xl && !encoders[1].model.config.with_projection() {
            return Err(invalid(
                &path,
                "SDXL's second text encoder must have a text_projection (CLIPTextModelWithProjection)",
            ));
        }
        vae_config.validate().map_err(|m| invalid(&path, format!("vae config: {m}")))?;
        unet_config.levels().map_err(|m| invalid(&path, format!("unet config: {m}")))?;
        if unet_config.cross_attention_dim != width {
            return Err(invalid(
                &path,
                format!(
                    "the UNet attends to {}-wide text states but the text encoders make {width}",
                    unet_config.cross_attention_dim
                ),
            ));
        }
        if xl {
            let pooled = encoders[1].model.config.projection_dim;
            let want = unet_config.projection_class_embeddings_input_dim.unwrap_or(0);
            let time = unet_config.addition_time_embed_dim.unwrap_or(0);
            if pooled + 6 * time != want {
                return Err(invalid(
                    &path,
                    format!("the UNet's added conditioning takes {want} numbers, not pooled {pooled} + 6 x {time}"),
                ));
            }
        }
        if scheduler.num_train_timesteps == 0 || !(scheduler.beta_start > 0.0 && scheduler.beta_end < 1.0) {
            return Err(invalid(&path, "scheduler config: implausible training schedule"));
        }

        let vae_dtype = if dt == DType::F16 && vae_config.force_upcast { DType::F32 } else { dt };
        let unet_model = zipp_core::runtime::compute(dev, || {
            Unet::new(unet.var_builder(dt, dev), unet_config.clone(), opts.sliced_attention)
        })
        .map_err(|e| load_err("unet", e))?;
        let vae_model = zipp_core::runtime::compute(dev, || {
            Vae::new(vae.var_builder(vae_dtype, dev), vae_config, opts.with_encoder)
        })
        .map_err(|e| load_err("vae", e))?;
        // SD-Turbo and SDXL-Turbo ship an Euler (sd-turbo) or Euler-ancestral scheduler with
        // `trailing` spacing; no base model does.
        let turbo = opts.turbo.unwrap_or(
            matches!(scheduler.kind(), Some(SchedulerKind::EulerAncestral | SchedulerKind::Euler))
                && scheduler.timestep_spacing == Some(Spacing::Trailing),
        );
        let family = match (xl, turbo) {
            (false, false) => "sd",
            (false, true) => "sd-turbo",
            (true, false) => "sdxl",
            (true, true) => "sdxl-turbo",
        };
        let tiny_decoder = match &opts.taesd {
            Some(dir) => Some(crate::taesd::TinyDecoder::load(dir, vae_dtype, dev)?),
            None => None,
        };
        let mut id = format!("{family}:{}", fingerprint(&files));
        if let Some(dir) = &opts.taesd {
            id.push_str(&format!("+taesd:{}", fingerprint(&[dir.join("diffusion_pytorch_model.safetensors")])));
        }
        Ok(Components {
            id,
            encoders,
            zeros_for_empty_negative,
            unet: unet_model,
            unet_config,
            vae: vae_model,
            tiny_decoder,
            scheduler,
            turbo,
            device: opts.device.clone(),
            dtype: opts.dtype,
            vae_dtype,
            files,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The built-in single-file configurations hold together the way `Components::load`
    /// checks a model: the UNet attends to the encoders' joint width and SDXL's added
    /// conditioning takes pooled + 6 time ids.
    #[test]
    fn builtin_configurations_are_consistent() {
        let opts = LoadOptions::default();
        let xl = builtin_configs(&[TextLayout::OpenAi, TextLayout::OpenClip], &opts);
        let width: usize = xl.texts.iter().map(|(c, _)| c.hidden_size).sum();
        assert_eq!(xl.unet.cross_attention_dim, width);
        assert!(xl.unet.text_time() && xl.texts[1].0.with_projection() && xl.zeros_for_empty_negative);
        assert_eq!(
            xl.unet.projection_class_embeddings_input_dim,
            Some(xl.texts[1].0.projection_dim + 6 * xl.unet.addition_time_embed_dim.unwrap())
        );
        assert!(xl.unet.levels().is_ok());
        assert_eq!(xl.scheduler.kind(), Some(SchedulerKind::Euler));
        for (layouts, w) in [(&[TextLayout::OpenAi][..], 768), (&[TextLayout::OpenClip][..], 1024)] {
            let c = builtin_configs(layouts, &opts);
            assert_eq!((c.unet.cross_attention_dim, c.texts[0].0.hidden_size), (w, w));
            assert!(c.unet.levels().is_ok() && c.texts[0].0.validate().is_ok());
        }
        // SD 2.x: v-prediction unless told; SD-Turbo: Euler, trailing, ε.
        let sd2 = builtin_configs(&[TextLayout::OpenClip], &opts);
        assert_eq!(sd2.scheduler.prediction_type, Prediction::VPrediction);
        let turbo = LoadOptions { turbo: Some(true), ..LoadOptions::default() };
        let t = builtin_configs(&[TextLayout::OpenClip], &turbo);
        assert_eq!(
            (t.scheduler.kind(), t.scheduler.timestep_spacing, t.scheduler.prediction_type),
            (Some(SchedulerKind::Euler), Some(Spacing::Trailing), Prediction::Epsilon)
        );
        let t = builtin_configs(&[TextLayout::OpenAi, TextLayout::OpenClip], &turbo);
        assert_eq!(t.scheduler.kind(), Some(SchedulerKind::EulerAncestral));
        assert_eq!(t.unet.sample_size * 8, 512);
    }
}
