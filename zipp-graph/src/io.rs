//! Edge files → [`BipartiteGraph`], in bounded memory (SPEC §6); or, past memory, straight
//! to an export folder ([`crate::ondisk`]).
//!
//! An edge file is a table with **one row per interaction** of a user with a community — one
//! row per comment of a Reddit comment dump — in one of three encodings of the same table:
//!
//! | column      | JSONL value              | CSV column | Parquet column                                  | Reddit comment |
//! |-------------|--------------------------|------------|-------------------------------------------------|----------------|
//! | `user`      | string, required         | required   | `BYTE_ARRAY` (UTF-8), no nulls                  | `author`       |
//! | `community` | string, required         | required   | `BYTE_ARRAY` (UTF-8), no nulls                  | `subreddit`    |
//! | `count`     | number, optional         | optional   | `INT32`, `INT64`, `FLOAT` or `DOUBLE`, optional | left out: 1    |
//! | `text`      | string or null, optional | optional   | `BYTE_ARRAY` (UTF-8), nullable, optional        | `body`         |
//!
//! - **JSONL** (`.jsonl`): one object per line, `{"user": "u", "community": "c", "count": 3,
//!   "text": "…"}`; blank lines are skipped, any other key is an error.
//! - **CSV** (`.csv`): a header row naming exactly the columns present, in any order, then
//!   one record per row, RFC 4180 quoting (`"a, b"`, `"say ""hi"""`, newlines inside quotes);
//!   `\n` or `\r\n` line ends; blank lines are skipped. An unknown or repeated header name is
//!   an error.
//! - **Parquet** (`.parquet`): flat columns as in the table, read column by column in
//!   batches (uncompressed or brotli-compressed pages: see [`EdgeReader`]); any other column
//!   is an error.
//!
//! `count` (the weight: comments, ratings …) must be a positive finite number that fits an
//! `f32`; a missing one — key absent, JSON `null`, an empty CSV field, a parquet null — is 1.
//! `text` is a snippet of what the user wrote there, at most
//! [`MAX_SNIPPET_CHARS`] characters (longer is an error,
//! not cut); an empty or blank one is no snippet. User ids and community names are taken as
//! they are (no trimming): non-blank, no control characters, at most
//! [`MAX_ID_CHARS`] characters. Rows of the same (user,
//! community) pair are merged: counts summed, the first
//! [`LoadOptions::max_snippets_per_edge`] snippets kept in input order.
//!
//! An optional **communities file** (JSONL, `{"name": "…", "description": "…"}` per line,
//! `description` optional; [`read_communities`]) describes communities — for Reddit, a
//! subreddit's `display_name` and `public_description`. Listed communities are numbered
//! first, in file order, and stay nodes even without edges; communities seen only in edges
//! follow in order of first appearance, with an empty description. Users are numbered in
//! order of first appearance.
//!
//! From a Reddit comment dump (`[deleted]` would otherwise be one huge user, and long
//! comments are cut to the snippet limit):
//!
//! ```text
//! zstdcat RC_2023-01.zst | jq -c 'select(.author != "[deleted]")
//!   | {user: .author, community: .subreddit,
//!      text: (if .body == "[deleted]" or .body == "[removed]" then null else .body[:2000] end)}' > edges.jsonl
//! ```
//!
//! ## Errors
//! Every problem is an error located by file and line (JSONL, CSV: the line the record
//! starts on) and field, or by file, column and row for parquet (`row 17: …`, rows counted
//! from 1): malformed JSON is [`Error::Parse`], everything else [`Error::Schema`]. With
//! [`LoadOptions::skip_bad_rows`], a bad *row* is counted and skipped instead
//! ([`LoadStats::rows_skipped`], with the first few errors in [`LoadStats::skipped`]); a
//! problem with a whole file (unreadable, a bad CSV header, a missing parquet column, a
//! quoted CSV field that never ends) still fails the load.
//!
//! ## Memory
//! [`load_edges`] never holds one record per row: it reads the files twice. Pass 1 interns
//! user ids and community names (hash maps, O(nodes)) and counts each user's rows; pass 2
//! writes every row's (community, count, snippet id) — 12 bytes — into its user's slot range
//! of one preallocated array, then sorts and merges each user's slots in place. Peak memory
//! is about
//!
//! > the names + ~80 bytes per user and per community (hash maps, offsets)
//! > \+ **12 bytes per row**
//! > \+ with text: the kept snippets (their text + ~32 bytes each) and ~17–40 bytes per
//! > (user, community) pair that has text (its snippet counter: text past
//! > [`LoadOptions::max_snippets_per_edge`] is dropped as it is read, never stored)
//!
//! plus one line, CSV record or batch of 8,192 parquet rows; then, briefly, 8 bytes per
//! merged edge more while the slots become the graph, which itself holds 16 bytes per edge
//! (both CSRs and the weights), 8 per node, and with text 8 per edge and the snippets.
//! Measured on 2M generated rows (296k users, 20k communities, 1.93M pairs): 71 MB peak RSS
//! with `max_snippets_per_edge: 0`, 432 MB keeping all 2.0M snippets of ~110 characters;
//! 100M rows need ~1.2 GB of slots.
//!
//! When the rows, the graph or the snippets do not fit in memory, build the export folder
//! straight from the edge files instead: [`crate::ondisk::build_on_disk`] shares pass 1,
//! then sorts the rows through scratch files one range of users at a time, within a memory
//! budget of the caller's choosing (plus the id maps), and writes exactly the folder
//! [`crate::export::export_pyg`] writes for this loader's graph. On 20M generated rows (1M
//! users, 40k communities, 2M snippets) it peaked at 157 MiB under a 64 MiB budget where
//! loading and exporting peaked at 801 MiB, and took 48 s to their 62 s (BENCHMARKS.md,
//! "Building the graph on disk").
//!
//! ```
//! use zipp_graph::io::{load_edges, LoadOptions};
//! let dir = std::env::temp_dir().join(format!("zipp-io-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let path = dir.join("edges.csv");
//! std::fs::write(&path, "user,community,text\nalice,AnalogCommunity,\"grainy, warm\"\nalice,AnalogCommunity,\n")?;
//! let (graph, stats) = load_edges(&[path], &LoadOptions::default())?;
//! assert_eq!((graph.num_users(), graph.num_edges(), graph.weight(0)), (1, 1, 2.0));
//! assert_eq!(&*graph.snippets(0)[0], "grainy, warm");
//! assert_eq!(stats.rows_read, 2);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Instant;

use parquet::basic::{Compression, Type as PhysicalType};
use parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use parquet::data_type::{ByteArray, ByteArrayType, DataType, DoubleType, FloatType, Int32Type, Int64Type};
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde::{Deserialize, Serialize};

use zipp_core::error::{Error, Location, Result};

