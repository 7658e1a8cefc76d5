//! The local backend: a quantized GGUF chat model on zipp's own CPU forward pass (SPEC §5, §11).
//!
//! Everything comes from the GGUF file itself: the architecture and hyper-parameters, the
//! weights, the tokenizer (vocabulary, merges, special tokens and pre-tokenizer from the
//! `tokenizer.ggml.*` metadata; no tokenizer.json needed) and the chat template
//! (`tokenizer.chat_template`, rendered with minijinja; ChatML when absent). Supported: the
//! llama, qwen2 and qwen3 architectures ([`crate::engine::Arch`]) with a byte-level BPE
//! vocabulary (`gpt2` model) and the `smollm`, `gpt-2`, `default`, `qwen2` or `llama-bpe`
//! pre-tokenizer — the embedded default SmolLM2-135M-Instruct, Qwen2.5, Qwen3, Llama 3.
//! Anything else is a clear [`Error::ModelInvalid`] naming what is missing.
//!
//! The forward pass is zipp's own ([`crate::engine`]: the weights in their GGUF blocks,
//! 8-bit integer dot products, AVX2 or portable). One [`GgufModel`] is shared between
//! threads: each generation has its own KV cache, reused across the tokens of that call.
//! All of it runs through [`zipp_core::runtime::compute`] (zipp's per-process pool: thread
//! counts honoured, safe in a forked child).

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling as CandleSampling};
use zipp_core::embed::CpuKernel;
use zipp_core::error::{Error, Result};
use zipp_core::lm::{validate_messages, Cancel, Finish, Generation, LanguageModel, Message, Sampling};

use crate::engine::Engine;
use crate::stop::stable_len;

/// Folder and file of the embedded default inside `zipp_core::models::default_models_dir()`.
pub const SMOLLM2_FILE: &str = "smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf";

/// Tokens before the next one whose repetition `repeat_penalty` penalises (llama.cpp's
/// `repeat_last_n` default).
pub const REPEAT_LAST_N: usize = 64;

/// A GGUF chat model (module documentation).
pub struct GgufModel {
    engine: Engine,
    tokenizer: tokenizers::Tokenizer,
    /// The file's chat template, parsed once at load; `None`: ChatML.
    template: Option<minijinja::Environment<'static>>,
    /// Tokens that end the assistant's turn.
    end_ids: Vec<u32>,
    bos: Option<String>,
    eos: Option<String>,
    id: String,
    device: Device,
}

impl std::fmt::Debug for GgufModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufModel").field("id", &self.id).finish()
    }
}

/// The name of the chat template inside its environment.
const CHAT: &str = "chat";

impl GgufModel {
    /// The embedded default, SmolLM2-135M-Instruct Q4_1, from the provisioned models folder.
    pub fn load_default() -> Result<GgufModel> {
        GgufModel::load(zipp_core::models::default_models_dir().join(SMOLLM2_FILE))
    }

    /// Loads a GGUF file (module documentation for what is supported).
    pub fn load(path: impl AsRef<Path>) -> Result<GgufModel> {
        GgufModel::load_with(path, CpuKernel::Auto)
    }

