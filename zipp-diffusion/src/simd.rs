//! zipp-diffusion's element-wise CPU kernels (softmax rows, group-norm scale/shift with
//! SiLU, GEGLU), compiled three times — portable, AVX2+FMA, AVX-512 — and chosen at run time.
//!
//! The bodies are plain loops over `f32` with no libm calls (`exp` and `erf` are the
//! polynomials below), so the compiler vectorises each copy to its instruction set; the
//! copies compute the same formulas, up to the rounding of fused multiply-adds.
//!
//! [`Simd::current`] is the best the CPU has, unless `$ZIPP_KERNEL` says otherwise
//! (`portable` forces the portable copy everywhere, `avx2` caps it at AVX2; read once per
//! process, the variable the MiniLM encoder reads too). The matrix products go through the
//! `gemm` crate, which dispatches on its own (AVX-512 where the CPU has it).

/// An instruction set the CPU running this process has (a value exists only where it does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Simd(Level);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Simd {
    /// Plain Rust, any CPU.
    pub fn portable() -> Simd {
        Simd(Level::Portable)
    }

    /// AVX2 with FMA, where the CPU has them.
    pub fn avx2() -> Option<Simd> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return Some(Simd(Level::Avx2));
        }
        None
    }

    /// AVX-512 (F, BW, DQ, VL) with AVX2 and FMA, where the CPU has them.
    pub fn avx512() -> Option<Simd> {
        #[cfg(target_arch = "x86_64")]
        if Simd::avx2().is_some()
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            return Some(Simd(Level::Avx512));
        }
        None
    }

    /// Every instruction set this CPU runs, portable first.
    pub fn all() -> Vec<Simd> {
        [Some(Simd::portable()), Simd::avx2(), Simd::avx512()].into_iter().flatten().collect()
    }

    /// The best this CPU has, capped by `$ZIPP_KERNEL` (`portable`, `avx2`, `auto`/unset, as
    /// zipp-core's `CpuKernel::parse` reads it for the MiniLM encoder); chosen once per
    /// process. An unknown value counts as unset (the MiniLM encoder reports it).
    pub fn current() -> Simd {
        use zipp_core::embed::CpuKernel;
        static CHOSEN: std::sync::OnceLock<Simd> = std::sync::OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let cap = std::env::var("ZIPP_KERNEL").ok().and_then(|v| CpuKernel::parse(&v));
            match cap {
                Some(CpuKernel::Portable) => Simd::portable(),
                Some(CpuKernel::Avx2) => Simd::avx2().unwrap_or_else(Simd::portable),
                Some(CpuKernel::Auto) | None => Simd::avx512().or_else(Simd::avx2).unwrap_or_else(Simd::portable),
            }
        })
    }

    /// `"portable"`, `"avx2"` or `"avx512"`.
    pub fn name(self) -> &'static str {
        match self.0 {
            Level::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => "avx2",
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => "avx512",
        }
    }
}

/// Defines `pub fn name(simd: Simd, args…)` running `body` compiled for `simd`'s level.
macro_rules! multiversion {
    ($(#[$doc:meta])* pub fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$doc])*
        pub fn $name(simd: Simd, $($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            fn avx2($($arg: $ty),*) {
                body($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
            fn avx512($($arg: $ty),*) {
                body($($arg),*)
            }
            match simd.0 {
                Level::Portable => body($($arg),*),
                // SAFETY: a `Simd` holding this level is only built after the run-time check
                // that the CPU has these features (`Simd::avx2`).
                #[cfg(target_arch = "x86_64")]
                #[allow(unsafe_code)]
                Level::Avx2 => unsafe { avx2($($arg),*) },
                // SAFETY: as above (`Simd::avx512`).
                #[cfg(target_arch = "x86_64")]
                #[allow(unsafe_code)]
                Level::Avx512 => unsafe { avx512($($arg),*) },
            }
        }
    };
}

/// `e^x` with `x` clamped to [-87, 88] (so no overflow or denormal): Cody–Waite range
/// reduction and a degree-6 polynomial; relative error below 2e-7. The integer part goes
/// into the exponent through the bits of the rounding constant, with no float→int
/// conversion, so the whole function vectorises.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2²³: adding it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let k = shifted - ROUND;
    let r = x - k * 0.693_145_75 - k * 1.428_606_8e-6;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (0.166_666_67 + r * (0.041_666_66 + r * (0.008_333_4 + r * 0.001_388_9)))));
    // The low mantissa bits of `shifted` hold k (two's complement): 2^k = (k + 127) << 23.
    let k_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    p * f32::from_bits(k_bits.wrapping_add(127) << 23)
}

/// The error function, as a rational function of x on [-4, 4] (±1 beyond; |erf(4)| is 1
/// within 2e-8): odd numerator of degree 13, even denominator of degree 8, the minimax fit
/// XLA and Eigen use for `float`. Absolute error below 1e-6 (tested against libm).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10f32;
    for a in [2.770_681_4e-8, -2.101_024e-6, -5.692_506_4e-5, -7.349_906_3e-4, -2.9546e-3, -1.609_603_3e-2] {
        p = p * x2 + a;
    }
    let mut q = -1.456_607_2e-5f32;
    for b in [-2.133_740_6e-4, -1.682_827e-3, -7.373_329e-3, -1.426_474e-2] {
        q = q * x2 + b;
    }
    x * p / q
}

