//! The 3×3 "same" convolution by Winograd's minimal filtering, F(2×2, 3×3) (Lavin & Gray,
//! "Fast Algorithms for Convolutional Neural Networks", 2016).
//!
//! Each 2×2 block of output pixels is `Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`, with `d` the 4×4 input
//! patch around it and `g` the 3×3 kernel; summed over input channels, the element-wise
//! product becomes 16 matrix products `M_e = U_e · V_e` (`U_e` `[c_out × c_in]` from the
//! kernel, `V_e` `[c_in × tiles]` from the input), 16 multiply-adds per output block and
//! channel pair where the direct convolution does 36: 2.25 × fewer. The transforms are
//! additions only (and halvings of the kernel, exact in binary floating point); what they
//! cost is a pass over the input and one over the output per 16 products, so the kernel
//! transform is redone per call (no extra resident weights) and the method is only taken
//! where the image is large enough to pay for it (see [`applies`]). Rounding: the sums are
//! regrouped, not approximated; the results agree with the direct convolution to float
//! rounding (`layers.rs` tests, against candle's convolution).
//!
//! Work is split into chunks of whole tile rows (across the batch) sized so a chunk's
//! transformed input and products stay within [`CHUNK_BYTES`]; inside a chunk the input
//! transform runs per input channel, the 16 products are spread over the threads (each one
//! single-threaded `gemm`), and the output transform runs per output channel with the bias,
//! per-channel addend and residual of [`Epilogue`] fused into it.

use rayon::prelude::*;

use crate::layers::{add_residual, Epilogue, SendPtr};

/// Bytes of transformed input and products one chunk holds.
const CHUNK_BYTES: usize = 32 << 20;

/// Output pixels (batch × height × width) from which the Winograd form beats the direct
/// one on this project's measurements (BENCHMARKS.md, "Diffusion").
const MIN_PIXELS: usize = 1024;

/// Whether [`conv3x3`] takes a `[b, c, h, w]` input: even sides (whole 2×2 tiles) and
/// enough pixels to pay for the kernel transform.
pub(crate) fn applies(b: usize, h: usize, w: usize) -> bool {
    h.is_multiple_of(2) && w.is_multiple_of(2) && h >= 4 && w >= 4 && b * h * w >= MIN_PIXELS
}

/// Scratch (transformed kernel, input and products) up to this size is kept between calls,
/// one buffer for the process: a fresh allocation of tens of MiB is paid again in page
/// faults on first touch, which cost as much as the transforms themselves (measured:
/// BENCHMARKS.md, "Diffusion"). [`release_scratch`] frees it; the pipeline does so at the
/// end of every generation.
const RETAIN_BYTES: usize = 160 << 20;

static SCRATCH: std::sync::Mutex<Vec<f32>> = std::sync::Mutex::new(Vec::new());

/// Takes the kept scratch (empty if another call holds it).
fn take_scratch() -> Vec<f32> {
    std::mem::take(&mut *SCRATCH.lock().unwrap_or_else(|p| p.into_inner()))
}

/// Frees the convolution scratch kept between calls (up to 160 MiB).
pub fn release_scratch() {
    drop(take_scratch());
}

/// Runs `f` on `len` elements of scratch (contents unspecified), kept for the next call
/// when it is at most [`RETAIN_BYTES`].
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut buf = take_scratch();
    if buf.len() < len {
        buf = Vec::new(); // the old buffer goes before the new one is touched
        buf.resize(len, 0.0);
    }
    let r = f(&mut buf[..len]);
    if buf.len() * 4 <= RETAIN_BYTES {
        let mut kept = SCRATCH.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() < buf.len() {
            *kept = buf;
        }
    }
    r
}

