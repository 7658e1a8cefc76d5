//! zipp's convolution, group norm and ResNet blocks for the UNet and the VAE.
//!
//! On a GPU, or in f16, these are candle's operations. On the CPU in f32 they are zipp's own
//! kernels, because candle's CPU convolution materialises the whole im2col matrix (9 × the
//! input: 2.4 GB for one 256-channel 3×3 convolution at 512 px, then a matrix product) and
//! its group norm is eight separate passes over the activations:
//!
//! - **Convolution as shifted matrix products.** A stride-1 "same" k×k convolution is the
//!   sum over its k² taps of `W_tap [c_out × c_in] · X shifted by the tap`. With the input
//!   copied once into a zero-bordered buffer whose rows are `w + p` wide (`p = k / 2`; the p
//!   zero columns at a row's end also serve as the next row's left border), every shifted
//!   view of the image is a plain `c_in × (h · (w + p))` matrix at an offset into that buffer,
//!   so each tap is one GEMM (the `gemm` crate, AVX-512 where the CPU has it, dispatched at
//!   run time) accumulating into the output; the `p` extra columns per row are dropped when
//!   the bias (and, fused, a per-channel addend and a residual) is added. No im2col matrix;
//!   extra work `p / w` (1.6 % at 64 columns).
//! - **3×3 convolutions on images of 1,024 pixels or more** (even sides) take Winograd's
//!   F(2×2, 3×3) instead (`winograd.rs`): 16 matrix products with 2.25 × fewer
//!   multiply-adds, the transforms being additions.
//! - **Group norm in two passes** (statistics, then normalise-scale-shift), with the SiLU
//!   that always follows it in a ResNet block fused into the second.
//!
//! Other convolutions (strides other than 1, other paddings) and other dtypes/devices go to
//! candle. The numbers: BENCHMARKS.md, "Diffusion".

use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn as nn;
use rayon::prelude::*;

use crate::simd::{self, Simd};
use crate::winograd;

/// Multiply-adds below which a GEMM runs on one thread (the hand-off costs more).
const PARALLEL_MIN_FLOPS: usize = 1 << 19;

/// Rows up to which [`Linear`] splits its output by columns across threads.
const SMALL_M_ROWS: usize = 256;

/// Bytes of convolution output one thread accumulates at a time (half a core's L2 here).
const BLOCK_BYTES: usize = 1 << 20;

/// Runs `f` over the contiguous f32 slice of `t` without copying when possible.
pub(crate) fn with_slice<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    if t.is_contiguous() {
        let (storage, layout) = t.storage_and_layout();
        if let candle_core::Storage::Cpu(cpu) = &*storage {
            let all = cpu.as_slice::<f32>()?;
            let start = layout.start_offset();
            return f(&all[start..start + t.elem_count()]);
        }
    }
    f(&t.flatten_all()?.to_vec1::<f32>()?)
}

/// Whether zipp's CPU kernels take this tensor (f32 on the CPU); everything else runs on
/// candle's operators.
pub(crate) fn fast(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32
}

/// A 2-D convolution with diffusers' weight names (`weight` `[c_out, c_in, k, k]`, `bias`).
#[derive(Debug, Clone)]
pub struct Conv2d {
    /// `[c_out, c_in, k, k]`, or for the CPU path `[k², c_out, c_in]` (tap-major, so each tap
    /// is a contiguous row-major `c_out × c_in` matrix).
    weight: Tensor,
    taps: bool,
    bias: Option<Tensor>,
    cin: usize,
    cout: usize,
    k: usize,
    padding: usize,
    stride: usize,
}

/// A convolution read from `vs` (random-initialised like candle's when `vs` creates
/// variables).
pub fn conv2d(
    cin: usize,
    cout: usize,
    k: usize,
    padding: usize,
    stride: usize,
    bias: bool,
    vs: nn::VarBuilder,
) -> Result<Conv2d> {
    let weight = vs.get_with_hints((cout, cin, k, k), "weight", nn::init::DEFAULT_KAIMING_NORMAL)?;
    let bias = if bias {
        let bound = 1. / ((cin * k * k) as f64).sqrt();
        Some(vs.get_with_hints(cout, "bias", nn::Init::Uniform { lo: -bound, up: bound })?)
    } else {
        None
    };
    Conv2d::new(weight, bias, padding, stride)
}

impl Conv2d {
    /// A convolution from its weight `[c_out, c_in, k, k]` (square kernel) and bias `[c_out]`.
    pub fn new(weight: Tensor, bias: Option<Tensor>, padding: usize, stride: usize) -> Result<Conv2d> {
        let (cout, cin, k, kw) = weight.dims4()?;
        if k != kw || k == 0 || stride == 0 {
            candle_core::bail!("convolution kernel {k}×{kw} with stride {stride}: zipp needs a square kernel");
        }
        if let Some(b) = &bias {
            if b.dims() != [cout] {
                candle_core::bail!("convolution bias has shape {:?}, expected [{cout}]", b.dims());
            }
        }
        let taps = fast(&weight) && stride == 1 && k % 2 == 1 && padding == k / 2;
        let weight =
            if taps { weight.permute((2, 3, 0, 1))?.reshape((k * k, cout, cin))?.contiguous()? } else { weight };
        Ok(Conv2d { weight, taps, bias, cin, cout, k, padding, stride })
    }

    /// The kernel as candle lays it out, `[c_out, c_in, k, k]`.
    fn candle_weight(&self) -> Result<Tensor> {
        if self.taps {
            self.weight.reshape((self.k, self.k, self.cout, self.cin))?.permute((2, 3, 0, 1))
        } else {
            Ok(self.weight.clone())
        }
    }