use crate::graph::{
    check_name, check_text, BipartiteGraph, Community, Csr, MAX_DESCRIPTION_CHARS, MAX_ID_CHARS, MAX_SNIPPETS_PER_EDGE,
    MAX_SNIPPET_CHARS,
};

/// The longest line (JSONL) or record (CSV, quoted newlines included) read, in bytes. A
/// valid row is far shorter (ids and snippets are capped); the cap keeps one damaged line
/// from filling memory.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// The progress callback is called every this many rows of each pass.
pub const PROGRESS_EVERY: u64 = 1 << 16;

/// How many skipped rows' errors [`LoadStats::skipped`] keeps.
pub const MAX_SKIPPED_REPORTED: usize = 10;

/// Parquet rows decoded per batch.
const READ_BATCH: usize = 8192;

/// "No snippet" in a slot.
const NO_SNIPPET: u32 = u32::MAX;

/// The encoding of an edge file (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeFormat {
    /// One JSON object per line (`.jsonl`).
    Jsonl,
    /// RFC 4180 CSV with a header row (`.csv`).
    Csv,
    /// Apache Parquet (`.parquet`).
    Parquet,
}

impl EdgeFormat {
    /// The format named by a path's extension (`.jsonl`, `.csv`, `.parquet`, any case).
    pub fn from_path(path: &Path) -> Result<EdgeFormat> {
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("jsonl") => Ok(EdgeFormat::Jsonl),
            Some("csv") => Ok(EdgeFormat::Csv),
            Some("parquet") => Ok(EdgeFormat::Parquet),
            _ => Err(Error::InvalidInput(format!(
                "{}: cannot tell the edge file format from the extension (expected .jsonl, .csv or .parquet; \
                 or name the format in the options)",
                path.display()
            ))),
        }
    }

    /// The usual extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            EdgeFormat::Jsonl => "jsonl",
            EdgeFormat::Csv => "csv",
            EdgeFormat::Parquet => "parquet",
        }
    }
}

/// How [`load_edges`] reads its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoadOptions {
    /// The format of every edge file; `None` tells each file's from its extension.
    pub format: Option<EdgeFormat>,
    /// A communities file (JSONL `{"name", "description"}`) giving descriptions.
    pub communities: Option<PathBuf>,
    /// Count and skip bad rows instead of failing on the first one.
    pub skip_bad_rows: bool,
    /// Snippets kept per (user, community) edge, the first in input order; 0 keeps no text
    /// at all (huge dumps). At most [`MAX_SNIPPETS_PER_EDGE`], which is the default.
    pub max_snippets_per_edge: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            format: None,
            communities: None,
            skip_bad_rows: false,
            max_snippets_per_edge: MAX_SNIPPETS_PER_EDGE,
        }
    }
}

/// What [`load_edges`] read.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct LoadStats {
    /// Rows read (good and bad), over all files; blank lines are not rows.
    pub rows_read: u64,
    /// Bad rows skipped ([`LoadOptions::skip_bad_rows`]).
    pub rows_skipped: u64,
    /// The first [`MAX_SKIPPED_REPORTED`] skipped rows' errors, each with its location.
    pub skipped: Vec<String>,
    /// Users in the graph.
    pub users: usize,
    /// Communities in the graph (with the listed ones without edges).
    pub communities: usize,
    /// Edges after merging duplicate (user, community) rows.
    pub edges: usize,
    /// Snippets kept.
    pub snippets: usize,
    /// Wall-clock seconds of the whole load.
    pub seconds: f64,
}

/// Where a load is, for the progress callback of [`load_edges_with_progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadProgress {
    /// 1 (interning ids) or 2 (placing rows); [`crate::ondisk`]'s build also has 3
    /// (sorting ranges of users and writing the export).
    pub pass: u8,
    /// Rows read so far in this pass, over all files (pass 3: rows sorted so far).
    pub rows_read: u64,
}

/// One parsed, checked row of an edge file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EdgeRow {
    /// The user id.
    pub user: String,
    /// The community name.
    pub community: String,
    /// The weight: positive and finite (1 when the row gives none).
    pub count: f32,
    /// What the user wrote; `None` when absent or blank.
    pub text: Option<String>,
    /// The row's number in its file, from 1 (blank lines not counted).
    pub row: u64,
    /// The file, and for JSONL and CSV the line the row starts on.
    pub location: Location,
}

/// Where a row is, for its errors.
struct RowAt<'a> {
    file: &'a Path,
    line: Option<usize>,
    row: u64,
}

impl RowAt<'_> {
    fn location(&self, field: Option<&str>) -> Location {
        Location {
            file: Some(self.file.to_path_buf()),
            line: self.line,
            column: None,
            field: field.map(str::to_string),
        }
    }

    /// A schema error at this row; parquet rows (no line) name the row in the message.
    fn error(&self, field: Option<&str>, message: impl Into<String>) -> Error {
        let message = message.into();
        let message = if self.line.is_none() { format!("row {}: {message}", self.row) } else { message };
        Error::schema(self.location(field), message)
    }

    /// Re-locates one of graph.rs's unlocated name / text checks.
    fn relocate(&self, field: &str, e: Error) -> Error {
        match e {
            Error::InvalidInput(m) => self.error(Some(field), m),
            other => other,
        }
    }
}

/// A reader's failure: a bad row (the reader goes on at the next row) or a bad file.
enum Fault {
    Row(Error),
    File(Error),
}

