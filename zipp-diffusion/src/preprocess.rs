//! CLIP's official image preprocessing, bit for bit: what transformers' `CLIPImageProcessor`
//! (the PIL backend, `CLIPImageProcessorPil` in transformers 5) and OpenAI's `clip.load`
//! feed the vision tower.
//!
//! The steps, for an 8-bit RGB image (`do_convert_rgb` is implied: [`Image`] is RGB):
//!
//! 1. **Resize** the shortest side to `size` keeping the aspect ratio; the long side becomes
//!    `int(size * long / short)` (truncated, transformers' `get_resize_output_image_size`,
//!    also torchvision's). The resampling is **PIL's bicubic** as `Image.resize` runs it on
//!    an 8-bit image: a separable convolution with Keys' cubic, a = −0.5, whose support
//!    (2 pixels) is widened by the downscale factor (so downscaling averages, i.e.
//!    antialiases), weights normalised to sum 1 and quantised to 22-bit fixed point, the
//!    horizontal pass first, and **each pass rounded and clipped to 0..=255** (the vertical
//!    pass reads the rounded horizontal output). transformers resizes uint8 images through
//!    PIL, so its result is this uint8 image.
//! 2. **Centre crop** to `crop_size` with transformers' offsets, `(resized − crop) // 2`
//!    (floor), zero-padding where the crop is larger than the image.
//! 3. **Rescale** by `1/255` (computed as transformers does: the byte times the `f64`
//!    factor, rounded to `f32`) and **normalise** in `f32`, `(x − mean) / std`, with OpenAI's
//!    mean `[0.48145466, 0.4578275, 0.40821073]` and std `[0.26862954, 0.26130258,
//!    0.27577711]`. Output `[n, 3, H, W]`, `f32`, channels first.
//!
//! Every step is exact integer or IEEE arithmetic in the same order as PIL and numpy, so
//! the output equals transformers' `pixel_values` bit for bit (the tests check 0.0 max
//! error on real photos at 224 and at a test size). Only the pixels inside the crop are
//! computed (each output pixel of PIL's resize depends only on its own row and column
//! weights), so a very elongated image costs no more than a square one.
//!
//! **Other pipelines differ.** OpenAI's `clip.load` resizes the same way but crops with
//! torchvision's `int(round((resized − crop) / 2))` (round half to even): one pixel further
//! right or down when `resized − crop ≡ 3 (mod 4)`, and converts to float as `byte / 255`
//! in `f32` (≤ 1 ulp from transformers'). transformers 5's default `CLIPImageProcessor` is
//! a torchvision backend when torchvision is installed (it falls back to the PIL one
//! without): torch's antialiased bicubic on uint8 tensors, not PIL's; on the test photos
//! 0.2–0.6 % of the bytes move by 1–2 levels (up to 0.03 in `pixel_values`; measured by
//! `benches/reference/clip_reference.py --torchvision`). candle's CLIP example
//! (`candle-examples/examples/clip`) is further off: the `image` crate's
//! `resize_to_fill(224, 224, Triangle)` (bilinear, the image crate's own sizing and crop)
//! and `x · 2/255 − 1` (mean = std = 0.5, SigLIP's normalisation, not OpenAI's). CLIP
//! embeddings shift measurably with such changes (CLIPScore, CMMD and personalization
//! scores are compared across papers and tools), so zipp reproduces the processor the
//! models were evaluated with rather than an approximation.

use std::ops::Range;

use candle_core::{Device, Tensor};
use zipp_core::image::Image;
use zipp_core::{Error, Result};

/// OpenAI CLIP's normalisation mean (transformers' `OPENAI_CLIP_MEAN`).
pub const OPENAI_CLIP_MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];
/// OpenAI CLIP's normalisation std (transformers' `OPENAI_CLIP_STD`).
pub const OPENAI_CLIP_STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];

/// PIL's fixed-point precision for 8-bit resampling (`Resample.c`: `32 - 8 - 2`).
const PRECISION_BITS: u32 = 32 - 8 - 2;
/// PIL's bicubic support (pixels each side at scale 1).
const BICUBIC_SUPPORT: f64 = 2.0;

/// How the image is resized before the crop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resize {
    /// The shortest side to this many pixels, the aspect ratio kept
    /// (`size: {"shortest_edge": n}`, or a plain `size: n` in older configs).
    ShortestEdge(u32),
    /// Exactly this size, aspect ratio not kept (`size: {"height": h, "width": w}`).
    Exact { width: u32, height: u32 },
}

