//! Neighbour-sampled mini-batches (GraphSAGE-style fanouts) for graphs too large to train
//! full batch.
//!
//! A batch is a list of (user, community) pairs to score — training edges and their
//! negatives. The two-layer encoder needs, for those pairs:
//!
//! ```text
//! level 2 (scored)   U2 = the batch's users           S2 = the batch's communities
//! level 1            U1 = U2 ∪ sampled users of S2     S1 = S2 ∪ sampled communities of U2
//! level 0 (inputs)   S0 = sampled communities of U1    U0 = sampled users of S1
//! ```
//!
//! Layer 1 computes `h` for U1 (from S0) and S1 (from U0); layer 2 computes `z` for U2 (from
//! S1) and S2 (from U1). Each node keeps all of its training neighbours when it has at most
//! `fanout` of them, else a uniform sample of `fanout` without replacement; `fanouts[0]` is
//! layer 1's, `fanouts[1]` layer 2's. Every set lists its predecessor first (U2 is a prefix
//! of U1, S2 of S1), so a layer's own-node rows are a `narrow` of the level below. Memory is
//! bounded by the batch size times the fanouts, whatever the graph's size: at most
//! `|U1| ≤ |U2| + |S2|·f₂`, `|S1| ≤ |S2| + |U2|·f₂`, `|S0| ≤ |U1|·f₁` … rows.
//!
//! Sampling is seeded: the stream of node `n` at level `l` of batch `b` in epoch `e`
//! depends on `(seed, e, b, l, n)` only, so batches are reproducible and independent of
//! thread count.

use std::sync::Arc;

use zipp_core::error::{Error, Result};
use zipp_core::rng::SplitMix;

use crate::gatv2::Adjacency;
use crate::model::GraphView;

/// Mini-batch settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MiniBatchOptions {
    /// Training edges per batch (each with its negatives).
    pub batch_edges: usize,
    /// Neighbours kept per node: `[layer 1, layer 2]`.
    pub fanouts: [usize; 2],
    /// Stop an epoch after this many batches (`None`: every training edge once).
    pub max_batches: Option<usize>,
}

impl Default for MiniBatchOptions {
    fn default() -> Self {
        MiniBatchOptions { batch_edges: 4096, fanouts: [10, 10], max_batches: None }
    }
}

impl MiniBatchOptions {
    pub(crate) fn check(&self) -> Result<()> {
        if self.batch_edges == 0 || self.fanouts.contains(&0) || self.max_batches == Some(0) {
            return Err(Error::InvalidInput(format!("mini-batch: batch size and fanouts must be positive ({self:?})")));
        }
        Ok(())
    }
}

/// The sampled computation graph of one batch (module docs); node lists hold global
/// indices, adjacencies local ones.
#[derive(Debug, Clone)]
pub struct Block {
    /// U2, U1, U0 (global user indices).
    pub users: [Vec<u32>; 3],
    /// S2, S1, S0 (global community indices).
    pub communities: [Vec<u32>; 3],
    /// Layer 1, communities → users: sources S0, targets U1.
    pub l1_c2u: Arc<Adjacency>,
    /// Layer 1, users → communities: sources U0, targets S1.
    pub l1_u2c: Arc<Adjacency>,
    /// Layer 2, communities → users: sources S1, targets U2.
    pub l2_c2u: Arc<Adjacency>,
    /// Layer 2, users → communities: sources U1, targets S2.
    pub l2_u2c: Arc<Adjacency>,
    /// The scored pairs as local indices into U2 and S2.
    pub pair_users: Vec<u32>,
    /// See `pair_users`.
    pub pair_communities: Vec<u32>,
}

/// Local numbering of a node set: a dense global → local map reset after use, so building a
/// block costs its own size, not the graph's.
struct Numbering {
    local: Vec<u32>,
    nodes: Vec<u32>,
}

impl Numbering {
    fn new(n: usize) -> Numbering {
        Numbering { local: vec![u32::MAX; n], nodes: Vec::new() }
    }

    fn id(&mut self, global: u32) -> u32 {
        let slot = &mut self.local[global as usize];
        if *slot == u32::MAX {
            *slot = self.nodes.len() as u32;
            self.nodes.push(global);
        }
        *slot
    }

    /// Hands the node list out and resets the map.
    fn take(&mut self) -> Vec<u32> {
        for &g in &self.nodes {
            self.local[g as usize] = u32::MAX;
        }
        std::mem::take(&mut self.nodes)
    }
}

/// Builds [`Block`]s over a [`GraphView`]'s training adjacencies.
pub struct Sampler<'a> {
    view: &'a GraphView,
    fanouts: [usize; 2],
    seed: u64,
    users: Numbering,
    communities: Numbering,
}

