//! CLIP over C: zipp-factory's `ClipSpec` (image and text embeddings), its image scores,
//! and the image columns of an evaluation (`SharedImageEvaluation`). Images are
//! [`zipp_rgb_image`]s: 8-bit RGB buffers in the caller's memory with width, height and
//! stride, read during the call only. Embeddings are written row-major into caller buffers.

use std::ffi::c_char;
use std::sync::Arc;

use zipp_core::image::Image;
use zipp_eval::image_eval::{ImageReport, MethodImages};
use zipp_eval::Report;
use zipp_factory::clip::{self as fclip, ClipModel, ClipSpec, SharedImageEvaluation};

use crate::call::{
    c_string, fail, free_handle, guarded, handle, into_handle, opt_str_arg, out_arg, out_ptr, str_arg, CallResult,
};
use crate::zipp_status;

/// An 8-bit RGB image in the caller's memory: `height` rows of `width` pixels (3 bytes each,
/// R, G, B), rows `stride` bytes apart (`stride >= width * 3`; padding after a row's pixels
/// is ignored). `rgb` holds at least `stride * (height - 1) + width * 3` bytes. zipp reads it
/// during the call only.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct zipp_rgb_image {
    pub rgb: *const u8,
    pub width: u32,
    pub height: u32,
    pub stride: usize,
}

/// A loaded CLIP model (transformers' `CLIPModel` folder). Immutable and thread-safe: share
/// one handle across threads.
pub struct zipp_clip {
    inner: Arc<ClipModel>,
}

/// The image columns of an evaluation (CLIPScore, personalization CLIPScore, CMMD per method
/// and query). Thread-safe: calls on one handle are serialised by a lock inside it. It keeps
/// its CLIP model alive.
pub struct zipp_image_evaluation {
    inner: SharedImageEvaluation,
}

/// One image, copied out of the caller's buffer; `name` names it in errors.
///
/// # Safety
/// `img.rgb` is NULL or holds `img.stride * (img.height - 1) + img.width * 3` readable bytes.
unsafe fn image_arg(img: &zipp_rgb_image, name: &str) -> CallResult<Image> {
    if img.rgb.is_null() {
        return Err(fail(zipp_status::ZIPP_ERR_NULL_POINTER, format!("`{name}.rgb` is NULL")));
    }
    let row = img.width as usize * 3;
    let len = img
        .stride
        .checked_mul((img.height as usize).saturating_sub(1))
        .and_then(|n| n.checked_add(row))
        .filter(|_| img.width > 0 && img.height > 0 && img.stride >= row)
        .ok_or_else(|| {
            fail(
                zipp_status::ZIPP_ERR_INVALID_INPUT,
                format!(
                    "`{name}`: {}x{} with stride {}: sizes must be positive, stride >= width * 3",
                    img.width, img.height, img.stride
                ),
            )
        })?;
    // SAFETY: non-null, and `len` bytes readable for the call (the caller's contract).
    let data = unsafe { std::slice::from_raw_parts(img.rgb, len) };
    Ok(Image::from_strided(img.width, img.height, img.stride, data)?)
}

/// `n` images at `images` (NULL only with `n == 0`), copied; `name` names them in errors.
///
/// # Safety
/// `images` is NULL or points to `n` readable `zipp_rgb_image`s, each meeting
/// [`image_arg`]'s contract.
unsafe fn images_arg(images: *const zipp_rgb_image, n: usize, name: &str) -> CallResult<Vec<Image>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if images.is_null() {
        return Err(fail(zipp_status::ZIPP_ERR_NULL_POINTER, format!("`{name}` is NULL with {n} images")));
    }
    // SAFETY: non-null and `n` readable descriptors (the caller's contract).
    let all = unsafe { std::slice::from_raw_parts(images, n) };
    // SAFETY: each descriptor meets `image_arg`'s contract (the caller's contract).
    all.iter().enumerate().map(|(i, img)| unsafe { image_arg(img, &format!("{name}[{i}]")) }).collect()
}

