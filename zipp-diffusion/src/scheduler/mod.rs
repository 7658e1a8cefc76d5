//! Noise schedulers: DDIM, Euler, Euler-ancestral and UniPC, configured from a model's own
//! `scheduler_config.json` (diffusers' format), stepped by index.
//!
//! Each is a reimplementation of the diffusers scheduler of the same name (the formulas of
//! the papers, as diffusers configures them), checked against diffusers' own outputs
//! (`tests/schedulers.rs`, fixtures from `benches/reference/`). Randomness (Euler-a's
//! ancestral noise) comes from [`Noise`], never from the device.
//!
//! [`build`] sets one up for a generation: [`ddim::Ddim`], [`euler::Euler`],
//! [`euler_a::EulerAncestral`], [`unipc::UniPc`]. Schedule arithmetic (ᾱ, σ, λ, solver
//! coefficients) is `f64`; tensors stay `f32`, scaled by those coefficients.

use candle_core::{Result, Tensor};
use serde::Deserialize;

use crate::noise::Noise;

pub mod ddim;
pub mod euler;
pub mod euler_a;
pub mod unipc;

/// A scheduler set up for one generation of a fixed number of steps.
///
/// The pipeline calls, for `i` in `start..timesteps().len()`:
/// `scale_model_input(x, i)` → UNet at `timesteps()[i]` → guidance → `step(eps, i, x, noise)`.
pub trait Scheduler: Send + Sync {
    /// The model timesteps of the inference steps, first (noisiest) to last.
    fn timesteps(&self) -> &[f64];

    /// Standard deviation of the initial noise (1 for DDIM/UniPC, σ_max-based for Euler).
    fn init_noise_sigma(&self) -> f64;

    /// Scales the sample before the UNet sees it at step `i` (identity except for Euler).
    fn scale_model_input(&self, sample: &Tensor, i: usize) -> Result<Tensor>;

    /// One denoising step from step `i`'s sample, given the (guided) model output.
    fn step(&mut self, model_output: &Tensor, i: usize, sample: &Tensor, noise: &mut Noise) -> Result<Tensor>;

    /// Noises a clean sample to the noise level of step `i` (image-to-image starts there).
    fn add_noise(&self, original: &Tensor, noise: &Tensor, i: usize) -> Result<Tensor>;
}

/// The schedulers zipp implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchedulerKind {
    Ddim,
    Euler,
    EulerAncestral,
    UniPc,
}

impl SchedulerKind {
    /// The kind named by a diffusers `_class_name`, if zipp implements it.
    pub fn from_class_name(name: &str) -> Option<SchedulerKind> {
        match name {
            "DDIMScheduler" => Some(SchedulerKind::Ddim),
            "EulerDiscreteScheduler" => Some(SchedulerKind::Euler),
            "EulerAncestralDiscreteScheduler" => Some(SchedulerKind::EulerAncestral),
            "UniPCMultistepScheduler" => Some(SchedulerKind::UniPc),
            _ => None,
        }
    }

    /// Parses `ddim`, `euler`, `euler_a` (or `euler_ancestral`), `unipc`.
    pub fn from_name(name: &str) -> Option<SchedulerKind> {
        match name.to_ascii_lowercase().replace('-', "_").as_str() {
            "ddim" => Some(SchedulerKind::Ddim),
            "euler" => Some(SchedulerKind::Euler),
            "euler_a" | "euler_ancestral" => Some(SchedulerKind::EulerAncestral),
            "unipc" | "uni_pc" => Some(SchedulerKind::UniPc),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SchedulerKind::Ddim => "ddim",
            SchedulerKind::Euler => "euler",
            SchedulerKind::EulerAncestral => "euler_a",
            SchedulerKind::UniPc => "unipc",
        }
    }
}

/// What the model was trained to predict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prediction {
    Epsilon,
    VPrediction,
    Sample,
}

/// How β grows over the training timesteps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BetaSchedule {
    Linear,
    ScaledLinear,
    #[serde(rename = "squaredcos_cap_v2")]
    SquaredcosCapV2,
}

/// How inference timesteps are spread over the training ones (Lin et al. 2023, table 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Spacing {
    Leading,
    Linspace,
    Trailing,
}

