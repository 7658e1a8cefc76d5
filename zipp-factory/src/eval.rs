//! [`EvalConfig`]: a whole evaluation as JSON (methods as specs, queries, options), built
//! against shared [`Models`] into a [`zipp_eval::Evaluation`], and — given an image embedder
//! such as CLIP — into the [`zipp_eval::image_eval::ImageEvaluation`] of the same methods and
//! queries (the image columns). Python and C build evaluations only through this.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use zipp_core::{Error, Result};
use zipp_eval::image_eval::{ImageEmbedder, ImageEvalOptions, ImageEvaluation};
use zipp_eval::{EvalMethod, EvalOptions, Evaluation, QuerySet};

use crate::models::Models;
use crate::spec::MethodSpec;

/// A whole evaluation as data, so every binding builds it the same way:
/// `{"methods": ["identity", {"method": "vprag", "temperature": 0.2}], "queries": "vptt",
/// "options": {"novelty": "measured"}}`. Every field is optional: the defaults are the five
/// methods of [`MethodSpec::defaults`], the four VPTT queries and [`EvalOptions::default`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    pub methods: Vec<serde_json::Value>,
    pub queries: QuerySet,
    pub options: EvalOptions,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            methods: MethodSpec::defaults().iter().map(|m| serde_json::Value::from(m.name())).collect(),
            queries: QuerySet::default(),
            options: EvalOptions::default(),
        }
    }
}

impl EvalConfig {
    /// Parses a configuration; errors are located (`methods[1].temperature`).
    pub fn from_json(json: &str) -> Result<EvalConfig> {
        let config: EvalConfig = zipp_core::json::parse(json, &zipp_core::Location::default(), "evaluation config")?;
        config.method_specs()?;
        config.queries.queries()?;
        Ok(config)
    }

    /// The method specs (a bare name or a spec object each).
    pub fn method_specs(&self) -> Result<Vec<MethodSpec>> {
        self.methods
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let text = v.to_string();
                let spec = match v {
                    serde_json::Value::String(name) => MethodSpec::from_json(name),
                    _ => MethodSpec::from_json(&text),
                };
                spec.map_err(|e| match e {
                    Error::Schema { message, .. } | Error::Parse { message, .. } => {
                        Error::Schema { location: zipp_core::Location::field(format!("methods[{i}]")), message }
                    }
                    other => other,
                })
            })
            .collect()
    }

    /// Builds the methods from `models` and the evaluation, scoring with `models`' embedder.
    /// A baseline that is not among the methods is dropped (d vs baseline is then omitted)
    /// only when it is the default one; a baseline named explicitly must exist.
    pub fn build(&self, models: &Models) -> Result<Evaluation> {
        let methods = eval_methods(&self.method_specs()?, models)?;
        let mut options = self.options.clone();
        if options.baseline.as_deref() == EvalOptions::default().baseline.as_deref()
            && !methods.iter().any(|m| Some(&m.name) == options.baseline.as_ref())
        {
            options.baseline = None;
        }
        Evaluation::new(models.embedder()?, methods, self.queries.queries()?, options)
    }

    /// The image evaluation of this configuration's methods (by their spec names, in table
    /// order) and queries, embedding with `embedder` (e.g. [`crate::clip::ClipEmbedder`]):
    /// its report's tables line up by name with [`EvalConfig::build`]'s. No model is built
    /// for the methods: the caller renders their prompts and hands the images in.
    pub fn image_evaluation(
        &self,
        embedder: Arc<dyn ImageEmbedder>,
        options: ImageEvalOptions,
    ) -> Result<ImageEvaluation> {
        let methods = self.method_specs()?.iter().map(|s| s.name().to_string()).collect();
        ImageEvaluation::new(embedder, methods, self.queries.queries()?, options)
    }
}

/// The method a [`MethodSpec`] describes, built from `models`, named by the spec.
pub fn eval_method(spec: &MethodSpec, models: &Models) -> Result<EvalMethod> {
    Ok(EvalMethod::new(spec.name(), spec.build(models)?, spec.reads_memory()))
}

/// [`eval_method`] for each spec; [`MethodSpec::defaults`] gives the five methods of the VPTT
/// paper's tables (Identity — the paper's Baseline —, PersonaOnly, Brag, Vprag, Combined).
pub fn eval_methods(specs: &[MethodSpec], models: &Models) -> Result<Vec<EvalMethod>> {
    specs.iter().map(|s| eval_method(s, models)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use zipp_core::personalize::Task;

    #[test]
    fn configs_parse_with_located_errors() {
        let c = EvalConfig::from_json("{}").unwrap();
        assert_eq!(c, EvalConfig::default());
        assert_eq!(c.method_specs().unwrap().len(), 5);
        let c = EvalConfig::from_json(
            r#"{"methods": ["identity", {"method": "vprag", "temperature": 0.2}],
            "queries": [{"name": "q", "task": "edit", "prompt": "make it blue"}],
            "options": {"novelty": "measured", "vptt": {"clusters": 2}}}"#,
        )
        .unwrap();
        assert_eq!(c.method_specs().unwrap()[1].name(), "vprag");
        assert_eq!(c.queries.queries().unwrap()[0].task, Task::Edit);
        assert_eq!(c.options.vptt.clusters, Some(2));
        for (bad, needle) in [
            (r#"{"methods": ["identity", "nope"]}"#, "methods[1]"),
            (r#"{"methods": [{"method": "vprag", "temperature": "hot"}]}"#, "methods[0]"),
            (r#"{"queries": "all"}"#, "query set"),
            (r#"{"options": {"novelty": "sometimes"}}"#, "options"),
            (r#"{"method": []}"#, "method"),
            ("[", "malformed"),
        ] {
            let e = EvalConfig::from_json(bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }
}
