//! Hand-computed expectations for each VPRAG step, and property tests of its invariants.

use super::*;
use crate::embed::Embeddings;
use proptest::prelude::*;

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn softmax_with_temperature_by_hand() {
    // exp((s - 0.5)/0.1) = [1, e^-2, e^-2]; Z = 1 + 2e^-2 = 1.2706706
    let w = post_weights(&[0.5, 0.3, 0.3], 0.1);
    assert!(close(w[0], 1.0 / 1.2706706, 1e-6), "{w:?}");
    assert!(close(w[1], 0.1353353 / 1.2706706, 1e-6));
    assert_eq!(w[1], w[2]);
    assert!(close(w.iter().sum::<f64>(), 1.0, 1e-12));
    // Large scores / small temperature must not overflow (max is subtracted).
    let w = post_weights(&[1.0, 0.99], 1e-4);
    assert!(w.iter().all(|x| x.is_finite()));
    assert!(post_weights(&[], 0.1).is_empty());
}

#[test]
fn entropy_and_effective_posts_by_hand() {
    let (h, n) = effective_posts(&[0.25; 4]);
    assert!(close(h, 4f64.ln(), 1e-12) && close(n, 4.0, 1e-9));
    // H = 0.5 ln 2 + 2 · 0.25 ln 4 = 1.5 ln 2; n_eff = 2^1.5 = 2√2
    let (h, n) = effective_posts(&[0.5, 0.25, 0.25]);
    assert!(close(h, 1.5 * 2f64.ln(), 1e-12));
    assert!(close(n, 2.0 * 2f64.sqrt(), 1e-9));
    // One post: H = 0, n_eff = 1. Zero weights contribute nothing (0 ln 0 = 0).
    assert_eq!(effective_posts(&[1.0]), (0.0, 1.0));
    assert_eq!(effective_posts(&[1.0, 0.0]), (0.0, 1.0));
}

#[test]
fn k_is_clamped() {
    assert_eq!(choose_k(2.83, 30, 9), 2);
    assert_eq!(choose_k(25.0, 30, 9), 18); // 2Q cap
    assert_eq!(choose_k(25.0, 20, 30), 20); // N cap
    assert_eq!(choose_k(0.4, 30, 9), 1); // floor below 1
    assert_eq!(choose_k(3f64.ln().exp(), 30, 9), 3); // exp(ln 3) rounds just under 3
    assert_eq!(choose_k(5.0, 0, 9), 0); // empty memory
    assert_eq!(choose_k(5.0, 10, 0), 1); // every budget off
}

#[test]
fn top_k_breaks_ties_by_lower_index() {
    assert_eq!(top_k(&[0.2, 0.3, 0.3, 0.2], 3), vec![1, 2, 0]);
    assert_eq!(top_k(&[0.1, 0.9], 5), vec![1, 0]);
    assert!(top_k(&[0.5], 0).is_empty());
}

#[test]
fn quotas_largest_remainder_by_hand() {
    // mass [1.0, 0.6, 0.4] / 2.0 · 3 = [1.5, 0.9, 0.6] → floors [1,0,0]; remainders go
    // to fractions 0.9 (post 1) and 0.6 (post 2).
    assert_eq!(allocate_quotas(&[0.5, 0.3, 0.2], &[2, 2, 2], 3), vec![1, 1, 1]);
    // mass [0.7, 1.5] / 2.2 · 3 = [0.9545, 2.0455] → floors [0, 2]; the one left goes to post 0.
    assert_eq!(allocate_quotas(&[0.7, 0.3], &[1, 5], 3), vec![1, 2]);
    // raw [2.7, 0.3] but post 0 has only 1 element: capped, and the rest flows to post 1.
    assert_eq!(allocate_quotas(&[0.9, 0.1], &[1, 1], 3), vec![1, 1]);
    // One post takes the whole budget.
    assert_eq!(allocate_quotas(&[1.0], &[4], 3), vec![3]);
    // Budget larger than what exists: everything, nothing more.
    assert_eq!(allocate_quotas(&[0.6, 0.4], &[1, 2], 10), vec![1, 2]);
    // No elements in this category at all.
    assert_eq!(allocate_quotas(&[0.6, 0.4], &[0, 0], 3), vec![0, 0]);
    // Exact tie in fraction and weight: the lower position wins.
    assert_eq!(allocate_quotas(&[0.5, 0.5], &[1, 1], 1), vec![1, 0]);
    // Zero budget.
    assert_eq!(allocate_quotas(&[0.5, 0.5], &[3, 3], 0), vec![0, 0]);
    // Underflowed weights: counts stand in for them.
    assert_eq!(allocate_quotas(&[0.0, 1.0], &[3, 0], 2), vec![2, 0]);
    // Negative and NaN weights count as 0 instead of overflowing the remainder loop.
    assert_eq!(allocate_quotas(&[-1.0, 2.0], &[5, 5], 2), vec![0, 2]);
    assert_eq!(allocate_quotas(&[f64::NAN, 1.0], &[1, 1], 2), vec![1, 1]);
    // An "unlimited" budget takes everything without overflow.
    assert_eq!(allocate_quotas(&[0.5, 0.5], &[2, 3], usize::MAX), vec![2, 3]);
}

