//! The persona-mining encoder (SPEC §6): two GATv2 layers in both directions over the
//! bipartite graph of **training** edges, community text features in, user and community
//! embeddings out.
//!
//! ```text
//! x_s = community features (the text embedder's vectors of "name: description")
//! x_u = weighted mean of x_s over u's training edges          (no per-user parameter)
//! h_u = ELU(l1_c2u(x_s → x_u))     h_s = ELU(l1_u2c(x_u → x_s))     H heads concatenated
//! z_u = l2_c2u(h_s → h_u)          z_s = l2_u2c(h_u → h_s)          H heads averaged
//! score(u, s) = z_u · z_s
//! ```
//!
//! Users have no parameters of their own, so the encoder is **inductive**: a user who was
//! not in the training graph is represented from the communities they touch
//! ([`GraphView::new`] over a graph that includes them, same weights).
//!
//! Checkpoints are safetensors with PyTorch Geometric's names (`l1_c2u.lin_l.weight`, …,
//! `align.weight`), so weights trained with PyG (`benches/reference/gatv2_pyg.py`) load
//! here unchanged; the sizes are read from the tensor shapes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var};
use zipp_core::error::{Error, Result};
use zipp_core::rng::SplitMix;

use crate::gatv2::{glorot, Adjacency, Gatv2Layer, PARAM_NAMES};
use crate::graph::BipartiteGraph;
use crate::sample::Block;
use crate::split::{EdgeSplit, Part};

/// Sizes of the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderConfig {
    /// Width of the community features (384 for MiniLM).
    pub feature_dim: usize,
    /// Channels per head of layer 1 (its output is `heads × hidden`).
    pub hidden: usize,
    /// Attention heads of both layers.
    pub heads: usize,
    /// Width of the embeddings `z` (layer 2's channels; heads averaged).
    pub out: usize,
    /// Width of the per-user content embeddings ImageAlign aligns to, if any.
    pub content_dim: Option<usize>,
}

impl EncoderConfig {
    /// The sizes of the issue's reference run: 64 channels × 2 heads → 64.
    pub fn new(feature_dim: usize, content_dim: Option<usize>) -> EncoderConfig {
        EncoderConfig { feature_dim, hidden: 64, heads: 2, out: 64, content_dim }
    }

    fn check(&self) -> Result<()> {
        if self.feature_dim == 0 || self.hidden == 0 || self.heads == 0 || self.out == 0 || self.content_dim == Some(0)
        {
            return Err(Error::InvalidInput(format!("encoder: every size must be positive ({self:?})")));
        }
        Ok(())
    }
}

/// The training graph as the encoder sees it: both adjacencies of the training edges and
/// the users' input features.
#[derive(Debug, Clone)]
pub struct GraphView {
    /// Communities → users (targets are users, slots in the graph's user order).
    pub c2u: Arc<Adjacency>,
    /// Users → communities.
    pub u2c: Arc<Adjacency>,
    /// The graph's edge id of each `c2u` slot.
    pub c2u_edges: Vec<u32>,
    /// The weight of each `c2u` slot divided by its user's total: `x_u = Σ w̃ x_s`.
    pub c2u_mean_weights: Arc<Vec<f32>>,
    /// Community features `[S, d]`.
    pub x_s: Tensor,
    /// User features `[U, d]` (the weighted mean of their training communities' features).
    pub x_u: Tensor,
}

