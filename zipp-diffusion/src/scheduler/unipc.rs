//! UniPC (Zhao et al. 2023): a multistep predictor (UniP) with a corrector (UniC) that reuses
//! the model output of the step it corrects, as diffusers' `UniPCMultistepScheduler` runs it
//! with its defaults (data prediction, B(h) variant `bh2`, order 2, lower order at the end).
//!
//! Noise levels: σᵢ from the training σ at the inference timesteps, then a final σ (0, or
//! σ of timestep 0 with `final_sigmas_type = "sigma_min"`). From σ: αᵢ = 1/√(σᵢ²+1),
//! sᵢ = σᵢ·αᵢ (the VP standard deviation), λᵢ = ln αᵢ − ln sᵢ (half log-SNR).
//!
//! Each model output is first converted to a data prediction mᵢ (`predict_x0`):
//! ε: mᵢ = (x − sᵢ·ε)/αᵢ, v: mᵢ = αᵢ·x − sᵢ·v, x₀: mᵢ = output.
//!
//! Predictor of order p from step i (s0 = i) to t = i+1, with h = λ_t − λ_s0, ĥ = −h:
//!
//! ```text
//! r_k = (λ_{i−k} − λ_{i})/h,  D_k = (m_{i−k} − m_i)/r_k      k = 1 … p−1
//! φ₁ = e^ĥ − 1,   B(h) = e^ĥ − 1 (bh2) or ĥ (bh1)
//! g₁ = φ₁/ĥ − 1,  g_{j+1} = g_j/ĥ − 1/(j+1)!;   b_j = g_j·j!/B(h)     j = 1 … p
//! R_{j,k} = r_k^{j−1}   (with r_p = 1)
//! ρ = 0.5 for p = 2, else R[..p−1, ..p−1]⁻¹·b[..p−1]
//! x_t = (s_t/s_s0)·x − α_t·φ₁·m_i − α_t·B(h)·Σ_k ρ_k·D_k
//! ```
//!
//! Corrector, at the start of step i (before the predictor) when i > 0 and i−1 is not in
//! `disable_corrector`: the same formulas from s0 = i−1 to t = i with the previous step's
//! order p, its input sample x_{i−1} and history, plus the fresh mᵢ:
//!
//! ```text
//! ρ^c = 0.5 for p = 1, else R⁻¹·b (all p)
//! xᵢ ← (s_i/s_{i−1})·x_{i−1} − α_i·φ₁·m_{i−1} − α_i·B(h)·(Σ_{k<p} ρ^c_k·D_k + ρ^c_p·(m_i − m_{i−1}))
//! ```
//!
//! The order is min(solver_order, steps done + 1) (warm-up), and with `lower_order_final`
//! also ≤ steps left. With `predict_x0 = false` the history holds noise predictions and
//! ĥ = h, x_t = (α_t/α_s0)·x − s_t·φ₁·m − s_t·B(h)·Σρ·D (diffusers' noise-prediction variant).
//!
//! Timesteps (integers), first to last, over `steps + 1` grid points minus the last:
//! - `linspace`: round(k·(N−1)/steps) for k = steps … 1;
//! - `leading`:  k·⌊N/(steps+1)⌋ + steps_offset for k = steps … 1;
//! - `trailing`: round(N − k·N/steps) − 1 for k = 0 … steps−1.

use std::collections::VecDeque;

use candle_core::{Result, Tensor};

use super::{check_index, interp, leading_timesteps, lincomb, np_linspace, np_round, trailing_timesteps};
use super::{training_sigmas, Prediction, Scheduler, SchedulerConfig, SchedulerKind, Spacing};
use crate::noise::Noise;

