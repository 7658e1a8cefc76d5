//! [`MethodSpec`]: a personalizer described as data (JSON), built against shared [`Models`].
//!
//! The bindings construct personalizers only through this type, so Rust, Python and C accept
//! the same names, options, defaults and errors:
//!
//! ```json
//! {"method": "vprag", "temperature": 0.1, "default_budget": 3, "budgets": {"color": 2}, "token_budget": 77}
//! ```
//!
//! Every field but `method` is optional and defaults as below; an unknown field or method is a
//! [`Error::Schema`](zipp_core::Error::Schema) naming it.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use zipp_core::error::{Location, Result};
use zipp_core::personalize::{
    check_brag_k, check_token_budget, Brag, Combined, Identity, PersonaOnly, Personalizer, Vprag,
};
use zipp_core::retrieve::vprag::VpragParams;

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

    /// The method's stable name (`"vprag"` …), as [`Personalizer::name`] reports it.
    pub fn name(&self) -> &'static str {
        match self {
            MethodSpec::Identity => "identity",
            MethodSpec::PersonaOnly { .. } => "persona_only",
            MethodSpec::Brag { .. } => "brag",
            MethodSpec::Vprag { .. } => "vprag",
            MethodSpec::Combined { .. } => "combined",
        }
    }

    /// Whether the method embeds text (and so loads MiniLM).
    pub fn needs_embedder(&self) -> bool {
        matches!(self, MethodSpec::Brag { .. } | MethodSpec::Vprag { .. } | MethodSpec::Combined { .. })
    }

    /// Whether the method reads the persona's memory (its captions and elements). The VPTT
    /// paper scores novelty as 0 for methods that do not (Identity, PersonaOnly); the
    /// evaluation applies that convention only when asked (`eval::NoveltyConvention`).
    pub fn reads_memory(&self) -> bool {
        matches!(self, MethodSpec::Brag { .. } | MethodSpec::Vprag { .. } | MethodSpec::Combined { .. })
    }

    /// Checks the options without loading any model.
    pub fn validate(&self) -> Result<()> {
        let (k, vprag, budget) = match self {
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
        let names: Vec<_> = MethodSpec::defaults().iter().map(|m| m.name()).collect();
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
