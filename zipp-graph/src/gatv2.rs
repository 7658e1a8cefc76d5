//! The GATv2 layer (SPEC §6; Brody, Alon & Yahav 2022) over a bipartite adjacency, with a
//! fused CPU kernel for the attention and aggregation and its backward pass.
//!
//! For target `i` and source `j` of an edge `j → i`, per head `h`:
//!
//! ```text
//! x_l = W_l x_src + b_l      x_r = W_r x_dst + b_r
//! e_ij = aₕ · LeakyReLU₀.₂(x_r[i] + x_l[j])
//! α_ij = softmax over i's in-edges of e_ij     (the per-target max is subtracted first)
//! h_i  = Σ_j α_ij x_l[j]                       (heads concatenated, or averaged) + bias
//! ```
//!
//! No self-loops are added (the graph is bipartite: a user is never its own neighbour). A
//! target without in-edges gets the bias alone.
//!
//! [`Gatv2Attention`] is a candle [`CustomOp3`] on `(x_l, x_r, params)` that fuses the
//! whole layer after its two GEMMs: the biases `b_l`, `b_r`, the attention, the
//! aggregation, the head concatenation or mean, the output bias and (optionally) the ELU
//! that follows layer 1. One pass per target for the forward; the backward is three
//! passes (per target: the activation's and heads' gradient; per target: the softmax's
//! gradient, `∂x_r`, `∂a`; per source: `∂x_l`), each parallel over rows with no atomics,
//! storing only two numbers per edge and head, with every sum over targets taken per
//! fixed block in a fixed order (bit-identical results whatever the thread count). Nothing
//! of size edges × channels is ever materialised — the composed version
//! ([`attention_composed`], candle ops only, any device) needs three such tensors, and is
//! kept as the independent check of the fused kernel and for non-CPU devices — and no
//! intermediate of the layer enters candle's graph: in candle's backward pass each graph
//! node of `n` values costs a fresh `n`-value gradient buffer, which at a 1M-user graph's
//! batch sizes (hundreds of MB per node) took about a quarter of a batch's time before
//! the layer was fused (perf, `graph-scale`).

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp3, DType, Device, Layout, Shape, Tensor, D};
use rayon::prelude::*;
use zipp_core::error::{Error, Result};

/// LeakyReLU slope of the attention (GATv2's default).
pub const NEGATIVE_SLOPE: f32 = 0.2;

/// Edges grouped by target: target `i`'s in-edges are slots `ptr[i]..ptr[i + 1]`, slot `k`
/// coming from source `src[k]`; the same slots grouped by source for the backward pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjacency {
    n_src: usize,
    n_dst: usize,
    ptr: Vec<usize>,
    src: Vec<u32>,
    dst: Vec<u32>,
    /// Slots grouped by source: source `j`'s are `by_src[src_ptr[j]..src_ptr[j + 1]]`.
    src_ptr: Vec<usize>,
    by_src: Vec<u32>,
}

impl Adjacency {
    /// From target-major CSR: `ptr` (`n_dst + 1` offsets) and the source of each slot.
    pub fn from_csr(n_src: usize, n_dst: usize, ptr: Vec<usize>, src: Vec<u32>) -> Result<Adjacency> {
        if ptr.len() != n_dst + 1 || ptr[0] != 0 || ptr[n_dst] != src.len() || ptr.windows(2).any(|w| w[0] > w[1]) {
            return Err(Error::InvalidInput(format!(
                "adjacency: {} offsets do not describe {n_dst} targets and {} edges",
                ptr.len(),
                src.len()
            )));
        }
        if src.len() > u32::MAX as usize {
            return Err(Error::InvalidInput("adjacency: more than 2^32 - 1 edges".into()));
        }
        if let Some(&j) = src.iter().find(|&&j| j as usize >= n_src) {
            return Err(Error::InvalidInput(format!("adjacency: source {j} out of range ({n_src} sources)")));
        }
        let mut dst = vec![0u32; src.len()];
        for i in 0..n_dst {
            dst[ptr[i]..ptr[i + 1]].fill(i as u32);
        }
        let mut src_ptr = vec![0usize; n_src + 1];
        for &j in &src {
            src_ptr[j as usize + 1] += 1;
        }
        for j in 0..n_src {
            src_ptr[j + 1] += src_ptr[j];
        }
        let mut next = src_ptr.clone();
        let mut by_src = vec![0u32; src.len()];
        for (k, &j) in src.iter().enumerate() {
            by_src[next[j as usize]] = k as u32;
            next[j as usize] += 1;
        }
        Ok(Adjacency { n_src, n_dst, ptr, src, dst, src_ptr, by_src })
    }

    /// From `(source, target)` pairs in any order (slots keep the input order per target).
    pub fn from_edges(n_src: usize, n_dst: usize, edges: &[(u32, u32)]) -> Result<Adjacency> {
        if let Some(&(_, i)) = edges.iter().find(|e| e.1 as usize >= n_dst) {
            return Err(Error::InvalidInput(format!("adjacency: target {i} out of range ({n_dst} targets)")));
        }
        let mut ptr = vec![0usize; n_dst + 1];
        for &(_, i) in edges {
            ptr[i as usize + 1] += 1;
        }
        for i in 0..n_dst {
            ptr[i + 1] += ptr[i];
        }
        let mut next = ptr.clone();
        let mut src = vec![0u32; edges.len()];
        for &(j, i) in edges {
            src[next[i as usize]] = j;
            next[i as usize] += 1;
        }
        Adjacency::from_csr(n_src, n_dst, ptr, src)
    }