/// Checks one row's values and stores them in `out` (buffers reused).
fn accept(
    out: &mut EdgeRow,
    at: &RowAt,
    user: &str,
    community: &str,
    count: Option<f64>,
    text: Option<&str>,
) -> Result<()> {
    check_name("user id", user, MAX_ID_CHARS).map_err(|e| at.relocate("user", e))?;
    check_name("community name", community, MAX_ID_CHARS).map_err(|e| at.relocate("community", e))?;
    let count = match count {
        None => 1.0,
        Some(c) if !c.is_finite() || c <= 0.0 => {
            return Err(at.error(Some("count"), format!("count {c} is not a positive finite number")))
        }
        Some(c) => {
            let w = c as f32;
            if !w.is_finite() || w <= 0.0 {
                return Err(at.error(Some("count"), format!("count {c} does not fit a 32-bit float")));
            }
            w
        }
    };
    let text = text.filter(|t| !t.trim().is_empty());
    if let Some(t) = text {
        check_text("snippet", t, MAX_SNIPPET_CHARS).map_err(|e| at.relocate("text", e))?;
    }
    out.user.clear();
    out.user.push_str(user);
    out.community.clear();
    out.community.push_str(community);
    out.count = count;
    match (text, &mut out.text) {
        (None, slot) => *slot = None,
        (Some(t), Some(s)) => {
            s.clear();
            s.push_str(t);
        }
        (Some(t), slot) => *slot = Some(t.to_string()),
    }
    out.row = at.row;
    if out.location.file.as_deref().map(Path::as_os_str) != Some(at.file.as_os_str()) {
        out.location.file = Some(at.file.to_path_buf());
    }
    out.location.line = at.line;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Lines

/// How a bounded line read ended.
enum Line {
    Eof,
    /// The line (with its `\n`, if any) is in the buffer.
    Read,
    /// The line was longer than the limit: consumed, not kept.
    TooLong,
}

/// A file read line by line, at most a limit of bytes kept per line.
struct Lines {
    inner: BufReader<File>,
    first: bool,
}

impl Lines {
    fn open(path: &Path) -> Result<Lines> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        Ok(Lines { inner: BufReader::with_capacity(1 << 16, file), first: true })
    }

    fn read(&mut self, buf: &mut Vec<u8>, limit: usize) -> std::io::Result<Line> {
        buf.clear();
        let mut total = 0usize;
        let mut too_long = false;
        loop {
            let avail = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                break;
            }
            let (n, done) = match avail.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (avail.len(), false),
            };
            if !too_long {
                if buf.len() + n > limit {
                    too_long = true;
                    buf.clear();
                } else {
                    buf.extend_from_slice(&avail[..n]);
                }
            }
            total += n;
            self.inner.consume(n);
            if done {
                break;
            }
        }
        if self.first {
            self.first = false;
            if buf.starts_with(b"\xEF\xBB\xBF") {
                buf.drain(..3);
            }
        }
        Ok(match (total, too_long) {
            (0, _) => Line::Eof,
            (_, true) => Line::TooLong,
            _ => Line::Read,
        })
    }
}

// ---------------------------------------------------------------------------------------
// JSONL

/// The fast path: strings borrowed from the line when they hold no escapes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRow<'a> {
    #[serde(borrow)]
    user: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    community: std::borrow::Cow<'a, str>,
    #[serde(default)]
    count: Option<f64>,
    #[serde(default, borrow)]
    text: Option<std::borrow::Cow<'a, str>>,
}

/// The same record, owned: only parsed again to locate an error precisely.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // Only its parse errors are used.
struct JsonRowOwned {
    user: String,
    community: String,
    #[serde(default)]
    count: Option<f64>,
    #[serde(default)]
    text: Option<String>,
}

struct JsonlSource {
    lines: Lines,
    buf: Vec<u8>,
    line: usize,
    rows: u64,
}

impl JsonlSource {
    fn next_into(&mut self, path: &Path, out: &mut EdgeRow) -> Option<std::result::Result<(), Fault>> {
        loop {
            let read = match self.lines.read(&mut self.buf, MAX_LINE_BYTES) {
                Ok(r) => r,
                Err(e) => return Some(Err(Fault::File(Error::io(path, e)))),
            };
            self.line += 1;
            let at = RowAt { file: path, line: Some(self.line), row: self.rows + 1 };
            match read {
                Line::Eof => return None,
                Line::TooLong => {
                    self.rows += 1;
                    let msg = format!("line is longer than {MAX_LINE_BYTES} bytes");
                    return Some(Err(Fault::Row(at.error(None, msg))));
                }
                Line::Read if self.buf.iter().all(u8::is_ascii_whitespace) => continue,
                Line::Read => {}
            }
            self.rows += 1;
            // Without its line end, a record cut short reads as "EOF while parsing", at its
            // last column.
            let line = self.buf.strip_suffix(b"\n").unwrap_or(&self.buf);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let text = match std::str::from_utf8(line) {
                Ok(t) => t,
                Err(e) => {
                    return Some(Err(Fault::Row(Error::Parse {
                        location: at.location(None),
                        message: format!("line is not valid UTF-8 (byte {})", e.valid_up_to() + 1),
                    })))
                }
            };
            let result = match serde_json::from_str::<JsonRow>(text) {
                Ok(r) => accept(out, &at, &r.user, &r.community, r.count, r.text.as_deref()),
                Err(fast) => {
                    Err(match zipp_core::json::parse::<JsonRowOwned>(text, &at.location(None), "edge record") {
                        Err(e) => e,
                        Ok(_) => Error::Parse { location: at.location(None), message: fast.to_string() },
                    })
                }
            };
            return Some(result.map_err(Fault::Row));
        }
    }
}

// ---------------------------------------------------------------------------------------
// CSV

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    User,
    Community,
    Count,
    Text,
}

impl Column {
    fn name(self) -> &'static str {
        match self {
            Column::User => "user",
            Column::Community => "community",
            Column::Count => "count",
            Column::Text => "text",
        }
    }
}

/// A hand-written RFC 4180 reader (the `csv` crate is not in the build, and four columns
/// need ~100 lines): records as byte fields, split on ASCII bytes, so UTF-8 is checked per
/// field.
struct CsvSource {
    lines: Lines,
    header: Vec<Column>,
    buf: Vec<u8>,
    /// The current record's fields, concatenated; field `i` ends at `ends[i]`.
    fields: Vec<u8>,
    ends: Vec<usize>,
    line: usize,
    rows: u64,
}

/// Where the CSV state machine is inside a record.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CsvState {
    FieldStart,
    Unquoted,
    Quoted,
    /// A quote inside a quoted field: the end of the field or the first of a doubled quote.
    QuoteInQuoted,
}

impl CsvSource {
    fn open(path: &Path) -> Result<CsvSource> {
        let mut s = CsvSource {
            lines: Lines::open(path)?,
            header: Vec::new(),
            buf: Vec::new(),
            fields: Vec::new(),
            ends: Vec::new(),
            line: 0,
            rows: 0,
        };
        let start = match s.record(path) {
            None => {
                let at = Location { file: Some(path.to_path_buf()), ..Location::default() };
                return Err(Error::schema(
                    at,
                    "the file is empty: expected a header row naming user, community[, count][, text]",
                ));
            }
            Some(Ok(start)) => start,
            Some(Err(Fault::Row(e) | Fault::File(e))) => return Err(e),
        };
        let at = Location { file: Some(path.to_path_buf()), line: Some(start), ..Location::default() };
        let mut header = Vec::with_capacity(s.ends.len());
        for i in 0..s.ends.len() {
            let name = s.field(i);
            let column = match name {
                b"user" => Column::User,
                b"community" => Column::Community,
                b"count" => Column::Count,
                b"text" => Column::Text,
                other => {
                    let msg = format!(
                        "header column {} is `{}`: expected only user, community, count and text",
                        i + 1,
                        String::from_utf8_lossy(other)
                    );
                    return Err(Error::schema(at, msg));
                }
            };
            if header.contains(&column) {
                return Err(Error::schema(at, format!("header names column `{}` twice", column.name())));
            }
            header.push(column);
        }
        for required in [Column::User, Column::Community] {
            if !header.contains(&required) {
                let field = Location { field: Some(required.name().into()), ..at.clone() };
                return Err(Error::schema(field, format!("the header has no `{}` column", required.name())));
            }
        }
        s.header = header;
        Ok(s)
    }

