//! The text-to-image / image-to-image pipeline with classifier-free guidance and ViPer
//! steering (SPEC §7, §8).
//!
//! Per step, the UNet sees one batch holding every branch the request needs:
//!
//! | request | branches | guided output |
//! |---|---|---|
//! | no guidance (`w ≤ 1`, Turbo) | `c` | `ε(c)` |
//! | guidance | `u`, `c` | `ε(u) + w·(ε(c) − ε(u))` |
//! | ViPer steering | `u'`, `c'`, `P`, `N` | `ε(u') + w·(ε(c') + β₊ε(P) − ε(u') − β₋ε(N))` |
//!
//! with `c = E(prompt)`, `u = E(negative or "")`, `P = E(liked)`, `N = E(disliked)`,
//! `c' = c + β₊P`, `u' = u + β₋N` (SPEC §7; pooled embeddings are not steered). Strengths of
//! 0 drop the steering branches altogether, so β = 0 is the plain pipeline bit for bit.
//! Without guidance only `c' = c + β₊P` acts (the disliked direction needs the unconditional
//! branch).
//!
//! **Prompts longer than 77 tokens** are encoded in windows of 75 tokens, each wrapped in
//! start/end markers and padded to 77, and the windows' states are concatenated (the
//! convention of compel and diffusers' long-prompt community pipeline); the negative prompt
//! gets as many windows (empty ones added). Nothing is cut; [`PromptReport`] says how many
//! windows were used. Steering attribute lists are shuffled with the request's seed and then
//! cut to one window, and the report names the attributes that did not fit.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use zipp_core::image::{
    Conditioning, Embeds, Image, ImageGenerator, ImageOutput, ImageRequest, PromptReport, StepProgress,
};
use zipp_core::lm::Cancel;
use zipp_core::rng::SplitMix;
use zipp_core::{Error, Result};

use crate::model::{Components, LoadOptions};
use crate::noise::Noise;
use crate::scheduler::{self, Scheduler, SchedulerKind};

/// Tokens per window between the start and end markers.
const WINDOW: usize = 75;
/// Smallest and largest image side accepted.
pub const MIN_SIDE: u32 = 64;
pub const MAX_SIDE: u32 = 4096;
/// Largest batch per request.
pub const MAX_BATCH: u32 = 64;
/// Largest step count.
pub const MAX_STEPS: u32 = 1000;
/// Largest steering strength and guidance accepted (beyond these outputs are noise).
pub const MAX_STRENGTH: f32 = 10.0;
pub const MAX_GUIDANCE: f32 = 100.0;

/// A loaded Stable Diffusion model, ready to generate. `Send + Sync`: share it in an `Arc`.
pub struct StableDiffusion {
    c: Components,
}

fn compute_err(e: candle_core::Error) -> Error {
    Error::Compute(crate::candle_message(&e))
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidInput(msg.into())
}

/// The result of [`StableDiffusion::denoise`].
#[derive(Debug)]
pub struct Denoised {
    /// `[batch, 4, h/8, w/8]`, scaled (what the UNet works on).
    pub latents: Tensor,
    pub report: PromptReport,
    pub steps: u32,
    pub guidance: f32,
    pub scheduler: SchedulerKind,
    pub width: u32,
    pub height: u32,
    pub batch: usize,
    pub text_s: f64,
    pub denoise_s: f64,
}

/// The settings a request resolves to.
struct Plan {
    width: u32,
    height: u32,
    steps: u32,
    guidance: f32,
    kind: SchedulerKind,
    batch: usize,
    liked: f32,
    disliked: f32,
}

impl StableDiffusion {
    /// Loads a model (see [`Components::load`]).
    pub fn load(path: impl AsRef<std::path::Path>, opts: &LoadOptions) -> Result<StableDiffusion> {
        Ok(StableDiffusion { c: Components::load(path.as_ref(), opts)? })
    }

    /// The loaded parts (configs, tokenizer, models).
    pub fn components(&self) -> &Components {
        &self.c
    }

    /// Whether the model is a Turbo (1–4 steps, no guidance by default).
    pub fn is_turbo(&self) -> bool {
        self.c.turbo
    }