/// A diffusers `scheduler_config.json`: the fields zipp's schedulers read. Unknown fields are
/// ignored (configs carry many that only other schedulers use).
///
/// Fields a file leaves out take Stable Diffusion 1.x/2.x's values (what SD's own files
/// state), except `timestep_spacing`: a file without it (SD1.5's and SD2.1's predate the key)
/// gets each scheduler's own diffusers default, see [`SchedulerConfig::spacing`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct SchedulerConfig {
    #[serde(rename = "_class_name")]
    pub class_name: String,
    pub num_train_timesteps: usize,
    pub beta_start: f64,
    pub beta_end: f64,
    pub beta_schedule: BetaSchedule,
    pub prediction_type: Prediction,
    /// `None` when the file doesn't say: then [`SchedulerConfig::spacing`] picks per scheduler.
    pub timestep_spacing: Option<Spacing>,
    pub steps_offset: usize,
    /// DDIM: whether the final step's "previous" ᾱ is 1 (else ᾱ₀).
    pub set_alpha_to_one: bool,
    pub clip_sample: bool,
    pub clip_sample_range: f64,
    /// UniPC.
    pub solver_order: usize,
    pub lower_order_final: bool,
    pub predict_x0: bool,
    pub solver_type: String,
    pub disable_corrector: Vec<usize>,
    /// Zero terminal SNR rescaling (Lin et al. 2023).
    pub rescale_betas_zero_snr: bool,
    /// UniPC and Euler: the σ after the last step, `zero` or `sigma_min` (σ of training
    /// timestep 0).
    pub final_sigmas_type: String,
    pub use_karras_sigmas: bool,
    /// Euler: the σ schedules zipp doesn't implement (only the defaults are accepted: `linear`
    /// interpolation of the training σ, `discrete` timesteps, no exponential or beta σ).
    pub interpolation_type: String,
    pub timestep_type: String,
    pub use_exponential_sigmas: bool,
    pub use_beta_sigmas: bool,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        // Stable Diffusion 1.x/2.x's training schedule.
        SchedulerConfig {
            class_name: "DDIMScheduler".into(),
            num_train_timesteps: 1000,
            beta_start: 0.00085,
            beta_end: 0.012,
            beta_schedule: BetaSchedule::ScaledLinear,
            prediction_type: Prediction::Epsilon,
            timestep_spacing: None,
            steps_offset: 1,
            set_alpha_to_one: false,
            clip_sample: false,
            clip_sample_range: 1.0,
            solver_order: 2,
            lower_order_final: true,
            predict_x0: true,
            solver_type: "bh2".into(),
            disable_corrector: Vec::new(),
            rescale_betas_zero_snr: false,
            final_sigmas_type: "zero".into(),
            use_karras_sigmas: false,
            interpolation_type: "linear".into(),
            timestep_type: "discrete".into(),
            use_exponential_sigmas: false,
            use_beta_sigmas: false,
        }
    }
}

impl SchedulerConfig {
    /// Parses a `scheduler_config.json`.
    pub fn from_json(text: &str) -> std::result::Result<SchedulerConfig, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The scheduler kind the file names, if zipp implements it.
    pub fn kind(&self) -> Option<SchedulerKind> {
        SchedulerKind::from_class_name(&self.class_name)
    }

    /// The timestep spacing `kind` uses: the file's, else that diffusers class's default —
    /// `leading` for DDIM, `linspace` for Euler, Euler-a and UniPC. (A diffusers pipeline swaps
    /// schedulers with `Kind.from_config(pipe.scheduler.config)`, which passes on only the keys
    /// the file set; so SD1.5's file gives DDIM `leading` but the others `linspace`.)
    pub fn spacing(&self, kind: SchedulerKind) -> Spacing {
        self.timestep_spacing.unwrap_or(match kind {
            SchedulerKind::Ddim => Spacing::Leading,
            SchedulerKind::Euler | SchedulerKind::EulerAncestral | SchedulerKind::UniPc => Spacing::Linspace,
        })
    }

