//! Link-prediction metrics on held-out edges (SPEC §6): posting accuracy (AUC against one
//! uniformly random community per held-out edge) and Hit@10 over all communities.
//!
//! - **AUC**: for each held-out edge (u, s⁺), one community s⁻ drawn uniformly from all
//!   communities by a stream seeded from `(seed, edge id)`; a win when
//!   `score(u, s⁺) > score(u, s⁻)`, a tie counts ½. (s⁻ may be another of u's communities, as
//!   in PyG's `negative_sampling`-free uniform protocol; with thousands of communities this
//!   is rare and the same for every encoder compared.)
//! - **Hit@10**: s⁺ is among the 10 highest-scoring communities for u once u's training and
//!   validation communities are removed (other held-out positives stay in); communities
//!   scoring exactly as s⁺ count half a place.

use zipp_core::error::{Error, Result};
use zipp_core::rng::SplitMix;

use crate::graph::BipartiteGraph;
use crate::split::{EdgeSplit, Part};

/// AUC and Hit@10 over the edges of one part.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkMetrics {
    /// P(score(u, s⁺) > score(u, s⁻)), ties ½.
    pub auc: f64,
    /// Fraction of held-out edges whose community ranks in the top 10.
    pub hit10: f64,
    /// Held-out edges evaluated.
    pub edges: usize,
}

/// Scores as dot products of row-major embeddings (`dim` columns).
pub struct Embeddings<'a> {
    /// User embeddings `[U, dim]`.
    pub users: &'a [f32],
    /// Community embeddings `[S, dim]`.
    pub communities: &'a [f32],
    /// Width.
    pub dim: usize,
}

impl Embeddings<'_> {
    fn score(&self, u: usize, s: usize) -> f32 {
        let d = self.dim;
        self.users[u * d..(u + 1) * d].iter().zip(&self.communities[s * d..(s + 1) * d]).map(|(a, b)| a * b).sum()
    }
}