    /// The slot of each input edge of [`Adjacency::from_edges`] (same order), so values per
    /// slot (attention) can be read back per input edge.
    pub fn slots_of_edges(n_dst: usize, edges: &[(u32, u32)]) -> Vec<usize> {
        let mut ptr = vec![0usize; n_dst + 1];
        for &(_, i) in edges {
            ptr[i as usize + 1] += 1;
        }
        for i in 0..n_dst {
            ptr[i + 1] += ptr[i];
        }
        edges
            .iter()
            .map(|&(_, i)| {
                let k = ptr[i as usize];
                ptr[i as usize] += 1;
                k
            })
            .collect()
    }

    /// Number of sources.
    pub fn n_src(&self) -> usize {
        self.n_src
    }
    /// Number of targets.
    pub fn n_dst(&self) -> usize {
        self.n_dst
    }
    /// Number of edges (slots).
    pub fn n_edges(&self) -> usize {
        self.src.len()
    }
    /// Target-major offsets.
    pub fn ptr(&self) -> &[usize] {
        &self.ptr
    }
    /// Source of each slot.
    pub fn src(&self) -> &[u32] {
        &self.src
    }
    /// Target of each slot.
    pub fn dst(&self) -> &[u32] {
        &self.dst
    }
}

/// The fused layer: attention, aggregation, biases, head combination and (optionally) ELU.
/// `(x_l [n_src, H·C], x_r [n ≥ n_dst, H·C], params) → [n_dst, H·C or C]`, where `x_l`,
/// `x_r` are the linear maps **without** their biases and `params` is `[a (H·C) | b_l (H·C)
/// | b_r (H·C) | bias (H·C or C)]` ([`Gatv2Attention::params`]). Targets are the first
/// `n_dst` rows of `x_r` (a sampled block's targets are a prefix of a larger node set:
/// no slice of it enters candle's graph). f32, CPU; see the module docs.
///
/// The biases never touch a row of `x_l` or `x_r`: the logit sees `x_r[i] + b_r + x_l[j] +
/// b_l`, so `b_r + b_l` is added once per target, and the aggregation is
/// `Σ α (x_l[j] + b_l) = Σ α x_l[j] + b_l` (the α of a target sum to 1). Fusing them (and
/// the head mean and the ELU) keeps every intermediate of the layer out of candle's graph:
/// each would cost its size again in the backward pass's gradient store.
#[derive(Debug, Clone)]
pub struct Gatv2Attention {
    adj: Arc<Adjacency>,
    heads: usize,
    channels: usize,
    concat: bool,
    elu: bool,
}

impl Gatv2Attention {
    /// The op for this adjacency and head layout: heads concatenated or averaged, then ELU
    /// or not.
    pub fn new(adj: Arc<Adjacency>, heads: usize, channels: usize, concat: bool, elu: bool) -> Gatv2Attention {
        Gatv2Attention { adj, heads, channels, concat, elu }
    }

    /// The op's parameter vector from the layer's `a [H, C]`, `b_l`, `b_r` and `bias`
    /// (differentiable: the gradient flows back to each).
    pub fn params(att: &Tensor, b_l: &Tensor, b_r: &Tensor, bias: &Tensor) -> Result<Tensor> {
        Ok(Tensor::cat(&[&att.flatten_all()?, b_l, b_r, bias], 0)?)
    }

    fn out_dim(&self) -> usize {
        if self.concat {
            self.heads * self.channels
        } else {
            self.channels
        }
    }

    /// Applies the op (with its backward pass) to CPU f32 tensors.
    pub fn forward(&self, xl: &Tensor, xr: &Tensor, params: &Tensor) -> Result<Tensor> {
        self.check(xl, xr, params)?;
        if !(xl.device().is_cpu() && xl.dtype() == DType::F32) {
            return Err(Error::InvalidInput("gatv2: the fused op runs on CPU f32 tensors".into()));
        }
        Ok(xl.contiguous()?.apply_op3(&xr.contiguous()?, &params.contiguous()?, self.clone())?)
    }

    fn check(&self, xl: &Tensor, xr: &Tensor, params: &Tensor) -> Result<()> {
        let hc = self.heads * self.channels;
        let ok = xl.dims() == [self.adj.n_src, hc]
            && xr.dims().len() == 2
            && xr.dims()[0] >= self.adj.n_dst
            && xr.dims()[1] == hc
            && params.dims() == [3 * hc + self.out_dim()];
        if !ok {
            return Err(Error::InvalidInput(format!(
                "gatv2: shapes x_l {:?}, x_r {:?}, params {:?} do not fit {} sources, {} targets, {} heads × {} channels",
                xl.dims(),
                xr.dims(),
                params.dims(),
                self.adj.n_src,
                self.adj.n_dst,
                self.heads,
                self.channels
            )));
        }
        Ok(())
    }
}

/// The attention coefficients `α [n_edges, H]` (slot order) from `x_l`, `x_r` with their
/// biases and `a [H, C]` (flattened).
fn coefficients(adj: &Adjacency, heads: usize, channels: usize, xl: &[f32], xr: &[f32], att: &[f32]) -> Vec<f32> {
    let (h, c) = (heads, channels);
    let mut alpha = vec![0f32; adj.n_edges() * h];
    let mut rows: Vec<&mut [f32]> = split_by(&mut alpha, &adj.ptr, h);
    rows.par_iter_mut().enumerate().for_each(|(i, out)| {
        let r = adj.ptr[i]..adj.ptr[i + 1];
        let mut e = vec![0f32; r.len()];
        for hh in 0..h {
            softmax_row(xl, &xr[i * h * c..(i + 1) * h * c], att, &adj.src[r.clone()], hh, c, h, &mut e);
            for (k, &v) in e.iter().enumerate() {
                out[k * h + hh] = v;
            }
        }
    });
    alpha
}

/// The f32 values of a CPU tensor, borrowed from its storage when it is contiguous f32
/// (the backward passes read inputs of hundreds of MB: a copy would cost as much as the
/// pass), copied otherwise.
pub(crate) enum F32Values<'a> {
    Borrowed(candle_core::StorageRef<'a>, std::ops::Range<usize>),
    Owned(Vec<f32>),
}