/// `rows` (each `dim` wide) into `out`, which holds `out_len` floats.
///
/// # Safety
/// `out` is NULL or points to `out_len` writable floats.
unsafe fn write_rows(rows: &[Vec<f32>], dim: usize, out: *mut f32, out_len: usize) -> CallResult {
    let need =
        rows.len().checked_mul(dim).ok_or_else(|| fail(zipp_status::ZIPP_ERR_INVALID_INPUT, "n × dim overflows"))?;
    if out.is_null() {
        return Err(fail(zipp_status::ZIPP_ERR_NULL_POINTER, "`out` is NULL"));
    }
    if out_len < need {
        return Err(fail(
            zipp_status::ZIPP_ERR_INVALID_INPUT,
            format!("`out` holds {out_len} floats; {} embeddings × {dim} dimensions need {need}", rows.len()),
        ));
    }
    // SAFETY: non-null, `out_len >= need` writable floats (the caller's contract).
    let dst = unsafe { std::slice::from_raw_parts_mut(out, need) };
    for (chunk, row) in dst.chunks_mut(dim.max(1)).zip(rows) {
        chunk.copy_from_slice(row);
    }
    Ok(())
}

/// `values` into `out` (room for `values.len()` doubles).
///
/// # Safety
/// `out` is NULL or points to `values.len()` writable doubles.
unsafe fn write_doubles(values: &[f64], out: *mut f64) -> CallResult {
    if out.is_null() {
        return Err(fail(zipp_status::ZIPP_ERR_NULL_POINTER, "`out` is NULL"));
    }
    // SAFETY: non-null, `values.len()` writable doubles (the caller's contract).
    unsafe { std::slice::from_raw_parts_mut(out, values.len()) }.copy_from_slice(values);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The model

/// Loads a CLIP model from a JSON spec: `"path"` or `{"path": "..."}` — a transformers
/// `CLIPModel` folder (`config.json`, `model.safetensors`, `merges.txt`,
/// `preprocessor_config.json`), or a Hugging Face cache entry or repo id already in the
/// local cache. CPU, f32.
///
/// # Safety
/// `spec` is a NUL-terminated string; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn zipp_clip_new(spec: *const c_char, out: *mut *mut zipp_clip) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_ptr(out, "out")?;
        let inner = ClipSpec::from_json(str_arg(spec, "spec")?)?.build()?;
        *out = into_handle(zipp_clip { inner });
        Ok(())
    })
}

/// The width of the embeddings (`projection_dim`: 512 for ViT-B/32, 768 for ViT-L/14).
///
/// # Safety
/// `clip` is NULL or a live handle; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn zipp_clip_dim(clip: *const zipp_clip, out: *mut usize) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; pointers are checked by
    // the `call` helpers first.
    guarded(|| unsafe {
        let out = out_arg(out, "out")?;
        *out = handle(clip, "clip")?.inner.projection_dim();
        Ok(())
    })
}

/// Embeds `n` images (any sizes; CLIP's own resize, crop and normalisation) into `out`,
/// row-major `n × dim`, **unnormalised** (transformers' `get_image_features`). `out_len` is
/// the number of floats `out` holds; fewer than `n × dim` is `ZIPP_ERR_INVALID_INPUT`, as is
/// `n == 0`.
///
/// # Safety
/// `clip` is NULL or a live handle; `images` points to `n` image descriptors whose buffers
/// meet `zipp_rgb_image`'s contract; `out` to `out_len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn zipp_clip_image_embeddings(
    clip: *const zipp_clip,
    images: *const zipp_rgb_image,
    n: usize,
    out: *mut f32,
    out_len: usize,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; pointers are checked by
    // the helpers first.
    guarded(|| unsafe {
        let model = &handle(clip, "clip")?.inner;
        let images = images_arg(images, n, "images")?;
        let rows = model.image_embeddings(&images)?;
        write_rows(&rows, model.projection_dim(), out, out_len)
    })
}

/// Embeds `n` texts into `out`, row-major `n × dim`, **unnormalised** (transformers'
/// `get_text_features`). A text over 77 tokens with its start and end markers is
/// `ZIPP_ERR_INVALID_INPUT` (zipp does not cut it), as are `n == 0` and `out_len < n × dim`.
///
/// # Safety
/// `clip` is NULL or a live handle; `texts` points to `n` NUL-terminated strings; `out` to
/// `out_len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn zipp_clip_text_embeddings(
    clip: *const zipp_clip,
    texts: *const *const c_char,
    n: usize,
    out: *mut f32,
    out_len: usize,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; pointers are checked by
    // the helpers first.
    guarded(|| unsafe {
        let model = &handle(clip, "clip")?.inner;
        if n > 0 && texts.is_null() {
            return Err(fail(zipp_status::ZIPP_ERR_NULL_POINTER, "`texts` is NULL"));
        }
        let ptrs = if n == 0 { &[][..] } else { std::slice::from_raw_parts(texts, n) };
        let strs = ptrs
            .iter()
            .enumerate()
            .map(|(i, &p)| str_arg(p, &format!("texts[{i}]")))
            .collect::<CallResult<Vec<&str>>>()?;
        let rows = model.text_embeddings(&strs)?;
        write_rows(&rows, model.projection_dim(), out, out_len)
    })
}