impl GraphView {
    /// The view of `graph`'s edges in `Part::Train` of `split`, with community features
    /// `features` (`[S, d]`, row `s` for community `s`).
    pub fn new(graph: &BipartiteGraph, split: &EdgeSplit, features: &Tensor) -> Result<GraphView> {
        let (s_n, u_n) = (graph.num_communities(), graph.num_users());
        if features.dims().len() != 2 || features.dims()[0] != s_n {
            return Err(Error::InvalidInput(format!(
                "graph view: features of shape {:?} for {s_n} communities",
                features.dims()
            )));
        }
        let d = features.dims()[1];
        let fv = features.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        if let Some(k) = fv.iter().position(|v| !v.is_finite()) {
            return Err(Error::InvalidInput(format!("graph view: community {} has a non-finite feature", k / d)));
        }
        let by_user = graph.by_user();
        let mut ptr = Vec::with_capacity(u_n + 1);
        ptr.push(0usize);
        let mut src = Vec::new();
        let mut edges = Vec::new();
        let mut x_u = vec![0f32; u_n * d];
        let mut mean_w: Vec<f32> = Vec::new();
        for u in 0..u_n {
            let mut total = 0f64;
            let row = &mut x_u[u * d..(u + 1) * d];
            for e in by_user.range(u) {
                if split.part(e) != Part::Train {
                    continue;
                }
                let s = by_user.col[e];
                src.push(s);
                edges.push(e as u32);
                let w = graph.weight(e);
                total += w as f64;
                mean_w.push(w);
                for (x, f) in row.iter_mut().zip(&fv[s as usize * d..(s as usize + 1) * d]) {
                    *x += w * f;
                }
            }
            if total > 0.0 {
                let inv = (1.0 / total) as f32;
                row.iter_mut().for_each(|x| *x *= inv);
                let start = *ptr.last().unwrap_or(&0);
                mean_w[start..].iter_mut().for_each(|w| *w *= inv);
            }
            ptr.push(src.len());
        }
        let c2u = Adjacency::from_csr(s_n, u_n, ptr, src)?;
        let by_c = graph.by_community();
        let eids = graph.by_community_edges();
        let mut ptr = Vec::with_capacity(s_n + 1);
        ptr.push(0usize);
        let mut src = Vec::new();
        for s in 0..s_n {
            for k in by_c.range(s) {
                if split.part(eids[k] as usize) == Part::Train {
                    src.push(by_c.col[k]);
                }
            }
            ptr.push(src.len());
        }
        let u2c = Adjacency::from_csr(u_n, s_n, ptr, src)?;
        let device = features.device();
        Ok(GraphView {
            c2u: Arc::new(c2u),
            u2c: Arc::new(u2c),
            c2u_edges: edges,
            c2u_mean_weights: Arc::new(mean_w),
            x_s: features.to_dtype(DType::F32)?,
            x_u: Tensor::from_vec(x_u, (u_n, d), device)?,
        })
    }
}

/// What the trainer needs of an encoder: embeddings of users and communities from a
/// [`GraphView`], its parameters by name, and (optionally) an ImageAlign head. The GATv2
/// [`Encoder`] is the method; the ablation encoders implement the same trait, so every
/// encoder is trained and measured by the same code.
pub trait GraphEncoder: Send + Sync {
    /// Short name for tables ("gatv2", "lightgcn" …).
    fn name(&self) -> &str;
    /// `(z_u [U, out], z_s [S, out])`.
    fn forward(&self, view: &GraphView) -> Result<(Tensor, Tensor)>;
    /// `(z_u [|U2|, out], z_s [|S2|, out])` for a sampled [`Block`] (mini-batch training);
    /// encoders that cannot train on sampled neighbourhoods say so.
    fn forward_block(&self, view: &GraphView, block: &Block) -> Result<(Tensor, Tensor)> {
        let _ = (view, block);
        Err(Error::InvalidInput(format!("the {} encoder does not train on sampled mini-batches", self.name())))
    }
    /// Every trainable parameter with its checkpoint name (may be empty: a fixed encoder).
    fn named_vars(&self) -> Vec<(String, Var)>;
    /// Width of the embeddings.
    fn out_dim(&self) -> usize;
    /// ImageAlign's projection, if the encoder has one.
    fn align(&self) -> Option<&AlignHead>;
    /// Writes the parameters as safetensors.
    fn save(&self, path: &Path) -> Result<()> {
        let map: HashMap<String, Tensor> =
            self.named_vars().into_iter().map(|(n, v)| (n, v.as_tensor().clone())).collect();
        candle_core::safetensors::save(&map, path)
            .map_err(|e| Error::Compute(format!("writing {}: {e}", path.display())))
    }
}

impl GraphEncoder for Encoder {
    fn name(&self) -> &str {
        "gatv2"
    }
    fn forward(&self, view: &GraphView) -> Result<(Tensor, Tensor)> {
        Encoder::forward(self, view)
    }
    fn forward_block(&self, view: &GraphView, block: &Block) -> Result<(Tensor, Tensor)> {
        Encoder::forward_block(self, view, block)
    }
    fn named_vars(&self) -> Vec<(String, Var)> {
        Encoder::named_vars(self)
    }
    fn out_dim(&self) -> usize {
        self.config.out
    }
    fn align(&self) -> Option<&AlignHead> {
        self.align.as_ref()
    }
}

