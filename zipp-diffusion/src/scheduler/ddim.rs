//! DDIM (Song et al. 2021) with η = 0: the deterministic sampler, as diffusers'
//! `DDIMScheduler` runs it.
//!
//! With ᾱ the cumulative product of (1 − β), at timestep t with the "previous" (less noisy)
//! timestep t′ = t − ⌊N/steps⌋ (N training timesteps):
//!
//! ```text
//! ε-prediction:  x̂₀ = (x_t − √(1−ᾱ_t)·ε) / √ᾱ_t            ε̂ = ε
//! v-prediction:  x̂₀ = √ᾱ_t·x_t − √(1−ᾱ_t)·v                ε̂ = √ᾱ_t·v + √(1−ᾱ_t)·x_t
//! x₀-prediction: x̂₀ = output                                ε̂ = (x_t − √ᾱ_t·x̂₀) / √(1−ᾱ_t)
//! (clip_sample:  x̂₀ clamped to ±clip_sample_range)
//! x_{t′} = √ᾱ_{t′}·x̂₀ + √(1−ᾱ_{t′})·ε̂
//! ```
//!
//! where ᾱ_{t′} for t′ < 0 is 1 with `set_alpha_to_one`, else ᾱ₀. As in diffusers t′ is
//! t − ⌊N/steps⌋ whatever the spacing, so with `linspace`/`trailing` it is not always the next
//! timestep of the schedule (linspace, 10 steps: 999 → 888 steps with ᾱ_{899}).
//!
//! Timesteps (all integers), first to last:
//! - `leading`:  k·⌊N/steps⌋ + steps_offset for k = steps−1 … 0;
//! - `linspace`: round(k·(N−1)/(steps−1)) for k = steps−1 … 0 (numpy's half-to-even rounding);
//! - `trailing`: round(N − k·N/steps) − 1 for k = 0 … steps−1.

use candle_core::{Result, Tensor};

use super::{check_index, leading_timesteps, lincomb, np_linspace, np_round, trailing_timesteps};
use super::{Prediction, Scheduler, SchedulerConfig, SchedulerKind, Spacing};
use crate::noise::Noise;

/// DDIM set up for one generation.
#[derive(Debug, Clone)]
pub struct Ddim {
    timesteps: Vec<f64>,
    alphas_cumprod: Vec<f64>,
    /// ᾱ used when t′ < 0.
    final_alpha_cumprod: f64,
    /// ⌊N/steps⌋: how far back t′ is.
    step_ratio: usize,
    prediction: Prediction,
    /// `Some(range)` with `clip_sample`.
    clip: Option<f64>,
}

impl Ddim {
    /// The schedule for `steps` steps (1 ≤ steps ≤ N, checked by [`super::build`]).
    pub fn new(config: &SchedulerConfig, steps: usize) -> Result<Ddim> {
        let n = config.num_train_timesteps;
        let timesteps = match config.spacing(SchedulerKind::Ddim) {
            Spacing::Leading => leading_timesteps(n, steps, config.steps_offset),
            Spacing::Linspace => np_linspace((n - 1) as f64, steps).into_iter().rev().map(np_round).collect(),
            Spacing::Trailing => trailing_timesteps(n, steps),
        };
        if let Some(&t) = timesteps.iter().find(|&&t| t >= n as f64) {
            candle_core::bail!(
                "ddim: {steps} steps with steps_offset {} reach timestep {t}, past the {n} training timesteps \
                 (diffusers fails there too); use fewer steps or another spacing",
                config.steps_offset
            );
        }
        let alphas_cumprod = config.alphas_cumprod();
        let final_alpha_cumprod = if config.set_alpha_to_one { 1.0 } else { alphas_cumprod[0] };
        Ok(Ddim {
            timesteps,
            alphas_cumprod,
            final_alpha_cumprod,
            step_ratio: n / steps,
            prediction: config.prediction_type,
            clip: config.clip_sample.then_some(config.clip_sample_range),
        })
    }

    /// ᾱ at step `i`'s timestep.
    fn alpha_cumprod(&self, i: usize) -> f64 {
        self.alphas_cumprod[self.timesteps[i] as usize]
    }
}

impl Scheduler for Ddim {
    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn init_noise_sigma(&self) -> f64 {
        1.0
    }

    fn scale_model_input(&self, sample: &Tensor, i: usize) -> Result<Tensor> {
        check_index(i, self.timesteps.len(), "ddim")?;
        Ok(sample.clone())
    }

    fn step(&mut self, model_output: &Tensor, i: usize, sample: &Tensor, _noise: &mut Noise) -> Result<Tensor> {
        check_index(i, self.timesteps.len(), "ddim")?;
        let t = self.timesteps[i] as usize;
        let a_t = self.alphas_cumprod[t];
        let a_prev = match t.checked_sub(self.step_ratio) {
            Some(prev) => self.alphas_cumprod[prev],
            None => self.final_alpha_cumprod,
        };
        let (sa, sb) = (a_t.sqrt(), (1.0 - a_t).sqrt());
        let (x0, eps) = match self.prediction {
            Prediction::Epsilon => (lincomb(&[(1.0 / sa, sample), (-sb / sa, model_output)])?, model_output.clone()),
            Prediction::VPrediction => {
                (lincomb(&[(sa, sample), (-sb, model_output)])?, lincomb(&[(sa, model_output), (sb, sample)])?)
            }
            Prediction::Sample => (model_output.clone(), lincomb(&[(1.0 / sb, sample), (-sa / sb, model_output)])?),
        };
        let x0 = match self.clip {
            Some(r) => x0.clamp(-r as f32, r as f32)?,
            None => x0,
        };
        // η = 0: no noise term, so the direction is √(1 − ᾱ_{t′})·ε̂ exactly.
        lincomb(&[(a_prev.sqrt(), &x0), ((1.0 - a_prev).sqrt(), &eps)])
    }

    /// x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·noise at step `i`'s timestep.
    fn add_noise(&self, original: &Tensor, noise: &Tensor, i: usize) -> Result<Tensor> {
        check_index(i, self.timesteps.len(), "ddim")?;
        let a = self.alpha_cumprod(i);
        lincomb(&[(a.sqrt(), original), ((1.0 - a).sqrt(), noise)])
    }
}
