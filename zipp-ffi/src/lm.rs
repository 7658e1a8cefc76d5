//! Language models over C: zipp-factory's `LmSpec` and its generation driver. The text
//! callback runs on the calling thread; generation runs on a zipp thread.

use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use zipp_core::lm::LanguageModel;
use zipp_factory::lm as flm;
use zipp_factory::LmSpec;

use crate::call::{
    build_with, c_string, cancel_flag, fail, free_handle, guarded, handle, into_handle, opt_str_arg, out_ptr, str_arg,
};
use crate::{result_json, zipp_models, zipp_status};

/// A chat language model. Immutable and thread-safe: generations on one handle may run
/// from several threads at once.
pub struct zipp_lm {
    inner: Arc<dyn LanguageModel>,
}

/// Receives generated text: `piece` is `len` bytes of UTF-8 (also NUL-terminated), valid
/// only during the call. Return 0 to go on, anything else to cancel the generation.
pub type zipp_text_callback =
    Option<unsafe extern "C" fn(piece: *const c_char, len: usize, user_data: *mut c_void) -> c_int>;

/// Loads a language model from a JSON spec: `"smollm2"` (the embedded default, shared
/// through `models`), `{"gguf":{"path":"model.gguf","kernel":"auto"}}` or
/// `{"scripted":{"replies":["..."]}}`. `models` may be NULL except for `"smollm2"`.
///
/// # Safety
/// `models` is NULL or a live handle; `spec` a NUL-terminated string; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn zipp_lm_new(models: *const zipp_models, spec: *const c_char, out: *mut *mut zipp_lm) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_ptr(out, "out")?;
        let spec = LmSpec::from_json(str_arg(spec, "spec")?)?;
        if models.is_null() && spec == LmSpec::Smollm2 {
            return Err(fail(
                zipp_status::ZIPP_ERR_NULL_POINTER,
                "`models` is NULL (the \"smollm2\" spec loads through it)",
            ));
        }
        let inner = build_with(models, |m| spec.build(m))?;
        *out = into_handle(zipp_lm { inner });
        Ok(())
    })
}

/// The model's identity (weights, quantization, template) as a new string.
///
/// # Safety
/// `lm` is NULL or a live handle; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn zipp_lm_id(lm: *const zipp_lm, out: *mut *mut c_char) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL first.
    guarded(|| unsafe {
        let out = out_ptr(out, "out")?;
        *out = c_string(handle(lm, "lm")?.inner.id())?;
        Ok(())
    })
}

/// Generates a reply. `messages` is JSON: `[{"role":"system"|"user"|"assistant",
/// "content":"..."}]`; `sampling` is JSON or NULL for the defaults (greedy):
/// `{"temperature":0.7,"top_k":40,"top_p":0.9,"repeat_penalty":1.1,"seed":7,
/// "max_tokens":256,"stop":["\n\n"]}`, every field optional. `on_text` (may be NULL) is called
/// on this thread with each piece of text as it is generated, with `user_data`. The
/// generation is cancelled when `on_text` returns non-zero or when `*cancel` (may be NULL)
/// becomes non-zero: set it from any thread with an atomic store (C11 `atomic_store` on an
/// `atomic_int`, or `__atomic_store_n`); it is polled at least every 20 ms. A cancelled
/// generation still succeeds, with `"finish":"cancelled"` and the text delivered so far.
/// The result is `{"text":"...","finish":"end_of_turn"|"stop_sequence"|"max_tokens"|
/// "cancelled","prompt_tokens":N,"completion_tokens":N}`, a new string.
///
/// # Safety
/// `lm` is NULL or a live handle; strings are NUL-terminated; `cancel` is NULL or points to
/// an aligned `int` that stays valid for the call and is only written atomically; `out`
/// writable; `on_text` is NULL or a function safe to call with the arguments described.
#[no_mangle]
pub unsafe extern "C" fn zipp_lm_generate(
    lm: *const zipp_lm,
    messages: *const c_char,
    sampling: *const c_char,
    on_text: zipp_text_callback,
    user_data: *mut c_void,
    cancel: *const c_int,
    out: *mut *mut c_char,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_ptr(out, "out")?;
        let model = handle(lm, "lm")?.inner.clone();
        let messages = flm::messages_from_json(str_arg(messages, "messages")?)?;
        let sampling = flm::sampling_from_json(opt_str_arg(sampling, "sampling")?)?;
        let flag = cancel_flag(cancel)?;
        let g = flm::generate(
            model,
            messages,
            sampling,
            |piece| match on_text {
                Some(f) => {
                    // Pieces are Rust strings (no NUL inside is guaranteed by nothing), so
                    // the length is passed as well; the copy adds the terminating NUL.
                    let mut bytes = Vec::with_capacity(piece.len() + 1);
                    bytes.extend_from_slice(piece.as_bytes());
                    bytes.push(0);
                    // SAFETY: `f` is a valid callback (the caller's contract); the piece
                    // outlives the call.
                    f(bytes.as_ptr() as *const c_char, piece.len(), user_data) == 0
                }
                None => true,
            },
            || flag.is_some_and(|f| f.load(Ordering::Relaxed) != 0),
        )?;
        *out = result_json(&g)?;
        Ok(())
    })
}