/// `U[e][o][c] = (G g_oc Gᵀ)[e]` from the tap-major kernel `taps[t][o][c]` (`t = 3·dy + dx`),
/// `G = [[1, 0, 0], [½, ½, ½], [½, -½, ½], [0, 0, 1]]`.
fn kernel_transform(taps: &[f32], pairs: usize, u: &mut [f32]) {
    assert_eq!(u.len(), 16 * pairs);
    const BLOCK: usize = 1024;
    let dst = SendPtr::new(u.as_mut_ptr());
    (0..pairs.div_ceil(BLOCK)).into_par_iter().for_each(|blk| {
        let p0 = blk * BLOCK;
        let n = BLOCK.min(pairs - p0);
        let g = |t: usize| &taps[t * pairs + p0..t * pairs + p0 + n];
        // Rows of G g (4 × 3), each a slice over the block's pairs.
        let mut gg = vec![0f32; 12 * n];
        for dx in 0..3 {
            let (g0, g1, g2) = (g(dx), g(3 + dx), g(6 + dx));
            for i in 0..n {
                gg[dx * n + i] = g0[i];
                gg[(3 + dx) * n + i] = 0.5 * (g0[i] + g1[i] + g2[i]);
                gg[(6 + dx) * n + i] = 0.5 * (g0[i] - g1[i] + g2[i]);
                gg[(9 + dx) * n + i] = g2[i];
            }
        }
        for r in 0..4 {
            let row = |dx: usize| &gg[(3 * r + dx) * n..(3 * r + dx + 1) * n];
            let (h0, h1, h2) = (row(0), row(1), row(2));
            // SAFETY: block `blk` writes pairs p0..p0 + n of each of the 16 planes of `u`
            // (16 · pairs elements); blocks are disjoint and joined before `u` is returned.
            #[allow(unsafe_code)]
            let out = |e: usize| unsafe { std::slice::from_raw_parts_mut(dst.get().add(e * pairs + p0), n) };
            let (o0, o1, o2, o3) = (out(4 * r), out(4 * r + 1), out(4 * r + 2), out(4 * r + 3));
            for i in 0..n {
                o0[i] = h0[i];
                o1[i] = 0.5 * (h0[i] + h1[i] + h2[i]);
                o2[i] = 0.5 * (h0[i] - h1[i] + h2[i]);
                o3[i] = h2[i];
            }
        }
    });
}

/// `Bᵀ d B` of one channel's tile row `i` (tiles `0..tw`) of the `h × w` plane `x`, written
/// to `v[e · stride + j]`.
/// `scratch` holds at least `18 · tw + 2` elements.
///
/// # Safety
/// `v + e · stride + j` for `e < 16`, `j < w / 2` must be valid for writes, and written by
/// no one else during the call.
#[allow(unsafe_code)]
unsafe fn input_row(x: &[f32], h: usize, w: usize, i: usize, v: *mut f32, stride: usize, scratch: &mut [f32]) {
    let tw = w / 2;
    // a[r][k][j]: the row transform of input row 2i - 1 + r (zero outside the image).
    let (a, rest) = scratch.split_at_mut(16 * tw);
    let (even, odd) = rest[..2 * tw + 2].split_at_mut(tw + 1);
    even[0] = 0.0;
    odd[tw] = 0.0;
    for r in 0..4 {
        let y = (2 * i + r) as isize - 1;
        if y < 0 || y >= h as isize {
            a[4 * r * tw..4 * (r + 1) * tw].fill(0.0);
            continue;
        }
        let row = &x[y as usize * w..(y as usize + 1) * w];
        // The padded row q[k] = row[k - 1] (zero at k = 0 and k = w + 1), split into even
        // and odd positions: tile j reads q[2j..2j + 4] = even[j], odd[j], even[j+1], odd[j+1].
        for j in 0..tw {
            odd[j] = row[2 * j];
            even[j + 1] = row[2 * j + 1];
        }
        let a = &mut a[4 * r * tw..4 * (r + 1) * tw];
        let (a0, rest) = a.split_at_mut(tw);
        let (a1, rest) = rest.split_at_mut(tw);
        let (a2, a3) = rest.split_at_mut(tw);
        for j in 0..tw {
            let (d0, d1, d2, d3) = (even[j], odd[j], even[j + 1], odd[j + 1]);
            a0[j] = d0 - d2;
            a1[j] = d1 + d2;
            a2[j] = d2 - d1;
            a3[j] = d1 - d3;
        }
    }
    for k in 0..4 {
        let row = |r: usize| &a[(4 * r + k) * tw..(4 * r + k + 1) * tw];
        let (r0, r1, r2, r3) = (row(0), row(1), row(2), row(3));
        // SAFETY: the caller's contract (see the function's Safety section).
        #[allow(unsafe_code)]
        let out = |e: usize| unsafe { std::slice::from_raw_parts_mut(v.add(e * stride), tw) };
        let (o0, o1, o2, o3) = (out(k), out(4 + k), out(8 + k), out(12 + k));
        for j in 0..tw {
            o0[j] = r0[j] - r2[j];
            o1[j] = r1[j] + r2[j];
            o2[j] = r2[j] - r1[j];
            o3[j] = r1[j] - r3[j];
        }
    }
}

