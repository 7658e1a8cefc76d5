//! Training the encoder (SPEC §6): link prediction + λ · ImageAlign, AdamW, full batch.
//!
//! - **Link prediction**: binary cross-entropy with logits on `z_u · z_s` for every
//!   training edge (label 1) and, per training edge, one community drawn uniformly for the
//!   same user (label 0), fresh every epoch from a stream seeded by `(seed, epoch)`; the mean
//!   over all `2 · E_train` terms.
//! - **ImageAlign**: InfoNCE (temperature τ, in-batch negatives) between
//!   `normalize(W z_u + b)` and `normalize(content_u)` over the users that have training
//!   edges and content, the diagonal as targets. On MovieLens the "content" is the mean
//!   MiniLM embedding of the user's rated movies' titles and genres (text, not images).
//! - **Early stopping** on validation AUC (when the split has validation edges): the
//!   weights of the best epoch are kept, and training stops after `patience` evaluations
//!   without improvement.
//!
//! Same inputs, options and thread count → the same weights: initialisation and negatives
//! come from zipp's seeded streams, and the kernels sum in a fixed order per thread layout.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor, Var, D};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use rayon::prelude::*;
use zipp_core::error::{Error, Result};
use zipp_core::rng::SplitMix;

use crate::gatv2::contiguous_f32;
use crate::graph::BipartiteGraph;
use crate::metrics::{link_metrics, Embeddings, LinkMetrics};
use crate::model::{Encoder, GraphEncoder, GraphView};
use crate::sample::{MiniBatchOptions, Sampler};
use crate::split::{EdgeSplit, Part};

/// How to train.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOptions {
    /// Most epochs.
    pub epochs: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Weight λ of ImageAlign (0 turns it off; ignored without content).
    pub lambda: f64,
    /// InfoNCE temperature τ.
    pub tau: f64,
    /// Seed of the negatives (the encoder's initialisation has its own).
    pub seed: u64,
    /// Evaluate validation AUC every this many epochs (0: never).
    pub eval_every: usize,
    /// Stop after this many evaluations without a better validation AUC (0: never stop
    /// early).
    pub patience: usize,
    /// Write the best weights here (safetensors) whenever they improve.
    pub checkpoint: Option<PathBuf>,
    /// Neighbour-sampled mini-batches ([`crate::sample`]); `None` trains full batch (one
    /// step per epoch over the whole training graph).
    pub mini_batch: Option<MiniBatchOptions>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            epochs: 100,
            lr: 0.005,
            weight_decay: 0.01,
            lambda: 0.5,
            tau: 0.07,
            seed: 0,
            eval_every: 5,
            patience: 0,
            checkpoint: None,
            mini_batch: None,
        }
    }
}

impl TrainOptions {
    /// Checks the options [`train`] checks before it starts (positive finite `lr` and `tau`,
    /// non-negative `weight_decay` and `lambda`, positive batch size and fanouts), so a caller
    /// can refuse them before loading anything.
    pub fn check(&self) -> Result<()> {
        let pos = |x: f64| x.is_finite() && x > 0.0;
        if !(pos(self.lr) && pos(self.tau) && self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::InvalidInput(format!(
                "train: lr {}, tau {} must be positive and weight decay {} ≥ 0",
                self.lr, self.tau, self.weight_decay
            )));
        }
        if !(self.lambda.is_finite() && self.lambda >= 0.0) {
            return Err(Error::InvalidInput(format!("train: lambda {} must be ≥ 0", self.lambda)));
        }
        if let Some(m) = &self.mini_batch {
            m.check()?;
        }
        Ok(())
    }
}

/// One epoch's numbers, passed to the progress callback.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochReport {
    /// 1-based.
    pub epoch: usize,
    /// Total loss.
    pub loss: f64,
    /// Link-prediction part.
    pub link_loss: f64,
    /// ImageAlign part (before λ), when it ran.
    pub align_loss: Option<f64>,
    /// Validation metrics, on evaluation epochs.
    pub validation: Option<LinkMetrics>,
    /// Wall time of the training step (forward, backward, update).
    pub seconds: f64,
}

/// The result: the encoder (best weights when validation ran) and the history.
#[derive(Debug)]
pub struct Trained<E = Encoder> {
    /// The trained encoder.
    pub encoder: E,
    /// One report per epoch run.
    pub history: Vec<EpochReport>,
    /// The epoch whose weights were kept.
    pub best_epoch: usize,
}

