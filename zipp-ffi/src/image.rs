//! Image generation over C: zipp-factory's `DiffusionSpec`, request JSON and generation
//! driver. Images are 8-bit RGB buffers with width, height and stride; the step callback
//! runs on the calling thread, generation on a zipp thread.

use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use zipp_core::image::{Image, ImageGenerator, ImageOutput};
use zipp_factory::image as fimg;

use crate::call::{
    c_string, cancel_flag, fail, free_handle, guarded, handle, into_handle, out_arg, out_ptr, str_arg, CallResult,
};
use crate::zipp_status;

/// A loaded Stable Diffusion model (SD 1.x, 2.x, XL, Turbo). Immutable and thread-safe:
/// generations on one handle may run from several threads at once.
pub struct zipp_image_model {
    inner: Arc<dyn ImageGenerator>,
}

/// The images of one generation and what the request resolved to. Immutable.
pub struct zipp_images {
    out: ImageOutput,
}

/// Told after each denoising step (`step` of `total`, 1-based) on the calling thread, with
/// `user_data`. Return 0 to go on, anything else to cancel the generation
/// (`ZIPP_ERR_CANCELLED`).
pub type zipp_step_callback =
    Option<unsafe extern "C" fn(step: u32, total: u32, timestep: f64, elapsed_s: f64, user_data: *mut c_void) -> c_int>;

/// Loads a model from a JSON spec: `"path"` (a diffusers-layout folder, a Hugging Face cache
/// entry or repo id found in the local cache, or a single-file `.safetensors` checkpoint) or
/// `{"path": "...", "config_dir": "...", "turbo": true, "prediction": "epsilon" |
/// "v_prediction", "sliced_attention": 2, "with_encoder": true}`.
///
/// # Safety
/// `spec` is a NUL-terminated string; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn zipp_image_model_new(spec: *const c_char, out: *mut *mut zipp_image_model) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_ptr(out, "out")?;
        let inner = fimg::DiffusionSpec::from_json(str_arg(spec, "spec")?)?.build()?;
        *out = into_handle(zipp_image_model { inner });
        Ok(())
    })
}

/// The model's identity (family and weights fingerprint) as a new string.
///
/// # Safety
/// `model` is NULL or a live handle; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn zipp_image_model_id(model: *const zipp_image_model, out: *mut *mut c_char) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL first.
    guarded(|| unsafe {
        let out = out_ptr(out, "out")?;
        *out = c_string(handle(model, "model")?.inner.id())?;
        Ok(())
    })
}

/// The init image of an image-to-image request, or `None` when `rgb` is NULL.
///
/// # Safety
/// `rgb` is NULL or points to `stride * (height - 1) + width * 3` readable bytes.
unsafe fn init_image(rgb: *const u8, width: u32, height: u32, stride: usize) -> CallResult<Option<Image>> {
    if rgb.is_null() {
        return Ok(None);
    }
    let row = width as usize * 3;
    let len = stride
        .checked_mul((height as usize).saturating_sub(1))
        .and_then(|n| n.checked_add(row))
        .filter(|_| width > 0 && height > 0 && stride >= row)
        .ok_or_else(|| {
            fail(
                zipp_status::ZIPP_ERR_INVALID_INPUT,
                format!("init image {width}x{height} with stride {stride}: sizes must be positive, stride >= width*3"),
            )
        })?;
    // SAFETY: non-null, and `len` bytes readable for the call (the caller's contract).
    let data = unsafe { std::slice::from_raw_parts(rgb, len) };
    Ok(Some(Image::from_strided(width, height, stride, data)?))
}

/// Generates images. `request` is JSON: `{"prompt": "...", "negative_prompt": "...",
/// "steering": {"liked": [...], "disliked": [...], "liked_strength": 0.85,
/// "disliked_strength": 0.85}, "width": 512, "height": 512, "steps": 30, "guidance": 7.5,
/// "scheduler": "ddim"|"euler_a"|"unipc", "seed": 7, "batch": 1, "strength": 0.75,
/// "conditioning": {...}}` (only `prompt` required; unset fields take the model's defaults),
/// or `{"personalization": <zipp_personalize's result>, "seed": 7, ...}`. For
/// image-to-image pass an RGB init image (`init_rgb`, rows `init_stride` bytes apart; NULL
/// for text-to-image) the size of the output. `on_step` (may be NULL) is called on this thread
/// after each step; the generation is cancelled (`ZIPP_ERR_CANCELLED`, no images) when it
/// returns non-zero or when `*cancel` (may be NULL) becomes non-zero, set from any thread with
/// an atomic store and polled at least every 20 ms; it stops within one step.
///
/// # Safety
/// `model` is NULL or a live handle; `request` NUL-terminated; `init_rgb` NULL or
/// `init_stride * (init_height - 1) + init_width * 3` readable bytes; `cancel` NULL or an
/// aligned `int` valid for the call, written only atomically; `on_step` NULL or safe to call
/// with the arguments described; `out` writable.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn zipp_image_generate(
    model: *const zipp_image_model,
    request: *const c_char,
    init_rgb: *const u8,
    init_width: u32,
    init_height: u32,
    init_stride: usize,
    on_step: zipp_step_callback,
    user_data: *mut c_void,
    cancel: *const c_int,
    out: *mut *mut zipp_images,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers (or checked just above its use) first.
    guarded(|| unsafe {
        let out = out_ptr(out, "out")?;
        let model = handle(model, "model")?.inner.clone();
        let init = init_image(init_rgb, init_width, init_height, init_stride)?;
        let req = fimg::request_from_json(str_arg(request, "request")?, init)?;
        let flag = cancel_flag(cancel)?;
        let result = fimg::generate(
            model,
            req,
            |p| match on_step {
                // SAFETY: `f` is a valid callback (the caller's contract).
                Some(f) => f(p.step, p.total, p.timestep, p.elapsed_s, user_data) == 0,
                None => true,
            },
            || flag.is_some_and(|f| f.load(Ordering::Relaxed) != 0),
        )?;
        *out = into_handle(zipp_images { out: result });
        Ok(())
    })
}