    /// The default image side (the UNet's sample size × the VAE's downscale).
    pub fn default_side(&self) -> u32 {
        (self.c.unet_config.sample_size * self.c.vae.config.downscale()) as u32
    }

    fn device(&self) -> &Device {
        &self.c.device
    }

    fn compute<R: Send>(&self, f: impl FnOnce() -> candle_core::Result<R> + Send) -> Result<R> {
        zipp_core::runtime::compute(&self.c.device, f).map_err(compute_err)
    }

    /// The 77-token windows of `text` for the first text encoder: `(ids of each window,
    /// tokens in the text)`. At least `min_windows` windows (empty ones appended).
    pub fn windows(&self, text: &str, min_windows: usize) -> (Vec<Vec<u32>>, usize) {
        self.windows_for(0, text, min_windows)
    }

    fn windows_for(&self, encoder: usize, text: &str, min_windows: usize) -> (Vec<Vec<u32>>, usize) {
        let ids = self.c.encoders[encoder].tokenizer.encode(text);
        let n = ids.len();
        let mut out: Vec<Vec<u32>> = ids.chunks(WINDOW).map(|c| self.window(encoder, c)).collect();
        while out.len() < min_windows.max(1) {
            out.push(self.window(encoder, &[]));
        }
        (out, n)
    }

    fn window(&self, encoder: usize, ids: &[u32]) -> Vec<u32> {
        let e = &self.c.encoders[encoder];
        let mut w = Vec::with_capacity(WINDOW + 2);
        w.push(e.tokenizer.start_of_text_id());
        w.extend_from_slice(ids);
        w.push(e.tokenizer.end_of_text_id());
        w.resize(WINDOW + 2, e.pad_id);
        w
    }

    /// The first text encoder's last hidden state for windows of ids: `[1, 77 · windows,
    /// dim]` (what SD 1.x/2.x condition on).
    pub fn encode_windows(&self, windows: &[Vec<u32>]) -> Result<Tensor> {
        let dev = self.device().clone();
        self.compute(move || {
            let ids = Self::ids_tensor(windows, &dev)?;
            Self::flat(self.c.encoders[0].model.forward(&ids)?.last_hidden)
        })
    }

    fn ids_tensor(windows: &[Vec<u32>], dev: &Device) -> candle_core::Result<Tensor> {
        let flat: Vec<u32> = windows.iter().flatten().copied().collect();
        Tensor::from_vec(flat, (windows.len(), WINDOW + 2), dev)
    }

    /// `[windows, 77, d]` → `[1, 77 · windows, d]` in f32.
    fn flat(t: Tensor) -> candle_core::Result<Tensor> {
        let (n, l, d) = t.dims3()?;
        t.reshape((1, n * l, d))?.to_dtype(DType::F32)
    }

    /// Whether this is an SDXL model (two text encoders, pooled and size conditioning).
    pub fn is_xl(&self) -> bool {
        self.c.encoders.len() == 2
    }

    /// A text's conditioning in at least `min_windows` windows: the states (SD 1.x/2.x: the
    /// encoder's last hidden state; SDXL: both encoders' penultimate states side by side),
    /// SDXL's pooled embedding (the second encoder's projection of the first window), the
    /// token count and the windows used.
    pub fn encode_text(&self, text: &str, min_windows: usize) -> Result<(Tensor, Option<Tensor>, usize, usize)> {
        if !self.is_xl() {
            let (w, n) = self.windows(text, min_windows);
            return Ok((self.encode_windows(&w)?, None, n, w.len()));
        }
        let (w1, n) = self.windows_for(0, text, min_windows);
        let (w2, _) = self.windows_for(1, text, w1.len());
        let (w1, _) = self.windows_for(0, text, w2.len());
        let windows = w1.len();
        let dev = self.device().clone();
        let (states, pooled) = self.compute(move || {
            let a = self.c.encoders[0].model.forward(&Self::ids_tensor(&w1, &dev)?)?;
            let b = self.c.encoders[1].model.forward(&Self::ids_tensor(&w2, &dev)?)?;
            let states = Tensor::cat(&[Self::flat(a.penultimate)?, Self::flat(b.penultimate)?], 2)?;
            Ok((states, b.pooled.narrow(0, 0, 1)?.to_dtype(DType::F32)?))
        })?;
        Ok((states, Some(pooled), n, windows))
    }