#[test]
fn wrong_query_dimension_and_huge_budgets_are_handled() {
    let ix = toy_index();
    assert!(matches!(select(&ix, &[1.0, 0.0], &VpragParams::default()), Err(Error::InvalidInput(_))));
    assert!(matches!(select(&ix, &[f32::NAN, 0.0, 0.0], &VpragParams::default()), Err(Error::InvalidInput(_))));
    let params = VpragParams { default_budget: usize::MAX, ..VpragParams::default() };
    let sel = select(&ix, &[0.0, 0.0, 1.0], &params).unwrap();
    assert_eq!(sel.total_budget, usize::MAX);
    assert_eq!(sel.elements.len(), 5); // every distinct element
}

/// A memory in 3 dimensions whose geometry is easy to reason about:
/// posts 0 and 1 point along x (the query), post 2 along y.
fn toy_index() -> MemoryIndex {
    let e = |rows: &[[f32; 3]]| Embeddings::new(3, rows.iter().flatten().copied().collect()).unwrap();
    MemoryIndex {
        embedder_id: "toy".into(),
        captions: e(&[[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.0, 1.0, 0.0]]),
        categories: vec!["lighting".into(), "mood".into(), "palette".into()],
        // lighting is most like the query, then palette, then mood.
        category_vecs: e(&[[0.9, 0.1, 0.4], [0.0, 0.0, 1.0], [0.5, 0.5, 0.7]]),
        elements: vec!["golden hour".into(), "neon".into(), "calm".into(), "teal".into(), "rust".into()],
        element_vecs: e(&[[0.9, 0.0, 0.43], [0.2, 0.9, 0.38], [0.0, 0.0, 1.0], [0.6, 0.0, 0.8], [0.7, 0.7, 0.14]]),
        // post 0: lighting [golden hour, neon], palette [teal]
        // post 1: lighting [neon], palette [rust, teal]   (teal repeats: a duplicate)
        // post 2: mood [calm]                              (mood only exists here)
        post_elements: vec![
            vec![vec![0, 1], vec![], vec![3]],
            vec![vec![1], vec![], vec![4, 3]],
            vec![vec![], vec![2], vec![]],
        ],
    }
}

#[test]
fn select_on_a_toy_memory_by_hand() {
    let ix = toy_index();
    let q = [1.0, 0.0, 0.0];
    // s = [1.0, 0.8, 0.0]; τ = 0.1 → w ∝ [1, e^-2, e^-10]
    let sel = select(&ix, &q, &VpragParams::default()).unwrap();
    let z = 1.0 + (-2f64).exp() + (-10f64).exp();
    assert!(close(sel.posts[0].weight, 1.0 / z, 1e-6));
    // n_eff ≈ 1.52 → K = 1: only post 0 is kept.
    assert!(sel.n_eff > 1.0 && sel.n_eff < 2.0, "{}", sel.n_eff);
    assert_eq!(sel.k, 1);
    assert_eq!(sel.posts.iter().map(|p| p.post).collect::<Vec<_>>(), vec![0]);
    assert_eq!(sel.total_budget, 9);
    // Category priority: lighting (0.9) > palette (0.5) > mood (0.0).
    let order: Vec<usize> = sel.categories.iter().map(|c| c.category).collect();
    assert_eq!(order, vec![0, 2, 1]);
    // Post 0 has 2 lighting elements and 1 palette: budget 3 > available, so all of them;
    // mood exists only in post 2, which was not selected.
    let alloc: Vec<(usize, usize)> = sel.categories.iter().map(|c| (c.available, c.quotas.iter().sum())).collect();
    assert_eq!(alloc, vec![(2, 2), (1, 1), (0, 0)]);
    // Lighting ranked by cosine: golden hour (0.9) before neon (0.2); then teal.
    let picked: Vec<&str> = sel.elements.iter().map(|e| ix.elements[e.element].as_str()).collect();
    assert_eq!(picked, vec!["golden hour", "neon", "teal"]);
    assert_eq!(sel.duplicates_dropped, 0);
}

