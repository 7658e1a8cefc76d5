//! [`MethodSpec`]: a personalizer described as data (JSON), built against shared [`Models`].
//!
//! The bindings construct personalizers only through this type, so Rust, Python and C accept
//! the same names, options, defaults and errors:
//!
//! ```json
//! {"method": "vprag", "temperature": 0.1, "default_budget": 3, "budgets": {"color": 2}, "token_budget": 77}
//! ```
//!
//! A method can also be written as its stages — retrievers in order, then a composer — which
//! is how a new composer (the LLM rewriter) follows any retriever without a method per pair:
//!
//! ```json
//! {"method": "pipeline", "name": "captions_then_elements",
//!  "retrievers": [{"kind": "brag", "k": 2}, "vprag"], "composer": "concat", "token_budget": 77}
//! ```
//!
//! The five named methods are these pipelines: `identity` = no retriever + `verbatim`,
//! `persona_only` = `persona_facts` + `concat`, `brag` = `brag` + `concat`, `vprag` = `vprag` +
//! `concat`, `combined` = `brag`, `vprag` + `concat` (the flat specs keep working and build
//! exactly these).
//!
//! Every field but `method` is optional and defaults as below; an unknown field or method is a
//! [`Error::Schema`](zipp_core::Error::Schema) naming it.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use zipp_core::error::{Location, Result};
use zipp_core::personalize::compose::{Concat, Verbatim};
use zipp_core::personalize::{
    check_brag_k, check_token_budget, Brag, BragCaptions, Combined, Composer, Identity, PersonaFacts, PersonaOnly,
    Personalizer, Pipeline, Retriever, Vprag, VpragElements,
};
use zipp_core::retrieve::vprag::VpragParams;
use zipp_core::tokenize::ClipTokenizer;

use crate::lm::LmSpec;
use crate::models::Models;

fn default_k() -> usize {
    3
}
fn default_temperature() -> f32 {
    VpragParams::default().temperature
}
fn default_budget() -> usize {
    VpragParams::default().default_budget
}

fn params(temperature: f32, default_budget: usize, budgets: &BTreeMap<String, usize>) -> VpragParams {
    VpragParams { temperature, default_budget, budgets: budgets.clone() }
}

/// A personalizer and its options. `token_budget` is the target encoder's context length
/// including start/end markers (default: the CLIP tokenizer's 77).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum MethodSpec {
    /// The prompt unchanged.
    Identity,
    /// The prompt plus persona facts (no memory).
    PersonaOnly {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_budget: Option<usize>,
    },
    /// The prompt plus the `k` most similar captions.
    Brag {
        #[serde(default = "default_k")]
        k: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_budget: Option<usize>,
    },
    /// VPRAG (SPEC §3).
    Vprag {
        #[serde(default = "default_temperature")]
        temperature: f32,
        #[serde(default = "default_budget")]
        default_budget: usize,
        #[serde(default)]
        budgets: BTreeMap<String, usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_budget: Option<usize>,
    },
    /// Stages: `retrievers` in order (none, `persona_facts`, `brag`, `vprag`, or several),
    /// then `composer`. `name` (default `"pipeline"`) is what results and tables report.
    Pipeline {
        #[serde(default = "default_pipeline_name")]
        name: String,
        #[serde(default)]
        retrievers: Vec<RetrieverSpec>,
        #[serde(default)]
        composer: ComposerSpec,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_budget: Option<usize>,
    },
    /// BRAG captions, then VPRAG elements.
    Combined {
        #[serde(default = "default_k")]
        brag_k: usize,
        #[serde(default = "default_temperature")]
        temperature: f32,
        #[serde(default = "default_budget")]
        default_budget: usize,
        #[serde(default)]
        budgets: BTreeMap<String, usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_budget: Option<usize>,
    },
}

fn default_pipeline_name() -> String {
    "pipeline".into()
}

/// A retriever stage as data: a bare name (`"vprag"`) or an object with options
/// (`{"kind": "brag", "k": 2}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "serde_json::Value", into = "RetrieverJson")]
#[non_exhaustive]
pub enum RetrieverSpec {
    /// The persona's summary sentences, demographics and interests (no memory).
    PersonaFacts,
    /// The `k` captions most similar to the prompt.
    Brag { k: usize },
    /// VPRAG's elements (SPEC §3 steps 1–5).
    Vprag { temperature: f32, default_budget: usize, budgets: BTreeMap<String, usize> },
}