    /// The embeddings of a text's windows, as [`Embeds`].
    fn text_embeds(&self, text: &str, min_windows: usize) -> Result<(Embeds, usize, usize)> {
        let (states, pooled, n, windows) = self.encode_text(text, min_windows)?;
        let mut e = Self::embeds(&states)?;
        if let Some(p) = pooled {
            e.pooled = Some(p.flatten_all().and_then(|f| f.to_vec1::<f32>()).map_err(compute_err)?);
        }
        Ok((e, n, windows))
    }

    /// Joins attributes (shuffled with `seed`) into one window's worth of text: the text and
    /// the attributes that did not fit.
    fn attributes(&self, attrs: &[String], seed: u64, salt: u64) -> (String, Vec<String>) {
        let mut order: Vec<&String> = attrs.iter().filter(|a| !a.trim().is_empty()).collect();
        let mut rng = SplitMix(seed ^ salt);
        for i in (1..order.len()).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        let mut text = String::new();
        let mut dropped = Vec::new();
        for a in order {
            let candidate = if text.is_empty() { a.trim().to_string() } else { format!("{text}, {}", a.trim()) };
            if self.c.encoders[0].tokenizer.encode(&candidate).len() <= WINDOW {
                text = candidate;
            } else {
                dropped.push(a.clone());
            }
        }
        (text, dropped)
    }

    fn embeds(t: &Tensor) -> Result<Embeds> {
        let (_, tokens, dim) = t.dims3().map_err(compute_err)?;
        let data = t.flatten_all().and_then(|f| f.to_vec1::<f32>()).map_err(compute_err)?;
        Ok(Embeds { tokens, dim, data, pooled: None })
    }

    fn tensor(&self, e: &Embeds, what: &str) -> Result<Tensor> {
        e.validate(what)?;
        let dim = self.c.unet_config.cross_attention_dim;
        if e.dim != dim || !e.tokens.is_multiple_of(WINDOW + 2) {
            return Err(invalid(format!(
                "{what}: {} tokens of width {} do not fit this model (77·k tokens of width {dim})",
                e.tokens, e.dim
            )));
        }
        Tensor::from_vec(e.data.clone(), (1, e.tokens, e.dim), self.device()).map_err(compute_err)
    }

    /// SDXL's pooled embedding of `e` as `[1, p]`.
    fn pooled(&self, e: &Embeds, what: &str) -> Result<Tensor> {
        let want = self.c.encoders.get(1).map_or(0, |t| t.model.config.projection_dim);
        match &e.pooled {
            Some(p) if p.len() == want => Tensor::from_vec(p.clone(), (1, want), self.device()).map_err(compute_err),
            _ => Err(invalid(format!("{what}: an SDXL model needs a pooled embedding of {want} numbers"))),
        }
    }

    fn strengths(req: &ImageRequest) -> Result<(f32, f32)> {
        let Some(s) = &req.steering else { return Ok((0.0, 0.0)) };
        for (name, v) in [("liked_strength", s.liked_strength), ("disliked_strength", s.disliked_strength)] {
            if !v.is_finite() || !(0.0..=MAX_STRENGTH).contains(&v) {
                return Err(invalid(format!("steering {name} {v} must be in [0, {MAX_STRENGTH}]")));
            }
        }
        let liked = if s.liked.iter().any(|a| !a.trim().is_empty()) { s.liked_strength } else { 0.0 };
        let disliked = if s.disliked.iter().any(|a| !a.trim().is_empty()) { s.disliked_strength } else { 0.0 };
        Ok((liked, disliked))
    }

    fn negative_text(req: &ImageRequest) -> String {
        let mut neg = req.negative_prompt.clone().unwrap_or_default();
        if req.disliked_as_negative {
            if let Some(s) = &req.steering {
                for d in s.disliked.iter().filter(|d| !d.trim().is_empty()) {
                    if !neg.trim().is_empty() {
                        neg.push_str(", ");
                    }
                    neg.push_str(d.trim());
                }
            }
        }
        neg
    }

