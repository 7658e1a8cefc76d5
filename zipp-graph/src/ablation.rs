//! The encoder ablation of SPEC §6: TF-IDF, LightGCN, GraphSAGE, GAT and GATv2, each with and
//! without ImageAlign, trained and measured by the same code ([`crate::train::train`],
//! [`crate::train::evaluate`]) on the same split, negatives and evaluation draws.
//!
//! Every encoder reads the same [`GraphView`] (training edges only) and scores a pair by
//! `z_u · z_s`:
//!
//! ```text
//! TF-IDF     z_s = normalize(tf-idf of s's "name: description")      no parameters
//!            z_u = normalize(Σ_{s ∈ N(u)} w_us z_s)                     (w: edge weight)
//! LightGCN   e⁽⁰⁾ = free embeddings E_u, E_s (no features: transductive)
//!            e⁽ˡ⁺¹⁾_u = Σ_{s ∈ N(u)} e⁽ˡ⁾_s / sqrt(|N(u)| |N(s)|)     (and the same for s)
//!            z = Σ_{l=0..L} e⁽ˡ⁾ / (L + 1)                             (He et al. 2020, L = 2)
//! GraphSAGE  h_u = ReLU(W_r x_u + W_l mean_{s ∈ N(u)} x_s + b)        (and the same for s)
//!            z_u = W_r h_u + W_l mean_{s ∈ N(u)} h_s + b               (128 → 64, both directions)
//! GAT        e_ij = LeakyReLU₀.₂(a_srcᵀ W_src x_j + a_dstᵀ W_dst x_i)  (static attention,
//!            Veličković et al. 2018), α = softmax_j, h_i = Σ_j α_ij W_src x_j; 2 × 64 concat
//!            + ELU, then 2 × 64 averaged
//! GATv2      crate::model::Encoder (the method)
//! ```
//!
//! Parameter names follow PyTorch Geometric (`SAGEConv`'s `lin_l` / `lin_r`, `GATConv`'s
//! `lin_src` / `lin_dst` / `att_src` / `att_dst`), weights are Glorot-initialised from zipp's
//! seeded stream like the GATv2 encoder's, and ImageAlign's head is the same [`AlignHead`].
//! The ablation encoders' message passing is one weighted sparse–dense product per layer
//! with its own backward pass (a fused CPU kernel, composed candle ops on other devices):
//! LightGCN's and GraphSAGE's weights are fixed, GAT's are its attention coefficients, whose
//! logits are built from candle ops on `[edges, heads]` tensors only. GATv2 keeps its own
//! fused attention kernel. Like every candle computation in zipp, run it inside
//! [`zipp_core::runtime::compute`].
//!
//! TF-IDF has no parameter for ImageAlign to train: its ImageAlign row is reported as not
//! applicable, never as a number.
//!
//! ```no_run
//! # fn demo(g: &zipp_graph::BipartiteGraph, split: &zipp_graph::EdgeSplit, x: &candle_core::Tensor)
//! # -> zipp_core::error::Result<()> {
//! use zipp_graph::ablation::{markdown_table, run_ablation, AblationEncoder};
//! let options = zipp_graph::train::TrainOptions::default();
//! let rows = zipp_core::runtime::compute(x.device(), || {
//!     run_ablation(g, split, x, None, &AblationEncoder::ALL, &[0, 1, 2], &options, &mut |_| true)
//! })?;
//! println!("{}", markdown_table(&rows));
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp2, DType, Device, Layout, Shape, Tensor, Var, D};
use rayon::prelude::*;
use zipp_core::error::{Error, Result};
use zipp_core::rng::SplitMix;

use crate::gatv2::{contiguous_f32, copy_var, dot, glorot, Adjacency, F32Values, NEGATIVE_SLOPE};
use crate::graph::BipartiteGraph;
use crate::metrics::LinkMetrics;
use crate::model::{AlignHead, Encoder, EncoderConfig, GraphEncoder, GraphView, LAYER_NAMES};
use crate::sample::Block;
use crate::split::{EdgeSplit, Part};
use crate::train::{evaluate, train, EpochReport, TrainOptions};

/// Width of every ablation encoder's embeddings `z` (the GATv2 encoder's too).
pub const OUT_DIM: usize = 64;
/// LightGCN's propagation layers `L`.
pub const LIGHTGCN_LAYERS: usize = 2;
/// GraphSAGE's hidden width (layer 1's output).
pub const SAGE_HIDDEN: usize = 128;
/// GAT's heads in both layers (64 channels each, like GATv2's).
pub const GAT_HEADS: usize = 2;

/// The encoders of the ablation table, in the table's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AblationEncoder {
    /// TF-IDF of the community texts, users as the weighted sum of their communities'.
    TfIdf,
    /// LightGCN: free embeddings propagated over the normalised adjacency.
    LightGcn,
    /// GraphSAGE with the mean aggregator.
    Sage,
    /// GAT (static attention).
    Gat,
    /// GATv2, the method ([`crate::model::Encoder`]).
    Gatv2,
}

impl AblationEncoder {
    /// Every encoder, in the table's order.
    pub const ALL: [AblationEncoder; 5] = [
        AblationEncoder::TfIdf,
        AblationEncoder::LightGcn,
        AblationEncoder::Sage,
        AblationEncoder::Gat,
        AblationEncoder::Gatv2,
    ];

    /// The short name ([`GraphEncoder::name`], and what [`FromStr`] reads).
    pub fn name(self) -> &'static str {
        match self {
            AblationEncoder::TfIdf => "tfidf",
            AblationEncoder::LightGcn => "lightgcn",
            AblationEncoder::Sage => "graphsage",
            AblationEncoder::Gat => "gat",
            AblationEncoder::Gatv2 => "gatv2",
        }
    }

    /// The name for tables ("TF-IDF", "GraphSAGE" …).
    pub fn label(self) -> &'static str {
        match self {
            AblationEncoder::TfIdf => "TF-IDF",
            AblationEncoder::LightGcn => "LightGCN",
            AblationEncoder::Sage => "GraphSAGE",
            AblationEncoder::Gat => "GAT",
            AblationEncoder::Gatv2 => "GATv2",
        }
    }

    /// Whether it has parameters to train (all but TF-IDF).
    pub fn trainable(self) -> bool {
        self != AblationEncoder::TfIdf
    }
}

impl fmt::Display for AblationEncoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl FromStr for AblationEncoder {
    type Err = Error;

    /// The short name, or the label, case-insensitively (`sage` is GraphSAGE too).
    fn from_str(s: &str) -> Result<AblationEncoder> {
        let lower = s.trim().to_ascii_lowercase();
        let name = if lower == "sage" { "graphsage" } else { lower.as_str() };
        AblationEncoder::ALL.into_iter().find(|k| k.name() == name || k.label().eq_ignore_ascii_case(name)).ok_or_else(
            || {
                Error::InvalidInput(format!(
                    "unknown encoder {s:?} (one of {})",
                    AblationEncoder::ALL.map(AblationEncoder::name).join(", ")
                ))
            },
        )
    }
}