impl<'a> F32Values<'a> {
    pub(crate) fn of(t: &'a Tensor) -> candle_core::Result<F32Values<'a>> {
        let (storage, layout) = t.storage_and_layout();
        if let (candle_core::Storage::Cpu(CpuStorage::F32(_)), Some((a, b))) = (&*storage, layout.contiguous_offsets())
        {
            return Ok(F32Values::Borrowed(storage, a..b));
        }
        drop(storage);
        Ok(F32Values::Owned(t.contiguous()?.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?))
    }

    pub(crate) fn as_slice(&self) -> &[f32] {
        match self {
            F32Values::Borrowed(storage, range) => match &**storage {
                candle_core::Storage::Cpu(CpuStorage::F32(v)) => &v[range.clone()],
                // `of` only borrows contiguous f32 CPU storage.
                _ => &[],
            },
            F32Values::Owned(v) => v,
        }
    }
}

/// Splits `data` (per slot, `per` values each) into one mutable row per target.
fn split_by<'a>(data: &'a mut [f32], ptr: &[usize], per: usize) -> Vec<&'a mut [f32]> {
    let mut rows = Vec::with_capacity(ptr.len().saturating_sub(1));
    let mut rest = data;
    for w in ptr.windows(2) {
        let (row, tail) = rest.split_at_mut((w[1] - w[0]) * per);
        rows.push(row);
        rest = tail;
    }
    rows
}

#[inline]
fn leaky(x: f32) -> f32 {
    if x > 0.0 {
        x
    } else {
        NEGATIVE_SLOPE * x
    }
}

/// Lanes of the independent partial sums below: f32 sums are not reassociated by the
/// compiler, so a single accumulator would run one add at a time; eight let it use SIMD.
const LANES: usize = 8;

/// `Σ_t a[t] · LeakyReLU(r[t] + l[t])`.
#[inline]
fn attention_logit(a: &[f32], r: &[f32], l: &[f32]) -> f32 {
    let n = a.len() / LANES * LANES;
    let mut acc = [0f32; LANES];
    for ((a8, r8), l8) in a[..n].chunks_exact(LANES).zip(r[..n].chunks_exact(LANES)).zip(l[..n].chunks_exact(LANES)) {
        for k in 0..LANES {
            acc[k] += a8[k] * leaky(r8[k] + l8[k]);
        }
    }
    let tail: f32 = a[n..].iter().zip(&r[n..]).zip(&l[n..]).map(|((a, r), l)| a * leaky(r + l)).sum();
    acc.iter().sum::<f32>() + tail
}

/// `Σ_t x[t] · y[t]` (eight lanes, see [`LANES`]).
#[inline]
pub(crate) fn dot(x: &[f32], y: &[f32]) -> f32 {
    let n = x.len().min(y.len()) / LANES * LANES;
    let mut acc = [0f32; LANES];
    for (x8, y8) in x[..n].chunks_exact(LANES).zip(y[..n].chunks_exact(LANES)) {
        for k in 0..LANES {
            acc[k] += x8[k] * y8[k];
        }
    }
    let tail: f32 = x[n..].iter().zip(&y[n..]).map(|(a, b)| a * b).sum();
    acc.iter().sum::<f32>() + tail
}

/// The attention logits of head `hh` for one target (`xr_i` its `H·C` row) over sources
/// `src`, then their softmax, into `e`.
#[allow(clippy::too_many_arguments)]
#[inline]
fn softmax_row(xl: &[f32], xr_i: &[f32], att: &[f32], src: &[u32], hh: usize, c: usize, h: usize, e: &mut [f32]) {
    let a = &att[hh * c..(hh + 1) * c];
    let r = &xr_i[hh * c..(hh + 1) * c];
    let mut max = f32::NEG_INFINITY;
    for (k, &j) in src.iter().enumerate() {
        let l = &xl[(j as usize * h + hh) * c..(j as usize * h + hh + 1) * c];
        let s = attention_logit(a, r, l);
        e[k] = s;
        max = max.max(s);
    }
    let mut sum = 0f32;
    for v in e.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in e.iter_mut() {
        *v *= inv;
    }
}

/// The values of a custom op's f32 input, which must be contiguous (`what` names the op and
/// input in the error). Shared by every fused op of this crate.
pub(crate) fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> candle_core::Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(d), Some((a, b))) => Ok(&d[a..b]),
        _ => candle_core::bail!("{what} must be contiguous f32"),
    }
}

/// Targets per block of the backward pass's sums (see there).
const BLOCK: usize = 256;

/// `acc + x`, element-wise.
#[inline]
fn sum_into(mut acc: Vec<f32>, x: &[f32]) -> Vec<f32> {
    acc.iter_mut().zip(x).for_each(|(a, x)| *a += x);
    acc
}

/// `x + y` element-wise into `out`.
#[inline]
fn add_into(out: &mut [f32], x: &[f32], y: &[f32]) {
    out.iter_mut().zip(x).zip(y).for_each(|((o, x), y)| *o = x + y);
}

