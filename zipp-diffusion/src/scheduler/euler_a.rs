//! Euler ancestral (Karras et al. 2022's Euler step with ancestral noise, as k-diffusion and
//! diffusers' `EulerAncestralDiscreteScheduler` run it).
//!
//! Works in σ-space: σ_t = √((1 − ᾱ_t)/ᾱ_t) for the training timesteps, linearly interpolated
//! at the (possibly fractional) inference timesteps, then a final σ = 0. The UNet sees
//! x/√(σ²+1). One step from σ = σᵢ to σ′ = σᵢ₊₁:
//!
//! ```text
//! ε-prediction: x̂₀ = x − σ·ε
//! v-prediction: x̂₀ = −σ/√(σ²+1)·v + x/(σ²+1)
//! σ_up   = √(σ′²·(σ² − σ′²)/σ²)      σ_down = √(σ′² − σ_up²) = σ′²/σ
//! x′ = x + (x − x̂₀)/σ · (σ_down − σ) + σ_up·z,   z ~ N(0, I) from `Noise`
//! ```
//!
//! A noise tensor is drawn at every step, the last (σ_up = 0) included, as diffusers does, so
//! seeded runs use the same draws whatever the step. The initial noise is scaled by
//! `init_noise_sigma`: σ_max for `linspace`/`trailing` spacing but √(σ_max² + 1) for `leading`
//! (diffusers' rule). Image-to-image starts from x₀ + σᵢ·noise.
//!
//! Timesteps, first to last (`float32` as in diffusers):
//! - `linspace`: k·(N−1)/(steps−1) for k = steps−1 … 0, *not* rounded;
//! - `leading`:  k·⌊N/steps⌋ + steps_offset (σ clamps to σ_{N−1} past the training range);
//! - `trailing`: round(N − k·N/steps) − 1.

use candle_core::{Result, Tensor};

use super::{check_index, euler_init_noise_sigma, euler_schedule, lincomb, sigma_x0};
use super::{Prediction, Scheduler, SchedulerConfig, SchedulerKind};
use crate::noise::Noise;

/// Euler-ancestral set up for one generation.
#[derive(Debug, Clone)]
pub struct EulerAncestral {
    timesteps: Vec<f64>,
    /// σ of each step, then a final 0 (`steps + 1` values).
    sigmas: Vec<f64>,
    init_noise_sigma: f64,
    prediction: Prediction,
}

impl EulerAncestral {
    /// The schedule for `steps` steps (1 ≤ steps ≤ N, checked by [`super::build`]).
    pub fn new(config: &SchedulerConfig, steps: usize) -> Result<EulerAncestral> {
        if config.prediction_type == Prediction::Sample {
            candle_core::bail!("euler_a: prediction_type \"sample\" is not implemented (nor is it in diffusers)");
        }
        let (timesteps, mut sigmas) = euler_schedule(config, SchedulerKind::EulerAncestral, steps);
        sigmas.push(0.0);
        let init_noise_sigma = euler_init_noise_sigma(&sigmas, config.spacing(SchedulerKind::EulerAncestral));
        Ok(EulerAncestral { timesteps, sigmas, init_noise_sigma, prediction: config.prediction_type })
    }

    /// σ of each step, then the final 0.
    pub fn sigmas(&self) -> &[f64] {
        &self.sigmas
    }
}

impl Scheduler for EulerAncestral {
    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn init_noise_sigma(&self) -> f64 {
        self.init_noise_sigma
    }

    /// x / √(σᵢ² + 1).
    fn scale_model_input(&self, sample: &Tensor, i: usize) -> Result<Tensor> {
        check_index(i, self.timesteps.len(), "euler_a")?;
        let s = self.sigmas[i];
        sample.affine(1.0 / (s * s + 1.0).sqrt(), 0.0)
    }

    fn step(&mut self, model_output: &Tensor, i: usize, sample: &Tensor, noise: &mut Noise) -> Result<Tensor> {
        check_index(i, self.timesteps.len(), "euler_a")?;
        let (s, s_to) = (self.sigmas[i], self.sigmas[i + 1]);
        // (`Prediction::Sample` is rejected in `new`.)
        let x0 = sigma_x0(self.prediction, s, model_output, sample)?;
        let sigma_up = (s_to * s_to * (s * s - s_to * s_to) / (s * s)).sqrt();
        let sigma_down = s_to * s_to / s;
        let derivative = (sample - &x0)?.affine(1.0 / s, 0.0)?;
        let dims = sample.dims();
        let z = noise.sample(&dims[1..])?;
        if z.dims() != dims {
            candle_core::bail!("euler_a: noise of shape {:?} for a sample of shape {dims:?}", z.dims());
        }
        lincomb(&[(1.0, sample), (sigma_down - s, &derivative), (sigma_up, &z)])
    }

    /// x₀ + σᵢ·noise.
    fn add_noise(&self, original: &Tensor, noise: &Tensor, i: usize) -> Result<Tensor> {
        check_index(i, self.timesteps.len(), "euler_a")?;
        lincomb(&[(1.0, original), (self.sigmas[i], noise)])
    }
}
