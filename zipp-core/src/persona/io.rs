//! JSON / JSONL reading and writing with located errors.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use super::Persona;
use crate::error::{Error, Location, Result};

pub(crate) fn read_to_string(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    String::from_utf8(bytes).map_err(|e| Error::Parse {
        location: Location { file: Some(path.to_path_buf()), ..Location::default() },
        message: format!("file is not valid UTF-8 (byte offset {})", e.utf8_error().valid_up_to()),
    })
}

/// Parses one persona object, mapping serde errors onto [`Error::Parse`] (syntax) or
/// [`Error::Schema`] (well-formed JSON of the wrong shape), then validates it.
pub(crate) fn parse_one(json: &str, at: &Location) -> Result<Persona> {
    let persona: Persona = match crate::json::parse(json, at, "persona object") {
        Ok(p) => p,
        // A newer file may carry fields this build does not know: say "unsupported
        // version", not "unknown field". Only failed parses pay for this second look.
        Err(e @ Error::Schema { .. }) => {
            return Err(match foreign_version(json) {
                Some(v) => Error::schema(
                    Location { field: Some("schema_version".into()), ..at.clone() },
                    format!("unsupported schema version {v} (this build reads version {})", super::SCHEMA_VERSION),
                ),
                None => e,
            })
        }
        Err(e) => return Err(e),
    };
    persona.validate().map_err(|e| match e {
        Error::Schema { location, message } => {
            Error::Schema { location: Location { file: at.file.clone(), line: at.line, ..location }, message }
        }
        other => other,
    })?;
    Ok(persona)
}

/// The `schema_version` of a JSON object when it is readable and not this build's.
fn foreign_version(json: &str) -> Option<u32> {
    #[derive(serde::Deserialize)]
    struct VersionProbe {
        schema_version: Option<u32>,
    }
    let v = serde_json::from_str::<VersionProbe>(json).ok()?.schema_version?;
    (v != super::SCHEMA_VERSION).then_some(v)
}

/// A streaming JSONL persona reader: one persona per non-blank line, validated, with
/// duplicate ids across the stream reported at the line of the second occurrence.
/// Memory stays bounded by one line plus the set of ids seen.
pub struct JsonlReader<R> {
    reader: R,
    file: Option<PathBuf>,
    line_no: usize,
    seen: HashSet<String>,
    buf: String,
    failed: bool,
}

impl<R: BufRead> JsonlReader<R> {
    pub fn new(reader: R, file: Option<&Path>) -> Self {
        JsonlReader {
            reader,
            file: file.map(Path::to_path_buf),
            line_no: 0,
            seen: HashSet::new(),
            buf: String::new(),
            failed: false,
        }
    }
}

impl JsonlReader<std::io::BufReader<std::fs::File>> {
    /// Opens a `.jsonl` file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        Ok(JsonlReader::new(std::io::BufReader::new(f), Some(path)))
    }
}

impl<R: BufRead> Iterator for JsonlReader<R> {
    type Item = Result<Persona>;

    fn next(&mut self) -> Option<Result<Persona>> {
        if self.failed {
            return None;
        }
        loop {
            self.buf.clear();
            self.line_no += 1;
            let at = Location { file: self.file.clone(), line: Some(self.line_no), ..Location::default() };
            match self.reader.read_line(&mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => {
                    self.failed = true;
                    let err = if e.kind() == std::io::ErrorKind::InvalidData {
                        Error::Parse { location: at, message: "line is not valid UTF-8".into() }
                    } else {
                        Error::io(self.file.clone().unwrap_or_else(|| "<stream>".into()), e)
                    };
                    return Some(Err(err));
                }
            }
            if self.buf.trim().is_empty() {
                continue;
            }
            let result = parse_one(&self.buf, &at).and_then(|p| {
                if self.seen.insert(p.id.clone()) {
                    Ok(p)
                } else {
                    Err(Error::schema(
                        Location { field: Some("id".into()), ..at.clone() },
                        format!("duplicate persona id `{}`", p.id),
                    ))
                }
            });
            if result.is_err() {
                // A stream whose record failed is not resumed: the caller decides.
                self.failed = true;
            }
            return Some(result);
        }
    }
}

/// Reads a whole JSONL collection; the first bad record fails the read.
pub fn read_jsonl(path: impl AsRef<Path>) -> Result<Vec<Persona>> {
    JsonlReader::open(path)?.collect()
}

/// Writes personas as JSONL, validating each and rejecting duplicate ids.
pub fn write_jsonl<'a, W: Write>(mut out: W, personas: impl IntoIterator<Item = &'a Persona>) -> Result<()> {
    let mut seen = HashSet::new();
    for (i, p) in personas.into_iter().enumerate() {
        let line = p.to_json_string(false).map_err(|e| match e {
            Error::Schema { location, message } => {
                Error::Schema { location: Location { line: Some(i + 1), ..location }, message }
            }
            other => other,
        })?;
        if !seen.insert(p.id.clone()) {
            return Err(Error::schema(
                Location { line: Some(i + 1), field: Some("id".into()), ..Location::default() },
                format!("duplicate persona id `{}`", p.id),
            ));
        }
        writeln!(out, "{line}").map_err(|e| Error::io("<jsonl output>", e))?;
    }
    out.flush().map_err(|e| Error::io("<jsonl output>", e))
}
