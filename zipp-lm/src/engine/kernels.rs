//! The quantized dot products every matrix product of the engine reduces to, in two
//! implementations chosen at run time: portable Rust (any CPU) and AVX2 (x86-64 CPUs with
//! AVX2, FMA and F16C). Both compute the same integer sums per block of 32 and differ only in
//! the order the float partial sums are added.
//!
//! Weights keep the GGUF block layouts (`Q4_1`: f16 scale `d`, f16 minimum `m`, 32 4-bit
//! values; `Q8_0`: f16 scale, 32 signed bytes), so a weight is read from memory exactly once
//! per decoded token at its file size. Activations are quantized per block of 32 to signed
//! bytes with an f32 scale and the f32 sum of the block ([`BlockQ8`], llama.cpp's `Q8_1` with
//! f32 fields), which is what lets the dot product run on 8-bit integer multiplies.

use half::f16;

/// Values per quantization block.
pub const QK: usize = 32;

/// A GGUF `Q4_1` block: value `j` is `d * q[j] + m`, `q[j]` the low nibble of `qs[j]` for
/// `j < 16` and the high nibble of `qs[j - 16]` after.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
pub struct BlockQ4_1 {
    pub d: u16,
    pub m: u16,
    pub qs: [u8; 16],
}

/// A GGUF `Q8_0` block: value `j` is `d * qs[j]`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
pub struct BlockQ8_0 {
    pub d: u16,
    pub qs: [i8; 32],
}

/// A quantized activation block: value `j` ≈ `d * qs[j]`; `s` = `d * Σ qs`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
pub struct BlockQ8 {
    pub d: f32,
    pub s: f32,
    pub qs: [i8; 32],
}

impl Default for BlockQ8 {
    fn default() -> BlockQ8 {
        BlockQ8 { d: 0.0, s: 0.0, qs: [0; 32] }
    }
}

/// Which implementation runs the dot products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Plain Rust, every CPU.
    Portable,
    /// AVX2 + FMA + F16C; only constructed where the CPU has them ([`Isa::avx2`]).
    Avx2(Avx2Token),
}

/// Proof that the CPU has AVX2, FMA and F16C: only [`Isa::avx2`] makes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Avx2Token(());

impl Isa {
    /// The AVX2 implementation where this CPU has AVX2, FMA and F16C (checked now).
    pub fn avx2() -> Option<Isa> {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c")
            {
                return Some(Isa::Avx2(Avx2Token(())));
            }
        }
        None
    }

    /// `Σ_j w[j] · x[j]` over the blocks of one `Q4_1` row.
    pub fn dot_q4_1(self, w: &[BlockQ4_1], x: &[BlockQ8]) -> f32 {
        debug_assert_eq!(w.len(), x.len());
        match self {
            Isa::Portable => dot_q4_1_portable(w, x),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: an `Avx2Token` exists only where `Isa::avx2` found AVX2, FMA and F16C.
            Isa::Avx2(_) => unsafe { avx2::dot_q4_1(w, x) },
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx2(_) => dot_q4_1_portable(w, x),
        }
    }

    /// `Σ_j w[j] · x[j]` over the blocks of one `Q8_0` row.
    pub fn dot_q8_0(self, w: &[BlockQ8_0], x: &[BlockQ8]) -> f32 {
        debug_assert_eq!(w.len(), x.len());
        match self {
            Isa::Portable => dot_q8_0_portable(w, x),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: an `Avx2Token` exists only where `Isa::avx2` found AVX2, FMA and F16C.
            Isa::Avx2(_) => unsafe { avx2::dot_q8_0(w, x) },
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx2(_) => dot_q8_0_portable(w, x),
        }
    }
}