/// Embeds one text into `out` (`dim` floats, at least `zipp_clip_dim`), unnormalised.
///
/// # Safety
/// `clip` is NULL or a live handle; `text` a NUL-terminated string; `out` points to `dim`
/// writable floats.
#[no_mangle]
pub unsafe extern "C" fn zipp_clip_text_embedding(
    clip: *const zipp_clip,
    text: *const c_char,
    out: *mut f32,
    dim: usize,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; pointers are checked by
    // the helpers first.
    guarded(|| unsafe {
        let model = &handle(clip, "clip")?.inner;
        let rows = model.text_embeddings(&[str_arg(text, "text")?])?;
        write_rows(&rows, model.projection_dim(), out, dim)
    })
}

/// CLIPScore of each of `n` images against `prompt`, written to `out` (`n` doubles):
/// `2.5 · max(cos, 0)` (Hessel et al.), or `100 · max(cos, 0)` when `scale100` is non-zero.
/// Compares images of this prompt only, never scores of different prompts.
///
/// # Safety
/// `clip` is NULL or a live handle; `images` holds `n` descriptors (see
/// `zipp_clip_image_embeddings`); `prompt` is NUL-terminated; `out` holds `n` writable
/// doubles.
#[no_mangle]
pub unsafe extern "C" fn zipp_clip_scores(
    clip: *const zipp_clip,
    images: *const zipp_rgb_image,
    n: usize,
    prompt: *const c_char,
    scale100: i32,
    out: *mut f64,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; pointers are checked by
    // the helpers first.
    guarded(|| unsafe {
        let model = &handle(clip, "clip")?.inner;
        let images = images_arg(images, n, "images")?;
        let scores = fclip::clip_scores(model, &images, str_arg(prompt, "prompt")?)?;
        let values: Vec<f64> =
            scores.iter().map(|s| if scale100 != 0 { s.clip_score_100 } else { s.clip_score }).collect();
        write_doubles(&values, out)
    })
}

/// Personalization CLIPScore of each of `n` images — its mean cosine with the `n_refs`
/// reference images (the person's own pictures) — written to `out` (`n` doubles).
///
/// # Safety
/// `clip` is NULL or a live handle; `images` and `references` hold `n` and `n_refs`
/// descriptors; `out` holds `n` writable doubles.
#[no_mangle]
pub unsafe extern "C" fn zipp_clip_personalization_scores(
    clip: *const zipp_clip,
    images: *const zipp_rgb_image,
    n: usize,
    references: *const zipp_rgb_image,
    n_refs: usize,
    out: *mut f64,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; pointers are checked by
    // the helpers first.
    guarded(|| unsafe {
        let model = &handle(clip, "clip")?.inner;
        let (images, refs) = (images_arg(images, n, "images")?, images_arg(references, n_refs, "references")?);
        write_doubles(&fclip::personalization_clip_scores(model, &images, &refs)?, out)
    })
}

/// CMMD between two image sets (`nx` and `ny` images): ×1000 the squared MMD of their CLIP
/// embeddings (σ = 10, biased estimator); 0 for identical sets.
///
/// # Safety
/// `clip` is NULL or a live handle; `x` and `y` hold `nx` and `ny` descriptors; `out`
/// writable.
#[no_mangle]
pub unsafe extern "C" fn zipp_clip_cmmd(
    clip: *const zipp_clip,
    x: *const zipp_rgb_image,
    nx: usize,
    y: *const zipp_rgb_image,
    ny: usize,
    out: *mut f64,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; pointers are checked by
    // the helpers first.
    guarded(|| unsafe {
        let out = out_arg(out, "out")?;
        let model = &handle(clip, "clip")?.inner;
        let (x, y) = (images_arg(x, nx, "x")?, images_arg(y, ny, "y")?);
        *out = fclip::cmmd(model, &x, &y)?;
        Ok(())
    })
}

/// Frees a CLIP model. NULL is ignored. Image evaluations built from it keep it alive.
///
/// # Safety
/// `clip` is NULL or a live handle no other thread is using.
#[no_mangle]
pub unsafe extern "C" fn zipp_clip_free(clip: *mut zipp_clip) {
    // SAFETY: the caller passes NULL or a live handle of this type that no other thread uses.
    unsafe { free_handle(clip) }
}