    /// [`GgufModel::load`] with a chosen dot-product kernel (`Auto`: `$ZIPP_KERNEL`, then
    /// AVX2 where the CPU has it; `Portable` runs on every CPU).
    pub fn load_with(path: impl AsRef<Path>, kernel: CpuKernel) -> Result<GgufModel> {
        let path = path.as_ref();
        let model = "gguf".to_string();
        let invalid = |message: String| Error::ModelInvalid {
            model: model.clone(),
            path: path.to_path_buf(),
            message,
            hint: "use a GGUF chat model of the llama, qwen2 or qwen3 architecture with a byte-level BPE vocabulary"
                .into(),
        };
        let mut file = std::fs::File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::ModelNotFound {
                model: model.clone(),
                path: path.to_path_buf(),
                hint: zipp_core::models::PROVISION_HINT.into(),
            },
            _ => Error::io(path, e),
        })?;
        let content =
            gguf_file::Content::read(&mut file).map_err(|e| invalid(format!("not a readable GGUF file: {e}")))?;
        let md = |key: &str| content.metadata.get(key);
        let arch = md("general.architecture").and_then(|v| v.to_string().ok()).cloned().unwrap_or_default();
        if crate::engine::Arch::from_name(&arch).is_none() {
            return Err(invalid(format!("architecture {arch:?} is not supported (llama, qwen2 and qwen3 are)")));
        }
        let tokenizer = build_tokenizer(&content.metadata).map_err(invalid)?;
        let template = match md("tokenizer.chat_template").and_then(|v| v.to_string().ok()) {
            Some(t) => {
                // Parsed here, once: a template minijinja cannot parse fails the load, not the
                // first call.
                let mut env = minijinja::Environment::new();
                env.add_template_owned(CHAT, t.clone()).map_err(|e| invalid(format!("chat template: {e}")))?;
                Some(env)
            }
            None => None,
        };
        let token_str = |key: &str| -> Option<String> {
            let id = md(key)?.to_u32().ok()?;
            tokenizer.id_to_token(id)
        };
        let bos = token_str("tokenizer.ggml.bos_token_id");
        let eos = token_str("tokenizer.ggml.eos_token_id");
        let mut end_ids: Vec<u32> = ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"]
            .iter()
            .filter_map(|k| md(k).and_then(|v| v.to_u32().ok()))
            .collect();
        if let Some(id) = tokenizer.token_to_id("<|im_end|>") {
            end_ids.push(id);
        }
        end_ids.sort_unstable();
        end_ids.dedup();
        if end_ids.is_empty() {
            return Err(invalid("no end-of-turn token (tokenizer.ggml.eos_token_id)".into()));
        }
        let name = md("general.name").and_then(|v| v.to_string().ok()).cloned().unwrap_or_default();
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let device = Device::Cpu;
        let engine = zipp_core::runtime::compute(&device, || Engine::load(&content, &mut file, kernel))
            .map_err(|e| invalid(format!("weights: {e}")))?;
        if engine.config.vocab < tokenizer.get_vocab_size(true) {
            return Err(invalid(format!(
                "the vocabulary has {} tokens but the embedding only {} rows",
                tokenizer.get_vocab_size(true),
                engine.config.vocab
            )));
        }
        let converted = match engine.converted.is_empty() {
            true => String::new(),
            false => format!(":q8_0-from-{}", engine.converted.join("-")),
        };
        Ok(GgufModel {
            engine,
            tokenizer,
            template,
            end_ids,
            bos,
            eos,
            id: format!("gguf:{name}:{size}:{}{converted}", file_name(path)),
            device,
        })
    }

    /// The conversation as the model reads it (the chat template applied, the assistant's
    /// turn opened).
    pub fn render(&self, messages: &[Message]) -> Result<String> {
        match &self.template {
            None => {
                let mut s = String::new();
                for m in messages {
                    s.push_str(&format!("<|im_start|>{}\n{}<|im_end|>\n", role(m), m.content));
                }
                s.push_str("<|im_start|>assistant\n");
                Ok(s)
            }
            Some(env) => {
                let msgs: Vec<_> = messages
                    .iter()
                    .map(|m| minijinja::context! { role => role(m), content => m.content.as_str() })
                    .collect();
                env.get_template(CHAT)
                    .and_then(|tpl| {
                        tpl.render(minijinja::context! {
                            messages => msgs,
                            add_generation_prompt => true,
                            bos_token => self.bos.as_deref().unwrap_or(""),
                            eos_token => self.eos.as_deref().unwrap_or(""),
                        })
                    })
                    .map_err(|e| Error::InvalidInput(format!("the chat template failed on these messages: {e}")))
            }
        }
    }

    /// Token ids of `text`; special tokens written in the text (`<|im_start|>`) are matched.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| Error::Tokenizer(format!("encoding: {e}")))
    }

    /// The text of `ids` (special tokens included as written).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer.decode(ids, false).map_err(|e| Error::Tokenizer(format!("decoding: {e}")))
    }

    /// The greedy continuation of `ids`: up to `max_tokens` token ids, ending before an
    /// end-of-turn token (for parity checks against llama.cpp, which work on ids).
    pub fn greedy_ids(&self, ids: &[u32], max_tokens: usize) -> Result<Vec<u32>> {
        self.check_ids(ids, max_tokens)?;
        let mut out = Vec::new();
        self.run(ids, |logits, _| {
            if out.len() == max_tokens {
                return Ok(None);
            }
            let next = argmax(logits);
            if self.end_ids.contains(&next) {
                return Ok(None);
            }
            out.push(next);
            Ok(Some(next))
        })?;
        Ok(out)
    }

    /// Next-token logits after `ids` (for parity checks against llama.cpp).
    pub fn logits(&self, ids: &[u32]) -> Result<Vec<f32>> {
        self.check_ids(ids, 0)?;
        let mut out = Vec::new();
        self.run(ids, |logits, _| {
            out = logits.to_vec();
            Ok(None)
        })?;
        Ok(out)
    }

    /// The model's context length (tokens of prompt and continuation together).
    pub fn context_len(&self) -> usize {
        self.engine.config.context
    }

    /// The forward pass (its configuration, kernel and weight bytes per token).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// `ids` is 1..=context tokens with `more` to come, every id in the vocabulary.
    fn check_ids(&self, ids: &[u32], more: usize) -> Result<()> {
        let context = self.context_len();
        if ids.is_empty() {
            return Err(Error::InvalidInput("no tokens to read".into()));
        }
        if ids.len() + more > context {
            return Err(Error::InvalidInput(format!(
                "the input is {} tokens; with {more} more to generate it exceeds the model's context of {context}",
                ids.len()
            )));
        }
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= self.engine.config.vocab) {
            return Err(Error::InvalidInput(format!(
                "token id {bad} is outside the vocabulary of {}",
                self.engine.config.vocab
            )));
        }
        Ok(())
    }

    /// The one forward loop, in zipp's pool: the prompt `ids` through a fresh KV cache, then
    /// `step(logits, context)` for each position (`logits`: the last position's, one per
    /// vocabulary entry; `context`: every token so far) until it returns `None`; the token it
    /// returns is fed next, reusing the cache.
    fn run(&self, ids: &[u32], mut step: impl FnMut(&[f32], &[u32]) -> Result<Option<u32>> + Send) -> Result<()> {
        zipp_core::runtime::compute(&self.device, || {
            let mut cache = self.engine.cache();
            let mut context = ids.to_vec();
            let mut logits = self.engine.forward(&mut cache, ids);
            while let Some(next) = step(&logits, &context)? {
                context.push(next);
                logits = self.engine.forward(&mut cache, &[next]);
            }
            Ok(())
        })
    }
}

