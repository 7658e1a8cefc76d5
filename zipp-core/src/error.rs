//! The one error type of zipp-core.
//!
//! Every fallible call in the library returns [`Error`]. Each variant is one [`ErrorKind`],
//! and each kind has a stable name and a stable numeric code: the C status of zipp-ffi *is*
//! the code and its name is `ZIPP_ERR_` + the upper-cased kind name, and zipp-py raises the
//! exception class registered for the kind name (`schema` → `SchemaError`). Both bindings
//! derive these from [`ErrorKind::ALL`], so a new kind is one edit here (the bindings' tests
//! then ask for its named constant and class). Both enums are `#[non_exhaustive]`: adding a
//! kind is not a breaking change, and callers matching on them keep a fallback arm.

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

    /// A bug in zipp: a contained panic, or state a panic left unusable (a poisoned lock).
    /// The library stays usable; the object involved may not be.
    #[error("internal error (a bug in zipp, please report it): {0}")]
    Internal(String),

    /// A remote model server (an OpenAI-compatible endpoint) could not be reached, timed out,
    /// refused the request (`status` is the HTTP status then), or answered something that is
    /// not a valid completion. `url` is the endpoint (never with credentials); the message
    /// never contains an API key.
    #[error("remote model server {url}: {message}")]
    Remote { url: String, status: Option<u16>, message: String },

    /// The caller cancelled a long computation (an image generation) before it finished; no
    /// result was produced.
    #[error("cancelled: {0}")]
    Cancelled(String),
}

/// The kind of an [`Error`]: a stable name (`"schema"`) and a stable numeric code (3).
///
/// Codes are part of the C ABI (they are zipp-ffi's status values) and never change or get
/// reused. 0 is success; 9 and 10 are taken by the C ABI's own statuses (`NULL_POINTER`,
/// `INVALID_UTF8`), which have no Rust error because Rust arguments cannot be NULL or
/// invalid UTF-8. A new kind takes the next free code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i32)]
#[non_exhaustive]
pub enum ErrorKind {
    Io = 1,
    Parse = 2,
    Schema = 3,
    InvalidInput = 4,
    ModelNotFound = 5,
    ModelInvalid = 6,
    Tokenizer = 7,
    Compute = 8,
    Internal = 11,
    Remote = 12,
    Cancelled = 13,
}

impl ErrorKind {
    /// Every kind, in code order.
    pub const ALL: &'static [ErrorKind] = &[
        ErrorKind::Io,
        ErrorKind::Parse,
        ErrorKind::Schema,
        ErrorKind::InvalidInput,
        ErrorKind::ModelNotFound,
        ErrorKind::ModelInvalid,
        ErrorKind::Tokenizer,
        ErrorKind::Compute,
        ErrorKind::Internal,
        ErrorKind::Remote,
        ErrorKind::Cancelled,
    ];

    /// The stable numeric code (the C status).
    pub const fn code(self) -> i32 {
        self as i32
    }

    /// The stable name (`"model_not_found"`): Python's `ZippError.kind`, C's status name
    /// upper-cased after `ZIPP_ERR_`.
    pub const fn name(self) -> &'static str {
        match self {
            ErrorKind::Io => "io",
            ErrorKind::Parse => "parse",
            ErrorKind::Schema => "schema",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::ModelNotFound => "model_not_found",
            ErrorKind::ModelInvalid => "model_invalid",
            ErrorKind::Tokenizer => "tokenizer",
            ErrorKind::Compute => "compute",
            ErrorKind::Internal => "internal",
            ErrorKind::Remote => "remote",
            ErrorKind::Cancelled => "cancelled",
        }
    }

    /// One line saying what the kind means (the bindings' docs use it).
    pub const fn description(self) -> &'static str {
        match self {
            ErrorKind::Io => "reading or writing a file failed",
            ErrorKind::Parse => "the input is not well-formed JSON",
            ErrorKind::Schema => "well-formed input of the wrong shape (unknown field, missing id, bad version)",
            ErrorKind::InvalidInput => {
                "an argument is out of its domain (empty prompt, k = 0, NaN, too small a buffer)"
            }
            ErrorKind::ModelNotFound => "a model file is missing; the message says how to provision it",
            ErrorKind::ModelInvalid => "a model file is corrupt or does not match the expected model",
            ErrorKind::Tokenizer => "tokenization failed",
            ErrorKind::Compute => "the numeric backend failed while running a model",
            ErrorKind::Internal => "a bug in zipp (a contained panic or a poisoned lock)",
            ErrorKind::Remote => {
                "a remote model server could not be reached, timed out, refused the request or answered garbage"
            }
            ErrorKind::Cancelled => "the caller cancelled the computation before it finished",
        }
    }

    /// The kind with this code, if any.
    pub fn from_code(code: i32) -> Option<ErrorKind> {
        ErrorKind::ALL.iter().copied().find(|k| k.code() == code)
    }

    /// The kind with this name, if any.
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.iter().copied().find(|k| k.name() == name)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `err.kind() == "schema"` reads well in tests and matches by the stable name.
impl PartialEq<&str> for ErrorKind {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

impl PartialEq<str> for ErrorKind {
    fn eq(&self, other: &str) -> bool {
        self.name() == other
    }
}

/// `Result` with zipp-core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Compute(e.to_string())
    }
}

