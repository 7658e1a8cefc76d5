//! CLIP as JSON, and the image scoring both bindings share.
//!
//! [`ClipSpec`] loads a transformers CLIP folder as a [`ClipModel`] (zipp-diffusion's,
//! re-exported so the bindings can name it): `"path"` or `{"path": "…"}` (a folder, or a
//! Hugging Face cache entry or repo id already in the local cache). [`ClipEmbedder`] makes it
//! zipp-eval's [`ImageEmbedder`], so the image columns of an evaluation
//! ([`SharedImageEvaluation`], built from the same [`EvalConfig`] as the VPTT evaluation) and
//! the helpers here — [`clip_scores`], [`personalization_clip_scores`], [`cmmd`] — score
//! images with it. The numbers are [`zipp_eval::image_metrics`]'; nothing is re-implemented
//! here or in a binding.
//!
//! Scales: CLIPScore is `2.5 · max(cos, 0)` and, in the ×100 convention, `100 · max(cos, 0)`;
//! it compares images *of one prompt*, never values of different prompts. Personalization
//! CLIPScore is a mean cosine in [−1, 1]. CMMD is ×1000 the squared MMD (σ = 10, biased),
//! 0 for identical sets.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use zipp_core::image::Image;
use zipp_core::{Error, Result};
pub use zipp_diffusion::clip_model::ClipModel;
use zipp_eval::image_eval::{
    self, ImageEmbedder, ImageEvalOptions, ImageEvaluation, ImageReport, ImageSample, MethodImages, PromptScore,
};

use crate::eval::EvalConfig;

/// A CLIP model as JSON: a path string or `{"path": "…"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipSpec {
    pub path: PathBuf,
}

impl ClipSpec {
    /// Parses a spec; a bare JSON string is the path.
    pub fn from_json(json: &str) -> Result<ClipSpec> {
        let spec: ClipSpec = if json.trim().starts_with('"') {
            ClipSpec { path: zipp_core::json::from_str(json, "CLIP model spec")? }
        } else {
            zipp_core::json::from_str(json, "CLIP model spec")?
        };
        if spec.path.as_os_str().is_empty() {
            return Err(Error::InvalidInput("the CLIP model spec needs a non-empty `path`".into()));
        }
        Ok(spec)
    }

    /// Loads the model (CPU, f32).
    pub fn build(&self) -> Result<Arc<ClipModel>> {
        Ok(Arc::new(ClipModel::load(&self.path)?))
    }
}

/// A CLIP model as zipp-eval's [`ImageEmbedder`] (unnormalised projections; the metrics
/// normalise).
#[derive(Debug, Clone)]
pub struct ClipEmbedder(pub Arc<ClipModel>);

impl ImageEmbedder for ClipEmbedder {
    fn embed_images(&self, images: &[Image]) -> Result<Vec<Vec<f32>>> {
        self.0.image_embeddings(images)
    }
    fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.0.text_embeddings(texts)
    }
}

/// The same, borrowed, for the one-call helpers.
struct Borrowed<'a>(&'a ClipModel);

impl ImageEmbedder for Borrowed<'_> {
    fn embed_images(&self, images: &[Image]) -> Result<Vec<Vec<f32>>> {
        self.0.image_embeddings(images)
    }
    fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.0.text_embeddings(texts)
    }
}

/// CLIPScore of every image against `prompt`, in both conventions.
pub fn clip_scores(model: &ClipModel, images: &[Image], prompt: &str) -> Result<Vec<PromptScore>> {
    image_eval::prompt_scores(&Borrowed(model), images, prompt)
}

/// Personalization CLIPScore of every image: its mean cosine with the reference images.
pub fn personalization_clip_scores(model: &ClipModel, images: &[Image], references: &[Image]) -> Result<Vec<f64>> {
    image_eval::personalization_scores(&Borrowed(model), images, references)
}

/// CMMD between two image sets.
pub fn cmmd(model: &ClipModel, x: &[Image], y: &[Image]) -> Result<f64> {
    image_eval::images_cmmd(&Borrowed(model), x, y)
}

/// The image columns of an evaluation behind a lock, so one handle may be shared between
/// threads (personas are then added one at a time), built from an [`EvalConfig`] (its
/// methods' names and its queries) and image options.
pub struct SharedImageEvaluation {
    inner: Mutex<ImageEvaluation>,
    config: EvalConfig,
}

impl std::fmt::Debug for SharedImageEvaluation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedImageEvaluation").field("config", &self.config).finish_non_exhaustive()
    }
}