    /// β for each training timestep.
    pub fn betas(&self) -> Vec<f64> {
        let n = self.num_train_timesteps;
        let lin = |a: f64, b: f64, i: usize| if n == 1 { a } else { a + (b - a) * i as f64 / (n - 1) as f64 };
        let mut betas: Vec<f64> = match self.beta_schedule {
            BetaSchedule::Linear => (0..n).map(|i| lin(self.beta_start, self.beta_end, i)).collect(),
            BetaSchedule::ScaledLinear => {
                (0..n).map(|i| lin(self.beta_start.sqrt(), self.beta_end.sqrt(), i).powi(2)).collect()
            }
            BetaSchedule::SquaredcosCapV2 => {
                let f = |t: f64| ((t + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2).cos().powi(2);
                (0..n).map(|i| (1.0 - f((i + 1) as f64 / n as f64) / f(i as f64 / n as f64)).min(0.999)).collect()
            }
        };
        if self.rescale_betas_zero_snr {
            rescale_zero_terminal_snr(&mut betas);
        }
        betas
    }

    /// ᾱ_t = Π (1 − β) for each training timestep.
    pub fn alphas_cumprod(&self) -> Vec<f64> {
        let mut acc = 1.0;
        self.betas()
            .into_iter()
            .map(|b| {
                acc *= 1.0 - b;
                acc
            })
            .collect()
    }
}

/// Rescales β so the last timestep has zero SNR (Lin et al. 2023, algorithm 1).
fn rescale_zero_terminal_snr(betas: &mut [f64]) {
    let mut acc = 1.0;
    let mut sqrt_ab: Vec<f64> = betas
        .iter()
        .map(|b| {
            acc *= 1.0 - b;
            f64::sqrt(acc)
        })
        .collect();
    let (first, last) = (sqrt_ab[0], sqrt_ab[sqrt_ab.len() - 1]);
    for v in &mut sqrt_ab {
        *v = (*v - last) * first / (first - last);
    }
    let ab: Vec<f64> = sqrt_ab.iter().map(|v| v * v).collect();
    for i in 0..betas.len() {
        let alpha = if i == 0 { ab[0] } else { ab[i] / ab[i - 1] };
        betas[i] = 1.0 - alpha;
    }
}

/// Sets up a `kind` scheduler for a generation of `steps` steps (`1..=num_train_timesteps`).
///
/// Errors name what is wrong: a step count out of range, a configuration value zipp doesn't
/// implement, or a schedule the scheduler can't step (e.g. DDIM at a timestep past the
/// training range, UniPC with two equal noise levels).
pub fn build(config: &SchedulerConfig, kind: SchedulerKind, steps: usize) -> Result<Box<dyn Scheduler>> {
    let n = config.num_train_timesteps;
    if steps == 0 || steps > n {
        candle_core::bail!(
            "{}: {steps} inference steps asked for; it takes 1 to num_train_timesteps ({n})",
            kind.name()
        );
    }
    Ok(match kind {
        SchedulerKind::Ddim => Box::new(ddim::Ddim::new(config, steps)?),
        SchedulerKind::Euler => Box::new(euler::Euler::new(config, steps)?),
        SchedulerKind::EulerAncestral => Box::new(euler_a::EulerAncestral::new(config, steps)?),
        SchedulerKind::UniPc => Box::new(unipc::UniPc::new(config, steps)?),
    })
}

// ---- Shared schedule arithmetic: numpy's grids as diffusers uses them. ----

/// `np.round`: halves go to the even neighbour (412.5 → 412), unlike `f64::round`.
pub(crate) fn np_round(x: f64) -> f64 {
    x.round_ties_even()
}

/// `np.linspace(0, stop, num)`: `k · stop/(num − 1)`, the last one exactly `stop`; `[0]` for
/// `num = 1`.
pub(crate) fn np_linspace(stop: f64, num: usize) -> Vec<f64> {
    if num == 1 {
        return vec![0.0];
    }
    let step = stop / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|k| k as f64 * step).collect();
    v[num - 1] = stop;
    v
}

/// diffusers' "trailing" spacing: `round(np.arange(n, 0, −n/steps)) − 1`, first (noisiest)
/// to last.
///
/// numpy fills an `arange` as `n + k·δ` with `δ = (n − n/steps) − n`, so that is what is
/// rounded here. Its length is `ceil(n / (n/steps))`, which rounding makes `steps + 1` for some
/// counts (62 of 1..=1000 with n = 1000: 61, 103, 121, …); diffusers then runs an extra step at
/// timestep −1 (DDIM indexes ᾱ[−1], the *noisiest* level). zipp keeps exactly `steps`.
pub(crate) fn trailing_timesteps(n: usize, steps: usize) -> Vec<f64> {
    let n = n as f64;
    let step = -n / steps as f64;
    let delta = (n + step) - n;
    (0..steps)
        .map(|k| match k {
            0 => n,
            1 => n + step,
            _ => n + k as f64 * delta,
        })
        .map(|t| np_round(t) - 1.0)
        .collect()
}

/// diffusers' "leading" spacing over `grid` points: `k · (n ÷ grid)` for `k = grid−1 … 0`
/// (integer division), plus `steps_offset`.
pub(crate) fn leading_timesteps(n: usize, grid: usize, offset: usize) -> Vec<f64> {
    let ratio = n / grid;
    (0..grid).rev().map(|k| (k * ratio + offset) as f64).collect()
}