/// The index of the largest value (the first of equal ones, as llama.cpp's greedy sampler).
fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best as u32
}

fn compute_err(e: candle_core::Error) -> Error {
    Error::Compute(e.to_string())
}

fn role(m: &Message) -> &'static str {
    match m.role {
        zipp_core::lm::Role::System => "system",
        zipp_core::lm::Role::User => "user",
        zipp_core::lm::Role::Assistant => "assistant",
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| PathBuf::from(path).display().to_string())
}

impl LanguageModel for GgufModel {
    fn id(&self) -> String {
        self.id.clone()
    }

    fn generate(
        &self,
        messages: &[Message],
        sampling: &Sampling,
        cancel: &Cancel,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Generation> {
        sampling.validate()?;
        validate_messages(messages)?;
        let prompt = self.render(messages)?;
        let ids = self.encode(&prompt)?;
        self.check_ids(&ids, sampling.max_tokens)?;
        let kind = match (sampling.temperature, sampling.top_k, sampling.top_p) {
            (0.0, _, _) => CandleSampling::ArgMax,
            (t, None, None) => CandleSampling::All { temperature: t.into() },
            (t, Some(k), None) => CandleSampling::TopK { k, temperature: t.into() },
            (t, None, Some(p)) => CandleSampling::TopP { p: p.into(), temperature: t.into() },
            (t, Some(k), Some(p)) => CandleSampling::TopKThenTopP { k, p: p.into(), temperature: t.into() },
        };
        let mut sampler = LogitsProcessor::from_sampling(sampling.seed, kind);
        let mut generated: Vec<u32> = Vec::new();
        let mut text = String::new();
        let mut emitted = 0;
        let mut finish = Finish::EndOfTurn;
        self.run(&ids, |logits, context| {
            if cancel.is_cancelled() {
                finish = Finish::Cancelled;
                return Ok(None);
            }
            if generated.len() == sampling.max_tokens {
                finish = Finish::MaxTokens;
                return Ok(None);
            }
            let logits = Tensor::from_slice(logits, logits.len(), &Device::Cpu).map_err(compute_err)?;
            let penalised;
            let logits = if sampling.repeat_penalty != 1.0 {
                let start = context.len().saturating_sub(REPEAT_LAST_N);
                penalised = candle_transformers::utils::apply_repeat_penalty(
                    &logits,
                    sampling.repeat_penalty,
                    &context[start..],
                )
                .map_err(compute_err)?;
                &penalised
            } else {
                &logits
            };
            let next = sampler.sample(logits).map_err(compute_err)?;
            if self.end_ids.contains(&next) {
                finish = Finish::EndOfTurn;
                return Ok(None);
            }
            generated.push(next);
            text = self.decode(&generated)?;
            if let Some(at) = sampling.stop.iter().filter_map(|s| text.find(s.as_str())).min() {
                text.truncate(at);
                finish = Finish::StopSequence;
                return Ok(None);
            }
            // Emit what can no longer change: not a trailing partial UTF-8 character
            // (decoded as U+FFFD) nor a suffix that could start a stop sequence.
            let stable = stable_len(&text, &sampling.stop);
            if stable > emitted {
                on_text(&text[emitted..stable]);
                emitted = stable;
            }
            Ok(Some(next))
        })?;
        if finish == Finish::Cancelled {
            // What the caller saw is what it gets.
            text.truncate(emitted);
        } else if text.len() > emitted {
            on_text(&text[emitted..]);
        }
        let completion_tokens = generated.len();
        Ok(Generation { text, prompt_tokens: ids.len(), completion_tokens, finish })
    }
}

/// A `tokenizers` tokenizer equivalent to llama.cpp's for the GGUF's vocabulary: byte-level
/// BPE over `tokenizer.ggml.tokens`/`merges`, control and user-defined tokens as added
/// tokens, and the pre-tokenizer `tokenizer.ggml.pre` names.
fn build_tokenizer(
    md: &std::collections::HashMap<String, gguf_file::Value>,
) -> std::result::Result<tokenizers::Tokenizer, String> {
    let get = |k: &str| md.get(k).ok_or_else(|| format!("no {k} in the GGUF metadata"));
    let model = get("tokenizer.ggml.model")?.to_string().map_err(|e| e.to_string())?;
    if model != "gpt2" {
        return Err(format!("tokenizer model {model:?} is not supported yet (byte-level BPE, \"gpt2\", is)"));
    }
    let pre =
        md.get("tokenizer.ggml.pre").and_then(|v| v.to_string().ok()).cloned().unwrap_or_else(|| "default".into());
    let byte_level =
        serde_json::json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
    // The split patterns are llama.cpp's (llama-vocab.cpp) for these pre-tokenizer names,
    // which are the Hugging Face tokenizers' own.
    let split = |pattern: &str| {
        serde_json::json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]})
    };
    let pre_tokenizer = match pre.as_str() {
        "smollm" => {
            serde_json::json!({"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true}, byte_level]})
        }
        "gpt-2" | "default" => byte_level,
        "qwen2" => split(
            r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
        ),
        "llama-bpe" | "llama3" => split(
            r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
        ),
        other => {
            return Err(format!(
                "pre-tokenizer {other:?} is not supported yet (smollm, gpt-2, default, qwen2 and llama-bpe are)"
            ))
        }
    };
    let strings = |k: &str| -> std::result::Result<Vec<String>, String> {
        get(k)?
            .to_vec()
            .map_err(|e| e.to_string())?
            .iter()
            .map(|v| v.to_string().cloned().map_err(|e| e.to_string()))
            .collect()
    };
    let tokens = strings("tokenizer.ggml.tokens")?;
    let merges = strings("tokenizer.ggml.merges")?;
    let types: Vec<i32> = match md.get("tokenizer.ggml.token_type") {
        Some(v) => v.to_vec().map_err(|e| e.to_string())?.iter().map(|t| t.to_i32().unwrap_or(1)).collect(),
        None => vec![1; tokens.len()],
    };
    let vocab: serde_json::Map<String, serde_json::Value> =
        tokens.iter().enumerate().map(|(i, t)| (t.clone(), serde_json::Value::from(i))).collect();
    // 3 = control, 4 = user-defined (llama.cpp's token types): matched whole in the text.
    let added: Vec<serde_json::Value> = tokens
        .iter()
        .enumerate()
        .filter(|(i, _)| matches!(types.get(*i), Some(3) | Some(4)))
        .map(|(i, t)| {
            serde_json::json!({"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
                               "normalized": false, "special": types.get(i) == Some(&3)})
        })
        .collect();
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": vocab, "merges": merges},
    });
    json.to_string().parse().map_err(|e: tokenizers::Error| format!("tokenizer from the GGUF metadata: {e}"))
}