impl Isa {
    /// `out[t] = w · x_t` for the `out.len()` inputs stored back to back in `x` (each
    /// `w.len()` blocks): one `Q4_1` weight row against a batch, the row unpacked once per
    /// group of four inputs.
    pub fn q4_1_row(self, w: &[BlockQ4_1], x: &[BlockQ8], out: &mut [f32]) {
        debug_assert_eq!(x.len(), w.len() * out.len());
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: an `Avx2Token` exists only where `Isa::avx2` found AVX2, FMA and F16C.
            Isa::Avx2(_) => unsafe { avx2::q4_1_row(w, x, out) },
            _ => {
                for (o, xt) in out.iter_mut().zip(x.chunks_exact(w.len())) {
                    *o = self.dot_q4_1(w, xt);
                }
            }
        }
    }

    /// `out[r] = w_r · x` for the `out.len()` `Q4_1` rows stored back to back in `w` (each
    /// `x.len()` blocks): a matrix-vector product over a range of rows, four rows at a time
    /// so their sums are independent chains.
    pub fn q4_1_rows(self, w: &[BlockQ4_1], x: &[BlockQ8], out: &mut [f32]) {
        debug_assert_eq!(w.len(), x.len() * out.len());
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: an `Avx2Token` exists only where `Isa::avx2` found AVX2, FMA and F16C.
            Isa::Avx2(_) => unsafe { avx2::q4_1_rows(w, x, out) },
            _ => {
                for (o, wr) in out.iter_mut().zip(w.chunks_exact(x.len())) {
                    *o = self.dot_q4_1(wr, x);
                }
            }
        }
    }

    /// As [`Isa::q4_1_rows`], for `Q8_0` rows.
    pub fn q8_0_rows(self, w: &[BlockQ8_0], x: &[BlockQ8], out: &mut [f32]) {
        debug_assert_eq!(w.len(), x.len() * out.len());
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: an `Avx2Token` exists only where `Isa::avx2` found AVX2, FMA and F16C.
            Isa::Avx2(_) => unsafe { avx2::q8_0_rows(w, x, out) },
            _ => {
                for (o, wr) in out.iter_mut().zip(w.chunks_exact(x.len())) {
                    *o = self.dot_q8_0(wr, x);
                }
            }
        }
    }

    /// As [`Isa::q4_1_row`], for a `Q8_0` weight row.
    pub fn q8_0_row(self, w: &[BlockQ8_0], x: &[BlockQ8], out: &mut [f32]) {
        debug_assert_eq!(x.len(), w.len() * out.len());
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: an `Avx2Token` exists only where `Isa::avx2` found AVX2, FMA and F16C.
            Isa::Avx2(_) => unsafe { avx2::q8_0_row(w, x, out) },
            _ => {
                for (o, xt) in out.iter_mut().zip(x.chunks_exact(w.len())) {
                    *o = self.dot_q8_0(w, xt);
                }
            }
        }
    }
}