impl Error {
    /// The kind of this error (its stable name and code).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { .. } => ErrorKind::Io,
            Error::Parse { .. } => ErrorKind::Parse,
            Error::Schema { .. } => ErrorKind::Schema,
            Error::InvalidInput(_) => ErrorKind::InvalidInput,
            Error::ModelNotFound { .. } => ErrorKind::ModelNotFound,
            Error::ModelInvalid { .. } => ErrorKind::ModelInvalid,
            Error::Tokenizer(_) => ErrorKind::Tokenizer,
            Error::Compute(_) => ErrorKind::Compute,
            Error::Internal(_) => ErrorKind::Internal,
            Error::Remote { .. } => ErrorKind::Remote,
            Error::Cancelled(_) => ErrorKind::Cancelled,
        }
    }

    /// The location of a parse or schema error.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Error::Parse { location, .. } | Error::Schema { location, .. } => Some(location),
            _ => None,
        }
    }

    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// An [`Error::Schema`] at `location`.
    pub fn schema(location: Location, message: impl Into<String>) -> Self {
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
    fn kinds_have_unique_stable_codes_and_names() {
        // The codes are the C ABI: pinned here so a renumbering fails loudly.
        let pinned: Vec<(i32, &str)> = ErrorKind::ALL.iter().map(|k| (k.code(), k.name())).collect();
        assert_eq!(
            pinned,
            [
                (1, "io"),
                (2, "parse"),
                (3, "schema"),
                (4, "invalid_input"),
                (5, "model_not_found"),
                (6, "model_invalid"),
                (7, "tokenizer"),
                (8, "compute"),
                (11, "internal"),
                (12, "remote"),
                (13, "cancelled"),
            ]
        );
        for k in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_code(k.code()), Some(*k));
            assert_eq!(ErrorKind::from_name(k.name()), Some(*k));
            assert!(!k.description().is_empty());
        }
        for reserved in [0, 9, 10] {
            assert_eq!(ErrorKind::from_code(reserved), None, "code {reserved} belongs to C");
        }
        assert_eq!(Error::Internal("x".into()).kind(), "internal");
        assert_eq!(Error::InvalidInput("x".into()).kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn at_line_offsets_a_line_inside_a_record() {
        let inner = Location { line: Some(1), ..Location::default() };
        assert_eq!(inner.at_line(10).line, Some(10));
        assert_eq!(Location::default().at_line(3).line, Some(3));
    }
}
