//! Text embedders.
//!
//! An [`Embedder`] turns a batch of texts into unit-length vectors. zipp uses one local
//! embedder for all text (SPEC §4: the VPTT paper used an API embedder for captions and
//! MiniLM for elements; we use MiniLM for both and say so): [`MiniLm`], the real
//! all-MiniLM-L6-v2 on candle.
//!
//! Embed in batches: one call with 64 texts costs far less than 64 calls with one.

mod bert_cpu;
mod minilm;

pub use minilm::{CpuKernel, MiniLm, MiniLmOptions};

use crate::error::{Error, Result};

/// Turns texts into unit-length vectors. Implementations are shareable across threads.
pub trait Embedder: Send + Sync {
    /// A string that identifies the model *and* its settings (weights fingerprint, max
    /// tokens): two embedders with the same id produce the same vectors. Caches of
    /// embeddings ([`crate::IndexedPersona`]) are keyed by it.
    fn id(&self) -> &str;

    /// Vector dimension.
    fn dim(&self) -> usize;

    /// Embeds `texts`; row `i` of the result is the unit vector of `texts[i]`.
    fn embed(&self, texts: &[&str]) -> Result<Embeddings>;

    /// Embeds one text.
    fn embed_one(&self, text: &str) -> Result<Vec<f32>> {
        Ok(self.embed(&[text])?.into_data())
    }
}

/// A row-major matrix of embeddings, one unit-length row per text.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    dim: usize,
    data: Vec<f32>,
}

impl Embeddings {
    /// Wraps row-major `data` of `dim` columns; fails on a ragged length or a non-finite value.
    pub fn new(dim: usize, data: Vec<f32>) -> Result<Embeddings> {
        if dim == 0 || !data.len().is_multiple_of(dim) {
            return Err(Error::InvalidInput(format!(
                "embedding data of length {} is not a whole number of rows of dimension {dim}",
                data.len()
            )));
        }
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(Error::InvalidInput(format!("embedding row {} holds a non-finite value", i / dim)));
        }
        Ok(Embeddings { dim, data })
    }

    /// An empty matrix of `dim` columns.
    pub fn empty(dim: usize) -> Embeddings {
        Embeddings { dim, data: Vec::new() }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn len(&self) -> usize {
        self.data.len() / self.dim.max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Row `i`. Panics if `i >= len()`, like slice indexing.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    pub fn rows(&self) -> impl ExactSizeIterator<Item = &[f32]> {
        self.data.chunks_exact(self.dim)
    }

    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    /// `self · q` for every row (cosine similarity when both are unit vectors).
    /// Panics if `q.len() != dim()`.
    pub fn dots(&self, q: &[f32]) -> Vec<f32> {
        self.rows().map(|r| dot(r, q)).collect()
    }
}

/// Dot product of two equal-length slices.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot of vectors of different lengths");
    // Four independent accumulators let the compiler vectorise without -ffast-math.
    let mut acc = [0f32; 4];
    let (ca, ra) = a.split_at(a.len() - a.len() % 4);
    let (cb, rb) = b.split_at(ca.len());
    for (x, y) in ca.chunks_exact(4).zip(cb.chunks_exact(4)) {
        for k in 0..4 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// Checks that an embedder returned one row of its own dimension per text; a custom
/// [`Embedder`] that does not is reported instead of panicking later.
pub fn check_shape(embedder: &dyn Embedder, texts: usize, got: &Embeddings) -> Result<()> {
    if got.len() != texts || got.dim() != embedder.dim() {
        return Err(Error::InvalidInput(format!(
            "embedder `{}` returned {} rows of dimension {} for {texts} texts of dimension {}",
            embedder.id(),
            got.len(),
            got.dim(),
            embedder.dim()
        )));
    }
    Ok(())
}

/// Scales `v` to unit length in place; a zero vector stays zero.
pub fn normalize(v: &mut [f32]) {
    let n = dot(v, v).sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_reject_ragged_and_non_finite_data() {
        assert!(Embeddings::new(3, vec![0.0; 7]).is_err());
        assert!(Embeddings::new(2, vec![0.0, f32::NAN]).is_err());
        assert!(Embeddings::new(0, vec![]).is_err());
        let e = Embeddings::new(2, vec![1.0, 0.0, 0.6, 0.8]).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e.row(1), &[0.6, 0.8]);
        assert_eq!(e.dots(&[0.0, 1.0]), vec![0.0, 0.8]);
    }

    #[test]
    fn dot_matches_naive_sum_for_odd_lengths() {
        let a: Vec<f32> = (0..11).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..11).map(|i| 1.0 - i as f32 * 0.1).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-5);
        let mut v = vec![3.0, 4.0];
        normalize(&mut v);
        assert_eq!(v, vec![0.6, 0.8]);
        let mut z = vec![0.0, 0.0];
        normalize(&mut z);
        assert_eq!(z, vec![0.0, 0.0]);
    }
}