/// A freshly initialised encoder of `kind` for `graph`, from `seed`: `feature_dim` is the
/// width of the community features (`view.x_s`), `content_dim` (if any) adds ImageAlign's
/// head. TF-IDF reads the community texts of `graph` and cannot take an ImageAlign head.
pub fn build(
    kind: AblationEncoder,
    graph: &BipartiteGraph,
    feature_dim: usize,
    content_dim: Option<usize>,
    seed: u64,
    device: &Device,
) -> Result<Box<dyn GraphEncoder>> {
    Ok(match kind {
        AblationEncoder::TfIdf => {
            if content_dim.is_some() {
                return Err(Error::InvalidInput(
                    "TF-IDF has no parameters: ImageAlign has nothing to train (its row is not applicable)".into(),
                ));
            }
            Box::new(TfIdf::new(graph, device)?)
        }
        AblationEncoder::LightGcn => {
            Box::new(LightGcn::new(graph.num_users(), graph.num_communities(), content_dim, seed, device)?)
        }
        AblationEncoder::Sage => Box::new(Sage::new(feature_dim, content_dim, seed, device)?),
        AblationEncoder::Gat => Box::new(Gat::new(feature_dim, content_dim, seed, device)?),
        AblationEncoder::Gatv2 => Box::new(Encoder::new(EncoderConfig::new(feature_dim, content_dim), seed, device)?),
    })
}

/// A boxed encoder is an encoder, so [`crate::train::train`] (generic over the encoder)
/// trains whatever [`build`] returns.
impl GraphEncoder for Box<dyn GraphEncoder> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn forward(&self, view: &GraphView) -> Result<(Tensor, Tensor)> {
        (**self).forward(view)
    }
    fn forward_block(&self, view: &GraphView, block: &Block) -> Result<(Tensor, Tensor)> {
        (**self).forward_block(view, block)
    }
    fn named_vars(&self) -> Vec<(String, Var)> {
        (**self).named_vars()
    }
    fn out_dim(&self) -> usize {
        (**self).out_dim()
    }
    fn align(&self) -> Option<&AlignHead> {
        (**self).align()
    }
}

// ---------------------------------------------------------------------------------------
// Shared pieces.

/// ImageAlign's projection `[content_dim, out]` (Glorot) and zero bias, as the GATv2 encoder
/// builds it.
fn align_head(
    rng: &mut SplitMix,
    out: usize,
    content_dim: Option<usize>,
    device: &Device,
) -> Result<Option<AlignHead>> {
    match content_dim {
        Some(0) => Err(Error::InvalidInput("encoder: the content width must be positive".into())),
        Some(k) => {
            let w = Tensor::from_vec(glorot(rng, out, k, k * out), (k, out), device)?;
            Ok(Some(AlignHead(Var::from_tensor(&w)?, Var::from_tensor(&Tensor::zeros(k, DType::F32, device)?)?)))
        }
        None => Ok(None),
    }
}

/// `align.weight`, `align.bias` when present.
fn align_vars(align: &Option<AlignHead>) -> Vec<(String, Var)> {
    match align {
        Some(AlignHead(w, b)) => vec![("align.weight".into(), w.clone()), ("align.bias".into(), b.clone())],
        None => Vec::new(),
    }
}

fn glorot_var(rng: &mut SplitMix, rows: usize, cols: usize, device: &Device) -> Result<Var> {
    Ok(Var::from_tensor(&Tensor::from_vec(glorot(rng, cols, rows, rows * cols), (rows, cols), device)?)?)
}

fn zeros_var(n: usize, device: &Device) -> Result<Var> {
    Ok(Var::from_tensor(&Tensor::zeros(n, DType::F32, device)?)?)
}

/// The checks every feature-based encoder makes of a view: both adjacencies fit the feature
/// rows, and the features are `feature_dim` wide.
fn check_view(view: &GraphView, feature_dim: usize, who: &str) -> Result<()> {
    let (xs, xu) = (view.x_s.dims(), view.x_u.dims());
    let ok = xs.len() == 2
        && xu.len() == 2
        && xs[1] == feature_dim
        && xu[1] == feature_dim
        && view.c2u.n_src() == xs[0]
        && view.c2u.n_dst() == xu[0]
        && view.u2c.n_src() == xu[0]
        && view.u2c.n_dst() == xs[0];
    if !ok {
        return Err(Error::InvalidInput(format!(
            "{who}: a view with features {xs:?} (communities), {xu:?} (users) and adjacencies {}→{}, {}→{} \
             does not fit an encoder of {feature_dim}-wide features",
            view.c2u.n_src(),
            view.c2u.n_dst(),
            view.u2c.n_src(),
            view.u2c.n_dst()
        )));
    }
    Ok(())
}

/// An adjacency's slots grouped by target (as [`Adjacency`] keeps them) and by source (for
/// the backward pass of [`EdgeSum`]).
#[derive(Debug)]
struct Slots {
    n_src: usize,
    n_dst: usize,
    ptr: Vec<usize>,
    src: Vec<u32>,
    dst: Vec<u32>,
    /// Source `j`'s slots are `by_src[src_ptr[j]..src_ptr[j + 1]]`.
    src_ptr: Vec<usize>,
    by_src: Vec<u32>,
}

impl Slots {
    fn of(adj: &Adjacency) -> Slots {
        let n_src = adj.n_src();
        let mut src_ptr = vec![0usize; n_src + 1];
        for &j in adj.src() {
            src_ptr[j as usize + 1] += 1;
        }
        for j in 0..n_src {
            src_ptr[j + 1] += src_ptr[j];
        }
        let mut next = src_ptr.clone();
        let mut by_src = vec![0u32; adj.n_edges()];
        for (k, &j) in adj.src().iter().enumerate() {
            by_src[next[j as usize]] = k as u32;
            next[j as usize] += 1;
        }
        Slots {
            n_src,
            n_dst: adj.n_dst(),
            ptr: adj.ptr().to_vec(),
            src: adj.src().to_vec(),
            dst: adj.dst().to_vec(),
            src_ptr,
            by_src,
        }
    }

    fn n_edges(&self) -> usize {
        self.src.len()
    }
}

/// The message passing of every ablation encoder: for `x [n_src, H·C]` and per-slot weights
/// `w [E, H]`, `out[i, h] = Σ_{slots k of i} w[k, h] · x[src[k], h]` (`h` a block of `C`
/// channels), i.e. a sparse–dense product per head. A candle [`CustomOp2`] with its backward
/// (`∂x` per source, `∂w` per slot, both parallel without atomics): composed candle ops
/// (gather, scale, index-add) materialise two `E × H·C` tensors and spend most of an epoch
/// there. [`edge_sum_composed`] is the independent check and the path off the CPU.
#[derive(Debug, Clone)]
struct EdgeSum {
    slots: Arc<Slots>,
    heads: usize,
}