/// Numerically stable `log(1 + exp(x))`.
fn softplus(x: &Tensor) -> Result<Tensor> {
    Ok((x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?)
}

/// `score[k] = z_u[users[k]] · z_s[communities[k]]` as one candle op with its backward, so
/// no `pairs × dim` tensor is gathered (the composed version allocates four of them per
/// epoch). f32 on CPU.
#[derive(Debug, Clone)]
struct PairScores {
    users: Arc<Vec<u32>>,
    communities: Arc<Vec<u32>>,
}

impl CustomOp2 for PairScores {
    fn name(&self) -> &'static str {
        "zipp-pair-scores"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (zu, zs) = (contiguous_f32(s1, l1, "pair scores: z_u")?, contiguous_f32(s2, l2, "pair scores: z_s")?);
        let d = l1.dims()[1];
        let out: Vec<f32> = self
            .users
            .par_iter()
            .zip(self.communities.par_iter())
            .with_min_len(4096)
            .map(|(&u, &s)| {
                let (a, b) = (&zu[u as usize * d..(u as usize + 1) * d], &zs[s as usize * d..(s as usize + 1) * d]);
                a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>()
            })
            .collect();
        let n = out.len();
        Ok((CpuStorage::F32(out), Shape::from(n)))
    }

    fn bwd(
        &self,
        zu_t: &Tensor,
        zs_t: &Tensor,
        _res: &Tensor,
        g_t: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        use crate::gatv2::F32Values;
        let (zu, zs, g) = (F32Values::of(zu_t)?, F32Values::of(zs_t)?, F32Values::of(g_t)?);
        let (zu, zs, g) = (zu.as_slice(), zs.as_slice(), g.as_slice());
        let d = zu_t.dims()[1];
        let (mut du, mut ds) = (vec![0f32; zu.len()], vec![0f32; zs.len()]);
        // Two independent scatters, one per thread.
        rayon::join(
            || {
                for ((&u, &s), &g) in self.users.iter().zip(self.communities.iter()).zip(g) {
                    let (u, s) = (u as usize, s as usize);
                    du[u * d..(u + 1) * d].iter_mut().zip(&zs[s * d..(s + 1) * d]).for_each(|(a, b)| *a += g * b);
                }
            },
            || {
                for ((&u, &s), &g) in self.users.iter().zip(self.communities.iter()).zip(g) {
                    let (u, s) = (u as usize, s as usize);
                    ds[s * d..(s + 1) * d].iter_mut().zip(&zu[u * d..(u + 1) * d]).for_each(|(a, b)| *a += g * b);
                }
            },
        );
        Ok((
            Some(Tensor::from_vec(du, zu_t.dims(), zu_t.device())?),
            Some(Tensor::from_vec(ds, zs_t.dims(), zs_t.device())?),
        ))
    }
}

/// Dot products of the `(user, community)` pairs (`z_u[users[k]] · z_s[communities[k]]`),
/// differentiable: the fused op on CPU f32, gathers elsewhere.
pub fn pair_scores(z_u: &Tensor, z_s: &Tensor, users: &Arc<Vec<u32>>, communities: &Arc<Vec<u32>>) -> Result<Tensor> {
    if z_u.device().is_cpu() && z_u.dtype() == DType::F32 {
        let op = PairScores { users: users.clone(), communities: communities.clone() };
        return Ok(z_u.contiguous()?.apply_op2(&z_s.contiguous()?, op)?);
    }
    let dev = z_u.device();
    let u = Tensor::from_vec(users.to_vec(), users.len(), dev)?;
    let s = Tensor::from_vec(communities.to_vec(), communities.len(), dev)?;
    Ok((z_u.index_select(&u, 0)? * z_s.index_select(&s, 0)?)?.sum(D::Minus1)?)
}

/// The encoder's embeddings as plain vectors `(users, communities)`.
pub fn embed(encoder: &dyn GraphEncoder, view: &GraphView) -> Result<(Vec<f32>, Vec<f32>)> {
    let (z_u, z_s) = encoder.forward(view)?;
    Ok((z_u.flatten_all()?.to_vec1::<f32>()?, z_s.flatten_all()?.to_vec1::<f32>()?))
}