/// `Aᵀ M A` of one output channel's tile row (`Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]]`) from
/// `m[e · stride + j]`, into output rows `2i` and `2i + 1` (`dst`, 2·w elements), with the
/// epilogue: `((sum + bias) + add)`, then `(residual + y) / scale`.
/// `s` holds at least `8 · tw` elements of scratch.
#[allow(clippy::too_many_arguments)]
fn output_row(
    m: &[f32],
    stride: usize,
    w: usize,
    dst: &mut [f32],
    (shift, add): (f32, f32),
    res: Option<&[f32]>,
    scale: f32,
    s: &mut [f32],
) {
    let tw = w / 2;
    let me = |e: usize| &m[e * stride..e * stride + tw];
    // s[u][b][j]: the row transform of M's row u.
    for u in 0..4 {
        let (m0, m1, m2, m3) = (me(4 * u), me(4 * u + 1), me(4 * u + 2), me(4 * u + 3));
        let (s0, s1) = s[2 * u * tw..2 * (u + 1) * tw].split_at_mut(tw);
        for j in 0..tw {
            s0[j] = m0[j] + m1[j] + m2[j];
            s1[j] = m1[j] - m2[j] - m3[j];
        }
    }
    let sv = |u: usize, b: usize| &s[(2 * u + b) * tw..(2 * u + b + 1) * tw];
    let (top, bottom) = dst.split_at_mut(w);
    for b in 0..2 {
        let (u0, u1, u2, u3) = (sv(0, b), sv(1, b), sv(2, b), sv(3, b));
        for j in 0..tw {
            top[2 * j + b] = ((u0[j] + u1[j] + u2[j]) + shift) + add;
            bottom[2 * j + b] = ((u1[j] - u2[j] - u3[j]) + shift) + add;
        }
    }
    if let Some(r) = res {
        add_residual(dst, r, scale);
    }
}

/// The 3×3, stride-1, padding-1 convolution of `x` `[b, c_in, h, w]` with the tap-major
/// kernel `taps` `[9, c_out, c_in]`, the epilogue fused: `[b, c_out, h, w]`. Needs
/// [`applies`]`(b, h, w)` (even sides).
pub(crate) fn conv3x3(
    x: &[f32],
    taps: &[f32],
    dims: (usize, usize, usize, usize, usize),
    e: &Epilogue,
    residual: Option<&[f32]>,
) -> Vec<f32> {
    conv3x3_chunked(x, taps, dims, e, residual, CHUNK_BYTES)
}