impl CustomOp3 for Gatv2Attention {
    fn name(&self) -> &'static str {
        "zipp-gatv2-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let xl = contiguous_f32(s1, l1, "gatv2: x_l")?;
        let xr = contiguous_f32(s2, l2, "gatv2: x_r")?;
        let params = contiguous_f32(s3, l3, "gatv2: params")?;
        let (h, c, adj) = (self.heads, self.channels, &*self.adj);
        let (hc, od) = (h * c, self.out_dim());
        let (att, b_l, b_r, bias) = (&params[..hc], &params[hc..2 * hc], &params[2 * hc..3 * hc], &params[3 * hc..]);
        let mut out = vec![0f32; adj.n_dst * od];
        out.par_chunks_mut(od).enumerate().with_min_len(16).for_each_init(
            || (vec![0f32; hc], vec![0f32; hc], Vec::new()),
            |(agg, r_i, e), (i, o)| {
                let r = adj.ptr[i]..adj.ptr[i + 1];
                agg.fill(0.0);
                if !r.is_empty() {
                    let src = &adj.src[r.clone()];
                    e.resize(r.len(), 0.0);
                    // x_r[i] + b_r + b_l: the logit's target part with both biases.
                    add_into(r_i, &xr[i * hc..(i + 1) * hc], b_r);
                    r_i.iter_mut().zip(b_l).for_each(|(r, b)| *r += b);
                    for hh in 0..h {
                        softmax_row(xl, r_i, att, src, hh, c, h, e);
                        let a = &mut agg[hh * c..(hh + 1) * c];
                        for (k, &j) in src.iter().enumerate() {
                            let l = &xl[(j as usize * h + hh) * c..(j as usize * h + hh + 1) * c];
                            let w = e[k];
                            a.iter_mut().zip(l).for_each(|(a, l)| *a += w * l);
                        }
                    }
                    agg.iter_mut().zip(b_l).for_each(|(a, b)| *a += b);
                }
                if self.concat {
                    add_into(o, agg, bias);
                } else {
                    o.copy_from_slice(bias);
                    let inv = 1.0 / h as f32;
                    for head in agg.chunks_exact(c) {
                        o.iter_mut().zip(head).for_each(|(o, a)| *o += inv * a);
                    }
                }
                if self.elu {
                    o.iter_mut().filter(|v| **v < 0.0).for_each(|v| *v = v.exp() - 1.0);
                }
            },
        );
        Ok((CpuStorage::F32(out), Shape::from((adj.n_dst, od))))
    }

    fn bwd(
        &self,
        xl_t: &Tensor,
        xr_t: &Tensor,
        params_t: &Tensor,
        out_t: &Tensor,
        g_t: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (xl, xr, params) = (F32Values::of(xl_t)?, F32Values::of(xr_t)?, F32Values::of(params_t)?);
        let (out, g_out) = (F32Values::of(out_t)?, F32Values::of(g_t)?);
        let (xl, xr, params, out, g_out) =
            (xl.as_slice(), xr.as_slice(), params.as_slice(), out.as_slice(), g_out.as_slice());
        let (h, c, adj) = (self.heads, self.channels, &*self.adj);
        let (hc, od) = (h * c, self.out_dim());
        let (att, b_l, b_r) = (&params[..hc], &params[hc..2 * hc], &params[2 * hc..3 * hc]);
        let b_sum: Vec<f32> = b_l.iter().zip(b_r).map(|(a, b)| a + b).collect();
        // Pass 0, per target: the gradient before the ELU (from the output: ELU' is 1 above 0,
        // out + 1 below) is ∂bias; spread over the heads it is ∂ of the aggregation, `g`.
        // The aggregation's share of ∂b_l is the sum of g over targets with in-edges.
        // Sums over targets are taken per block of BLOCK targets, then over blocks in order:
        // the same float order whatever the thread count or scheduling (same seed, same
        // weights).
        let inv = if self.concat { 1.0 } else { 1.0 / h as f32 };
        let mut g = vec![0f32; adj.n_dst * hc];
        let parts: Vec<(Vec<f32>, Vec<f32>)> = g
            .par_chunks_mut(BLOCK * hc)
            .enumerate()
            .map(|(b, g_block)| {
                let (mut dbias, mut dbl, mut gp) = (vec![0f32; od], vec![0f32; hc], vec![0f32; od]);
                for (t, gi) in g_block.chunks_exact_mut(hc).enumerate() {
                    let i = b * BLOCK + t;
                    let (go, oi) = (&g_out[i * od..(i + 1) * od], &out[i * od..(i + 1) * od]);
                    for ((gp, &go), &o) in gp.iter_mut().zip(go).zip(oi) {
                        *gp = if self.elu && o <= 0.0 { go * (o + 1.0) } else { go };
                    }
                    dbias.iter_mut().zip(&gp).for_each(|(d, g)| *d += g);
                    for head in gi.chunks_exact_mut(od) {
                        head.iter_mut().zip(&gp).for_each(|(h, g)| *h = g * inv);
                    }
                    if adj.ptr[i] < adj.ptr[i + 1] {
                        dbl.iter_mut().zip(gi.iter()).for_each(|(d, g)| *d += g);
                    }
                }
                (dbias, dbl)
            })
            .collect();
        let (dbias, dbl_agg) = parts
            .into_iter()
            .fold((vec![0f32; od], vec![0f32; hc]), |acc, p| (sum_into(acc.0, &p.0), sum_into(acc.1, &p.1)));
        let g = &g[..];
        // Pass 1, per target: α and ∂e per slot and head, ∂x_r, and ∂a (per-block sums).
        let mut alpha = vec![0f32; adj.n_edges() * h];
        let mut de = vec![0f32; adj.n_edges() * h];
        let mut dxr = vec![0f32; adj.n_dst * hc];
        let block_ptr: Vec<usize> =
            (0..=adj.n_dst.div_ceil(BLOCK)).map(|b| adj.ptr[(b * BLOCK).min(adj.n_dst)]).collect();
        let blocks_a = split_by(&mut alpha, &block_ptr, h);
        let blocks_d = split_by(&mut de, &block_ptr, h);
        let parts: Vec<Vec<f32>> = blocks_a
            .into_par_iter()
            .zip(blocks_d)
            .zip(dxr.par_chunks_mut(BLOCK * hc))
            .enumerate()
            .map(|(b, ((ra, rd), dxr_block))| {
                let (mut datt, mut r_i, mut e, mut dots) = (vec![0f32; hc], vec![0f32; hc], Vec::new(), Vec::new());
                for (t, dxr_i) in dxr_block.chunks_exact_mut(hc).enumerate() {
                    let i = b * BLOCK + t;
                    let r = adj.ptr[i]..adj.ptr[i + 1];
                    if r.is_empty() {
                        continue;
                    }
                    let base = block_ptr[b];
                    let src = &adj.src[r.clone()];
                    add_into(&mut r_i, &xr[i * hc..(i + 1) * hc], &b_sum);
                    e.resize(r.len(), 0.0);
                    dots.resize(r.len(), 0.0);
                    for hh in 0..h {
                        softmax_row(xl, &r_i, att, src, hh, c, h, &mut e);
                        let gi = &g[i * hc + hh * c..i * hc + (hh + 1) * c];
                        // ∂e_k = α_k (g·x_l[j_k] − Σ α g·x_l[j]) (b_l's share cancels).
                        let mut ci = 0f32;
                        for (k, &j) in src.iter().enumerate() {
                            let l = &xl[(j as usize * h + hh) * c..(j as usize * h + hh + 1) * c];
                            dots[k] = dot(gi, l);
                            ci += e[k] * dots[k];
                        }
                        let a = &att[hh * c..(hh + 1) * c];
                        let r_h = &r_i[hh * c..(hh + 1) * c];
                        let dr = &mut dxr_i[hh * c..(hh + 1) * c];
                        let da = &mut datt[hh * c..(hh + 1) * c];
                        for (k, &j) in src.iter().enumerate() {
                            let l = &xl[(j as usize * h + hh) * c..(j as usize * h + hh + 1) * c];
                            let d = e[k] * (dots[k] - ci);
                            let slot = r.start - base + k;
                            ra[slot * h + hh] = e[k];
                            rd[slot * h + hh] = d;
                            for ((((da, dr), a), r), l) in da.iter_mut().zip(dr.iter_mut()).zip(a).zip(r_h).zip(l) {
                                let s = r + l;
                                let (m, slope) = if s > 0.0 { (s, 1.0) } else { (NEGATIVE_SLOPE * s, NEGATIVE_SLOPE) };
                                *da += d * m;
                                *dr += d * a * slope;
                            }
                        }
                    }
                }
                datt
            })
            .collect();
        let datt = parts.iter().fold(vec![0f32; hc], |acc, p| sum_into(acc, p));
        // Pass 2, per source: ∂x_l = Σ over its slots of α g_i + ∂e a ⊙ LeakyReLU'(s).
        let mut dxl = vec![0f32; adj.n_src * hc];
        dxl.par_chunks_mut(hc).enumerate().with_min_len(16).for_each(|(j, dl)| {
            let l_j = &xl[j * hc..(j + 1) * hc];
            for &k in &adj.by_src[adj.src_ptr[j]..adj.src_ptr[j + 1]] {
                let k = k as usize;
                let i = adj.dst[k] as usize;
                for hh in 0..h {
                    let (w, d) = (alpha[k * h + hh], de[k * h + hh]);
                    let o = hh * c..(hh + 1) * c;
                    let (r, bs, gi, a) =
                        (&xr[i * hc..][o.clone()], &b_sum[o.clone()], &g[i * hc..][o.clone()], &att[o.clone()]);
                    for (((((dl, l), r), bs), gi), a) in
                        dl[o.clone()].iter_mut().zip(&l_j[o]).zip(r).zip(bs).zip(gi).zip(a)
                    {
                        let slope = if r + bs + l > 0.0 { 1.0 } else { NEGATIVE_SLOPE };
                        *dl += w * gi + d * a * slope;
                    }
                }
            }
        });
        // ∂b_r is Σ ∂x_r; ∂b_l is that too (both biases enter every logit) plus the
        // aggregation's share.
        let parts: Vec<Vec<f32>> =
            dxr.par_chunks(BLOCK * hc).map(|block| block.chunks_exact(hc).fold(vec![0f32; hc], sum_into)).collect();
        let dbr = parts.iter().fold(vec![0f32; hc], |acc, p| sum_into(acc, p));
        let dbl = sum_into(dbl_agg, &dbr);
        let mut dparams = datt;
        dparams.extend_from_slice(&dbl);
        dparams.extend_from_slice(&dbr);
        dparams.extend_from_slice(&dbias);
        let dev = xl_t.device();
        dxr.resize(xr_t.dims()[0] * hc, 0.0);
        Ok((
            Some(Tensor::from_vec(dxl, (adj.n_src, hc), dev)?),
            Some(Tensor::from_vec(dxr, xr_t.dims(), dev)?),
            Some(Tensor::from_vec(dparams, params_t.dims(), dev)?),
        ))
    }
}