    /// `(conv(xs) + bias + add[n, c]` broadcast over the image`)`, then `(residual + that) /
    /// scale` when a residual is given: a ResNet block's two convolutions with their
    /// element-wise work fused into the one output pass.
    pub fn forward_fused(
        &self,
        xs: &Tensor,
        add: Option<&Tensor>,
        residual: Option<&Tensor>,
        scale: f64,
    ) -> Result<Tensor> {
        self.run(xs, add, residual, scale, true)
    }

    /// The convolution in the shifted-GEMM form even where [`Conv2d::forward`] would take
    /// Winograd's (for comparisons: the two differ by float rounding).
    pub fn forward_shifted(&self, xs: &Tensor) -> Result<Tensor> {
        self.run(xs, None, None, 1.0, false)
    }

    fn run(
        &self,
        xs: &Tensor,
        add: Option<&Tensor>,
        residual: Option<&Tensor>,
        scale: f64,
        allow_winograd: bool,
    ) -> Result<Tensor> {
        let (b, c, h, w) = xs.dims4()?;
        if c != self.cin {
            candle_core::bail!("convolution expects {} input channels, got {c}", self.cin);
        }
        if self.taps && fast(xs) {
            if let Some(a) = add {
                if a.dims() != [b, self.cout] || !fast(a) {
                    candle_core::bail!("per-channel addend {:?}, expected [{b}, {}] f32", a.dims(), self.cout);
                }
            }
            if let Some(r) = residual {
                if r.dims() != [b, self.cout, h, w] || !fast(r) {
                    candle_core::bail!("residual {:?}, expected [{b}, {}, {h}, {w}] f32", r.dims(), self.cout);
                }
            }
            let out = with_slice(xs, |x| {
                with_slice(&self.weight, |taps| {
                    let bias = self.bias.as_ref().map(|t| t.to_vec1::<f32>()).transpose()?;
                    let add = add.map(|t| t.flatten_all()?.to_vec1::<f32>()).transpose()?;
                    let epilogue = Epilogue { bias: bias.as_deref(), add: add.as_deref(), scale };
                    if allow_winograd && self.k == 3 && winograd::applies(b, h, w) {
                        let dims = (b, c, h, w, self.cout);
                        return match residual {
                            Some(r) => with_slice(r, |r| Ok(winograd::conv3x3(x, taps, dims, &epilogue, Some(r)))),
                            None => Ok(winograd::conv3x3(x, taps, dims, &epilogue, None)),
                        };
                    }
                    let shape = Shape { b, cin: c, h, w, cout: self.cout, k: self.k };
                    let acc = conv_taps(x, taps, shape);
                    match residual {
                        Some(r) => with_slice(r, |r| Ok(finish(&acc, shape, &epilogue, Some(r)))),
                        None => Ok(finish(&acc, shape, &epilogue, None)),
                    }
                })
            })?;
            return Tensor::from_vec(out, (b, self.cout, h, w), xs.device());
        }
        let mut ys = candle_conv(self, xs)?;
        if let Some(a) = add {
            ys = ys.broadcast_add(&a.unsqueeze(D::Minus1)?.unsqueeze(D::Minus1)?)?;
        }
        match residual {
            Some(r) if scale == 1.0 => r + ys,
            Some(r) => (r + ys)? / scale,
            None => Ok(ys),
        }
    }
}

impl Module for Conv2d {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_fused(xs, None, None, 1.0)
    }
}

#[derive(Debug, Clone, Copy)]
struct Shape {
    b: usize,
    cin: usize,
    h: usize,
    w: usize,
    cout: usize,
    k: usize,
}

impl Shape {
    /// Zero columns per padded row (also the left border of the next row).
    fn p(&self) -> usize {
        self.k / 2
    }
    /// Width of a padded row, and of an accumulator row.
    fn wp(&self) -> usize {
        self.w + self.p()
    }
    /// Elements of one padded input channel (see [`conv_taps`]).
    fn plane(&self) -> usize {
        (self.h + 2 * self.p()) * self.wp() + 2 * self.p()
    }
    /// Accumulator columns per output channel.
    fn n(&self) -> usize {
        self.h * self.wp()
    }
}

/// Raw pointer that may cross into worker threads, each of which writes its own disjoint
/// part of the buffer.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(*mut f32);

impl SendPtr {
    pub(crate) fn new(p: *mut f32) -> SendPtr {
        SendPtr(p)
    }
    /// The pointer (a method, so closures capture the whole `Send + Sync` wrapper).
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}
// SAFETY: every user dereferences the pointer on disjoint parts of the buffer it points to,
// from threads joined before the owner of that buffer uses it again.
#[allow(unsafe_code)]
unsafe impl Send for SendPtr {}
// SAFETY: as above; shared references to the wrapper never write through it.
#[allow(unsafe_code)]
unsafe impl Sync for SendPtr {}

