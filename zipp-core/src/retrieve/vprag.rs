//! VPRAG selection (vptt-vprag-paper.txt §3.2, Algorithm 1; SPEC §3 steps 1–5).
//!
//! Each step is a small pure function so it can be tested against hand-computed values:
//! [`post_weights`] (softmax with temperature), [`effective_posts`] (entropy → n_eff),
//! [`choose_k`], [`top_k`], [`allocate_quotas`] (largest remainder), and [`select`] which
//! runs them on a [`MemoryIndex`] for a query vector. Composition (step 6) lives in
//! `personalize::compose`.
//!
//! Determinism: every tie is broken by the lower index, so equal inputs give equal outputs.

use std::collections::BTreeMap;

use super::MemoryIndex;
use crate::error::{Error, Result};

/// VPRAG knobs (SPEC §3 defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct VpragParams {
    /// Softmax temperature τ over caption similarities (> 0).
    pub temperature: f32,
    /// Budget Q^(k) for a category not named in `budgets`.
    pub default_budget: usize,
    /// Per-category budgets Q^(k); 0 switches a category off.
    pub budgets: BTreeMap<String, usize>,
}

impl Default for VpragParams {
    fn default() -> Self {
        VpragParams { temperature: 0.1, default_budget: 3, budgets: BTreeMap::new() }
    }
}

impl VpragParams {
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(Error::InvalidInput(format!(
                "VPRAG temperature must be a positive finite number, got {}",
                self.temperature
            )));
        }
        Ok(())
    }

    pub fn budget(&self, category: &str) -> usize {
        self.budgets.get(category).copied().unwrap_or(self.default_budget)
    }
}

/// `w = softmax(s / τ)`, computed stably (max subtracted) in f64.
pub fn post_weights(scores: &[f32], temperature: f32) -> Vec<f64> {
    if scores.is_empty() {
        return Vec::new();
    }
    let t = temperature as f64;
    let max = scores.iter().map(|&s| s as f64 / t).fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = scores.iter().map(|&s| (s as f64 / t - max).exp()).collect();
    let z: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / z).collect()
}

/// `(H, n_eff)` with `H = −Σ w ln w` (0 ln 0 = 0) and `n_eff = exp(H)`.
pub fn effective_posts(weights: &[f64]) -> (f64, f64) {
    let h: f64 = -weights.iter().filter(|&&w| w > 0.0).map(|&w| w * w.ln()).sum::<f64>();
    let h = h.max(0.0);
    (h, h.exp())
}

/// `K = clamp(floor(n_eff), 1, min(N, 2Q))`; 0 only for an empty memory. With every
/// budget zero the upper bound would fall below 1; K is then 1 (nothing is allocated anyway).
pub fn choose_k(n_eff: f64, n_posts: usize, total_budget: usize) -> usize {
    if n_posts == 0 {
        return 0;
    }
    // A tiny epsilon keeps exp(ln 3) = 2.9999999999999996 from flooring to 2.
    let floor = (n_eff + 1e-9).floor().max(0.0) as usize;
    floor.min(n_posts).min(total_budget.saturating_mul(2)).max(1)
}

/// Indices of the `k` largest weights, largest first; ties go to the lower index.
pub fn top_k(weights: &[f64], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..weights.len()).collect();
    idx.sort_by(|&a, &b| weights[b].total_cmp(&weights[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// Quotas for one category over the selected posts (SPEC §3 step 4):
/// `q_i = floor(w_i n_i / Σ_j w_j n_j · Q)`, capped at `n_i`, then the remaining units go
/// one at a time to the largest fractional parts (ties: larger weight, then lower position)
/// among posts with room, until `Σ q_i = min(Q, Σ n_i)`.
///
/// If every post holding elements has weight 0 (softmax underflow), the counts alone are
/// used as weights so the budget is still spent. A negative or non-finite weight counts as 0.
/// Extra weights or counts beyond the shorter of the two slices are ignored.
pub fn allocate_quotas(weights: &[f64], counts: &[usize], budget: usize) -> Vec<usize> {
    let len = weights.len().min(counts.len());
    let (counts, weights) = (&counts[..len], &weights[..len]);
    let weights: Vec<f64> = weights.iter().map(|&w| if w.is_finite() && w > 0.0 { w } else { 0.0 }).collect();
    let available = counts.iter().fold(0usize, |a, &n| a.saturating_add(n));
    let target = budget.min(available);
    let mut quotas = vec![0usize; counts.len()];
    if target == 0 {
        return quotas;
    }
    let mut mass: Vec<f64> = weights.iter().zip(counts).map(|(&w, &n)| w * n as f64).collect();
    let mut total: f64 = mass.iter().sum();
    // Also true for NaN: any unusable total falls back to the counts.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    if !(total > 0.0) {
        mass = counts.iter().map(|&n| n as f64).collect();
        total = available as f64;
    }
    let raw: Vec<f64> = mass.iter().map(|m| m / total * budget as f64).collect();
    for i in 0..counts.len() {
        // `as` saturates, and the cap keeps Σ q ≤ min(budget, Σ n) = target.
        quotas[i] = (raw[i].floor() as usize).min(counts[i]);
    }
    let mut remaining = target.saturating_sub(quotas.iter().sum::<usize>());
    let mut order: Vec<usize> = (0..counts.len()).collect();
    order.sort_by(|&a, &b| {
        let fa = raw[a] - raw[a].floor();
        let fb = raw[b] - raw[b].floor();
        fb.total_cmp(&fa).then(weights[b].total_cmp(&weights[a])).then(a.cmp(&b))
    });
    // Each pass hands at most one unit per post; capped posts are skipped. Terminates
    // because target ≤ Σ n_i, so some post has room while units remain.
    while remaining > 0 {
        for &i in &order {
            if remaining == 0 {
                break;
            }
            if quotas[i] < counts[i] {
                quotas[i] += 1;
                remaining -= 1;
            }
        }
    }
    quotas
}

/// A selected post.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectedPost {
    /// Index into the persona's memory.
    pub post: usize,
    /// Cosine between the query and the caption.
    pub score: f32,
    /// Softmax weight.
    pub weight: f64,
}

/// A selected element.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectedElement {
    /// Index into `MemoryIndex::elements`.
    pub element: usize,
    /// Index into `MemoryIndex::categories`.
    pub category: usize,
    /// The post it came from (memory index).
    pub post: usize,
    /// Cosine between the query and the element.
    pub score: f32,
}

