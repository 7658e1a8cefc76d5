//! Image-level and distribution metrics over embeddings (SPEC §9): CLIPScore in both
//! conventions, personalization CLIPScore, CMMD, and IPF raking of subgroup cells.
//!
//! They take embeddings, not images: the CLIP model that makes them is the image issue's
//! (zipp-diffusion); anything that yields CLIP image and text embeddings can be scored here.
//!
//! **Scales.** CLIPScore (Hessel et al. 2021) is `2.5 · max(cos, 0)`, in [0, 2.5]; the "×100"
//! convention (torchmetrics, many papers) is `100 · max(cos, 0)`, in [0, 100]. Both only
//! compare images *of one prompt* (or one prompt across methods): CLIP cosines of unrelated
//! pairs cluster around 0.1–0.3 whatever the quality, so an absolute CLIPScore says little
//! on its own. CMMD (Jayasumana et al. 2024) is ×1000 the squared MMD with a Gaussian kernel
//! of σ = 10 on L2-normalised embeddings, biased estimator: 0 for identical sets, growing with
//! the distribution shift.

use zipp_core::error::{Error, Result};

fn check_vector(v: &[f32], what: &str) -> Result<f64> {
    if v.is_empty() {
        return Err(Error::InvalidInput(format!("{what} is empty")));
    }
    if v.iter().any(|x| !x.is_finite()) {
        return Err(Error::InvalidInput(format!("{what} has a non-finite value")));
    }
    let norm = v.iter().map(|x| (*x as f64) * (*x as f64)).sum::<f64>().sqrt();
    if norm == 0.0 {
        return Err(Error::InvalidInput(format!("{what} is the zero vector (no direction to compare)")));
    }
    Ok(norm)
}

/// The cosine of two embeddings of the same dimension (f64 arithmetic).
pub fn cosine(a: &[f32], b: &[f32]) -> Result<f64> {
    if a.len() != b.len() {
        return Err(Error::InvalidInput(format!(
            "embeddings of {} and {} values cannot be compared",
            a.len(),
            b.len()
        )));
    }
    let (na, nb) = (check_vector(a, "the first embedding")?, check_vector(b, "the second embedding")?);
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    Ok((dot / (na * nb)).clamp(-1.0, 1.0))
}

/// CLIPScore of an image embedding and a text embedding: `2.5 · max(cos, 0)` (Hessel et al.).
pub fn clip_score(image: &[f32], text: &[f32]) -> Result<f64> {
    Ok(2.5 * cosine(image, text)?.max(0.0))
}

/// CLIPScore in the ×100 convention: `100 · max(cos, 0)`.
pub fn clip_score_100(image: &[f32], text: &[f32]) -> Result<f64> {
    Ok(100.0 * cosine(image, text)?.max(0.0))
}

/// Personalization CLIPScore: the mean cosine between a generated image's embedding and the
/// person's reference images' embeddings (SPEC §9).
pub fn personalization_clip_score(image: &[f32], references: &[Vec<f32>]) -> Result<f64> {
    if references.is_empty() {
        return Err(Error::InvalidInput("personalization CLIPScore needs at least one reference image".into()));
    }
    let mut sum = 0.0;
    for r in references {
        sum += cosine(image, r)?;
    }
    Ok(sum / references.len() as f64)
}

/// CMMD's kernel bandwidth σ.
pub const CMMD_SIGMA: f64 = 10.0;
/// CMMD's scale.
pub const CMMD_SCALE: f64 = 1000.0;

/// L2-normalised rows, checked: the same dimension, finite, non-zero.
fn normalised(rows: &[Vec<f32>], what: &str, dim: Option<usize>) -> Result<Vec<Vec<f64>>> {
    if rows.is_empty() {
        return Err(Error::InvalidInput(format!("{what} has no embeddings")));
    }
    let d = dim.unwrap_or(rows[0].len());
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            if r.len() != d {
                return Err(Error::InvalidInput(format!("{what}[{i}] has {} values, expected {d}", r.len())));
            }
            let n = check_vector(r, &format!("{what}[{i}]"))?;
            Ok(r.iter().map(|x| *x as f64 / n).collect())
        })
        .collect()
}

/// CMMD between two sets of CLIP image embeddings (rows): `1000 · (mean K_xx + mean K_yy −
/// 2 mean K_xy)` with `K(a, b) = exp(−‖a − b‖² / (2σ²))`, σ = 10, on L2-normalised rows, the
/// biased estimator (diagonals included). 0 for identical sets.
pub fn cmmd(x: &[Vec<f32>], y: &[Vec<f32>]) -> Result<f64> {
    let xs = normalised(x, "x", None)?;
    let ys = normalised(y, "y", Some(xs[0].len()))?;
    let gamma = 1.0 / (2.0 * CMMD_SIGMA * CMMD_SIGMA);
    let mean_k = |a: &[Vec<f64>], b: &[Vec<f64>]| -> f64 {
        let mut s = 0.0;
        for p in a {
            for q in b {
                let d2: f64 = p.iter().zip(q).map(|(u, v)| (u - v) * (u - v)).sum();
                s += (-gamma * d2).exp();
            }
        }
        s / (a.len() * b.len()) as f64
    };
    // Rounding can leave −1e-16 for identical sets: the estimator is ≥ 0 in exact arithmetic.
    Ok((CMMD_SCALE * (mean_k(&xs, &xs) + mean_k(&ys, &ys) - 2.0 * mean_k(&xs, &ys))).max(0.0))
}

/// Raking stops when every weighted marginal is within this relative error of its target.
pub const IPF_TOLERANCE: f64 = 1e-5;
/// … or after this many sweeps (one sweep adjusts every dimension once).
pub const IPF_MAX_SWEEPS: usize = 500;