/// UniPC set up for one generation; it keeps the model-output history between steps, so
/// steps must come in order (`start`, `start + 1`, …).
#[derive(Debug, Clone)]
pub struct UniPc {
    timesteps: Vec<f64>,
    /// σ of each step, then the final σ (`steps + 1` values).
    sigmas: Vec<f64>,
    /// αᵢ, sᵢ, λᵢ for each σᵢ.
    alpha: Vec<f64>,
    std: Vec<f64>,
    lambda: Vec<f64>,
    solver_order: usize,
    lower_order_final: bool,
    predict_x0: bool,
    bh2: bool,
    disable_corrector: Vec<usize>,
    prediction: Prediction,
    /// Converted model outputs of the last steps, newest last (at most `solver_order`).
    history: VecDeque<Tensor>,
    /// The (corrected) sample the last step started from.
    last_sample: Option<Tensor>,
    /// The order the last step's predictor used.
    last_order: usize,
    /// Steps done so far, capped at `solver_order` (the warm-up counter).
    lower_order_nums: usize,
    /// The index the next `step` must have, once stepping has begun.
    next: Option<usize>,
}

impl UniPc {
    /// The schedule for `steps` steps (1 ≤ steps ≤ N, checked by [`super::build`]).
    pub fn new(config: &SchedulerConfig, steps: usize) -> Result<UniPc> {
        let n = config.num_train_timesteps;
        if config.use_karras_sigmas {
            candle_core::bail!("unipc: use_karras_sigmas is not implemented");
        }
        if config.solver_order == 0 {
            candle_core::bail!("unipc: solver_order must be at least 1");
        }
        let bh2 = match config.solver_type.as_str() {
            "bh1" => false,
            // diffusers maps the DPM-Solver names onto bh2.
            "bh2" | "midpoint" | "heun" | "logrho" => true,
            other => candle_core::bail!("unipc: solver_type {other:?} is not one of bh1, bh2"),
        };
        let timesteps: Vec<f64> = match config.spacing(SchedulerKind::UniPc) {
            Spacing::Linspace => {
                np_linspace((n - 1) as f64, steps + 1).into_iter().rev().take(steps).map(np_round).collect()
            }
            Spacing::Leading => leading_timesteps(n, steps + 1, config.steps_offset).into_iter().take(steps).collect(),
            Spacing::Trailing => trailing_timesteps(n, steps),
        };
        let train = training_sigmas(config);
        let mut sigmas: Vec<f64> = timesteps.iter().map(|&t| interp(t, &train)).collect();
        sigmas.push(match config.final_sigmas_type.as_str() {
            "zero" => 0.0,
            "sigma_min" => train[0],
            other => candle_core::bail!("unipc: final_sigmas_type {other:?} is not one of zero, sigma_min"),
        });
        if let Some(k) = (1..sigmas.len()).find(|&k| sigmas[k] >= sigmas[k - 1]) {
            candle_core::bail!(
                "unipc: {steps} steps give two equal noise levels (steps {} and {k}, timesteps {:?}); \
                 UniPC divides by their log-SNR gap: use fewer steps or another spacing",
                k - 1,
                &timesteps[k - 1..(k + 1).min(timesteps.len())]
            );
        }
        let final_zero = sigmas[steps] == 0.0;
        if final_zero && !config.predict_x0 {
            candle_core::bail!(
                "unipc: predict_x0 = false needs final_sigmas_type = \"sigma_min\" (diffusers returns NaN at σ = 0)"
            );
        }
        if final_zero && !config.lower_order_final && config.solver_order > 1 && steps > 1 {
            candle_core::bail!(
                "unipc: lower_order_final = false with final_sigmas_type = \"zero\" divides by zero at the last step \
                 (diffusers returns NaN); keep lower_order_final or use \"sigma_min\""
            );
        }
        let alpha: Vec<f64> = sigmas.iter().map(|s| 1.0 / (s * s + 1.0).sqrt()).collect();
        let std: Vec<f64> = sigmas.iter().zip(&alpha).map(|(s, a)| s * a).collect();
        let lambda = alpha.iter().zip(&std).map(|(a, s)| a.ln() - s.ln()).collect();
        Ok(UniPc {
            timesteps,
            sigmas,
            alpha,
            std,
            lambda,
            solver_order: config.solver_order,
            lower_order_final: config.lower_order_final,
            predict_x0: config.predict_x0,
            bh2,
            disable_corrector: config.disable_corrector.clone(),
            prediction: config.prediction_type,
            history: VecDeque::new(),
            last_sample: None,
            last_order: 0,
            lower_order_nums: 0,
            next: None,
        })
    }

