//! Statistics for the evaluation tables (SPEC §4 and §9).
//!
//! SPEC §4 reports, per method, the mean score, the **win %** (share of queries where the
//! method is best: [`argmax_with_tie`] per query, [`best_counts`] over a table) and
//! **Cohen's d against the best method** with the pooled standard deviation ([`cohens_d`] over
//! two [`Moments`]). SPEC §9 adds the **exact two-sided binomial test** for win rates
//! ([`binomial_test`]), the **Wilson score interval** ([`wilson_interval`]) and **Spearman's ρ**
//! ([`spearman`], built on [`average_ranks`]).
//!
//! Each function follows the scipy definition named in its documentation and is tested
//! against values printed by scipy (the generating script is pasted in the tests).
//!
//! Bad input — an empty slice where a value is needed, NaN or ±∞, `k > n`, a probability or
//! confidence out of range, mismatched lengths — is an [`Error::InvalidInput`] naming the
//! function and the problem. Nothing here panics, whatever the input.
//!
//! The evaluation keeps one [`Moments`] (three numbers) per (task, method) instead of every
//! score, so its memory does not grow with the number of queries.
//!
//! ```
//! use zipp_eval::stats::{binomial_test, cohens_d, wilson_interval, Moments};
//!
//! let best = Moments::from_slice(&[0.61, 0.72, 0.58, 0.69, 0.66]);
//! let other = Moments::from_slice(&[0.52, 0.55, 0.49, 0.60]);
//! let d = cohens_d(&best, &other).unwrap();
//! assert!((d - 2.1122946333043076).abs() < 1e-12);
//!
//! // 61 wins out of 100 head-to-head queries: is that more than chance?
//! let p = binomial_test(61, 100, 0.5).unwrap();
//! let (lo, hi) = wilson_interval(61, 100, 0.95).unwrap();
//! assert!(p < 0.05 && lo > 0.5 && hi < 0.7);
//! ```

use num_bigint::{BigInt, BigUint, Sign};
use num_integer::Integer;
use serde::{Deserialize, Serialize};

use zipp_core::error::{Error, Result};

fn invalid(function: &str, problem: impl std::fmt::Display) -> Error {
    Error::InvalidInput(format!("{function}: {problem}"))
}

/// `Err` naming the first non-finite value of `xs`, if any.
fn require_finite(function: &str, what: &str, xs: &[f64]) -> Result<()> {
    match xs.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(invalid(function, format!("{what}[{i}] is {}, expected a finite number", xs[i]))),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// Moments
// ---------------------------------------------------------------------------------------------

/// Streaming count, mean and variance of a sample, **exact and mergeable in any order**. This is
/// what the evaluation keeps per (task, method), so memory stays bounded however many queries
/// are scored, and shards evaluated apart (threads, processes, Ray actors, Spark tasks) merge
/// into bit for bit the moments of one pass over all the values.
///
/// For values x₁ … xₙ it holds `n` and the exact sums `Σxᵢ` and `Σxᵢ²` as fixed-point
/// integers (units of 2⁻¹⁰⁷⁴ and 2⁻²¹⁴⁸, the smallest subnormal and its square, so every
/// finite `f64` and its square is representable exactly, and so are their sums). Integer
/// addition is associative: pushing values in any order, or merging partial moments in any
/// grouping, gives the same state — `==` compares it. The statistics are derived from the exact
/// sums and rounded once: the mean `Σxᵢ / n` and the sample variance
/// `s² = (n Σxᵢ² − (Σxᵢ)²) / (n (n − 1))` are the correctly rounded values of the exact
/// quotients (results in the subnormal range may be rounded twice). That is more accurate than
/// Welford's update, whose rounding depends on the order of the values.
///
/// Serialised (serde) as `{"n": 3, "sum": "0x…p-52", "sum_sq": "0x…p-104"}`: each sum an
/// exact `integer × 2^exponent` written in hexadecimal, readable back bit-identical by
/// [`Moments`]' `Deserialize` (and by any big-integer library: `int(m, 16) * 2**e`).
///
/// Values are not checked: a NaN or ±∞ pushed in is the caller's bug and poisons the mean and
/// variance (they become NaN or ±∞) — it never panics.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Moments {
    n: u64,
    /// Σxᵢ over the finite values, in units of 2⁻¹⁰⁷⁴.
    sum: Fixed<SUM_LIMBS>,
    /// Σxᵢ² over the finite values, in units of 2⁻²¹⁴⁸.
    sum_sq: Fixed<SQ_LIMBS>,
    /// Non-finite values seen: NaN, +∞, −∞.
    nan: bool,
    pos_inf: bool,
    neg_inf: bool,
}

/// `|x| < 2¹⁰²⁴` is `< 2²⁰⁹⁸` units of 2⁻¹⁰⁷⁴; 2⁶⁴ such values stay below 2²¹⁶², inside
/// 35 × 64 = 2240 bits of two's complement.
const SUM_LIMBS: usize = 35;
/// `x² < 2²⁰⁴⁸` is `< 2⁴¹⁹⁶` units of 2⁻²¹⁴⁸; 2⁶⁴ of them stay below 2⁴²⁶⁰ < 2⁴³⁵¹.
const SQ_LIMBS: usize = 68;
/// The units of the two sums, as powers of two.
const SUM_EXP: i64 = -1074;
const SQ_EXP: i64 = -2148;

impl Default for Moments {
    fn default() -> Self {
        Moments { n: 0, sum: Fixed::ZERO, sum_sq: Fixed::ZERO, nan: false, pos_inf: false, neg_inf: false }
    }
}

impl std::fmt::Debug for Moments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Moments").field("n", &self.n).field("mean", &self.mean()).field("sd", &self.sd()).finish()
    }
}

impl Moments {
    /// No values yet.
    pub fn new() -> Moments {
        Moments::default()
    }

    /// Adds one value: exactly, to the two sums.
    ///
    /// A non-finite `x` poisons the result (see the type's documentation).
    pub fn push(&mut self, x: f64) {
        self.n = self.n.saturating_add(1);
        if x.is_nan() {
            self.nan = true;
        } else if x == f64::INFINITY {
            self.pos_inf = true;
        } else if x == f64::NEG_INFINITY {
            self.neg_inf = true;
        } else {
            // x = ±mant · 2^(e − 1074) with e ≥ 0, so x² = mant² · 2^(2e − 2148).
            let bits = x.to_bits();
            let (field, frac) = ((bits >> 52) & 0x7ff, bits & ((1u64 << 52) - 1));
            let (mant, e) = if field == 0 { (frac, 0) } else { (frac | (1u64 << 52), field as usize - 1) };
            let negative = bits >> 63 == 1;
            self.sum.add_shifted(mant as u128, e, negative);
            self.sum_sq.add_shifted(mant as u128 * mant as u128, 2 * e, false);
        }
    }

    /// Adds every value summarised by `other`, exactly as if they had been pushed here: the
    /// result does not depend on how the values were split or in which order shards merge.
    pub fn merge(&mut self, other: &Moments) {
        self.n = self.n.saturating_add(other.n);
        self.sum.add(&other.sum);
        self.sum_sq.add(&other.sum_sq);
        self.nan |= other.nan;
        self.pos_inf |= other.pos_inf;
        self.neg_inf |= other.neg_inf;
    }

    /// The moments of `xs`.
    pub fn from_slice(xs: &[f64]) -> Moments {
        let mut moments = Moments::new();
        for &x in xs {
            moments.push(x);
        }
        moments
    }

    /// How many values were pushed or merged in.
    pub fn count(&self) -> u64 {
        self.n
    }

    /// A non-finite mean when a non-finite value was added (what summing them would give).
    fn poison(&self) -> Option<f64> {
        if self.nan || (self.pos_inf && self.neg_inf) {
            Some(f64::NAN)
        } else if self.pos_inf {
            Some(f64::INFINITY)
        } else if self.neg_inf {
            Some(f64::NEG_INFINITY)
        } else {
            None
        }
    }

    /// The mean `Σxᵢ / n`, correctly rounded; `None` when no value was added.
    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.poison().unwrap_or_else(|| ratio(&self.sum.to_bigint(), self.n as u128, SUM_EXP)))
    }

    /// `n Σxᵢ² − (Σxᵢ)²` in units of 2⁻²¹⁴⁸: exact, and ≥ 0 (Cauchy–Schwarz).
    fn scatter(&self) -> BigInt {
        let s = self.sum.to_bigint();
        let d = self.sum_sq.to_bigint() * BigInt::from(self.n) - &s * &s;
        d.max(BigInt::ZERO)
    }

    /// `M₂ = Σ(xᵢ − x̄)²`, correctly rounded; NaN when poisoned.
    fn m2(&self) -> f64 {
        if self.poison().is_some() {
            return f64::NAN;
        }
        if self.n == 0 {
            return 0.0;
        }
        ratio(&self.scatter(), self.n as u128, SQ_EXP)
    }

    /// The sample variance `s² = Σ(xᵢ − x̄)² / (n − 1)` (numpy's `ddof=1`), correctly rounded;
    /// `None` when `n < 2`.
    pub fn variance(&self) -> Option<f64> {
        (self.n >= 2).then(|| {
            if self.poison().is_some() {
                f64::NAN
            } else {
                ratio(&self.scatter(), self.n as u128 * (self.n - 1) as u128, SQ_EXP)
            }
        })
    }

    /// The sample standard deviation `s = √s²`; `None` when `n < 2`.
    pub fn sd(&self) -> Option<f64> {
        self.variance().map(f64::sqrt)
    }
}