/// The encoder: four GATv2 layers and the ImageAlign projection. `clone()` copies the
/// weights (training one copy leaves the other as it was).
#[derive(Debug, Clone)]
pub struct Encoder {
    config: EncoderConfig,
    /// Layer 1, communities → users.
    pub l1_c2u: Gatv2Layer,
    /// Layer 1, users → communities.
    pub l1_u2c: Gatv2Layer,
    /// Layer 2, communities → users.
    pub l2_c2u: Gatv2Layer,
    /// Layer 2, users → communities.
    pub l2_u2c: Gatv2Layer,
    /// ImageAlign's projection `z_u → content` (`weight [content_dim, out]`, `bias`).
    pub align: Option<AlignHead>,
}

/// ImageAlign's projection: `weight [content_dim, out]`, `bias [content_dim]`.
#[derive(Debug)]
pub struct AlignHead(pub Var, pub Var);

impl Clone for AlignHead {
    fn clone(&self) -> Self {
        AlignHead(crate::gatv2::copy_var(&self.0), crate::gatv2::copy_var(&self.1))
    }
}

/// The four layers' names, in order.
pub const LAYER_NAMES: [&str; 4] = ["l1_c2u", "l1_u2c", "l2_c2u", "l2_u2c"];

impl Encoder {
    /// A freshly initialised encoder (Glorot weights, zero biases), from `seed`.
    pub fn new(config: EncoderConfig, seed: u64, device: &Device) -> Result<Encoder> {
        config.check()?;
        let mut rng = SplitMix(seed);
        let (d, h, c, o) = (config.feature_dim, config.heads, config.hidden, config.out);
        let l1_c2u = Gatv2Layer::new(d, d, h, c, true, &mut rng, device)?;
        let l1_u2c = Gatv2Layer::new(d, d, h, c, true, &mut rng, device)?;
        let l2_c2u = Gatv2Layer::new(h * c, h * c, h, o, false, &mut rng, device)?;
        let l2_u2c = Gatv2Layer::new(h * c, h * c, h, o, false, &mut rng, device)?;
        let align = match config.content_dim {
            Some(k) => {
                let w = Tensor::from_vec(glorot(&mut rng, o, k, k * o), (k, o), device)?;
                Some(AlignHead(Var::from_tensor(&w)?, Var::from_tensor(&Tensor::zeros(k, DType::F32, device)?)?))
            }
            None => None,
        };
        Ok(Encoder { config, l1_c2u, l1_u2c, l2_c2u, l2_u2c, align })
    }

    /// The sizes.
    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    fn layers(&self) -> [&Gatv2Layer; 4] {
        [&self.l1_c2u, &self.l1_u2c, &self.l2_c2u, &self.l2_u2c]
    }