    fn plan(&self, req: &ImageRequest) -> Result<Plan> {
        let side = self.default_side();
        let (iw, ih) = match &req.init_image {
            Some(init) => (Some(init.image.width()), Some(init.image.height())),
            None => (None, None),
        };
        let width = req.width.or(iw).unwrap_or(side);
        let height = req.height.or(ih).unwrap_or(side);
        for (name, v) in [("width", width), ("height", height)] {
            if v % crate::LATENT_SCALE != 0 || !(MIN_SIDE..=MAX_SIDE).contains(&v) {
                return Err(invalid(format!(
                    "{name} {v} must be a multiple of {} between {MIN_SIDE} and {MAX_SIDE}",
                    crate::LATENT_SCALE
                )));
            }
        }
        if let Some(init) = &req.init_image {
            if (init.image.width(), init.image.height()) != (width, height) {
                return Err(invalid(format!(
                    "the init image is {}x{} but the request asks for {width}x{height}: resize it first",
                    init.image.width(),
                    init.image.height()
                )));
            }
            if !init.strength.is_finite() || !(0.0..=1.0).contains(&init.strength) || init.strength == 0.0 {
                return Err(invalid(format!("image-to-image strength {} must be in (0, 1]", init.strength)));
            }
        }
        let steps = req.steps.unwrap_or(if self.c.turbo { 1 } else { 50 });
        if steps == 0 || steps > MAX_STEPS {
            return Err(invalid(format!("steps {steps} must be in 1..={MAX_STEPS}")));
        }
        let guidance = req.guidance.unwrap_or(if self.c.turbo { 0.0 } else { 7.5 });
        if !guidance.is_finite() || !(0.0..=MAX_GUIDANCE).contains(&guidance) {
            return Err(invalid(format!("guidance {guidance} must be in [0, {MAX_GUIDANCE}]")));
        }
        if req.batch == 0 || req.batch > MAX_BATCH {
            return Err(invalid(format!("batch {} must be in 1..={MAX_BATCH}", req.batch)));
        }
        let kind = match &req.scheduler {
            Some(name) => SchedulerKind::from_name(name)
                .ok_or_else(|| invalid(format!("unknown scheduler {name:?} (ddim, euler, euler_a, unipc)")))?,
            None => self.c.scheduler.kind().unwrap_or(SchedulerKind::Ddim),
        };
        if req.conditioning.is_none() && req.prompt.trim().is_empty() {
            return Err(invalid("the prompt is empty"));
        }
        if req.prompt.contains('\0') || req.negative_prompt.as_deref().is_some_and(|n| n.contains('\0')) {
            return Err(invalid("prompts must not contain NUL characters"));
        }
        let (liked, disliked) = Self::strengths(req)?;
        Ok(Plan { width, height, steps, guidance, kind, batch: req.batch as usize, liked, disliked })
    }

    /// The conditioning of a request and how its text was tokenized.
    fn conditioning(&self, req: &ImageRequest, plan: &Plan) -> Result<(Conditioning, PromptReport)> {
        let mut report = PromptReport::default();
        let negative = Self::negative_text(req);
        let (_, pn) = self.windows(&req.prompt, 1);
        let (_, nn) = self.windows(&negative, 1);
        let windows = pn.div_ceil(WINDOW).max(nn.div_ceil(WINDOW)).max(1);
        let (prompt, _, _) = self.text_embeds(&req.prompt, windows)?;
        let negative = if self.c.zeros_for_empty_negative && negative.trim().is_empty() {
            // SDXL's `force_zeros_for_empty_prompt`: no negative prompt is zeros, not E("").
            Embeds {
                data: vec![0.0; prompt.data.len()],
                pooled: prompt.pooled.as_ref().map(|p| vec![0.0; p.len()]),
                ..prompt.clone()
            }
        } else {
            self.text_embeds(&negative, windows)?.0
        };
        report.prompt_tokens = pn;
        report.negative_tokens = nn;
        report.chunks = windows;
        let (mut liked, mut disliked) = (None, None);
        if let Some(s) = &req.steering {
            if plan.liked > 0.0 {
                let (text, dropped) = self.attributes(&s.liked, req.seed, 0x6c696b6564);
                report.liked_dropped = dropped;
                liked = Some(self.text_embeds(&text, 1)?.0);
            }
            if plan.disliked > 0.0 {
                let (text, dropped) = self.attributes(&s.disliked, req.seed, 0x646973);
                report.disliked_dropped = dropped;
                disliked = Some(self.text_embeds(&text, 1)?.0);
            }
        }
        Ok((Conditioning { model: self.c.id.clone(), prompt, negative, liked, disliked }, report))
    }