// ---------------------------------------------------------------------------------------
// The image columns of an evaluation

/// Creates the image columns of an evaluation: the methods (by name) and queries of an
/// evaluation config (`config_json`, the JSON `zipp_evaluation_new` takes; NULL: the five
/// methods on the four VPTT queries), embedded with `clip`. `options_json` (NULL: defaults)
/// is `{"cmmd_sample": 500, "seed": 0}`: each CMMD set is capped at `cmmd_sample`
/// embeddings by seeded reservoir sampling (0 turns CMMD off). No method runs here: the
/// caller renders each method's prompts and passes the images to
/// `zipp_image_evaluation_add_persona`.
///
/// # Safety
/// `clip` is NULL or a live handle; the JSON arguments NULL or NUL-terminated; `out`
/// writable.
#[no_mangle]
pub unsafe extern "C" fn zipp_image_evaluation_new(
    clip: *const zipp_clip,
    config_json: *const c_char,
    options_json: *const c_char,
    out: *mut *mut zipp_image_evaluation,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_ptr(out, "out")?;
        let model = &handle(clip, "clip")?.inner;
        let inner = SharedImageEvaluation::from_json(
            model,
            opt_str_arg(config_json, "config_json")?,
            opt_str_arg(options_json, "options_json")?,
        )?;
        *out = into_handle(zipp_image_evaluation { inner });
        Ok(())
    })
}

/// The order of the cells `zipp_image_evaluation_add_persona` takes, as JSON, a new string:
/// `{"methods": ["identity", …], "queries": [{"name", "task", "prompt"}, …]}`. Cells are
/// query-major: cell `q * methods + m` is query `q`'s images by method `m`.
///
/// # Safety
/// `evaluation` is NULL or a live handle; `out_json` writable.
#[no_mangle]
pub unsafe extern "C" fn zipp_image_evaluation_layout(
    evaluation: *const zipp_image_evaluation,
    out_json: *mut *mut c_char,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; pointers are checked by
    // the `call` helpers first.
    guarded(|| unsafe {
        let out = out_ptr(out_json, "out_json")?;
        let ev = handle(evaluation, "evaluation")?.inner.lock()?;
        *out = crate::result_json(&serde_json::json!({"methods": ev.methods(), "queries": ev.queries()}))?;
        Ok(())
    })
}

/// Scores one persona's images and adds them to the aggregates; all or nothing (on failure
/// nothing is added). `counts` has one entry per cell (`n_counts` = queries × methods, in
/// the order of `zipp_image_evaluation_layout`): how many of `images` belong to that cell,
/// which must be at least one; `images` holds the cells' images one cell after the other.
/// Each image of a query is scored against the query's base prompt. `references` (`n_refs`,
/// 0 for none) are the persona's own pictures (no P-CLIP and no CMMD without them). When
/// `out_samples_json` is not NULL it receives one JSON object per cell, query-major:
/// `{"persona", "query", "method", "images", "clip_score", "clip_score_100",
/// "personalization_clip_score"}` (each averaged over the cell's images; the last `null`
/// without references), a new string.
///
/// # Safety
/// `evaluation` is NULL or a live handle; `persona_id` NUL-terminated; `references` holds
/// `n_refs` image descriptors, `counts` `n_counts` sizes, `images` as many descriptors as
/// `counts` sums to (each descriptor's buffer as `zipp_rgb_image` says); `out_samples_json`
/// NULL or writable.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn zipp_image_evaluation_add_persona(
    evaluation: *const zipp_image_evaluation,
    persona_id: *const c_char,
    references: *const zipp_rgb_image,
    n_refs: usize,
    images: *const zipp_rgb_image,
    counts: *const usize,
    n_counts: usize,
    out_samples_json: *mut *mut c_char,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; pointers are checked by
    // the helpers first.
    guarded(|| unsafe {
        let out = if out_samples_json.is_null() { None } else { Some(out_ptr(out_samples_json, "out_samples_json")?) };
        let ev = handle(evaluation, "evaluation")?;
        let id = str_arg(persona_id, "persona_id")?;
        let refs = images_arg(references, n_refs, "references")?;
        let (methods, queries) = {
            let inner = ev.inner.lock()?;
            (inner.methods().to_vec(), inner.queries().iter().map(|q| q.name.clone()).collect::<Vec<_>>())
        };
        let cells = methods.len() * queries.len();
        if n_counts != cells {
            return Err(fail(
                zipp_status::ZIPP_ERR_INVALID_INPUT,
                format!(
                    "`n_counts` is {n_counts}; {} queries × {} methods need one count per cell ({cells})",
                    queries.len(),
                    methods.len()
                ),
            ));
        }
        if counts.is_null() {
            return Err(fail(zipp_status::ZIPP_ERR_NULL_POINTER, "`counts` is NULL"));
        }
        let counts = std::slice::from_raw_parts(counts, n_counts);
        let total = counts
            .iter()
            .try_fold(0usize, |a, c| a.checked_add(*c))
            .ok_or_else(|| fail(zipp_status::ZIPP_ERR_INVALID_INPUT, "`counts` overflow"))?;
        let all = images_arg(images, total, "images")?;
        let mut items = Vec::with_capacity(cells);
        let mut at = 0;
        for (c, &k) in counts.iter().enumerate() {
            items.push(MethodImages {
                query: queries[c / methods.len()].clone(),
                method: methods[c % methods.len()].clone(),
                images: all[at..at + k].to_vec(),
            });
            at += k;
        }
        let samples = ev.inner.add_persona(id, &refs, &items)?;
        if let Some(out) = out {
            *out = crate::result_json(&samples)?;
        }
        Ok(())
    })
}