impl CustomOp2 for EdgeSum {
    fn name(&self) -> &'static str {
        "zipp-edge-sum"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, w) = (contiguous_f32(s1, l1, "edge sum: x")?, contiguous_f32(s2, l2, "edge sum: w")?);
        let (sl, h) = (&*self.slots, self.heads);
        let hc = l1.dims()[1];
        let c = hc / h;
        let mut out = vec![0f32; sl.n_dst * hc];
        out.par_chunks_mut(hc.max(1)).enumerate().with_min_len(16).for_each(|(i, o)| {
            for k in sl.ptr[i]..sl.ptr[i + 1] {
                let xj = &x[sl.src[k] as usize * hc..][..hc];
                for hh in 0..h {
                    let wk = w[k * h + hh];
                    o[hh * c..(hh + 1) * c].iter_mut().zip(&xj[hh * c..(hh + 1) * c]).for_each(|(o, x)| *o += wk * x);
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((sl.n_dst, hc))))
    }

    fn bwd(
        &self,
        x_t: &Tensor,
        w_t: &Tensor,
        _res: &Tensor,
        g_t: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (x, w, g) = (F32Values::of(x_t)?, F32Values::of(w_t)?, F32Values::of(g_t)?);
        let (x, w, g) = (x.as_slice(), w.as_slice(), g.as_slice());
        let (sl, h) = (&*self.slots, self.heads);
        let hc = x_t.dims()[1];
        let c = hc / h;
        // ∂x[j] = Σ over j's slots k of w[k] g[dst[k]]: per source, no two threads share a row.
        let mut dx = vec![0f32; sl.n_src * hc];
        dx.par_chunks_mut(hc.max(1)).enumerate().with_min_len(16).for_each(|(j, d)| {
            for &k in &sl.by_src[sl.src_ptr[j]..sl.src_ptr[j + 1]] {
                let k = k as usize;
                let gi = &g[sl.dst[k] as usize * hc..][..hc];
                for hh in 0..h {
                    let wk = w[k * h + hh];
                    d[hh * c..(hh + 1) * c].iter_mut().zip(&gi[hh * c..(hh + 1) * c]).for_each(|(d, g)| *d += wk * g);
                }
            }
        });
        // ∂w[k, h] = g[dst[k], h] · x[src[k], h].
        let mut dw = vec![0f32; sl.n_edges() * h];
        dw.par_chunks_mut(h).enumerate().with_min_len(256).for_each(|(k, d)| {
            let (gi, xj) = (&g[sl.dst[k] as usize * hc..][..hc], &x[sl.src[k] as usize * hc..][..hc]);
            for (hh, d) in d.iter_mut().enumerate() {
                *d = dot(&gi[hh * c..(hh + 1) * c], &xj[hh * c..(hh + 1) * c]);
            }
        });
        let dev = x_t.device();
        Ok((Some(Tensor::from_vec(dx, x_t.dims(), dev)?), Some(Tensor::from_vec(dw, w_t.dims(), dev)?)))
    }
}

/// [`EdgeSum`] with its shapes checked: the fused op for CPU f32, composed ops elsewhere.
fn edge_sum(slots: &Arc<Slots>, x: &Tensor, w: &Tensor, heads: usize) -> Result<Tensor> {
    let ok = match (x.dims(), w.dims()) {
        ([n, hc], [e, h]) => *n == slots.n_src && *e == slots.n_edges() && *h == heads && heads > 0 && hc % heads == 0,
        _ => false,
    };
    if !ok {
        return Err(Error::InvalidInput(format!(
            "edge sum: x {:?} and weights {:?} do not fit {} sources, {} edges, {heads} heads",
            x.dims(),
            w.dims(),
            slots.n_src,
            slots.n_edges()
        )));
    }
    if x.device().is_cpu() && x.dtype() == DType::F32 && w.dtype() == DType::F32 {
        let op = EdgeSum { slots: slots.clone(), heads };
        return Ok(x.contiguous()?.apply_op2(&w.contiguous()?, op)?);
    }
    edge_sum_composed(slots, x, w, heads)
}

/// The same sum from candle ops only (any device and dtype; differentiable by candle).
fn edge_sum_composed(slots: &Slots, x: &Tensor, w: &Tensor, heads: usize) -> Result<Tensor> {
    let (dev, e, hc) = (x.device(), slots.n_edges(), x.dims()[1]);
    let src = Tensor::from_vec(slots.src.clone(), e, dev)?;
    let dst = Tensor::from_vec(slots.dst.clone(), e, dev)?;
    let msg = x.index_select(&src, 0)?.reshape((e, heads, hc / heads))?.broadcast_mul(&w.unsqueeze(D::Minus1)?)?;
    let zeros = Tensor::zeros((slots.n_dst, hc), x.dtype(), dev)?;
    Ok(zeros.index_add(&dst, &msg.reshape((e, hc))?, 0)?)
}

/// A fixed weighted sum over in-edges, `out[i] = Σ_{slots k of i} w[k] · x[src[k]]`.
struct SlotSum {
    slots: Arc<Slots>,
    /// `[E, 1]`, no gradient.
    weight: Tensor,
}

impl SlotSum {
    fn new(adj: &Adjacency, weight: Vec<f32>, device: &Device) -> Result<SlotSum> {
        let e = adj.n_edges();
        Ok(SlotSum { slots: Arc::new(Slots::of(adj)), weight: Tensor::from_vec(weight, (e, 1), device)? })
    }

    /// `1 / in-degree` per slot: the mean over each target's in-edges.
    fn mean(adj: &Adjacency, device: &Device) -> Result<SlotSum> {
        let ptr = adj.ptr();
        let w = adj.dst().iter().map(|&i| 1.0 / (ptr[i as usize + 1] - ptr[i as usize]) as f32).collect();
        SlotSum::new(adj, w, device)
    }

    fn apply(&self, x: &Tensor) -> Result<Tensor> {
        edge_sum(&self.slots, x, &self.weight.to_dtype(x.dtype())?, 1)
    }
}

// ---------------------------------------------------------------------------------------
// TF-IDF.

/// The word tokens of `text`: maximal runs of alphanumeric characters, lowercased
/// (`"Children's"` → `children`, `s`).
pub fn tokenize(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase)
}

/// TF-IDF, the no-training baseline: each community's [`crate::Community::text`] is a
/// document; raw term counts times the smoothed IDF `ln((1 + N) / (1 + df)) + 1`
/// (scikit-learn's `TfidfVectorizer` defaults, over [`tokenize`]'s words), L2-normalised.
/// A user is the L2-normalised sum of their training communities' vectors weighted by edge
/// weight. Embeddings are dense over the vocabulary (a few thousand words on MovieLens).
///
/// The edge weights are read from the graph it was built from: views passed to
/// [`GraphEncoder::forward`] must be views of that graph (any split).
#[derive(Debug, Clone)]
pub struct TfIdf {
    vocabulary: Vec<String>,
    /// Per community, its normalised vector as sorted `(word, value)` pairs.
    communities: Vec<Vec<(u32, f32)>>,
    /// The graph's edge weights, by edge id.
    weights: Vec<f32>,
    device: Device,
}