/// `np.interp(t, 0..len, values)`: linear between integer timesteps, clamped at both ends.
pub(crate) fn interp(t: f64, values: &[f64]) -> f64 {
    let last = values.len() - 1;
    if t <= 0.0 {
        return values[0];
    }
    if t >= last as f64 {
        return values[last];
    }
    let lo = t.floor() as usize;
    let w = t - lo as f64;
    values[lo] + w * (values[lo + 1] - values[lo])
}

/// The σ of each training timestep for the σ-parameterised schedulers (Euler, Euler-a, UniPC):
/// σ_t = √((1 − ᾱ_t)/ᾱ_t). With zero-terminal-SNR betas ᾱ_T = 0 would make σ_T infinite, so
/// diffusers sets ᾱ_T = 2⁻²⁴ first, and so does this.
pub(crate) fn training_sigmas(config: &SchedulerConfig) -> Vec<f64> {
    let mut ac = config.alphas_cumprod();
    if config.rescale_betas_zero_snr {
        if let Some(last) = ac.last_mut() {
            *last = 2f64.powi(-24);
        }
    }
    ac.iter().map(|a| ((1.0 - a) / a).sqrt()).collect()
}

/// The Euler schedulers' timesteps (`float32`-rounded, as diffusers keeps them), first to
/// last, and σ at each of them (linear in the training timestep, clamped past the ends), for
/// `kind`'s spacing (see [`euler_a`]'s module docs). The caller appends the final σ.
pub(crate) fn euler_schedule(config: &SchedulerConfig, kind: SchedulerKind, steps: usize) -> (Vec<f64>, Vec<f64>) {
    let n = config.num_train_timesteps;
    let timesteps: Vec<f64> = match config.spacing(kind) {
        Spacing::Linspace => np_linspace((n - 1) as f64, steps).into_iter().rev().collect(),
        Spacing::Leading => leading_timesteps(n, steps, config.steps_offset),
        Spacing::Trailing => trailing_timesteps(n, steps),
    };
    let timesteps: Vec<f64> = timesteps.into_iter().map(|t| t as f32 as f64).collect();
    let train = training_sigmas(config);
    let sigmas = timesteps.iter().map(|&t| interp(t, &train)).collect();
    (timesteps, sigmas)
}

/// The Euler schedulers' `init_noise_sigma`: the largest σ for `linspace`/`trailing` spacing,
/// but √(σ_max² + 1) for `leading` (diffusers' rule).
pub(crate) fn euler_init_noise_sigma(sigmas: &[f64], spacing: Spacing) -> f64 {
    let sigma_max = sigmas.iter().copied().fold(0.0, f64::max);
    match spacing {
        Spacing::Linspace | Spacing::Trailing => sigma_max,
        Spacing::Leading => (sigma_max * sigma_max + 1.0).sqrt(),
    }
}

/// The Euler schedulers' denoised estimate x̂₀ at noise level σ (k-diffusion's c_skip/c_out
/// for the model's parameterisation): ε: x − σ·ε; v: −σ/√(σ²+1)·v + x/(σ²+1); sample: the
/// output itself.
pub(crate) fn sigma_x0(prediction: Prediction, sigma: f64, model_output: &Tensor, sample: &Tensor) -> Result<Tensor> {
    let s = sigma;
    match prediction {
        Prediction::Epsilon => lincomb(&[(1.0, sample), (-s, model_output)]),
        Prediction::VPrediction => lincomb(&[(-s / (s * s + 1.0).sqrt(), model_output), (1.0 / (s * s + 1.0), sample)]),
        Prediction::Sample => Ok(model_output.clone()),
    }
}

/// Checks a step index against the schedule.
pub(crate) fn check_index(i: usize, len: usize, what: &str) -> Result<()> {
    if i >= len {
        candle_core::bail!("{what}: step index {i} out of range, the schedule has {len} steps");
    }
    Ok(())
}

/// `Σ cₖ·tₖ` over same-shaped tensors, coefficients in `f64` (applied as `f32`).
pub(crate) fn lincomb(terms: &[(f64, &Tensor)]) -> Result<Tensor> {
    let mut acc: Option<Tensor> = None;
    for &(c, t) in terms {
        let term = t.affine(c, 0.0)?;
        acc = Some(match acc {
            None => term,
            Some(a) => (a + term)?,
        });
    }
    acc.ok_or_else(|| candle_core::Error::Msg("lincomb of no terms".into()))
}