/// The conditioning a request would use (embeddings out), as JSON, a new string:
/// `{"model": id, "prompt": {"tokens": 77, "dim": 768, "data": [...], "pooled": [...]},
/// "negative": {...}, "liked": {...}, "disliked": {...}, "report": {...}}`. Pass it back as a
/// request's `"conditioning"` (the `"report"` is ignored there) to skip text encoding, e.g.
/// to cache a persona's steering vectors; only the model that made it accepts it.
///
/// # Safety
/// `model` is NULL or a live handle; `request` NUL-terminated; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn zipp_image_encode(
    model: *const zipp_image_model,
    request: *const c_char,
    out: *mut *mut c_char,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_ptr(out, "out")?;
        let model = handle(model, "model")?;
        let req = fimg::request_from_json(str_arg(request, "request")?, None)?;
        *out = c_string(fimg::conditioning_json(&*model.inner, &req)?)?;
        Ok(())
    })
}

/// How many images a result holds.
///
/// # Safety
/// `images` is NULL or a live handle; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn zipp_images_count(images: *const zipp_images, out: *mut usize) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; pointers are checked by
    // the `call` helpers first.
    guarded(|| unsafe {
        let out = out_arg(out, "out")?;
        *out = handle(images, "images")?.out.images.len();
        Ok(())
    })
}

/// Image `index`: `*rgb` points to its pixels (rows `*stride` bytes apart, 3 bytes per
/// pixel, valid until `zipp_images_free`), with its width and height.
///
/// # Safety
/// `images` is NULL or a live handle; the out pointers writable.
#[no_mangle]
pub unsafe extern "C" fn zipp_images_get(
    images: *const zipp_images,
    index: usize,
    rgb: *mut *const u8,
    width: *mut u32,
    height: *mut u32,
    stride: *mut usize,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; pointers are checked by
    // the `call` helpers first.
    guarded(|| unsafe {
        let (rgb, width, height, stride) =
            (out_arg(rgb, "rgb")?, out_arg(width, "width")?, out_arg(height, "height")?, out_arg(stride, "stride")?);
        let all = &handle(images, "images")?.out.images;
        let img = all.get(index).ok_or_else(|| {
            fail(zipp_status::ZIPP_ERR_INVALID_INPUT, format!("image {index} of {}: out of range", all.len()))
        })?;
        *rgb = img.rgb().as_ptr();
        *width = img.width();
        *height = img.height();
        *stride = img.width() as usize * 3;
        Ok(())
    })
}

/// What the generation resolved to, as JSON, a new string: `{"count", "width", "height",
/// "steps", "guidance", "scheduler", "report": {"prompt_tokens", "negative_tokens",
/// "chunks", "liked_dropped", "disliked_dropped"}, "timings": {"text_s", "denoise_s",
/// "decode_s"}}`.
///
/// # Safety
/// `images` is NULL or a live handle; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn zipp_images_info(images: *const zipp_images, out: *mut *mut c_char) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; pointers are checked by
    // the `call` helpers first.
    guarded(|| unsafe {
        let out = out_ptr(out, "out")?;
        *out = c_string(fimg::output_json(&handle(images, "images")?.out))?;
        Ok(())
    })
}

/// Frees a generation's images. NULL is ignored.
///
/// # Safety
/// `images` is NULL or a live handle no other thread is using.
#[no_mangle]
pub unsafe extern "C" fn zipp_images_free(images: *mut zipp_images) {
    // SAFETY: the caller passes NULL or a live handle of this type that no other thread uses.
    unsafe { free_handle(images) }
}

/// Frees a model. NULL is ignored.
///
/// # Safety
/// `model` is NULL or a live handle no other thread is using.
#[no_mangle]
pub unsafe extern "C" fn zipp_image_model_free(model: *mut zipp_image_model) {
    // SAFETY: the caller passes NULL or a live handle of this type that no other thread uses.
    unsafe { free_handle(model) }
}