    fn field(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.fields[start..self.ends[i]]
    }

    /// Reads the next non-blank record into `fields`; returns the line it starts on.
    fn record(&mut self, path: &Path) -> Option<std::result::Result<usize, Fault>> {
        self.fields.clear();
        self.ends.clear();
        let mut state = CsvState::FieldStart;
        let mut start = 0usize;
        let mut first_error: Option<Error> = None;
        let mut quote_line = 0usize;
        loop {
            let read = match self.lines.read(&mut self.buf, MAX_LINE_BYTES) {
                Ok(r) => r,
                Err(e) => return Some(Err(Fault::File(Error::io(path, e)))),
            };
            let in_record = !self.ends.is_empty() || state != CsvState::FieldStart || !self.fields.is_empty();
            let at_line = |line| Location { file: Some(path.to_path_buf()), line: Some(line), ..Location::default() };
            match read {
                Line::Eof if state == CsvState::Quoted => {
                    let msg = "a quoted field opened here never closes (the file ends inside it)";
                    return Some(Err(Fault::File(Error::schema(at_line(quote_line), msg))));
                }
                Line::Eof if !in_record => return None,
                Line::Eof => break,
                Line::TooLong => {
                    self.line += 1;
                    let msg = format!("line is longer than {MAX_LINE_BYTES} bytes");
                    if state == CsvState::Quoted {
                        // Inside quotes the record's end cannot be found again.
                        return Some(Err(Fault::File(Error::schema(at_line(self.line), msg))));
                    }
                    return Some(Err(Fault::Row(Error::schema(at_line(self.line), msg))));
                }
                Line::Read => {}
            }
            self.line += 1;
            if !in_record {
                start = self.line;
                if self.buf.iter().all(|&b| b == b'\n' || b == b'\r') {
                    continue;
                }
            }
            if self.fields.len() + self.buf.len() > MAX_LINE_BYTES {
                let msg = format!("record is longer than {MAX_LINE_BYTES} bytes");
                let fault = if state == CsvState::Quoted { Fault::File } else { Fault::Row };
                return Some(Err(fault(Error::schema(at_line(start), msg))));
            }
            let mut content: &[u8] = &self.buf;
            let mut ending: &[u8] = b"";
            if let Some(rest) = content.strip_suffix(b"\n") {
                let (c, e) = match rest.strip_suffix(b"\r") {
                    Some(c) => (c, &content[c.len()..]),
                    None => (rest, &content[rest.len()..]),
                };
                content = c;
                ending = e;
            }
            let line = self.line;
            let mut error = |message: &str| {
                if first_error.is_none() {
                    first_error = Some(Error::schema(at_line(line), message));
                }
            };
            for &b in content {
                state = match (state, b) {
                    (CsvState::FieldStart, b'"') => {
                        quote_line = line;
                        CsvState::Quoted
                    }
                    (CsvState::FieldStart | CsvState::Unquoted, b',') => {
                        self.ends.push(self.fields.len());
                        CsvState::FieldStart
                    }
                    (CsvState::Unquoted, b'"') => {
                        error("a quote inside an unquoted field (quote the whole field and double the quote)");
                        self.fields.push(b);
                        CsvState::Unquoted
                    }
                    (CsvState::FieldStart | CsvState::Unquoted, _) => {
                        self.fields.push(b);
                        CsvState::Unquoted
                    }
                    (CsvState::Quoted, b'"') => CsvState::QuoteInQuoted,
                    (CsvState::Quoted, _) => {
                        self.fields.push(b);
                        CsvState::Quoted
                    }
                    (CsvState::QuoteInQuoted, b'"') => {
                        self.fields.push(b'"');
                        CsvState::Quoted
                    }
                    (CsvState::QuoteInQuoted, b',') => {
                        self.ends.push(self.fields.len());
                        CsvState::FieldStart
                    }
                    (CsvState::QuoteInQuoted, _) => {
                        error("characters after the closing quote of a field");
                        self.fields.push(b);
                        CsvState::Unquoted
                    }
                };
            }
            if state == CsvState::Quoted {
                // A line break inside quotes is part of the field, as written.
                self.fields.extend_from_slice(ending);
                continue;
            }
            break;
        }
        self.ends.push(self.fields.len());
        match first_error {
            Some(e) => Some(Err(Fault::Row(e))),
            None => Some(Ok(start)),
        }
    }

    fn next_into(&mut self, path: &Path, out: &mut EdgeRow) -> Option<std::result::Result<(), Fault>> {
        let start = match self.record(path)? {
            Ok(start) => start,
            Err(fault) => {
                if matches!(fault, Fault::Row(_)) {
                    self.rows += 1;
                }
                return Some(Err(fault));
            }
        };
        self.rows += 1;
        let at = RowAt { file: path, line: Some(start), row: self.rows };
        if self.ends.len() != self.header.len() {
            let msg = format!("{} fields where the header has {}", self.ends.len(), self.header.len());
            return Some(Err(Fault::Row(at.error(None, msg))));
        }
        let (mut user, mut community, mut count, mut text) = ("", "", None, None);
        for (i, &column) in self.header.iter().enumerate() {
            let Ok(value) = std::str::from_utf8(self.field(i)) else {
                return Some(Err(Fault::Row(at.error(Some(column.name()), "value is not valid UTF-8"))));
            };
            match column {
                Column::User => user = value,
                Column::Community => community = value,
                Column::Text => text = Some(value),
                Column::Count => {
                    let v = value.trim();
                    if !v.is_empty() {
                        match v.parse::<f64>() {
                            Ok(c) => count = Some(c),
                            Err(_) => {
                                let msg = format!("count `{v}` is not a number");
                                return Some(Err(Fault::Row(at.error(Some("count"), msg))));
                            }
                        }
                    }
                }
            }
        }
        Some(accept(out, &at, user, community, count, text).map_err(Fault::Row))
    }
}

// ---------------------------------------------------------------------------------------
// Parquet

/// One column of the edge table in a parquet file.
struct ParquetColumn {
    index: usize,
    max_def: i16,
}

/// The current row group's column readers.
struct GroupReaders {
    user: ColumnReader,
    community: ColumnReader,
    count: Option<ColumnReader>,
    text: Option<ColumnReader>,
    rows_left: usize,
}

/// One decoded batch of rows.
#[derive(Default)]
struct Batch {
    user: Vec<Option<ByteArray>>,
    community: Vec<Option<ByteArray>>,
    count: Vec<Option<f64>>,
    text: Vec<Option<ByteArray>>,
    next: usize,
}

struct ParquetSource {
    reader: SerializedFileReader<File>,
    user: ParquetColumn,
    community: ParquetColumn,
    count: Option<ParquetColumn>,
    text: Option<ParquetColumn>,
    next_group: usize,
    group: Option<GroupReaders>,
    batch: Batch,
    rows: u64,
}