impl TfIdf {
    /// The community vectors of `graph`'s texts.
    pub fn new(graph: &BipartiteGraph, device: &Device) -> Result<TfIdf> {
        let docs: Vec<Vec<String>> = graph.communities().iter().map(|c| tokenize(&c.text()).collect()).collect();
        // Sorted vocabulary: the same texts give the same columns.
        let mut df: BTreeMap<&str, usize> = BTreeMap::new();
        for doc in &docs {
            let mut words: Vec<&str> = doc.iter().map(String::as_str).collect();
            words.sort_unstable();
            words.dedup();
            for w in words {
                *df.entry(w).or_default() += 1;
            }
        }
        if df.is_empty() {
            return Err(Error::InvalidInput("TF-IDF: no community text has a word".into()));
        }
        let n = docs.len() as f64;
        let index: BTreeMap<&str, u32> = df.keys().enumerate().map(|(k, w)| (*w, k as u32)).collect();
        let idf: Vec<f64> = df.values().map(|&d| ((1.0 + n) / (1.0 + d as f64)).ln() + 1.0).collect();
        let communities = docs
            .iter()
            .map(|doc| {
                let mut tf: BTreeMap<u32, f64> = BTreeMap::new();
                for w in doc {
                    *tf.entry(index[w.as_str()]).or_default() += 1.0;
                }
                let v: Vec<(u32, f64)> = tf.into_iter().map(|(k, c)| (k, c * idf[k as usize])).collect();
                let norm = v.iter().map(|(_, x)| x * x).sum::<f64>().sqrt();
                v.into_iter().map(|(k, x)| (k, (x / norm) as f32)).collect()
            })
            .collect();
        Ok(TfIdf {
            vocabulary: df.keys().map(|w| w.to_string()).collect(),
            communities,
            weights: graph.weights().to_vec(),
            device: device.clone(),
        })
    }

    /// The words, in column order.
    pub fn vocabulary(&self) -> &[String] {
        &self.vocabulary
    }
}

impl GraphEncoder for TfIdf {
    fn name(&self) -> &str {
        AblationEncoder::TfIdf.name()
    }

    fn forward(&self, view: &GraphView) -> Result<(Tensor, Tensor)> {
        let (s_n, v_n) = (self.communities.len(), self.vocabulary.len());
        let adj = &view.c2u;
        if adj.n_src() != s_n || view.c2u_edges.len() != adj.n_edges() {
            return Err(Error::InvalidInput(format!(
                "TF-IDF: a view of {} communities and {} edge ids for {} slots; built for {s_n} communities",
                adj.n_src(),
                view.c2u_edges.len(),
                adj.n_edges()
            )));
        }
        if let Some(&e) = view.c2u_edges.iter().find(|&&e| e as usize >= self.weights.len()) {
            return Err(Error::InvalidInput(format!(
                "TF-IDF: edge {e} is not an edge of the graph it was built from ({} edges)",
                self.weights.len()
            )));
        }
        let mut z_s = vec![0f32; s_n * v_n];
        for (s, vec) in self.communities.iter().enumerate() {
            for &(k, x) in vec {
                z_s[s * v_n + k as usize] = x;
            }
        }
        let u_n = adj.n_dst();
        let mut z_u = vec![0f32; u_n * v_n];
        let ptr = adj.ptr();
        let mut row = vec![0f64; v_n];
        for u in 0..u_n {
            row.iter_mut().for_each(|x| *x = 0.0);
            for k in ptr[u]..ptr[u + 1] {
                let w = self.weights[view.c2u_edges[k] as usize] as f64;
                for &(j, x) in &self.communities[adj.src()[k] as usize] {
                    row[j as usize] += w * x as f64;
                }
            }
            let norm = row.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm > 0.0 {
                for (z, x) in z_u[u * v_n..(u + 1) * v_n].iter_mut().zip(&row) {
                    *z = (x / norm) as f32;
                }
            }
        }
        Ok((Tensor::from_vec(z_u, (u_n, v_n), &self.device)?, Tensor::from_vec(z_s, (s_n, v_n), &self.device)?))
    }

    fn named_vars(&self) -> Vec<(String, Var)> {
        Vec::new()
    }

    fn out_dim(&self) -> usize {
        self.vocabulary.len()
    }

    fn align(&self) -> Option<&AlignHead> {
        None
    }
}

// ---------------------------------------------------------------------------------------
// LightGCN.

/// LightGCN (He et al. 2020): free user and community embeddings, propagated
/// [`LIGHTGCN_LAYERS`] times over the training edges with the symmetric normalisation
/// `1 / sqrt(|N(u)| |N(s)|)` (unweighted), the output the mean of the layer outputs
/// (`α_l = 1 / (L + 1)`). No features: it only represents the users and communities it was
/// built for (transductive). `clone()` copies the weights.
#[derive(Debug)]
pub struct LightGcn {
    /// `E_u` `[U, 64]`, initialised normal with s.d. 0.1.
    pub user_embedding: Var,
    /// `E_s` `[S, 64]`, initialised normal with s.d. 0.1.
    pub community_embedding: Var,
    /// Propagation layers `L`.
    pub layers: usize,
    /// ImageAlign's projection, if any.
    pub align: Option<AlignHead>,
}

impl Clone for LightGcn {
    fn clone(&self) -> Self {
        LightGcn {
            user_embedding: copy_var(&self.user_embedding),
            community_embedding: copy_var(&self.community_embedding),
            layers: self.layers,
            align: self.align.clone(),
        }
    }
}

/// Standard normal values (Box–Muller) from zipp's seeded stream.
fn normal(rng: &mut SplitMix, n: usize, sd: f64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let (a, b) = (1.0 - rng.unit(), rng.unit());
            ((-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos() * sd) as f32
        })
        .collect()
}

impl LightGcn {
    /// Embeddings for `users` × `communities` (64 wide, [`LIGHTGCN_LAYERS`] layers), from
    /// `seed`; `content_dim` adds ImageAlign's head.
    pub fn new(
        users: usize,
        communities: usize,
        content_dim: Option<usize>,
        seed: u64,
        device: &Device,
    ) -> Result<LightGcn> {
        if users == 0 || communities == 0 {
            return Err(Error::InvalidInput("LightGCN: the graph needs users and communities".into()));
        }
        let mut rng = SplitMix(seed);
        let d = OUT_DIM;
        let var = |v: Vec<f32>, rows: usize| -> Result<Var> {
            Ok(Var::from_tensor(&Tensor::from_vec(v, (rows, d), device)?)?)
        };
        let user_embedding = var(normal(&mut rng, users * d, 0.1), users)?;
        let community_embedding = var(normal(&mut rng, communities * d, 0.1), communities)?;
        let align = align_head(&mut rng, d, content_dim, device)?;
        Ok(LightGcn { user_embedding, community_embedding, layers: LIGHTGCN_LAYERS, align })
    }

    /// The normalised propagation in both directions: `(c2u, u2c)`.
    fn propagation(view: &GraphView, device: &Device) -> Result<(SlotSum, SlotSum)> {
        let (pu, ps) = (view.c2u.ptr(), view.u2c.ptr());
        let deg_u = |u: u32| (pu[u as usize + 1] - pu[u as usize]) as f32;
        let deg_s = |s: u32| (ps[s as usize + 1] - ps[s as usize]) as f32;
        let w = |u: u32, s: u32| 1.0 / (deg_u(u) * deg_s(s)).sqrt();
        let c2u_w = view.c2u.src().iter().zip(view.c2u.dst()).map(|(&s, &u)| w(u, s)).collect();
        let u2c_w = view.u2c.src().iter().zip(view.u2c.dst()).map(|(&u, &s)| w(u, s)).collect();
        Ok((SlotSum::new(&view.c2u, c2u_w, device)?, SlotSum::new(&view.u2c, u2c_w, device)?))
    }
}

impl GraphEncoder for LightGcn {
    fn name(&self) -> &str {
        AblationEncoder::LightGcn.name()
    }