/// `row[i] = e^(row[i] - max(row))`, returning the sum of the new values.
#[inline(always)]
fn exp_shifted(row: &mut [f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 16];
    let mut it = row.chunks_exact(16);
    for c in &mut it {
        for i in 0..16 {
            lanes[i] = if c[i] > lanes[i] { c[i] } else { lanes[i] };
        }
    }
    let max = lanes.iter().chain(it.remainder()).copied().fold(f32::NEG_INFINITY, f32::max);
    let mut acc = [0f32; 16];
    let mut chunks = row.chunks_exact_mut(16);
    for d in &mut chunks {
        for i in 0..16 {
            let e = exp(d[i] - max);
            d[i] = e;
            acc[i] += e;
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for d in chunks.into_remainder() {
        *d = exp(*d - max);
        sum += *d;
    }
    sum
}

multiversion! {
    /// Softmax of one row, in place.
    pub fn softmax_in_place(row: &mut [f32]) {
        let inv = 1.0 / exp_shifted(row);
        row.iter_mut().for_each(|d| *d *= inv);
    }
}

multiversion! {
    /// The softmax of one row before its division: `e^(x - max)` in place, the sum in `sum`
    /// (attention divides its much narrower output rows instead).
    pub fn exp_shifted_in_place(row: &mut [f32], sum: &mut f32) {
        *sum = exp_shifted(row);
    }
}

multiversion! {
    /// `dst = src · a + b`, then SiLU (`y / (1 + e^-y)`) when `silu`.
    pub fn scale_shift(dst: &mut [f32], src: &[f32], a: f32, b: f32, silu: bool) {
        if silu {
            dst.iter_mut().zip(src).for_each(|(o, &v)| {
                let y = v * a + b;
                *o = y / (1.0 + exp(-y));
            });
        } else {
            dst.iter_mut().zip(src).for_each(|(o, &v)| *o = v * a + b);
        }
    }
}

multiversion! {
    /// GEGLU: `dst = x · gelu(gate)` with the exact (erf) GELU, `gelu(g) = g/2 · (1 +
    /// erf(g/√2))`.
    pub fn geglu(dst: &mut [f32], x: &[f32], gate: &[f32]) {
        dst.iter_mut().zip(x).zip(gate).for_each(|((o, &x), &g)| {
            *o = x * (0.5 * g * (1.0 + erf(g * std::f32::consts::FRAC_1_SQRT_2)));
        });
    }
}

multiversion! {
    /// CLIP's activations of `src` into `dst`: exact GELU `x·½(1 + erf(x/√2))`
    /// (transformers' "gelu"), or QuickGELU `x·σ(1.702·x)` when `quick`.
    pub fn gelu(dst: &mut [f32], src: &[f32], quick: bool) {
        if quick {
            dst.iter_mut().zip(src).for_each(|(y, &x)| *y = x / (1.0 + exp(-1.702 * x)));
        } else {
            dst.iter_mut().zip(src).for_each(|(y, &x)| *y = x * (0.5 * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, spread: f32) -> Vec<f32> {
        (0..n).map(|i| ((i * 7919 % 1009) as f32 / 1009.0 - 0.5) * spread).collect()
    }

    #[test]
    fn exp_matches_std() {
        for i in 0..=20_000 {
            let x = -87.0 + 175.0 * i as f32 / 20_000.0;
            let (got, want) = (exp(x), x.exp());
            assert!(((got - want) / want).abs() < 3e-7, "exp({x}) = {got}, std {want}");
        }
        // Clamped, never infinite or denormal.
        assert_eq!(exp(-1000.0), exp(-87.0));
        assert!(exp(1000.0).is_finite() && exp(1000.0) == exp(88.0));
    }

    #[test]
    fn erf_matches_libm() {
        // Independent reference: the platform libm's erf in f64.
        let mut worst = 0f64;
        for i in 0..=40_000 {
            let x = -6.0 + 12.0 * i as f64 / 40_000.0;
            worst = worst.max((erf(x as f32) as f64 - libm_erf(x)).abs());
        }
        assert!(worst < 1e-6, "erf: max abs error {worst}");
    }

    #[test]
    fn every_level_computes_the_portable_result() {
        let levels = Simd::all();
        eprintln!("levels on this CPU: {:?}", levels.iter().map(|s| s.name()).collect::<Vec<_>>());
        let close =
            |a: &[f32], b: &[f32], tol: f32| a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol * (1.0 + y.abs()));
        for &len in &[1usize, 15, 16, 17, 4096 + 3] {
            let src = data(len, 40.0);
            let mut want = src.clone();
            softmax_in_place(Simd::portable(), &mut want);
            assert!((want.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            let (mut ss, mut ge) = (vec![0.0; len], vec![0.0; len]);
            scale_shift(Simd::portable(), &mut ss, &src, 0.7, -0.2, true);
            geglu(Simd::portable(), &mut ge, &src, &data(len, 9.0));
            let (mut gl, mut qg) = (vec![0.0; len], vec![0.0; len]);
            gelu(Simd::portable(), &mut gl, &src, false);
            gelu(Simd::portable(), &mut qg, &src, true);
            for &s in &levels {
                for (quick, want) in [(false, &gl), (true, &qg)] {
                    let mut got = vec![0.0; len];
                    gelu(s, &mut got, &src, quick);
                    assert!(close(&got, want, 1e-6), "{} gelu (quick {quick}), {len}", s.name());
                }
                let mut got = src.clone();
                softmax_in_place(s, &mut got);
                assert!(close(&got, &want, 1e-6), "{} softmax, {len}", s.name());
                let (mut got, mut sum) = (src.clone(), 0.0);
                exp_shifted_in_place(s, &mut got, &mut sum);
                got.iter_mut().for_each(|v| *v /= sum);
                assert!(close(&got, &want, 1e-6), "{} exp_shifted, {len}", s.name());
                let mut got = vec![0.0; len];
                scale_shift(s, &mut got, &src, 0.7, -0.2, true);
                assert!(close(&got, &ss, 1e-6), "{} silu, {len}", s.name());
                let mut got = vec![0.0; len];
                geglu(s, &mut got, &src, &data(len, 9.0));
                assert!(close(&got, &ge, 1e-6), "{} geglu, {len}", s.name());
            }
        }
        // The reference formulas, element by element, with std's exp and libm's erf.
        let (x, g) = (data(64, 6.0), data(64, 9.0));
        let mut got = vec![0.0; 64];
        scale_shift(Simd::current(), &mut got, &x, 1.5, 0.25, true);
        for (o, &v) in got.iter().zip(&x) {
            let y = v * 1.5 + 0.25;
            assert!((o - y / (1.0 + (-y).exp())).abs() < 1e-6);
        }
        let mut act = vec![0.0; 64];
        gelu(Simd::current(), &mut act, &x, false);
        for (o, &v) in act.iter().zip(&x) {
            let want = v as f64 * 0.5 * (1.0 + libm_erf(v as f64 / 2f64.sqrt()));
            assert!((*o as f64 - want).abs() < 2e-6 * (1.0 + want.abs()), "gelu({v}) = {o}, want {want}");
        }
        gelu(Simd::current(), &mut act, &x, true);
        for (o, &v) in act.iter().zip(&x) {
            let want = v as f64 / (1.0 + (-1.702 * v as f64).exp());
            assert!((*o as f64 - want).abs() < 2e-6 * (1.0 + want.abs()), "quick_gelu({v}) = {o}, want {want}");
        }
        geglu(Simd::current(), &mut got, &x, &g);
        for ((o, &x), &g) in got.iter().zip(&x).zip(&g) {
            let want = x as f64 * 0.5 * g as f64 * (1.0 + libm_erf(g as f64 / 2f64.sqrt()));
            assert!((*o as f64 - want).abs() < 2e-6 * (1.0 + want.abs()), "geglu({x}, {g}) = {o}, want {want}");
        }
    }

    fn libm_erf(x: f64) -> f64 {
        extern "C" {
            fn erf(x: f64) -> f64;
        }
        // SAFETY: libm's erf is a pure function of a double.
        #[allow(unsafe_code)]
        unsafe {
            erf(x)
        }
    }
}