    /// σ of each step, then the final σ.
    pub fn sigmas(&self) -> &[f64] {
        &self.sigmas
    }

    /// The model output as the solver wants it at step `i`: a data prediction (predict_x0)
    /// or a noise prediction.
    fn convert(&self, model_output: &Tensor, sample: &Tensor, i: usize) -> Result<Tensor> {
        let (a, s) = (self.alpha[i], self.std[i]);
        match (self.predict_x0, self.prediction) {
            (true, Prediction::Epsilon) => lincomb(&[(1.0 / a, sample), (-s / a, model_output)]),
            (true, Prediction::VPrediction) => lincomb(&[(a, sample), (-s, model_output)]),
            (true, Prediction::Sample) | (false, Prediction::Epsilon) => Ok(model_output.clone()),
            (false, Prediction::VPrediction) => lincomb(&[(a, model_output), (s, sample)]),
            (false, Prediction::Sample) => lincomb(&[(1.0 / s, sample), (-a / s, model_output)]),
        }
    }

    /// The update from noise level `s0` to `t` with the history `ms` (newest last; ms[len−1]
    /// is the output at `s0`, ms[len−1−k] at `s0 − k`), of order `order`:
    /// `x_t = c_x·x − c·φ₁·m₀ − c·B(h)·(Σ_k ρ_k·D_k + ρ_last·(m_new − m₀))`, where the last term
    /// is the corrector's (`m_new = Some`), c = α_t (data) or s_t (noise prediction).
    fn update(
        &self,
        x: &Tensor,
        s0: usize,
        t: usize,
        ms: &[&Tensor],
        order: usize,
        m_new: Option<&Tensor>,
    ) -> Result<Tensor> {
        let m0 = ms[ms.len() - 1];
        let h = self.lambda[t] - self.lambda[s0];
        let hh = if self.predict_x0 { -h } else { h };
        // Earlier outputs used: predictor p−1, corrector p−1 (plus m_new).
        let rks: Vec<f64> = (1..order).map(|k| (self.lambda[s0 - k] - self.lambda[s0]) / h).collect();
        let phi1 = hh.exp_m1();
        let b_h = if self.bh2 { hh.exp_m1() } else { hh };
        // b_j = g_j·j!/B(h), R_{j,k} = r_k^{j−1}, j = 1 … order (r_order = 1).
        let mut r_all = rks.clone();
        r_all.push(1.0);
        let (mut g, mut fact) = (phi1 / hh - 1.0, 1.0);
        let mut b = Vec::with_capacity(order);
        let mut rmat = Vec::with_capacity(order);
        for j in 1..=order {
            rmat.push(r_all.iter().map(|r| r.powi(j as i32 - 1)).collect::<Vec<f64>>());
            b.push(g * fact / b_h);
            fact *= (j + 1) as f64;
            g = g / hh - 1.0 / fact;
        }
        let rhos: Vec<f64> = match m_new {
            // Predictor: ρ over the p−1 differences.
            None => match order {
                1 => Vec::new(),
                2 => vec![0.5],
                _ => {
                    let sub: Vec<Vec<f64>> = rmat[..order - 1].iter().map(|row| row[..order - 1].to_vec()).collect();
                    solve(sub, b[..order - 1].to_vec())?
                }
            },
            // Corrector: ρ over the p−1 differences and the new output.
            Some(_) => match order {
                1 => vec![0.5],
                _ => solve(rmat, b)?,
            },
        };
        let (c_x, c) = if self.predict_x0 {
            (self.std[t] / self.std[s0], self.alpha[t])
        } else {
            (self.alpha[t] / self.alpha[s0], self.std[t])
        };
        let mut terms: Vec<(f64, Tensor)> = vec![(c_x, x.clone()), (-c * phi1, m0.clone())];
        for (k, r) in rks.iter().enumerate() {
            let diff = (ms[ms.len() - 2 - k] - m0)?;
            terms.push((-c * b_h * rhos[k] / r, diff));
        }
        if let Some(m_new) = m_new {
            terms.push((-c * b_h * rhos[order - 1], (m_new - m0)?));
        }
        // With order 1 and no corrector there is no B(h) term at all (diffusers multiplies
        // B(h) by 0, which is NaN for bh1 at a final σ of 0; the limit is this).
        let refs: Vec<(f64, &Tensor)> = terms.iter().map(|(c, t)| (*c, t)).collect();
        lincomb(&refs)
    }
}