impl SharedImageEvaluation {
    /// `config` `None`: [`EvalConfig::default`] (the five methods on the four VPTT queries);
    /// `options` `None`: [`ImageEvalOptions::default`].
    pub fn new(
        model: &Arc<ClipModel>,
        config: Option<EvalConfig>,
        options: Option<ImageEvalOptions>,
    ) -> Result<SharedImageEvaluation> {
        let config = config.unwrap_or_default();
        let inner = config.image_evaluation(Arc::new(ClipEmbedder(model.clone())), options.unwrap_or_default())?;
        Ok(SharedImageEvaluation { inner: Mutex::new(inner), config })
    }

    /// [`SharedImageEvaluation::new`] from optional JSON (the evaluation config, the image
    /// options `{"cmmd_sample": 500, "seed": 0}`).
    pub fn from_json(
        model: &Arc<ClipModel>,
        config_json: Option<&str>,
        options_json: Option<&str>,
    ) -> Result<SharedImageEvaluation> {
        let config = config_json.map(EvalConfig::from_json).transpose()?;
        let options = options_json.map(ImageEvalOptions::from_json).transpose()?;
        SharedImageEvaluation::new(model, config, options)
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &EvalConfig {
        &self.config
    }

    /// The evaluation, locked (refused after a panic inside an earlier call, as
    /// [`crate::shared::SharedEvaluation::lock`]).
    pub fn lock(&self) -> Result<MutexGuard<'_, ImageEvaluation>> {
        crate::shared::lock(&self.inner, "this image evaluation (its aggregates)")
    }

    /// Adds one persona's images; see [`ImageEvaluation::add_persona`].
    pub fn add_persona(
        &self,
        persona: &str,
        references: &[Image],
        images: &[MethodImages],
    ) -> Result<Vec<ImageSample>> {
        self.lock()?.add_persona(persona, references, images)
    }

    /// The report of the personas added so far.
    pub fn report(&self) -> Result<ImageReport> {
        self.lock()?.report()
    }

    /// Personas added so far.
    pub fn personas(&self) -> Result<u64> {
        Ok(self.lock()?.personas())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zipp_core::ErrorKind;
    use zipp_eval::image_metrics;

    fn fixture() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../zipp-diffusion/tests/fixtures/tiny-clip")
    }

    fn model() -> Arc<ClipModel> {
        static M: std::sync::OnceLock<Arc<ClipModel>> = std::sync::OnceLock::new();
        M.get_or_init(|| {
            let json = serde_json::json!({ "path": fixture() }).to_string();
            ClipSpec::from_json(&json).unwrap().build().unwrap()
        })
        .clone()
    }