fn conv3x3_chunked(
    x: &[f32],
    taps: &[f32],
    (b, cin, h, w, cout): (usize, usize, usize, usize, usize),
    e: &Epilogue,
    residual: Option<&[f32]>,
    chunk_bytes: usize,
) -> Vec<f32> {
    debug_assert!(h.is_multiple_of(2) && w.is_multiple_of(2));
    let (tw, rows_total) = (w / 2, b * h / 2);
    // Tile rows per chunk: the chunk's V (16 · c_in · n) and M (16 · c_out · n) in budget.
    let per_row = 16 * (cin + cout) * tw * 4;
    let rows = (chunk_bytes / per_row).clamp(1, rows_total);
    let cap = rows * tw;
    let pairs = cout * cin;
    with_scratch(16 * (pairs + (cin + cout) * cap), |buf| {
        let (u, rest) = buf.split_at_mut(16 * pairs);
        let (v, m) = rest.split_at_mut(16 * cin * cap);
        kernel_transform(taps, pairs, u);
        chunks(x, u, v, m, (b, cin, h, w, cout), rows, e, residual)
    })
}

/// The chunks of [`conv3x3_chunked`], `rows` tile rows each, on transformed kernel `u` and
/// scratch `v`, `m` for a chunk's transformed input and products.
#[allow(clippy::too_many_arguments)]
fn chunks(
    x: &[f32],
    u: &[f32],
    v: &mut [f32],
    m: &mut [f32],
    (b, cin, h, w, cout): (usize, usize, usize, usize, usize),
    rows: usize,
    e: &Epilogue,
    residual: Option<&[f32]>,
) -> Vec<f32> {
    let (th, tw, hw) = (h / 2, w / 2, h * w);
    let rows_total = b * th;
    let mut out = vec![0f32; b * cout * hw];
    let out_ptr = SendPtr::new(out.as_mut_ptr());
    let scale = e.scale as f32;
    let threads = rayon::current_num_threads();
    for r0 in (0..rows_total).step_by(rows) {
        let nr = rows.min(rows_total - r0);
        let n = nr * tw;
        let vp = SendPtr::new(v.as_mut_ptr());
        (0..cin).into_par_iter().for_each_init(
            || vec![0f32; 18 * tw + 2],
            |scratch, c| {
                for rr in 0..nr {
                    let (bi, i) = ((r0 + rr) / th, (r0 + rr) % th);
                    let plane = &x[(bi * cin + c) * hw..(bi * cin + c + 1) * hw];
                    let at = vp.get().wrapping_add(c * n + rr * tw);
                    // SAFETY: plane e of V is `c_in × n` (row stride n) at e · c_in · n inside
                    // the 16 · c_in · cap buffer (n ≤ cap); this writes row c, columns
                    // rr·tw..(rr + 1)·tw of every plane: disjoint across channels and rows.
                    #[allow(unsafe_code)]
                    unsafe {
                        input_row(plane, h, w, i, at, cin * n, scratch)
                    };
                }
            },
        );
        let mp = SendPtr::new(m.as_mut_ptr());
        let (vr, ur) = (&*v, u);
        let product = |e: usize, par: gemm::Parallelism| {
            // SAFETY: product e writes plane e of m (c_out × n, row stride n, inside the
            // 16 · c_out · cap buffer) and reads plane e of u (c_out × c_in) and of v
            // (c_in × n); the planes of m are disjoint across e.
            #[allow(unsafe_code)]
            unsafe {
                gemm::gemm(
                    cout,
                    n,
                    cin,
                    mp.get().add(e * cout * n),
                    1,
                    n as isize,
                    false,
                    ur.as_ptr().add(e * cout * cin),
                    1,
                    cin as isize,
                    vr.as_ptr().add(e * cin * n),
                    1,
                    n as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    par,
                );
            }
        };
        if threads > 1 && threads <= 16 {
            (0..16).into_par_iter().for_each(|e| product(e, gemm::Parallelism::None));
        } else {
            let par = if threads > 1 { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
            (0..16).for_each(|e| product(e, par));
        }
        let mr = &*m;
        (0..cout).into_par_iter().for_each_init(
            || vec![0f32; 8 * tw],
            |scratch, o| {
                let shift = e.bias.map_or(0.0, |bias| bias[o]);
                for rr in 0..nr {
                    let (bi, i) = ((r0 + rr) / th, (r0 + rr) % th);
                    let at = (bi * cout + o) * hw + 2 * i * w;
                    let add = e.add.map_or(0.0, |a| a[bi * cout + o]);
                    let res = residual.map(|r| &r[at..at + 2 * w]);
                    // SAFETY: rows 2i and 2i + 1 of output channel o of image bi: disjoint
                    // across (o, tile row), inside `out` (b · c_out · hw elements).
                    #[allow(unsafe_code)]
                    let dst = unsafe { std::slice::from_raw_parts_mut(out_ptr.get().add(at), 2 * w) };
                    output_row(&mr[o * n + rr * tw..], cout * n, w, dst, (shift, add), res, scale, scratch);
                }
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    /// Against candle's direct convolution (an independent implementation) on the same
    /// random kernel and input: plain, and with bias, addend and residual fused; chunks of
    /// one tile row, of a few rows straddling the two images, and the whole batch at once;
    /// a 2 × 2-tile image and non-square ones.
    #[test]
    fn winograd_equals_candles_convolution() {
        let dev = Device::Cpu;
        for (case, &(b, cin, cout, h, w)) in [(2, 5, 7, 6, 10), (1, 16, 8, 4, 4), (2, 8, 12, 16, 14)].iter().enumerate()
        {
            let x = Tensor::randn(0f32, 1., (b, cin, h, w), &dev).unwrap();
            let kernel = Tensor::randn(0f32, 1., (cout, cin, 3, 3), &dev).unwrap();
            let bias = Tensor::randn(0f32, 1., cout, &dev).unwrap();
            let add = Tensor::randn(0f32, 1., (b, cout), &dev).unwrap();
            let res = Tensor::randn(0f32, 1., (b, cout, h, w), &dev).unwrap();
            let conv = x.conv2d(&kernel, 1, 1, 1, 1).unwrap();
            let full = (conv.broadcast_add(&bias.reshape((1, cout, 1, 1)).unwrap()).unwrap()
                + add.reshape((b, cout, 1, 1)).unwrap().broadcast_as((b, cout, h, w)).unwrap())
            .unwrap();
            let fused = ((&res + &full).unwrap() / 2.0).unwrap();
            let taps = kernel.permute((2, 3, 0, 1)).unwrap().reshape((9, cout, cin)).unwrap();
            let v = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let (xs, taps, bias, add, res) = (v(&x), v(&taps), v(&bias), v(&add), v(&res));
            let per_row = 16 * (cin + cout) * (w / 2) * 4;
            for chunk in [1, 3 * per_row, usize::MAX / 2] {
                let plain = Epilogue { bias: None, add: None, scale: 1.0 };
                let got = conv3x3_chunked(&xs, &taps, (b, cin, h, w, cout), &plain, None, chunk);
                let want = v(&conv);
                let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(diff < 1e-4, "case {case} chunk {chunk}: max |diff| {diff}");
                let epi = Epilogue { bias: Some(&bias), add: Some(&add), scale: 2.0 };
                let got = conv3x3_chunked(&xs, &taps, (b, cin, h, w, cout), &epi, Some(&res), chunk);
                let want = v(&fused);
                let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(diff < 1e-4, "case {case} chunk {chunk} fused: max |diff| {diff}");
            }
        }
    }

    #[test]
    fn applies_only_to_even_sides_and_large_enough_images() {
        assert!(applies(1, 64, 64) && applies(2, 32, 32) && applies(1, 32, 64));
        assert!(
            !applies(1, 63, 64)
                && !applies(1, 64, 63)
                && !applies(1, 16, 16)
                && !applies(2, 16, 16)
                && !applies(2, 2, 1024)
        );
    }
}
