//! JSON arguments zipp-core has no `from_json` for (VPTT options, a list of prompts), parsed
//! with the same located errors as zipp-core's own parsers: malformed JSON is `Parse`, the
//! wrong shape `Schema`, both with line, column and field path.

use serde::de::DeserializeOwned;
use zipp_core::{Error, Location, Result};

/// Parses one JSON value of type `T` (`what` names it in the trailing-characters message).
pub(crate) fn parse<T: DeserializeOwned>(json: &str, what: &str) -> Result<T> {
    let mut de = serde_json::Deserializer::from_str(json);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let location = Location {
            file: None,
            line: Some(inner.line()),
            column: Some(inner.column()),
            field: (path != "." && !path.is_empty()).then_some(path),
        };
        let message = strip_position(&inner.to_string());
        match inner.classify() {
            serde_json::error::Category::Data => Error::Schema { location, message },
            _ => Error::Parse { location, message },
        }
    })?;
    de.end().map_err(|e| Error::Parse {
        location: Location { line: Some(e.line()), column: Some(e.column()), ..Location::default() },
        message: format!("trailing characters after the {what}"),
    })?;
    Ok(value)
}

/// serde_json appends " at line L column C"; the location already carries that.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// VPTT options (`{"weights": {...}, "clusters": 3, "novelty": "soft", ...}`; omitted fields
/// take zipp-core's defaults), validated.
pub(crate) fn vptt_options(json: &str) -> Result<zipp_core::eval::VpttOptions> {
    let options: zipp_core::eval::VpttOptions = parse(json, "VPTT options")?;
    options.validate()?;
    Ok(options)
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
        assert_eq!(vptt_options("{}").unwrap(), zipp_core::eval::VpttOptions::default());
        let e = parse::<Vec<String>>("[\"a\", 3]", "prompts").unwrap_err();
        assert_eq!(e.location().unwrap().field.as_deref(), Some("[1]"), "{e}");
    }
}