/// The convolution's sums `[b, c_out, h, w + p]` (the last p columns of each row are junk),
/// without bias. `x` is `[b, c_in, h, w]`, `taps` `[k², c_out, c_in]`, both contiguous.
///
/// The padded buffer of one image holds channel `c` at `c · plane`; pixel `(y, x)` (with
/// `-p ≤ y < h + p`, `-p ≤ x < w + p`) at `p + (y + p) · wp + x`, zero outside the image.
/// Output column `q = y · wp + x` of tap `(dy, dx)` reads `q + p + (dy + p) · wp + dx`.
fn conv_taps(x: &[f32], taps: &[f32], s: Shape) -> Vec<f32> {
    let (p, wp, plane, n, hw) = (s.p(), s.wp(), s.plane(), s.n(), s.h * s.w);
    let per_image = s.cout * n;
    let mut acc: Vec<f32> = Vec::with_capacity(s.b * per_image);
    let mut padded: Vec<f32> = if p == 0 { Vec::new() } else { vec![0f32; s.cin * plane] };
    let parallel = s.cout * n * s.cin >= PARALLEL_MIN_FLOPS && rayon::current_num_threads() > 1;
    let par = if parallel { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
    for bi in 0..s.b {
        let image = &x[bi * s.cin * hw..(bi + 1) * s.cin * hw];
        let src: &[f32] = if p == 0 {
            image
        } else {
            padded.par_chunks_mut(plane).zip(image.par_chunks(hw)).for_each(|(dst, src)| {
                for (y, row) in src.chunks(s.w).enumerate() {
                    let at = p + (y + p) * wp;
                    dst[at..at + s.w].copy_from_slice(row);
                }
            });
            &padded
        };
        let dst = SendPtr(acc.as_mut_ptr().wrapping_add(bi * per_image));
        let row_stride = if p == 0 { hw } else { plane };
        // Columns c0..c0 + nb of the image's output, all k² taps (see the SAFETY note).
        let columns = |c0: usize, nb: usize, par: gemm::Parallelism| {
            for t in 0..s.k * s.k {
                let (dy, dx) = (t / s.k, t % s.k);
                let offset = dy * wp + dx + c0;
                let lhs = &taps[t * s.cout * s.cin..(t + 1) * s.cout * s.cin];
                debug_assert!(offset + (s.cin - 1) * row_stride + nb <= src.len());
                // SAFETY: dst is the image's c_out × n block of `acc` (capacity b · c_out · n,
                // row stride n), of which this call writes columns c0..c0 + nb ≤ n only;
                // lhs is a contiguous c_out × c_in matrix; rhs row c (stride `plane`, or
                // `hw` unpadded) covers columns offset..offset + nb of the padded channel,
                // and dy · wp + dx + n ≤ plane by construction (for p = 0: offset c0, n =
                // hw). The first tap writes every element of the block (read_dst false);
                // later taps add to it.
                #[allow(unsafe_code)]
                unsafe {
                    gemm::gemm(
                        s.cout,
                        nb,
                        s.cin,
                        dst.get().add(c0),
                        1,
                        n as isize,
                        t > 0,
                        lhs.as_ptr(),
                        1,
                        s.cin as isize,
                        src.as_ptr().add(offset),
                        1,
                        row_stride as isize,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        par,
                    );
                }
            }
        };
        // Column blocks whose c_out × nb sums stay in a core's cache across the k² taps
        // (accumulating whole images instead streams the output through memory once per
        // tap, which dominates at 128 channels), as many per thread; small images run
        // whole, with the GEMM's own threads.
        let threads = rayon::current_num_threads();
        let target = (BLOCK_BYTES / 4 / s.cout).max(256);
        let blocks = threads * n.div_ceil(target * threads);
        if parallel && threads > 1 && blocks >= 2 * threads {
            let nb = n.div_ceil(blocks).next_multiple_of(16);
            (0..n.div_ceil(nb)).into_par_iter().for_each(|j| {
                let c0 = j * nb;
                columns(c0, nb.min(n - c0), gemm::Parallelism::None);
            });
        } else {
            columns(0, n, par);
        }
    }
    // SAFETY: the first tap of every image wrote all b · c_out · n elements.
    #[allow(unsafe_code)]
    unsafe {
        acc.set_len(s.b * per_image)
    };
    acc
}

pub(crate) struct Epilogue<'a> {
    pub(crate) bias: Option<&'a [f32]>,
    /// `[b, c_out]`.
    pub(crate) add: Option<&'a [f32]>,
    pub(crate) scale: f64,
}

/// `dst = (residual + dst) / scale` (no division when `scale` is 1), the epilogue's last
/// step in both convolution forms.
pub(crate) fn add_residual(dst: &mut [f32], residual: &[f32], scale: f32) {
    if scale == 1.0 {
        dst.iter_mut().zip(residual).for_each(|(o, &r)| *o += r);
    } else {
        dst.iter_mut().zip(residual).for_each(|(o, &r)| *o = (r + *o) / scale);
    }
}

/// `[b, c_out, h, w]` from the sums: junk columns dropped, bias and addend added, then
/// `(residual + y) / scale`.
fn finish(acc: &[f32], s: Shape, e: &Epilogue, residual: Option<&[f32]>) -> Vec<f32> {
    let (wp, n, hw) = (s.wp(), s.n(), s.h * s.w);
    let mut out = vec![0f32; s.b * s.cout * hw];
    let scale = e.scale as f32;
    out.par_chunks_mut(hw).enumerate().for_each(|(bc, dst)| {
        let c = bc % s.cout;
        let shift = e.bias.map_or(0.0, |b| b[c]);
        let add = e.add.map(|a| a[bc]);
        let src = &acc[bc * n..(bc + 1) * n];
        let res = residual.map(|r| &r[bc * hw..(bc + 1) * hw]);
        for y in 0..s.h {
            let row = &src[y * wp..y * wp + s.w];
            let out_row = &mut dst[y * s.w..(y + 1) * s.w];
            match add {
                // (conv + bias) + addend, in candle's order.
                Some(a) => out_row.iter_mut().zip(row).for_each(|(o, &v)| *o = (v + shift) + a),
                None => out_row.iter_mut().zip(row).for_each(|(o, &v)| *o = v + shift),
            }
            if let Some(r) = res {
                add_residual(out_row, &r[y * s.w..(y + 1) * s.w], scale);
            }
        }
    });
    out
}

/// Group normalisation over `[n, c, …]` with a per-channel scale and shift, as
/// `torch.nn.GroupNorm`; optionally followed by SiLU.
#[derive(Debug, Clone)]
pub struct GroupNorm {
    weight: Tensor,
    bias: Tensor,
    groups: usize,
    eps: f64,
    candle: nn::GroupNorm,
}

