//! Shared fixtures of the benchmarks: the real models, the example personas, and the
//! sentence lists the Python reference (`benches/reference/st_throughput.py`) embeds, so
//! both sides measure the same inputs.

use std::path::PathBuf;
use std::sync::Arc;

use zipp_core::embed::MiniLm;
use zipp_core::models::ModelSource;
use zipp_core::persona::JsonlReader;
use zipp_core::tokenize::ClipTokenizer;
use zipp_core::Persona;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("benches/ has a parent").to_path_buf()
}

pub fn minilm() -> Arc<MiniLm> {
    Arc::new(MiniLm::load(&ModelSource::Default).unwrap_or_else(|e| panic!("{e}")))
}

pub fn clip() -> Arc<ClipTokenizer> {
    Arc::new(ClipTokenizer::load_default().unwrap_or_else(|e| panic!("{e}")))
}

/// The example persona with `id`.
pub fn persona(id: &str) -> Persona {
    JsonlReader::open(root().join("examples/data/personas.jsonl"))
        .unwrap()
        .map(|p| p.unwrap())
        .find(|p| p.id == id)
        .unwrap_or_else(|| panic!("no persona {id}"))
}

/// `(sentences, single_query)` of `benches/data/st_sentences_{short,long}.json`.
pub fn sentences(kind: &str) -> (Vec<String>, String) {
    let path = root().join(format!("benches/data/st_sentences_{kind}.json"));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let list = v["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
    (list, v["single_query"].as_str().unwrap().to_string())
}

/// Summary of a paired measurement: sample `i` of `base` and of `other` were timed back to
/// back (in alternating order), so their ratio cancels the drift and load that both share.
#[derive(Debug, Clone, PartialEq)]
pub struct Paired {
    /// Number of pairs.
    pub n: usize,
    /// Median of `base` and of `other` (same unit as the input).
    pub base_median: f64,
    pub other_median: f64,
    /// Median of the per-pair ratios `other[i] / base[i]`.
    pub ratio_median: f64,
    /// Distribution-free 95% confidence interval of that median (order statistics).
    pub ratio_ci95: (f64, f64),
    /// 10th and 90th percentile of the per-pair ratios: the spread of a single pair.
    pub ratio_p10_p90: (f64, f64),
    /// Median of the per-pair differences `other[i] - base[i]`, with its 95% interval.
    pub diff_median: f64,
    pub diff_ci95: (f64, f64),
}

/// Median of a sorted, non-empty slice.
fn median_sorted(x: &[f64]) -> f64 {
    let n = x.len();
    if n % 2 == 1 {
        x[n / 2]
    } else {
        0.5 * (x[n / 2 - 1] + x[n / 2])
    }
}

/// `q`-quantile (0..=1) of a sorted, non-empty slice, linear between order statistics.
fn quantile_sorted(x: &[f64], q: f64) -> f64 {
    let pos = q.clamp(0.0, 1.0) * (x.len() - 1) as f64;
    let (lo, frac) = (pos.floor() as usize, pos.fract());
    if lo + 1 < x.len() {
        x[lo] + frac * (x[lo + 1] - x[lo])
    } else {
        x[lo]
    }
}

/// 95% confidence interval of the median of a sorted slice from its order statistics (no
/// distribution assumed; the normal approximation to the binomial, Conover's ranks
/// `⌊n/2 − 1.96·√n/2⌋` and `⌈1 + n/2 + 1.96·√n/2⌉`, 1-based). `None` below 6 values, where
/// the interval would be the whole sample or less than 95%.
pub fn median_ci95_sorted(x: &[f64]) -> Option<(f64, f64)> {
    let n = x.len();
    if n < 6 {
        return None;
    }
    let half = 1.959964 * (n as f64).sqrt() / 2.0;
    let lo = ((n as f64 / 2.0 - half).floor() as usize).clamp(1, n);
    let hi = ((1.0 + n as f64 / 2.0 + half).ceil() as usize).clamp(1, n);
    Some((x[lo - 1], x[hi - 1]))
}

/// Summarises pairs `(base[i], other[i])`; `None` if the lengths differ, a value is not
/// finite and positive, or there are fewer than 6 pairs (too few for a 95% interval).
pub fn paired_summary(base: &[f64], other: &[f64]) -> Option<Paired> {
    let n = base.len();
    if n != other.len() || n < 6 || base.iter().chain(other).any(|v| !(v.is_finite() && *v > 0.0)) {
        return None;
    }
    let sorted = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v
    };
    let ratios = sorted(base.iter().zip(other).map(|(b, o)| o / b).collect());
    let diffs = sorted(base.iter().zip(other).map(|(b, o)| o - b).collect());
    Some(Paired {
        n,
        base_median: median_sorted(&sorted(base.to_vec())),
        other_median: median_sorted(&sorted(other.to_vec())),
        ratio_median: median_sorted(&ratios),
        ratio_ci95: median_ci95_sorted(&ratios)?,
        ratio_p10_p90: (quantile_sorted(&ratios, 0.1), quantile_sorted(&ratios, 0.9)),
        diff_median: median_sorted(&diffs),
        diff_ci95: median_ci95_sorted(&diffs)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_interval_uses_conovers_ranks() {
        // n = 100: the 95% interval of the median is (x(40), x(61)) (Conover, Practical
        // Nonparametric Statistics, table A3 / the binomial(100, 1/2) tails).
        let x: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(median_ci95_sorted(&x), Some((40.0, 61.0)));
        // n = 11: ranks ⌊5.5 − 3.25⌋ = 2 and ⌈1 + 5.5 + 3.25⌉ = 10.
        let x: Vec<f64> = (1..=11).map(f64::from).collect();
        assert_eq!(median_ci95_sorted(&x), Some((2.0, 10.0)));
        assert_eq!(median_ci95_sorted(&x[..5]), None);
    }

    #[test]
    fn pairing_cancels_a_shared_drift() {
        // The base drifts by 10x across the run (load); `other` is always 5% slower than
        // the base of its own pair. Unpaired medians mix the drift in, paired ratios do not.
        let base: Vec<f64> = (0..200).map(|i| 100.0 * (1.0 + 9.0 * i as f64 / 199.0)).collect();
        let other: Vec<f64> = base.iter().map(|b| b * 1.05).collect();
        let p = paired_summary(&base, &other).unwrap();
        assert_eq!(p.n, 200);
        assert!((p.ratio_median - 1.05).abs() < 1e-12, "{p:?}");
        assert!((p.ratio_ci95.0 - 1.05).abs() < 1e-12 && (p.ratio_ci95.1 - 1.05).abs() < 1e-12, "{p:?}");
        assert!(p.diff_median > 0.0 && p.diff_ci95.0 <= p.diff_median && p.diff_median <= p.diff_ci95.1);
        assert!((p.other_median / p.base_median - 1.05).abs() < 1e-9);
    }

    #[test]
    fn ratio_spread_is_the_spread_of_single_pairs() {
        // Ratios 1.00, 1.01, …, 1.99 in a scrambled order.
        let base = vec![1000.0; 100];
        let other: Vec<f64> = (0..100).map(|i| 1000.0 + 10.0 * ((i * 37) % 100) as f64).collect();
        let p = paired_summary(&base, &other).unwrap();
        assert!((p.ratio_median - 1.495).abs() < 1e-12, "{p:?}");
        assert_eq!(p.ratio_ci95, (1.39, 1.6));
        assert!((p.ratio_p10_p90.0 - 1.099).abs() < 1e-9 && (p.ratio_p10_p90.1 - 1.891).abs() < 1e-9, "{p:?}");
        assert!((p.diff_median - 495.0).abs() < 1e-9);
    }

    #[test]
    fn bad_input_gives_no_summary() {
        assert_eq!(paired_summary(&[1.0; 10], &[1.0; 9]), None);
        assert_eq!(paired_summary(&[1.0; 5], &[1.0; 5]), None);
        let mut zero = vec![1.0; 10];
        zero[3] = 0.0;
        assert_eq!(paired_summary(&zero, &[1.0; 10]), None);
        assert_eq!(paired_summary(&[f64::NAN; 10], &[1.0; 10]), None);
    }
}
