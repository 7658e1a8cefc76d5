//! Euler (Karras et al. 2022's Euler step of the probability-flow ODE, as k-diffusion and
//! diffusers' `EulerDiscreteScheduler` run it; SDXL's default scheduler).
//!
//! The same σ schedule as [`super::euler_a`] (σ_t = √((1 − ᾱ_t)/ᾱ_t) of the training
//! timesteps, linearly interpolated at the inference timesteps, the same spacings and
//! `init_noise_sigma`), but deterministic: no ancestral noise. The UNet sees x/√(σ²+1). One
//! step from σ = σᵢ to σ′ = σᵢ₊₁:
//!
//! ```text
//! ε-prediction:      x̂₀ = x − σ·ε
//! v-prediction:      x̂₀ = −σ/√(σ²+1)·v + x/(σ²+1)
//! sample-prediction: x̂₀ = the model output
//! x′ = x + (x − x̂₀)/σ · (σ′ − σ)
//! ```
//!
//! The σ after the last step is 0 (`final_sigmas_type` `zero`, the default) or σ of training
//! timestep 0 (`sigma_min`: the last step then stays at that level). Image-to-image starts
//! from x₀ + σᵢ·noise.
//!
//! diffusers' step takes "churn" arguments (`s_churn` etc.) that re-noise the sample; its
//! pipelines leave them at 0, and so does zipp. The configuration's alternative σ schedules
//! (Karras, exponential, beta, `log_linear` interpolation) and `continuous` timesteps for
//! v-prediction (EDM's 0.25·ln σ) are not implemented: [`Euler::new`] says so.

use candle_core::{Result, Tensor};

use super::{check_index, euler_init_noise_sigma, euler_schedule, lincomb, sigma_x0, training_sigmas};
use super::{Prediction, Scheduler, SchedulerConfig, SchedulerKind};
use crate::noise::Noise;

/// Euler set up for one generation.
#[derive(Debug, Clone)]
pub struct Euler {
    timesteps: Vec<f64>,
    /// σ of each step, then the final σ (`steps + 1` values).
    sigmas: Vec<f64>,
    init_noise_sigma: f64,
    prediction: Prediction,
}

impl Euler {
    /// The schedule for `steps` steps (1 ≤ steps ≤ N, checked by [`super::build`]).
    pub fn new(config: &SchedulerConfig, steps: usize) -> Result<Euler> {
        for (on, key) in [
            (config.use_karras_sigmas, "use_karras_sigmas"),
            (config.use_exponential_sigmas, "use_exponential_sigmas"),
            (config.use_beta_sigmas, "use_beta_sigmas"),
        ] {
            if on {
                candle_core::bail!("euler: {key} is not implemented");
            }
        }
        if config.interpolation_type != "linear" {
            candle_core::bail!(
                "euler: interpolation_type {:?} is not implemented (only \"linear\")",
                config.interpolation_type
            );
        }
        // diffusers only changes the timesteps for `continuous` with v-prediction.
        match config.timestep_type.as_str() {
            "discrete" => {}
            "continuous" if config.prediction_type != Prediction::VPrediction => {}
            other => candle_core::bail!(
                "euler: timestep_type {other:?} with prediction_type {:?} is not implemented (only \"discrete\")",
                config.prediction_type
            ),
        }
        let final_sigma = match config.final_sigmas_type.as_str() {
            "zero" => 0.0,
            "sigma_min" => training_sigmas(config)[0],
            other => candle_core::bail!("euler: final_sigmas_type {other:?} is not one of \"zero\", \"sigma_min\""),
        };
        let (timesteps, mut sigmas) = euler_schedule(config, SchedulerKind::Euler, steps);
        sigmas.push(final_sigma);
        let init_noise_sigma = euler_init_noise_sigma(&sigmas, config.spacing(SchedulerKind::Euler));
        Ok(Euler { timesteps, sigmas, init_noise_sigma, prediction: config.prediction_type })
    }

    /// σ of each step, then the final σ.
    pub fn sigmas(&self) -> &[f64] {
        &self.sigmas
    }
}

impl Scheduler for Euler {
    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn init_noise_sigma(&self) -> f64 {
        self.init_noise_sigma
    }

    /// x / √(σᵢ² + 1).
    fn scale_model_input(&self, sample: &Tensor, i: usize) -> Result<Tensor> {
        check_index(i, self.timesteps.len(), "euler")?;
        let s = self.sigmas[i];
        sample.affine(1.0 / (s * s + 1.0).sqrt(), 0.0)
    }

    /// x + (x − x̂₀)/σᵢ · (σᵢ₊₁ − σᵢ); draws no noise.
    fn step(&mut self, model_output: &Tensor, i: usize, sample: &Tensor, _noise: &mut Noise) -> Result<Tensor> {
        check_index(i, self.timesteps.len(), "euler")?;
        let (s, s_to) = (self.sigmas[i], self.sigmas[i + 1]);
        let x0 = sigma_x0(self.prediction, s, model_output, sample)?;
        let derivative = (sample - &x0)?.affine(1.0 / s, 0.0)?;
        lincomb(&[(1.0, sample), (s_to - s, &derivative)])
    }

    /// x₀ + σᵢ·noise.
    fn add_noise(&self, original: &Tensor, noise: &Tensor, i: usize) -> Result<Tensor> {
        check_index(i, self.timesteps.len(), "euler")?;
        lincomb(&[(1.0, original), (self.sigmas[i], noise)])
    }
}