#[test]
fn select_with_equal_scores_spreads_and_deduplicates() {
    let ix = toy_index();
    // Orthogonal to every caption: s = [0, 0, 0], uniform weights, n_eff = 3 → K = 3.
    // Along z, categories rank mood (1.0) > palette (0.7) > lighting (0.4) and elements
    // score calm 1.0, teal 0.8, golden hour 0.43, neon 0.38, rust 0.14.
    let q = [0.0, 0.0, 1.0];
    let params = VpragParams { default_budget: 1, ..VpragParams::default() };
    let sel = select(&ix, &q, &params).unwrap();
    assert_eq!(sel.k, 3);
    assert_eq!(sel.posts.iter().map(|p| p.post).collect::<Vec<_>>(), vec![0, 1, 2]);
    // Budget 1 each. mood: only post 2 has it. palette: counts [1, 2] → raw [1/3, 2/3],
    // the unit goes to post 1 (larger fraction), whose best palette element is teal.
    // lighting: counts [2, 1] → raw [2/3, 1/3] → post 0, best element golden hour.
    let picked: Vec<(&str, usize)> = sel.elements.iter().map(|e| (ix.elements[e.element].as_str(), e.post)).collect();
    assert_eq!(picked, vec![("calm", 2), ("teal", 1), ("golden hour", 0)]);

    // Budget 3: palette quotas [1, 2] pick teal (post 0) and rust + teal (post 1);
    // lighting quotas [2, 1] pick golden hour + neon (post 0) and neon (post 1). The
    // second teal and the second neon are exact duplicates and are dropped, keeping the
    // copy from the higher-ranked post.
    let params = VpragParams { default_budget: 3, ..VpragParams::default() };
    let sel = select(&ix, &q, &params).unwrap();
    let picked: Vec<(&str, usize)> = sel.elements.iter().map(|e| (ix.elements[e.element].as_str(), e.post)).collect();
    assert_eq!(picked, vec![("calm", 2), ("teal", 0), ("rust", 1), ("golden hour", 0), ("neon", 0)]);
    assert_eq!(sel.duplicates_dropped, 2);
    let alloc: Vec<Vec<usize>> = sel.categories.iter().map(|c| c.quotas.clone()).collect();
    assert_eq!(alloc, vec![vec![0, 0, 1], vec![1, 2, 0], vec![2, 1, 0]]);
}

#[test]
fn per_category_budgets_and_switching_off() {
    let ix = toy_index();
    let mut params = VpragParams { temperature: 100.0, ..VpragParams::default() };
    params.budgets.insert("lighting".into(), 0);
    let sel = select(&ix, &[1.0, 0.0, 0.0], &params).unwrap();
    assert!(sel.elements.iter().all(|e| e.category != 0));
    assert_eq!(sel.total_budget, 6);
}

#[test]
fn one_post_persona_and_empty_memory() {
    let mut ix = toy_index();
    ix.captions = Embeddings::new(3, vec![0.0, 1.0, 0.0]).unwrap();
    ix.post_elements.truncate(1);
    let sel = select(&ix, &[1.0, 0.0, 0.0], &VpragParams::default()).unwrap();
    assert_eq!((sel.k, sel.posts.len()), (1, 1));
    assert_eq!(sel.posts[0].weight, 1.0);
    assert_eq!(sel.n_eff, 1.0);

    let empty = MemoryIndex {
        embedder_id: "toy".into(),
        captions: Embeddings::empty(3),
        categories: vec![],
        category_vecs: Embeddings::empty(3),
        elements: vec![],
        element_vecs: Embeddings::empty(3),
        post_elements: vec![],
    };
    let sel = select(&empty, &[1.0, 0.0, 0.0], &VpragParams::default()).unwrap();
    assert_eq!((sel.k, sel.posts.len(), sel.elements.len()), (0, 0, 0));
}

#[test]
fn bad_temperature_is_rejected() {
    for t in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        let p = VpragParams { temperature: t, ..VpragParams::default() };
        assert!(matches!(select(&toy_index(), &[1.0, 0.0, 0.0], &p), Err(Error::InvalidInput(_))));
    }
}

proptest! {
    #[test]
    fn quotas_sum_to_budget_or_what_exists(
        cells in prop::collection::vec((0.0f64..1.0, 0usize..6), 1..12),
        budget in 0usize..15,
    ) {
        let (w, n): (Vec<f64>, Vec<usize>) = cells.into_iter().unzip();
        let q = allocate_quotas(&w, &n, budget);
        prop_assert_eq!(q.iter().sum::<usize>(), budget.min(n.iter().sum()));
        for (qi, ni) in q.iter().zip(&n) {
            prop_assert!(qi <= ni);
        }
        prop_assert_eq!(q, allocate_quotas(&w, &n, budget));
    }

    #[test]
    fn k_stays_in_bounds(n_eff in 0.0f64..100.0, n in 1usize..60, budget in 0usize..20) {
        let k = choose_k(n_eff, n, budget);
        prop_assert!(k >= 1 && k <= n);
        prop_assert!(k <= (2 * budget).max(1));
    }

    #[test]
    fn selection_is_deterministic_and_within_budget(
        x in -1.0f32..1.0, y in -1.0f32..1.0, z in -1.0f32..1.0,
        t in 0.01f32..10.0, b in 0usize..4,
    ) {
        let mut q = [x, y, z];
        crate::embed::normalize(&mut q);
        let params = VpragParams { temperature: t, default_budget: b, ..VpragParams::default() };
        let ix = toy_index();
        let a = select(&ix, &q, &params).unwrap();
        prop_assert_eq!(&a, &select(&ix, &q, &params).unwrap());
        prop_assert!(a.elements.len() <= 3 * b);
        let mut seen = std::collections::HashSet::new();
        for e in &a.elements {
            prop_assert!(seen.insert(e.element), "duplicate element");
            prop_assert!(a.posts.iter().any(|p| p.post == e.post), "element from an unselected post");
        }
        let w: f64 = post_weights(&ix.captions.dots(&q), t).iter().sum();
        prop_assert!((w - 1.0).abs() < 1e-9);
    }
}