/// A group norm read from `vs` (`weight`, `bias`).
pub fn group_norm(groups: usize, channels: usize, eps: f64, vs: nn::VarBuilder) -> Result<GroupNorm> {
    if groups == 0 || !channels.is_multiple_of(groups) {
        candle_core::bail!("group norm: {groups} groups do not divide {channels} channels");
    }
    let weight = vs.get_with_hints(channels, "weight", nn::Init::Const(1.))?;
    let bias = vs.get_with_hints(channels, "bias", nn::Init::Const(0.))?;
    let candle = nn::GroupNorm::new(weight.clone(), bias.clone(), channels, groups, eps)?;
    Ok(GroupNorm { weight, bias, groups, eps, candle })
}

impl GroupNorm {
    /// `silu(group_norm(xs))`, the pre-activation of every ResNet convolution.
    pub fn forward_silu(&self, xs: &Tensor) -> Result<Tensor> {
        self.run(xs, true)
    }

    fn run(&self, xs: &Tensor, silu: bool) -> Result<Tensor> {
        if !fast(xs) || xs.rank() < 2 {
            let ys = self.candle.forward(xs)?;
            return if silu { nn::ops::silu(&ys) } else { Ok(ys) };
        }
        let dims = xs.dims();
        let (b, c) = (dims[0], dims[1]);
        if c % self.groups != 0 || self.weight.dims() != [c] {
            candle_core::bail!(
                "group norm over {c} channels in {} groups with {} weights",
                self.groups,
                self.weight.elem_count()
            );
        }
        let spatial = xs.elem_count() / (b * c).max(1);
        let per_group = c / self.groups * spatial;
        let gamma = self.weight.to_vec1::<f32>()?;
        let beta = self.bias.to_vec1::<f32>()?;
        let eps = self.eps;
        let level = Simd::current();
        let mut out = vec![0f32; xs.elem_count()];
        with_slice(xs, |x| {
            out.par_chunks_mut(per_group).zip(x.par_chunks(per_group)).enumerate().for_each(|(bg, (dst, src))| {
                let (mean, var) = moments(src);
                let rstd = 1.0 / (var + eps).sqrt();
                let first = (bg % self.groups) * (c / self.groups);
                for ((ci, d), s) in dst.chunks_mut(spatial).enumerate().zip(src.chunks(spatial)) {
                    let a = (gamma[first + ci] as f64 * rstd) as f32;
                    let shift = (beta[first + ci] as f64 - mean * gamma[first + ci] as f64 * rstd) as f32;
                    simd::scale_shift(level, d, s, a, shift, silu);
                }
            });
            Ok(())
        })?;
        Tensor::from_vec(out, dims, xs.device())
    }
}

impl Module for GroupNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.run(xs, false)
    }
}

/// Mean and (biased) variance of `v`, accumulated in f64 over 16 lanes.
fn moments(v: &[f32]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let lanes = |f: &dyn Fn(f32) -> f64| {
        let mut acc = [0f64; 16];
        let chunks = v.chunks_exact(16);
        let rest: f64 = chunks.remainder().iter().map(|&x| f(x)).sum();
        for ch in chunks {
            for (a, &x) in acc.iter_mut().zip(ch) {
                *a += f(x);
            }
        }
        acc.iter().sum::<f64>() + rest
    };
    let mean = lanes(&|x| x as f64) / n;
    let var = lanes(&|x| {
        let d = x as f64 - mean;
        d * d
    }) / n;
    (mean, var)
}

/// diffusers' `ResnetBlock2D` (the UNet's and the VAE's): `(shortcut(x) + conv2(silu(norm2(
/// conv1(silu(norm1(x))) + time_emb_proj(silu(temb))))) ) / output_scale_factor`.
#[derive(Debug, Clone)]
pub struct ResnetBlock {
    norm1: GroupNorm,
    conv1: Conv2d,
    norm2: GroupNorm,
    conv2: Conv2d,
    time_emb_proj: Option<nn::Linear>,
    shortcut: Option<Conv2d>,
    scale: f64,
}

/// How a [`ResnetBlock`] is shaped.
#[derive(Debug, Clone, Copy)]
pub struct ResnetConfig {
    pub cin: usize,
    pub cout: usize,
    /// Width of the time embedding (the UNet); `None` in the VAE.
    pub temb: Option<usize>,
    pub groups: usize,
    pub eps: f64,
    pub output_scale_factor: f64,
}

impl ResnetBlock {
    pub fn new(vs: nn::VarBuilder, c: ResnetConfig) -> Result<ResnetBlock> {
        Ok(ResnetBlock {
            norm1: group_norm(c.groups, c.cin, c.eps, vs.pp("norm1"))?,
            conv1: conv2d(c.cin, c.cout, 3, 1, 1, true, vs.pp("conv1"))?,
            norm2: group_norm(c.groups, c.cout, c.eps, vs.pp("norm2"))?,
            conv2: conv2d(c.cout, c.cout, 3, 1, 1, true, vs.pp("conv2"))?,
            time_emb_proj: c.temb.map(|t| nn::linear(t, c.cout, vs.pp("time_emb_proj"))).transpose()?,
            shortcut: (c.cin != c.cout)
                .then(|| conv2d(c.cin, c.cout, 1, 0, 1, true, vs.pp("conv_shortcut")))
                .transpose()?,
            scale: c.output_scale_factor,
        })
    }

