//! The objects both bindings hand out, with the policy they share: a scorer bound to its
//! embedder, an evaluation behind a lock, option objects that default when absent. Python and
//! C wrap these and add nothing but conversion, so they cannot disagree.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::de::DeserializeOwned;
use zipp_core::embed::Embedder;
use zipp_core::{Error, IndexedPersona, Result};
use zipp_eval::datasets::synthetic::{SyntheticBench, SyntheticOptions, Vocabulary};
use zipp_eval::{EvalAggregate, Evaluation, PersonaScorer, Report, Sample, VpttOptions, VpttScore};

use crate::eval::EvalConfig;
use crate::models::Models;

/// Parses an optional options object: `None` (NULL in C, `None` in Python) is `T::default()`;
/// text goes through zipp-core's located-error parser (`what` names it in messages).
pub fn options_or_default<T: DeserializeOwned + Default>(json: Option<&str>, what: &str) -> Result<T> {
    match json {
        Some(text) => zipp_core::json::from_str(text, what),
        None => Ok(T::default()),
    }
}

/// `m` locked; a lock a panic poisoned is [`Error::Internal`] naming `what` (the state it
/// guards may be half-updated, so it is not used again).
pub fn lock<'a, T>(m: &'a Mutex<T>, what: &str) -> Result<MutexGuard<'a, T>> {
    m.lock().map_err(|_| {
        Error::Internal(format!("{what} was interrupted by an internal error and may be inconsistent; start a new one"))
    })
}

/// VPTT options from optional JSON, validated (`None` = the defaults).
pub fn vptt_options(json: Option<&str>) -> Result<VpttOptions> {
    match json {
        Some(text) => VpttOptions::from_json(text),
        None => Ok(VpttOptions::default()),
    }
}

/// The synthetic persona dataset: phrase lists from `vocabulary_dir` (`None`: the provisioned
/// default), options from optional JSON — parsed and validated *before* the phrase lists load.
pub fn synthetic_bench(vocabulary_dir: Option<&Path>, options_json: Option<&str>) -> Result<SyntheticBench> {
    let options: SyntheticOptions = options_or_default(options_json, "synthetic bench options")?;
    options.validate()?;
    let vocabulary = match vocabulary_dir {
        Some(dir) => Vocabulary::load(dir)?,
        None => Vocabulary::load_default()?,
    };
    SyntheticBench::new(Arc::new(vocabulary), options)
}

/// MovieLens 100K from `dir` (`None`: the provisioned default).
#[cfg(feature = "movielens")]
pub fn movielens(dir: Option<&Path>) -> Result<zipp_eval::datasets::movielens::MovieLens> {
    use zipp_eval::datasets::movielens::MovieLens;
    match dir {
        Some(dir) => MovieLens::load(dir),
        None => MovieLens::load_default(),
    }
}

/// A persona's VPTT scorer with the embedder it scores with (the models' MiniLM, so the
/// persona's memory index is shared with the personalizers).
pub struct Scorer {
    inner: PersonaScorer,
    embedder: Arc<dyn Embedder>,
}

impl Scorer {
    /// Builds the persona's scoring state once (options validated before any model loads).
    pub fn new(models: &Models, persona: &IndexedPersona, options: &VpttOptions) -> Result<Scorer> {
        options.validate()?;
        let embedder = models.embedder()?;
        let inner = PersonaScorer::new(persona, &*embedder, options)?;
        Ok(Scorer { inner, embedder })
    }

    /// Scores one prompt.
    pub fn score(&self, prompt: &str) -> Result<VpttScore> {
        let mut scores = self.inner.score(&*self.embedder, &[prompt])?;
        match (scores.pop(), scores.is_empty()) {
            (Some(score), true) => Ok(score),
            _ => Err(Error::Internal(format!("the scorer returned {} scores for one prompt", scores.len() + 1))),
        }
    }

    /// Scores prompts embedded in one batch, in order.
    pub fn score_batch(&self, prompts: &[&str]) -> Result<Vec<VpttScore>> {
        self.inner.score(&*self.embedder, prompts)
    }

    pub fn scorer(&self) -> &PersonaScorer {
        &self.inner
    }
}

/// An evaluation shared between threads: calls are serialised by a lock inside, so one
/// handle may be used from many threads (personas are then added one at a time).
pub struct SharedEvaluation {
    inner: Mutex<Evaluation>,
    config: EvalConfig,
}

impl SharedEvaluation {
    /// Builds the evaluation `config` describes (`None`: the defaults) from `models`.
    pub fn new(models: &Models, config: Option<EvalConfig>) -> Result<SharedEvaluation> {
        let config = config.unwrap_or_default();
        let inner = config.build(models)?;
        Ok(SharedEvaluation { inner: Mutex::new(inner), config })
    }