/// The metrics of `part`'s edges (module docs). `hit_users` caps how many users (the first
/// ones with held-out edges) Hit@10 ranks all communities for (`usize::MAX`: all).
pub fn link_metrics(
    graph: &BipartiteGraph,
    split: &EdgeSplit,
    part: Part,
    emb: &Embeddings<'_>,
    seed: u64,
    hit_users: usize,
) -> Result<LinkMetrics> {
    let (u_n, s_n, d) = (graph.num_users(), graph.num_communities(), emb.dim);
    if emb.users.len() != u_n * d || emb.communities.len() != s_n * d || d == 0 {
        return Err(Error::InvalidInput(format!(
            "metrics: embeddings of {} and {} values do not fit {u_n} users, {s_n} communities × {d}",
            emb.users.len(),
            emb.communities.len()
        )));
    }
    if s_n == 0 {
        return Err(Error::InvalidInput("metrics: the graph has no communities".into()));
    }
    let csr = graph.by_user();
    let (mut wins, mut n) = (0f64, 0usize);
    let (mut hits, mut ranked) = (0f64, 0usize);
    let mut users_ranked = 0usize;
    let mut scores = vec![0f32; s_n];
    let mut excluded = vec![false; s_n];
    for u in 0..u_n {
        let held: Vec<usize> = csr.range(u).filter(|&e| split.part(e) == part).collect();
        if held.is_empty() {
            continue;
        }
        for &e in &held {
            let mut r = SplitMix(seed ^ (e as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
            let neg = (r.next_u64() % s_n as u64) as usize;
            let (p, q) = (emb.score(u, csr.col[e] as usize), emb.score(u, neg));
            wins += if p > q {
                1.0
            } else if p == q {
                0.5
            } else {
                0.0
            };
            n += 1;
        }
        if users_ranked < hit_users {
            users_ranked += 1;
            for (s, v) in scores.iter_mut().enumerate() {
                *v = emb.score(u, s);
            }
            for e in csr.range(u) {
                if matches!(split.part(e), Part::Train | Part::Validation) && split.part(e) != part {
                    excluded[csr.col[e] as usize] = true;
                }
            }
            for &e in &held {
                let s_pos = csr.col[e] as usize;
                let p = scores[s_pos];
                let mut above = 0f64;
                for (s, &v) in scores.iter().enumerate() {
                    if s == s_pos || excluded[s] {
                        continue;
                    }
                    if v > p {
                        above += 1.0;
                    } else if v == p {
                        above += 0.5;
                    }
                }
                hits += if above < 10.0 { 1.0 } else { 0.0 };
                ranked += 1;
            }
            for e in csr.range(u) {
                excluded[csr.col[e] as usize] = false;
            }
        }
    }
    if n == 0 {
        return Err(Error::InvalidInput(format!("metrics: no edge is in {part:?}")));
    }
    Ok(LinkMetrics { auc: wins / n as f64, hit10: if ranked == 0 { 0.0 } else { hits / ranked as f64 }, edges: n })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::GraphBuilder;
    use crate::split::SplitOptions;

    #[test]
    fn perfect_and_reversed_scores_give_auc_one_and_zero() {
        // 3 users × 40 communities; user u links communities 0..20 (even u) or 20..40 (odd).
        let mut b = GraphBuilder::new();
        for s in 0..40 {
            b.community(&format!("c{s}"), "").unwrap();
        }
        for u in 0..3u32 {
            b.user(&format!("u{u}")).unwrap();
            for s in 0..20 {
                b.edge(u, s + 20 * (u % 2), 1.0, None).unwrap();
            }
        }
        let g = b.build().unwrap();
        let split = EdgeSplit::new(&g, SplitOptions { validation: 0.0, test: 0.5, seed: 3 }).unwrap();
        // Embeddings: users [1, -1] / [-1, 1]; communities by half, slightly varied.
        let users: Vec<f32> = (0..3).flat_map(|u| if u % 2 == 0 { [1.0, -1.0] } else { [-1.0, 1.0] }).collect();
        let comms: Vec<f32> = (0..40)
            .flat_map(|s| {
                let t = 1.0 + s as f32 * 0.001;
                if s < 20 {
                    [t, -t]
                } else {
                    [-t, t]
                }
            })
            .collect();
        let emb = Embeddings { users: &users, communities: &comms, dim: 2 };
        let m = link_metrics(&g, &split, Part::Test, &emb, 0, usize::MAX).unwrap();
        assert_eq!(m.edges, 30);
        // A negative from the same half ties or loses a little: AUC stays well above 0.5.
        assert!(m.auc > 0.7, "{m:?}");
        // 10 held-out positives per user, all in the top half, training ones removed: all hit.
        assert_eq!(m.hit10, 1.0);
        let neg: Vec<f32> = users.iter().map(|x| -x).collect();
        let emb = Embeddings { users: &neg, communities: &comms, dim: 2 };
        let m = link_metrics(&g, &split, Part::Test, &emb, 0, usize::MAX).unwrap();
        assert!(m.auc < 0.3, "{m:?}");
        assert_eq!(m.hit10, 0.0);
    }

    #[test]
    fn mismatched_sizes_are_errors() {
        let mut b = GraphBuilder::new();
        let c = b.community("c", "").unwrap();
        let u = b.user("u").unwrap();
        b.edge(u, c, 1.0, None).unwrap();
        let g = b.build().unwrap();
        let split = EdgeSplit::all_train(&g);
        let emb = Embeddings { users: &[1.0], communities: &[1.0, 2.0], dim: 1 };
        assert!(link_metrics(&g, &split, Part::Test, &emb, 0, 10).is_err());
        let emb = Embeddings { users: &[1.0], communities: &[1.0], dim: 1 };
        assert!(link_metrics(&g, &split, Part::Test, &emb, 0, 10).unwrap_err().to_string().contains("no edge"));
    }
}