    pub fn forward(&self, xs: &Tensor, temb: Option<&Tensor>) -> Result<Tensor> {
        let shortcut = match &self.shortcut {
            Some(conv) => conv.forward(xs)?,
            None => xs.clone(),
        };
        let add = match (temb, &self.time_emb_proj) {
            (Some(t), Some(proj)) => Some(proj.forward(&nn::ops::silu(t)?)?),
            _ => None,
        };
        let h = self.conv1.forward_fused(&self.norm1.forward_silu(xs)?, add.as_ref(), None, 1.0)?;
        self.conv2.forward_fused(&self.norm2.forward_silu(&h)?, None, Some(&shortcut), self.scale)
    }
}

/// A linear layer `y = x Wᵀ + b` with diffusers' weight names (`weight` `[out, in]`,
/// `bias`). On the CPU in f32 it is one GEMM over every row of the input (all images and
/// tokens) with the bias — and a residual, when given — written into the output first and
/// accumulated onto, so no separate pass adds them; the spatial transformer's projections
/// also read and write `[b, c, h, w]` feature maps in place of token matrices (the GEMM's
/// strides do the transposes). Elsewhere it is candle's `Linear`.
#[derive(Debug, Clone)]
pub struct Linear {
    inner: nn::Linear,
    cin: usize,
    cout: usize,
}

/// A linear layer read from `vs` (random-initialised like candle's when `vs` creates
/// variables).
pub fn linear(cin: usize, cout: usize, vs: nn::VarBuilder) -> Result<Linear> {
    Ok(Linear { inner: nn::linear(cin, cout, vs)?, cin, cout })
}

/// A linear layer without bias.
pub fn linear_no_bias(cin: usize, cout: usize, vs: nn::VarBuilder) -> Result<Linear> {
    Ok(Linear { inner: nn::linear_no_bias(cin, cout, vs)?, cin, cout })
}

/// How the GEMM of [`Linear`] reads its input and writes its output: strides of the row
/// (token) and column (feature) index, per image.
#[derive(Clone, Copy)]
struct Strides {
    /// Rows per image.
    rows: usize,
    /// Elements per image in the input and the output.
    x_image: usize,
    y_image: usize,
    /// (column stride, row stride) of the input and the output.
    x: (usize, usize),
    y: (usize, usize),
}

impl Linear {
    /// `x Wᵀ + b + residual` (`residual` shaped like the output).
    pub fn forward_residual(&self, xs: &Tensor, residual: &Tensor) -> Result<Tensor> {
        let dims = self.out_dims(xs)?;
        if residual.dims() != dims.as_slice() {
            candle_core::bail!("residual {:?}, expected {dims:?}", residual.dims());
        }
        if !self.takes(xs, Some(residual)) {
            return self.inner.forward(xs)? + residual;
        }
        let out = self.gemm(xs, 1, self.rows(xs), Some(residual))?;
        Tensor::from_vec(out, dims, xs.device())
    }

    /// The tokens `[b, h·w, out]` of a feature map `[b, in, h, w]` (`map` read transposed).
    pub fn forward_from_map(&self, map: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = map.dims4()?;
        if c != self.cin {
            candle_core::bail!("linear layer expects {} input features, got a {c}-channel map", self.cin);
        }
        let hw = h * w;
        if !self.takes(map, None) {
            return self.inner.forward(&map.permute((0, 2, 3, 1))?.reshape((b, hw, c))?);
        }
        let s = Strides { rows: hw, x_image: c * hw, y_image: hw * self.cout, x: (hw, 1), y: (1, self.cout) };
        let out = self.gemm(map, b, s, None)?;
        Tensor::from_vec(out, (b, hw, self.cout), map.device())
    }

    /// The feature map `[b, out, h, w]` of tokens `[b, h·w, in]` plus `residual`
    /// `[b, out, h, w]` (the output written transposed).
    pub fn forward_to_map(&self, xs: &Tensor, residual: &Tensor) -> Result<Tensor> {
        let (b, hw, c) = xs.dims3()?;
        let (rb, rc, h, w) = residual.dims4()?;
        if c != self.cin || (rb, rc, h * w) != (b, self.cout, hw) {
            candle_core::bail!(
                "tokens {:?} through a {}→{} linear layer onto a {:?} map do not fit",
                xs.dims(),
                self.cin,
                self.cout,
                residual.dims()
            );
        }
        if !self.takes(xs, Some(residual)) {
            let y = self.inner.forward(xs)?.reshape((b, h, w, self.cout))?.permute((0, 3, 1, 2))?;
            return y + residual;
        }
        let s = Strides { rows: hw, x_image: hw * c, y_image: self.cout * hw, x: (1, c), y: (hw, 1) };
        let out = self.gemm(xs, b, s, Some(residual))?;
        Tensor::from_vec(out, (b, self.cout, h, w), xs.device())
    }

    /// The layout of rows of features in and out: every row of `xs` (all images and tokens)
    /// as one matrix.
    fn rows(&self, xs: &Tensor) -> Strides {
        let m = xs.elem_count() / self.cin;
        Strides { rows: m, x_image: m * self.cin, y_image: m * self.cout, x: (1, self.cin), y: (1, self.cout) }
    }

    fn out_dims(&self, xs: &Tensor) -> Result<Vec<usize>> {
        let mut dims = xs.dims().to_vec();
        match dims.last_mut() {
            Some(last) if *last == self.cin => *last = self.cout,
            _ => candle_core::bail!("linear layer expects {} input features, got {:?}", self.cin, xs.dims()),
        }
        Ok(dims)
    }

    /// Whether the CPU kernel takes these operands.
    fn takes(&self, xs: &Tensor, residual: Option<&Tensor>) -> bool {
        fast(xs) && fast(self.inner.weight()) && residual.is_none_or(fast)
    }