/// Metrics of `part` for `encoder`.
pub fn evaluate(
    encoder: &dyn GraphEncoder,
    view: &GraphView,
    graph: &BipartiteGraph,
    split: &EdgeSplit,
    part: Part,
    seed: u64,
) -> Result<LinkMetrics> {
    let (u, s) = embed(encoder, view)?;
    let emb = Embeddings { users: &u, communities: &s, dim: encoder.out_dim() };
    link_metrics(graph, split, part, &emb, seed, usize::MAX)
}

/// ImageAlign's users (global indices, ascending), their normalised content rows, and the
/// row of each user (`u32::MAX`: not aligned).
struct Align {
    users: Vec<u32>,
    content: Tensor,
    row: Vec<u32>,
}

/// The scored pairs of one step: indices into `z_u` / `z_s`, and −1 (positive) / +1
/// (negative) per pair.
struct BatchPairs<'a> {
    users: &'a Arc<Vec<u32>>,
    communities: &'a Arc<Vec<u32>>,
    signs: &'a Tensor,
}

/// The loss of one step: `(total, link part, ImageAlign part)`. `aligned`: rows of `z_u` to
/// align and their normalised content (the diagonal is the target).
fn batch_loss(
    encoder: &dyn GraphEncoder,
    z_u: &Tensor,
    z_s: &Tensor,
    pairs: &BatchPairs<'_>,
    aligned: Option<(&Vec<u32>, &Tensor)>,
    options: &TrainOptions,
) -> Result<(Tensor, f64, Option<f64>)> {
    let scores = pair_scores(z_u, z_s, pairs.users, pairs.communities)?;
    let link = softplus(&(scores * pairs.signs)?)?.mean_all()?;
    let link_v = link.to_scalar::<f32>()? as f64;
    match (aligned, encoder.align()) {
        (Some((rows, content)), Some(crate::model::AlignHead(w, b))) => {
            let dev = z_u.device();
            let idx = Tensor::from_vec(rows.clone(), rows.len(), dev)?;
            let p = z_u.index_select(&idx, 0)?.matmul(&w.t()?)?.broadcast_add(b.as_tensor())?;
            let norm = (p.sqr()?.sum_keepdim(1)? + 1e-12)?.sqrt()?;
            let p = p.broadcast_div(&norm)?;
            let logits = (p.matmul(&content.t()?)? / options.tau)?;
            let targets = Tensor::arange(0u32, rows.len() as u32, dev)?;
            let l = candle_nn::loss::cross_entropy(&logits, &targets)?;
            let al = l.to_scalar::<f32>()? as f64;
            Ok(((&link + (&l * options.lambda)?)?, link_v, Some(al)))
        }
        _ => Ok((link, link_v, None)),
    }
}

/// One mini-batch step's numbers, passed to [`train_observed`]'s batch callback.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchReport {
    /// 1-based.
    pub epoch: usize,
    /// Batches done in this epoch (1-based).
    pub batch: usize,
    /// Batches in this epoch.
    pub batches: usize,
    /// This batch's total loss.
    pub loss: f64,
}

/// Trains `encoder` on `view` (the training edges of `graph` under `split`).
/// `content` (`[U, content_dim]`, zero rows for users without content) enables ImageAlign.
/// `progress` sees every epoch; returning `false` cancels ([`Error::Cancelled`]).
pub fn train<E: GraphEncoder>(
    encoder: E,
    graph: &BipartiteGraph,
    split: &EdgeSplit,
    view: &GraphView,
    content: Option<&Tensor>,
    options: &TrainOptions,
    progress: &mut dyn FnMut(&EpochReport) -> bool,
) -> Result<Trained<E>> {
    train_observed(encoder, graph, split, view, content, options, progress, &mut |_| true)
}

