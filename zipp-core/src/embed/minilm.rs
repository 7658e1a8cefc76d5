//! all-MiniLM-L6-v2 (sentence-transformers) on candle.
//!
//! What sentence-transformers computes, reproduced exactly: WordPiece tokenization with
//! `[CLS] … [SEP]`, truncation to 256 tokens (the model's `max_seq_length`; the
//! tokenizer.json shipped with the weights presets 128, which we override), a 6-layer BERT
//! encoder, **masked mean pooling** over the non-padding tokens, then L2 normalisation.
//!
//! Batches are sorted by token length before padding ("batch-longest" padding per chunk),
//! so a batch of mixed lengths wastes little compute on padding; results come back in the
//! caller's order. Agreement with sentence-transformers itself is tested against a fixture
//! (`tests/fixtures/minilm_reference.json`, cosine ≥ 0.9999998 per sentence, every encoder and kernel).

use std::hash::{Hash, Hasher};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use super::bert_cpu::CpuBert;
use super::{Embedder, Embeddings};
use crate::error::{Error, Result};
use crate::models::{ModelFiles, ModelSource, MINILM_DIR, MINILM_REPO};

/// File roles of a MiniLM model and their usual names.
const ROLES: &[(&str, &str)] =
    &[("config", "config.json"), ("tokenizer", "tokenizer.json"), ("weights", "model.safetensors")];

/// Settings of a [`MiniLm`] embedder.
#[derive(Debug, Clone)]
pub struct MiniLmOptions {
    /// Tokens per text including `[CLS]`/`[SEP]`; longer texts are truncated (256 is the
    /// model's `max_seq_length` in sentence-transformers).
    pub max_tokens: usize,
    /// Texts per forward pass.
    pub batch_size: usize,
    /// Where the model runs.
    pub device: Device,
    /// On CPU, run candle's generic `BertModel` instead of the packed CPU encoder
    /// (`bert_cpu`). For comparisons and tests; slower.
    pub force_candle: bool,
    /// The small-batch kernel of the packed CPU encoder (what every short query runs).
    pub kernel: CpuKernel,
}

impl Default for MiniLmOptions {
    fn default() -> Self {
        MiniLmOptions {
            max_tokens: 256,
            batch_size: 64,
            device: Device::Cpu,
            force_candle: false,
            kernel: CpuKernel::Auto,
        }
    }
}

/// The kernel the packed CPU encoder runs for batches of at most 16 token rows (a short
/// query or two): both compute the same product, in a different summation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CpuKernel {
    /// `$ZIPP_KERNEL` (`portable`, `avx2` or `auto`, read once per process) if set, else
    /// [`CpuKernel::Avx2`] where the CPU has AVX2 and FMA (checked at run time) and
    /// [`CpuKernel::Portable`] elsewhere.
    #[default]
    Auto,
    /// gemm's un-packed kernel, what aarch64 and x86 CPUs without AVX2 run.
    Portable,
    /// The hand-written AVX2+FMA kernel; loading fails on a CPU without both.
    Avx2,
}

impl CpuKernel {
    /// `Auto` resolved: the environment variable, then the CPU's features. Errors name the
    /// bad `$ZIPP_KERNEL` value or the missing CPU feature.
    pub fn resolve(self) -> Result<CpuKernel> {
        let chosen = match self {
            CpuKernel::Auto => kernel_from_env()?,
            other => other,
        };
        match chosen {
            CpuKernel::Auto => {
                Ok(if super::bert_cpu::avx2_available() { CpuKernel::Avx2 } else { CpuKernel::Portable })
            }
            CpuKernel::Avx2 if !super::bert_cpu::avx2_available() => {
                Err(Error::InvalidInput("the AVX2 MiniLM kernel needs a CPU with AVX2 and FMA".into()))
            }
            k => Ok(k),
        }
    }

    /// `portable`, `avx2` or `auto` (what `$ZIPP_KERNEL` accepts).
    pub fn parse(s: &str) -> Option<CpuKernel> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Some(CpuKernel::Auto),
            "portable" => Some(CpuKernel::Portable),
            "avx2" => Some(CpuKernel::Avx2),
            _ => None,
        }
    }
}

/// `$ZIPP_KERNEL`, read once per process.
fn kernel_from_env() -> Result<CpuKernel> {
    static ENV: std::sync::OnceLock<std::result::Result<CpuKernel, String>> = std::sync::OnceLock::new();
    ENV.get_or_init(|| match std::env::var("ZIPP_KERNEL") {
        Err(_) => Ok(CpuKernel::Auto),
        Ok(v) => CpuKernel::parse(&v).ok_or_else(|| format!("ZIPP_KERNEL={v:?}: expected portable, avx2 or auto")),
    })
    .clone()
    .map_err(Error::InvalidInput)
}