    /// The `b` images' products in the layout `s` describes, plus the bias, plus `residual`
    /// (laid out like the output) when given.
    fn gemm(&self, xs: &Tensor, b: usize, s: Strides, residual: Option<&Tensor>) -> Result<Vec<f32>> {
        let (m, n, k) = (s.rows, self.cout, self.cin);
        let total = b * s.y_image;
        let bias = self.inner.bias().map(|t| t.to_vec1::<f32>()).transpose()?;
        // Adds the bias to `y` (which may also receive `r`, the residual) without an index
        // division per element: token layouts repeat the bias vector per row of n, feature
        // maps hold one feature per plane of m.
        let add_bias = |y: &mut [f32], r: Option<&[f32]>, bias: &[f32]| {
            let chunk = if s.y.0 == 1 { n } else { m };
            y.par_chunks_mut(chunk).enumerate().for_each(|(i, row)| {
                let src = r.map(|r| &r[i * chunk..(i + 1) * chunk]);
                if s.y.0 == 1 {
                    match src {
                        Some(src) => row.iter_mut().zip(src).zip(bias).for_each(|((y, r), b)| *y = r + b),
                        None => row.iter_mut().zip(bias).for_each(|(y, b)| *y += b),
                    }
                } else {
                    let b = bias[i % n];
                    match src {
                        Some(src) => row.iter_mut().zip(src).for_each(|(y, r)| *y = r + b),
                        None => row.iter_mut().for_each(|y| *y += b),
                    }
                }
            });
        };
        let mut out = match residual {
            Some(r) => with_slice(r, |r| {
                Ok(match &bias {
                    Some(bias) => {
                        let mut out = vec![0f32; total];
                        add_bias(&mut out, Some(r), bias);
                        out
                    }
                    None => r.to_vec(),
                })
            })?,
            None => Vec::with_capacity(total),
        };
        let read_dst = residual.is_some();
        let threads = rayon::current_num_threads();
        let parallel = m * n * k >= PARALLEL_MIN_FLOPS && threads > 1;
        let par = if parallel { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
        with_slice(xs, |x| {
            with_slice(self.inner.weight(), |w| {
                // Few rows (a text encoder's 77 tokens): gemm's own threads split the rows and
                // each packs the whole weight; one column block of the output per thread,
                // each packing only its part of the weight, is 25–35 % faster at 77 × 1024 →
                // 1024 (diffusion_speed --part linear).
                let column_blocks = parallel && m <= SMALL_M_ROWS;
                let nb = n.div_ceil(threads).next_multiple_of(16);
                let dst = SendPtr(out.as_mut_ptr());
                for bi in 0..b {
                    // Output columns c0..c0 + len of image bi.
                    let columns = |c0: usize, len: usize, par: gemm::Parallelism| {
                        // SAFETY: out has capacity b · y_image and, when read_dst, every
                        // element initialised; image bi's m × n output lies in its own
                        // y_image elements at the strides `s.y` (one of them 1, the other the
                        // row length n or the plane m), of which this call writes columns
                        // c0..c0 + len ≤ n only; the input's m × k block lies in its x_image
                        // elements at `s.x` (rows of k, or planes of m); rhs(k, j) = W[c0 + j,
                        // k] reads rows c0.. of the contiguous n × k weight. The column blocks
                        // of all calls cover every element of each image's block.
                        #[allow(unsafe_code)]
                        unsafe {
                            gemm::gemm(
                                m,
                                len,
                                k,
                                dst.get().add(bi * s.y_image + c0 * s.y.0),
                                s.y.0 as isize,
                                s.y.1 as isize,
                                read_dst,
                                x.as_ptr().add(bi * s.x_image),
                                s.x.0 as isize,
                                s.x.1 as isize,
                                w.as_ptr().add(c0 * k),
                                k as isize,
                                1,
                                1.0,
                                1.0,
                                false,
                                false,
                                false,
                                par,
                            );
                        }
                    };
                    if column_blocks {
                        (0..n.div_ceil(nb)).into_par_iter().for_each(|j| {
                            let c0 = j * nb;
                            columns(c0, nb.min(n - c0), gemm::Parallelism::None)
                        });
                    } else {
                        columns(0, n, par);
                    }
                }
                Ok(())
            })
        })?;
        // SAFETY: see above: every element is written or was initialised.
        #[allow(unsafe_code)]
        unsafe {
            out.set_len(total)
        };
        if let (None, Some(bias)) = (residual, &bias) {
            add_bias(&mut out, None, bias);
        }
        Ok(out)
    }
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let dims = self.out_dims(xs)?;
        if !self.takes(xs, None) {
            return self.inner.forward(xs);
        }
        let out = self.gemm(xs, 1, self.rows(xs), None)?;
        Tensor::from_vec(out, dims, xs.device())
    }
}