/// The serialised form of [`Moments`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MomentsRepr {
    n: u64,
    sum: String,
    sum_sq: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    nan: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pos_inf: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    neg_inf: bool,
}

impl Serialize for Moments {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        MomentsRepr {
            n: self.n,
            sum: hex_exact(&self.sum.to_bigint(), SUM_EXP),
            sum_sq: hex_exact(&self.sum_sq.to_bigint(), SQ_EXP),
            nan: self.nan,
            pos_inf: self.pos_inf,
            neg_inf: self.neg_inf,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Moments {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let r = MomentsRepr::deserialize(deserializer)?;
        let sum = parse_hex_exact(&r.sum, SUM_EXP).map_err(|e| D::Error::custom(format!("moments `sum`: {e}")))?;
        let sum_sq =
            parse_hex_exact(&r.sum_sq, SQ_EXP).map_err(|e| D::Error::custom(format!("moments `sum_sq`: {e}")))?;
        let m = Moments { n: r.n, sum, sum_sq, nan: r.nan, pos_inf: r.pos_inf, neg_inf: r.neg_inf };
        let finite_empty = m.sum == Fixed::ZERO && m.sum_sq == Fixed::ZERO && !(m.nan || m.pos_inf || m.neg_inf);
        if (m.n == 0 && !finite_empty) || m.sum_sq.is_negative() {
            return Err(D::Error::custom("moments: the sums are impossible for the count"));
        }
        Ok(m)
    }
}

/// A fixed-width two's-complement integer of `N` little-endian 64-bit limbs.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Fixed<const N: usize>([u64; N]);

impl<const N: usize> Fixed<N> {
    const ZERO: Fixed<N> = Fixed([0; N]);

    /// `self ± value · 2^shift`. The callers' bounds keep the value's three limbs inside.
    fn add_shifted(&mut self, value: u128, shift: usize, negative: bool) {
        let (limb, off) = (shift / 64, (shift % 64) as u32);
        let (v0, v1) = (value as u64, (value >> 64) as u64);
        let words =
            if off == 0 { [v0, v1, 0] } else { [v0 << off, (v1 << off) | (v0 >> (64 - off)), v1 >> (64 - off)] };
        let mut carry = false;
        for i in limb..N {
            let w = words.get(i - limb).copied().unwrap_or(0);
            if i - limb >= words.len() && !carry {
                break;
            }
            let (r, c) = if negative {
                let (a, b1) = self.0[i].overflowing_sub(w);
                let (a, b2) = a.overflowing_sub(carry as u64);
                (a, b1 || b2)
            } else {
                let (a, c1) = self.0[i].overflowing_add(w);
                let (a, c2) = a.overflowing_add(carry as u64);
                (a, c1 || c2)
            };
            self.0[i] = r;
            carry = c;
        }
    }

    fn add(&mut self, other: &Fixed<N>) {
        let mut carry = false;
        for (a, &b) in self.0.iter_mut().zip(&other.0) {
            let (r, c1) = a.overflowing_add(b);
            let (r, c2) = r.overflowing_add(carry as u64);
            *a = r;
            carry = c1 || c2;
        }
    }

    fn is_negative(&self) -> bool {
        self.0[N - 1] >> 63 == 1
    }

    fn to_bigint(self) -> BigInt {
        let bytes: Vec<u8> = self.0.iter().flat_map(|l| l.to_le_bytes()).collect();
        BigInt::from_signed_bytes_le(&bytes)
    }

    /// `None` when `v` does not fit.
    fn from_bigint(v: &BigInt) -> Option<Fixed<N>> {
        let mut bytes = v.to_signed_bytes_le();
        if bytes.len() > N * 8 {
            return None;
        }
        let fill = if v.sign() == Sign::Minus { 0xff } else { 0 };
        bytes.resize(N * 8, fill);
        let mut limbs = [0u64; N];
        for (l, chunk) in limbs.iter_mut().zip(bytes.chunks_exact(8)) {
            *l = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        }
        Some(Fixed(limbs))
    }
}

/// `num / den · 2^exp2`, correctly rounded to the nearest `f64` (ties to even; a result in
/// the subnormal range may be rounded twice).
fn ratio(num: &BigInt, den: u128, exp2: i64) -> f64 {
    if num.sign() == Sign::NoSign || den == 0 {
        return if den == 0 { f64::NAN } else { 0.0 };
    }
    let den = BigUint::from(den);
    let mag = num.magnitude();
    // At least 66 quotient bits: 53 kept, a rounding bit, and the rest folded into a sticky bit.
    let shift = (den.bits() as i64 + 66 - mag.bits() as i64).max(0) as u64;
    let (q, r) = (mag << shift).div_rem(&den);
    let extra = q.bits().saturating_sub(64);
    let top = (&q >> extra).iter_u64_digits().next().unwrap_or(0);
    let sticky = r != BigUint::ZERO || q.trailing_zeros().is_some_and(|tz| tz < extra);
    // Bit 0 is below the 53 bits an f64 keeps: the cast rounds to nearest even correctly.
    let v = scale2((top | sticky as u64) as f64, extra as i64 - shift as i64 + exp2);
    if num.sign() == Sign::Minus {
        -v
    } else {
        v
    }
}

/// `x · 2^e`, in exact steps while the result stays normal.
fn scale2(mut x: f64, mut e: i64) -> f64 {
    while e > 1000 {
        x *= 2f64.powi(1000);
        e -= 1000;
    }
    while e < -1000 {
        x *= 2f64.powi(-1000);
        e += 1000;
    }
    x * 2f64.powi(e as i32)
}

/// `v · 2^exp` as `[-]0x<hex>p<exp'>` with the hexadecimal integer odd (or `0x0p0`): exact.
fn hex_exact(v: &BigInt, exp: i64) -> String {
    let Some(tz) = v.trailing_zeros() else { return "0x0p0".into() };
    let m = v.magnitude() >> tz;
    let sign = if v.sign() == Sign::Minus { "-" } else { "" };
    format!("{sign}0x{}p{}", m.to_str_radix(16), tz as i64 + exp)
}

/// The inverse of [`hex_exact`], as a multiple of `2^unit`.
fn parse_hex_exact<const N: usize>(text: &str, unit: i64) -> std::result::Result<Fixed<N>, String> {
    let bad = || format!("expected an exact `[-]0x<hex>p<exponent>`, got `{text}`");
    let (negative, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let rest = rest.strip_prefix("0x").ok_or_else(bad)?;
    let (hex, exp) = rest.split_once('p').ok_or_else(bad)?;
    if hex.is_empty() || hex.len() > N * 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mant = BigUint::parse_bytes(hex.as_bytes(), 16).ok_or_else(bad)?;
    let exp: i64 = exp.parse().map_err(|_| bad())?;
    let shift = exp.checked_sub(unit).ok_or_else(bad)?;
    if mant == BigUint::ZERO {
        return Ok(Fixed::ZERO);
    }
    if shift < 0 || shift > (N * 64) as i64 {
        return Err(format!("`{text}` is not a multiple of 2^{unit} in range"));
    }
    let v = BigInt::from_biguint(if negative { Sign::Minus } else { Sign::Plus }, mant << shift as u64);
    Fixed::from_bigint(&v).ok_or_else(|| format!("`{text}` is out of range"))
}

/// Neumaier's compensated sum: the error does not grow with the number of terms.
fn compensated_sum(xs: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut compensation) = (0.0f64, 0.0f64);
    for x in xs {
        let t = sum + x;
        compensation += if sum.abs() >= x.abs() { (sum - t) + x } else { (x - t) + sum };
        sum = t;
    }
    sum + compensation
}

/// The arithmetic mean `Σxᵢ / n`, with a compensated sum (and no overflow for finite values
/// near `f64::MAX`).
///
/// `InvalidInput` when `xs` is empty or holds a NaN or ±∞.
pub fn mean(xs: &[f64]) -> Result<f64> {
    if xs.is_empty() {
        return Err(invalid("mean", "no values (the mean of an empty slice is undefined)"));
    }
    require_finite("mean", "xs", xs)?;
    let n = xs.len() as f64;
    let m = compensated_sum(xs.iter().copied()) / n;
    if m.is_finite() {
        Ok(m)
    } else {
        // The sum overflowed although every value is finite: scale first.
        Ok(compensated_sum(xs.iter().map(|x| x / n)))
    }
}

/// Cohen's d between two groups with the pooled standard deviation (SPEC §4, "Cohen's d
/// against the best method"):
///
/// `d = |x̄_a − x̄_b| / s_pooled`, `s_pooled = √(((n_a − 1) s_a² + (n_b − 1) s_b²) / (n_a + n_b − 2))`.
///
/// `None` when d is undefined: either group has fewer than 2 values, or `s_pooled == 0` and
/// the means are equal (e.g. two constant groups with the same value), or a group was
/// poisoned by a non-finite value. When `s_pooled == 0` and the means differ the separation
/// is total and the result is `Some(f64::INFINITY)`.
pub fn cohens_d(a: &Moments, b: &Moments) -> Option<f64> {
    if a.n < 2 || b.n < 2 {
        return None;
    }
    // (n_a − 1) s_a² is M₂_a; the degrees of freedom are added as floats so huge counts cannot overflow.
    let dof = (a.n - 1) as f64 + (b.n - 1) as f64;
    let pooled = ((a.m2() + b.m2()) / dof).sqrt();
    let diff = (a.mean()? - b.mean()?).abs();
    if !(pooled.is_finite() && diff.is_finite()) {
        return None;
    }
    if pooled == 0.0 {
        return if diff == 0.0 { None } else { Some(f64::INFINITY) };
    }
    Some(diff / pooled)
}

// ---------------------------------------------------------------------------------------------
// Exact binomial test
// ---------------------------------------------------------------------------------------------

/// The largest `n` for which every count `0..=n` is exactly an `f64`.
const MAX_EXACT_COUNT: u64 = 1 << 53;

/// scipy's relative tolerance when deciding whether an outcome is "no more likely" than the
/// observed one (it keeps the mirror outcome of a symmetric distribution in the tail despite
/// rounding).
const BINOM_RERR: f64 = 1e-7;

/// A tail sum stops once a term is this small relative to the running sum. Terms fall at
/// least geometrically past the stopping point, so the neglected rest is below ~√n · 1e-20.
const TAIL_CUTOFF: f64 = 1e-20;

/// ln(2π).
const LN_2PI: f64 = 1.8378770664093453;

/// `stirlerr(n) = ln n! − ln(√(2πn) (n/e)ⁿ)` for n = 0..=15 (index 0 is unused), from
/// `lgamma(n+1) − (n+½) ln n + n − ½ ln 2π` evaluated with mpmath at 40 digits.
const STIRLERR_SMALL: [f64; 16] = [
    0.0,
    0.08106146679532726,
    0.0413406959554093,
    0.02767792568499834,
    0.020790672103765093,
    0.016644691189821193,
    0.013876128823070748,
    0.01189670994589177,
    0.010411265261972096,
    0.009255462182712733,
    0.00833056343336287,
    0.007573675487951841,
    0.00694284010720953,
    0.006408994188004207,
    0.0059513701127588475,
    0.005554733551962801,
];

/// Stirling's-series remainder `ln n! − ln(√(2πn) (n/e)ⁿ)` for an integral `n ≥ 1`
/// (Loader 2000; table below 16, the asymptotic series `1/12n − 1/360n³ + …` above).
fn stirlerr(n: f64) -> f64 {
    if n <= 15.0 {
        // n is integral and in 1..=15 here, so the index is in bounds.
        return STIRLERR_SMALL[n as usize];
    }
    const S0: f64 = 1.0 / 12.0;
    const S1: f64 = 1.0 / 360.0;
    const S2: f64 = 1.0 / 1260.0;
    const S3: f64 = 1.0 / 1680.0;
    const S4: f64 = 1.0 / 1188.0;
    let nn = n * n;
    if n > 500.0 {
        (S0 - S1 / nn) / n
    } else if n > 80.0 {
        (S0 - (S1 - S2 / nn) / nn) / n
    } else if n > 35.0 {
        (S0 - (S1 - (S2 - S3 / nn) / nn) / nn) / n
    } else {
        (S0 - (S1 - (S2 - (S3 - S4 / nn) / nn) / nn) / nn) / n
    }
}

/// The deviance term `bd0(x, m) = x ln(x/m) + m − x`, by a series when `x ≈ m` where the
/// closed form would cancel catastrophically (Loader 2000).
fn bd0(x: f64, m: f64) -> f64 {
    if (x - m).abs() < 0.1 * (x + m) {
        let mut v = (x - m) / (x + m);
        let mut s = (x - m) * v;
        if s.abs() < f64::MIN_POSITIVE {
            return s;
        }
        let mut ej = 2.0 * x * v;
        v *= v;
        for j in 1..1000u32 {
            ej *= v;
            let next = s + ej / f64::from(2 * j + 1);
            if next == s {
                return next;
            }
            s = next;
        }
    }
    x * (x / m).ln() + m - x
}

/// Binomial(n, p) with `0 < p < 1` and `1 ≤ n ≤ 2⁵³`.
struct Binomial {
    n: u64,
    p: f64,
    q: f64,
}

impl Binomial {
    /// `ln P(X = k)` by Loader's saddle-point expansion (the algorithm of R's `dbinom`):
    /// `ln pmf = stirlerr(n) − stirlerr(k) − stirlerr(n−k) − bd0(k, np) − bd0(n−k, nq)
    ///           − ½ ln(2π k (n−k) / n)`.
    /// Unlike `lnΓ(n+1) − lnΓ(k+1) − lnΓ(n−k+1) + …`, no large terms cancel, so the relative
    /// error of the pmf stays near machine precision for n = 10⁷ and beyond (the lnΓ
    /// difference loses ~|lnΓ(n+1)|·ε ≈ 2e-8 there).
    fn ln_pmf(&self, k: u64) -> f64 {
        let (n, x, p, q) = (self.n as f64, k as f64, self.p, self.q);
        if k == 0 {
            return if p < 0.1 { -bd0(n, n * q) - n * p } else { n * q.ln() };
        }
        if k == self.n {
            return if q < 0.1 { -bd0(n, n * p) - n * q } else { n * p.ln() };
        }
        let n_minus_x = n - x;
        let lc = stirlerr(n) - stirlerr(x) - stirlerr(n_minus_x) - bd0(x, n * p) - bd0(n_minus_x, n * q);
        let lf = LN_2PI + x.ln() + (-x / n).ln_1p();
        lc - 0.5 * lf
    }

