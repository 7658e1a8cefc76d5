//! Seeded Gaussian noise, always drawn on the CPU.
//!
//! Every random number a generation uses (the initial latents, the noise img2img adds, the
//! ancestral noise of Euler-a) comes from here, never from the compute device's generator:
//! a seed gives the same numbers on every device, so CPU and GPU runs start from the same
//! latents and differ only by kernel rounding. Image `k` of a batch draws from its own
//! stream, seeded from `(seed, k)`, so image `k` of a batch equals the single image made
//! with the same seed and `first_index = k`.
//!
//! Normals come from SplitMix64 through the Box–Muller transform in `f64` (integer
//! generator, so the draws are the same on every platform; `ln`/`cos` of the platform's
//! libm may differ in the last bit, which the `f32` result almost always hides).

use std::collections::VecDeque;

use candle_core::{Device, Result, Tensor};
use zipp_core::rng::{splitmix64, SplitMix};

/// Where a generation's random tensors come from.
#[derive(Debug)]
pub struct Noise {
    source: Source,
    device: Device,
}

#[derive(Debug)]
enum Source {
    /// One stream per batch image.
    Seeded(Vec<Stream>),
    /// Tensors recorded elsewhere (a reference run), handed out in order.
    Replay(VecDeque<Tensor>),
}

#[derive(Debug)]
struct Stream {
    rng: SplitMix,
    /// The second normal of the last Box–Muller pair, not yet used.
    spare: Option<f64>,
}

impl Stream {
    fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        // u1 in (0, 1] so ln(u1) is finite.
        let u1 = 1.0 - self.rng.unit();
        let u2 = self.rng.unit();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
        self.spare = Some(r * s);
        r * c
    }
}

/// The seed of image `index`'s stream.
fn stream_seed(seed: u64, index: u64) -> u64 {
    let mut s = seed ^ 0x7A69_7070_6E6F_6973; // "zippnois"
    let a = splitmix64(&mut s);
    let mut t = index.wrapping_add(a);
    splitmix64(&mut t)
}

impl Noise {
    /// `batch` streams for images `first_index ..first_index + batch` of `seed`.
    pub fn seeded(seed: u64, first_index: u64, batch: usize, device: &Device) -> Noise {
        let streams = (0..batch as u64)
            .map(|k| Stream { rng: SplitMix(stream_seed(seed, first_index + k)), spare: None })
            .collect();
        Noise { source: Source::Seeded(streams), device: device.clone() }
    }

    /// Hands out `tensors` in order (each must have the shape asked for): replays the random
    /// draws of a reference implementation.
    pub fn replay(tensors: Vec<Tensor>, device: &Device) -> Noise {
        Noise { source: Source::Replay(tensors.into()), device: device.clone() }
    }

    /// A standard-normal `f32` tensor of shape `[batch, dims...]` on the device: row `k`
    /// from stream `k`.
    pub fn sample(&mut self, dims: &[usize]) -> Result<Tensor> {
        match &mut self.source {
            Source::Seeded(streams) => {
                let per: usize = dims.iter().product();
                let mut data = Vec::with_capacity(per * streams.len());
                for s in streams.iter_mut() {
                    data.extend((0..per).map(|_| s.normal() as f32));
                }
                let mut shape = vec![streams.len()];
                shape.extend_from_slice(dims);
                Tensor::from_vec(data, shape, &Device::Cpu)?.to_device(&self.device)
            }
            Source::Replay(queue) => {
                let t = queue.pop_front().ok_or_else(|| {
                    candle_core::Error::Msg("replayed noise exhausted: more draws than recorded".into())
                })?;
                if t.dims().get(1..) != Some(dims) {
                    candle_core::bail!("replayed noise has shape {:?}, the draw wants [_, {dims:?}]", t.dims());
                }
                t.to_device(&self.device)
            }
        }
    }

    /// The batch size for seeded noise; `None` for replay.
    pub fn batch(&self) -> Option<usize> {
        match &self.source {
            Source::Seeded(s) => Some(s.len()),
            Source::Replay(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_numbers_and_batch_rows_match_singles() {
        let dev = Device::Cpu;
        let a = Noise::seeded(42, 0, 3, &dev).sample(&[2, 3]).unwrap();
        let b = Noise::seeded(42, 0, 3, &dev).sample(&[2, 3]).unwrap();
        assert_eq!(a.to_vec3::<f32>().unwrap(), b.to_vec3::<f32>().unwrap());
        let third = Noise::seeded(42, 2, 1, &dev).sample(&[2, 3]).unwrap();
        assert_eq!(a.get(2).unwrap().to_vec2::<f32>().unwrap(), third.get(0).unwrap().to_vec2::<f32>().unwrap());
        let other = Noise::seeded(43, 0, 1, &dev).sample(&[2, 3]).unwrap();
        assert_ne!(a.get(0).unwrap().to_vec2::<f32>().unwrap(), other.get(0).unwrap().to_vec2::<f32>().unwrap());
    }

    #[test]
    fn moments_are_standard_normal() {
        let v: Vec<f32> =
            Noise::seeded(7, 0, 1, &Device::Cpu).sample(&[100_000]).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "var {var}");
    }
}