/// One convolution by candle's own operator on the same weights, bias added: the path for
/// GPUs, f16 and strided convolutions, and the reference of the tests and benches.
pub fn candle_conv(conv: &Conv2d, xs: &Tensor) -> Result<Tensor> {
    let ys = xs.conv2d(&conv.candle_weight()?, conv.padding, conv.stride, 1, 1)?;
    match &conv.bias {
        Some(b) => ys.broadcast_add(&b.reshape((1, conv.cout, 1, 1))?),
        None => Ok(ys),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    fn vars(dev: &Device) -> (nn::VarMap, nn::VarBuilder<'static>) {
        let map = nn::VarMap::new();
        let vb = nn::VarBuilder::from_varmap(&map, DType::F32, dev);
        (map, vb)
    }

    /// The reference: candle's own convolution and element-wise ops on the same weights.
    fn reference(conv: &Conv2d, x: &Tensor, add: Option<&Tensor>, res: Option<&Tensor>, scale: f64) -> Tensor {
        let mut y = candle_conv(conv, x).unwrap();
        if let Some(a) = add {
            y = y.broadcast_add(&a.unsqueeze(2).unwrap().unsqueeze(3).unwrap()).unwrap();
        }
        match res {
            Some(r) => ((r + y).unwrap() / scale).unwrap(),
            None => y,
        }
    }

    #[test]
    fn shifted_gemm_convolution_equals_candles() {
        let dev = Device::Cpu;
        let (_map, vb) = vars(&dev);
        // (c_in, c_out, k, batch, h, w): 3×3 and 1×1, odd and non-square images, a single
        // row and column, a size large enough for the column-block path (odd, so not
        // Winograd's), and two that take Winograd's form (even sides, ≥ 1,024 pixels).
        for (i, &(cin, cout, k, b, h, w)) in [
            (3, 5, 3, 1, 7, 9),
            (4, 6, 3, 2, 1, 1),
            (8, 8, 3, 2, 5, 1),
            (6, 4, 1, 2, 3, 5),
            (16, 32, 3, 1, 63, 70),
            (16, 24, 3, 2, 24, 22),
            (8, 8, 3, 1, 64, 70),
        ]
        .iter()
        .enumerate()
        {
            assert_eq!(k == 3 && crate::winograd::applies(b, h, w), i >= 5, "case {i}");
            let conv = conv2d(cin, cout, k, k / 2, 1, true, vb.pp(i)).unwrap();
            assert!(conv.taps, "the CPU path takes a stride-1 same convolution");
            let x = Tensor::randn(0f32, 1., (b, cin, h, w), &dev).unwrap();
            let add = Tensor::randn(0f32, 1., (b, cout), &dev).unwrap();
            let res = Tensor::randn(0f32, 1., (b, cout, h, w), &dev).unwrap();
            let got = conv.forward(&x).unwrap();
            assert_eq!(got.dims(), [b, cout, h, w]);
            assert!(max_diff(&got, &reference(&conv, &x, None, None, 1.0)) < 1e-4, "case {i}");
            assert!(max_diff(&conv.forward_shifted(&x).unwrap(), &got) < 1e-4, "case {i} shifted");
            let got = conv.forward_fused(&x, Some(&add), Some(&res), 2.0).unwrap();
            assert!(max_diff(&got, &reference(&conv, &x, Some(&add), Some(&res), 2.0)) < 1e-4, "case {i} fused");
            // A non-contiguous input (a transposed view) gives the same result.
            let xt = x.transpose(2, 3).unwrap().contiguous().unwrap().transpose(2, 3).unwrap();
            assert!(h == 1 || w == 1 || !xt.is_contiguous());
            assert_eq!(max_diff(&conv.forward(&xt).unwrap(), &conv.forward(&x).unwrap()), 0.0);
        }
        // Strided and unpadded convolutions are candle's, through the same type.
        let down = conv2d(4, 4, 3, 0, 2, true, vb.pp("down")).unwrap();
        assert!(!down.taps);
        let x = Tensor::randn(0f32, 1., (1, 4, 9, 9), &dev).unwrap();
        assert_eq!(down.forward(&x).unwrap().dims(), [1, 4, 4, 4]);
        // Wrong channel counts and addend shapes are errors, not panics.
        let conv = conv2d(3, 5, 3, 1, 1, true, vb.pp("e")).unwrap();
        assert!(conv.forward(&Tensor::zeros((1, 4, 5, 5), DType::F32, &dev).unwrap()).is_err());
        let x = Tensor::zeros((2, 3, 5, 5), DType::F32, &dev).unwrap();
        assert!(conv.forward_fused(&x, Some(&Tensor::zeros((2, 4), DType::F32, &dev).unwrap()), None, 1.0).is_err());
        assert!(conv
            .forward_fused(&x, None, Some(&Tensor::zeros((2, 5, 5, 4), DType::F32, &dev).unwrap()), 1.0)
            .is_err());
    }

    /// zipp's linear layer against candle's on the same weights: plain, with a residual, and
    /// from / to feature maps, with and without bias, batch 1 and 2, in f32 (zipp's GEMM) and
    /// f16 (candle's path).
    #[test]
    fn linear_layers_equal_candles() {
        let dev = Device::Cpu;
        let (_map, vb) = vars(&dev);
        for (i, &(cin, cout, b, h, w, bias)) in
            // The last two are large enough for several threads, with few rows: the output
            // split in column blocks (a ragged last one), in every layout.
            [
                (8, 8, 1, 5, 7, true),
                (16, 16, 2, 9, 9, false),
                (12, 20, 2, 16, 17, true),
                (64, 100, 1, 8, 16, true),
                (96, 72, 2, 8, 8, false),
            ]
            .iter()
            .enumerate()
        {
            let vs = vb.pp(format!("lin{i}"));
            let ours =
                if bias { linear(cin, cout, vs.clone()) } else { linear_no_bias(cin, cout, vs.clone()) }.unwrap();
            let theirs = if bias { nn::linear(cin, cout, vs) } else { nn::linear_no_bias(cin, cout, vs) }.unwrap();
            for dt in [DType::F32, DType::F16] {
                let tol = if dt == DType::F32 { 1e-5 } else { 2e-2 };
                let (ours, theirs) = if dt == DType::F32 {
                    (ours.clone(), theirs.clone())
                } else {
                    let w = theirs.weight().to_dtype(dt).unwrap();
                    let b = theirs.bias().map(|b| b.to_dtype(dt).unwrap());
                    let l = nn::Linear::new(w, b);
                    (Linear { inner: l.clone(), cin, cout }, l)
                };
                let cast = |t: Tensor| t.to_dtype(dt).unwrap();
                let x = cast(Tensor::randn(0f32, 1., (b, h * w, cin), &dev).unwrap());
                let res = cast(Tensor::randn(0f32, 1., (b, h * w, cout), &dev).unwrap());
                let want = theirs.forward(&x).unwrap();
                let d = |a: &Tensor, b: &Tensor| max_diff(&cast_f32(a), &cast_f32(b));
                assert!(d(&ours.forward(&x).unwrap(), &want) < tol, "case {i} {dt:?}");
                let got = ours.forward_residual(&x, &res).unwrap();
                assert!(d(&got, &(&want + &res).unwrap()) < tol, "case {i} {dt:?} residual");
                // Feature maps: in from [b, cin, h, w], out onto [b, cout, h, w].
                let map = cast(Tensor::randn(0f32, 1., (b, cin, h, w), &dev).unwrap());
                let tokens = map.permute((0, 2, 3, 1)).unwrap().reshape((b, h * w, cin)).unwrap();
                let got = ours.forward_from_map(&map).unwrap();
                assert!(d(&got, &theirs.forward(&tokens).unwrap()) < tol, "case {i} {dt:?} from map");
                let rmap = cast(Tensor::randn(0f32, 1., (b, cout, h, w), &dev).unwrap());
                let want = theirs.forward(&x).unwrap().reshape((b, h, w, cout)).unwrap().permute((0, 3, 1, 2)).unwrap();
                let got = ours.forward_to_map(&x, &rmap).unwrap();
                assert!(d(&got, &(want + &rmap).unwrap()) < tol, "case {i} {dt:?} to map");
            }
        }
        // Shapes that do not fit are errors.
        let l = linear(4, 6, vb.pp("bad")).unwrap();
        let z = |s: &[usize]| Tensor::zeros(s, DType::F32, &dev).unwrap();
        assert!(l.forward(&z(&[2, 3, 5])).is_err());
        assert!(l.forward_residual(&z(&[2, 3, 4]), &z(&[2, 3, 4])).is_err());
        assert!(l.forward_from_map(&z(&[1, 5, 2, 2])).is_err());
        assert!(l.forward_to_map(&z(&[1, 4, 4]), &z(&[1, 6, 3, 2])).is_err());
    }

    fn cast_f32(t: &Tensor) -> Tensor {
        t.to_dtype(DType::F32).unwrap()
    }

    #[test]
    fn f16_and_other_dtypes_take_candles_path() {
        let dev = Device::Cpu;
        let (_map, vb) = vars(&dev);
        let conv = conv2d(3, 4, 3, 1, 1, true, vb.pp("c")).unwrap();
        let w16 = conv.candle_weight().unwrap().to_dtype(DType::F16).unwrap();
        let conv16 = Conv2d::new(w16, conv.bias.as_ref().map(|b| b.to_dtype(DType::F16).unwrap()), 1, 1).unwrap();
        assert!(!conv16.taps);
        let x = Tensor::randn(0f32, 1., (1, 3, 6, 6), &dev).unwrap();
        let want = conv.forward(&x).unwrap();
        let got = conv16.forward(&x.to_dtype(DType::F16).unwrap()).unwrap().to_dtype(DType::F32).unwrap();
        assert!(max_diff(&got, &want) < 2e-2);
    }

    #[test]
    fn group_norm_equals_candles() {
        let dev = Device::Cpu;
        let (map, vb) = vars(&dev);
        let gn = group_norm(4, 12, 1e-5, vb.pp("gn")).unwrap();
        // Non-trivial scale and shift.
        for (name, var) in map.data().lock().unwrap().iter() {
            let t = Tensor::randn(0f32, 1., var.shape(), &dev).unwrap();
            var.set(&t).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let candle = nn::GroupNorm::new(gn.weight.clone(), gn.bias.clone(), 12, 4, 1e-5).unwrap();
        for shape in [(2usize, 12usize, 5usize, 7usize), (1, 12, 1, 1)] {
            // An offset mean and a large spread, where a one-pass variance would lose digits.
            let x = (Tensor::randn(0f32, 3., shape, &dev).unwrap() + 100.0).unwrap();
            let want = candle.forward(&x).unwrap();
            assert!(max_diff(&gn.forward(&x).unwrap(), &want) < 1e-4);
            let want_silu = nn::ops::silu(&want).unwrap();
            assert!(max_diff(&gn.forward_silu(&x).unwrap(), &want_silu) < 1e-4);
        }
        assert!(group_norm(5, 12, 1e-5, vb.pp("bad")).is_err());
    }

    #[test]
    fn resnet_block_equals_the_formula_with_candles_ops() {
        let dev = Device::Cpu;
        let (_map, vb) = vars(&dev);
        let cfg = ResnetConfig { cin: 8, cout: 12, temb: Some(16), groups: 4, eps: 1e-5, output_scale_factor: 2.0 };
        let block = ResnetBlock::new(vb.pp("r"), cfg).unwrap();
        let x = Tensor::randn(0f32, 1., (2, 8, 6, 5), &dev).unwrap();
        let temb = Tensor::randn(0f32, 1., (2, 16), &dev).unwrap();
        let got = block.forward(&x, Some(&temb)).unwrap();
        // The same block written with candle's operators only.
        let gn = |g: &GroupNorm, x: &Tensor| nn::ops::silu(&g.candle.forward(x).unwrap()).unwrap();
        let proj = block.time_emb_proj.as_ref().unwrap().forward(&nn::ops::silu(&temb).unwrap()).unwrap();
        let h = candle_conv(&block.conv1, &gn(&block.norm1, &x)).unwrap();
        let h = h.broadcast_add(&proj.unsqueeze(2).unwrap().unsqueeze(3).unwrap()).unwrap();
        let h = candle_conv(&block.conv2, &gn(&block.norm2, &h)).unwrap();
        let short = candle_conv(block.shortcut.as_ref().unwrap(), &x).unwrap();
        let want = ((short + h).unwrap() / 2.0).unwrap();
        assert!(max_diff(&got, &want) < 1e-4);
    }
}