    /// Every parameter with its checkpoint name.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        for (name, layer) in LAYER_NAMES.iter().zip(self.layers()) {
            for (p, v) in PARAM_NAMES.iter().zip(layer.params()) {
                out.push((format!("{name}.{p}"), v.clone()));
            }
        }
        if let Some(AlignHead(w, b)) = &self.align {
            out.push(("align.weight".into(), w.clone()));
            out.push(("align.bias".into(), b.clone()));
        }
        out
    }

    /// Layer 1's outputs `(h_u, h_s)` after ELU.
    fn layer1(&self, view: &GraphView) -> Result<(Tensor, Tensor)> {
        let h_u = self.l1_c2u.forward_elu(&view.c2u, &view.x_s, &view.x_u)?;
        let h_s = self.l1_u2c.forward_elu(&view.u2c, &view.x_u, &view.x_s)?;
        Ok((h_u, h_s))
    }

    /// `(z_u [U, out], z_s [S, out])`.
    pub fn forward(&self, view: &GraphView) -> Result<(Tensor, Tensor)> {
        let (h_u, h_s) = self.layer1(view)?;
        let z_u = self.l2_c2u.forward(&view.c2u, &h_s, &h_u)?;
        let z_s = self.l2_u2c.forward(&view.u2c, &h_u, &h_s)?;
        Ok((z_u, z_s))
    }

    /// `(z_u, z_s)` of a sampled block's scored users (U2) and communities (S2).
    ///
    /// The users' input projections use linearity ([`user_projection`]): `x_u` is a weighted
    /// mean of community features, so `W x_u + b = Σ w̃ (W x_s + b)` — the communities are
    /// projected once and a sampled user costs its degree × `H·C` instead of `d × H·C`
    /// (users with more than [`DENSE_USER_DEGREE`] communities take the `d × H·C` row).
    /// Exact, not an approximation: the same numbers as [`Encoder::forward`] up to float
    /// rounding.
    pub fn forward_block(&self, view: &GraphView, block: &Block) -> Result<(Tensor, Tensor)> {
        let dev = view.x_s.device();
        let ids = |v: &[u32]| Tensor::from_vec(v.to_vec(), v.len(), dev);
        let [u2, u1, u0] = &block.users;
        let [s2, s1, s0] = &block.communities;
        let proj = |x: &Tensor, w: &Var| x.matmul(&w.t()?);
        let (a, b) = (&self.l1_c2u, &self.l1_u2c);
        // Layer 1 (biases, ELU and the prefix targets are the fused op's: module docs of
        // `gatv2`).
        let xl = proj(&view.x_s.index_select(&ids(s0)?, 0)?, &a.lin_l_weight)?;
        let xr = user_projection(view, a.lin_r_weight.as_tensor(), None, u1)?;
        let h_u = a.forward_projected(&block.l1_c2u, xl, xr, true)?;
        let xl = user_projection(view, b.lin_l_weight.as_tensor(), None, u0)?;
        let xr = proj(&view.x_s.index_select(&ids(s1)?, 0)?, &b.lin_r_weight)?;
        let h_s = b.forward_projected(&block.l1_u2c, xl, xr, true)?;
        // Layer 2: U2 is a prefix of U1 and S2 of S1.
        let (c, d) = (&self.l2_c2u, &self.l2_u2c);
        let z_u =
            c.forward_projected(&block.l2_c2u, proj(&h_s, &c.lin_l_weight)?, proj(&h_u, &c.lin_r_weight)?, false)?;
        let z_s =
            d.forward_projected(&block.l2_u2c, proj(&h_u, &d.lin_l_weight)?, proj(&h_s, &d.lin_r_weight)?, false)?;
        debug_assert_eq!((z_u.dims()[0], z_s.dims()[0]), (u2.len(), s2.len()));
        Ok((z_u, z_s))
    }

    /// The last layer's attention of each user over their training communities, averaged
    /// over heads, in `view.c2u` slot order (no gradient).
    pub fn user_attention(&self, view: &GraphView) -> Result<Vec<f32>> {
        let (h_u, h_s) = self.layer1(view)?;
        let alpha = self.l2_c2u.coefficients(&view.c2u, &h_s, &h_u)?;
        let h = self.config.heads;
        Ok(alpha.chunks(h).map(|a| a.iter().sum::<f32>() / h as f32).collect())
    }

    /// Writes the weights as safetensors (PyG's names).
    pub fn save(&self, path: &Path) -> Result<()> {
        GraphEncoder::save(self, path)
    }

    /// Reads weights written by [`Encoder::save`] or by the PyG reference (`att` may be
    /// PyG's `[1, H, C]`). The sizes come from the shapes; every tensor is checked.
    pub fn load(path: &Path, device: &Device) -> Result<Encoder> {
        let invalid = |m: String| Error::ModelInvalid {
            model: "zipp-graph encoder".into(),
            path: path.to_path_buf(),
            message: m,
            hint: "write it with Encoder::save or benches/reference/gatv2_pyg.py --save-weights".into(),
        };
        if !path.is_file() {
            return Err(Error::ModelNotFound {
                model: "zipp-graph encoder".into(),
                path: path.to_path_buf(),
                hint: "train one (zipp_graph::train) or export PyG weights".into(),
            });
        }
        let mut map = candle_core::safetensors::load(path, device).map_err(|e| invalid(e.to_string()))?;
        let mut take = |name: &str| -> Result<Tensor> {
            let t = map.remove(name).ok_or_else(|| invalid(format!("no tensor {name}")))?;
            let t = t.to_dtype(DType::F32)?;
            let v = t.flatten_all()?.to_vec1::<f32>()?;
            if v.iter().any(|x| !x.is_finite()) {
                return Err(invalid(format!("{name} has non-finite values")));
            }
            Ok(t)
        };
        let shape_of = |t: &Tensor| t.dims().to_vec();
        let w = take("l1_c2u.lin_l.weight")?;
        let a1 = take("l1_c2u.att")?;
        let a2 = take("l2_c2u.att")?;
        let (hc, d) = match shape_of(&w)[..] {
            [hc, d] => (hc, d),
            _ => return Err(invalid("l1_c2u.lin_l.weight is not a matrix".into())),
        };
        let heads = *a1.dims().iter().rev().nth(1).unwrap_or(&0);
        let out = *a2.dims().last().unwrap_or(&0);
        if heads == 0 || hc % heads != 0 {
            return Err(invalid(format!("l1_c2u.att of shape {:?} does not fit {hc} channels", a1.dims())));
        }
        let align_w = take("align.weight").ok();
        let content_dim = align_w.as_ref().map(|t| t.dims()[0]);
        let config = EncoderConfig { feature_dim: d, hidden: hc / heads, heads, out, content_dim };
        let enc = Encoder::new(config, 0, device)?;
        let mut given: HashMap<String, Tensor> = HashMap::new();
        given.insert("l1_c2u.lin_l.weight".into(), w);
        given.insert("l1_c2u.att".into(), a1);
        given.insert("l2_c2u.att".into(), a2);
        if let Some(t) = align_w {
            given.insert("align.weight".into(), t);
        }
        for (name, var) in enc.named_vars() {
            let t = match given.remove(&name) {
                Some(t) => t,
                None => take(&name)?,
            };
            let t = if name.ends_with(".att") && t.rank() == 3 { t.squeeze(0)? } else { t };
            if t.dims() != var.dims() {
                return Err(invalid(format!("{name} has shape {:?}, expected {:?}", t.dims(), var.dims())));
            }
            var.set(&t)?;
        }
        if let Some(extra) = map.keys().next() {
            return Err(invalid(format!("unexpected tensor {extra}")));
        }
        Ok(enc)
    }
}

