//! # zipp-lm — language models for zipp (SPEC §5–7)
//!
//! Everything that needs a chat language model, written against
//! [`zipp_core::lm::LanguageModel`] so any backend serves every method:
//!
//! - [`ScriptedModel`]: a deterministic scripted model for tests and examples (replies from
//!   a list; it records what it was sent);
//! - [`clean`]: turning a model's raw answer into a prompt (think blocks, chat chatter,
//!   quotes and markdown stripped, and a record of what was);
//! - [`subjects`]: the subjects and objects of a base prompt, and which of them a rewrite
//!   lost (ViPer's critique of LLM rewriting);
//! - [`structured`]: JSON answers validated against the expected shape, with bounded
//!   retries that feed the error back, failing with a typed error;
//! - [`rewrite`]: the ZIPP roleplay rewriter, a `Composer` that follows any retriever;
//! - [`extract`]: ViPer preference extraction, comments on images → liked / disliked visual
//!   attributes, by vocabulary matching (no model) or by a model;
//! - [`verbalize`]: the persona verbalizer, activity evidence (weighted communities or posts
//!   and snippets) → a `Persona`, by template (no model) or by a model.
//!
//! - [`gguf`]: the local backend, a quantized GGUF chat model (llama architecture,
//!   byte-level BPE; the embedded default SmolLM2-135M-Instruct) on [`engine`], zipp's own
//!   CPU forward pass.
//! - [`openai`]: the remote backend, any OpenAI-compatible `/v1/chat/completions` server
//!   (vLLM, llama.cpp's server, Ollama, hosted APIs behind a local TLS proxy) over plain
//!   HTTP, streaming (SSE) or not, with bounded retries, timeouts and cancellation.
//!
//! Still to come (language-model issue): the OpenAI-compatible backend in `zipp-factory`'s
//! model specs and so in the bindings.
// Unsafe code lives only in `engine::kernels` (SIMD intrinsics), which allows it locally.
#![deny(unsafe_code)]

pub mod clean;
pub mod engine;
pub mod extract;
pub mod gguf;
pub mod openai;
pub mod rewrite;
mod scripted;
mod stop;
pub mod structured;
pub mod subjects;
pub mod verbalize;

pub use gguf::GgufModel;
pub use openai::{OpenAiModel, OpenAiOptions};
pub use rewrite::{RewriteOptions, Rewriter, Strength};
pub use scripted::ScriptedModel;