    /// Adds `beta · x` (one window, tiled over every window of `base`) to `base`.
    fn steer(base: &Tensor, x: &Tensor, beta: f32) -> candle_core::Result<Tensor> {
        let windows = base.dim(1)? / x.dim(1)?;
        let tiled = Tensor::cat(&vec![x; windows], 1)?;
        base + (tiled * beta as f64)?
    }

    fn image_tensor(&self, img: &Image) -> Result<Tensor> {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let data: Vec<f32> = img.rgb().iter().map(|&b| b as f32 / 127.5 - 1.0).collect();
        Tensor::from_vec(data, (1, h, w, 3), self.device()).and_then(|t| t.permute((0, 3, 1, 2))).map_err(compute_err)
    }

    fn to_images(t: &Tensor) -> Result<Vec<Image>> {
        let t = (t / 2.0)
            .and_then(|t| t + 0.5)
            .and_then(|t| t.clamp(0f32, 1f32))
            .and_then(|t| t.permute((0, 2, 3, 1)))
            .and_then(|t| t.to_dtype(DType::F32))
            .map_err(compute_err)?;
        let (n, h, w, _) = t.dims4().map_err(compute_err)?;
        let data = t.flatten_all().and_then(|f| f.to_vec1::<f32>()).map_err(compute_err)?;
        data.chunks(h * w * 3)
            .take(n)
            .map(|px| Image::new(w as u32, h as u32, px.iter().map(|&v| (v * 255.0).round() as u8).collect()))
            .collect()
    }