/// Which forward pass runs the model.
enum Encoder {
    /// Padding-free CPU encoder (the default on CPU).
    Packed(CpuBert),
    /// candle's `BertModel` (GPU devices, or `force_candle`).
    Candle(BertModel),
}

/// The all-MiniLM-L6-v2 sentence embedder. Cheap to share: wrap it in an `Arc`.
pub struct MiniLm {
    encoder: Encoder,
    tokenizer: Tokenizer,
    pad_id: u32,
    dim: usize,
    options: MiniLmOptions,
    id: String,
}

impl MiniLm {
    /// Loads the model from `source` with default options.
    pub fn load(source: &ModelSource) -> Result<MiniLm> {
        MiniLm::load_with(source, MiniLmOptions::default())
    }

    /// Loads the model from `source`.
    pub fn load_with(source: &ModelSource, options: MiniLmOptions) -> Result<MiniLm> {
        if options.batch_size == 0 {
            return Err(Error::InvalidInput("MiniLM batch_size must be at least 1".into()));
        }
        if options.max_tokens < 2 {
            return Err(Error::InvalidInput("MiniLM max_tokens must leave room for [CLS] and [SEP]".into()));
        }
        let files = ModelFiles::resolve(source, "all-MiniLM-L6-v2", MINILM_DIR, MINILM_REPO, ROLES)?;

        let config: Config = serde_json::from_slice(&files.bytes("config")?)
            .map_err(|e| files.invalid("config", format!("config.json is not a BERT config: {e}")))?;
        let dims = [
            ("hidden_size", config.hidden_size),
            ("num_attention_heads", config.num_attention_heads),
            ("num_hidden_layers", config.num_hidden_layers),
            ("intermediate_size", config.intermediate_size),
            ("vocab_size", config.vocab_size),
            ("type_vocab_size", config.type_vocab_size),
            ("max_position_embeddings", config.max_position_embeddings),
        ];
        if let Some((name, _)) = dims.iter().find(|(_, v)| *v == 0) {
            return Err(files.invalid("config", format!("{name} is 0")));
        }
        if !config.hidden_size.is_multiple_of(config.num_attention_heads) {
            return Err(files.invalid("config", "hidden_size is not a multiple of num_attention_heads"));
        }
        if options.max_tokens > config.max_position_embeddings {
            return Err(Error::InvalidInput(format!(
                "max_tokens {} exceeds the model's {} position embeddings",
                options.max_tokens, config.max_position_embeddings
            )));
        }

        let tok_bytes = files.bytes("tokenizer")?;
        let mut tokenizer = Tokenizer::from_bytes(&tok_bytes)
            .map_err(|e| files.invalid("tokenizer", format!("tokenizer.json does not load: {e}")))?;
        let pad_id = tokenizer.get_padding().map(|p| p.pad_id).or_else(|| tokenizer.token_to_id("[PAD]")).unwrap_or(0);
        // The shipped tokenizer.json pads and truncates at 128; sentence-transformers uses
        // 256. We pad ourselves (per length-sorted chunk), so padding is off here.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: options.max_tokens,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| files.invalid("tokenizer", e.to_string()))?;
        if tokenizer.get_vocab_size(true) > config.vocab_size {
            return Err(files.invalid(
                "tokenizer",
                format!(
                    "tokenizer has {} tokens but the model only {} embeddings: mismatched files",
                    tokenizer.get_vocab_size(true),
                    config.vocab_size
                ),
            ));
        }

        let weights = files.bytes("weights")?;
        // All of the bytes: two checkpoints that differ anywhere must not share cached
        // memory indexes (IndexedPersona keys them by this id).
        let mut fingerprint = std::collections::hash_map::DefaultHasher::new();
        weights.hash(&mut fingerprint);
        tok_bytes.hash(&mut fingerprint);
        let encoder = if options.device.is_cpu() && !options.force_candle {
            let kernel = options.kernel.resolve()?;
            let tensors = candle_core::safetensors::load_buffer(&weights, &Device::Cpu)
                .map_err(|e| files.invalid("weights", format!("not a readable safetensors file: {e}")))?;
            let bert = CpuBert::new(&tensors, &config, kernel == CpuKernel::Avx2)
                .map_err(|e| files.invalid("weights", format!("weights do not match config.json: {e}")))?;
            Encoder::Packed(bert)
        } else {
            let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &options.device)
                .map_err(|e| files.invalid("weights", format!("not a readable safetensors file: {e}")))?;
            let model = BertModel::load(vb, &config)
                .map_err(|e| files.invalid("weights", format!("weights do not match config.json: {e}")))?;
            Encoder::Candle(model)
        };