/// Users with more training communities than this are projected from their own feature
/// row (`x_u · Wᵀ`, one GEMM row of `d × C`) instead of through their communities'
/// projections (`degree × C` scattered multiply-adds): past ~64 the GEMM row is cheaper.
/// Edge-sampled batches are degree-biased, so on a power-law graph the few heavy users hold
/// most of a batch's user-community slots (1M-user graph, 262,144-edge batch: 28k of 225k
/// users, 7.6M of 11.0M slots).
pub const DENSE_USER_DEGREE: usize = 64;

/// `out[k] = Σ_{s ∈ N(users[k])} w̃_{us} p[s]` over each user's training communities
/// (`view.c2u`, weights `view.c2u_mean_weights`): the users' rows of `x_u · Wᵀ` from the
/// communities' rows `p = x_s · Wᵀ`. Differentiable in `p` (CPU f32: a fused op; elsewhere
/// candle gathers).
pub fn user_mean(view: &GraphView, p: &Tensor, users: &[u32]) -> Result<Tensor> {
    check_users(view, users, "user mean")?;
    let q = Tensor::zeros((0, p.dims().get(1).copied().unwrap_or(0)), p.dtype(), p.device())?;
    user_rows(view, p, &q, users, &vec![u32::MAX; users.len()])
}

/// An error naming `what` unless every user is one of `view`'s.
fn check_users(view: &GraphView, users: &[u32], what: &str) -> Result<()> {
    let n_users = view.c2u.n_dst();
    match users.iter().find(|&&u| u as usize >= n_users) {
        Some(&u) => Err(Error::InvalidInput(format!("{what}: user {u} out of range ({n_users} users)"))),
        None => Ok(()),
    }
}