/// Frees a language model. NULL is ignored.
///
/// # Safety
/// `lm` is NULL or a live handle no other thread is using.
#[no_mangle]
pub unsafe extern "C" fn zipp_lm_free(lm: *mut zipp_lm) {
    // SAFETY: the caller passes NULL or a live handle of this type that no other thread uses
    // (this function's `# Safety` contract), as `free_handle` requires.
    unsafe { free_handle(lm) }
}

/// ViPer preference extraction. Immutable and thread-safe.
pub struct zipp_extractor {
    inner: Arc<dyn flm::Extractor>,
}

/// The persona verbalizer. Immutable and thread-safe.
pub struct zipp_verbalizer {
    inner: Arc<dyn flm::Verbalizer>,
}

/// Builds an extractor from a JSON spec: `"vocabulary"` (phrase matching with negation, no
/// model), `{"vocabulary":{"path":"phrases.txt"}}`, or
/// `{"llm":{"model":"smollm2","options":{"attempts":3}}}`. `models` may be NULL (the default
/// models folder).
///
/// # Safety
/// `models` is NULL or a live handle; `spec` a NUL-terminated string; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn zipp_extractor_new(
    models: *const zipp_models,
    spec: *const c_char,
    out: *mut *mut zipp_extractor,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_ptr(out, "out")?;
        let spec = zipp_factory::ExtractorSpec::from_json(str_arg(spec, "spec")?)?;
        let inner = build_with(models, |m| spec.build(m))?;
        *out = into_handle(zipp_extractor { inner });
        Ok(())
    })
}

/// Liked and disliked visual attributes of `comments_json` (a JSON array of strings):
/// `{"preferences":{"liked":[...],"disliked":[...]},"evidence":{...}}`, a new string. An
/// attribute both liked and disliked is in neither list.
///
/// # Safety
/// `extractor` is NULL or a live handle; `comments_json` a NUL-terminated string; `out`
/// writable.
#[no_mangle]
pub unsafe extern "C" fn zipp_extract(
    extractor: *const zipp_extractor,
    comments_json: *const c_char,
    out: *mut *mut c_char,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_ptr(out, "out")?;
        let extractor = handle(extractor, "extractor")?;
        let comments = flm::comments_from_json(str_arg(comments_json, "comments_json")?)?;
        let refs: Vec<&str> = comments.iter().map(String::as_str).collect();
        *out = result_json(&extractor.inner.extract(&refs)?)?;
        Ok(())
    })
}

/// Frees an extractor. NULL is ignored.
///
/// # Safety
/// `extractor` is NULL or a live handle no other thread is using.
#[no_mangle]
pub unsafe extern "C" fn zipp_extractor_free(extractor: *mut zipp_extractor) {
    // SAFETY: the caller passes NULL or a live handle of this type that no other thread uses
    // (this function's `# Safety` contract), as `free_handle` requires.
    unsafe { free_handle(extractor) }
}

/// Builds a verbalizer from a JSON spec: `"template"` (deterministic, no model),
/// `{"template":{"max_named":5}}` or `{"llm":{"model":"smollm2","options":{...}}}`. `models`
/// may be NULL (the default models folder).
///
/// # Safety
/// `models` is NULL or a live handle; `spec` a NUL-terminated string; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn zipp_verbalizer_new(
    models: *const zipp_models,
    spec: *const c_char,
    out: *mut *mut zipp_verbalizer,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_ptr(out, "out")?;
        let spec = zipp_factory::VerbalizerSpec::from_json(str_arg(spec, "spec")?)?;
        let inner = build_with(models, |m| spec.build(m))?;
        *out = into_handle(zipp_verbalizer { inner });
        Ok(())
    })
}

/// The persona that `evidence_json` describes (`{"user":"u1","items":[{"kind":"community",
/// "name":"r/analog","weight":3.0,"snippets":["..."]}]}`): `{"persona":{...},
/// "evidence":{...}}`, a new string (the persona in zipp's persona JSON, for
/// `zipp_persona_from_json`).
///
/// # Safety
/// `verbalizer` is NULL or a live handle; `evidence_json` a NUL-terminated string; `out`
/// writable.
#[no_mangle]
pub unsafe extern "C" fn zipp_verbalize(
    verbalizer: *const zipp_verbalizer,
    evidence_json: *const c_char,
    out: *mut *mut c_char,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_ptr(out, "out")?;
        let verbalizer = handle(verbalizer, "verbalizer")?;
        let evidence = flm::ActivityEvidence::from_json_str(str_arg(evidence_json, "evidence_json")?)?;
        *out = result_json(&verbalizer.inner.verbalize(&evidence)?)?;
        Ok(())
    })
}

/// Frees a verbalizer. NULL is ignored.
///
/// # Safety
/// `verbalizer` is NULL or a live handle no other thread is using.
#[no_mangle]
pub unsafe extern "C" fn zipp_verbalizer_free(verbalizer: *mut zipp_verbalizer) {
    // SAFETY: the caller passes NULL or a live handle of this type that no other thread uses
    // (this function's `# Safety` contract), as `free_handle` requires.
    unsafe { free_handle(verbalizer) }
}