/// The same attention + aggregation from candle ops only (gather, exp, index-add; any
/// device and dtype, differentiable through candle's own backward). Materialises three
/// edges × H·C tensors: the independent check of [`Gatv2Attention`], and the path for
/// non-CPU devices.
pub fn attention_composed(
    adj: &Adjacency,
    xl: &Tensor,
    xr: &Tensor,
    att: &Tensor,
    heads: usize,
    channels: usize,
) -> Result<Tensor> {
    let dev = xl.device();
    let e_n = adj.n_edges();
    let src = Tensor::from_vec(adj.src.clone(), e_n, dev)?;
    let dst = Tensor::from_vec(adj.dst.clone(), e_n, dev)?;
    let xl_e = xl.index_select(&src, 0)?.reshape((e_n, heads, channels))?;
    let xr_e = xr.index_select(&dst, 0)?.reshape((e_n, heads, channels))?;
    let s = (&xl_e + &xr_e)?;
    let m = s.maximum(&(&s * NEGATIVE_SLOPE as f64)?)?;
    let logits = m.broadcast_mul(&att.unsqueeze(0)?)?.sum(D::Minus1)?; // [E, H]
                                                                       // The per-target max is a constant for the softmax: computed without gradient.
    let lv = logits.to_dtype(DType::F32)?.to_vec2::<f32>()?;
    let mut max = vec![0f32; adj.n_dst * heads];
    for i in 0..adj.n_dst {
        for hh in 0..heads {
            max[i * heads + hh] =
                (adj.ptr[i]..adj.ptr[i + 1]).map(|k| lv[k][hh]).fold(f32::NEG_INFINITY, f32::max).max(-1e30);
        }
    }
    let max = Tensor::from_vec(max, (adj.n_dst, heads), dev)?.to_dtype(xl.dtype())?;
    let ex = (logits - max.index_select(&dst, 0)?)?.exp()?;
    let zeros = Tensor::zeros((adj.n_dst, heads), xl.dtype(), dev)?;
    let denom = zeros.index_add(&dst, &ex, 0)?;
    let alpha = (ex / denom.index_select(&dst, 0)?)?;
    let msg = xl_e.broadcast_mul(&alpha.unsqueeze(D::Minus1)?)?.reshape((e_n, heads * channels))?;
    let zeros = Tensor::zeros((adj.n_dst, heads * channels), xl.dtype(), dev)?;
    Ok(zeros.index_add(&dst, &msg, 0)?)
}