/// CLIP image preprocessing settings (a transformers `preprocessor_config.json`).
#[derive(Debug, Clone, PartialEq)]
pub struct ClipPreprocess {
    /// `None`: no resize (`do_resize: false`). Resampling is always PIL's bicubic.
    pub resize: Option<Resize>,
    /// Centre crop to `(width, height)`; `None`: no crop.
    pub crop: Option<(u32, u32)>,
    /// Multiply bytes by this (`1/255`); `None`: no rescale.
    pub rescale: Option<f64>,
    /// `(mean, std)` per channel; `None`: no normalisation.
    pub normalize: Option<([f64; 3], [f64; 3])>,
}

impl ClipPreprocess {
    /// OpenAI CLIP's preprocessing at `size` (224 for most CLIP models, 336 for the
    /// `-336` ones): shortest side to `size`, bicubic, centre crop `size × size`,
    /// rescale 1/255, OpenAI mean/std. What transformers' `CLIPImageProcessor` defaults to.
    pub fn openai(size: u32) -> ClipPreprocess {
        ClipPreprocess {
            resize: Some(Resize::ShortestEdge(size)),
            crop: Some((size, size)),
            rescale: Some(1.0 / 255.0),
            normalize: Some((OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)),
        }
    }

    /// Reads a transformers `preprocessor_config.json` (`CLIPImageProcessor` or the older
    /// `CLIPFeatureExtractor`): `do_resize`, `size` (an int, `{"shortest_edge"}` or
    /// `{"height", "width"}`), `resample` (3 = bicubic, the only one supported),
    /// `do_center_crop`, `crop_size` (an int or `{"height", "width"}`), `do_rescale`,
    /// `rescale_factor`, `do_normalize`, `image_mean`, `image_std`. Missing keys take
    /// `CLIPImageProcessor`'s defaults (224, bicubic, crop 224, 1/255, OpenAI mean/std).
    pub fn from_config(v: &serde_json::Value) -> std::result::Result<ClipPreprocess, String> {
        let obj = v.as_object().ok_or("not a JSON object")?;
        let flag = |key: &str| -> std::result::Result<bool, String> {
            match obj.get(key) {
                None | Some(serde_json::Value::Null) => Ok(true),
                Some(serde_json::Value::Bool(b)) => Ok(*b),
                Some(other) => Err(format!("`{key}` must be true or false, got {other}")),
            }
        };
        let side = |key: &str, x: &serde_json::Value| -> std::result::Result<u32, String> {
            x.as_u64()
                .filter(|&n| n > 0 && n <= u32::MAX as u64)
                .map(|n| n as u32)
                .ok_or_else(|| format!("`{key}` must be a positive integer, got {x}"))
        };
        let resize = if flag("do_resize")? {
            if let Some(r) = obj.get("resample").filter(|r| !r.is_null()) {
                if r.as_u64() != Some(3) {
                    return Err(format!(
                        "`resample` {r} is not supported: zipp implements PIL's bicubic (3), CLIP's resampling"
                    ));
                }
            }
            Some(match obj.get("size") {
                None | Some(serde_json::Value::Null) => Resize::ShortestEdge(224),
                Some(n @ serde_json::Value::Number(_)) => Resize::ShortestEdge(side("size", n)?),
                Some(serde_json::Value::Object(m)) => match (m.get("shortest_edge"), m.get("height"), m.get("width")) {
                    (Some(s), None, None) => Resize::ShortestEdge(side("size.shortest_edge", s)?),
                    (None, Some(h), Some(w)) => {
                        Resize::Exact { width: side("size.width", w)?, height: side("size.height", h)? }
                    }
                    _ => return Err(format!("`size` {} is not {{shortest_edge}} nor {{height, width}}", obj["size"])),
                },
                Some(other) => return Err(format!("`size` must be an integer or an object, got {other}")),
            })
        } else {
            None
        };
        let crop = if flag("do_center_crop")? {
            Some(match obj.get("crop_size") {
                None | Some(serde_json::Value::Null) => (224, 224),
                Some(n @ serde_json::Value::Number(_)) => {
                    let s = side("crop_size", n)?;
                    (s, s)
                }
                Some(serde_json::Value::Object(m)) => match (m.get("height"), m.get("width")) {
                    (Some(h), Some(w)) => (side("crop_size.width", w)?, side("crop_size.height", h)?),
                    _ => return Err("`crop_size` needs height and width".into()),
                },
                Some(other) => return Err(format!("`crop_size` must be an integer or an object, got {other}")),
            })
        } else {
            None
        };
        let rescale = if flag("do_rescale")? {
            Some(match obj.get("rescale_factor") {
                None | Some(serde_json::Value::Null) => 1.0 / 255.0,
                Some(x) => x
                    .as_f64()
                    .filter(|f| f.is_finite() && *f > 0.0)
                    .ok_or_else(|| format!("`rescale_factor` must be a positive number, got {x}"))?,
            })
        } else {
            None
        };
        let triple = |key: &str, default: [f64; 3]| -> std::result::Result<[f64; 3], String> {
            match obj.get(key) {
                None | Some(serde_json::Value::Null) => Ok(default),
                Some(serde_json::Value::Number(n)) => {
                    let x = n.as_f64().unwrap_or(f64::NAN);
                    Ok([x; 3])
                }
                Some(serde_json::Value::Array(a)) if a.len() == 3 => {
                    let mut out = [0.0; 3];
                    for (o, x) in out.iter_mut().zip(a) {
                        *o = x.as_f64().ok_or_else(|| format!("`{key}` holds a non-number {x}"))?;
                    }
                    Ok(out)
                }
                Some(other) => Err(format!("`{key}` must be a number or 3 numbers, got {other}")),
            }
        };
        let normalize = if flag("do_normalize")? {
            let (mean, std) = (triple("image_mean", OPENAI_CLIP_MEAN)?, triple("image_std", OPENAI_CLIP_STD)?);
            if mean.iter().any(|m| !m.is_finite()) || std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
                return Err(format!("image_mean {mean:?} / image_std {std:?}: std must be positive and all finite"));
            }
            Some((mean, std))
        } else {
            None
        };
        Ok(ClipPreprocess { resize, crop, rescale, normalize })
    }

    /// The size `(width, height)` the resize gives a `width × height` image.
    pub fn resized_size(&self, width: u32, height: u32) -> Result<(u32, u32)> {
        check_size(width, height)?;
        match self.resize {
            None => Ok((width, height)),
            Some(Resize::Exact { width, height }) => Ok((width, height)),
            Some(Resize::ShortestEdge(size)) => {
                let (short, long) = if width <= height { (width, height) } else { (height, width) };
                // Python: int(size * long / short); the quotient is correctly rounded in both.
                let new_long = (size as f64 * long as f64 / short as f64) as u64;
                if new_long == 0 || new_long > u32::MAX as u64 {
                    return Err(Error::InvalidInput(format!(
                        "a {width}x{height} image has too extreme an aspect ratio to resize its shortest side to {size}"
                    )));
                }
                let new_long = new_long as u32;
                Ok(if width <= height { (size, new_long) } else { (new_long, size) })
            }
        }
    }

    /// The size `(width, height)` of the preprocessed image.
    pub fn output_size(&self, width: u32, height: u32) -> Result<(u32, u32)> {
        let resized = self.resized_size(width, height)?;
        Ok(self.crop.unwrap_or(resized))
    }

    /// The 8-bit stage: the image resized (PIL's bicubic) and centre-cropped, before the
    /// rescale and normalisation, as packed RGB.
    pub fn resize_crop(&self, image: &Image) -> Result<Image> {
        let (w, h, rgb) = self.resize_crop_rgb(image.rgb(), image.width(), image.height())?;
        Image::new(w, h, rgb)
    }

    /// [`ClipPreprocess::resize_crop`] on packed RGB bytes (`width * height * 3` of them):
    /// `(width, height, rgb)` of the result.
    pub fn resize_crop_rgb(&self, rgb: &[u8], width: u32, height: u32) -> Result<(u32, u32, Vec<u8>)> {
        check_size(width, height)?;
        let need = width as usize * height as usize * 3;
        if rgb.len() != need {
            return Err(Error::InvalidInput(format!(
                "a {width}x{height} RGB image needs {need} bytes, got {}",
                rgb.len()
            )));
        }
        let (rw, rh) = self.resized_size(width, height)?;
        let (cw, ch) = self.crop.unwrap_or((rw, rh));
        // transformers' center_crop: offset (resized - crop) // 2, floor division; rows and
        // columns outside the resized image are zeros.
        let top = (rh as i64 - ch as i64).div_euclid(2);
        let left = (rw as i64 - cw as i64).div_euclid(2);
        let ys = clamp_range(top, ch, rh);
        let xs = clamp_range(left, cw, rw);
        let mut out = vec![0u8; cw as usize * ch as usize * 3];
        if ys.is_empty() || xs.is_empty() {
            return Ok((cw, ch, out));
        }
        let src = Plane { data: rgb, width: width as usize, height: height as usize };
        let window = resample_window(&src, rw as usize, rh as usize, xs.clone(), ys.clone());
        let row = xs.len() * 3;
        for (i, y) in ys.clone().enumerate() {
            let oy = (y as i64 - top) as usize;
            let ox = (xs.start as i64 - left) as usize;
            let dst = (oy * cw as usize + ox) * 3;
            out[dst..dst + row].copy_from_slice(&window[i * row..(i + 1) * row]);
        }
        Ok((cw, ch, out))
    }

    /// The value each byte of each channel becomes: `table[c][v]` (rescale then normalise,
    /// in transformers' arithmetic).
    pub fn value_table(&self) -> [[f32; 256]; 3] {
        let mut table = [[0f32; 256]; 3];
        for (c, t) in table.iter_mut().enumerate() {
            for (v, out) in t.iter_mut().enumerate() {
                // transformers' rescale: float64 multiply, cast to float32.
                let mut x = match self.rescale {
                    Some(f) => (v as f64 * f) as f32,
                    None => v as f32,
                };
                // normalize: float32 (x - mean) / std, mean and std cast to float32.
                if let Some((mean, std)) = &self.normalize {
                    x = (x - mean[c] as f32) / std[c] as f32;
                }
                *out = x;
            }
        }
        table
    }

    /// Preprocessed images as `[n, 3, H, W]` `f32` values, channels first, with the shape.
    /// Every image must come out the same size (a crop sees to that).
    pub fn pixel_values(&self, images: &[Image]) -> Result<(Vec<f32>, [usize; 4])> {
        if images.is_empty() {
            return Err(Error::InvalidInput("no images to preprocess".into()));
        }
        let table = self.value_table();
        let mut data = Vec::new();
        let mut size = None;
        for (i, image) in images.iter().enumerate() {
            let (w, h, rgb) = self
                .resize_crop_rgb(image.rgb(), image.width(), image.height())
                .map_err(|e| Error::InvalidInput(format!("image {i}: {}", strip_prefix(&e))))?;
            match size {
                None => size = Some((w, h)),
                Some(s) if s != (w, h) => {
                    return Err(Error::InvalidInput(format!(
                        "image {i} preprocesses to {w}x{h} but image 0 to {}x{}: without a centre crop the images \
                         must share an aspect ratio",
                        s.0, s.1
                    )))
                }
                Some(_) => {}
            }
            let plane = w as usize * h as usize;
            let start = data.len();
            data.resize(start + 3 * plane, 0.0);
            for (p, px) in rgb.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    data[start + c * plane + p] = table[c][px[c] as usize];
                }
            }
        }
        let (w, h) = size.unwrap_or((0, 0));
        Ok((data, [images.len(), 3, h as usize, w as usize]))
    }

    /// [`ClipPreprocess::pixel_values`] as a tensor on `device`.
    pub fn tensor(&self, images: &[Image], device: &Device) -> Result<Tensor> {
        let (data, shape) = self.pixel_values(images)?;
        zipp_core::runtime::compute(device, || Tensor::from_vec(data, shape.to_vec(), device))
            .map_err(|e| Error::Compute(crate::candle_message(&e)))
    }
}