impl ParquetSource {
    fn open(path: &Path) -> Result<ParquetSource> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let at = |field: Option<&str>, message: String| {
            Error::schema(
                Location { file: Some(path.to_path_buf()), field: field.map(str::to_string), ..Location::default() },
                message,
            )
        };
        let reader = std::panic::catch_unwind(|| SerializedFileReader::new(file))
            .map_err(|p| at(None, format!("the parquet decoder failed: {}", zipp_core::error::panic_message(&*p))))?
            .map_err(|e| at(None, format!("not a readable parquet file: {e}")))?;
        let meta = reader.metadata();
        let schema = meta.file_metadata().schema_descr();
        let mut found: [Option<ParquetColumn>; 4] = [None, None, None, None];
        for (index, desc) in schema.columns().iter().enumerate() {
            let name = desc.path().string();
            let slot = match desc.path().parts() {
                [n] if n == "user" => 0,
                [n] if n == "community" => 1,
                [n] if n == "count" => 2,
                [n] if n == "text" => 3,
                _ => {
                    let msg =
                        format!("unexpected column `{name}`: an edge file has only user, community, count and text");
                    return Err(at(Some(&name), msg));
                }
            };
            if desc.max_rep_level() > 0 {
                return Err(at(Some(&name), format!("column `{name}` is repeated; expected one value per row")));
            }
            let physical = desc.physical_type();
            let ok = match slot {
                2 => matches!(
                    physical,
                    PhysicalType::INT32 | PhysicalType::INT64 | PhysicalType::FLOAT | PhysicalType::DOUBLE
                ),
                _ => physical == PhysicalType::BYTE_ARRAY,
            };
            if !ok {
                let expected = if slot == 2 { "integers or floats" } else { "UTF-8 strings (BYTE_ARRAY)" };
                return Err(at(Some(&name), format!("column `{name}` holds {physical:?}, expected {expected}")));
            }
            found[slot] = Some(ParquetColumn { index, max_def: desc.max_def_level() });
        }
        let [user, community, count, text] = found;
        let (user, community) = match (user, community) {
            (Some(u), Some(c)) => (u, c),
            (None, _) => return Err(at(Some("user"), "missing column `user`".into())),
            (_, None) => return Err(at(Some("community"), "missing column `community`".into())),
        };
        // Only these codecs are compiled in: say so up front, not as a decoder error.
        let wanted: Vec<usize> = [Some(&user), Some(&community), count.as_ref(), text.as_ref()]
            .into_iter()
            .flatten()
            .map(|c| c.index)
            .collect();
        for g in 0..meta.num_row_groups() {
            for &i in &wanted {
                let chunk = meta.row_group(g).column(i);
                let codec = chunk.compression();
                if !matches!(codec, Compression::UNCOMPRESSED | Compression::BROTLI(_)) {
                    let name = chunk.column_path().string();
                    let msg = format!(
                        "column `{name}` is compressed with {codec}: this build reads uncompressed and brotli \
                         parquet only (rewrite it, e.g. pandas `to_parquet(..., compression=\"brotli\")`)"
                    );
                    return Err(at(Some(&name), msg));
                }
            }
        }
        Ok(ParquetSource {
            reader,
            user,
            community,
            count,
            text,
            next_group: 0,
            group: None,
            batch: Batch::default(),
            rows: 0,
        })
    }

    /// Decodes the next batch; `Ok(false)` at the end of the file.
    fn fill(&mut self, path: &Path) -> std::result::Result<bool, Error> {
        let fail = |m: String| {
            Error::schema(
                Location { file: Some(path.to_path_buf()), ..Location::default() },
                format!("unreadable parquet data: {m}"),
            )
        };
        loop {
            if self.group.as_ref().is_some_and(|g| g.rows_left > 0) {
                break;
            }
            if self.next_group >= self.reader.num_row_groups() {
                return Ok(false);
            }
            let g = self.next_group;
            self.next_group += 1;
            let group = self.reader.get_row_group(g).map_err(|e| fail(e.to_string()))?;
            let rows = usize::try_from(group.metadata().num_rows())
                .map_err(|_| fail(format!("row group {g} has a negative row count")))?;
            let column = |c: &ParquetColumn| group.get_column_reader(c.index).map_err(|e| fail(e.to_string()));
            self.group = Some(GroupReaders {
                user: column(&self.user)?,
                community: column(&self.community)?,
                count: self.count.as_ref().map(column).transpose()?,
                text: self.text.as_ref().map(column).transpose()?,
                rows_left: rows,
            });
        }
        let Some(group) = self.group.as_mut() else { return Ok(false) };
        let want = group.rows_left.min(READ_BATCH);
        let batch = &mut self.batch;
        let (user, community) = (&self.user, &self.community);
        let (count, text) = (&self.count, &self.text);
        // The decoder is third-party code fed a possibly damaged file: a panic in it is a
        // bad file, not a crash.
        let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> std::result::Result<(), String> {
            strings(&mut group.user, want, user.max_def, &mut batch.user)?;
            strings(&mut group.community, want, community.max_def, &mut batch.community)?;
            match (&mut group.count, count) {
                (Some(r), Some(c)) => numbers(r, want, c.max_def, &mut batch.count)?,
                _ => {
                    batch.count.clear();
                    batch.count.resize(want, None);
                }
            }
            match (&mut group.text, text) {
                (Some(r), Some(c)) => strings(r, want, c.max_def, &mut batch.text)?,
                _ => {
                    batch.text.clear();
                    batch.text.resize(want, None);
                }
            }
            Ok(())
        }));
        match decoded {
            Ok(Ok(())) => {}
            Ok(Err(m)) => return Err(fail(m)),
            Err(p) => return Err(fail(format!("the decoder failed: {}", zipp_core::error::panic_message(&*p)))),
        }
        group.rows_left -= want;
        batch.next = 0;
        Ok(true)
    }

    fn next_into(&mut self, path: &Path, out: &mut EdgeRow) -> Option<std::result::Result<(), Fault>> {
        if self.batch.next >= self.batch.user.len() {
            match self.fill(path) {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => return Some(Err(Fault::File(e))),
            }
        }
        let i = self.batch.next;
        self.batch.next += 1;
        self.rows += 1;
        let at = RowAt { file: path, line: None, row: self.rows };
        let b = &self.batch;
        let result = (|| {
            fn text_of<'v>(v: &'v Option<ByteArray>, at: &RowAt, field: &str) -> Result<Option<&'v str>> {
                match v {
                    None => Ok(None),
                    Some(bytes) => std::str::from_utf8(bytes.data())
                        .map(Some)
                        .map_err(|_| at.error(Some(field), "value is not valid UTF-8")),
                }
            }
            let user =
                text_of(&b.user[i], &at, "user")?.ok_or_else(|| at.error(Some("user"), "user is missing (null)"))?;
            let community = text_of(&b.community[i], &at, "community")?
                .ok_or_else(|| at.error(Some("community"), "community is missing (null)"))?;
            let text = text_of(&b.text[i], &at, "text")?;
            accept(out, &at, user, community, b.count[i], text)
        })();
        Some(result.map_err(Fault::Row))
    }
}