    fn forward(&self, view: &GraphView) -> Result<(Tensor, Tensor)> {
        let (u_n, s_n) = (self.user_embedding.dims()[0], self.community_embedding.dims()[0]);
        let fits =
            view.c2u.n_src() == s_n && view.c2u.n_dst() == u_n && view.u2c.n_src() == u_n && view.u2c.n_dst() == s_n;
        if !fits {
            return Err(Error::InvalidInput(format!(
                "LightGCN: built for {u_n} users × {s_n} communities, given a view of {} × {} (it is transductive)",
                view.c2u.n_dst(),
                view.c2u.n_src()
            )));
        }
        let (c2u, u2c) = LightGcn::propagation(view, self.user_embedding.device())?;
        let (mut e_u, mut e_s) =
            (self.user_embedding.as_tensor().clone(), self.community_embedding.as_tensor().clone());
        let (mut sum_u, mut sum_s) = (e_u.clone(), e_s.clone());
        for _ in 0..self.layers {
            let next_u = c2u.apply(&e_s)?;
            let next_s = u2c.apply(&e_u)?;
            sum_u = (sum_u + &next_u)?;
            sum_s = (sum_s + &next_s)?;
            (e_u, e_s) = (next_u, next_s);
        }
        let alpha = 1.0 / (self.layers + 1) as f64;
        Ok(((sum_u * alpha)?, (sum_s * alpha)?))
    }

    fn named_vars(&self) -> Vec<(String, Var)> {
        let mut out = vec![
            ("user_embedding.weight".to_string(), self.user_embedding.clone()),
            ("community_embedding.weight".to_string(), self.community_embedding.clone()),
        ];
        out.extend(align_vars(&self.align));
        out
    }

    fn out_dim(&self) -> usize {
        OUT_DIM
    }

    fn align(&self) -> Option<&AlignHead> {
        self.align.as_ref()
    }
}

// ---------------------------------------------------------------------------------------
// GraphSAGE.

/// One GraphSAGE layer with the mean aggregator (PyG's `SAGEConv`):
/// `out_i = W_l mean_{j → i} x_j + b_l + W_r x_i`. `clone()` copies the weights.
#[derive(Debug)]
pub struct SageLayer {
    /// `W_l` `[out, in_src]`, applied to the neighbours' mean.
    pub lin_l_weight: Var,
    /// `b_l` `[out]`.
    pub lin_l_bias: Var,
    /// `W_r` `[out, in_dst]`, applied to the target itself (no bias, as in PyG).
    pub lin_r_weight: Var,
}

/// A SAGE layer's parameter names (PyG's), in [`SageLayer::params`] order.
pub const SAGE_PARAM_NAMES: [&str; 3] = ["lin_l.weight", "lin_l.bias", "lin_r.weight"];

impl Clone for SageLayer {
    fn clone(&self) -> Self {
        SageLayer {
            lin_l_weight: copy_var(&self.lin_l_weight),
            lin_l_bias: copy_var(&self.lin_l_bias),
            lin_r_weight: copy_var(&self.lin_r_weight),
        }
    }
}

impl SageLayer {
    /// Glorot weights, zero bias.
    pub fn new(in_src: usize, in_dst: usize, out: usize, rng: &mut SplitMix, device: &Device) -> Result<SageLayer> {
        if in_src == 0 || in_dst == 0 || out == 0 {
            return Err(Error::InvalidInput("GraphSAGE: every size must be positive".into()));
        }
        Ok(SageLayer {
            lin_l_weight: glorot_var(rng, out, in_src, device)?,
            lin_l_bias: zeros_var(out, device)?,
            lin_r_weight: glorot_var(rng, out, in_dst, device)?,
        })
    }

    /// The parameters, in [`SAGE_PARAM_NAMES`] order.
    pub fn params(&self) -> [&Var; 3] {
        [&self.lin_l_weight, &self.lin_l_bias, &self.lin_r_weight]
    }

    /// The layer's output for the targets of `adj` (its [`SlotSum::mean`]).
    fn forward(&self, mean: &SlotSum, x_src: &Tensor, x_dst: &Tensor) -> Result<Tensor> {
        // W (mean x) = mean (W x): project first, so the gather is `out` wide, not `in`.
        let neigh = mean.apply(&x_src.matmul(&self.lin_l_weight.t()?)?)?;
        let root = x_dst.matmul(&self.lin_r_weight.t()?)?;
        Ok((neigh + root)?.broadcast_add(self.lin_l_bias.as_tensor())?)
    }
}

/// GraphSAGE (Hamilton et al. 2017, mean aggregator) in the GATv2 encoder's topology: two
/// layers in both directions over the same features, [`SAGE_HIDDEN`] then [`OUT_DIM`] wide,
/// ReLU after layer 1 only. Inductive like the GATv2 encoder. `clone()` copies the weights.
#[derive(Debug, Clone)]
pub struct Sage {
    feature_dim: usize,
    /// Layer 1, communities → users.
    pub l1_c2u: SageLayer,
    /// Layer 1, users → communities.
    pub l1_u2c: SageLayer,
    /// Layer 2, communities → users.
    pub l2_c2u: SageLayer,
    /// Layer 2, users → communities.
    pub l2_u2c: SageLayer,
    /// ImageAlign's projection, if any.
    pub align: Option<AlignHead>,
}

impl Sage {
    /// A fresh encoder over `feature_dim`-wide features, from `seed`.
    pub fn new(feature_dim: usize, content_dim: Option<usize>, seed: u64, device: &Device) -> Result<Sage> {
        let mut rng = SplitMix(seed);
        let (d, h, o) = (feature_dim, SAGE_HIDDEN, OUT_DIM);
        let l1_c2u = SageLayer::new(d, d, h, &mut rng, device)?;
        let l1_u2c = SageLayer::new(d, d, h, &mut rng, device)?;
        let l2_c2u = SageLayer::new(h, h, o, &mut rng, device)?;
        let l2_u2c = SageLayer::new(h, h, o, &mut rng, device)?;
        let align = align_head(&mut rng, o, content_dim, device)?;
        Ok(Sage { feature_dim, l1_c2u, l1_u2c, l2_c2u, l2_u2c, align })
    }

    fn layers(&self) -> [&SageLayer; 4] {
        [&self.l1_c2u, &self.l1_u2c, &self.l2_c2u, &self.l2_u2c]
    }
}

impl GraphEncoder for Sage {
    fn name(&self) -> &str {
        AblationEncoder::Sage.name()
    }

    fn forward(&self, view: &GraphView) -> Result<(Tensor, Tensor)> {
        check_view(view, self.feature_dim, "GraphSAGE")?;
        let dev = view.x_s.device();
        let (to_u, to_s) = (SlotSum::mean(&view.c2u, dev)?, SlotSum::mean(&view.u2c, dev)?);
        let h_u = self.l1_c2u.forward(&to_u, &view.x_s, &view.x_u)?.relu()?;
        let h_s = self.l1_u2c.forward(&to_s, &view.x_u, &view.x_s)?.relu()?;
        let z_u = self.l2_c2u.forward(&to_u, &h_s, &h_u)?;
        let z_s = self.l2_u2c.forward(&to_s, &h_u, &h_s)?;
        Ok((z_u, z_s))
    }

    fn named_vars(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        for (name, layer) in LAYER_NAMES.iter().zip(self.layers()) {
            for (p, v) in SAGE_PARAM_NAMES.iter().zip(layer.params()) {
                out.push((format!("{name}.{p}"), v.clone()));
            }
        }
        out.extend(align_vars(&self.align));
        out
    }