    /// `P(X ≤ a)` for `a` at or below the mode, summed outward from `a` with the ratio
    /// `pmf(i−1)/pmf(i) = i q / ((n−i+1) p)` until the terms are negligible (O(√(npq)) terms).
    fn lower_tail(&self, a: u64) -> f64 {
        let (n, odds) = (self.n as f64, self.q / self.p);
        let (mut term, mut sum) = (1.0f64, 1.0f64);
        let mut i = a;
        while i > 0 {
            let fi = i as f64;
            term *= fi / (n - fi + 1.0) * odds;
            sum += term;
            i -= 1;
            if term <= sum * TAIL_CUTOFF {
                break;
            }
        }
        (self.ln_pmf(a) + sum.ln()).exp()
    }

    /// `P(X ≥ b)` for `b` at or above the mode, with `pmf(i+1)/pmf(i) = (n−i) p / ((i+1) q)`.
    fn upper_tail(&self, b: u64) -> f64 {
        let (n, odds) = (self.n as f64, self.p / self.q);
        let (mut term, mut sum) = (1.0f64, 1.0f64);
        let mut i = b;
        while i < self.n {
            let fi = i as f64;
            term *= (n - fi) / (fi + 1.0) * odds;
            sum += term;
            i += 1;
            if term <= sum * TAIL_CUTOFF {
                break;
            }
        }
        (self.ln_pmf(b) + sum.ln()).exp()
    }
}

/// Exact two-sided binomial test: the p-value of `k` successes in `n` trials when the success
/// probability is `p`, defined as in `scipy.stats.binomtest(k, n, p, alternative="two-sided")`:
///
/// `p-value = min(1, Σ_{i : P(X=i) ≤ P(X=k)·(1 + 10⁻⁷)} P(X=i))`, `X ~ Binomial(n, p)`,
///
/// the total probability of the outcomes no more likely than the observed one (the
/// `1 + 10⁻⁷` is scipy's relative tolerance on that comparison). When `k = np` exactly the
/// p-value is 1. For win rates (SPEC §9) `p = 0.5` and `k` is the number of queries a method
/// won against another.
///
/// How: the boundary of the opposite tail is found by binary search on the pmf (monotone on
/// each side of the mode), as scipy does; each tail is summed outward from its inner end until
/// the terms are negligible, with every pmf from Loader's saddle-point formula in log space.
/// The cost is O(log n + √(np(1−p))) and the relative error stays around 1e-12 or better for
/// n up to 10⁷ and beyond; p-values below ~1e-308 underflow towards 0, as in scipy.
///
/// `InvalidInput` when `n == 0`, `n > 2⁵³` (counts no longer exact in `f64`), `k > n`, or `p`
/// is not in `[0, 1]` (NaN included).
pub fn binomial_test(k: u64, n: u64, p: f64) -> Result<f64> {
    const F: &str = "binomial_test";
    if n == 0 {
        return Err(invalid(F, "n must be at least 1 (no trials)"));
    }
    if n > MAX_EXACT_COUNT {
        return Err(invalid(F, format!("n = {n} exceeds 2^53, counts are no longer exact in f64")));
    }
    if k > n {
        return Err(invalid(F, format!("k = {k} successes exceeds n = {n} trials")));
    }
    if !(0.0..=1.0).contains(&p) {
        return Err(invalid(F, format!("p = {p} is not a probability in [0, 1]")));
    }
    let (k_f, n_f) = (k as f64, n as f64);
    let expected = p * n_f;
    if k_f == expected {
        return Ok(1.0);
    }
    if p == 0.0 || p == 1.0 {
        // Only k = 0 (resp. n) is possible, and that case returned above.
        return Ok(0.0);
    }
    let dist = Binomial { n, p, q: 1.0 - p };
    let threshold = dist.ln_pmf(k) + BINOM_RERR.ln_1p();
    let at_most = |j: u64| dist.ln_pmf(j) <= threshold;

    let (lower_end, upper_start) = if k_f < expected {
        // The other tail: the first j ≥ ⌈np⌉ with pmf(j) ≤ threshold (pmf decreasing there).
        let (mut lo, mut hi) = (expected.ceil() as u64, n + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if at_most(mid) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        (Some(k), (lo <= n).then_some(lo))
    } else {
        // The other tail: the last j ≤ ⌊np⌋ with pmf(j) ≤ threshold (pmf increasing there).
        let (mut lo, mut hi) = (0u64, expected.floor() as u64 + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if at_most(mid) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        (lo.checked_sub(1), Some(k))
    };
    let lower = lower_end.map_or(0.0, |a| dist.lower_tail(a));
    let upper = upper_start.map_or(0.0, |b| dist.upper_tail(b));
    Ok((lower + upper).min(1.0))
}

// ---------------------------------------------------------------------------------------------
// Wilson interval
// ---------------------------------------------------------------------------------------------

/// Coefficients of Wichura's AS 241 (PPND16), highest degree first; the denominators' constant
/// term is 1. Central region `|p − ½| ≤ 0.425`, in `r = 0.180625 − (p − ½)²`:
const AS241_CENTRAL: ([f64; 8], [f64; 7]) = (
    [
        2509.0809287301227,
        33430.57558358813,
        67265.7709270087,
        45921.95393154987,
        13731.69376550946,
        1971.5909503065513,
        133.14166789178438,
        3.3871328727963665,
    ],
    [
        5226.495278852854,
        28729.085735721943,
        39307.89580009271,
        21213.794301586597,
        5394.196021424751,
        687.1870074920579,
        42.31333070160091,
    ],
);
/// Intermediate tail, `r = √(−ln min(p, 1−p)) ≤ 5`, in `r − 1.6`.
const AS241_NEAR: ([f64; 8], [f64; 7]) = (
    [
        0.0007745450142783414,
        0.022723844989269184,
        0.2417807251774506,
        1.2704582524523684,
        3.6478483247632045,
        5.769497221460691,
        4.630337846156546,
        1.4234371107496835,
    ],
    [
        1.0507500716444169e-09,
        0.0005475938084995345,
        0.015198666563616457,
        0.14810397642748008,
        0.6897673349851,
        1.6763848301838038,
        2.053191626637759,
    ],
);
/// Far tail, `r > 5`, in `r − 5`.
const AS241_FAR: ([f64; 8], [f64; 7]) = (
    [
        2.0103343992922881e-07,
        2.7115555687434876e-05,
        0.0012426609473880784,
        0.026532189526576124,
        0.29656057182850487,
        1.7848265399172913,
        5.463784911164114,
        6.657904643501103,
    ],
    [
        2.0442631033899397e-15,
        1.421511758316446e-07,
        1.8463183175100548e-05,
        0.0007868691311456133,
        0.014875361290850615,
        0.1369298809227358,
        0.599832206555888,
    ],
);

/// `num(r) / den(r)` by Horner's rule, `den` having constant term 1.
fn as241_ratio((num, den): &([f64; 8], [f64; 7]), r: f64) -> f64 {
    let num = num.iter().fold(0.0, |acc, c| acc * r + c);
    let den = den.iter().fold(0.0, |acc, c| acc * r + c) * r + 1.0;
    num / den
}

/// The standard normal quantile Φ⁻¹(p) for `0 < p < 1`: Wichura's algorithm AS 241
/// (PPND16, Applied Statistics 37(3), 1988), relative accuracy about 1e-16; the coefficients
/// are those of the pure-Python fallback of CPython's `statistics.NormalDist.inv_cdf`.
fn normal_quantile(p: f64) -> f64 {
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        return q * as241_ratio(&AS241_CENTRAL, 0.180625 - q * q);
    }
    let r = (-(if q <= 0.0 { p } else { 1.0 - p }).ln()).sqrt();
    let x = if r <= 5.0 { as241_ratio(&AS241_NEAR, r - 1.6) } else { as241_ratio(&AS241_FAR, r - 5.0) };
    if q < 0.0 {
        -x
    } else {
        x
    }
}

/// The Wilson score interval for a proportion of `k` successes in `n` trials at two-sided
/// `confidence` (e.g. 0.95), without continuity correction (SPEC §9). With `p̂ = k/n` and
/// `z = Φ⁻¹(½ + ½·confidence)`:
///
/// `(2n p̂ + z² ∓ z √(4n p̂ (1 − p̂) + z²)) / (2 (n + z²))`,
///
/// with the lower end exactly 0 when `k = 0` and the upper end exactly 1 when `k = n`. This is
/// `scipy.stats.binomtest(k, n).proportion_ci(confidence_level, method="wilson")` (and
/// statsmodels' `proportion_confint(method="wilson")`), computed in the same order.
///
/// `InvalidInput` when `n == 0`, `k > n`, or `confidence` is not strictly between 0 and 1.
pub fn wilson_interval(k: u64, n: u64, confidence: f64) -> Result<(f64, f64)> {
    const F: &str = "wilson_interval";
    if n == 0 {
        return Err(invalid(F, "n must be at least 1 (no trials)"));
    }
    if k > n {
        return Err(invalid(F, format!("k = {k} successes exceeds n = {n} trials")));
    }
    if !(confidence > 0.0 && confidence < 1.0) {
        return Err(invalid(F, format!("confidence = {confidence} must be strictly between 0 and 1")));
    }
    let upper_quantile = 0.5 + 0.5 * confidence;
    // For a confidence within an ulp of 1, ½ + ½c rounds to 1; take the quantile from the tail.
    let z =
        if upper_quantile < 1.0 { normal_quantile(upper_quantile) } else { -normal_quantile(0.5 * (1.0 - confidence)) };
    let n_f = n as f64;
    let p_hat = k as f64 / n_f;
    let z2 = z * z;
    let denom = 2.0 * (n_f + z2);
    let center = (2.0 * n_f * p_hat + z2) / denom;
    let delta = z / denom * (4.0 * n_f * p_hat * (1.0 - p_hat) + z2).sqrt();
    let lo = if k == 0 { 0.0 } else { center - delta };
    let hi = if k == n { 1.0 } else { center + delta };
    Ok((lo, hi))
}

// ---------------------------------------------------------------------------------------------
// Ranks and Spearman's rho
// ---------------------------------------------------------------------------------------------

/// 1-based ranks of `xs`, tied values sharing the average of the ranks they span, like
/// `scipy.stats.rankdata(xs, method="average")`: a run of equal values occupying sorted
/// positions `i+1 ..= j` all get `(i + 1 + j) / 2`. `-0.0` and `0.0` are equal (a tie).
///
/// An empty slice gives an empty vector. `InvalidInput` for NaN or ±∞.
pub fn average_ranks(xs: &[f64]) -> Result<Vec<f64>> {
    require_finite("average_ranks", "xs", xs)?;
    let mut order: Vec<usize> = (0..xs.len()).collect();
    // total_cmp puts -0.0 right before 0.0, so equal values (by ==) are still adjacent.
    order.sort_by(|&a, &b| xs[a].total_cmp(&xs[b]));
    let mut ranks = vec![0.0; xs.len()];
    let mut start = 0;
    while start < order.len() {
        let value = xs[order[start]];
        let end = start + order[start..].iter().take_while(|&&i| xs[i] == value).count();
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    Ok(ranks)
}

/// Spearman's rank correlation ρ (SPEC §9): the Pearson correlation of the average ranks
/// `r = rank(x)`, `s = rank(y)` (ties handled as in [`average_ranks`]), like
/// `scipy.stats.spearmanr(x, y).statistic`:
///
/// `ρ = Σ(rᵢ − r̄)(sᵢ − s̄) / √(Σ(rᵢ − r̄)² Σ(sᵢ − s̄)²)`, clamped to `[−1, 1]`.
///
/// `InvalidInput` when the lengths differ, there are fewer than 2 pairs, a value is NaN or
/// ±∞, or either side is constant (ρ is undefined there; scipy returns NaN).
pub fn spearman(x: &[f64], y: &[f64]) -> Result<f64> {
    const F: &str = "spearman";
    if x.len() != y.len() {
        return Err(invalid(F, format!("x has {} values but y has {}", x.len(), y.len())));
    }
    if x.len() < 2 {
        return Err(invalid(F, format!("needs at least 2 pairs, got {}", x.len())));
    }
    require_finite(F, "x", x)?;
    require_finite(F, "y", y)?;
    for (side, values) in [("x", x), ("y", y)] {
        if values.iter().all(|&v| v == values[0]) {
            return Err(invalid(F, format!("{side} is constant, so the correlation is undefined")));
        }
    }
    let (rx, ry) = (average_ranks(x)?, average_ranks(y)?);
    let n = rx.len() as f64;
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in rx.iter().zip(&ry) {
        let (dx, dy) = (a - mx, b - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    Ok((sxy / (sxx.sqrt() * syy.sqrt())).clamp(-1.0, 1.0))
}

// ---------------------------------------------------------------------------------------------
// Winners
// ---------------------------------------------------------------------------------------------

/// Whether `score` ties with the best score `top` (`top − score ≤ tie_eps`; equal infinities tie).
fn ties_with(top: f64, score: f64, tie_eps: f64) -> bool {
    score == top || top - score <= tie_eps
}

/// The winner of one query (SPEC §4 win %): the index of the highest score (the first one
/// if several are equal) and whether it is tied, i.e. whether another score `s` has
/// `max − s ≤ tie_eps`. Called per query, so it allocates nothing.
///
/// `None` for an empty slice, a NaN score, or a NaN or negative `tie_eps`. Infinite scores
/// are ordered as usual.
pub fn argmax_with_tie(scores: &[f64], tie_eps: f64) -> Option<(usize, bool)> {
    if tie_eps.is_nan() || tie_eps < 0.0 {
        return None;
    }
    let mut top = *scores.first()?;
    let mut best = 0;
    for (i, &s) in scores.iter().enumerate() {
        if s.is_nan() {
            return None;
        }
        if s > top {
            (top, best) = (s, i);
        }
    }
    let tied = scores.iter().enumerate().any(|(i, &s)| i != best && ties_with(top, s, tie_eps));
    Some((best, tied))
}

/// Win and tie counts per method over a table of scores (SPEC §4 win %). `rows` holds one row
/// per query and each row one score per method (all rows the same length). For each query,
/// the methods within `tie_eps` (absolute) of the best score are its winners (see
/// [`argmax_with_tie`]): a lone winner counts a *win*, several winners each count a *tie*.
/// Returns `(wins, ties)` per method, in column order; `Σ wins + (queries with a tie)` is the
/// number of rows.
///
/// `InvalidInput` when there are no rows, the rows are empty or of different lengths, a score
/// is NaN or ±∞, or `tie_eps` is negative or not finite.
pub fn best_counts(rows: &[Vec<f64>], tie_eps: f64) -> Result<Vec<(u64, u64)>> {
    const F: &str = "best_counts";
    if !(tie_eps.is_finite() && tie_eps >= 0.0) {
        return Err(invalid(F, format!("tie_eps = {tie_eps} must be finite and non-negative")));
    }
    let Some(first) = rows.first() else {
        return Err(invalid(F, "no rows (no queries to count wins over)"));
    };
    let methods = first.len();
    if methods == 0 {
        return Err(invalid(F, "rows have no scores (no methods)"));
    }
    let mut counts = vec![(0u64, 0u64); methods];
    for (query, row) in rows.iter().enumerate() {
        if row.len() != methods {
            return Err(invalid(F, format!("row {query} has {} scores but row 0 has {methods}", row.len())));
        }
        require_finite(F, &format!("rows[{query}]"), row)?;
        let Some((best, tied)) = argmax_with_tie(row, tie_eps) else {
            return Err(invalid(F, format!("row {query} has no best score")));
        };
        if tied {
            let top = row[best];
            for (count, &s) in counts.iter_mut().zip(row) {
                if ties_with(top, s, tie_eps) {
                    count.1 += 1;
                }
            }
        } else {
            counts[best].0 += 1;
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    // Reference values below were printed by scipy 1.17.1 / numpy 2.4.6 (Python 3.11.7), run
    // in a throwaway virtualenv — scipy is not a project dependency. To regenerate, run this
    // script and paste its output over the constants:
    //
    // # Reference values for zipp-core/src/eval/stats.rs tests.
    // # Run: python3 -m venv /tmp/scipy-venv && /tmp/scipy-venv/bin/pip install scipy numpy
    // #      /tmp/scipy-venv/bin/python gen.py
    // import numpy as np
    // import scipy
    // from scipy import stats
    //
    // print(f"// scipy {scipy.__version__}, numpy {np.__version__}")
    //
    // BINOM = [
    //     (5, 10, 0.5), (3, 15, 0.1), (0, 10, 0.5), (10, 10, 0.5), (1, 20, 0.2), (7, 20, 0.2),
    //     (2, 50, 0.2), (18, 50, 0.2), (0, 30, 0.2), (30, 30, 0.2), (6, 100, 0.01), (0, 1000, 0.01),
    //     (60, 100, 0.5), (40, 100, 0.5), (9, 12, 0.37), (498_500, 1_000_000, 0.5),
    //     (501_500, 1_000_000, 0.5), (198_800, 1_000_000, 0.2), (201_200, 1_000_000, 0.2),
    //     (495_000, 1_000_000, 0.5), (3_200, 1_000_000, 0.003), (2_995_653, 10_000_000, 0.3),
    //     (3_004_347, 10_000_000, 0.3), (5_000_100, 10_000_000, 0.5), (25, 10_000_000, 1e-6),
    //     (1, 10_000_000, 1e-6), (9_999_990, 10_000_000, 0.999999), (150, 200, 0.9),
    //     (1_150, 2_000, 0.5), (4_000_000, 10_000_000, 0.4), (3_996_000, 10_000_000, 0.4), (4_800, 10_000_000, 0.0005),
    // ]
    // print("const BINOM_REF: &[(u64, u64, f64, f64)] = &[")
    // for k, n, p in BINOM:
    //     print(f"    ({k}, {n}, {p!r}, {float(stats.binomtest(k, n, p).pvalue)!r}),")
    // print("];")
    //
    // WILSON = [
    //     (0, 10, 0.95), (10, 10, 0.95), (3, 15, 0.95), (7, 20, 0.9), (50, 100, 0.99),
    //     (1, 1_000_000, 0.95), (123_456, 1_000_000, 0.999), (1, 2, 0.5), (999, 1000, 0.95),
    // ]
    // print("const WILSON_REF: &[(u64, u64, f64, f64, f64)] = &[")
    // for k, n, c in WILSON:
    //     ci = stats.binomtest(k, n).proportion_ci(confidence_level=c, method="wilson")
    //     print(f"    ({k}, {n}, {c!r}, {float(ci.low)!r}, {float(ci.high)!r}),")
    // print("];")
    //
    // PPF = [0.975, 0.995, 0.95, 0.5, 0.9995, 0.025, 0.3, 0.075, 0.0749, 0.925, 0.9251,
    //        1e-10, 1 - 1e-10, 1e-300, 0.6, 0.999999]
    // print("const NORM_PPF_REF: &[(f64, f64)] = &[")
    // for q in PPF:
    //     print(f"    ({q!r}, {float(stats.norm.ppf(q))!r}),")
    // print("];")
    //
    // SPEARMAN = [
    //     ([1.0, 2.0, 3.0, 4.0, 5.0], [5.0, 6.0, 7.0, 8.0, 7.0]),
    //     ([1.0, 2.0, 2.0, 3.0, 4.0, 4.0, 4.0], [0.3, 0.1, 0.1, 0.9, 0.5, 0.5, 0.2]),
    //     ([0.12, -3.5, 8.25, 0.0, 2.5, 7.0], [1.5, 2.5, -0.5, 3.5, 0.25, 0.0]),
    //     ([1.0, 2.0], [2.0, 1.0]),
    //     ([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0, 5.0], [2.0, 7.0, 1.0, 8.0, 2.0, 8.0, 1.0, 8.0, 2.0, 8.0, 4.0]),
    // ]
    // print("const SPEARMAN_REF: &[(&[f64], &[f64], f64)] = &[")
    // for x, y in SPEARMAN:
    //     print(f"    (&{x!r}, &{y!r}, {float(stats.spearmanr(x, y).statistic)!r}),")
    // print("];")
    //
    // COHEN = [
    //     ([0.61, 0.72, 0.58, 0.69, 0.66], [0.52, 0.55, 0.49, 0.60]),
    //     ([1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0, 10.0, 12.0]),
    //     ([0.1, 0.4], [0.35, 0.2, 0.3]),
    // ]
    // print("const COHEN_REF: &[(&[f64], &[f64], f64)] = &[")
    // for a, b in COHEN:
    //     a_, b_ = np.asarray(a), np.asarray(b)
    //     na, nb = len(a_), len(b_)
    //     s = np.sqrt(((na - 1) * a_.var(ddof=1) + (nb - 1) * b_.var(ddof=1)) / (na + nb - 2))
    //     print(f"    (&{a!r}, &{b!r}, {float(abs(a_.mean() - b_.mean()) / s)!r}),")
    // print("];")
    //
    // Tolerances: 1e-12 relative for Wilson ends, Spearman's ρ, Cohen's d and normal quantiles
    // (absolute where the reference is 0). 1e-9 relative for scipy's p-values (all above 1e-300):
    // scipy is itself off by up to 1.2e-10 — binomtest(1, 10**7, 1e-6) against the exact value
    // below — and by 1e-13..4e-13 on the n = 10^6..10^7 cases, while this module agrees with the
    // exact values to 1e-12 (BINOM_EXACT; measured ≤ 2e-14).

    const BINOM_REF: &[(u64, u64, f64, f64)] = &[
        (5, 10, 0.5, 1.0),
        (3, 15, 0.1, 0.18406106910639106),
        (0, 10, 0.5, 0.001953125),
        (10, 10, 0.5, 0.001953125),
        (1, 20, 0.2, 0.15586780384381124),
        (7, 20, 0.2, 0.09822172861346881),
        (2, 50, 0.2, 0.0022178514426644345),
        (18, 50, 0.2, 0.0075461895381059305),
        (0, 30, 0.2, 0.002139809368012913),
        (30, 30, 0.2, 1.0737418240000018e-21),
        (6, 100, 0.01, 0.0005345344639930342),
        (0, 1000, 0.01, 8.520045585902545e-05),
        (60, 100, 0.5, 0.05688793364098089),
        (40, 100, 0.5, 0.05688793364098089),
        (9, 12, 0.37, 0.012459144406361004),
        (498500, 1000000, 0.5, 0.002708655306059374),
        (501500, 1000000, 0.5, 0.002708655306059374),
        (198800, 1000000, 0.2, 0.002688720280625184),
        (201200, 1000000, 0.2, 0.0027220090511954993),
        (495000, 1000000, 0.5, 1.538155504390233e-23),
        (3200, 1000000, 0.003, 0.0002937999165441449),
        (2995653, 10000000, 0.3, 0.002702321284607668),
        (3004347, 10000000, 0.3, 0.0027053846994011333),
        (5000100, 10000000, 0.5, 0.9498227832109386),
        (25, 10000000, 1e-06, 4.6948869219443206e-05),
        (1, 10000000, 1e-06, 0.0011990428092391705),
        (9999990, 10000000, 0.999999, 1.0),
        (150, 200, 0.9, 9.175983517942985e-10),
        (1150, 2000, 0.5, 2.1112304670078665e-11),
        (4000000, 10000000, 0.4, 1.0),
        (3996000, 10000000, 0.4, 0.009823273006656676),
        (4800, 10000000, 0.0005, 0.004563801868695766),
    ];
    const WILSON_REF: &[(u64, u64, f64, f64, f64)] = &[
        (0, 10, 0.95, 0.0, 0.27753279986288926),
        (10, 10, 0.95, 0.7224672001371109, 1.0),
        (3, 15, 0.95, 0.07047549346981558, 0.4518544871516936),
        (7, 20, 0.9, 0.20226004005676104, 0.5334873111515284),
        (50, 100, 0.99, 0.37527962504483986, 0.6247203749551602),
        (1, 1000000, 0.95, 1.765245767453709e-07, 5.664911804311442e-06),
        (123456, 1000000, 0.999, 0.12237762384725606, 0.12454253017460803),
        (1, 2, 0.5, 0.2847588845819623, 0.7152411154180377),
        (999, 1000, 0.95, 0.9943574414020421, 0.9998234536293739),
    ];
    const NORM_PPF_REF: &[(f64, f64)] = &[
        (0.975, 1.959963984540054),
        (0.995, 2.5758293035489004),
        (0.95, 1.6448536269514722),
        (0.5, 0.0),
        (0.9995, 3.2905267314919255),
        (0.025, -1.9599639845400545),
        (0.3, -0.5244005127080409),
        (0.075, -1.4395314709384563),
        (0.0749, -1.4402382675279635),
        (0.925, 1.4395314709384563),
        (0.9251, 1.4402382675279635),
        (1e-10, -6.361340902404056),
        (0.9999999999, 6.361340889697422),
        (1e-300, -37.0470962993612),
        (0.6, 0.2533471031357997),
        (0.999999, 4.753424308817087),
    ];
    const SPEARMAN_REF: &[(&[f64], &[f64], f64)] = &[
        (&[1.0, 2.0, 3.0, 4.0, 5.0], &[5.0, 6.0, 7.0, 8.0, 7.0], 0.8207826816681233),
        (&[1.0, 2.0, 2.0, 3.0, 4.0, 4.0, 4.0], &[0.3, 0.1, 0.1, 0.9, 0.5, 0.5, 0.2], 0.43827416203085595),
        (&[0.12, -3.5, 8.25, 0.0, 2.5, 7.0], &[1.5, 2.5, -0.5, 3.5, 0.25, 0.0], -0.942857142857143),
        (&[1.0, 2.0], &[2.0, 1.0], -0.9999999999999999),
        (
            &[3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0, 5.0],
            &[2.0, 7.0, 1.0, 8.0, 2.0, 8.0, 1.0, 8.0, 2.0, 8.0, 4.0],
            0.1384567651467695,
        ),
    ];
    const COHEN_REF: &[(&[f64], &[f64], f64)] = &[
        (&[0.61, 0.72, 0.58, 0.69, 0.66], &[0.52, 0.55, 0.49, 0.6], 2.1122946333043076),
        (&[1.0, 2.0, 3.0, 4.0], &[2.0, 4.0, 6.0, 8.0, 10.0, 12.0], 1.469693845669907),
        (&[0.1, 0.4], &[0.35, 0.2, 0.3], 0.24253562503633333),
    ];

    // Exact p-values for some of the large-n cases above, from mpmath 1.4.1 (same throwaway
    // virtualenv; `pip install mpmath`), printed by this script:
    //
    // # Exact two-sided binomial p-values (scipy's definition) with mpmath at 40 digits, summing each
    // # tail outward from its inner end until the terms fall below 1e-30 of the sum.
    // import mpmath as m
    //
    // m.mp.dps = 40
    // CASES = [(1, 10_000_000, 1e-6), (498_500, 1_000_000, 0.5), (198_800, 1_000_000, 0.2),
    //          (495_000, 1_000_000, 0.5), (2_995_653, 10_000_000, 0.3), (3_996_000, 10_000_000, 0.4)]
    //
    //
    // def pvalue(k, n, pf):
    //     p = m.mpf(pf)
    //     q = 1 - p
    //     lpmf = lambda j: m.loggamma(n + 1) - m.loggamma(j + 1) - m.loggamma(n - j + 1) + j * m.log(p) + (n - j) * m.log(q)
    //
    //     def tail(start, step):
    //         t = s = m.exp(lpmf(start))
    //         i = start
    //         while 0 < i < n or (step > 0 and i == 0):
    //             t *= (m.mpf(i) / (n - i + 1) * q / p) if step < 0 else (m.mpf(n - i) / (i + 1) * p / q)
    //             s += t
    //             i += step
    //             if t < s * m.mpf("1e-30"):
    //                 break
    //         return s
    //
    //     thr = lpmf(k) + m.log(1 + m.mpf("1e-7"))
    //     if k < p * n:  # other tail: first j >= ceil(pn) with pmf(j) <= pmf(k) (1 + 1e-7)
    //         lo, hi = int(m.ceil(p * n)), n + 1
    //         while lo < hi:
    //             mid = (lo + hi) // 2
    //             lo, hi = (lo, mid) if lpmf(mid) <= thr else (mid + 1, hi)
    //         return tail(k, -1) + (tail(lo, 1) if lo <= n else 0)
    //     lo, hi = 0, int(m.floor(p * n)) + 1  # other tail: last j <= floor(pn) with pmf(j) <= ...
    //     while lo < hi:
    //         mid = (lo + hi) // 2
    //         lo, hi = (mid + 1, hi) if lpmf(mid) <= thr else (lo, mid)
    //     return (tail(lo - 1, -1) if lo >= 1 else 0) + tail(k, 1)
    //
    //
    // print(f"// mpmath {m.__version__}")
    // print("const BINOM_EXACT: &[(u64, u64, f64, f64)] = &[")
    // for k, n, p in CASES:
    //     print(f"    ({k}, {n}, {p!r}, {float(pvalue(k, n, p))!r}),")
    // print("];")

    const BINOM_EXACT: &[(u64, u64, f64, f64)] = &[
        (1, 10000000, 1e-06, 0.0011990428093827778),
        (498500, 1000000, 0.5, 0.002708655306059757),
        (198800, 1000000, 0.2, 0.0026887202806247954),
        (495000, 1000000, 0.5, 1.538155504390735e-23),
        (2995653, 10000000, 0.3, 0.0027023212846086),
        (3996000, 10000000, 0.4, 0.009823273006657982),
    ];

    fn assert_close(got: f64, want: f64, rel: f64, what: &str) {
        let err = if want == 0.0 { got.abs() } else { ((got - want) / want).abs() };
        assert!(err <= rel, "{what}: got {got:e}, want {want:e}, relative error {err:e} > {rel:e}");
    }

    fn is_invalid<T: std::fmt::Debug>(r: Result<T>) -> bool {
        matches!(r, Err(Error::InvalidInput(_)))
    }

    // --- Moments, mean, Cohen's d ---

    #[test]
    fn moments_of_a_small_sample() {
        let m = Moments::from_slice(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert_eq!(m.count(), 8);
        assert_eq!(m.mean(), Some(5.0));
        assert_close(m.variance().unwrap(), 32.0 / 7.0, 1e-15, "variance");
        assert_close(m.sd().unwrap(), (32.0f64 / 7.0).sqrt(), 1e-15, "sd");

        assert_eq!(Moments::new(), Moments::default());
        assert_eq!((Moments::new().mean(), Moments::new().variance()), (None, None));
        let one = Moments::from_slice(&[3.5]);
        assert_eq!((one.mean(), one.variance(), one.sd()), (Some(3.5), None, None));
    }

    #[test]
    fn merge_equals_from_slice_of_the_concatenation() {
        let xs = [0.61, 0.72, 0.58, 0.69, 0.66, 0.52, 0.55, 0.49, 0.60, 1e3, -7.25, 1e-310, -3e200];
        let whole = Moments::from_slice(&xs);
        for split in 0..=xs.len() {
            let mut left = Moments::from_slice(&xs[..split]);
            left.merge(&Moments::from_slice(&xs[split..]));
            // Exact sums: the same state bit for bit, not merely close.
            assert_eq!(left, whole, "split at {split}");
            let mut right = Moments::from_slice(&xs[split..]);
            right.merge(&Moments::from_slice(&xs[..split]));
            assert_eq!(right, whole, "merged the other way at {split}");
        }
        let mut reversed: Vec<f64> = xs.to_vec();
        reversed.reverse();
        assert_eq!(Moments::from_slice(&reversed), whole);
        let mut empty = Moments::new();
        empty.merge(&Moments::new());
        assert_eq!(empty, Moments::new());
    }

    /// Correctly rounded mean and variance of the exact sums. Reference: Python's `fractions`
    /// (exact rationals; `float()` of a Fraction rounds correctly), independent of this code:
    /// ```text
    /// from fractions import Fraction as F
    /// for xs in cases: fx = [F(x) for x in xs]; n = len(fx); s = sum(fx); q = sum(x*x for x in fx)
    ///     print(float(s / n).hex(), float((n*q - s*s) / (n*(n-1))).hex())
    /// ```
    #[test]
    fn moments_are_correctly_rounded_against_exact_rationals() {
        let offset: Vec<f64> = (0..7).map(|i| 1e9 + 0.1 * i as f64).collect();
        let cases: [(&[f64], f64, f64); 4] = [
            (&[1e16, 0.1, -1e16, 0.2, 0.3, 1.0], 0.26666666666666666, 4e+31),
            (&[0.61, 0.72, 0.58, 0.69, 0.66, 0.52, 0.55, 0.49, 0.60], 0.6022222222222222, 0.005944444444444442),
            (&[1e150, -1e150, 1e-300, 5e-324, 3.0, -2.5, 2f64.powi(-1000), 1e-160], 0.0625, 2.8571428571428572e+299),
            (&offset, 1000000000.3, 0.0466666650772105),
        ];
        for (xs, mean, variance) in cases {
            let m = Moments::from_slice(xs);
            assert_eq!(m.mean().unwrap().to_bits(), mean.to_bits(), "mean of {xs:?}");
            assert_eq!(m.variance().unwrap().to_bits(), variance.to_bits(), "variance of {xs:?}");
        }
        // The extremes: sums beyond f64's range, and the smallest subnormal.
        assert_eq!(Moments::from_slice(&[f64::MAX, f64::MAX]).mean(), Some(f64::MAX));
        assert_eq!(Moments::from_slice(&[f64::MAX, f64::MAX]).variance(), Some(0.0));
        assert_eq!(Moments::from_slice(&[5e-324, 5e-324, 5e-324]).mean(), Some(5e-324));
    }

    #[test]
    fn moments_serialize_exactly_and_read_back_bit_identical() {
        let json = serde_json::to_value(Moments::from_slice(&[1.0, 3.0])).unwrap();
        assert_eq!(json, serde_json::json!({ "n": 2, "sum": "0x1p2", "sum_sq": "0x5p1" }));
        let m = Moments::from_slice(&[0.61, -7.25, 1e-310, 3e200, f64::INFINITY]);
        let text = serde_json::to_string(&m).unwrap();
        assert!(text.contains(r#""pos_inf":true"#), "{text}");
        assert_eq!(serde_json::from_str::<Moments>(&text).unwrap(), m);
        let empty = serde_json::to_string(&Moments::new()).unwrap();
        assert_eq!(serde_json::from_str::<Moments>(&empty).unwrap(), Moments::new());
        for bad in [
            r#"{"n": 0, "sum": "0x1p0", "sum_sq": "0x0p0"}"#,
            r#"{"n": 1, "sum": "0x1p-1080", "sum_sq": "0x0p0"}"#,
            r#"{"n": 1, "sum": "1.5", "sum_sq": "0x0p0"}"#,
            r#"{"n": 1, "sum": "0x1p3000", "sum_sq": "0x0p0"}"#,
            r#"{"n": 1, "sum": "0x1p0", "sum_sq": "-0x1p0"}"#,
            r#"{"n": 1, "sum": "0x1p0", "sum_sq": "0x1p0", "mean": 1}"#,
            r#"{"n": 1, "sum": "0xzp0", "sum_sq": "0x1p0"}"#,
        ] {
            assert!(serde_json::from_str::<Moments>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_non_finite_value_poisons_moments_without_panicking() {
        let mut m = Moments::from_slice(&[1.0, f64::NAN, 2.0]);
        assert!(m.mean().unwrap().is_nan());
        m.merge(&Moments::from_slice(&[f64::INFINITY, 1.0]));
        assert!(!m.variance().unwrap().is_finite());
        assert_eq!(cohens_d(&m, &Moments::from_slice(&[1.0, 2.0])), None);
    }

    #[test]
    fn mean_of_values() {
        assert_eq!(mean(&[1.0, 2.0, 3.0, 4.0]).unwrap(), 2.5);
        assert_eq!(mean(&[f64::MAX, f64::MAX]).unwrap(), f64::MAX);
        assert_eq!(mean(&[1e16, 1.0, -1e16, 1.0]).unwrap(), 0.5);
        for bad in [&[][..], &[1.0, f64::NAN], &[f64::NEG_INFINITY]] {
            assert!(is_invalid(mean(bad)), "{bad:?}");
        }
    }

    #[test]
    fn cohens_d_matches_numpy() {
        for &(a, b, want) in COHEN_REF {
            let (ma, mb) = (Moments::from_slice(a), Moments::from_slice(b));
            assert_close(cohens_d(&ma, &mb).unwrap(), want, 1e-12, "cohens_d");
            assert_close(cohens_d(&mb, &ma).unwrap(), want, 1e-12, "cohens_d (swapped)");
        }
    }

    #[test]
    fn cohens_d_edge_cases() {
        let a = Moments::from_slice(&[0.2, 0.4, 0.9]);
        assert_eq!(cohens_d(&a, &a), Some(0.0));
        let (c1, c2) = (Moments::from_slice(&[0.5, 0.5]), Moments::from_slice(&[0.7, 0.7, 0.7]));
        assert_eq!(cohens_d(&c1, &c1), None, "constant and equal: undefined");
        assert_eq!(cohens_d(&c1, &c2), Some(f64::INFINITY), "constant and different: total separation");
        assert_eq!(cohens_d(&a, &Moments::from_slice(&[1.0])), None, "a group of one");
        assert_eq!(cohens_d(&Moments::new(), &a), None);
    }

    // --- binomial test ---

    #[test]
    fn binomial_test_matches_scipy() {
        for &(k, n, p, want) in BINOM_REF {
            let got = binomial_test(k, n, p).unwrap();
            assert_close(got, want, 1e-9, &format!("binomial_test({k}, {n}, {p})"));
        }
    }

    #[test]
    fn binomial_test_matches_exact_values() {
        for &(k, n, p, want) in BINOM_EXACT {
            let got = binomial_test(k, n, p).unwrap();
            assert_close(got, want, 1e-12, &format!("binomial_test({k}, {n}, {p})"));
        }
    }

    #[test]
    fn binomial_test_hand_checked() {
        assert_eq!(binomial_test(5, 10, 0.5).unwrap(), 1.0);
        // k = 0 or n at p = ½: both extremes, 2 · 2⁻¹⁰.
        assert_close(binomial_test(0, 10, 0.5).unwrap(), 2.0 / 1024.0, 1e-14, "k=0");
        assert_close(binomial_test(10, 10, 0.5).unwrap(), 2.0 / 1024.0, 1e-14, "k=n");
        // n = 1: both outcomes equally likely at p = ½.
        assert_eq!(binomial_test(1, 1, 0.5).unwrap(), 1.0);
        // Degenerate p: only one outcome is possible.
        assert_eq!(binomial_test(0, 7, 0.0).unwrap(), 1.0);
        assert_eq!(binomial_test(1, 7, 0.0).unwrap(), 0.0);
        assert_eq!(binomial_test(7, 7, 1.0).unwrap(), 1.0);
        assert_eq!(binomial_test(6, 7, 1.0).unwrap(), 0.0);
        // Far beyond f64's range the p-value underflows to (almost) 0, as in scipy.
        let tiny = binomial_test(0, 1_000_000, 0.5).unwrap();
        assert!((0.0..1e-300).contains(&tiny), "{tiny:e}");
        // Large n stays fast (O(√n) terms) and symmetric.
        let big = 1_000_000_000;
        let (lo, hi) =
            (binomial_test(big / 2 - 40_000, big, 0.5).unwrap(), binomial_test(big / 2 + 40_000, big, 0.5).unwrap());
        assert!(lo > 0.0 && lo < 0.02, "{lo}");
        assert_close(lo, hi, 1e-9, "symmetric tails at n = 1e9");
    }

    #[test]
    fn binomial_test_with_extreme_p_stays_a_probability() {
        let extremes = [f64::from_bits(1), 1e-300, f64::EPSILON / 2.0, 1.0 - f64::EPSILON / 2.0, 1.0 - 1e-12];
        for p in extremes {
            for (k, n) in [(0, 1), (1, 1), (0, 10_000_000), (1, 10_000_000), (5, 10), (10_000_000, 10_000_000)] {
                let pv = binomial_test(k, n, p).unwrap();
                assert!((0.0..=1.0).contains(&pv), "binomial_test({k}, {n}, {p:e}) = {pv}");
            }
        }
        // p = 2⁻⁵³ with n = 2⁵³ trials: one success is the expected count.
        assert_eq!(binomial_test(1, 1 << 53, f64::EPSILON / 2.0).unwrap(), 1.0);
    }

    #[test]
    fn binomial_test_rejects_bad_input() {
        assert!(is_invalid(binomial_test(0, 0, 0.5)));
        assert!(is_invalid(binomial_test(11, 10, 0.5)));
        assert!(is_invalid(binomial_test(u64::MAX, u64::MAX, 0.5)));
        for p in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
            assert!(is_invalid(binomial_test(3, 10, p)), "p = {p}");
        }
        let Err(Error::InvalidInput(message)) = binomial_test(11, 10, 0.5) else { unreachable!() };
        assert!(message.starts_with("binomial_test:") && message.contains("k = 11"), "{message}");
    }

    // --- normal quantile and Wilson interval ---

    #[test]
    fn normal_quantile_matches_scipy() {
        assert!((normal_quantile(0.975) - 1.959963984540054).abs() < 1e-12);
        for &(p, want) in NORM_PPF_REF {
            assert_close(normal_quantile(p), want, 1e-12, &format!("normal_quantile({p})"));
        }
    }

    #[test]
    fn wilson_interval_matches_scipy() {
        for &(k, n, c, lo, hi) in WILSON_REF {
            let (got_lo, got_hi) = wilson_interval(k, n, c).unwrap();
            assert_close(got_lo, lo, 1e-12, &format!("wilson_interval({k}, {n}, {c}).0"));
            assert_close(got_hi, hi, 1e-12, &format!("wilson_interval({k}, {n}, {c}).1"));
        }
    }

    #[test]
    fn wilson_interval_hand_checked() {
        // k = 0: the interval is [0, z² / (n + z²)].
        let z = 1.959963984540054;
        let (lo, hi) = wilson_interval(0, 10, 0.95).unwrap();
        assert_eq!(lo, 0.0);
        assert_close(hi, z * z / (10.0 + z * z), 1e-12, "k = 0 upper end");
        // Symmetric around ½ at k = n/2.
        let (lo, hi) = wilson_interval(5, 10, 0.9).unwrap();
        assert_close(lo + hi, 1.0, 1e-15, "k = n/2");
        // A confidence within an ulp of 1 still gives a finite interval.
        let (lo, hi) = wilson_interval(5, 10, 1.0 - f64::EPSILON / 2.0).unwrap();
        assert!(lo > 0.0 && hi < 1.0 && lo < hi, "({lo}, {hi})");
    }

    #[test]
    fn wilson_interval_rejects_bad_input() {
        assert!(is_invalid(wilson_interval(0, 0, 0.95)));
        assert!(is_invalid(wilson_interval(3, 2, 0.95)));
        for c in [0.0, 1.0, -0.5, 95.0, f64::NAN, f64::INFINITY] {
            assert!(is_invalid(wilson_interval(1, 2, c)), "confidence = {c}");
        }
    }

    // --- ranks and Spearman ---

    #[test]
    fn average_ranks_share_ties() {
        assert_eq!(average_ranks(&[1.0, 2.0, 2.0, 3.0]).unwrap(), [1.0, 2.5, 2.5, 4.0]);
        assert_eq!(average_ranks(&[3.0, 1.0, 3.0, 3.0, -1.0]).unwrap(), [4.0, 2.0, 4.0, 4.0, 1.0]);
        assert_eq!(average_ranks(&[0.0, -0.0, 1.0]).unwrap(), [1.5, 1.5, 3.0]);
        assert_eq!(average_ranks(&[]).unwrap(), Vec::<f64>::new());
        assert!(is_invalid(average_ranks(&[1.0, f64::NAN])));
        assert!(is_invalid(average_ranks(&[f64::INFINITY])));
    }

    #[test]
    fn spearman_matches_scipy() {
        for &(x, y, want) in SPEARMAN_REF {
            assert_close(spearman(x, y).unwrap(), want, 1e-12, &format!("spearman({x:?}, {y:?})"));
        }
    }

    #[test]
    fn spearman_rejects_bad_input() {
        assert!(is_invalid(spearman(&[1.0, 2.0], &[1.0])));
        assert!(is_invalid(spearman(&[1.0], &[1.0])));
        assert!(is_invalid(spearman(&[], &[])));
        assert!(is_invalid(spearman(&[1.0, f64::NAN], &[1.0, 2.0])));
        assert!(is_invalid(spearman(&[1.0, 2.0], &[1.0, f64::INFINITY])));
        let Err(Error::InvalidInput(message)) = spearman(&[1.0, 2.0, 3.0], &[4.0, 4.0, 4.0]) else {
            panic!("a constant side must be an error");
        };
        assert!(message.contains("y is constant"), "{message}");
    }

    // --- winners ---

    #[test]
    fn argmax_with_tie_per_query() {
        assert_eq!(argmax_with_tie(&[0.1, 0.5, 0.3], 0.0), Some((1, false)));
        assert_eq!(argmax_with_tie(&[0.5, 0.2, 0.5], 0.0), Some((0, true)));
        assert_eq!(argmax_with_tie(&[0.30, 0.5, 0.49], 0.005), Some((1, false)));
        assert_eq!(argmax_with_tie(&[0.30, 0.5, 0.49], 0.02), Some((1, true)));
        assert_eq!(argmax_with_tie(&[7.0], 0.0), Some((0, false)));
        assert_eq!(argmax_with_tie(&[f64::INFINITY, 1.0, f64::INFINITY], 0.0), Some((0, true)));
        assert_eq!(argmax_with_tie(&[f64::NEG_INFINITY, -1e300], 0.0), Some((1, false)));
        assert_eq!(argmax_with_tie(&[], 0.0), None);
        assert_eq!(argmax_with_tie(&[0.1, f64::NAN], 0.0), None);
        assert_eq!(argmax_with_tie(&[0.1, 0.2], f64::NAN), None);
        assert_eq!(argmax_with_tie(&[0.1, 0.2], -1.0), None);
    }

    #[test]
    fn best_counts_over_a_table() {
        let rows = vec![
            vec![0.9, 0.5, 0.1],    // method 0 wins
            vec![0.2, 0.8, 0.8],    // methods 1 and 2 tie
            vec![0.2, 0.79, 0.8],   // within 0.02: 1 and 2 tie
            vec![0.1, 0.2, 0.3],    // method 2 wins
            vec![0.95, 0.94, 0.93], // 0 and 1 tie (0.93 is 0.02 away: beyond 0.015)
        ];
        assert_eq!(best_counts(&rows, 0.015).unwrap(), [(1, 1), (0, 3), (1, 2)]);
        assert_eq!(best_counts(&rows, 0.0).unwrap(), [(2, 0), (0, 1), (2, 1)]);
    }

    #[test]
    fn best_counts_rejects_bad_input() {
        assert!(is_invalid(best_counts(&[], 0.0)));
        assert!(is_invalid(best_counts(&[vec![]], 0.0)));
        assert!(is_invalid(best_counts(&[vec![1.0, 2.0], vec![1.0]], 0.0)));
        assert!(is_invalid(best_counts(&[vec![1.0, f64::NAN]], 0.0)));
        assert!(is_invalid(best_counts(&[vec![1.0, f64::INFINITY]], 0.0)));
        for eps in [-0.1, f64::NAN, f64::INFINITY] {
            assert!(is_invalid(best_counts(&[vec![1.0, 2.0]], eps)), "tie_eps = {eps}");
        }
    }

    // --- properties ---

    proptest! {
        #[test]
        fn binomial_p_value_is_a_probability(n in 1u64..5_000_000, k_frac in 0.0f64..=1.0, p in 0.0f64..=1.0) {
            let k = ((n as f64) * k_frac).round() as u64;
            let pv = binomial_test(k, n, p).unwrap();
            prop_assert!((0.0..=1.0).contains(&pv), "binomial_test({}, {}, {}) = {}", k, n, p, pv);
        }

        #[test]
        fn binomial_test_at_half_is_symmetric_and_one_at_the_mode(half in 1u64..2_000_000, k_frac in 0.0f64..=1.0) {
            let n = 2 * half;
            prop_assert_eq!(binomial_test(half, n, 0.5).unwrap(), 1.0);
            let k = ((n as f64) * k_frac).round() as u64;
            let (a, b) = (binomial_test(k, n, 0.5).unwrap(), binomial_test(n - k, n, 0.5).unwrap());
            prop_assert!(a == b || ((a - b) / b).abs() < 1e-12, "k = {}, n = {}: {} vs {}", k, n, a, b);
        }

        #[test]
        fn spearman_of_a_strictly_monotone_transform_is_one(x in prop::collection::vec(-1e3f64..1e3, 2..40)) {
            // Ties (rounded values) survive the transform, so ρ = 1 with ties too.
            let x: Vec<f64> = x.iter().map(|v| (v / 100.0).round()).collect();
            let y: Vec<f64> = x.iter().map(|v| v.powi(3) + (v / 10.0).exp()).collect();
            let neg: Vec<f64> = y.iter().map(|v| -v).collect();
            if x.iter().all(|&v| v == x[0]) {
                prop_assert!(is_invalid(spearman(&x, &y)));
            } else {
                prop_assert!((spearman(&x, &y).unwrap() - 1.0).abs() < 1e-12);
                prop_assert!((spearman(&x, &neg).unwrap() + 1.0).abs() < 1e-12);
            }
        }

        #[test]
        fn nothing_panics(
            xs in prop::collection::vec(any::<f64>(), 0..12),
            ys in prop::collection::vec(any::<f64>(), 0..12),
            k in any::<u64>(),
            n in prop_oneof![0u64..100, any::<u64>()],
            p in any::<f64>(),
            eps in any::<f64>(),
        ) {
            let _ = mean(&xs);
            let (a, b) = (Moments::from_slice(&xs), Moments::from_slice(&ys));
            let _ = (cohens_d(&a, &b), a.sd(), b.variance());
            let _ = binomial_test(k % (n.saturating_add(1)).max(1), n.min(100_000), p);
            let _ = binomial_test(k, n, p);
            let _ = wilson_interval(k, n, p);
            let _ = wilson_interval(k % n.saturating_add(1), n, p);
            let _ = average_ranks(&xs);
            let _ = spearman(&xs, &ys);
            let _ = argmax_with_tie(&xs, eps);
            let _ = best_counts(&[xs.clone(), ys.clone()], eps);
        }
    }
}
