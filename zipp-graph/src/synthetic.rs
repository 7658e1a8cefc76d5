//! A deterministic synthetic power-law activity graph for scale tests: user activity and
//! community popularity both follow Zipf-like laws (a few very active users, a few huge
//! communities, long tails), as on Reddit.
//!
//! User `u`'s degree and communities depend only on `(seed, u)`, so the graph is the same
//! on every machine and thread count. It is built straight into CSR (one pass per user,
//! no edge list, no sort of the whole edge set): memory is the graph's own arrays.

use zipp_core::error::{Error, Result};
use zipp_core::rng::SplitMix;

use crate::graph::{BipartiteGraph, Community, Csr};

/// Sizes and shape of a synthetic graph.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PowerLawOptions {
    /// Users.
    pub users: usize,
    /// Communities.
    pub communities: usize,
    /// Target number of (user, community) edges. Degrees are rounded at random and capped
    /// at half the communities, and a user gets at most 20 draws per edge to find distinct
    /// communities, so the most active users can fall short: the 1M-user graph has 18.6M.
    pub edges: usize,
    /// Zipf exponent of community popularity (≈ 1 on Reddit).
    pub popularity_exponent: f64,
    /// Zipf exponent of user activity.
    pub activity_exponent: f64,
    /// Seed.
    pub seed: u64,
}

impl PowerLawOptions {
    /// The scale test: 1,000,000 users, 40,000 communities, 20,000,000 edges.
    pub fn million() -> PowerLawOptions {
        PowerLawOptions {
            users: 1_000_000,
            communities: 40_000,
            edges: 20_000_000,
            popularity_exponent: 1.0,
            activity_exponent: 0.8,
            seed: 0,
        }
    }
}

/// Inverse-CDF sampling from a Zipf law over `n` items: `cdf[k] = Σ_{i ≤ k} (i+1)^-s`.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for i in 0..n {
            total += ((i + 1) as f64).powf(-s);
            cdf.push(total);
        }
        cdf.iter_mut().for_each(|c| *c /= total);
        Zipf { cdf }
    }

    fn draw(&self, rng: &mut SplitMix) -> usize {
        let x = rng.unit();
        self.cdf.partition_point(|&c| c <= x).min(self.cdf.len() - 1)
    }
}

/// The graph (module docs). Communities are `c<k>` (popularity rank `k` scattered by a fixed
/// permutation, so index order is not popularity order), users `u<k>`, weights 1–5.
pub fn power_law(options: &PowerLawOptions) -> Result<BipartiteGraph> {
    let PowerLawOptions { users, communities, edges, popularity_exponent, activity_exponent, seed } = *options;
    if users == 0 || communities == 0 || edges < users || edges > u32::MAX as usize || communities > u32::MAX as usize {
        return Err(Error::InvalidInput(format!(
            "synthetic graph: {users} users, {communities} communities and {edges} edges (at least one per user)"
        )));
    }
    let ok = |s: f64| s.is_finite() && (0.0..4.0).contains(&s);
    if !ok(popularity_exponent) || !ok(activity_exponent) {
        return Err(Error::InvalidInput("synthetic graph: exponents must be in [0, 4)".into()));
    }
    // Degrees: Zipf weights over a random rank per user, scaled to the edge budget, ≥ 1 and
    // ≤ communities.
    let rank_weight = |u: usize| {
        let mut r = SplitMix(seed ^ 0xA5A5_5A5A ^ (u as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let rank = (r.next_u64() % users as u64) as f64 + 1.0;
        rank.powf(-activity_exponent)
    };
    let total: f64 = (0..users).map(rank_weight).sum();
    let extra = (edges - users) as f64;
    let popularity = Zipf::new(communities, popularity_exponent);
    // A fixed permutation of community indices (popularity rank → index).
    let mut perm: Vec<u32> = (0..communities as u32).collect();
    let mut r = SplitMix(seed ^ 0x5EED);
    for i in (1..communities).rev() {
        perm.swap(i, (r.next_u64() % (i as u64 + 1)) as usize);
    }
    let mut ptr = Vec::with_capacity(users + 1);
    ptr.push(0usize);
    let mut col: Vec<u32> = Vec::with_capacity(edges + edges / 20);
    let mut weights: Vec<f32> = Vec::with_capacity(edges + edges / 20);
    let mut row: Vec<(u32, f32)> = Vec::new();
    let mut seen = vec![false; communities];
    for u in 0..users {
        let mut rng = SplitMix(seed ^ (u as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
        // Rounded up or down at random in proportion (so the degrees sum to the target in
        // expectation), and at most half the communities, so distinct draws stay cheap.
        let x = 1.0 + extra * rank_weight(u) / total;
        let x = x.floor() + if rng.unit() < x.fract() { 1.0 } else { 0.0 };
        let d = x.clamp(1.0, (communities as f64 / 2.0).max(1.0)) as usize;
        row.clear();
        // Distinct communities by popularity (a repeat is drawn again, up to 20 tries per
        // edge), so the degree is what the activity law asked for.
        let mut tries = 0;
        while row.len() < d && tries < 20 * d {
            tries += 1;
            let c = perm[popularity.draw(&mut rng)];
            if !seen[c as usize] {
                seen[c as usize] = true;
                row.push((c, 1.0 + (rng.next_u64() % 5) as f32));
            }
        }
        row.iter().for_each(|&(c, _)| seen[c as usize] = false);
        row.sort_unstable_by_key(|&(c, _)| c);
        for &(c, w) in &row {
            col.push(c);
            weights.push(w);
        }
        ptr.push(col.len());
    }
    let user_ids = (0..users).map(|u| format!("u{u}")).collect();
    let comms = (0..communities).map(|c| Community { name: format!("c{c}"), description: String::new() }).collect();
    BipartiteGraph::from_parts(user_ids, comms, Csr { ptr, col }, weights, Vec::new(), Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_heavy_tails_and_determinism() {
        let o =
            PowerLawOptions { users: 5000, communities: 2000, edges: 60_000, seed: 3, ..PowerLawOptions::million() };
        let g = power_law(&o).unwrap();
        assert_eq!((g.num_users(), g.num_communities()), (5000, 2000));
        // Within 5% of the target (module docs: the most active users can fall short).
        assert!(g.num_edges().abs_diff(60_000) < 3_000, "{}", g.num_edges());
        let mut deg: Vec<usize> = (0..2000).map(|c| g.by_community().degree(c)).collect();
        deg.sort_unstable();
        // Heavy tail: the most popular community has many times the median's users.
        assert!(deg[1999] > 20 * deg[1000].max(1), "max {} median {}", deg[1999], deg[1000]);
        assert!((0..5000).all(|u| g.by_user().degree(u) >= 1));
        assert_eq!(g, power_law(&o).unwrap());
        assert!(power_law(&PowerLawOptions { edges: 10, ..o }).is_err());
    }
}