    fn out_dim(&self) -> usize {
        OUT_DIM
    }

    fn align(&self) -> Option<&AlignHead> {
        self.align.as_ref()
    }
}

// ---------------------------------------------------------------------------------------
// GAT.

/// One GAT layer (Veličković et al. 2018; PyG's `GATConv` on a bipartite graph, no
/// self-loops): per head, `e_ij = LeakyReLU₀.₂(a_src · W_src x_j + a_dst · W_dst x_i)`,
/// `α = softmax_j(e_ij)` over i's in-edges (per-target max subtracted), `h_i = Σ_j α_ij
/// W_src x_j`, heads concatenated or averaged, + bias. The ranking of sources by `e_ij` is
/// the same for every target ("static" attention) — what GATv2 fixes. `clone()` copies the
/// weights.
#[derive(Debug)]
pub struct GatLayer {
    /// `W_src` `[H·C, in_src]` (no bias, as in PyG).
    pub lin_src_weight: Var,
    /// `W_dst` `[H·C, in_dst]`.
    pub lin_dst_weight: Var,
    /// `a_src` `[H, C]`.
    pub att_src: Var,
    /// `a_dst` `[H, C]`.
    pub att_dst: Var,
    /// Output bias, `[H·C]` (concat) or `[C]` (mean).
    pub bias: Var,
    /// Heads.
    pub heads: usize,
    /// Channels per head.
    pub channels: usize,
    /// Concatenate the heads (else average them).
    pub concat: bool,
}

/// A GAT layer's parameter names (PyG's, `att_*` as `[H, C]`), in [`GatLayer::params`] order.
pub const GAT_PARAM_NAMES: [&str; 5] = ["lin_src.weight", "lin_dst.weight", "att_src", "att_dst", "bias"];

impl Clone for GatLayer {
    fn clone(&self) -> Self {
        GatLayer {
            lin_src_weight: copy_var(&self.lin_src_weight),
            lin_dst_weight: copy_var(&self.lin_dst_weight),
            att_src: copy_var(&self.att_src),
            att_dst: copy_var(&self.att_dst),
            bias: copy_var(&self.bias),
            heads: self.heads,
            channels: self.channels,
            concat: self.concat,
        }
    }
}

impl GatLayer {
    /// Glorot weights and attention vectors, zero bias (as PyG initialises `GATConv`).
    pub fn new(
        in_src: usize,
        in_dst: usize,
        heads: usize,
        channels: usize,
        concat: bool,
        rng: &mut SplitMix,
        device: &Device,
    ) -> Result<GatLayer> {
        if in_src == 0 || in_dst == 0 || heads == 0 || channels == 0 {
            return Err(Error::InvalidInput("GAT: every size must be positive".into()));
        }
        let hc = heads * channels;
        Ok(GatLayer {
            lin_src_weight: glorot_var(rng, hc, in_src, device)?,
            lin_dst_weight: glorot_var(rng, hc, in_dst, device)?,
            att_src: glorot_var(rng, heads, channels, device)?,
            att_dst: glorot_var(rng, heads, channels, device)?,
            bias: zeros_var(if concat { hc } else { channels }, device)?,
            heads,
            channels,
            concat,
        })
    }

    /// The parameters, in [`GAT_PARAM_NAMES`] order.
    pub fn params(&self) -> [&Var; 5] {
        [&self.lin_src_weight, &self.lin_dst_weight, &self.att_src, &self.att_dst, &self.bias]
    }

    /// The layer's output for the targets of `adj`.
    pub fn forward(&self, adj: &Adjacency, x_src: &Tensor, x_dst: &Tensor) -> Result<Tensor> {
        self.forward_slots(&Arc::new(Slots::of(adj)), x_src, x_dst, true)
    }

    /// `fused`: the aggregation by [`EdgeSum`] (else by composed candle ops, the check).
    fn forward_slots(&self, slots: &Arc<Slots>, x_src: &Tensor, x_dst: &Tensor, fused: bool) -> Result<Tensor> {
        let (h, c) = (self.heads, self.channels);
        let (n_src, n_dst, e_n) = (slots.n_src, slots.n_dst, slots.n_edges());
        if x_src.dims().first() != Some(&n_src) || x_dst.dims().first() != Some(&n_dst) {
            return Err(Error::InvalidInput(format!(
                "GAT: features {:?} → {:?} for an adjacency of {n_src} sources and {n_dst} targets",
                x_src.dims(),
                x_dst.dims()
            )));
        }
        let dev = x_src.device();
        let xs = x_src.matmul(&self.lin_src_weight.t()?)?; // [n_src, H·C]
        let xd = x_dst.matmul(&self.lin_dst_weight.t()?)?;
        // The logit splits into a per-source and a per-target term (GAT's static attention):
        // two [n, H] tensors, gathered per edge; only [E, H] tensors are built per edge.
        let score = |x: &Tensor, n: usize, a: &Var| -> Result<Tensor> {
            Ok(x.reshape((n, h, c))?.broadcast_mul(&a.as_tensor().unsqueeze(0)?)?.sum(D::Minus1)?)
        };
        let (a_s, a_d) = (score(&xs, n_src, &self.att_src)?, score(&xd, n_dst, &self.att_dst)?);
        let src = Tensor::from_vec(slots.src.clone(), e_n, dev)?;
        let dst = Tensor::from_vec(slots.dst.clone(), e_n, dev)?;
        let s = (a_s.index_select(&src, 0)? + a_d.index_select(&dst, 0)?)?; // [E, H]
        let logits = s.maximum(&(&s * NEGATIVE_SLOPE as f64)?)?;
        // The per-target max is a constant for the softmax: computed without gradient.
        let lv = logits.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let mut max = vec![0f32; n_dst * h];
        for i in 0..n_dst {
            for hh in 0..h {
                max[i * h + hh] = (slots.ptr[i]..slots.ptr[i + 1])
                    .map(|k| lv[k * h + hh])
                    .fold(f32::NEG_INFINITY, f32::max)
                    .max(-1e30);
            }
        }
        let max = Tensor::from_vec(max, (n_dst, h), dev)?.to_dtype(xs.dtype())?;
        let ex = (logits - max.index_select(&dst, 0)?)?.exp()?;
        let denom = Tensor::zeros((n_dst, h), xs.dtype(), dev)?.index_add(&dst, &ex, 0)?;
        let alpha = (ex / denom.index_select(&dst, 0)?)?;
        let out = if fused { edge_sum(slots, &xs, &alpha, h)? } else { edge_sum_composed(slots, &xs, &alpha, h)? };
        let out = if self.concat { out } else { out.reshape((n_dst, h, c))?.mean(1)? };
        Ok(out.broadcast_add(self.bias.as_tensor())?)
    }
}

/// GAT in the GATv2 encoder's topology: two layers in both directions, [`GAT_HEADS`] × 64
/// concatenated + ELU, then [`GAT_HEADS`] × 64 averaged. Inductive. `clone()` copies the
/// weights.
#[derive(Debug, Clone)]
pub struct Gat {
    feature_dim: usize,
    /// Layer 1, communities → users.
    pub l1_c2u: GatLayer,
    /// Layer 1, users → communities.
    pub l1_u2c: GatLayer,
    /// Layer 2, communities → users.
    pub l2_c2u: GatLayer,
    /// Layer 2, users → communities.
    pub l2_u2c: GatLayer,
    /// ImageAlign's projection, if any.
    pub align: Option<AlignHead>,
}