impl<'a> Sampler<'a> {
    /// A sampler of `view`'s training neighbourhoods.
    pub fn new(view: &'a GraphView, options: &MiniBatchOptions, seed: u64) -> Result<Sampler<'a>> {
        options.check()?;
        Ok(Sampler {
            view,
            fanouts: options.fanouts,
            seed,
            users: Numbering::new(view.c2u.n_dst()),
            communities: Numbering::new(view.u2c.n_dst()),
        })
    }

    /// The block scoring `pairs` (global (user, community) indices) in batch `batch` of
    /// `epoch`.
    pub fn block(&mut self, pairs: &[(u32, u32)], epoch: u64, batch: u64) -> Result<Block> {
        let (u_n, s_n) = (self.view.c2u.n_dst(), self.view.u2c.n_dst());
        if let Some(&(u, s)) = pairs.iter().find(|&&(u, s)| u as usize >= u_n || s as usize >= s_n) {
            return Err(Error::InvalidInput(format!("mini-batch: pair ({u}, {s}) out of range")));
        }
        let stream = |level: u64, node: u32| {
            let mut h = self.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            h ^= batch.wrapping_mul(0xD1B5_4A32_D192_ED03);
            h ^= level.wrapping_mul(0x94D0_49BB_1331_11EB) ^ (node as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            SplitMix(h)
        };
        // Level 2: the pairs' users and communities, in first-seen order.
        let mut pair_users = Vec::with_capacity(pairs.len());
        let mut pair_communities = Vec::with_capacity(pairs.len());
        for &(u, s) in pairs {
            pair_users.push(self.users.id(u));
            pair_communities.push(self.communities.id(s));
        }
        let u2_len = self.users.nodes.len();
        let s2_len = self.communities.nodes.len();
        // Level 1: U1 = U2 ∪ sampled users of S2 (edges of l2_u2c); S1 = S2 ∪ sampled
        // communities of U2 (edges of l2_c2u).
        let c2u = &self.view.c2u;
        let u2c = &self.view.u2c;
        let f2 = self.fanouts[1];
        let mut l2_u2c = Vec::new();
        for t in 0..s2_len {
            let s = self.communities.nodes[t];
            for j in sample(u2c, s as usize, f2, &mut stream(2, s)) {
                l2_u2c.push((self.users.id(j), t as u32));
            }
        }
        let mut l2_c2u = Vec::new();
        for t in 0..u2_len {
            let u = self.users.nodes[t];
            for j in sample(c2u, u as usize, f2, &mut stream(3, u)) {
                l2_c2u.push((self.communities.id(j), t as u32));
            }
        }
        let u1 = self.users.take();
        let s1 = self.communities.take();
        // Level 0: S0 = sampled communities of U1, U0 = sampled users of S1 (fresh numberings:
        // layer 1's sources are inputs, indexed on their own).
        let f1 = self.fanouts[0];
        let mut l1_c2u = Vec::new();
        for (t, &u) in u1.iter().enumerate() {
            for j in sample(c2u, u as usize, f1, &mut stream(1, u)) {
                l1_c2u.push((self.communities.id(j), t as u32));
            }
        }
        let s0 = self.communities.take();
        let mut l1_u2c = Vec::new();
        for (t, &s) in s1.iter().enumerate() {
            for j in sample(u2c, s as usize, f1, &mut stream(0, s)) {
                l1_u2c.push((self.users.id(j), t as u32));
            }
        }
        let u0 = self.users.take();
        let u2 = u1[..u2_len].to_vec();
        let s2 = s1[..s2_len].to_vec();
        Ok(Block {
            l1_c2u: Arc::new(Adjacency::from_edges(s0.len(), u1.len(), &l1_c2u)?),
            l1_u2c: Arc::new(Adjacency::from_edges(u0.len(), s1.len(), &l1_u2c)?),
            l2_c2u: Arc::new(Adjacency::from_edges(s1.len(), u2_len, &l2_c2u)?),
            l2_u2c: Arc::new(Adjacency::from_edges(u1.len(), s2_len, &l2_u2c)?),
            users: [u2, u1, u0],
            communities: [s2, s1, s0],
            pair_users,
            pair_communities,
        })
    }
}

/// The training neighbours (sources) of target `t` in `adj`: all of them when there are at
/// most `fanout`, else `fanout` drawn uniformly without replacement (Floyd's algorithm, in
/// ascending order).
fn sample(adj: &Adjacency, t: usize, fanout: usize, rng: &mut SplitMix) -> Vec<u32> {
    let row = &adj.src()[adj.ptr()[t]..adj.ptr()[t + 1]];
    if row.len() <= fanout {
        return row.to_vec();
    }
    let n = row.len();
    let mut chosen: Vec<usize> = Vec::with_capacity(fanout);
    for j in n - fanout..n {
        let k = (rng.next_u64() % (j as u64 + 1)) as usize;
        if chosen.contains(&k) {
            chosen.push(j);
        } else {
            chosen.push(k);
        }
    }
    chosen.sort_unstable();
    chosen.into_iter().map(|k| row[k]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::GraphBuilder;
    use crate::split::EdgeSplit;
    use candle_core::{DType, Device, Tensor};

    fn view() -> (crate::BipartiteGraph, GraphView) {
        let mut b = GraphBuilder::new();
        for s in 0..30 {
            b.community(&format!("c{s}"), "").unwrap();
        }
        for u in 0..40u32 {
            b.user(&format!("u{u}")).unwrap();
            for k in 0..(u % 13 + 1) {
                b.edge(u, (u * 7 + k * 3) % 30, 1.0, None).unwrap();
            }
        }
        let g = b.build().unwrap();
        let x = Tensor::ones((30, 4), DType::F32, &Device::Cpu).unwrap();
        let v = GraphView::new(&g, &EdgeSplit::all_train(&g), &x).unwrap();
        (g, v)
    }

    #[test]
    fn blocks_nest_respect_fanouts_and_only_use_real_edges() {
        let (g, v) = view();
        let opts = MiniBatchOptions { batch_edges: 8, fanouts: [3, 2], max_batches: None };
        let mut s = Sampler::new(&v, &opts, 5).unwrap();
        let pairs = [(3u32, 21u32), (12, 0), (3, 5), (39, 7)];
        let b = s.block(&pairs, 1, 0).unwrap();
        let [u2, u1, u0] = &b.users;
        let [s2, s1, s0] = &b.communities;
        assert_eq!(u2, &vec![3, 12, 39]);
        assert_eq!(s2, &vec![21, 0, 5, 7]);
        assert_eq!(&u1[..3], &u2[..]);
        assert_eq!(&s1[..4], &s2[..]);
        let linked = |u: u32, c: u32| g.edge_id(u as usize, c as usize).is_some();
        // Every sampled edge is a real edge; in-degrees never exceed the fanout.
        let check = |adj: &Adjacency, srcs: &[u32], dsts: &[u32], user_is_src: bool, fanout: usize| {
            for (t, &target) in dsts.iter().enumerate().take(adj.n_dst()) {
                let r = adj.ptr()[t]..adj.ptr()[t + 1];
                assert!(r.len() <= fanout);
                for k in r {
                    let (a, b) = (srcs[adj.src()[k] as usize], target);
                    assert!(if user_is_src { linked(a, b) } else { linked(b, a) });
                }
            }
        };
        check(&b.l1_c2u, s0, u1, false, 3);
        check(&b.l1_u2c, u0, s1, true, 3);
        check(&b.l2_c2u, s1, u2, false, 2);
        check(&b.l2_u2c, u1, s2, true, 2);
        // User 39 has 39 % 13 + 1 = 1 training edge and keeps it; user 12 has 13 and keeps 2.
        let degree = |t: usize| b.l2_c2u.ptr()[t + 1] - b.l2_c2u.ptr()[t];
        assert_eq!((degree(1), degree(2)), (2, 1));
        // Pairs map back to the batch.
        for (k, &(u, c)) in pairs.iter().enumerate() {
            assert_eq!(u2[b.pair_users[k] as usize], u);
            assert_eq!(s2[b.pair_communities[k] as usize], c);
        }
        // Same seed, epoch and batch → same block; another batch → (here) another sample.
        let again = Sampler::new(&v, &opts, 5).unwrap().block(&pairs, 1, 0).unwrap();
        assert_eq!(again.users, b.users);
        assert_eq!(again.l1_c2u, b.l1_c2u);
        let other = s.block(&pairs, 2, 0).unwrap();
        assert!(other.users != b.users || other.communities != b.communities || other.l1_c2u != b.l1_c2u);
        assert!(s.block(&[(40, 0)], 0, 0).is_err());
    }

    #[test]
    fn floyd_sample_is_uniform_and_distinct() {
        let adj = Adjacency::from_edges(10, 1, &(0..10).map(|j| (j, 0)).collect::<Vec<_>>()).unwrap();
        let mut counts = [0usize; 10];
        let mut rng = SplitMix(1);
        for _ in 0..20_000 {
            let s = sample(&adj, 0, 3, &mut rng);
            assert_eq!(s.len(), 3);
            assert!(s[0] < s[1] && s[1] < s[2]);
            s.iter().for_each(|&j| counts[j as usize] += 1);
        }
        // Each neighbour is kept with probability 3/10: 6,000 ± a few standard deviations (≈ 65).
        for c in counts {
            assert!((5_700..6_300).contains(&c), "{counts:?}");
        }
    }
}