/// PIL's `Image.resize((width, height), Image.BICUBIC)` of an 8-bit RGB image, exactly.
pub fn resize_bicubic(image: &Image, width: u32, height: u32) -> Result<Image> {
    check_size(width, height)?;
    let src = Plane { data: image.rgb(), width: image.width() as usize, height: image.height() as usize };
    let rgb = resample_window(&src, width as usize, height as usize, 0..width as usize, 0..height as usize);
    Image::new(width, height, rgb)
}

fn check_size(width: u32, height: u32) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(Error::InvalidInput(format!("image size {width}x{height} must be positive")));
    }
    Ok(())
}

fn strip_prefix(e: &Error) -> String {
    match e {
        Error::InvalidInput(m) => m.clone(),
        other => other.to_string(),
    }
}

/// `start .. start + len` clipped to `0..size`.
fn clamp_range(start: i64, len: u32, size: u32) -> Range<usize> {
    let a = start.max(0).min(size as i64) as usize;
    let b = (start + len as i64).max(0).min(size as i64) as usize;
    a..b.max(a)
}

/// Packed RGB rows.
struct Plane<'a> {
    data: &'a [u8],
    width: usize,
    height: usize,
}

/// PIL's bicubic kernel (`Resample.c`, `bicubic_filter`, a = −0.5), in its operation order.
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = if x < 0.0 { -x } else { x };
    if x < 1.0 {
        return ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    }
    if x < 2.0 {
        return (((x - 5.0) * x + 8.0) * x - 4.0) * A;
    }
    0.0
}