/// Per-category outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct CategoryAllocation {
    pub category: usize,
    pub priority: f32,
    pub budget: usize,
    /// Elements available in the selected posts.
    pub available: usize,
    /// Quota per selected post, aligned with `Selection::posts`.
    pub quotas: Vec<usize>,
}

/// Everything VPRAG chose for one query.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    pub entropy: f64,
    pub n_eff: f64,
    pub k: usize,
    pub total_budget: usize,
    /// The top-K posts, highest weight first.
    pub posts: Vec<SelectedPost>,
    /// Categories in priority order (highest first).
    pub categories: Vec<CategoryAllocation>,
    /// Elements in category-priority order, best-scored first within a category,
    /// exact duplicates removed.
    pub elements: Vec<SelectedElement>,
    /// How many selected elements were exact duplicates of a better one.
    pub duplicates_dropped: usize,
}

/// Runs SPEC §3 steps 1–5 for the unit query vector `q`.
pub fn select(index: &MemoryIndex, q: &[f32], params: &VpragParams) -> Result<Selection> {
    params.validate()?;
    if q.len() != index.captions.dim() || q.iter().any(|x| !x.is_finite()) {
        return Err(Error::InvalidInput(format!(
            "query vector must hold {} finite values (the index's dimension), got {}",
            index.captions.dim(),
            q.len()
        )));
    }
    let n = index.captions.len();
    let scores = index.captions.dots(q);
    let weights = post_weights(&scores, params.temperature);
    let (entropy, n_eff) = effective_posts(&weights);
    let budgets: Vec<usize> = index.categories.iter().map(|c| params.budget(c)).collect();
    let total_budget = budgets.iter().fold(0usize, |a, &b| a.saturating_add(b));
    let k = choose_k(n_eff, n, total_budget);
    let chosen = top_k(&weights, k);
    let posts: Vec<SelectedPost> =
        chosen.iter().map(|&i| SelectedPost { post: i, score: scores[i], weight: weights[i] }).collect();

    // Step 3: category priority by the query's similarity to each description.
    let priorities = index.category_vecs.dots(q);
    let mut cat_order: Vec<usize> = (0..index.categories.len()).collect();
    cat_order.sort_by(|&a, &b| priorities[b].total_cmp(&priorities[a]).then(a.cmp(&b)));

    let element_scores = index.element_vecs.dots(q);
    let sel_weights: Vec<f64> = posts.iter().map(|p| p.weight).collect();
    let mut categories = Vec::with_capacity(cat_order.len());
    let mut elements = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut duplicates_dropped = 0;
    for &c in &cat_order {
        let counts: Vec<usize> = posts.iter().map(|p| index.count(p.post, c)).collect();
        let quotas = allocate_quotas(&sel_weights, &counts, budgets[c]);
        // Step 5: within each post, its top-q elements of this category by cosine.
        let mut picked: Vec<SelectedElement> = Vec::new();
        for (p, &quota) in posts.iter().zip(&quotas) {
            if quota == 0 {
                continue;
            }
            let mut cands: Vec<(usize, usize)> = index.post_elements[p.post][c].iter().copied().enumerate().collect();
            cands.sort_by(|a, b| element_scores[b.1].total_cmp(&element_scores[a.1]).then(a.0.cmp(&b.0)));
            picked.extend(cands.into_iter().take(quota).map(|(_, e)| SelectedElement {
                element: e,
                category: c,
                post: p.post,
                score: element_scores[e],
            }));
        }
        // Best-scored first; a stable sort keeps higher-weight posts first on ties.
        picked.sort_by(|a, b| b.score.total_cmp(&a.score));
        for e in picked {
            // Exact duplicates (same string, hence same score) keep the first occurrence:
            // the higher-priority category, then the higher-weight post.
            if seen.insert(e.element) {
                elements.push(e);
            } else {
                duplicates_dropped += 1;
            }
        }
        categories.push(CategoryAllocation {
            category: c,
            priority: priorities[c],
            budget: budgets[c],
            available: counts.iter().sum(),
            quotas,
        });
    }
    Ok(Selection { entropy, n_eff, k, total_budget, posts, categories, elements, duplicates_dropped })
}

#[cfg(test)]
mod tests;
