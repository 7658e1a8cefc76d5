//! zipp's one small deterministic generator and string hash (integer-only, so every platform
//! draws the same numbers): SplitMix64 (Steele, Lea & Flood) seeds k-means++, the
//! evaluation's Spearman reservoir and the synthetic dataset's xoshiro256** streams; FNV-1a
//! turns ids into seeds. Also [`HashingEmbedder`], a model-free stand-in embedder for tests
//! and examples.

/// One SplitMix64 step: advances `state` and returns the next output.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A SplitMix64 stream.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        splitmix64(&mut self.0)
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// 64-bit FNV-1a of `bytes`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// An embedder mapping each distinct text to a fixed pseudo-random unit vector of dimension
/// `.0`: no semantics at all, but deterministic and model-free, so pipelines, evaluations and
/// their tests run reproducibly without model files.
pub struct HashingEmbedder(pub usize);

impl crate::embed::Embedder for HashingEmbedder {
    fn id(&self) -> &str {
        "hashing"
    }
    fn dim(&self) -> usize {
        self.0
    }
    fn embed(&self, texts: &[&str]) -> crate::Result<crate::embed::Embeddings> {
        let data = texts.iter().flat_map(|t| unit_noise(fnv1a(t.as_bytes()), self.0)).map(|x| x as f32).collect();
        crate::embed::Embeddings::new(self.0, data)
    }
}

/// A deterministic pseudo-random unit vector of `dim` numbers.
pub fn unit_noise(seed: u64, dim: usize) -> Vec<f64> {
    let mut r = SplitMix(seed);
    let v: Vec<f64> = (0..dim).map(|_| r.unit() - 0.5).collect();
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.iter().map(|x| x / n).collect()
}