/// Quantizes `x` (a multiple of [`QK`] long) into `out` (one block per 32 values).
pub fn quantize_q8(x: &[f32], out: &mut [BlockQ8]) {
    debug_assert_eq!(x.len(), out.len() * QK);
    for (chunk, b) in x.chunks_exact(QK).zip(out.iter_mut()) {
        let amax = chunk.iter().fold(0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
        let mut sum = 0i32;
        for (q, v) in b.qs.iter_mut().zip(chunk) {
            let r = round_half_away(v * inv) as i8;
            *q = r;
            sum += r as i32;
        }
        b.d = d;
        b.s = d * sum as f32;
    }
}

/// `x.round()` (nearest, ties away from zero) for |x| ≤ 2^22 in plain float arithmetic, so
/// the quantizer's loop vectorizes instead of calling libm's `roundf` per value (≈ 5% of a
/// decoded token): adding and removing 1.5 · 2^23 rounds to nearest with ties to even, and
/// a tie is then moved away from zero. (Ties to even measured worse against llama.cpp's
/// SmolLM2 logits: one near-tie top-1 flipped, see tests/smollm2_parity.rs.)
#[inline]
fn round_half_away(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    let even = (x + MAGIC) - MAGIC;
    if (x - even).abs() == 0.5 {
        x + 0.5f32.copysign(x)
    } else {
        even
    }
}

/// The 32 values of a `Q4_1` block.
pub fn dequantize_q4_1(b: &BlockQ4_1, out: &mut [f32]) {
    let d = f16::from_bits(b.d).to_f32();
    let m = f16::from_bits(b.m).to_f32();
    for j in 0..16 {
        out[j] = d * (b.qs[j] & 0x0F) as f32 + m;
        out[j + 16] = d * (b.qs[j] >> 4) as f32 + m;
    }
}

/// The 32 values of a `Q8_0` block.
pub fn dequantize_q8_0(b: &BlockQ8_0, out: &mut [f32]) {
    let d = f16::from_bits(b.d).to_f32();
    for (o, q) in out.iter_mut().zip(b.qs) {
        *o = d * q as f32;
    }
}

/// Quantizes 32 values to a `Q8_0` block (for weights of types without a kernel here).
pub fn quantize_q8_0(x: &[f32]) -> BlockQ8_0 {
    let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
    let mut qs = [0i8; 32];
    for (q, v) in qs.iter_mut().zip(x) {
        *q = (v * inv).round() as i8;
    }
    BlockQ8_0 { d: f16::from_f32(d).to_bits(), qs }
}

fn dot_q4_1_portable(w: &[BlockQ4_1], x: &[BlockQ8]) -> f32 {
    let mut acc = 0f32;
    for (b, xb) in w.iter().zip(x) {
        let mut sum = 0i32;
        for j in 0..16 {
            sum += (b.qs[j] & 0x0F) as i32 * xb.qs[j] as i32 + (b.qs[j] >> 4) as i32 * xb.qs[j + 16] as i32;
        }
        acc += f16::from_bits(b.d).to_f32() * xb.d * sum as f32 + f16::from_bits(b.m).to_f32() * xb.s;
    }
    acc
}

fn dot_q8_0_portable(w: &[BlockQ8_0], x: &[BlockQ8]) -> f32 {
    let mut acc = 0f32;
    for (b, xb) in w.iter().zip(x) {
        let sum: i32 = b.qs.iter().zip(&xb.qs).map(|(a, c)| *a as i32 * *c as i32).sum();
        acc += f16::from_bits(b.d).to_f32() * xb.d * sum as f32;
    }
    acc
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{BlockQ4_1, BlockQ8, BlockQ8_0};
    use std::arch::x86_64::*;

    /// One f16 (bits) to f32 with F16C.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn f16_to_f32(h: u16) -> f32 {
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h as i32)))
    }

    /// The sum of the 8 lanes.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// Callers must know the CPU has AVX2, FMA and F16C (calling it is `unsafe` for that
    /// reason alone). Extra blocks of the longer slice are ignored (the loop zips them).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub fn dot_q4_1(w: &[BlockQ4_1], x: &[BlockQ8]) -> f32 {
        let low = _mm256_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        let mut acc = _mm256_setzero_ps();
        let mut acc_m = 0f32;
        for (b, xb) in w.iter().zip(x) {
            // SAFETY: `b.qs` is 16 readable bytes and `xb.qs` 32; both loads are unaligned.
            let (q, xv) = unsafe {
                (_mm_loadu_si128(b.qs.as_ptr() as *const __m128i), _mm256_loadu_si256(xb.qs.as_ptr() as *const __m256i))
            };
            // Low nibbles are values 0..16, high nibbles 16..32: the two 128-bit lanes.
            let q4 = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), low);
            // u8 (0..=15) × i8 pairs summed to i16 cannot saturate (2·15·128 < 2^15).
            let p = _mm256_madd_epi16(_mm256_maddubs_epi16(q4, xv), ones);
            let d = _mm256_set1_ps(f16_to_f32(b.d) * xb.d);
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc);
            acc_m += f16_to_f32(b.m) * xb.s;
        }
        hsum(acc) + acc_m
    }

    /// The 32 4-bit values of a `Q4_1` block as bytes in value order.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn unpack_q4(b: &BlockQ4_1) -> __m256i {
        // SAFETY: `b.qs` is 16 readable bytes; the load is unaligned.
        let q = unsafe { _mm_loadu_si128(b.qs.as_ptr() as *const __m128i) };
        _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0F))
    }

    /// The 32 signed bytes of an activation block.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn load_x(b: &BlockQ8) -> __m256i {
        // SAFETY: `b.qs` is 32 readable bytes; the load is unaligned.
        unsafe { _mm256_loadu_si256(b.qs.as_ptr() as *const __m256i) }
    }

    /// The 8 partial sums of `u8 × i8` products, pairwise (`maddubs`), then in fours.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn dot_u8_i8(u: __m256i, s: __m256i) -> __m256 {
        _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)))
    }

    /// Batched form (see `Isa::q4_1_row`): groups of four inputs share each unpacked block.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub fn q4_1_row(w: &[BlockQ4_1], x: &[BlockQ8], out: &mut [f32]) {
        let per = w.len();
        let mut groups = out.chunks_exact_mut(4);
        let mut xs = x.chunks_exact(4 * per);
        for (o, xg) in (&mut groups).zip(&mut xs) {
            let (x0, rest) = xg.split_at(per);
            let (x1, rest) = rest.split_at(per);
            let (x2, x3) = rest.split_at(per);
            let mut acc = [_mm256_setzero_ps(); 4];
            let mut acc_m = [0f32; 4];
            for (i, b) in w.iter().enumerate() {
                let q4 = unpack_q4(b);
                let (d, m) = (f16_to_f32(b.d), f16_to_f32(b.m));
                for (k, xb) in [&x0[i], &x1[i], &x2[i], &x3[i]].into_iter().enumerate() {
                    acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(d * xb.d), dot_u8_i8(q4, load_x(xb)), acc[k]);
                    acc_m[k] += m * xb.s;
                }
            }
            for k in 0..4 {
                o[k] = hsum(acc[k]) + acc_m[k];
            }
        }
        for (o, xt) in groups.into_remainder().iter_mut().zip(xs.remainder().chunks_exact(per)) {
            *o = dot_q4_1(w, xt);
        }
    }

    /// Batched form for `Q8_0` rows (see `Isa::q8_0_row`).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub fn q8_0_row(w: &[BlockQ8_0], x: &[BlockQ8], out: &mut [f32]) {
        let per = w.len();
        let mut groups = out.chunks_exact_mut(4);
        let mut xs = x.chunks_exact(4 * per);
        for (o, xg) in (&mut groups).zip(&mut xs) {
            let (x0, rest) = xg.split_at(per);
            let (x1, rest) = rest.split_at(per);
            let (x2, x3) = rest.split_at(per);
            let mut acc = [_mm256_setzero_ps(); 4];
            for (i, b) in w.iter().enumerate() {
                // SAFETY: `b.qs` is 32 readable bytes; the load is unaligned.
                let wv = unsafe { _mm256_loadu_si256(b.qs.as_ptr() as *const __m256i) };
                let aw = _mm256_sign_epi8(wv, wv);
                let d = f16_to_f32(b.d);
                for (k, xb) in [&x0[i], &x1[i], &x2[i], &x3[i]].into_iter().enumerate() {
                    let p = dot_u8_i8(aw, _mm256_sign_epi8(load_x(xb), wv));
                    acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(d * xb.d), p, acc[k]);
                }
            }
            for k in 0..4 {
                o[k] = hsum(acc[k]);
            }
        }
        for (o, xt) in groups.into_remainder().iter_mut().zip(xs.remainder().chunks_exact(per)) {
            *o = dot_q8_0(w, xt);
        }
    }

    /// Rows form (see `Isa::q4_1_rows`): four rows per pass share each activation block.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub fn q4_1_rows(w: &[BlockQ4_1], x: &[BlockQ8], out: &mut [f32]) {
        let per = x.len();
        let mut groups = out.chunks_exact_mut(4);
        let mut ws = w.chunks_exact(4 * per);
        for (o, wg) in (&mut groups).zip(&mut ws) {
            let mut acc = [_mm256_setzero_ps(); 4];
            let mut acc_m = [0f32; 4];
            for (i, xb) in x.iter().enumerate() {
                let xv = load_x(xb);
                for k in 0..4 {
                    let b = &wg[k * per + i];
                    let d = _mm256_set1_ps(f16_to_f32(b.d) * xb.d);
                    acc[k] = _mm256_fmadd_ps(d, dot_u8_i8(unpack_q4(b), xv), acc[k]);
                    acc_m[k] += f16_to_f32(b.m) * xb.s;
                }
            }
            for k in 0..4 {
                o[k] = hsum(acc[k]) + acc_m[k];
            }
        }
        for (o, wr) in groups.into_remainder().iter_mut().zip(ws.remainder().chunks_exact(per)) {
            *o = dot_q4_1(wr, x);
        }
    }

    /// Rows form for `Q8_0` weights (see `Isa::q8_0_rows`).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub fn q8_0_rows(w: &[BlockQ8_0], x: &[BlockQ8], out: &mut [f32]) {
        let per = x.len();
        let mut groups = out.chunks_exact_mut(4);
        let mut ws = w.chunks_exact(4 * per);
        for (o, wg) in (&mut groups).zip(&mut ws) {
            let mut acc = [_mm256_setzero_ps(); 4];
            for (i, xb) in x.iter().enumerate() {
                let xv = load_x(xb);
                for k in 0..4 {
                    let b = &wg[k * per + i];
                    // SAFETY: `b.qs` is 32 readable bytes; the load is unaligned.
                    let wv = unsafe { _mm256_loadu_si256(b.qs.as_ptr() as *const __m256i) };
                    let p = dot_u8_i8(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
                    acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(f16_to_f32(b.d) * xb.d), p, acc[k]);
                }
            }
            for k in 0..4 {
                o[k] = hsum(acc[k]);
            }
        }
        for (o, wr) in groups.into_remainder().iter_mut().zip(ws.remainder().chunks_exact(per)) {
            *o = dot_q8_0(wr, x);
        }
    }

    /// As [`dot_q4_1`], for `Q8_0` weights.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub fn dot_q8_0(w: &[BlockQ8_0], x: &[BlockQ8]) -> f32 {
        let ones = _mm256_set1_epi16(1);
        let mut acc = _mm256_setzero_ps();
        for (b, xb) in w.iter().zip(x) {
            // SAFETY: `b.qs` and `xb.qs` are 32 readable bytes each; both loads are unaligned.
            let (wv, xv) = unsafe {
                (
                    _mm256_loadu_si256(b.qs.as_ptr() as *const __m256i),
                    _mm256_loadu_si256(xb.qs.as_ptr() as *const __m256i),
                )
            };
            // i8 × i8 through the unsigned × signed multiply: |w| × (x with w's sign).
            // |w| ≤ 128 and |x| ≤ 127, so a pair sum stays within i16.
            let p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
            let p = _mm256_madd_epi16(p16, ones);
            let d = _mm256_set1_ps(f16_to_f32(b.d) * xb.d);
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc);
        }
        hsum(acc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift) for test data.
    fn rng(seed: u64) -> impl FnMut() -> f32 {
        let mut s = seed.max(1);
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        }
    }

    fn q4_1_blocks(n: usize, next: &mut impl FnMut() -> f32) -> Vec<BlockQ4_1> {
        (0..n)
            .map(|_| {
                let mut qs = [0u8; 16];
                for q in qs.iter_mut() {
                    *q = ((next() + 1.0) * 127.9) as u8;
                }
                BlockQ4_1 { d: f16::from_f32(next() * 0.1).to_bits(), m: f16::from_f32(next() * 0.5).to_bits(), qs }
            })
            .collect()
    }

    fn activations(n: usize, next: &mut impl FnMut() -> f32) -> (Vec<f32>, Vec<BlockQ8>) {
        let x: Vec<f32> = (0..n * QK).map(|_| next() * 3.0).collect();
        let mut q = vec![BlockQ8::default(); n];
        quantize_q8(&x, &mut q);
        (x, q)
    }

    /// The dot products against the f64 sum of dequantized weights × dequantized
    /// activations: an independent formulation of the same arithmetic.
    fn reference(w: &[f32], x: &[BlockQ8]) -> f64 {
        let xs: Vec<f64> = x.iter().flat_map(|b| b.qs.iter().map(move |q| b.d as f64 * *q as f64)).collect();
        w.iter().zip(xs).map(|(a, b)| *a as f64 * b).sum()
    }

    fn isas() -> Vec<Isa> {
        let mut v = vec![Isa::Portable];
        v.extend(Isa::avx2());
        v
    }

    #[test]
    fn rounding_matches_f32_round_including_ties() {
        for (x, want) in [(0.4, 0.0), (0.5, 1.0), (1.5, 2.0), (2.5, 3.0), (-0.5, -1.0), (-2.5, -3.0), (126.7, 127.0)] {
            assert_eq!(round_half_away(x), want, "{x}");
        }
        for i in -2540..=2540 {
            for x in [i as f32 / 20.0, i as f32 / 20.0 + 0.013, i as f32 * 0.0499] {
                assert_eq!(round_half_away(x), x.round(), "{x}");
            }
        }
    }

    #[test]
    fn activation_quantization_round_trips_within_half_a_step() {
        let mut next = rng(7);
        let (x, q) = activations(6, &mut next);
        for (chunk, b) in x.chunks(QK).zip(&q) {
            let sum: i32 = b.qs.iter().map(|v| *v as i32).sum();
            assert!((b.s - b.d * sum as f32).abs() <= 1e-4 * b.s.abs().max(1.0));
            for (v, q) in chunk.iter().zip(b.qs) {
                assert!((v - b.d * q as f32).abs() <= b.d * 0.5 + 1e-6, "{v} vs {}", b.d * q as f32);
            }
        }
        let mut zero = [BlockQ8::default()];
        quantize_q8(&[0.0; 32], &mut zero);
        assert_eq!(zero[0], BlockQ8 { d: 0.0, s: 0.0, qs: [0; 32] });
    }

    #[test]
    fn q4_1_dot_matches_the_dequantized_sum_on_every_isa() {
        let mut next = rng(11);
        for blocks in [1, 2, 18, 48] {
            let w = q4_1_blocks(blocks, &mut next);
            let (_, x) = activations(blocks, &mut next);
            let mut wf = vec![0f32; blocks * QK];
            for (b, out) in w.iter().zip(wf.chunks_mut(QK)) {
                dequantize_q4_1(b, out);
            }
            let want = reference(&wf, &x);
            for isa in isas() {
                let got = isa.dot_q4_1(&w, &x) as f64;
                assert!((got - want).abs() <= 1e-4 * want.abs().max(1.0), "{isa:?} {blocks}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn q8_0_dot_matches_the_dequantized_sum_on_every_isa_including_minus_128() {
        let mut next = rng(13);
        for blocks in [1, 3, 18] {
            let wf: Vec<f32> = (0..blocks * QK).map(|_| next()).collect();
            let mut w: Vec<BlockQ8_0> = wf.chunks(QK).map(quantize_q8_0).collect();
            // -128 is a legal Q8_0 value in files (not produced by quantize_q8_0).
            w[0].qs[3] = -128;
            let mut deq = vec![0f32; blocks * QK];
            for (b, out) in w.iter().zip(deq.chunks_mut(QK)) {
                dequantize_q8_0(b, out);
            }
            let (_, x) = activations(blocks, &mut next);
            let want = reference(&deq, &x);
            for isa in isas() {
                let got = isa.dot_q8_0(&w, &x) as f64;
                assert!((got - want).abs() <= 1e-4 * want.abs().max(1.0), "{isa:?} {blocks}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn batched_rows_equal_one_dot_per_input_for_every_batch_size() {
        let mut next = rng(17);
        let per = 18;
        let w4 = q4_1_blocks(per, &mut next);
        let wf: Vec<f32> = (0..per * QK).map(|_| next()).collect();
        let w8: Vec<BlockQ8_0> = wf.chunks(QK).map(quantize_q8_0).collect();
        for n in [1, 3, 4, 5, 9] {
            let (_, x) = activations(per * n, &mut next);
            for isa in isas() {
                let (mut o4, mut o8) = (vec![0f32; n], vec![0f32; n]);
                isa.q4_1_row(&w4, &x, &mut o4);
                isa.q8_0_row(&w8, &x, &mut o8);
                let (_, xv) = activations(per, &mut next);
                let (mut r4, mut r8) = (vec![0f32; n], vec![0f32; n]);
                let w4n: Vec<BlockQ4_1> = (0..n).flat_map(|_| w4.iter().copied()).collect();
                let w8n: Vec<BlockQ8_0> = (0..n).flat_map(|_| w8.iter().copied()).collect();
                isa.q4_1_rows(&w4n, &xv, &mut r4);
                isa.q8_0_rows(&w8n, &xv, &mut r8);
                let (a, b) = (Isa::Portable.dot_q4_1(&w4, &xv), Isa::Portable.dot_q8_0(&w8, &xv));
                assert!(r4.iter().all(|v| (v - a).abs() <= 1e-4 * a.abs().max(1.0)), "{isa:?} rows n={n}");
                assert!(r8.iter().all(|v| (v - b).abs() <= 1e-4 * b.abs().max(1.0)), "{isa:?} rows n={n}");
                for (t, xt) in x.chunks(per).enumerate() {
                    let (a, b) = (Isa::Portable.dot_q4_1(&w4, xt), Isa::Portable.dot_q8_0(&w8, xt));
                    assert!((o4[t] - a).abs() <= 1e-4 * a.abs().max(1.0), "{isa:?} n={n} t={t}: {} vs {a}", o4[t]);
                    assert!((o8[t] - b).abs() <= 1e-4 * b.abs().max(1.0), "{isa:?} n={n} t={t}: {} vs {b}", o8[t]);
                }
            }
        }
    }

    #[test]
    fn q4_1_dequantization_follows_the_gguf_nibble_order() {
        let mut qs = [0u8; 16];
        qs[0] = 0x21; // value 0 = 1, value 16 = 2
        qs[15] = 0xF0; // value 15 = 0, value 31 = 15
        let b = BlockQ4_1 { d: f16::from_f32(0.5).to_bits(), m: f16::from_f32(-1.0).to_bits(), qs };
        let mut out = [0f32; 32];
        dequantize_q4_1(&b, &mut out);
        assert_eq!((out[0], out[16], out[15], out[31], out[1]), (-0.5, 0.0, -1.0, 6.5, -1.0));
    }
}