/// Reads `want` rows of a string column into `out`, nulls as `None`.
fn strings(
    reader: &mut ColumnReader,
    want: usize,
    max_def: i16,
    out: &mut Vec<Option<ByteArray>>,
) -> std::result::Result<(), String> {
    match reader {
        ColumnReader::ByteArrayColumnReader(r) => read_chunk::<ByteArrayType>(r, want, max_def, out),
        _ => Err("a string column changed type between row groups".into()),
    }
}

/// Reads `want` rows of a numeric column into `out` as `f64`, nulls as `None`.
fn numbers(
    reader: &mut ColumnReader,
    want: usize,
    max_def: i16,
    out: &mut Vec<Option<f64>>,
) -> std::result::Result<(), String> {
    fn widen<T: DataType>(
        r: &mut ColumnReaderImpl<T>,
        want: usize,
        max_def: i16,
        out: &mut Vec<Option<f64>>,
        f: impl Fn(T::T) -> f64,
    ) -> std::result::Result<(), String> {
        let mut raw = Vec::new();
        read_chunk::<T>(r, want, max_def, &mut raw)?;
        out.clear();
        out.extend(raw.into_iter().map(|v| v.map(&f)));
        Ok(())
    }
    match reader {
        ColumnReader::Int32ColumnReader(r) => widen::<Int32Type>(r, want, max_def, out, f64::from),
        ColumnReader::Int64ColumnReader(r) => widen::<Int64Type>(r, want, max_def, out, |v| v as f64),
        ColumnReader::FloatColumnReader(r) => widen::<FloatType>(r, want, max_def, out, f64::from),
        ColumnReader::DoubleColumnReader(r) => widen::<DoubleType>(r, want, max_def, out, |v| v),
        _ => Err("the count column changed type between row groups".into()),
    }
}