/// Fixed-point weights of some outputs along one axis: for output `i` of `outputs`, the
/// inputs `first[i] .. first[i] + weights[i].len()`.
struct Taps {
    first: Vec<usize>,
    weights: Vec<Vec<i32>>,
}

/// PIL's `precompute_coeffs` + `normalize_coeffs_8bpc` for the outputs `outputs` of an
/// `in_size → out_size` resize (box = the whole input).
fn taps(in_size: usize, out_size: usize, outputs: Range<usize>) -> Taps {
    // PIL: `(double)(in1 - in0) / outSize` with in0 = 0, in1 = in_size (floats: exact).
    let scale = in_size as f64 / out_size as f64;
    let filterscale = if scale < 1.0 { 1.0 } else { scale };
    let support = BICUBIC_SUPPORT * filterscale;
    let ss = 1.0 / filterscale;
    let one = (1u32 << PRECISION_BITS) as f64;
    let mut t = Taps { first: Vec::with_capacity(outputs.len()), weights: Vec::with_capacity(outputs.len()) };
    for xx in outputs {
        let center = (xx as f64 + 0.5) * scale;
        // C's (int) truncates toward zero; then clamped to the input.
        let xmin = ((center - support + 0.5) as i64).max(0);
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
        let n = (xmax - xmin).max(0) as usize;
        let mut k: Vec<f64> = Vec::with_capacity(n);
        let mut ww = 0.0;
        for x in 0..n {
            // (x + xmin - center + 0.5) * ss: the integer sum first, as in C.
            let w = bicubic(((x as i64 + xmin) as f64 - center + 0.5) * ss);
            k.push(w);
            ww += w;
        }
        let weights = k
            .into_iter()
            .map(|w| {
                let w = if ww != 0.0 { w / ww } else { w };
                if w < 0.0 {
                    (-0.5 + w * one) as i32
                } else {
                    (0.5 + w * one) as i32
                }
            })
            .collect();
        t.first.push(xmin as usize);
        t.weights.push(weights);
    }
    t
}