        let id = format!(
            "minilm:h{}l{}:max{}:{:016x}",
            config.hidden_size,
            config.num_hidden_layers,
            options.max_tokens,
            fingerprint.finish()
        );
        Ok(MiniLm { encoder, tokenizer, pad_id, dim: config.hidden_size, options, id })
    }

    /// Token ids of `text` after truncation (including `[CLS]`/`[SEP]`).
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.tokenizer.encode(text, true).map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    pub fn options(&self) -> &MiniLmOptions {
        &self.options
    }

    /// One forward pass over a chunk of tokenized texts; returns unit vectors row-major.
    fn forward_chunk(&self, chunk: &[&[u32]]) -> Result<Vec<f32>> {
        let model = match &self.encoder {
            Encoder::Packed(bert) => return Ok(bert.embed(chunk)),
            Encoder::Candle(model) => model,
        };
        let b = chunk.len();
        let t = chunk.iter().map(|c| c.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![self.pad_id; b * t];
        let mut mask = vec![0u32; b * t];
        for (r, toks) in chunk.iter().enumerate() {
            ids[r * t..r * t + toks.len()].copy_from_slice(toks);
            mask[r * t..r * t + toks.len()].iter_mut().for_each(|m| *m = 1);
        }
        let dev = &self.options.device;
        crate::runtime::compute(dev, || -> Result<Vec<f32>> {
            let ids = Tensor::from_vec(ids, (b, t), dev)?;
            let mask = Tensor::from_vec(mask, (b, t), dev)?;
            let types = ids.zeros_like()?;
            let hidden = model.forward(&ids, &types, Some(&mask))?; // (b, t, h)
                                                                    // Masked mean pooling: padding positions contribute nothing.
            let maskf = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (b, t, 1)
            let summed = hidden.broadcast_mul(&maskf)?.sum(1)?; // (b, h)
            let counts = maskf.sum(1)?.clamp(1e-9f32, f32::MAX)?; // (b, 1)
            let mean = summed.broadcast_div(&counts)?;
            let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12f32, f32::MAX)?;
            Ok(mean.broadcast_div(&norm)?.flatten_all()?.to_vec1::<f32>()?)
        })
    }
}

impl Embedder for MiniLm {
    fn id(&self) -> &str {
        &self.id
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embed(&self, texts: &[&str]) -> Result<Embeddings> {
        if texts.is_empty() {
            return Ok(Embeddings::empty(self.dim));
        }
        // In zipp's per-process pool, so a forked child never waits on its parent's threads.
        crate::runtime::install(|| self.embed_nonempty(texts))
    }
}

impl MiniLm {
    fn embed_nonempty(&self, texts: &[&str]) -> Result<Embeddings> {
        let encodings =
            self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| Error::Tokenizer(e.to_string()))?;
        // With the shipped tokenizer every text has at least [CLS] [SEP]; a tokenizer.json
        // without a post-processor can produce nothing, and a mean over nothing is undefined.
        if let Some(i) = encodings.iter().position(|e| e.get_ids().is_empty()) {
            return Err(Error::Tokenizer(format!(
                "text {i} produced no tokens (does tokenizer.json add [CLS]/[SEP]?)"
            )));
        }
        // Longest first: chunks hold texts of similar length, so padding is minimal.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].get_ids().len()));
        let mut out = vec![0f32; texts.len() * self.dim];
        for chunk in order.chunks(self.options.batch_size) {
            let toks: Vec<&[u32]> = chunk.iter().map(|&i| encodings[i].get_ids()).collect();
            let vecs = self.forward_chunk(&toks)?;
            for (r, &i) in chunk.iter().enumerate() {
                out[i * self.dim..(i + 1) * self.dim].copy_from_slice(&vecs[r * self.dim..(r + 1) * self.dim]);
            }
        }
        // Embeddings::new rejects non-finite values; here that is the model's fault, not the
        // caller's (the shape is right by construction).
        Embeddings::new(self.dim, out).map_err(|e| Error::Compute(format!("MiniLM output: {e}")))
    }
}