    /// A deterministic picture: gradients with a phase `k` (different `k`, different image).
    fn picture(k: u32, w: u32, h: u32) -> Image {
        let mut rgb = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                rgb.push(((x * 7 + k * 40) % 256) as u8);
                rgb.push(((y * 5 + k * 90) % 256) as u8);
                rgb.push((((x + y) * 3 + k * 17) % 256) as u8);
            }
        }
        Image::new(w, h, rgb).unwrap()
    }

    #[test]
    fn specs_parse_strictly_and_a_missing_model_is_not_found() {
        let p = fixture();
        let s = ClipSpec::from_json(&serde_json::Value::from(p.to_str().unwrap()).to_string()).unwrap();
        assert_eq!(s.path, p);
        assert_eq!(ClipSpec::from_json(r#"{"path": "/m"}"#).unwrap().path, PathBuf::from("/m"));
        assert_eq!(ClipSpec::from_json(r#""""#).unwrap_err().kind(), ErrorKind::InvalidInput);
        assert_eq!(ClipSpec::from_json(r#"{"path": "/m", "dtype": "f16"}"#).unwrap_err().kind(), ErrorKind::Schema);
        assert_eq!(ClipSpec::from_json("[").unwrap_err().kind(), ErrorKind::Parse);
        let e = ClipSpec::from_json(r#""/nonexistent/clip""#).unwrap().build().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ModelNotFound, "{e}");
    }

    #[test]
    fn helpers_score_the_real_models_embeddings_with_zipp_eval() {
        let m = model();
        let images = [picture(0, 40, 32), picture(1, 32, 48), picture(2, 32, 32)];
        let e = m.image_embeddings(&images).unwrap();
        assert!(e.iter().all(|v| v.len() == m.projection_dim()) && m.projection_dim() == 16);
        let t = m.text_embeddings(&["a photo of a red cat"]).unwrap().remove(0);
        let s = clip_scores(&m, &images, "a photo of a red cat").unwrap();
        for (s, e) in s.iter().zip(&e) {
            assert_eq!(s.clip_score, image_metrics::clip_score(e, &t).unwrap());
            assert_eq!(s.clip_score_100, image_metrics::clip_score_100(e, &t).unwrap());
        }
        let refs = [picture(3, 32, 32), picture(4, 64, 32)];
        let r = m.image_embeddings(&refs).unwrap();
        let p = personalization_clip_scores(&m, &images, &refs).unwrap();
        for (p, e) in p.iter().zip(&e) {
            assert_eq!(*p, image_metrics::personalization_clip_score(e, &r).unwrap());
        }
        assert_eq!(cmmd(&m, &images, &refs).unwrap(), image_metrics::cmmd(&e, &r).unwrap());
        assert!(cmmd(&m, &images, &images).unwrap() < 1e-9);
        // The model's own input errors come through.
        assert_eq!(clip_scores(&m, &[], "x").unwrap_err().kind(), ErrorKind::InvalidInput);
        let long = "a ".repeat(100);
        assert_eq!(clip_scores(&m, &images, &long).unwrap_err().kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn the_image_columns_of_an_eval_config_through_the_real_clip() {
        let m = model();
        let config = r#"{"methods": ["identity", "vprag"],
            "queries": [{"name": "cat", "task": "generate", "prompt": "a photo of a red cat"},
                        {"name": "dog", "task": "generate", "prompt": "a dog on a beach"}]}"#;
        let ev = SharedImageEvaluation::from_json(&m, Some(config), Some(r#"{"cmmd_sample": 100}"#)).unwrap();
        assert_eq!(ev.config().methods.len(), 2);
        let refs = vec![picture(5, 32, 32), picture(6, 48, 32)];
        // `vprag` renders the persona's own pictures, `identity` others.
        let mut items = Vec::new();
        for q in ["cat", "dog"] {
            items.push(MethodImages { query: q.into(), method: "identity".into(), images: vec![picture(7, 32, 32)] });
            items.push(MethodImages { query: q.into(), method: "vprag".into(), images: refs.clone() });
        }
        let samples = ev.add_persona("ana", &refs, &items).unwrap();
        assert_eq!(samples.len(), 4);
        // Each sample is the mean of the helpers' per-image values.
        for s in &samples {
            let imgs = &items.iter().find(|i| i.query == s.query && i.method == s.method).unwrap().images;
            let prompt = if s.query == "cat" { "a photo of a red cat" } else { "a dog on a beach" };
            let want: f64 =
                clip_scores(&m, imgs, prompt).unwrap().iter().map(|p| p.clip_score).sum::<f64>() / imgs.len() as f64;
            assert!((s.clip_score - want).abs() < 1e-6, "{s:?} vs {want}");
            let want: f64 =
                personalization_clip_scores(&m, imgs, &refs).unwrap().iter().sum::<f64>() / imgs.len() as f64;
            assert!((s.personalization_clip_score.unwrap() - want).abs() < 1e-6, "{s:?} vs {want}");
        }
        let report = ev.report().unwrap();
        assert_eq!(ev.personas().unwrap(), 1);
        let names: Vec<&str> = report.tables.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["cat", "dog", "all generation queries"]);
        for t in &report.tables {
            let (id, vp) = (&t.rows[0], &t.rows[1]);
            assert_eq!((id.method.as_str(), vp.method.as_str()), ("identity", "vprag"));
            // The references themselves: CMMD 0; something else: above 0.
            assert!(vp.cmmd.unwrap() < 1e-9 && id.cmmd.unwrap() > 0.0, "{t:?}");
        }
        assert_eq!(ImageReport::from_json(&report.to_json(false).unwrap()).unwrap(), report);
        assert!(report.table().contains("| vprag | 1 | 2 |"), "{}", report.table());
        // A bad config or option is refused with its location, before anything is embedded.
        let e = SharedImageEvaluation::from_json(&m, Some(r#"{"methods": ["nope"]}"#), None).unwrap_err();
        assert!(e.to_string().contains("methods[0]"), "{e}");
        let e = SharedImageEvaluation::from_json(&m, None, Some(r#"{"sample": 1}"#)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Schema, "{e}");
        // The default config: the five methods on the four VPTT queries.
        let d = SharedImageEvaluation::new(&m, None, None).unwrap();
        assert_eq!(d.lock().unwrap().methods().len(), 5);
        assert_eq!(d.lock().unwrap().queries().len(), 4);
    }
}