/// The result of [`rake`].
#[derive(Debug, Clone, PartialEq)]
pub struct Raked {
    /// The raked weight of every cell (row-major over `dims`), summing to the table's total.
    pub weights: Vec<f64>,
    pub sweeps: usize,
    /// Whether the tolerance was reached (else `IPF_MAX_SWEEPS` ran out).
    pub converged: bool,
    /// `max |current / target − 1|` over every marginal with a positive target, at the end.
    pub max_relative_error: f64,
}

/// Iterative proportional fitting: reweights the cells of a table (`counts`, row-major over
/// the dimensions `dims`, e.g. age × gender × country) so that each dimension's weighted
/// marginal matches `targets[d]` (shares of that dimension's categories, summing to 1),
/// scaled to the table's total. Zero cells stay zero. A category with a positive target but
/// no sample at all cannot be matched: [`Error::InvalidInput`] names it.
pub fn rake(counts: &[f64], dims: &[usize], targets: &[Vec<f64>]) -> Result<Raked> {
    let cells: usize = dims.iter().product();
    if dims.is_empty() || dims.contains(&0) || counts.len() != cells {
        return Err(Error::InvalidInput(format!(
            "a table of shape {dims:?} has {cells} cells, got {} counts",
            counts.len()
        )));
    }
    if counts.iter().any(|c| !c.is_finite() || *c < 0.0) {
        return Err(Error::InvalidInput("cell counts must be finite and ≥ 0".into()));
    }
    let total: f64 = counts.iter().sum();
    if total <= 0.0 {
        return Err(Error::InvalidInput("the table is empty (all counts 0)".into()));
    }
    if targets.len() != dims.len() {
        return Err(Error::InvalidInput(format!("{} dimensions but {} target marginals", dims.len(), targets.len())));
    }
    for (d, (t, n)) in targets.iter().zip(dims).enumerate() {
        if t.len() != *n || t.iter().any(|v| !v.is_finite() || *v < 0.0) {
            return Err(Error::InvalidInput(format!("target {d} must be {n} finite shares ≥ 0")));
        }
        let s: f64 = t.iter().sum();
        if (s - 1.0).abs() > 1e-6 {
            return Err(Error::InvalidInput(format!("target {d}'s shares sum to {s}, not 1")));
        }
    }
    // Cell index → category of dimension d.
    let strides: Vec<usize> = (0..dims.len()).map(|d| dims[d + 1..].iter().product()).collect();
    let category = |cell: usize, d: usize| (cell / strides[d]) % dims[d];
    let marginal = |w: &[f64], d: usize| {
        let mut m = vec![0.0; dims[d]];
        for (c, v) in w.iter().enumerate() {
            m[category(c, d)] += v;
        }
        m
    };
    for (d, t) in targets.iter().enumerate() {
        let m = marginal(counts, d);
        if let Some(k) = (0..dims[d]).find(|&k| t[k] > 0.0 && m[k] == 0.0) {
            return Err(Error::InvalidInput(format!(
                "dimension {d}, category {k} has a target share of {} but no sample to weight",
                t[k]
            )));
        }
    }
    let error = |w: &[f64]| {
        let mut worst = 0f64;
        for (d, t) in targets.iter().enumerate() {
            let m = marginal(w, d);
            for k in 0..dims[d] {
                if t[k] > 0.0 {
                    worst = worst.max((m[k] / (t[k] * total) - 1.0).abs());
                }
            }
        }
        worst
    };
    let mut w = counts.to_vec();
    let mut sweeps = 0;
    let mut err = error(&w);
    while err >= IPF_TOLERANCE && sweeps < IPF_MAX_SWEEPS {
        for (d, t) in targets.iter().enumerate() {
            let m = marginal(&w, d);
            for (c, v) in w.iter_mut().enumerate() {
                let k = category(c, d);
                *v = if m[k] > 0.0 { *v * t[k] * total / m[k] } else { 0.0 };
            }
        }
        sweeps += 1;
        err = error(&w);
    }
    Ok(Raked { weights: w, sweeps, converged: err < IPF_TOLERANCE, max_relative_error: err })
}

/// Raw vs raked aggregate of a per-cell metric (`values[c]`: the metric's mean over cell c's
/// samples; cells without samples are skipped): `(raw, ipf, Δ%)` with raw weighted by the
/// counts, ipf by the raked weights, Δ% = 100 · (ipf − raw) / raw.
pub fn ipf_aggregate(values: &[f64], counts: &[f64], raked: &Raked) -> Result<(f64, f64, f64)> {
    if values.len() != counts.len() || raked.weights.len() != counts.len() {
        return Err(Error::InvalidInput(format!(
            "{} values, {} counts and {} weights: one per cell is needed",
            values.len(),
            counts.len(),
            raked.weights.len()
        )));
    }
    let mean = |w: &[f64]| -> Result<f64> {
        let (mut s, mut n) = (0.0, 0.0);
        for ((v, c), wi) in values.iter().zip(counts).zip(w) {
            if *c > 0.0 {
                if !v.is_finite() {
                    return Err(Error::InvalidInput("a cell with samples has a non-finite value".into()));
                }
                s += v * wi;
                n += wi;
            }
        }
        if n > 0.0 {
            Ok(s / n)
        } else {
            Err(Error::InvalidInput("no weight on any cell with samples".into()))
        }
    };
    let (raw, ipf) = (mean(counts)?, mean(&raked.weights)?);
    let delta = if raw != 0.0 { 100.0 * (ipf - raw) / raw } else { f64::NAN };
    Ok((raw, ipf, delta))
}