/// The users' projections `x_u · Wᵀ (+ b)` for the layer weights `w` `[C, d]`, `b` `[C]`,
/// each computed the cheaper way: a user with at most [`DENSE_USER_DEGREE`] training
/// communities as the weighted mean of the communities' projections (`x_u` is a weighted
/// mean, so `W x_u + b = Σ w̃ (W x_s + b)`: exact, not an approximation), a heavier user
/// (or one with no training community, whose mean is empty) from their row of
/// `view.x_u`. Differentiable in `w` and `b`.
pub fn user_projection(view: &GraphView, w: &Tensor, b: Option<&Tensor>, users: &[u32]) -> Result<Tensor> {
    check_users(view, users, "user projection")?;
    let ptr = view.c2u.ptr();
    let mut dense = Vec::new();
    let route: Vec<u32> = users
        .iter()
        .map(|&u| {
            let degree = ptr[u as usize + 1] - ptr[u as usize];
            if degree == 0 || degree > DENSE_USER_DEGREE {
                dense.push(u);
                (dense.len() - 1) as u32
            } else {
                u32::MAX
            }
        })
        .collect();
    let n_dense = dense.len();
    let ids = Tensor::from_vec(dense, n_dense, view.x_u.device())?;
    let (mut p, mut q) = (view.x_s.matmul(&w.t()?)?, view.x_u.index_select(&ids, 0)?.matmul(&w.t()?)?);
    if let Some(b) = b {
        (p, q) = (p.broadcast_add(b)?, q.broadcast_add(b)?);
    }
    user_rows(view, &p, &q, users, &route)
}

/// Row `k` of the result: `q[route[k]]` where `route[k]` is set, else the weighted mean of
/// `p`'s rows over `users[k]`'s training communities. `users` are in range (the callers
/// check them: [`check_users`]).
fn user_rows(view: &GraphView, p: &Tensor, q: &Tensor, users: &[u32], route: &[u32]) -> Result<Tensor> {
    if p.dims().len() != 2 || p.dims()[0] != view.c2u.n_src() {
        return Err(Error::InvalidInput(format!(
            "user mean: rows of shape {:?} for {} communities",
            p.dims(),
            view.c2u.n_src()
        )));
    }
    let op = UserRows {
        adj: view.c2u.clone(),
        weights: view.c2u_mean_weights.clone(),
        users: Arc::new(users.to_vec()),
        route: Arc::new(route.to_vec()),
    };
    if p.device().is_cpu() && p.dtype() == DType::F32 {
        return Ok(p.contiguous()?.apply_op2(&q.contiguous()?, op)?);
    }
    // Other devices: gather the slots, weight them, sum per user; then the dense rows.
    let (mut slot, mut owner, mut w) = (Vec::new(), Vec::new(), Vec::new());
    let (mut dense_pos, mut dense_row) = (Vec::new(), Vec::new());
    for (k, (&u, &r)) in users.iter().zip(route).enumerate() {
        if r != u32::MAX {
            dense_pos.push(k as u32);
            dense_row.push(r);
            continue;
        }
        for e in op.adj.ptr()[u as usize]..op.adj.ptr()[u as usize + 1] {
            slot.push(op.adj.src()[e]);
            owner.push(k as u32);
            w.push(op.weights[e]);
        }
    }
    let dev = p.device();
    let n = slot.len();
    let rows = p.index_select(&Tensor::from_vec(slot, n, dev)?, 0)?;
    let rows = rows.broadcast_mul(&Tensor::from_vec(w, (n, 1), dev)?.to_dtype(p.dtype())?)?;
    let zeros = Tensor::zeros((users.len(), p.dims()[1]), p.dtype(), dev)?;
    let out = zeros.index_add(&Tensor::from_vec(owner, n, dev)?, &rows, 0)?;
    if dense_pos.is_empty() {
        return Ok(out);
    }
    let m = dense_pos.len();
    let picked = q.index_select(&Tensor::from_vec(dense_row, m, dev)?, 0)?;
    Ok(out.index_add(&Tensor::from_vec(dense_pos, m, dev)?, &picked, 0)?)
}

#[derive(Debug, Clone)]
struct UserRows {
    adj: Arc<Adjacency>,
    weights: Arc<Vec<f32>>,
    users: Arc<Vec<u32>>,
    /// Per user: a row of `q`, or `u32::MAX` for the mean of `p`'s rows.
    route: Arc<Vec<u32>>,
}