impl Gat {
    /// A fresh encoder over `feature_dim`-wide features, from `seed`.
    pub fn new(feature_dim: usize, content_dim: Option<usize>, seed: u64, device: &Device) -> Result<Gat> {
        let mut rng = SplitMix(seed);
        let (d, h, c) = (feature_dim, GAT_HEADS, OUT_DIM);
        let l1_c2u = GatLayer::new(d, d, h, c, true, &mut rng, device)?;
        let l1_u2c = GatLayer::new(d, d, h, c, true, &mut rng, device)?;
        let l2_c2u = GatLayer::new(h * c, h * c, h, c, false, &mut rng, device)?;
        let l2_u2c = GatLayer::new(h * c, h * c, h, c, false, &mut rng, device)?;
        let align = align_head(&mut rng, c, content_dim, device)?;
        Ok(Gat { feature_dim, l1_c2u, l1_u2c, l2_c2u, l2_u2c, align })
    }

    /// `fused`: see [`GatLayer::forward_slots`].
    fn forward_with(&self, view: &GraphView, fused: bool) -> Result<(Tensor, Tensor)> {
        check_view(view, self.feature_dim, "GAT")?;
        let (to_u, to_s) = (Arc::new(Slots::of(&view.c2u)), Arc::new(Slots::of(&view.u2c)));
        let h_u = self.l1_c2u.forward_slots(&to_u, &view.x_s, &view.x_u, fused)?.elu(1.0)?;
        let h_s = self.l1_u2c.forward_slots(&to_s, &view.x_u, &view.x_s, fused)?.elu(1.0)?;
        let z_u = self.l2_c2u.forward_slots(&to_u, &h_s, &h_u, fused)?;
        let z_s = self.l2_u2c.forward_slots(&to_s, &h_u, &h_s, fused)?;
        Ok((z_u, z_s))
    }

    fn layers(&self) -> [&GatLayer; 4] {
        [&self.l1_c2u, &self.l1_u2c, &self.l2_c2u, &self.l2_u2c]
    }
}

impl GraphEncoder for Gat {
    fn name(&self) -> &str {
        AblationEncoder::Gat.name()
    }

    fn forward(&self, view: &GraphView) -> Result<(Tensor, Tensor)> {
        self.forward_with(view, true)
    }

    fn named_vars(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        for (name, layer) in LAYER_NAMES.iter().zip(self.layers()) {
            for (p, v) in GAT_PARAM_NAMES.iter().zip(layer.params()) {
                out.push((format!("{name}.{p}"), v.clone()));
            }
        }
        out.extend(align_vars(&self.align));
        out
    }

    fn out_dim(&self) -> usize {
        OUT_DIM
    }

    fn align(&self) -> Option<&AlignHead> {
        self.align.as_ref()
    }
}

// ---------------------------------------------------------------------------------------
// The table.

/// Mean and sample standard deviation (`n − 1`; 0 for one value) of a metric over seeds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanSd {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation.
    pub sd: f64,
}

impl MeanSd {
    /// Of `values` (`None` when empty).
    pub fn of(values: &[f64]) -> Option<MeanSd> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let sd = if values.len() > 1 {
            (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        Some(MeanSd { mean, sd })
    }
}

impl fmt::Display for MeanSd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.4} ± {:.4}", self.mean, self.sd)
    }
}

/// One trained (or, for TF-IDF, built) encoder of the ablation.
#[derive(Debug, Clone, PartialEq)]
pub struct AblationRun {
    /// The initialisation seed, the negatives' seed (`TrainOptions::seed`) and the test
    /// AUC's negatives' seed.
    pub seed: u64,
    /// Test-edge metrics of the kept weights.
    pub test: LinkMetrics,
    /// Epochs run (0: nothing to train).
    pub epochs: usize,
    /// The epoch whose weights were kept (best validation AUC).
    pub best_epoch: usize,
    /// Mean wall time of a training step (forward, backward, update; evaluation excluded).
    pub seconds_per_epoch: Option<f64>,
}

/// One row of the table: an encoder with or without ImageAlign over every seed.
#[derive(Debug, Clone, PartialEq)]
pub struct AblationRow {
    /// The encoder.
    pub encoder: AblationEncoder,
    /// Trained with ImageAlign.
    pub image_align: bool,
    /// Per seed; empty when the combination does not apply (TF-IDF + ImageAlign).
    pub runs: Vec<AblationRun>,
}

impl AblationRow {
    /// Test AUC over the seeds (`None`: not applicable).
    pub fn auc(&self) -> Option<MeanSd> {
        MeanSd::of(&self.runs.iter().map(|r| r.test.auc).collect::<Vec<_>>())
    }

    /// Test Hit@10 over the seeds (`None`: not applicable).
    pub fn hit10(&self) -> Option<MeanSd> {
        MeanSd::of(&self.runs.iter().map(|r| r.test.hit10).collect::<Vec<_>>())
    }

    /// Mean seconds per epoch over every seed's epochs (`None`: nothing was trained).
    pub fn seconds_per_epoch(&self) -> Option<f64> {
        let (mut total, mut n) = (0.0, 0usize);
        for r in &self.runs {
            if let Some(s) = r.seconds_per_epoch {
                total += s * r.epochs as f64;
                n += r.epochs;
            }
        }
        (n > 0).then(|| total / n as f64)
    }
}

/// What the progress callback of [`run_ablation`] sees.
#[derive(Debug)]
pub enum AblationEvent<'a> {
    /// An epoch of the run finished.
    Epoch(&'a EpochReport),
    /// The run finished and was measured on the test edges.
    Done(&'a AblationRun),
}

/// One progress report of [`run_ablation`].
#[derive(Debug)]
pub struct AblationProgress<'a> {
    /// The encoder being run.
    pub encoder: AblationEncoder,
    /// With ImageAlign.
    pub image_align: bool,
    /// The run's seed.
    pub seed: u64,
    /// What happened.
    pub event: AblationEvent<'a>,
}