/// Solves `a·x = b` (small, dense) by Gaussian elimination with partial pivoting.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Result<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let piv = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs())).unwrap_or(col);
        if a[piv][col] == 0.0 || !a[piv][col].is_finite() {
            candle_core::bail!("unipc: singular coefficient system (repeated noise levels?)");
        }
        a.swap(col, piv);
        b.swap(col, piv);
        let (top, below) = a.split_at_mut(col + 1);
        let pivot = &top[col];
        for (k, row) in below.iter_mut().enumerate() {
            let f = row[col] / pivot[col];
            for (x, p) in row[col..].iter_mut().zip(&pivot[col..]) {
                *x -= f * p;
            }
            b[col + 1 + k] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    Ok(x)
}

impl Scheduler for UniPc {
    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn init_noise_sigma(&self) -> f64 {
        1.0
    }

    fn scale_model_input(&self, sample: &Tensor, i: usize) -> Result<Tensor> {
        check_index(i, self.timesteps.len(), "unipc")?;
        Ok(sample.clone())
    }

    fn step(&mut self, model_output: &Tensor, i: usize, sample: &Tensor, _noise: &mut Noise) -> Result<Tensor> {
        check_index(i, self.timesteps.len(), "unipc")?;
        if let Some(next) = self.next {
            if i != next {
                candle_core::bail!(
                    "unipc: steps must come in order (it keeps a history): expected step {next}, got {i}"
                );
            }
        }
        let m = self.convert(model_output, sample, i)?;

        // UniC: correct this step's input with the fresh output, if the last step predicted it.
        let corrected = match &self.last_sample {
            Some(last) if i > 0 && !self.disable_corrector.contains(&(i - 1)) => {
                let ms: Vec<&Tensor> = self.history.iter().collect();
                Some(self.update(last, i - 1, i, &ms, self.last_order, Some(&m))?)
            }
            _ => None,
        };
        let sample = corrected.as_ref().unwrap_or(sample);

        self.history.push_back(m);
        if self.history.len() > self.solver_order {
            self.history.pop_front();
        }
        let mut order = self.solver_order;
        if self.lower_order_final {
            order = order.min(self.timesteps.len() - i);
        }
        let order = order.min(self.lower_order_nums + 1);
        self.last_order = order;
        self.last_sample = Some(sample.clone());

        // UniP: predict the next step's sample.
        let ms: Vec<&Tensor> = self.history.iter().collect();
        let prev = self.update(sample, i, i + 1, &ms, order, None)?;

        self.lower_order_nums = (self.lower_order_nums + 1).min(self.solver_order);
        self.next = Some(i + 1);
        Ok(prev)
    }

    /// αᵢ·x₀ + sᵢ·noise, with αᵢ = 1/√(σᵢ²+1), sᵢ = σᵢ·αᵢ.
    fn add_noise(&self, original: &Tensor, noise: &Tensor, i: usize) -> Result<Tensor> {
        check_index(i, self.timesteps.len(), "unipc")?;
        lincomb(&[(self.alpha[i], original), (self.std[i], noise)])
    }
}
