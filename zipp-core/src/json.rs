//! JSON parsing with located errors, shared by personas, requests, method specs, evaluation
//! configs and the bindings (which parse option objects with [`from_str`]).

use serde::de::DeserializeOwned;

use crate::error::{Error, Location, Result};

/// Parses one JSON value of type `T` from `json`, mapping serde errors onto [`Error::Parse`]
/// (syntax, truncation, trailing characters) or [`Error::Schema`] (well-formed JSON of the
/// wrong shape) located at `at` plus the line, column and field path serde reports.
pub fn parse<T: DeserializeOwned>(json: &str, at: &Location, what: &str) -> Result<T> {
    let mut de = serde_json::Deserializer::from_str(json);
    let value: T = match serde_path_to_error::deserialize(&mut de) {
        Ok(v) => v,
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            let location = Location {
                file: at.file.clone(),
                line: Some(inner.line()),
                column: Some(inner.column()),
                field: (path != "." && !path.is_empty()).then_some(path),
            };
            let location = match at.line {
                Some(l) => Location { line: Some(l), ..location },
                None => location,
            };
            let message = strip_position(&inner.to_string());
            return Err(match inner.classify() {
                serde_json::error::Category::Data => Error::Schema { location, message },
                _ => Error::Parse { location, message },
            });
        }
    };
    de.end().map_err(|e| Error::Parse {
        location: Location { line: at.line.or(Some(e.line())), column: Some(e.column()), ..at.clone() },
        message: format!("trailing characters after the {what}"),
    })?;
    Ok(value)
}

/// Deserializes `T` from an already parsed value; a shape error is [`Error::Schema`] whose
/// field path starts with `field` (`[3].prompt`).
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value, field: &str) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let joined = match (field.is_empty(), path.is_empty()) {
            (true, _) => path,
            (false, true) => field.to_string(),
            (false, false) => format!("{field}.{path}"),
        };
        let message = strip_position(&err.into_inner().to_string());
        Error::Schema {
            location: Location { field: (!joined.is_empty()).then_some(joined), ..Location::default() },
            message,
        }
    })
}

/// serde_json appends " at line L column C"; the location already carries that.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// Parses one JSON value of any deserialisable zipp type (`VpttOptions`, `SyntheticOptions`,
/// a list of prompts …) with zipp's located errors: malformed JSON is [`Error::Parse`], the
/// wrong shape [`Error::Schema`], each with line, column and field path. `what` names the
/// value in the trailing-characters message.
pub fn from_str<T: DeserializeOwned>(json: &str, what: &str) -> Result<T> {
    parse(json, &Location::default(), what)
}