/// [`train`], with `on_batch` also seeing every mini-batch step (mini-batch training only:
/// an epoch of a large graph takes minutes); returning `false` cancels after that step
/// ([`Error::Cancelled`]).
#[allow(clippy::too_many_arguments)]
pub fn train_observed<E: GraphEncoder>(
    encoder: E,
    graph: &BipartiteGraph,
    split: &EdgeSplit,
    view: &GraphView,
    content: Option<&Tensor>,
    options: &TrainOptions,
    progress: &mut dyn FnMut(&EpochReport) -> bool,
    on_batch: &mut dyn FnMut(&BatchReport) -> bool,
) -> Result<Trained<E>> {
    options.check()?;
    let (u_n, s_n) = (graph.num_users(), graph.num_communities());
    let device = view.x_s.device().clone();
    // Training edges as (user, community) index tensors.
    let edge_users = graph.edge_users();
    let train: Vec<usize> = split.edges(Part::Train);
    if train.is_empty() {
        return Err(Error::InvalidInput("train: the split has no training edge".into()));
    }
    let pos_u: Vec<u32> = train.iter().map(|&e| edge_users[e]).collect();
    let pos_s: Vec<u32> = train.iter().map(|&e| graph.by_user().col[e]).collect();
    let n = train.len();
    // Pairs scored each epoch: the training edges, then as many negatives (same users).
    let pair_users: Arc<Vec<u32>> = Arc::new(pos_u.iter().chain(&pos_u).copied().collect());
    // +1 for positives, −1 for negatives: the BCE is mean softplus(−sign · score).
    let signs = Tensor::from_vec([vec![-1f32; n], vec![1f32; n]].concat(), 2 * n, &device)?;

    // ImageAlign's users: content present (non-zero row) and at least one training edge.
    let align = match (content, encoder.align()) {
        (Some(c), Some(head)) if options.lambda > 0.0 => {
            let k = head.0.dims()[0];
            if c.dims() != [u_n, k] {
                return Err(Error::InvalidInput(format!(
                    "train: content of shape {:?} for {u_n} users × {k}",
                    c.dims()
                )));
            }
            let rows = c.to_dtype(DType::F32)?.to_vec2::<f32>()?;
            let has_train = {
                let mut h = vec![false; u_n];
                pos_u.iter().for_each(|&u| h[u as usize] = true);
                h
            };
            let idx: Vec<u32> =
                (0..u_n).filter(|&u| has_train[u] && rows[u].iter().any(|&x| x != 0.0)).map(|u| u as u32).collect();
            if let Some(u) = (0..u_n).find(|&u| rows[u].iter().any(|x| !x.is_finite())) {
                return Err(Error::InvalidInput(format!("train: content of user {u} is not finite")));
            }
            if idx.len() < 2 {
                None
            } else {
                let idx_t = Tensor::from_vec(idx.clone(), idx.len(), &device)?;
                let c = c.to_dtype(DType::F32)?.index_select(&idx_t, 0)?;
                let c = c.broadcast_div(&c.sqr()?.sum_keepdim(1)?.sqrt()?)?;
                let mut row = vec![u32::MAX; u_n];
                idx.iter().enumerate().for_each(|(r, &u)| row[u as usize] = r as u32);
                Some(Align { users: idx, content: c, row })
            }
        }
        _ => None,
    };

    let vars: Vec<Var> = encoder.named_vars().into_iter().map(|(_, v)| v).collect();
    let mut opt = AdamW::new(
        vars.clone(),
        ParamsAdamW { lr: options.lr, weight_decay: options.weight_decay, ..Default::default() },
    )?;
    let mut history = Vec::with_capacity(options.epochs);
    let mut best: Option<(f64, usize, Vec<Tensor>)> = None;
    let mut since_best = 0usize;
    let has_validation = split.count(Part::Validation) > 0;
    let mut sampler = match &options.mini_batch {
        Some(m) => Some((Sampler::new(view, m, options.seed)?, m.batch_edges, m.max_batches.unwrap_or(usize::MAX))),
        None => None,
    };
    for epoch in 1..=options.epochs {
        let t0 = Instant::now();
        let mut rng = SplitMix(options.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let (loss, link, align_loss) = match sampler.as_mut() {
            None => {
                let mut pair_comms = pos_s.clone();
                pair_comms.extend((0..n).map(|_| (rng.next_u64() % s_n as u64) as u32));
                let (z_u, z_s) = encoder.forward(view)?;
                let aligned = align.as_ref().map(|a| (&a.users, &a.content));
                let batch = BatchPairs { users: &pair_users, communities: &Arc::new(pair_comms), signs: &signs };
                let (loss, link, al) = batch_loss(&encoder, &z_u, &z_s, &batch, aligned, options)?;
                opt.backward_step(&loss)?;
                (loss.to_scalar::<f32>()? as f64, link, al)
            }
            Some((sampler, batch_edges, max_batches)) => {
                // The training edges in a fresh order, in batches, each edge with a negative.
                let mut order: Vec<u32> = (0..n as u32).collect();
                for i in (1..n).rev() {
                    order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
                }
                let (mut sum, mut sum_link, mut sum_align, mut weight) = (0f64, 0f64, 0f64, 0f64);
                let batches = n.div_ceil(*batch_edges).min(*max_batches);
                for (b, chunk) in order.chunks(*batch_edges).take(*max_batches).enumerate() {
                    let mut pairs: Vec<(u32, u32)> =
                        chunk.iter().map(|&k| (pos_u[k as usize], pos_s[k as usize])).collect();
                    let negatives: Vec<(u32, u32)> =
                        pairs.iter().map(|&(u, _)| (u, (rng.next_u64() % s_n as u64) as u32)).collect();
                    pairs.extend(negatives);
                    let block = sampler.block(&pairs, epoch as u64, b as u64)?;
                    let (z_u, z_s) = encoder.forward_block(view, &block)?;
                    let m = chunk.len();
                    let signs = Tensor::from_vec([vec![-1f32; m], vec![1f32; m]].concat(), 2 * m, &device)?;
                    // ImageAlign over the batch's users that have content (in-batch negatives).
                    let batch_align = match &align {
                        Some(a) => {
                            let (local, rows): (Vec<u32>, Vec<u32>) = block.users[0]
                                .iter()
                                .enumerate()
                                .filter(|&(_, &u)| a.row[u as usize] != u32::MAX)
                                .map(|(k, &u)| (k as u32, a.row[u as usize]))
                                .unzip();
                            if local.len() < 2 {
                                None
                            } else {
                                let rows = Tensor::from_vec(rows.clone(), rows.len(), &device)?;
                                Some((local, a.content.index_select(&rows, 0)?))
                            }
                        }
                        None => None,
                    };
                    let batch = BatchPairs {
                        users: &Arc::new(block.pair_users.clone()),
                        communities: &Arc::new(block.pair_communities.clone()),
                        signs: &signs,
                    };
                    let (loss, link, al) =
                        batch_loss(&encoder, &z_u, &z_s, &batch, batch_align.as_ref().map(|(l, c)| (l, c)), options)?;
                    opt.backward_step(&loss)?;
                    let w = m as f64;
                    let batch_loss = loss.to_scalar::<f32>()? as f64;
                    sum += batch_loss * w;
                    sum_link += link * w;
                    sum_align += al.unwrap_or(0.0) * w;
                    weight += w;
                    if !on_batch(&BatchReport { epoch, batch: b + 1, batches, loss: batch_loss }) {
                        return Err(Error::Cancelled(format!(
                            "training cancelled in epoch {epoch} after batch {} of {batches}",
                            b + 1
                        )));
                    }
                }
                (sum / weight, sum_link / weight, align.as_ref().map(|_| sum_align / weight))
            }
        };
        let seconds = t0.elapsed().as_secs_f64();
        let loss_v = loss;
        if !loss_v.is_finite() {
            return Err(Error::Compute(format!("train: the loss is {loss_v} at epoch {epoch}")));
        }
        let validation = if has_validation && options.eval_every > 0 && epoch % options.eval_every == 0 {
            Some(evaluate(&encoder, view, graph, split, Part::Validation, options.seed)?)
        } else {
            None
        };
        let report = EpochReport { epoch, loss: loss_v, link_loss: link, align_loss, validation, seconds };
        let keep_going = progress(&report);
        history.push(report);
        if let Some(m) = validation {
            if best.as_ref().is_none_or(|b| m.auc > b.0) {
                let snapshot = vars.iter().map(|v| v.as_tensor().copy()).collect::<candle_core::Result<Vec<_>>>()?;
                best = Some((m.auc, epoch, snapshot));
                since_best = 0;
                if let Some(path) = &options.checkpoint {
                    encoder.save(path)?;
                }
            } else {
                since_best += 1;
            }
        }
        if !keep_going {
            return Err(Error::Cancelled(format!("training cancelled after epoch {epoch}")));
        }
        if options.patience > 0 && since_best >= options.patience {
            break;
        }
    }
    let best_epoch = match best {
        Some((_, epoch, snapshot)) => {
            for (v, t) in vars.iter().zip(snapshot) {
                v.set(&t)?;
            }
            epoch
        }
        None => {
            if let Some(path) = &options.checkpoint {
                encoder.save(path)?;
            }
            history.len()
        }
    };
    Ok(Trained { encoder, history, best_epoch })
}