impl candle_core::CustomOp2 for UserRows {
    fn name(&self) -> &'static str {
        "zipp-user-rows"
    }

    fn cpu_fwd(
        &self,
        s1: &candle_core::CpuStorage,
        l1: &candle_core::Layout,
        s2: &candle_core::CpuStorage,
        l2: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use rayon::prelude::*;
        let p = crate::gatv2::contiguous_f32(s1, l1, "user mean: rows")?;
        let q = crate::gatv2::contiguous_f32(s2, l2, "user mean: dense rows")?;
        let c = l1.dims()[1];
        if l2.dims().len() != 2 || l2.dims()[1] != c {
            candle_core::bail!("user mean: dense rows of shape {:?} for {c} channels", l2.dims());
        }
        let mut out = vec![0f32; self.users.len() * c];
        out.par_chunks_mut(c).zip(self.users.par_iter().zip(self.route.par_iter())).with_min_len(64).for_each(
            |(o, (&u, &r))| {
                if r != u32::MAX {
                    o.copy_from_slice(&q[r as usize * c..(r as usize + 1) * c]);
                    return;
                }
                for e in self.adj.ptr()[u as usize]..self.adj.ptr()[u as usize + 1] {
                    let (s, w) = (self.adj.src()[e] as usize, self.weights[e]);
                    o.iter_mut().zip(&p[s * c..(s + 1) * c]).for_each(|(o, x)| *o += w * x);
                }
            },
        );
        Ok((candle_core::CpuStorage::F32(out), candle_core::Shape::from((self.users.len(), c))))
    }

    fn bwd(
        &self,
        p: &Tensor,
        q: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        use rayon::prelude::*;
        let (s_n, c) = p.dims2()?;
        let g = crate::gatv2::F32Values::of(g)?;
        let g = g.as_slice();
        // Users split into four chunks, each summing into its own dense ∂p, then summed in
        // chunk order: the same float order whatever the thread count.
        let chunks = 4;
        let per = self.users.len().div_ceil(chunks).max(1);
        let parts: Vec<Vec<f32>> = self
            .users
            .par_chunks(per)
            .enumerate()
            .map(|(k, users)| {
                let mut dp = vec![0f32; s_n * c];
                for (i, &u) in users.iter().enumerate() {
                    if self.route[k * per + i] != u32::MAX {
                        continue;
                    }
                    let gi = &g[(k * per + i) * c..(k * per + i + 1) * c];
                    for e in self.adj.ptr()[u as usize]..self.adj.ptr()[u as usize + 1] {
                        let (s, w) = (self.adj.src()[e] as usize, self.weights[e]);
                        dp[s * c..(s + 1) * c].iter_mut().zip(gi).for_each(|(d, g)| *d += w * g);
                    }
                }
                dp
            })
            .collect();
        let mut dp = vec![0f32; s_n * c];
        for part in parts {
            dp.iter_mut().zip(part).for_each(|(a, b)| *a += b);
        }
        // ∂q: each dense row is some user's gradient row (a row may serve several users).
        let mut dq = vec![0f32; q.dims()[0] * c];
        for (k, &r) in self.route.iter().enumerate() {
            if r != u32::MAX {
                let r = r as usize;
                dq[r * c..(r + 1) * c].iter_mut().zip(&g[k * c..(k + 1) * c]).for_each(|(d, g)| *d += g);
            }
        }
        Ok((Some(Tensor::from_vec(dp, (s_n, c), p.device())?), Some(Tensor::from_vec(dq, q.dims(), q.device())?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::GraphBuilder;
    use candle_core::Device;

    #[test]
    fn user_mean_matches_candle_gathers_forward_and_gradient() {
        let mut b = GraphBuilder::new();
        for s in 0..6 {
            b.community(&format!("c{s}"), "").unwrap();
        }
        for u in 0..5u32 {
            b.user(&format!("u{u}")).unwrap();
            for k in 0..u {
                b.edge(u, (u + 2 * k) % 6, 1.0 + k as f32, None).unwrap();
            }
        }
        let g = b.build().unwrap();
        let x = Tensor::arange(0f32, 24.0, &Device::Cpu).unwrap().reshape((6, 4)).unwrap();
        let view = GraphView::new(&g, &EdgeSplit::all_train(&g), &x).unwrap();
        // With p = x_s the mean is x_u itself (user 0 has no edge: zeros).
        let users = [4u32, 0, 2, 4];
        let direct = user_mean(&view, &view.x_s, &users).unwrap();
        let ids = Tensor::new(&users[..], &Device::Cpu).unwrap();
        let want = view.x_u.index_select(&ids, 0).unwrap();
        let d = (&direct - &want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(d < 1e-4, "{d}");
        // Gradient: the fused op (f32) against candle's gathers (the f64 path).
        let p = Var::from_tensor(&(x.clone() * 0.1).unwrap()).unwrap();
        let gw = Tensor::arange(0f32, 16.0, &Device::Cpu).unwrap().reshape((4, 4)).unwrap();
        let fused = user_mean(&view, p.as_tensor(), &users).unwrap();
        let grads = (&fused * &gw).unwrap().sum_all().unwrap().backward().unwrap();
        let p64 = Var::from_tensor(&p.as_tensor().to_dtype(DType::F64).unwrap()).unwrap();
        let composed = user_mean(&view, p64.as_tensor(), &users).unwrap();
        let g64 = (&composed * gw.to_dtype(DType::F64).unwrap()).unwrap().sum_all().unwrap().backward().unwrap();
        let a = grads.get(&p).unwrap().to_dtype(DType::F64).unwrap();
        let b = g64.get(&p64).unwrap();
        let d = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
        assert!(d < 1e-4, "{d}");
        assert!(user_mean(&view, &view.x_s, &[5]).is_err());
    }

    #[test]
    fn user_projection_takes_both_paths_and_matches_the_dense_projection() {
        // 90 communities; user 0 has none, user 1 three, user 2 all 90 (> DENSE_USER_DEGREE).
        let mut b = GraphBuilder::new();
        for s in 0..90 {
            b.community(&format!("c{s}"), "").unwrap();
        }
        for (u, degree) in [0u32, 3, 90].into_iter().enumerate() {
            b.user(&format!("u{u}")).unwrap();
            for s in 0..degree {
                b.edge(u as u32, (s * 7) % 90, 1.0 + (s % 4) as f32, None).unwrap();
            }
        }
        let g = b.build().unwrap();
        let dev = Device::Cpu;
        let x =
            (Tensor::arange(0f32, 90.0 * 5.0, &dev).unwrap().reshape((90, 5)).unwrap() * 0.01).unwrap().sin().unwrap();
        let view = GraphView::new(&g, &EdgeSplit::all_train(&g), &x).unwrap();
        let w = Var::from_tensor(&(Tensor::arange(0f32, 15.0, &dev).unwrap().reshape((3, 5)).unwrap() * 0.1).unwrap())
            .unwrap();
        let bias = Var::from_tensor(&Tensor::new(&[0.5f32, -1.0, 2.0], &dev).unwrap()).unwrap();
        let users = [2u32, 1, 0, 2, 1];
        let got = user_projection(&view, w.as_tensor(), Some(bias.as_tensor()), &users).unwrap();
        // Reference: x_u rows · Wᵀ + b, all dense.
        let ids = Tensor::new(&users[..], &dev).unwrap();
        let want = view
            .x_u
            .index_select(&ids, 0)
            .unwrap()
            .matmul(&w.as_tensor().t().unwrap())
            .unwrap()
            .broadcast_add(bias.as_tensor())
            .unwrap();
        let d = (&got - &want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(d < 1e-4, "{d}");
        // Gradients in W and b agree too.
        let gw = Tensor::arange(0f32, 15.0, &dev).unwrap().reshape((5, 3)).unwrap();
        let g1 = (&got * &gw).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (&want * &gw).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&w, &bias] {
            let (a, b) = (g1.get(v).unwrap(), g2.get(v).unwrap());
            let d = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(d < 1e-3, "{d}");
        }
        // The heavy user really went the dense way and the light one the mean way.
        assert!(view.c2u.ptr()[3] - view.c2u.ptr()[2] > DENSE_USER_DEGREE);
        assert!(user_projection(&view, w.as_tensor(), None, &[3]).is_err());
    }
}
