//! The one error type of zipp-core.
//!
//! Every fallible call in the library returns [`Error`]. Its variants are *kinds*, each of
//! which maps 1:1 onto a C status code (zipp-ffi) and a Python exception class (zipp-py),
//! so the enum is `#[non_exhaustive]`: adding a kind is not a breaking change, and callers
//! matching on it keep a fallback arm.

use std::fmt;
use std::path::PathBuf;

/// Where in an input a problem was found: file, line (1-based, for JSONL the record's line),
/// column, and the field path inside the record (`memory[3].caption`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub field: Option<String>,
}

impl Location {
    pub fn field(field: impl Into<String>) -> Self {
        Location { field: Some(field.into()), ..Location::default() }
    }

    /// The same location, in `file` (kept if already set).
    pub fn in_file(mut self, file: Option<&std::path::Path>) -> Self {
        if self.file.is_none() {
            self.file = file.map(|f| f.to_path_buf());
        }
        self
    }

    /// The same location, at JSONL `line` (a line inside a record is made absolute).
    pub fn at_line(mut self, line: usize) -> Self {
        self.line = Some(line + self.line.map_or(0, |l| l.saturating_sub(1)));
        self
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(file) = &self.file {
            parts.push(file.display().to_string());
        }
        match (self.line, self.column) {
            (Some(l), Some(c)) => parts.push(format!("line {l}, column {c}")),
            (Some(l), None) => parts.push(format!("line {l}")),
            _ => {}
        }
        if let Some(field) = &self.field {
            parts.push(format!("field `{field}`"));
        }
        if parts.is_empty() {
            f.write_str("<input>")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// Every way a zipp-core call can fail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    /// The input is not well-formed JSON (syntax error or truncated input).
    #[error("{location}: malformed JSON: {message}")]
    Parse { location: Location, message: String },

    /// The input is well-formed but is not a valid persona (missing id, unknown field,
    /// unsupported schema version, duplicate id, empty caption …).
    #[error("{location}: {message}")]
    Schema { location: Location, message: String },

    /// An argument of a call is out of its domain (empty prompt, NaN temperature, a budget
    /// of zero, an embedder that does not match an index …).
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// A model file could not be found. `hint` says how to provision it.
    #[error("model `{model}` not found at {}: {hint}", path.display())]
    ModelNotFound { model: String, path: PathBuf, hint: String },

    /// A model file exists but is corrupt or does not match the expected architecture.
    #[error("model `{model}` at {} is unusable: {message}. {hint}", path.display())]
    ModelInvalid { model: String, path: PathBuf, message: String, hint: String },

    /// Tokenization failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),

    /// The numeric backend (candle) failed while running a model.
    #[error("compute backend: {0}")]
    Compute(String),
}

/// `Result` with zipp-core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Compute(e.to_string())
    }
}

impl Error {
    /// A short stable name of the kind, used by the bindings (`"schema"`, `"model_not_found"` …).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io",
            Error::Parse { .. } => "parse",
            Error::Schema { .. } => "schema",
            Error::InvalidInput(_) => "invalid_input",
            Error::ModelNotFound { .. } => "model_not_found",
            Error::ModelInvalid { .. } => "model_invalid",
            Error::Tokenizer(_) => "tokenizer",
            Error::Compute(_) => "compute",
        }
    }

    /// The location of a parse or schema error.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Error::Parse { location, .. } | Error::Schema { location, .. } => Some(location),
            _ => None,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    pub(crate) fn schema(location: Location, message: impl Into<String>) -> Self {
        Error::Schema { location, message: message.into() }
    }
}

/// The message of a caught panic's payload (`&str` or `String`; anything else is
/// "unknown panic"), for turning a panic at a boundary into an error.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_renders_every_part() {
        let loc = Location {
            file: Some("p.jsonl".into()),
            line: Some(4),
            column: Some(7),
            field: Some("memory[2].caption".into()),
        };
        assert_eq!(loc.to_string(), "p.jsonl, line 4, column 7, field `memory[2].caption`");
        assert_eq!(Location::default().to_string(), "<input>");
    }

    #[test]
    fn at_line_offsets_a_line_inside_a_record() {
        let inner = Location { line: Some(1), ..Location::default() };
        assert_eq!(inner.at_line(10).line, Some(10));
        assert_eq!(Location::default().at_line(3).line, Some(3));
    }
}