/// Reads exactly `rows` values of one column chunk into `out`, nulls as `None`.
fn read_chunk<T: DataType>(
    reader: &mut ColumnReaderImpl<T>,
    rows: usize,
    max_def: i16,
    out: &mut Vec<Option<T::T>>,
) -> std::result::Result<(), String> {
    out.clear();
    let mut defs = Vec::new();
    let mut values = Vec::new();
    while out.len() < rows {
        defs.clear();
        values.clear();
        let want = rows - out.len();
        let (records, read, _) =
            reader.read_records(want, Some(&mut defs), None, &mut values).map_err(|e| e.to_string())?;
        if records == 0 {
            return Err(format!("a column chunk ends after {} of {rows} rows", out.len()));
        }
        if max_def == 0 {
            if read != records || values.len() != records {
                return Err(format!("{read} values for {records} rows"));
            }
            out.extend(values.drain(..).map(Some));
        } else {
            if defs.len() != records || values.len() != read || defs.iter().filter(|&&d| d == max_def).count() != read {
                return Err(format!("{read} values do not match the definition levels of {records} rows"));
            }
            let mut values = values.drain(..);
            out.extend(defs.iter().map(|&d| if d == max_def { values.next() } else { None }));
        }
    }
    if out.len() != rows {
        return Err(format!("{} rows where {rows} were expected", out.len()));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The reader

enum Source {
    Jsonl(JsonlSource),
    Csv(Box<CsvSource>),
    Parquet(Box<ParquetSource>),
}

/// A streaming reader of one edge file's rows, checked (module docs), in file order.
///
/// A bad row is an `Err` and reading goes on at the next row; a problem with the whole file
/// (I/O, unreadable parquet data, a CSV quoted field that never ends) is an `Err` after
/// which the reader ends and [`EdgeReader::failed`] is true. Memory: one line, one CSV
/// record or one batch of 8,192 parquet rows. Parquet pages must be uncompressed or
/// brotli-compressed (the only codec in the build; a snappy or zstd file is refused when
/// opened, naming the column and codec).
pub struct EdgeReader {
    path: PathBuf,
    format: EdgeFormat,
    source: Source,
    failed: bool,
}

impl std::fmt::Debug for EdgeReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeReader")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl EdgeReader {
    /// Opens `path` in `format`, or the format of its extension when `None`. A CSV header
    /// and a parquet schema are checked here.
    pub fn open(path: &Path, format: Option<EdgeFormat>) -> Result<EdgeReader> {
        let format = match format {
            Some(f) => f,
            None => EdgeFormat::from_path(path)?,
        };
        let source = match format {
            EdgeFormat::Jsonl => {
                Source::Jsonl(JsonlSource { lines: Lines::open(path)?, buf: Vec::new(), line: 0, rows: 0 })
            }
            EdgeFormat::Csv => Source::Csv(Box::new(CsvSource::open(path)?)),
            EdgeFormat::Parquet => Source::Parquet(Box::new(ParquetSource::open(path)?)),
        };
        Ok(EdgeReader { path: path.to_path_buf(), format, source, failed: false })
    }

    /// The file read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its format.
    pub fn format(&self) -> EdgeFormat {
        self.format
    }

    /// Whether the last error was about the whole file (the reader has ended), not one row.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// The next row, written into `row` (its buffers reused: no allocation per row once
    /// they are large enough); `None` at the end. The iterator is this plus a clone.
    pub fn next_into(&mut self, row: &mut EdgeRow) -> Option<Result<()>> {
        if self.failed {
            return None;
        }
        let next = match &mut self.source {
            Source::Jsonl(s) => s.next_into(&self.path, row),
            Source::Csv(s) => s.next_into(&self.path, row),
            Source::Parquet(s) => s.next_into(&self.path, row),
        };
        match next? {
            Ok(()) => Some(Ok(())),
            Err(Fault::Row(e)) => Some(Err(e)),
            Err(Fault::File(e)) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

impl Iterator for EdgeReader {
    type Item = Result<EdgeRow>;

    fn next(&mut self) -> Option<Result<EdgeRow>> {
        let mut row = EdgeRow::default();
        self.next_into(&mut row).map(|r| r.map(|()| row))
    }
}

// ---------------------------------------------------------------------------------------
// Communities

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommunityRecord {
    name: String,
    #[serde(default)]
    description: Option<String>,
}

/// Reads a communities file: JSONL, one `{"name": "…", "description": "…"}` per line
/// (`description` optional), blank lines skipped. Names must be unique; errors are located
/// by line and field.
pub fn read_communities(path: &Path) -> Result<Vec<Community>> {
    let mut lines = Lines::open(path)?;
    let mut buf = Vec::new();
    let mut out: Vec<Community> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut line = 0usize;
    loop {
        let read = lines.read(&mut buf, MAX_LINE_BYTES).map_err(|e| Error::io(path, e))?;
        line += 1;
        let at = RowAt { file: path, line: Some(line), row: 0 };
        match read {
            Line::Eof => break,
            Line::TooLong => return Err(at.error(None, format!("line is longer than {MAX_LINE_BYTES} bytes"))),
            Line::Read if buf.iter().all(u8::is_ascii_whitespace) => continue,
            Line::Read => {}
        }
        let text = std::str::from_utf8(&buf).map_err(|e| Error::Parse {
            location: at.location(None),
            message: format!("line is not valid UTF-8 (byte {})", e.valid_up_to() + 1),
        })?;
        let record: CommunityRecord = zipp_core::json::parse(text, &at.location(None), "community record")?;
        let description = record.description.unwrap_or_default();
        check_name("community name", &record.name, MAX_ID_CHARS).map_err(|e| at.relocate("name", e))?;
        check_text("community description", &description, MAX_DESCRIPTION_CHARS)
            .map_err(|e| at.relocate("description", e))?;
        if let Some(first) = seen.insert(record.name.clone(), line) {
            return Err(at.error(
                Some("name"),
                format!("community {:?} is listed twice (lines {first} and {line})", record.name),
            ));
        }
        out.push(Community { name: record.name, description });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// The loader

/// One row's place in pass 2: community, count, snippet id (or [`NO_SNIPPET`]).
#[derive(Debug, Clone, Copy)]
struct Slot {
    community: u32,
    count: f32,
    snippet: u32,
}

/// Loads edge files into a graph in two passes (module docs); see
/// [`load_edges_with_progress`] for a progress callback and cancellation.
pub fn load_edges(paths: &[PathBuf], options: &LoadOptions) -> Result<(BipartiteGraph, LoadStats)> {
    load_edges_with_progress(paths, options, &|_| true)
}

/// The format of each file, after checking the options: the first thing every loader does.
pub(crate) fn check_load(paths: &[PathBuf], options: &LoadOptions) -> Result<Vec<EdgeFormat>> {
    if options.max_snippets_per_edge > MAX_SNIPPETS_PER_EDGE {
        return Err(Error::InvalidInput(format!(
            "max_snippets_per_edge {} is more than {MAX_SNIPPETS_PER_EDGE}",
            options.max_snippets_per_edge
        )));
    }
    if paths.is_empty() {
        return Err(Error::InvalidInput("no edge files to load".into()));
    }
    // Every format is known before any file is read.
    paths.iter().map(|p| options.format.map_or_else(|| EdgeFormat::from_path(p), Ok)).collect()
}

/// One pass over every row of `paths`, in order: `each` is called with every good row;
/// a bad row fails the pass, or with `skip_bad_rows` is counted and handed to `skipped`
/// (a bad file always fails). `progress` is called every [`PROGRESS_EVERY`] rows and at the
/// end (`false` cancels, the message saying pass `pass` of `passes`). Returns the rows read
/// and skipped.
pub(crate) fn scan(
    paths: &[PathBuf],
    formats: &[EdgeFormat],
    skip_bad_rows: bool,
    (pass, passes): (u8, u8),
    progress: &dyn Fn(LoadProgress) -> bool,
    mut skipped: impl FnMut(Error),
    mut each: impl FnMut(&Path, &EdgeRow) -> Result<()>,
) -> Result<(u64, u64)> {
    let mut row = EdgeRow::default();
    let (mut rows, mut bad) = (0u64, 0u64);
    for (path, &format) in paths.iter().zip(formats) {
        let mut reader = EdgeReader::open(path, Some(format))?;
        while let Some(next) = reader.next_into(&mut row) {
            rows += 1;
            if rows.is_multiple_of(PROGRESS_EVERY) && !progress(LoadProgress { pass, rows_read: rows }) {
                return Err(cancelled(pass, passes, rows));
            }
            match next {
                Ok(()) => each(path, &row)?,
                Err(e) if reader.failed() || !skip_bad_rows => return Err(e),
                Err(e) => {
                    bad += 1;
                    skipped(e);
                }
            }
        }
    }
    if !progress(LoadProgress { pass, rows_read: rows }) {
        return Err(cancelled(pass, passes, rows));
    }
    Ok((rows, bad))
}

/// What pass 1 found: users and communities numbered (module docs), each user's rows.
pub(crate) struct Interned {
    pub(crate) user_index: HashMap<String, u32>,
    pub(crate) user_rows: Vec<usize>,
    /// Descriptions; the names are in `community_index` until [`Interned::into_names`].
    pub(crate) communities: Vec<Community>,
    pub(crate) community_index: HashMap<String, u32>,
}

impl Interned {
    /// The user ids by index and the communities with their names, out of the maps.
    pub(crate) fn into_names(self) -> (Vec<String>, Vec<Community>) {
        let mut user_names = vec![String::new(); self.user_index.len()];
        for (name, u) in self.user_index {
            user_names[u as usize] = name;
        }
        let mut communities = self.communities;
        for (name, c) in self.community_index {
            communities[c as usize].name = name;
        }
        (user_names, communities)
    }
}

/// Pass 1: reads the communities file, interns ids, counts each user's rows (and calls
/// `each` with every good row and its user), fills `stats`' row counts and skipped errors.
pub(crate) fn intern(
    paths: &[PathBuf],
    formats: &[EdgeFormat],
    options: &LoadOptions,
    passes: u8,
    progress: &dyn Fn(LoadProgress) -> bool,
    stats: &mut LoadStats,
    mut each: impl FnMut(u32, &EdgeRow),
) -> Result<Interned> {
    let mut communities: Vec<Community> = Vec::new();
    let mut community_index: HashMap<String, u32> = HashMap::new();
    if let Some(path) = &options.communities {
        communities = read_communities(path)?;
        if communities.len() >= u32::MAX as usize {
            return Err(Error::InvalidInput("more than 2^32 - 2 communities".into()));
        }
        community_index = communities.iter().enumerate().map(|(i, c)| (c.name.clone(), i as u32)).collect();
        // The names live in the map until the end: one copy.
        for c in &mut communities {
            c.name = String::new();
        }
    }
    let mut user_index: HashMap<String, u32> = HashMap::new();
    let mut user_rows: Vec<usize> = Vec::new();
    let skipped = &mut stats.skipped;
    let (rows, bad) = scan(
        paths,
        formats,
        options.skip_bad_rows,
        (1, passes),
        progress,
        |e| {
            if skipped.len() < MAX_SKIPPED_REPORTED {
                skipped.push(e.to_string());
            }
        },
        |_, row| {
            let u = match user_index.get(row.user.as_str()) {
                Some(&u) => u,
                None => {
                    let u = u32::try_from(user_rows.len())
                        .ok()
                        .filter(|&u| u < u32::MAX)
                        .ok_or_else(|| Error::InvalidInput("more than 2^32 - 2 users".into()))?;
                    user_index.insert(row.user.clone(), u);
                    user_rows.push(0);
                    u
                }
            };
            if !community_index.contains_key(row.community.as_str()) {
                let c = u32::try_from(communities.len())
                    .ok()
                    .filter(|&c| c < u32::MAX)
                    .ok_or_else(|| Error::InvalidInput("more than 2^32 - 2 communities".into()))?;
                community_index.insert(row.community.clone(), c);
                communities.push(Community { name: String::new(), description: String::new() });
            }
            user_rows[u as usize] += 1;
            each(u, row);
            Ok(())
        },
    )?;
    stats.rows_read = rows;
    stats.rows_skipped = bad;
    Ok(Interned { user_index, user_rows, communities, community_index })
}

/// The error of edge files that read differently in a later pass.
pub(crate) fn changed(path: &Path) -> Error {
    Error::InvalidInput(format!("{}: the edge files changed while they were being loaded", path.display()))
}

/// The error of merged counts too large for the weight's `f32`.
pub(crate) fn weight_overflow(user: &str, community: &str) -> Error {
    Error::InvalidInput(format!(
        "the counts of user {user:?} in community {community:?} sum to more than a 32-bit float holds"
    ))
}

/// [`load_edges`], calling `progress` every [`PROGRESS_EVERY`] rows of each pass and at the
/// end of each; when it returns `false` the load stops with [`Error::Cancelled`].
pub fn load_edges_with_progress(
    paths: &[PathBuf],
    options: &LoadOptions,
    progress: &dyn Fn(LoadProgress) -> bool,
) -> Result<(BipartiteGraph, LoadStats)> {
    let started = Instant::now();
    let formats = check_load(paths, options)?;
    let mut stats = LoadStats::default();

    // Pass 1: intern ids, count each user's rows.
    let mut interned = intern(paths, &formats, options, 2, progress, &mut stats, |_, _| {})?;
    let mut user_rows = std::mem::take(&mut interned.user_rows);
    let (user_index, community_index) = (&interned.user_index, &interned.community_index);

    // Pass 2: place every row in its user's slot range. `ptr` becomes the user offsets;
    // `user_rows` is reused as each user's write cursor.
    let users = user_rows.len();
    let mut ptr = vec![0usize; users + 1];
    for u in 0..users {
        ptr[u + 1] = ptr[u] + user_rows[u];
        user_rows[u] = ptr[u];
    }
    let mut cursor = user_rows;
    let placed = ptr[users];
    let mut slots = vec![Slot { community: 0, count: 0.0, snippet: NO_SNIPPET }; placed];
    let keep = options.max_snippets_per_edge;
    let mut snippet_store: Vec<Option<Box<str>>> = Vec::new();
    // Snippets so far per (user, community) pair with text: past `keep`, text is dropped
    // as it is read, so memory grows with the kept snippets, not with the dump's text.
    let mut snippets_of_pair: HashMap<u64, u32> = HashMap::new();
    let (rows2, skipped2) = scan(
        paths,
        &formats,
        options.skip_bad_rows,
        (2, 2),
        progress,
        |_| {},
        |path, row| {
            let (Some(&u), Some(&c)) = (user_index.get(row.user.as_str()), community_index.get(row.community.as_str()))
            else {
                return Err(changed(path));
            };
            let u = u as usize;
            if cursor[u] >= ptr[u + 1] {
                return Err(changed(path));
            }
            let mut snippet = NO_SNIPPET;
            if let (Some(text), true) = (row.text.as_deref(), keep > 0) {
                let kept = snippets_of_pair.entry((u as u64) << 32 | u64::from(c)).or_insert(0);
                if (*kept as usize) < keep {
                    *kept += 1;
                    snippet = u32::try_from(snippet_store.len())
                        .ok()
                        .filter(|&s| s != NO_SNIPPET)
                        .ok_or_else(|| Error::InvalidInput("more than 2^32 - 2 snippets".into()))?;
                    snippet_store.push(Some(text.into()));
                }
            }
            slots[cursor[u]] = Slot { community: c, count: row.count, snippet };
            cursor[u] += 1;
            Ok(())
        },
    )?;
    if rows2 != stats.rows_read || skipped2 != stats.rows_skipped || (0..users).any(|u| cursor[u] != ptr[u + 1]) {
        return Err(changed(&paths[0]));
    }
    drop(cursor);
    drop(snippets_of_pair);
    let (user_names, communities) = interned.into_names();

    // Sort each user's slots by community (stable: snippets keep input order) and merge
    // duplicates, compacting in place: the write position never passes the read position.
    let any_text = !snippet_store.is_empty();
    let mut snippet_ptr = if any_text { vec![0usize] } else { Vec::new() };
    let mut snippets: Vec<Box<str>> = Vec::new();
    let mut write = 0usize;
    let mut start = 0usize;
    for u in 0..users {
        let end = ptr[u + 1];
        slots[start..end].sort_by_key(|s| s.community);
        let mut i = start;
        while i < end {
            let c = slots[i].community;
            let mut weight = 0f64;
            while i < end && slots[i].community == c {
                weight += f64::from(slots[i].count);
                if let Some(text) = snippet_store.get_mut(slots[i].snippet as usize).and_then(Option::take) {
                    snippets.push(text);
                }
                i += 1;
            }
            let weight = weight as f32;
            if !weight.is_finite() {
                return Err(weight_overflow(&user_names[u], &communities[c as usize].name));
            }
            slots[write] = Slot { community: c, count: weight, snippet: NO_SNIPPET };
            write += 1;
            if any_text {
                snippet_ptr.push(snippets.len());
            }
        }
        start = end;
        ptr[u + 1] = write;
    }
    drop(snippet_store);
    slots.truncate(write);
    slots.shrink_to_fit();
    let col: Vec<u32> = slots.iter().map(|s| s.community).collect();
    let weights: Vec<f32> = slots.iter().map(|s| s.count).collect();
    drop(slots);

    let graph = BipartiteGraph::from_parts(user_names, communities, Csr { ptr, col }, weights, snippet_ptr, snippets)?;
    stats.users = graph.num_users();
    stats.communities = graph.num_communities();
    stats.edges = graph.num_edges();
    stats.snippets = (0..graph.num_edges()).map(|e| graph.snippets(e).len()).sum();
    stats.seconds = started.elapsed().as_secs_f64();
    Ok((graph, stats))
}

fn cancelled(pass: u8, passes: u8, rows: u64) -> Error {
    Error::Cancelled(format!("loading edges: cancelled in pass {pass} of {passes} after {rows} rows"))
}