/// The JSON forms of [`RetrieverSpec`]: a name, or an object tagged by `kind`.
#[derive(Serialize)]
#[serde(untagged)]
enum RetrieverJson {
    Object(RetrieverObject),
}

impl TryFrom<serde_json::Value> for RetrieverSpec {
    type Error = String;
    fn try_from(value: serde_json::Value) -> std::result::Result<RetrieverSpec, String> {
        let value = match value {
            serde_json::Value::String(name) => serde_json::json!({ "kind": name }),
            other => other,
        };
        let object: RetrieverObject = serde_json::from_value(value)
            .map_err(|e| format!("bad retriever: {e} (retrievers: `persona_facts`, `brag`, `vprag`)"))?;
        Ok(match object {
            RetrieverObject::PersonaFacts => RetrieverSpec::PersonaFacts,
            RetrieverObject::Brag { k } => RetrieverSpec::Brag { k },
            RetrieverObject::Vprag { temperature, default_budget, budgets } => {
                RetrieverSpec::Vprag { temperature, default_budget, budgets }
            }
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum RetrieverObject {
    PersonaFacts,
    Brag {
        #[serde(default = "default_k")]
        k: usize,
    },
    Vprag {
        #[serde(default = "default_temperature")]
        temperature: f32,
        #[serde(default = "default_budget")]
        default_budget: usize,
        #[serde(default)]
        budgets: BTreeMap<String, usize>,
    },
}

impl From<RetrieverSpec> for RetrieverJson {
    fn from(spec: RetrieverSpec) -> RetrieverJson {
        RetrieverJson::Object(match spec {
            RetrieverSpec::PersonaFacts => RetrieverObject::PersonaFacts,
            RetrieverSpec::Brag { k } => RetrieverObject::Brag { k },
            RetrieverSpec::Vprag { temperature, default_budget, budgets } => {
                RetrieverObject::Vprag { temperature, default_budget, budgets }
            }
        })
    }
}

impl RetrieverSpec {
    fn validate(&self) -> Result<()> {
        match self {
            RetrieverSpec::PersonaFacts => Ok(()),
            RetrieverSpec::Brag { k } => check_brag_k(*k),
            RetrieverSpec::Vprag { temperature, default_budget, budgets } => {
                params(*temperature, *default_budget, budgets).validate()
            }
        }
    }

    fn reads_memory(&self) -> bool {
        !matches!(self, RetrieverSpec::PersonaFacts)
    }

    fn build(&self, models: &Models) -> Result<Arc<dyn Retriever>> {
        Ok(match self {
            RetrieverSpec::PersonaFacts => Arc::new(PersonaFacts),
            RetrieverSpec::Brag { k } => Arc::new(BragCaptions::new(models.embedder()?, *k)?),
            RetrieverSpec::Vprag { temperature, default_budget, budgets } => {
                Arc::new(VpragElements::new(models.embedder()?, params(*temperature, *default_budget, budgets))?)
            }
        })
    }
}

/// A composer stage as data: `"concat"` (SPEC §3 step 6, the default), `"verbatim"` (the
/// base prompt unchanged), as a name or `{"kind": …}`, or the ZIPP rewriter with its options
/// (SPEC §5; the embedded default language model, SmolLM2-135M-Instruct):
/// `{"kind": "zipp_rewrite", "strength": "light", "shots": 2, "max_words": 60,
///   "sampling": {"max_tokens": 120, "seed": 0}, "model": "smollm2"}` (every option
/// optional; `model` is a [`LmSpec`], default the embedded SmolLM2).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "serde_json::Value", into = "serde_json::Value")]
#[non_exhaustive]
pub enum ComposerSpec {
    #[default]
    Concat,
    Verbatim,
    ZippRewrite {
        options: zipp_lm::RewriteOptions,
        model: LmSpec,
    },
}

impl TryFrom<serde_json::Value> for ComposerSpec {
    type Error = String;
    fn try_from(json: serde_json::Value) -> std::result::Result<ComposerSpec, String> {
        const KNOWN: &str = "expected `concat`, `verbatim` or `zipp_rewrite`";
        let mut object = match json {
            serde_json::Value::String(kind) => serde_json::Map::from_iter([("kind".to_string(), kind.into())]),
            serde_json::Value::Object(o) => o,
            other => return Err(format!("a composer is a name or an object, not {other}")),
        };
        let kind = match object.remove("kind") {
            Some(serde_json::Value::String(k)) => k,
            _ => return Err(format!("a composer object needs a string `kind` ({KNOWN})")),
        };
        let plain = |spec: ComposerSpec| match object.keys().next() {
            Some(key) => Err(format!("composer `{kind}` has no option `{key}`")),
            None => Ok(spec),
        };
        match kind.as_str() {
            "concat" => plain(ComposerSpec::Concat),
            "verbatim" => plain(ComposerSpec::Verbatim),
            "zipp_rewrite" => {
                let model = match object.remove("model") {
                    Some(m) => serde_json::from_value::<LmSpec>(m)
                        .map_err(|e| format!("composer `zipp_rewrite`, `model`: {e}"))?,
                    None => LmSpec::default(),
                };
                model.validate().map_err(|e| format!("composer `zipp_rewrite`, `model`: {e}"))?;
                serde_json::from_value(serde_json::Value::Object(object.clone()))
                    .map(|options| ComposerSpec::ZippRewrite { options, model })
                    .map_err(|e| format!("composer `zipp_rewrite`: {e}"))
            }
            other => Err(format!("unknown composer `{other}` ({KNOWN})")),
        }
    }
}

impl From<ComposerSpec> for serde_json::Value {
    fn from(spec: ComposerSpec) -> serde_json::Value {
        match spec {
            ComposerSpec::Concat => "concat".into(),
            ComposerSpec::Verbatim => "verbatim".into(),
            ComposerSpec::ZippRewrite { options, model } => {
                let mut v = serde_json::to_value(options).unwrap_or_else(|_| serde_json::json!({}));
                if let Some(o) = v.as_object_mut() {
                    o.insert("kind".into(), "zipp_rewrite".into());
                    if model != LmSpec::default() {
                        o.insert("model".into(), serde_json::to_value(model).unwrap_or_default());
                    }
                }
                v
            }
        }
    }
}

impl MethodSpec {
    /// Parses a spec from JSON; a bare method name (`"vprag"`) is accepted too and means the
    /// defaults.
    pub fn from_json(json: &str) -> Result<MethodSpec> {
        let trimmed = json.trim();
        let name = if trimmed.starts_with('"') {
            zipp_core::json::parse::<String>(trimmed, &Location::default(), "method name")?
        } else if trimmed.starts_with('{') || trimmed.is_empty() {
            return zipp_core::json::parse(json, &Location::default(), "method spec");
        } else {
            trimmed.to_string()
        };
        zipp_core::json::from_value(serde_json::json!({ "method": name }), "")
    }

    /// The spec as compact JSON (every default written out, except an unset `token_budget`,
    /// which means the token counter's context length: 77 for CLIP).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("method spec serialisation is infallible")
    }

    /// The five methods with their defaults, in the order of the VPTT paper's tables.
    pub fn defaults() -> Vec<MethodSpec> {
        ["identity", "persona_only", "brag", "vprag", "combined"]
            .iter()
            .map(|m| MethodSpec::from_json(m).expect("built-in method names parse"))
            .collect()
    }

    /// The method's name (`"vprag"` …, or a pipeline's own), as [`Personalizer::name`]
    /// reports it.
    pub fn name(&self) -> &str {
        match self {
            MethodSpec::Pipeline { name, .. } => name,
            MethodSpec::Identity => "identity",
            MethodSpec::PersonaOnly { .. } => "persona_only",
            MethodSpec::Brag { .. } => "brag",
            MethodSpec::Vprag { .. } => "vprag",
            MethodSpec::Combined { .. } => "combined",
        }
    }

    /// Whether the method embeds text (and so loads MiniLM).
    pub fn needs_embedder(&self) -> bool {
        self.reads_memory()
    }

    /// Whether the method reads the persona's memory (its captions and elements). The VPTT
    /// paper scores novelty as 0 for methods that do not (Identity, PersonaOnly); the
    /// evaluation applies that convention only when asked (`eval::NoveltyConvention`).
    pub fn reads_memory(&self) -> bool {
        match self {
            MethodSpec::Pipeline { retrievers, .. } => retrievers.iter().any(RetrieverSpec::reads_memory),
            other => matches!(other, MethodSpec::Brag { .. } | MethodSpec::Vprag { .. } | MethodSpec::Combined { .. }),
        }
    }

    /// Checks the options without loading any model.
    pub fn validate(&self) -> Result<()> {
        let (k, vprag, budget) = match self {
            MethodSpec::Pipeline { name, retrievers, composer, token_budget } => {
                if name.trim().is_empty() {
                    return Err(zipp_core::Error::InvalidInput("a pipeline's name must not be empty".into()));
                }
                if let ComposerSpec::ZippRewrite { options, model } = composer {
                    options.validate()?;
                    model.validate()?;
                }
                for r in retrievers {
                    r.validate()?;
                }
                (None, None, *token_budget)
            }
            MethodSpec::Identity => (None, None, None),
            MethodSpec::PersonaOnly { token_budget } => (None, None, *token_budget),
            MethodSpec::Brag { k, token_budget } => (Some(*k), None, *token_budget),
            MethodSpec::Vprag { temperature, default_budget, budgets, token_budget } => {
                (None, Some(params(*temperature, *default_budget, budgets)), *token_budget)
            }
            MethodSpec::Combined { brag_k, temperature, default_budget, budgets, token_budget } => {
                (Some(*brag_k), Some(params(*temperature, *default_budget, budgets)), *token_budget)
            }
        };
        if let Some(k) = k {
            check_brag_k(k)?;
        }
        if let Some(p) = vprag {
            p.validate()?;
        }
        if let Some(b) = budget {
            check_token_budget(b)?;
        }
        Ok(())
    }

    /// Builds the personalizer, loading (once, shared) the models it needs. Options are
    /// validated here: `k = 0`, a non-positive temperature or a token budget below 3 are
    /// [`Error::InvalidInput`](zipp_core::Error::InvalidInput).
    pub fn build(&self, models: &Models) -> Result<Arc<dyn Personalizer>> {
        self.validate()?;
        macro_rules! budgeted {
            ($p:expr, $budget:expr) => {
                match $budget {
                    Some(b) => $p.with_token_budget(*b)?,
                    None => $p,
                }
            };
        }
        Ok(match self {
            MethodSpec::Pipeline { name, retrievers, composer, token_budget } => {
                let stages = retrievers.iter().map(|r| r.build(models)).collect::<Result<Vec<_>>>()?;
                // Only a composer that counts tokens loads the CLIP vocabulary; the default
                // budget is its context length (CLIP's 77 when nothing counts).
                let (composer, context) = match composer {
                    ComposerSpec::Concat => {
                        let counter = models.token_counter()?;
                        let context = counter.context_length();
                        (Arc::new(Concat::new(counter)) as Arc<dyn Composer>, context)
                    }
                    ComposerSpec::Verbatim => (Arc::new(Verbatim) as Arc<dyn Composer>, ClipTokenizer::CONTEXT_LENGTH),
                    ComposerSpec::ZippRewrite { options, model } => {
                        let counter = models.token_counter()?;
                        let context = counter.context_length();
                        let rewriter = zipp_lm::Rewriter::new(model.build(models)?, counter, options.clone())?;
                        (Arc::new(rewriter) as Arc<dyn Composer>, context)
                    }
                };
                Arc::new(Pipeline::new(name.clone(), stages, composer, token_budget.unwrap_or(context))?)
            }
            MethodSpec::Identity => Arc::new(Identity::new()),
            MethodSpec::PersonaOnly { token_budget } => {
                Arc::new(budgeted!(PersonaOnly::new(models.token_counter()?), token_budget))
            }
            MethodSpec::Brag { k, token_budget } => {
                Arc::new(budgeted!(Brag::new(models.embedder()?, models.token_counter()?, *k)?, token_budget))
            }
            MethodSpec::Vprag { temperature, default_budget, budgets, token_budget } => {
                let p = params(*temperature, *default_budget, budgets);
                Arc::new(budgeted!(Vprag::new(models.embedder()?, models.token_counter()?, p)?, token_budget))
            }
            MethodSpec::Combined { brag_k, temperature, default_budget, budgets, token_budget } => {
                let p = params(*temperature, *default_budget, budgets);
                let c = Combined::new(models.embedder()?, models.token_counter()?, *brag_k, p)?;
                Arc::new(budgeted!(c, token_budget))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_objects_and_defaults_parse() {
        let v = MethodSpec::from_json("vprag").unwrap();
        assert_eq!(
            v,
            MethodSpec::Vprag { temperature: 0.1, default_budget: 3, budgets: BTreeMap::new(), token_budget: None }
        );
        assert_eq!(MethodSpec::from_json("\"vprag\"").unwrap(), v);
        let b = MethodSpec::from_json(r#"{"method":"brag","k":5,"token_budget":60}"#).unwrap();
        assert_eq!(b, MethodSpec::Brag { k: 5, token_budget: Some(60) });
        assert_eq!(MethodSpec::from_json(&b.to_json()).unwrap(), b);
        let names: Vec<String> = MethodSpec::defaults().iter().map(|m| m.name().to_string()).collect();
        assert_eq!(names, ["identity", "persona_only", "brag", "vprag", "combined"]);
    }

    #[test]
    fn bad_specs_are_located_schema_or_parse_errors() {
        let e = MethodSpec::from_json(r#"{"method":"vprag","temprature":0.2}"#).unwrap_err();
        assert_eq!(e.kind(), "schema");
        assert!(e.to_string().contains("temprature"), "{e}");
        let e = MethodSpec::from_json("dalle").unwrap_err();
        assert_eq!(e.kind(), "schema");
        assert!(e.to_string().contains("dalle"), "{e}");
        let e = MethodSpec::from_json(r#"{"method":"brag","k":-1}"#).unwrap_err();
        assert_eq!(e.kind(), "schema");
        // Internally tagged enums are buffered by serde, so the field path is lost; the
        // message still names the bad value.
        assert!(e.to_string().contains("-1"), "{e}");
        assert_eq!(MethodSpec::from_json(r#"{"method":"brag""#).unwrap_err().kind(), "parse");
        assert_eq!(MethodSpec::from_json("").unwrap_err().kind(), "parse");
    }

    #[test]
    fn pipelines_parse_from_names_or_objects_and_validate_their_stages() {
        let p = MethodSpec::from_json(
            r#"{"method":"pipeline","name":"mine","retrievers":["persona_facts",{"kind":"brag","k":2},"vprag"],"composer":"concat","token_budget":60}"#,
        )
        .unwrap();
        let MethodSpec::Pipeline { name, retrievers, composer, token_budget } = &p else { panic!("{p:?}") };
        assert_eq!((name.as_str(), composer, *token_budget), ("mine", &ComposerSpec::Concat, Some(60)));
        assert_eq!(retrievers[1], RetrieverSpec::Brag { k: 2 });
        assert!(matches!(retrievers[2], RetrieverSpec::Vprag { temperature, .. } if temperature == 0.1));
        assert!(p.reads_memory());
        assert_eq!(MethodSpec::from_json(&p.to_json()).unwrap(), p, "round trip");
        let facts = MethodSpec::from_json(r#"{"method":"pipeline","retrievers":["persona_facts"]}"#).unwrap();
        assert!(!facts.reads_memory());
        assert_eq!(facts.name(), "pipeline");
        for (bad, needle) in [
            (r#"{"method":"pipeline","retrievers":["dalle"]}"#, "dalle"),
            (r#"{"method":"pipeline","composer":"poem"}"#, "poem"),
            (r#"{"method":"pipeline","retrievers":[{"kind":"brag","kk":1}]}"#, "kk"),
        ] {
            let e = MethodSpec::from_json(bad).unwrap_err();
            assert_eq!(e.kind(), "schema", "{bad}: {e}");
            assert!(e.to_string().contains(needle), "{bad}: {e}");
        }
        let nowhere = Models::in_dir("/nonexistent/zipp-models");
        for bad in [
            r#"{"method":"pipeline","retrievers":[{"kind":"brag","k":0}]}"#,
            r#"{"method":"pipeline","retrievers":[{"kind":"vprag","temperature":-1}]}"#,
            r#"{"method":"pipeline","name":" "}"#,
            r#"{"method":"pipeline","token_budget":1}"#,
        ] {
            let e = MethodSpec::from_json(bad).unwrap().build(&nowhere).err().unwrap();
            assert_eq!(e.kind(), "invalid_input", "{bad}: {e}");
        }
        // Identity by stages: no retriever, the verbatim composer, and no model at all.
        let verbatim = MethodSpec::from_json(r#"{"method":"pipeline","composer":"verbatim"}"#).unwrap();
        let p = verbatim.build(&nowhere).unwrap();
        let out = p
            .personalize(
                &zipp_core::IndexedPersona::new(zipp_core::Persona::new("a")),
                &zipp_core::personalize::Request::generate("a red bike"),
            )
            .unwrap();
        assert_eq!((out.method.as_str(), out.prompt.as_str()), ("pipeline", "a red bike"));
        // A composer that counts tokens needs the CLIP vocabulary.
        let concat = MethodSpec::from_json(r#"{"method":"pipeline"}"#).unwrap();
        assert_eq!(concat.build(&nowhere).err().unwrap().kind(), "model_not_found");
    }

    #[test]
    fn the_zipp_rewriter_is_a_composer_with_options() {
        let p = MethodSpec::from_json(
            r#"{"method":"pipeline","name":"zipp","retrievers":["persona_facts"],
                "composer":{"kind":"zipp_rewrite","strength":"light","shots":1,"sampling":{"max_tokens":24}}}"#,
        )
        .unwrap();
        let MethodSpec::Pipeline { composer: ComposerSpec::ZippRewrite { options: o, model }, .. } = &p else {
            panic!("{p:?}")
        };
        assert_eq!(model, &LmSpec::Smollm2);
        assert_eq!((o.strength, o.shots, o.max_words, o.sampling.max_tokens), (zipp_lm::Strength::Light, 1, 60, 24));
        assert_eq!(MethodSpec::from_json(&p.to_json()).unwrap(), p, "round trip");
        let bare = MethodSpec::from_json(r#"{"method":"pipeline","composer":"zipp_rewrite"}"#).unwrap();
        let MethodSpec::Pipeline { composer, .. } = &bare else { panic!() };
        assert_eq!(
            composer,
            &ComposerSpec::ZippRewrite { options: zipp_lm::RewriteOptions::default(), model: LmSpec::Smollm2 }
        );
        let scripted = MethodSpec::from_json(
            r#"{"method":"pipeline","composer":{"kind":"zipp_rewrite","model":{"scripted":{"replies":["a"]}}}}"#,
        )
        .unwrap();
        assert_eq!(MethodSpec::from_json(&scripted.to_json()).unwrap(), scripted, "round trip with a model");
        for (bad, needle) in [
            (r#"{"method":"pipeline","composer":{"kind":"zipp_rewrite","strenght":"light"}}"#, "strenght"),
            (r#"{"method":"pipeline","composer":{"kind":"concat","shots":1}}"#, "no option `shots`"),
            (r#"{"method":"pipeline","composer":{"strength":"light"}}"#, "string `kind`"),
            (r#"{"method":"pipeline","composer":{"kind":"zipp_rewrite","sampling":{"top_q":1}}}"#, "top_q"),
            (r#"{"method":"pipeline","composer":{"kind":"zipp_rewrite","model":"gpt9"}}"#, "gpt9"),
        ] {
            let e = MethodSpec::from_json(bad).unwrap_err();
            assert_eq!(e.kind(), "schema", "{bad}: {e}");
            assert!(e.to_string().contains(needle), "{bad}: {e}");
        }
        // Options are checked before any model loads.
        let nowhere = Models::in_dir("/nonexistent/zipp-models");
        for bad in [
            r#"{"method":"pipeline","composer":{"kind":"zipp_rewrite","max_words":0}}"#,
            r#"{"method":"pipeline","composer":{"kind":"zipp_rewrite","sampling":{"temperature":-1}}}"#,
        ] {
            let e = MethodSpec::from_json(bad).unwrap().build(&nowhere).err().unwrap();
            assert_eq!(e.kind(), "invalid_input", "{bad}: {e}");
        }
        assert_eq!(bare.build(&nowhere).err().unwrap().kind(), "model_not_found");
    }

    #[test]
    fn build_validates_options_before_loading_anything_heavy() {
        // Identity needs no model at all, even from a root that does not exist.
        let nowhere = Models::in_dir("/nonexistent/zipp-models");
        assert_eq!(MethodSpec::Identity.build(&nowhere).unwrap().name(), "identity");
        let e = MethodSpec::from_json("persona_only").unwrap().build(&nowhere).err().unwrap();
        assert_eq!(e.kind(), "model_not_found");
        for bad in [
            r#"{"method":"brag","k":0}"#,
            r#"{"method":"combined","brag_k":0}"#,
            r#"{"method":"vprag","temperature":0}"#,
            r#"{"method":"vprag","temperature":-1.5}"#,
            r#"{"method":"persona_only","token_budget":2}"#,
        ] {
            let e = MethodSpec::from_json(bad).unwrap().build(&nowhere).err().unwrap();
            assert_eq!(e.kind(), "invalid_input", "{bad}: {e}");
        }
    }
}