/// PIL's `clip8`: the rounded fixed-point sum, clipped to a byte.
#[inline]
fn clip8(ss: i32) -> u8 {
    (ss >> PRECISION_BITS).clamp(0, 255) as u8
}

/// The pixels `xs × ys` of PIL's bicubic resize of `src` to `out_w × out_h` (packed RGB,
/// `xs.len()` pixels a row): the horizontal pass over the source rows the window needs,
/// rounded to bytes, then the vertical pass (PIL's `ImagingResampleInner`). A pass whose
/// size does not change is skipped, as PIL skips it.
fn resample_window(src: &Plane, out_w: usize, out_h: usize, xs: Range<usize>, ys: Range<usize>) -> Vec<u8> {
    let need_h = out_w != src.width;
    let need_v = out_h != src.height;
    let vt = need_v.then(|| taps(src.height, out_h, ys.clone()));
    // The source rows the vertical pass reads (or the window's rows, without one).
    let rows = match &vt {
        Some(t) => {
            let lo = t.first.iter().copied().min().unwrap_or(0);
            let hi = t.first.iter().zip(&t.weights).map(|(f, w)| f + w.len()).max().unwrap_or(lo);
            lo..hi.max(lo)
        }
        None => ys.clone(),
    };
    let ow = xs.len();
    // Horizontal pass: `rows.len()` rows of `ow` pixels.
    let mut mid = vec![0u8; rows.len() * ow * 3];
    if need_h {
        let ht = taps(src.width, out_w, xs.clone());
        for (r, y) in rows.clone().enumerate() {
            let line = &src.data[y * src.width * 3..(y + 1) * src.width * 3];
            let out = &mut mid[r * ow * 3..(r + 1) * ow * 3];
            for (i, (first, k)) in ht.first.iter().zip(&ht.weights).enumerate() {
                let half = 1i32 << (PRECISION_BITS - 1);
                let (mut s0, mut s1, mut s2) = (half, half, half);
                for (j, &w) in k.iter().enumerate() {
                    let p = (first + j) * 3;
                    s0 += line[p] as i32 * w;
                    s1 += line[p + 1] as i32 * w;
                    s2 += line[p + 2] as i32 * w;
                }
                out[i * 3] = clip8(s0);
                out[i * 3 + 1] = clip8(s1);
                out[i * 3 + 2] = clip8(s2);
            }
        }
    } else {
        for (r, y) in rows.clone().enumerate() {
            let line = &src.data[(y * src.width + xs.start) * 3..(y * src.width + xs.end) * 3];
            mid[r * ow * 3..(r + 1) * ow * 3].copy_from_slice(line);
        }
    }
    let Some(vt) = vt else {
        return mid;
    };
    // Vertical pass over the rounded horizontal output.
    let mut out = vec![0u8; ys.len() * ow * 3];
    for (i, (first, k)) in vt.first.iter().zip(&vt.weights).enumerate() {
        let base = first - rows.start;
        let dst = &mut out[i * ow * 3..(i + 1) * ow * 3];
        for (x, px) in dst.chunks_exact_mut(3).enumerate() {
            let half = 1i32 << (PRECISION_BITS - 1);
            let (mut s0, mut s1, mut s2) = (half, half, half);
            for (j, &w) in k.iter().enumerate() {
                let p = ((base + j) * ow + x) * 3;
                s0 += mid[p] as i32 * w;
                s1 += mid[p + 1] as i32 * w;
                s2 += mid[p + 2] as i32 * w;
            }
            px[0] = clip8(s0);
            px[1] = clip8(s1);
            px[2] = clip8(s2);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_size_is_a_copy() {
        let rgb: Vec<u8> = (0..5 * 4 * 3).map(|i| (i * 37 % 256) as u8).collect();
        let img = Image::new(5, 4, rgb.clone()).unwrap();
        assert_eq!(resize_bicubic(&img, 5, 4).unwrap().rgb(), &rgb[..]);
    }

    #[test]
    fn constant_images_stay_constant() {
        let img = Image::new(7, 3, vec![200; 7 * 3 * 3]).unwrap();
        for (w, h) in [(32, 13), (2, 1), (70, 30)] {
            assert!(resize_bicubic(&img, w, h).unwrap().rgb().iter().all(|&v| v == 200), "{w}x{h}");
        }
    }

    #[test]
    fn shortest_edge_sizes_truncate_like_transformers() {
        let p = ClipPreprocess::openai(224);
        assert_eq!(p.resized_size(640, 480).unwrap(), (298, 224));
        assert_eq!(p.resized_size(451, 300).unwrap(), (336, 224));
        assert_eq!(p.resized_size(100, 100).unwrap(), (224, 224));
        assert_eq!(p.resized_size(13, 20).unwrap(), (224, 344));
        assert!(p.resized_size(0, 20).is_err());
    }

    #[test]
    fn window_equals_the_full_resize() {
        let rgb: Vec<u8> = (0..41 * 29 * 3).map(|i| ((i * 7919) % 251) as u8).collect();
        let img = Image::new(41, 29, rgb).unwrap();
        let full = resize_bicubic(&img, 23, 17).unwrap();
        let src = Plane { data: img.rgb(), width: 41, height: 29 };
        let win = resample_window(&src, 23, 17, 5..19, 3..11);
        for (i, y) in (3..11).enumerate() {
            for (j, x) in (5..19).enumerate() {
                for c in 0..3 {
                    assert_eq!(win[(i * 14 + j) * 3 + c], full.rgb()[(y * 23 + x) * 3 + c]);
                }
            }
        }
    }

    #[test]
    fn config_forms() {
        let old: serde_json::Value = serde_json::json!({"size": 224, "crop_size": 224, "resample": 3,
            "do_center_crop": true, "do_normalize": true, "do_resize": true,
            "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]});
        assert_eq!(ClipPreprocess::from_config(&old).unwrap(), ClipPreprocess::openai(224));
        let new = serde_json::json!({"size": {"shortest_edge": 336}, "crop_size": {"height": 336, "width": 336}});
        assert_eq!(ClipPreprocess::from_config(&new).unwrap(), ClipPreprocess::openai(336));
        assert!(ClipPreprocess::from_config(&serde_json::json!({"resample": 2})).is_err());
        assert!(ClipPreprocess::from_config(&serde_json::json!({"image_std": [0.5, 0.0, 0.5]})).is_err());
    }
}
