//! JSON arguments (VPTT options, bench options, a list of prompts), parsed by zipp-core
//! with the same located errors as zipp-core's own parsers: malformed JSON is `Parse`, the
//! wrong shape `Schema`, both with line, column and field path.

use serde::de::DeserializeOwned;
use zipp_core::Result;

/// Parses one JSON value of type `T` (`what` names it in the trailing-characters message).
pub(crate) fn parse<T: DeserializeOwned>(json: &str, what: &str) -> Result<T> {
    zipp_core::json::from_str(json, what)
}

/// VPTT options (`{"weights": {...}, "clusters": 3, "novelty": "soft", ...}`; omitted fields
/// take zipp-eval's defaults), validated.
#[cfg(test)]
fn vptt_options(json: &str) -> Result<zipp_eval::VpttOptions> {
    zipp_factory::shared::vptt_options(Some(json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_located() {
        let e = vptt_options("{\"weights\": {\"pa\": 1, \"gs\": 0, \"cp\": 0, \"nv\": 0, \"x\": 1}}").unwrap_err();
        assert_eq!(e.kind(), "schema");
        assert_eq!(e.location().unwrap().field.as_deref(), Some("weights.x"), "{e}");
        let e = vptt_options("{\"clusters\": ").unwrap_err();
        assert_eq!(e.kind(), "parse");
        let e = vptt_options("{} []").unwrap_err();
        assert!(e.to_string().contains("trailing characters after the VPTT options"), "{e}");
        let e = vptt_options("{\"clusters\": 0}").unwrap_err();
        assert_eq!(e.kind(), "invalid_input");
        assert_eq!(vptt_options("{}").unwrap(), zipp_eval::VpttOptions::default());
        let e = parse::<Vec<String>>("[\"a\", 3]", "prompts").unwrap_err();
        assert_eq!(e.location().unwrap().field.as_deref(), Some("[1]"), "{e}");
    }
}