/// The ablation: every encoder of `kinds`, without and (when `content` is given and
/// `options.lambda > 0`) with ImageAlign, once per seed of `seeds`, on the training edges of
/// `split` with community `features` (`[S, d]`) and per-user `content` (`[U, k]`). Run `i`
/// of every encoder uses seed `seeds[i]` for the initialisation, the negatives
/// (`TrainOptions::seed`) and the test AUC's negatives, so all encoders see the same split
/// and the same negatives; `options.checkpoint` is ignored (every run would overwrite it).
/// TF-IDF is built, not trained, and its ImageAlign row has no runs. `progress` sees every
/// epoch and every finished run; `false` cancels ([`Error::Cancelled`]).
#[allow(clippy::too_many_arguments)]
pub fn run_ablation(
    graph: &BipartiteGraph,
    split: &EdgeSplit,
    features: &Tensor,
    content: Option<&Tensor>,
    kinds: &[AblationEncoder],
    seeds: &[u64],
    options: &TrainOptions,
    progress: &mut dyn FnMut(&AblationProgress<'_>) -> bool,
) -> Result<Vec<AblationRow>> {
    if kinds.is_empty() || seeds.is_empty() {
        return Err(Error::InvalidInput("ablation: needs at least one encoder and one seed".into()));
    }
    let view = GraphView::new(graph, split, features)?;
    let device = view.x_s.device().clone();
    let feature_dim = view.x_s.dims()[1];
    let content_dim = match content {
        Some(c) if options.lambda > 0.0 => match c.dims() {
            [u, k] if *u == graph.num_users() && *k > 0 => Some(*k),
            dims => {
                return Err(Error::InvalidInput(format!(
                    "ablation: content of shape {dims:?} for {} users",
                    graph.num_users()
                )))
            }
        },
        _ => None,
    };
    let mut rows = Vec::new();
    for &kind in kinds {
        let variants: &[bool] = if content_dim.is_some() { &[false, true] } else { &[false] };
        for &image_align in variants {
            let mut row = AblationRow { encoder: kind, image_align, runs: Vec::new() };
            if image_align && !kind.trainable() {
                rows.push(row);
                continue;
            }
            for &seed in seeds {
                let head = if image_align { content_dim } else { None };
                let encoder = build(kind, graph, feature_dim, head, seed, &device)?;
                let run = if kind.trainable() {
                    let opts = TrainOptions { seed, checkpoint: None, ..options.clone() };
                    let given = if image_align { content } else { None };
                    // A `false` from `progress` makes `train` return `Error::Cancelled`.
                    let trained = train(encoder, graph, split, &view, given, &opts, &mut |r| {
                        progress(&AblationProgress { encoder: kind, image_align, seed, event: AblationEvent::Epoch(r) })
                    })?;
                    let epochs = trained.history.len();
                    let seconds = trained.history.iter().map(|r| r.seconds).sum::<f64>() / epochs.max(1) as f64;
                    AblationRun {
                        seed,
                        test: evaluate(&trained.encoder, &view, graph, split, Part::Test, seed)?,
                        epochs,
                        best_epoch: trained.best_epoch,
                        seconds_per_epoch: (epochs > 0).then_some(seconds),
                    }
                } else {
                    AblationRun {
                        seed,
                        test: evaluate(&encoder, &view, graph, split, Part::Test, seed)?,
                        epochs: 0,
                        best_epoch: 0,
                        seconds_per_epoch: None,
                    }
                };
                if !progress(&AblationProgress { encoder: kind, image_align, seed, event: AblationEvent::Done(&run) }) {
                    return Err(Error::Cancelled("ablation cancelled".into()));
                }
                row.runs.push(run);
            }
            rows.push(row);
        }
    }
    Ok(rows)
}

/// The rows as a markdown table: encoder | ImageAlign | test AUC | Hit@10 | s/epoch, mean ±
/// sample s.d. over the seeds; "—" where a combination does not apply or nothing trained.
pub fn markdown_table(rows: &[AblationRow]) -> String {
    let seeds = rows.iter().map(|r| r.runs.len()).max().unwrap_or(0);
    let mut out = format!(
        "| encoder | ImageAlign | test AUC (mean ± s.d., {seeds} seeds) | Hit@10 (mean ± s.d.) | s/epoch |\n\
         |---|---|---|---|---|\n"
    );
    for r in rows {
        let cell = |m: Option<MeanSd>| m.map_or_else(|| "—".to_string(), |m| m.to_string());
        let secs = match (r.seconds_per_epoch(), r.runs.is_empty()) {
            (Some(s), _) => format!("{s:.3}"),
            (None, false) => "— (no training)".to_string(),
            (None, true) => "—".to_string(),
        };
        let auc = if r.runs.is_empty() && r.image_align { "— (nothing to train)".to_string() } else { cell(r.auc()) };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            r.encoder.label(),
            if r.image_align { "yes" } else { "no" },
            auc,
            cell(r.hit10()),
            secs
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uniform(rng: &mut SplitMix, shape: &[usize], scale: f32) -> Tensor {
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| ((rng.unit() * 2.0 - 1.0) as f32) * scale).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    /// Target 3 has no in-edges, a pair repeats, the input is unsorted.
    fn adjacency() -> Adjacency {
        let edges = [(0u32, 1u32), (4, 2), (1, 1), (2, 0), (4, 2), (3, 1), (5, 4), (0, 4), (6, 1), (2, 2)];
        Adjacency::from_edges(7, 5, &edges).unwrap()
    }

    #[test]
    fn fused_edge_sum_matches_composed_candle_ops_forward_and_gradients() {
        let mut rng = SplitMix(3);
        let slots = Arc::new(Slots::of(&adjacency()));
        let x = Var::from_tensor(&uniform(&mut rng, &[7, 6], 1.0)).unwrap();
        let w = Var::from_tensor(&uniform(&mut rng, &[10, 2], 1.0)).unwrap();
        let g = uniform(&mut rng, &[5, 6], 1.0);
        let fused = edge_sum(&slots, x.as_tensor(), w.as_tensor(), 2).unwrap();
        let composed = edge_sum_composed(&slots, x.as_tensor(), w.as_tensor(), 2).unwrap();
        assert!(max_abs_diff(&fused, &composed) < 1e-6);
        assert_eq!(fused.get(3).unwrap().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
        let gf = (&fused * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let gc = (&composed * &g).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&x, &w] {
            let d = max_abs_diff(gf.get(v).unwrap(), gc.get(v).unwrap());
            assert!(d < 1e-5, "gradient of {:?} differs by {d}", v.dims());
        }
        let bad = uniform(&mut rng, &[6, 6], 1.0);
        assert!(edge_sum(&slots, &bad, w.as_tensor(), 2).is_err());
        assert!(edge_sum(&slots, x.as_tensor(), w.as_tensor(), 4).is_err());
    }

    #[test]
    fn gat_layer_fused_matches_composed_forward_and_gradients() {
        let mut rng = SplitMix(5);
        let slots = Arc::new(Slots::of(&adjacency()));
        for concat in [true, false] {
            let layer = GatLayer::new(4, 3, 2, 3, concat, &mut rng, &Device::Cpu).unwrap();
            layer.bias.set(&uniform(&mut rng, &[layer.bias.dims()[0]], 0.5)).unwrap();
            let xs = uniform(&mut rng, &[7, 4], 3.0);
            let xd = uniform(&mut rng, &[5, 3], 3.0);
            let fused = layer.forward_slots(&slots, &xs, &xd, true).unwrap();
            let composed = layer.forward_slots(&slots, &xs, &xd, false).unwrap();
            assert!(max_abs_diff(&fused, &composed) < 1e-5);
            let g = uniform(&mut rng, fused.dims(), 1.0);
            let gf = (&fused * &g).unwrap().sum_all().unwrap().backward().unwrap();
            let gc = (&composed * &g).unwrap().sum_all().unwrap().backward().unwrap();
            for (name, v) in GAT_PARAM_NAMES.iter().zip(layer.params()) {
                let d = max_abs_diff(gf.get(v).unwrap(), gc.get(v).unwrap());
                assert!(d < 1e-4, "gradient of {name} differs by {d}");
            }
            // Target 3 (no in-edges) is the bias alone.
            assert_eq!(max_abs_diff(&fused.get(3).unwrap(), layer.bias.as_tensor()), 0.0);
        }
    }
}