/// Glorot-uniform values from zipp's seeded stream (PyG's `glorot` initialisation).
pub(crate) fn glorot(rng: &mut zipp_core::rng::SplitMix, fan_in: usize, fan_out: usize, n: usize) -> Vec<f32> {
    let a = (6.0 / (fan_in + fan_out) as f64).sqrt();
    (0..n).map(|_| ((rng.unit() * 2.0 - 1.0) * a) as f32).collect()
}

/// One GATv2 layer: the two linear maps, the attention vector, the bias. `clone()` copies
/// the weights (a candle `Var` clone would share them).
#[derive(Debug)]
pub struct Gatv2Layer {
    /// `W_l` `[H·C, in_src]`, applied to sources.
    pub lin_l_weight: candle_core::Var,
    /// `b_l` `[H·C]`.
    pub lin_l_bias: candle_core::Var,
    /// `W_r` `[H·C, in_dst]`, applied to targets.
    pub lin_r_weight: candle_core::Var,
    /// `b_r` `[H·C]`.
    pub lin_r_bias: candle_core::Var,
    /// `a` `[H, C]`.
    pub att: candle_core::Var,
    /// Output bias, `[H·C]` (concat) or `[C]` (mean).
    pub bias: candle_core::Var,
    /// Heads.
    pub heads: usize,
    /// Channels per head.
    pub channels: usize,
    /// Concatenate the heads (else average them).
    pub concat: bool,
}

/// A fresh variable holding a copy of `v`'s values.
pub(crate) fn copy_var(v: &candle_core::Var) -> candle_core::Var {
    // A copy has its own storage; a tensor of a shape a Var already had is always accepted.
    candle_core::Var::from_tensor(&v.as_tensor().copy().expect("copying a tensor on its own device"))
        .expect("a copied tensor is a valid variable")
}

impl Clone for Gatv2Layer {
    fn clone(&self) -> Self {
        Gatv2Layer {
            lin_l_weight: copy_var(&self.lin_l_weight),
            lin_l_bias: copy_var(&self.lin_l_bias),
            lin_r_weight: copy_var(&self.lin_r_weight),
            lin_r_bias: copy_var(&self.lin_r_bias),
            att: copy_var(&self.att),
            bias: copy_var(&self.bias),
            heads: self.heads,
            channels: self.channels,
            concat: self.concat,
        }
    }
}

/// The parameter names of a layer, in a fixed order (PyG's `GATv2Conv` names, `att` as
/// `[H, C]`).
pub const PARAM_NAMES: [&str; 6] = ["lin_l.weight", "lin_l.bias", "lin_r.weight", "lin_r.bias", "att", "bias"];

impl Gatv2Layer {
    /// A layer with Glorot-initialised weights and zero biases (as PyG initialises
    /// `GATv2Conv`), from `rng`.
    pub fn new(
        in_src: usize,
        in_dst: usize,
        heads: usize,
        channels: usize,
        concat: bool,
        rng: &mut zipp_core::rng::SplitMix,
        device: &Device,
    ) -> Result<Gatv2Layer> {
        if in_src == 0 || in_dst == 0 || heads == 0 || channels == 0 {
            return Err(Error::InvalidInput("gatv2: every size must be positive".into()));
        }
        let hc = heads * channels;
        let var = |data: Vec<f32>, shape: &[usize]| -> Result<candle_core::Var> {
            Ok(candle_core::Var::from_tensor(&Tensor::from_vec(data, shape, device)?)?)
        };
        Ok(Gatv2Layer {
            lin_l_weight: var(glorot(rng, in_src, hc, hc * in_src), &[hc, in_src])?,
            lin_l_bias: var(vec![0.0; hc], &[hc])?,
            lin_r_weight: var(glorot(rng, in_dst, hc, hc * in_dst), &[hc, in_dst])?,
            lin_r_bias: var(vec![0.0; hc], &[hc])?,
            att: var(glorot(rng, heads, channels, hc), &[heads, channels])?,
            bias: var(vec![0.0; if concat { hc } else { channels }], &[if concat { hc } else { channels }])?,
            heads,
            channels,
            concat,
        })
    }

    /// The parameters, in [`PARAM_NAMES`] order.
    pub fn params(&self) -> [&candle_core::Var; 6] {
        [&self.lin_l_weight, &self.lin_l_bias, &self.lin_r_weight, &self.lin_r_bias, &self.att, &self.bias]
    }