    /// [`SharedEvaluation::new`] from optional JSON.
    pub fn from_json(models: &Models, config_json: Option<&str>) -> Result<SharedEvaluation> {
        let config = config_json.map(EvalConfig::from_json).transpose()?;
        SharedEvaluation::new(models, config)
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &EvalConfig {
        &self.config
    }

    /// The evaluation, locked. A panic inside an earlier call (contained by a binding) may
    /// have left the aggregates half-updated: such an evaluation refuses every further call
    /// with [`Error::Internal`] rather than report from them.
    pub fn lock(&self) -> Result<MutexGuard<'_, Evaluation>> {
        lock(&self.inner, "this evaluation (its aggregates)")
    }

    /// Adds one (already indexed) persona; see [`Evaluation::add_persona`].
    pub fn add_persona(&self, persona: &IndexedPersona) -> Result<Vec<Sample>> {
        self.lock()?.add_persona(persona)
    }

    /// The report of the personas added so far.
    pub fn report(&self) -> Result<Report> {
        self.lock()?.report()
    }

    /// Personas added (or merged in) so far.
    pub fn personas(&self) -> Result<u64> {
        Ok(self.lock()?.personas())
    }

    /// The aggregates so far, as data to serialise and merge elsewhere
    /// ([`Evaluation::aggregate`]).
    pub fn aggregate(&self) -> Result<EvalAggregate> {
        Ok(self.lock()?.aggregate())
    }

    /// Adds another shard's aggregates (made by the same config) to this evaluation's
    /// ([`Evaluation::merge`]).
    pub fn merge(&self, other: &EvalAggregate) -> Result<()> {
        self.lock()?.merge(other)
    }
}

/// Merges serialised aggregates ([`EvalAggregate::to_json`]) in the order given: what a
/// driver does with its shards' results, with no model loaded. An empty list is an error
/// (there is no config to report on).
pub fn merge_aggregates<'a>(parts: impl IntoIterator<Item = &'a str>) -> Result<EvalAggregate> {
    merge_parts(parts.into_iter().map(EvalAggregate::from_json))
}

/// Merges aggregates in the order given, each already read (or failed to read) by the caller:
/// [`merge_aggregates`] for JSON text, Python for a mix of objects and text. Errors name the
/// aggregate's index; an empty list is an error.
pub fn merge_parts(parts: impl IntoIterator<Item = Result<EvalAggregate>>) -> Result<EvalAggregate> {
    let mut total: Option<EvalAggregate> = None;
    for (i, part) in parts.into_iter().enumerate() {
        let within = |e: Error| match e {
            Error::InvalidInput(m) => Error::InvalidInput(format!("aggregate {i}: {m}")),
            other => other,
        };
        let part = part.map_err(within)?;
        match &mut total {
            None => total = Some(part),
            Some(t) => t.merge(&part).map_err(within)?,
        }
    }
    total.ok_or_else(|| Error::InvalidInput("no aggregates to merge".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_are_validated_before_any_model_loads() {
        let nowhere = Models::in_dir("/nonexistent/zipp-models");
        let e = SharedEvaluation::from_json(&nowhere, Some(r#"{"methods": ["nope"]}"#)).err().unwrap();
        assert_eq!(e.kind(), "schema", "options are validated before anything loads: {e}");
        // A valid config then needs the embedder (the queries are embedded up front).
        let e = SharedEvaluation::from_json(&nowhere, Some(r#"{"methods": ["identity"]}"#)).err().unwrap();
        assert_eq!(e.kind(), "model_not_found");
    }

    #[test]
    fn a_poisoned_evaluation_is_an_internal_error_from_then_on() {
        use zipp_core::personalize::Identity;
        use zipp_core::rng::HashingEmbedder;
        use zipp_eval::{EvalMethod, EvalOptions, Query};
        let methods = vec![EvalMethod::from_personalizer(Arc::new(Identity::new()))];
        let options = EvalOptions { baseline: None, ..EvalOptions::default() };
        let ev = Evaluation::new(Arc::new(HashingEmbedder(8)), methods, Query::vptt(), options).unwrap();
        let shared = SharedEvaluation { inner: Mutex::new(ev), config: EvalConfig::default() };
        assert_eq!(shared.personas().unwrap(), 0);
        // A panic while the lock is held (contained by a binding) poisons it.
        let panicked = std::thread::scope(|s| {
            s.spawn(|| {
                let _held = shared.lock().unwrap();
                panic!("inside a call");
            })
            .join()
            .is_err()
        });
        assert!(panicked);
        for e in [shared.personas().unwrap_err(), shared.report().unwrap_err()] {
            assert_eq!(e.kind(), "internal", "{e}");
            assert!(e.to_string().contains("start a new one"), "{e}");
        }
    }

    #[test]
    fn absent_options_default_and_present_ones_are_located() {
        let o: VpttOptions = vptt_options(None).unwrap();
        assert_eq!(o, VpttOptions::default());
        let e = vptt_options(Some("{\"clusters\": 0}")).unwrap_err();
        assert_eq!(e.kind(), "invalid_input");
        let e = options_or_default::<SyntheticOptions>(Some("{\"sed\": 1}"), "options").unwrap_err();
        assert_eq!(e.kind(), "schema");
        assert!(e.to_string().contains("sed"), "{e}");
    }
}
