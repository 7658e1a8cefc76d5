//! Deterministic train / validation / test edge splits, per user (SPEC §6 metrics).
//!
//! Each user's edges are shuffled by a stream seeded from `(seed, user index)` only, so a
//! user's split does not depend on any other user, on thread count or on edge-file order
//! beyond the user's own edges. Of a user's `d` edges, `round(d · test)` go to test and
//! `round(d · validation)` to validation, but **every user keeps at least one training
//! edge** (so every user has an embedding from the training graph): a user with one edge
//! keeps it for training.

use zipp_core::error::{Error, Result};
use zipp_core::rng::SplitMix;

use crate::graph::BipartiteGraph;

/// Which part of the split an edge belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Part {
    /// Message passing and the training loss.
    Train = 0,
    /// Early stopping.
    Validation = 1,
    /// The reported metrics.
    Test = 2,
}

/// Fractions of each user's edges held out, and the seed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitOptions {
    /// Fraction of each user's edges for validation, in [0, 1).
    pub validation: f64,
    /// Fraction of each user's edges for test, in [0, 1).
    pub test: f64,
    /// Seed of the per-user shuffles.
    pub seed: u64,
}

impl Default for SplitOptions {
    fn default() -> Self {
        SplitOptions { validation: 0.05, test: 0.1, seed: 0 }
    }
}

impl SplitOptions {
    /// Refuses fractions outside [0, 1) or summing to 1 or more.
    pub(crate) fn check(&self) -> Result<()> {
        let ok = |f: f64| f.is_finite() && (0.0..1.0).contains(&f);
        if !ok(self.validation) || !ok(self.test) || self.validation + self.test >= 1.0 {
            return Err(Error::InvalidInput(format!(
                "split: validation {} and test {} must be in [0, 1) and sum to less than 1",
                self.validation, self.test
            )));
        }
        Ok(())
    }
}

/// Splits one user's edges (`parts`, all [`Part::Train`] on entry, in the user's edge
/// order) with the stream of `(options.seed, user)`: the one place the split is made, by
/// [`EdgeSplit::new`] and by the on-disk build ([`crate::ondisk`]), which sees one user at a
/// time. `order` is scratch space.
pub(crate) fn split_user(options: SplitOptions, user: usize, parts: &mut [Part], order: &mut Vec<usize>) {
    let d = parts.len();
    if d < 2 {
        return;
    }
    order.clear();
    order.extend(0..d);
    let mut rng = SplitMix(options.seed ^ (user as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    for i in (1..d).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    let mut test = (d as f64 * options.test).round() as usize;
    let mut val = (d as f64 * options.validation).round() as usize;
    // Keep ≥ 1 training edge: take from validation first, then from test.
    while test + val > d - 1 {
        if val > 0 {
            val -= 1;
        } else {
            test -= 1;
        }
    }
    for &e in &order[..test] {
        parts[e] = Part::Test;
    }
    for &e in &order[test..test + val] {
        parts[e] = Part::Validation;
    }
}

/// The part of every edge, by edge id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeSplit {
    parts: Vec<Part>,
}

impl EdgeSplit {
    /// Splits `graph`'s edges per user (module docs).
    pub fn new(graph: &BipartiteGraph, options: SplitOptions) -> Result<EdgeSplit> {
        options.check()?;
        let mut parts = vec![Part::Train; graph.num_edges()];
        let csr = graph.by_user();
        let mut order: Vec<usize> = Vec::new();
        for u in 0..graph.num_users() {
            split_user(options, u, &mut parts[csr.range(u)], &mut order);
        }
        Ok(EdgeSplit { parts })
    }

    /// Every edge in training (no held-out edges): for mining personas from a whole graph.
    pub fn all_train(graph: &BipartiteGraph) -> EdgeSplit {
        EdgeSplit { parts: vec![Part::Train; graph.num_edges()] }
    }

    /// A split from explicit parts (an imported `edge_split.npy`), one per edge.
    pub fn from_parts(graph: &BipartiteGraph, parts: Vec<Part>) -> Result<EdgeSplit> {
        if parts.len() != graph.num_edges() {
            return Err(Error::InvalidInput(format!("split: {} parts for {} edges", parts.len(), graph.num_edges())));
        }
        Ok(EdgeSplit { parts })
    }

    /// The part of edge `e`.
    pub fn part(&self, e: usize) -> Part {
        self.parts[e]
    }

    /// All parts, by edge id.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// Edge ids in `part`, ascending.
    pub fn edges(&self, part: Part) -> Vec<usize> {
        (0..self.parts.len()).filter(|&e| self.parts[e] == part).collect()
    }

    /// How many edges are in `part`.
    pub fn count(&self, part: Part) -> usize {
        self.parts.iter().filter(|&&p| p == part).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::GraphBuilder;

    fn graph(degrees: &[usize]) -> BipartiteGraph {
        let mut b = GraphBuilder::new();
        let n = degrees.iter().copied().max().unwrap_or(0);
        for c in 0..n {
            b.community(&format!("c{c}"), "").unwrap();
        }
        for (u, &d) in degrees.iter().enumerate() {
            let u = b.user(&format!("u{u}")).unwrap();
            for c in 0..d {
                b.edge(u, c as u32, 1.0, None).unwrap();
            }
        }
        b.build().unwrap()
    }

    #[test]
    fn every_user_keeps_a_training_edge_and_fractions_hold() {
        let g = graph(&[1, 2, 3, 10, 20, 100]);
        let s = EdgeSplit::new(&g, SplitOptions { validation: 0.1, test: 0.2, seed: 7 }).unwrap();
        for u in 0..g.num_users() {
            let r = g.by_user().range(u);
            let train = r.clone().filter(|&e| s.part(e) == Part::Train).count();
            assert!(train >= 1, "user {u}");
        }
        let r = g.by_user().range(5);
        assert_eq!(r.clone().filter(|&e| s.part(e) == Part::Test).count(), 20);
        assert_eq!(r.clone().filter(|&e| s.part(e) == Part::Validation).count(), 10);
        // The one-edge user keeps it for training; the two-edge user holds one out.
        assert_eq!(s.part(0), Part::Train);
        assert_eq!(s.count(Part::Train) + s.count(Part::Validation) + s.count(Part::Test), g.num_edges());
    }

    #[test]
    fn same_seed_same_split_other_seed_other_split() {
        let g = graph(&[50, 50, 50]);
        let o = SplitOptions { validation: 0.1, test: 0.2, seed: 1 };
        let a = EdgeSplit::new(&g, o).unwrap();
        assert_eq!(a, EdgeSplit::new(&g, o).unwrap());
        assert_ne!(a, EdgeSplit::new(&g, SplitOptions { seed: 2, ..o }).unwrap());
        // A user's split depends on that user only: dropping user 2 leaves 0 and 1 as they were.
        let h = graph(&[50, 50]);
        let b = EdgeSplit::new(&h, o).unwrap();
        assert_eq!(&a.parts()[..100], b.parts());
    }

    #[test]
    fn bad_fractions_are_refused() {
        let g = graph(&[3]);
        for (v, t) in [(0.5, 0.5), (-0.1, 0.1), (f64::NAN, 0.1), (0.1, 1.0)] {
            assert!(EdgeSplit::new(&g, SplitOptions { validation: v, test: t, seed: 0 }).is_err());
        }
    }
}