/// The number of personas added so far.
///
/// # Safety
/// `evaluation` is NULL or a live handle; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn zipp_image_evaluation_personas(
    evaluation: *const zipp_image_evaluation,
    out: *mut u64,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; pointers are checked by
    // the `call` helpers first.
    guarded(|| unsafe {
        let out = out_arg(out, "out")?;
        *out = handle(evaluation, "evaluation")?.inner.personas()?;
        Ok(())
    })
}

/// The report so far as JSON, a new string: `personas`, `personas_with_references`,
/// `reference_images`, `methods`, `options` and `tables` (one per query, then one per task
/// kind with several queries; rows of `n` cells, `images`, `clip_score` and `clip_score_100`
/// (`{"mean", "sd"}`), `personalization_clip_score` (or null), `cmmd` (or null)). Same JSON
/// as the Rust and Python image reports.
///
/// # Safety
/// `evaluation` is NULL or a live handle; `out_json` writable.
#[no_mangle]
pub unsafe extern "C" fn zipp_image_evaluation_report(
    evaluation: *const zipp_image_evaluation,
    out_json: *mut *mut c_char,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; pointers are checked by
    // the `call` helpers first.
    guarded(|| unsafe {
        let out = out_ptr(out_json, "out_json")?;
        *out = c_string(handle(evaluation, "evaluation")?.inner.report()?.to_json(false)?)?;
        Ok(())
    })
}

/// The report so far as markdown tables (CLIPScore, CLIPScore×100, P-CLIP, CMMD per
/// method), a new string.
///
/// # Safety
/// `evaluation` is NULL or a live handle; `out_text` writable.
#[no_mangle]
pub unsafe extern "C" fn zipp_image_evaluation_table(
    evaluation: *const zipp_image_evaluation,
    out_text: *mut *mut c_char,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; pointers are checked by
    // the `call` helpers first.
    guarded(|| unsafe {
        let out = out_ptr(out_text, "out_text")?;
        *out = c_string(handle(evaluation, "evaluation")?.inner.report()?.table())?;
        Ok(())
    })
}

/// An image report (JSON, as `zipp_image_evaluation_report` returns it) beside the VPTT
/// columns of a text report (JSON, as `zipp_evaluation_report` returns it) of the same
/// methods and queries, as markdown tables, a new string.
///
/// # Safety
/// `image_report_json` and `report_json` are NUL-terminated; `out_text` writable.
#[no_mangle]
pub unsafe extern "C" fn zipp_image_report_table_beside(
    image_report_json: *const c_char,
    report_json: *const c_char,
    out_text: *mut *mut c_char,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_ptr(out_text, "out_text")?;
        let images = ImageReport::from_json(str_arg(image_report_json, "image_report_json")?)?;
        let text = Report::from_json(str_arg(report_json, "report_json")?)?;
        *out = c_string(images.table_beside(&text))?;
        Ok(())
    })
}

/// Frees an image evaluation. NULL is ignored.
///
/// # Safety
/// `evaluation` is NULL or a live handle no other thread is using.
#[no_mangle]
pub unsafe extern "C" fn zipp_image_evaluation_free(evaluation: *mut zipp_image_evaluation) {
    // SAFETY: the caller passes NULL or a live handle of this type that no other thread uses.
    unsafe { free_handle(evaluation) }
}

#[cfg(test)]
mod tests;