    /// Output width: `H·C` (concat) or `C`.
    pub fn out_dim(&self) -> usize {
        if self.concat {
            self.heads * self.channels
        } else {
            self.channels
        }
    }

    /// `x_l` and `x_r` (the linear maps of sources and targets, with their biases).
    pub fn project(&self, x_src: &Tensor, x_dst: &Tensor) -> Result<(Tensor, Tensor)> {
        let xl = x_src.matmul(&self.lin_l_weight.t()?)?.broadcast_add(self.lin_l_bias.as_tensor())?;
        let xr = x_dst.matmul(&self.lin_r_weight.t()?)?.broadcast_add(self.lin_r_bias.as_tensor())?;
        Ok((xl, xr))
    }

    /// The layer's output for the targets of `adj`.
    pub fn forward(&self, adj: &Arc<Adjacency>, x_src: &Tensor, x_dst: &Tensor) -> Result<Tensor> {
        self.forward_act(adj, x_src, x_dst, false)
    }

    /// `ELU(layer output)`, the activation fused into the layer on CPU.
    pub fn forward_elu(&self, adj: &Arc<Adjacency>, x_src: &Tensor, x_dst: &Tensor) -> Result<Tensor> {
        self.forward_act(adj, x_src, x_dst, true)
    }

    fn forward_act(&self, adj: &Arc<Adjacency>, x_src: &Tensor, x_dst: &Tensor, elu: bool) -> Result<Tensor> {
        let xl = x_src.matmul(&self.lin_l_weight.t()?)?;
        let xr = x_dst.matmul(&self.lin_r_weight.t()?)?;
        self.forward_projected(adj, xl, xr, elu)
    }

    /// The layer's output (then ELU when `elu`) from sources and targets already multiplied
    /// by `W_l`, `W_r` **without** the biases: the fused op adds them (CPU f32); elsewhere
    /// candle ops ([`attention_composed`]). The targets are the first `adj.n_dst()` rows of
    /// `xr`.
    pub fn forward_projected(&self, adj: &Arc<Adjacency>, xl: Tensor, xr: Tensor, elu: bool) -> Result<Tensor> {
        if xl.device().is_cpu() && xl.dtype() == DType::F32 {
            let op = Gatv2Attention::new(adj.clone(), self.heads, self.channels, self.concat, elu);
            let params = Gatv2Attention::params(
                self.att.as_tensor(),
                self.lin_l_bias.as_tensor(),
                self.lin_r_bias.as_tensor(),
                self.bias.as_tensor(),
            )?;
            return op.forward(&xl, &xr, &params);
        }
        let xl = xl.broadcast_add(self.lin_l_bias.as_tensor())?;
        let xr = xr.narrow(0, 0, adj.n_dst())?.broadcast_add(self.lin_r_bias.as_tensor())?;
        let out = attention_composed(adj, &xl, &xr, self.att.as_tensor(), self.heads, self.channels)?;
        let out = self.finish(out, adj.n_dst())?;
        Ok(if elu { out.elu(1.0)? } else { out })
    }

    /// The same through [`attention_composed`] (tests, other devices).
    pub fn forward_composed(&self, adj: &Adjacency, x_src: &Tensor, x_dst: &Tensor) -> Result<Tensor> {
        let (xl, xr) = self.project(x_src, x_dst)?;
        let out = attention_composed(adj, &xl, &xr, self.att.as_tensor(), self.heads, self.channels)?;
        self.finish(out, adj.n_dst())
    }