    /// Runs a request with the noise given (tests replay a reference's draws through it).
    pub fn generate_with_noise(
        &self,
        req: &ImageRequest,
        noise: &mut Noise,
        cancel: &Cancel,
        progress: &mut dyn FnMut(&StepProgress),
    ) -> Result<ImageOutput> {
        // The convolutions' scratch is kept across the steps of a run, not between runs: the
        // guard frees it however this returns (done, cancelled or failed).
        struct ReleaseScratch;
        impl Drop for ReleaseScratch {
            fn drop(&mut self) {
                crate::release_scratch();
            }
        }
        let _release = ReleaseScratch;
        let d = self.denoise(req, noise, cancel, progress)?;
        let t2 = Instant::now();
        let mut images = Vec::with_capacity(d.batch);
        for k in 0..d.batch {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled("stopped before decoding".into()));
            }
            let img = self.decode(&d.latents.narrow(0, k, 1).map_err(compute_err)?)?;
            images.extend(Self::to_images(&img)?);
        }
        Ok(ImageOutput {
            images,
            report: d.report,
            steps: d.steps,
            guidance: d.guidance,
            scheduler: d.scheduler.name().into(),
            width: d.width,
            height: d.height,
            text_s: d.text_s,
            denoise_s: d.denoise_s,
            decode_s: t2.elapsed().as_secs_f64(),
        })
    }

    /// Decodes scaled latents `[n, 4, h, w]` to images `[n, 3, 8h, 8w]` in about `[-1, 1]`,
    /// with TAESD when the model was loaded with one, else the VAE.
    pub fn decode(&self, latents: &Tensor) -> Result<Tensor> {
        let dtype = self.c.vae_dtype;
        if let Some(tiny) = &self.c.tiny_decoder {
            let scaling = tiny.config.scaling_factor;
            return self.compute(|| {
                let z = (latents / scaling)?.to_dtype(dtype)?;
                tiny.decode(&z)?.to_dtype(DType::F32)
            });
        }
        let scaling = self.c.vae.config.scaling_factor;
        self.compute(|| {
            let z = (latents / scaling)?.to_dtype(dtype)?;
            self.c.vae.decode(&z)?.to_dtype(DType::F32)
        })
    }

    /// Runs the denoising loop of a request and returns the final (scaled) latents.
    pub fn denoise(
        &self,
        req: &ImageRequest,
        noise: &mut Noise,
        cancel: &Cancel,
        progress: &mut dyn FnMut(&StepProgress),
    ) -> Result<Denoised> {
        let plan = self.plan(req)?;
        let t0 = Instant::now();
        let (cond, report) = match &req.conditioning {
            Some(c) => {
                if c.model != self.c.id {
                    return Err(invalid(format!(
                        "the conditioning was computed by {} but this model is {}",
                        c.model, self.c.id
                    )));
                }
                (c.clone(), PromptReport::default())
            }
            None => self.conditioning(req, &plan)?,
        };
        let c = self.tensor(&cond.prompt, "prompt embeddings")?;
        let u = self.tensor(&cond.negative, "negative embeddings")?;
        if c.dims() != u.dims() {
            return Err(invalid("the prompt and negative embeddings must have the same number of tokens"));
        }
        let p = match (&cond.liked, plan.liked > 0.0) {
            (Some(e), true) => Some(self.tensor(e, "liked embeddings")?),
            _ => None,
        };
        let n = match (&cond.disliked, plan.disliked > 0.0) {
            (Some(e), true) => Some(self.tensor(e, "disliked embeddings")?),
            _ => None,
        };
        let cfg = plan.guidance > 1.0;
        // SDXL: pooled text per branch (the prompt's for every conditional branch, the
        // negative's for the unconditional one) and the size/crop ids.
        let pooled = if self.is_xl() {
            Some((self.pooled(&cond.prompt, "prompt embeddings")?, self.pooled(&cond.negative, "negative embeddings")?))
        } else {
            None
        };
        // The branches, in UNet batch order.
        let branches: Vec<Tensor> = self.compute(|| {
            let c2 = match &p {
                Some(p) => Self::steer(&c, p, plan.liked)?,
                None => c.clone(),
            };
            if !cfg {
                return Ok(vec![c2]);
            }
            let u2 = match &n {
                Some(n) => Self::steer(&u, n, plan.disliked)?,
                None => u.clone(),
            };
            let tokens = c.dim(1)?;
            let mut b = vec![u2, c2];
            for x in [&p, &n].into_iter().flatten() {
                b.push(Self::steer(&Tensor::zeros_like(&c)?, x, 1.0)?.narrow(1, 0, tokens)?);
            }
            Ok(b)
        })?;
        let (has_p, has_n) = (cfg && p.is_some(), cfg && n.is_some());
        let nb = branches.len();
        let bsz = plan.batch;
        let dtype = self.c.dtype;
        let context = self.compute(|| {
            let rows: Vec<Tensor> = branches.iter().flat_map(|b| std::iter::repeat_n(b, bsz)).cloned().collect();
            Tensor::cat(&rows, 0)?.to_dtype(dtype)
        })?;
        let added = match &pooled {
            None => None,
            Some((pc, pu)) => Some(self.compute(|| {
                let rows: Vec<&Tensor> =
                    (0..nb).flat_map(|k| std::iter::repeat_n(if cfg && k == 0 { pu } else { pc }, bsz)).collect();
                let text = Tensor::cat(&rows, 0)?.to_dtype(dtype)?;
                let (h, w) = (plan.height as f32, plan.width as f32);
                let ids: Vec<f32> = (0..nb * bsz).flat_map(|_| [h, w, 0.0, 0.0, h, w]).collect();
                let ids = Tensor::from_vec(ids, (nb * bsz, 6), self.device())?.to_dtype(dtype)?;
                Ok((text, ids))
            })?),
        };
        let text_s = t0.elapsed().as_secs_f64();

        // Scheduler and starting latents.
        let t1 = Instant::now();
        let mut sched: Box<dyn Scheduler> =
            scheduler::build(&self.c.scheduler, plan.kind, plan.steps as usize).map_err(compute_err)?;
        let lat_c = self.c.unet_config.in_channels;
        let down = self.c.vae.config.downscale();
        let (lh, lw) = (plan.height as usize / down, plan.width as usize / down);
        let scaling = self.c.vae.config.scaling_factor;
        let (mut x, start) = match &req.init_image {
            None => {
                let x = match &req.latents {
                    Some(v) => {
                        let want = bsz * lat_c * lh * lw;
                        if v.len() != want || v.iter().any(|f| !f.is_finite()) {
                            return Err(invalid(format!(
                                "latents: {} numbers given, [{bsz}, {lat_c}, {lh}, {lw}] = {want} finite ones needed",
                                v.len()
                            )));
                        }
                        Tensor::from_vec(v.clone(), (bsz, lat_c, lh, lw), self.device()).map_err(compute_err)?
                    }
                    None => noise.sample(&[lat_c, lh, lw]).map_err(compute_err)?,
                };
                let sigma = sched.init_noise_sigma();
                (self.compute(|| x * sigma)?, 0usize)
            }
            Some(init) => {
                let steps = plan.steps as usize;
                let init_steps = ((steps as f64 * init.strength as f64) as usize).min(steps);
                let start = steps - init_steps;
                if start >= steps {
                    return Err(invalid(format!(
                        "strength {} with {steps} steps leaves no step to run: raise one of them",
                        init.strength
                    )));
                }
                let img = self.image_tensor(&init.image)?;
                let vae_dtype = self.c.vae_dtype;
                let (mean, std) = self.compute(|| self.c.vae.encode(&img.to_dtype(vae_dtype)?))?;
                let e = noise.sample(&[lat_c, lh, lw]).map_err(compute_err)?;
                let z = self.compute(|| {
                    let z = (mean.to_dtype(DType::F32)? + std.to_dtype(DType::F32)?.broadcast_mul(&e)?)?;
                    z * scaling
                })?;
                let added = noise.sample(&[lat_c, lh, lw]).map_err(compute_err)?;
                let x = self.compute(|| sched.add_noise(&z, &added, start))?;
                (x, start)
            }
        };

        let total = (sched.timesteps().len() - start) as u32;
        for i in start..sched.timesteps().len() {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled(format!("stopped before step {} of {total}", i - start + 1)));
            }
            let t = sched.timesteps()[i];
            let guidance = plan.guidance as f64;
            let (lp, ln) = (plan.liked as f64, plan.disliked as f64);
            let eps = self.compute(|| {
                let xin = sched.scale_model_input(&x, i)?;
                let xin = Tensor::cat(&vec![&xin; nb], 0)?.to_dtype(dtype)?;
                let add = added.as_ref().map(|(a, b)| (a, b));
                let out = self.c.unet.forward(&xin, t, &context, add)?.to_dtype(DType::F32)?;
                let part = |k: usize| out.narrow(0, k * bsz, bsz);
                if !cfg {
                    return part(0);
                }
                let (eu, ec) = (part(0)?, part(1)?);
                let mut diff = (ec - &eu)?;
                let mut k = 2;
                if has_p {
                    diff = (diff + (part(k)? * lp)?)?;
                    k += 1;
                }
                if has_n {
                    diff = (diff - (part(k)? * ln)?)?;
                }
                eu + (diff * guidance)?
            })?;
            x = self.compute(|| sched.step(&eps, i, &x, noise))?;
            progress(&StepProgress {
                step: (i - start + 1) as u32,
                total,
                timestep: t,
                elapsed_s: t1.elapsed().as_secs_f64(),
            });
        }
        Ok(Denoised {
            latents: x,
            report,
            steps: plan.steps,
            guidance: plan.guidance,
            scheduler: plan.kind,
            width: plan.width,
            height: plan.height,
            batch: bsz,
            text_s,
            denoise_s: t1.elapsed().as_secs_f64(),
        })
    }
}

impl ImageGenerator for StableDiffusion {
    fn id(&self) -> String {
        self.c.id.clone()
    }

    fn generate(
        &self,
        req: &ImageRequest,
        cancel: &Cancel,
        progress: &mut dyn FnMut(&StepProgress),
    ) -> Result<ImageOutput> {
        let mut noise = Noise::seeded(req.seed, req.first_index, req.batch.max(1) as usize, self.device());
        self.generate_with_noise(req, &mut noise, cancel, progress)
    }

    fn encode(&self, req: &ImageRequest) -> Result<(Conditioning, PromptReport)> {
        let plan = self.plan(req)?;
        self.conditioning(req, &plan)
    }
}

// A loaded model is shared between threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<StableDiffusion>();
};