    /// The attention coefficients `[n_edges, H]` in slot order (no gradient).
    pub fn coefficients(&self, adj: &Arc<Adjacency>, x_src: &Tensor, x_dst: &Tensor) -> Result<Vec<f32>> {
        let (xl, xr) = self.project(x_src, x_dst)?;
        let values = |t: &Tensor| -> Result<Vec<f32>> { Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?) };
        let (xl, xr, att) = (values(&xl)?, values(&xr)?, values(self.att.as_tensor())?);
        Ok(coefficients(adj, self.heads, self.channels, &xl, &xr, &att))
    }

    fn finish(&self, out: Tensor, n: usize) -> Result<Tensor> {
        let out = if self.concat { out } else { out.reshape((n, self.heads, self.channels))?.mean(1)? };
        Ok(out.broadcast_add(self.bias.as_tensor())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::backprop::GradStore;
    use zipp_core::rng::SplitMix;

    fn randn(rng: &mut SplitMix, shape: &[usize], scale: f32) -> Tensor {
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| ((rng.unit() * 2.0 - 1.0) as f32) * scale).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    fn case(scale: f32, concat: bool) {
        let mut rng = SplitMix(11);
        // Target 3 has no in-edges, target 0 one, a repeated pair, unsorted input.
        let edges = [(0u32, 1u32), (4, 2), (1, 1), (2, 0), (4, 2), (3, 1), (5, 4), (0, 4), (6, 1), (2, 2)];
        let adj = Arc::new(Adjacency::from_edges(7, 5, &edges).unwrap());
        let layer = Gatv2Layer::new(4, 6, 2, 3, concat, &mut rng, &Device::Cpu).unwrap();
        // Non-zero biases so their gradients are checked too.
        layer.lin_l_bias.set(&randn(&mut rng, &[6], 0.5)).unwrap();
        layer.bias.set(&randn(&mut rng, &[layer.out_dim()], 0.5)).unwrap();
        let xs = candle_core::Var::from_tensor(&randn(&mut rng, &[7, 4], scale)).unwrap();
        let xd = candle_core::Var::from_tensor(&randn(&mut rng, &[5, 6], scale)).unwrap();
        let g = randn(&mut rng, &[5, layer.out_dim()], 1.0);
        let fused = layer.forward(&adj, xs.as_tensor(), xd.as_tensor()).unwrap();
        let composed = layer.forward_composed(&adj, xs.as_tensor(), xd.as_tensor()).unwrap();
        let tol = 1e-5 * scale.max(1.0) * scale.max(1.0);
        assert!(max_abs_diff(&fused, &composed) < tol, "forward differs by {}", max_abs_diff(&fused, &composed));
        assert!(fused.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().all(|v| v.is_finite()));
        // Target 3 (no in-edges) is the bias alone.
        assert!(max_abs_diff(&fused.get(3).unwrap(), layer.bias.as_tensor()) == 0.0);
        let gf: GradStore = (&fused * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let gc: GradStore = (&composed * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let vars: Vec<&candle_core::Var> = layer.params().into_iter().chain([&xs, &xd]).collect();
        for v in vars {
            let (a, b) = (gf.get(v).unwrap(), gc.get(v).unwrap());
            let scale_of = b.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap().max(1.0);
            let d = max_abs_diff(a, b);
            assert!(d < 1e-4 * scale_of, "gradient of {:?} differs by {d} (scale {scale_of})", v.dims());
        }
        // α sums to 1 over each target's in-edges.
        let alpha = layer.coefficients(&adj, xs.as_tensor(), xd.as_tensor()).unwrap();
        for i in 0..5 {
            for h in 0..2 {
                let s: f32 = (adj.ptr()[i]..adj.ptr()[i + 1]).map(|k| alpha[k * 2 + h]).sum();
                assert!(adj.ptr()[i] == adj.ptr()[i + 1] || (s - 1.0).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn fused_kernel_matches_composed_candle_ops_forward_and_gradients() {
        case(1.0, true);
        case(1.0, false);
    }

    #[test]
    fn fused_elu_and_prefix_targets_match_composed_ops() {
        for concat in [true, false] {
            let mut rng = SplitMix(5);
            let edges = [(0u32, 1u32), (4, 2), (1, 1), (2, 0), (3, 1), (5, 4), (0, 4), (6, 1), (2, 2)];
            let adj = Arc::new(Adjacency::from_edges(7, 5, &edges).unwrap());
            let layer = Gatv2Layer::new(4, 6, 2, 3, concat, &mut rng, &Device::Cpu).unwrap();
            for v in [&layer.lin_l_bias, &layer.lin_r_bias, &layer.bias] {
                v.set(&randn(&mut rng, v.dims(), 0.7)).unwrap();
            }
            let xs = candle_core::Var::from_tensor(&randn(&mut rng, &[7, 4], 1.5)).unwrap();
            // Three rows past the 5 targets: the fused op must ignore them (zero gradient).
            let xd = candle_core::Var::from_tensor(&randn(&mut rng, &[8, 6], 1.5)).unwrap();
            let g = randn(&mut rng, &[5, layer.out_dim()], 1.0);
            let xl = xs.as_tensor().matmul(&layer.lin_l_weight.t().unwrap()).unwrap();
            let xr = xd.as_tensor().matmul(&layer.lin_r_weight.t().unwrap()).unwrap();
            let fused = layer.forward_projected(&adj, xl, xr, true).unwrap();
            let targets = xd.as_tensor().narrow(0, 0, 5).unwrap();
            let composed = layer.forward_composed(&adj, xs.as_tensor(), &targets).unwrap().elu(1.0).unwrap();
            assert!(max_abs_diff(&fused, &composed) < 1e-5, "{}", max_abs_diff(&fused, &composed));
            // Some outputs are negative, so the ELU's lower branch is exercised.
            assert!(composed.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().any(|&v| v < -0.05));
            let gf = (&fused * &g).unwrap().sum_all().unwrap().backward().unwrap();
            let gc = (&composed * &g).unwrap().sum_all().unwrap().backward().unwrap();
            for v in layer.params().into_iter().chain([&xs, &xd]) {
                let (a, b) = (gf.get(v).unwrap(), gc.get(v).unwrap());
                let d = max_abs_diff(a, b);
                assert!(d < 1e-4, "gradient of {:?} differs by {d} (concat {concat})", v.dims());
            }
            let extra = gf.get(&xd).unwrap().narrow(0, 5, 3).unwrap();
            assert_eq!(extra.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
        }
    }

    #[test]
    fn large_logits_stay_finite() {
        // Logits in the hundreds: an unshifted exp overflows f32.
        case(40.0, true);
    }

    #[test]
    fn adjacency_rejects_out_of_range_and_bad_offsets() {
        assert!(Adjacency::from_edges(2, 2, &[(2, 0)]).is_err());
        assert!(Adjacency::from_edges(2, 2, &[(0, 2)]).is_err());
        assert!(Adjacency::from_csr(2, 2, vec![0, 2, 1], vec![0, 1]).is_err());
        let adj = Adjacency::from_edges(3, 2, &[(2, 1), (0, 0), (1, 1)]).unwrap();
        assert_eq!(Adjacency::slots_of_edges(2, &[(2, 1), (0, 0), (1, 1)]), vec![1, 0, 2]);
        assert_eq!(adj.src(), &[0, 2, 1]);
        assert_eq!(adj.dst(), &[0, 1, 1]);
    }

    #[test]
    fn shape_mismatch_is_an_error_not_a_panic() {
        let adj = Arc::new(Adjacency::from_edges(2, 2, &[(0, 0)]).unwrap());
        let op = Gatv2Attention::new(adj, 2, 3, true, false);
        let t = |r, c| Tensor::zeros((r, c), DType::F32, &Device::Cpu).unwrap();
        let p = |n: usize| Tensor::zeros(n, DType::F32, &Device::Cpu).unwrap();
        assert!(op.forward(&t(2, 5), &t(2, 6), &p(24)).is_err());
        assert!(op.forward(&t(2, 6), &t(2, 6), &p(23)).is_err());
        assert!(op.forward(&t(2, 6), &t(2, 6), &p(24)).is_ok());
    }
}
