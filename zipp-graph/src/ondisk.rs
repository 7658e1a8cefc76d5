//! Edge files → a PyTorch Geometric export folder in bounded memory: a graph larger than
//! RAM still builds (SPEC §6).
//!
//! [`build_on_disk`] reads the edge files of [`crate::io`] and writes exactly the folder
//! [`export_pyg`](crate::export::export_pyg) writes for the graph [`load_edges`] loads
//! from them — the same numbering, merging, snippets, errors and split, byte for byte —
//! without ever holding a per-row or per-edge array. It is a distribution sort in three
//! passes:
//!
//! 1. **Intern** (the loader's pass 1, shared code): user ids and community names are
//!    numbered exactly as [`load_edges`] numbers them, and each user's rows are counted
//!    with the memory they will take when sorted (below). Users are then cut into
//!    contiguous **ranges** whose rows fit [`OnDiskOptions::memory_budget_bytes`].
//! 2. **Distribute**: the files are read again and every row is appended, as a binary
//!    record (user, community, count, snippet), to the scratch file of its range's group
//!    — at most [`FANOUT`] files open; with more ranges than that a group's file is split
//!    again the same way before its ranges are sorted (so 64² ranges need one extra
//!    sequential pass over the scratch data, 64³ two).
//! 3. **Sort and write**: one range at a time, its records are placed in per-user slots
//!    (in input order), each user's slots sorted by community and duplicates merged as
//!    [`load_edges`] merges them (counts summed in input order, the first
//!    [`LoadOptions::max_snippets_per_edge`] snippets kept), the user's edges split with
//!    the stream of (seed, user) ([`crate::split`]), and streamed to the export's files.
//!    The `.npy` files get a provisional header that is rewritten in place with the final
//!    length at the end (numpy's header has room for it); `meta.json` is written last.
//!
//! ## Memory
//! The id maps as in [`crate::io`] (the names + ~80 bytes per user and per community) and
//! 16 bytes per user more (row counts and sort costs), plus the budget: a range of users
//! holds 16 bytes per user, 12 bytes per row and, with text, 8 bytes plus the text of every
//! row that has one (all of them, not only the kept ones: which are kept is only known once
//! the range is sorted). The scratch files' write buffers in pass 2 take a quarter of the
//! budget (4 KiB to 256 KiB each, [`FANOUT`] files). A **single user whose rows exceed the
//! budget** is a range of its own and is sorted in memory anyway: the budget is exceeded by
//! that user's rows, never refused; a budget of 0 makes every user a range. Scratch disk:
//! 16 bytes per row plus the rows' text, twice while a group is split again.
//!
//! Scratch files live in a fresh folder inside the output folder (or inside
//! [`OnDiskOptions::scratch_dir`]), removed when the build ends, whether it succeeded,
//! failed or was cancelled; a build that does not finish also removes the export files it
//! had started, and never leaves a `meta.json`. As with `export_pyg`, a build into a folder
//! holding an older export replaces it: the older `meta.json` is removed when pass 3 starts
//! (the edge files have then been read for the last time), the optional files this export
//! lacks (`community_x.npy`, `user_content.npy`, `edge_snippets.jsonl`) when it ends.
//! Community features can be added afterwards by importing the folder and exporting it
//! with them.
//!
//! ```
//! use zipp_graph::export::import_pyg;
//! use zipp_graph::ondisk::{build_on_disk, OnDiskOptions};
//! let dir = std::env::temp_dir().join(format!("zipp-ondisk-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let edges = dir.join("edges.csv");
//! std::fs::write(&edges, "user,community\nana,film\nbo,film\nana,film\nana,bread\n")?;
//! let options = OnDiskOptions { memory_budget_bytes: 64 << 20, ..OnDiskOptions::default() };
//! let stats = build_on_disk(&[edges], &options, &dir.join("export"))?;
//! assert_eq!((stats.load.users, stats.load.edges), (2, 3));
//! let (graph, _split, _, _) = import_pyg(&dir.join("export"))?;
//! assert_eq!(graph.weight(0), 2.0);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::cell::Cell;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;

use zipp_core::error::{Error, Result};

use crate::export::PygWriter;
use crate::graph::Community;
use crate::io::{
    changed, check_load, intern, scan, weight_overflow, LoadOptions, LoadProgress, LoadStats, PROGRESS_EVERY,
};
use crate::split::{split_user, Part, SplitOptions};

// The docs' links.
#[cfg(doc)]
use crate::io::load_edges;

/// The default [`OnDiskOptions::memory_budget_bytes`]: 1 GiB.
pub const DEFAULT_MEMORY_BUDGET: u64 = 1 << 30;

/// The most scratch files written at once; more ranges than this are split in levels.
pub const FANOUT: usize = 64;

/// A scratch record's fixed part: user, community, count, text length (4 bytes each).
const RECORD_HEADER: usize = 16;
/// Memory per user of a range being sorted: its slot offsets and write cursor.
const USER_BYTES: u64 = 16;
/// Memory per row of a range being sorted: community, count, snippet index.
const SLOT_BYTES: u64 = 12;
/// Memory per row with text, besides the text: its offset in the range's text.
const TEXT_BYTES: u64 = 8;
/// "No snippet" in a slot.
const NO_SNIPPET: u32 = u32::MAX;

/// How [`build_on_disk`] builds.
#[derive(Debug, Clone, PartialEq)]
pub struct OnDiskOptions {
    /// How the edge files are read: exactly as [`load_edges`] reads them.
    pub load: LoadOptions,
    /// The split written to `edge_split.npy` (seeded per (seed, user): the same as
    /// [`EdgeSplit::new`](crate::split::EdgeSplit::new) on the loaded graph); `None`: every
    /// edge in training ([`EdgeSplit::all_train`](crate::split::EdgeSplit::all_train)).
    pub split: Option<SplitOptions>,
    /// The memory the sort may use besides the id maps (module docs).
    pub memory_budget_bytes: u64,
    /// Where the scratch folder is made; `None`: inside the output folder.
    pub scratch_dir: Option<PathBuf>,
}

impl Default for OnDiskOptions {
    fn default() -> Self {
        OnDiskOptions {
            load: LoadOptions::default(),
            split: None,
            memory_budget_bytes: DEFAULT_MEMORY_BUDGET,
            scratch_dir: None,
        }
    }
}

/// What [`build_on_disk`] did.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct OnDiskStats {
    /// Rows, skipped rows, users, communities, edges and snippets, as [`load_edges`] counts
    /// them; `seconds` is the whole build.
    pub load: LoadStats,
    /// The ranges of users sorted one at a time.
    pub ranges: usize,
    /// The largest range's estimated memory (module docs), in bytes: above the budget only
    /// when one user's rows are.
    pub largest_range_bytes: u64,
    /// Passes over the scratch data: 1, plus one per level of splitting groups again.
    pub levels: usize,
    /// Bytes written to scratch files, over all levels.
    pub scratch_bytes: u64,
}

/// [`build_on_disk_with_progress`] without a callback.
pub fn build_on_disk(paths: &[PathBuf], options: &OnDiskOptions, out: &Path) -> Result<OnDiskStats> {
    build_on_disk_with_progress(paths, options, out, &|_| true)
}

/// Builds the export of the graph in `paths` into the folder `out` (module docs), calling
/// `progress` every [`PROGRESS_EVERY`] rows of each of the three passes and at the end of
/// each (pass 3 counts the rows sorted so far); when it returns `false` the build stops with
/// [`Error::Cancelled`], leaving no scratch file and no half-written export (an older export
/// in `out` survives a build cancelled before pass 3).
pub fn build_on_disk_with_progress(
    paths: &[PathBuf],
    options: &OnDiskOptions,
    out: &Path,
    progress: &dyn Fn(LoadProgress) -> bool,
) -> Result<OnDiskStats> {
    let started = Instant::now();
    let formats = check_load(paths, &options.load)?;
    if let Some(split) = &options.split {
        split.check()?;
    }
    let keep = options.load.max_snippets_per_edge;
    let budget = options.memory_budget_bytes;
    let mut stats = OnDiskStats::default();

    // Pass 1: the loader's, plus each user's rows with text and their bytes.
    let mut text_rows: Vec<u64> = Vec::new();
    let mut text_bytes: Vec<u64> = Vec::new();
    let mut interned = intern(paths, &formats, &options.load, 3, progress, &mut stats.load, |u, row| {
        if u as usize == text_rows.len() {
            text_rows.push(0);
            text_bytes.push(0);
        }
        if let (Some(text), true) = (&row.text, keep > 0) {
            text_rows[u as usize] += 1;
            text_bytes[u as usize] += text.len() as u64;
        }
    })?;
    let user_rows = std::mem::take(&mut interned.user_rows);
    let users = user_rows.len();
    let any_text = text_rows.iter().any(|&n| n > 0);

    // Contiguous ranges of users within the budget; a user over it alone. Each range's
    // text, to size its buffers exactly.
    let cost = |u: usize| USER_BYTES + SLOT_BYTES * user_rows[u] as u64 + TEXT_BYTES * text_rows[u] + text_bytes[u];
    let mut bounds = vec![0usize];
    let mut range_text = Vec::new();
    let (mut acc, mut acc_text) = (0u64, (0u64, 0u64));
    for u in 0..users {
        if acc > 0 && acc.saturating_add(cost(u)) > budget {
            stats.largest_range_bytes = stats.largest_range_bytes.max(acc);
            bounds.push(u);
            range_text.push(acc_text);
            (acc, acc_text) = (0, (0, 0));
        }
        acc = acc.saturating_add(cost(u));
        acc_text = (acc_text.0 + text_rows[u], acc_text.1 + text_bytes[u]);
    }
    if users > 0 {
        stats.largest_range_bytes = stats.largest_range_bytes.max(acc);
        bounds.push(users);
        range_text.push(acc_text);
    }
    drop((text_rows, text_bytes));
    let ranges = bounds.len() - 1;
    stats.ranges = ranges;

    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let scratch = Scratch::create(options.scratch_dir.as_deref().unwrap_or(out))?;
    let buffer = (budget / 4 / FANOUT as u64).clamp(4 << 10, 256 << 10) as usize;

    // Pass 2: every row to its group's scratch file, in input order.
    let top = groups(0..ranges);
    let mut files = top.iter().map(|_| scratch.file(buffer)).collect::<Result<Vec<_>>>()?;
    let chunk = ranges.div_ceil(FANOUT).max(1);
    let (user_index, community_index) = (&interned.user_index, &interned.community_index);
    let mut record = Vec::new();
    let (rows2, skipped2) = scan(
        paths,
        &formats,
        options.load.skip_bad_rows,
        (2, 3),
        progress,
        |_| {},
        |path, row| {
            let (Some(&u), Some(&c)) = (user_index.get(row.user.as_str()), community_index.get(row.community.as_str()))
            else {
                return Err(changed(path));
            };
            let text = row.text.as_deref().filter(|_| keep > 0).unwrap_or("");
            encode(&mut record, u, c, row.count, text.as_bytes());
            let range = bounds.partition_point(|&b| b <= u as usize) - 1;
            files[range / chunk].write(&record)
        },
    )?;
    if rows2 != stats.load.rows_read || skipped2 != stats.load.rows_skipped {
        return Err(changed(&paths[0]));
    }
    let mut todo = Vec::with_capacity(top.len());
    for (file, group) in files.into_iter().zip(top) {
        stats.scratch_bytes += file.bytes;
        todo.push((file.finish()?, group));
    }
    let (user_names, communities) = interned.into_names();

    // Pass 3: one range at a time, in user order, into the export.
    let mut build = Build {
        bounds: &bounds,
        range_text: &range_text,
        user_rows: &user_rows,
        user_names: &user_names,
        communities: &communities,
        keep,
        split: options.split,
        scratch: &scratch,
        buffer,
        progress,
        first_path: &paths[0],
        writer: PygWriter::create(out, users, any_text)?,
        rows: 0,
        read: 0,
        snippets: 0,
        scratch_bytes: 0,
        levels: 1,
    };
    for (file, group) in todo {
        build.group(file, group, 1)?;
    }
    if !progress(LoadProgress { pass: 3, rows_read: build.rows }) {
        return Err(cancelled(build.rows));
    }
    let Build { writer, rows, snippets, scratch_bytes, levels, .. } = build;
    if rows != stats.load.rows_read - stats.load.rows_skipped {
        return Err(changed(&paths[0]));
    }
    stats.load.users = users;
    stats.load.communities = communities.len();
    stats.load.edges = writer.edges();
    stats.load.snippets = snippets;
    stats.scratch_bytes += scratch_bytes;
    stats.levels = levels;
    writer.finish(&communities, None, None)?;
    drop(scratch);
    stats.load.seconds = started.elapsed().as_secs_f64();
    Ok(stats)
}

fn cancelled(rows: u64) -> Error {
    Error::Cancelled(format!("building the graph on disk: cancelled in pass 3 of 3 after {rows} rows"))
}

/// `ranges` cut into at most [`FANOUT`] contiguous groups of (nearly) equal length.
fn groups(ranges: Range<usize>) -> Vec<Range<usize>> {
    let chunk = ranges.len().div_ceil(FANOUT).max(1);
    (ranges.start..ranges.end).step_by(chunk).map(|s| s..(s + chunk).min(ranges.end)).collect()
}

/// A scratch record: user, community, count, text length (little-endian), text (UTF-8).
fn encode(out: &mut Vec<u8>, user: u32, community: u32, count: f32, text: &[u8]) {
    out.clear();
    out.extend_from_slice(&user.to_le_bytes());
    out.extend_from_slice(&community.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    // A snippet is at most MAX_SNIPPET_CHARS characters: far below 4 GiB.
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out.extend_from_slice(text);
}

/// One record read back: the header's fields; the text is in the caller's buffer.
struct Record {
    user: u32,
    community: u32,
    count: f32,
    text_len: usize,
}

/// Reads a scratch file's records in order.
struct RecordReader {
    path: PathBuf,
    inner: BufReader<File>,
}

impl RecordReader {
    fn open(path: &Path) -> Result<RecordReader> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        Ok(RecordReader { path: path.to_path_buf(), inner: BufReader::with_capacity(1 << 16, file) })
    }

    /// The next record, its text appended to `text`; `None` at the end.
    fn next(&mut self, text: &mut Vec<u8>) -> Result<Option<Record>> {
        let mut head = [0u8; RECORD_HEADER];
        match self.inner.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(Error::io(&self.path, e)),
        }
        let word = |i: usize| [head[i], head[i + 1], head[i + 2], head[i + 3]];
        let record = Record {
            user: u32::from_le_bytes(word(0)),
            community: u32::from_le_bytes(word(4)),
            count: f32::from_le_bytes(word(8)),
            text_len: u32::from_le_bytes(word(12)) as usize,
        };
        let start = text.len();
        text.resize(start + record.text_len, 0);
        self.inner.read_exact(&mut text[start..]).map_err(|e| Error::io(&self.path, e))?;
        Ok(Some(record))
    }
}

/// The build's scratch folder, removed with everything in it when dropped.
struct Scratch {
    dir: PathBuf,
    next: Cell<u64>,
}

impl Scratch {
    fn create(parent: &Path) -> Result<Scratch> {
        static BUILDS: AtomicU64 = AtomicU64::new(0);
        let n = BUILDS.fetch_add(1, Ordering::Relaxed);
        let dir = parent.join(format!(".zipp-build-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(Scratch { dir, next: Cell::new(0) })
    }

    fn file(&self, buffer: usize) -> Result<ScratchFile> {
        let n = self.next.get();
        self.next.set(n + 1);
        let path = self.dir.join(n.to_string());
        let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        Ok(ScratchFile { out: BufWriter::with_capacity(buffer, file), path, bytes: 0 })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A scratch file being written.
struct ScratchFile {
    path: PathBuf,
    out: BufWriter<File>,
    bytes: u64,
}

impl ScratchFile {
    fn write(&mut self, record: &[u8]) -> Result<()> {
        self.bytes += record.len() as u64;
        self.out.write_all(record).map_err(|e| Error::io(&self.path, e))
    }

    /// Flushes and closes it; its path.
    fn finish(self) -> Result<PathBuf> {
        self.out.into_inner().map_err(|e| Error::io(&self.path, e.into_error()))?;
        Ok(self.path)
    }
}

/// One row of a range being sorted.
#[derive(Debug, Clone, Copy)]
struct Slot {
    community: u32,
    count: f32,
    snippet: u32,
}

/// Pass 3's state.
struct Build<'a> {
    bounds: &'a [usize],
    /// Rows with text and their bytes, per range.
    range_text: &'a [(u64, u64)],
    user_rows: &'a [usize],
    user_names: &'a [String],
    communities: &'a [Community],
    keep: usize,
    split: Option<SplitOptions>,
    scratch: &'a Scratch,
    buffer: usize,
    progress: &'a dyn Fn(LoadProgress) -> bool,
    first_path: &'a Path,
    writer: PygWriter,
    /// Rows sorted so far.
    rows: u64,
    /// Records read from scratch so far.
    read: u64,
    snippets: usize,
    scratch_bytes: u64,
    levels: usize,
}

impl Build<'_> {
    /// Counts a record read from scratch: progress (and cancellation) every
    /// [`PROGRESS_EVERY`] of them.
    fn tick(&mut self) -> Result<()> {
        self.read += 1;
        if self.read.is_multiple_of(PROGRESS_EVERY) && !(self.progress)(LoadProgress { pass: 3, rows_read: self.rows })
        {
            return Err(cancelled(self.rows));
        }
        Ok(())
    }

    /// Sorts and writes the ranges `group` whose records are in `file` (at depth `level`),
    /// splitting the file again first when it holds more than one range.
    fn group(&mut self, file: PathBuf, group: Range<usize>, level: usize) -> Result<()> {
        if group.len() == 1 {
            return self.range(&file, group.start);
        }
        self.levels = self.levels.max(level + 1);
        let parts = groups(group.clone());
        let chunk = group.len().div_ceil(FANOUT).max(1);
        let mut files = parts.iter().map(|_| self.scratch.file(self.buffer)).collect::<Result<Vec<_>>>()?;
        let mut reader = RecordReader::open(&file)?;
        let mut record = Vec::new();
        let mut text = Vec::new();
        while let Some(r) = reader.next(&mut text)? {
            self.tick()?;
            let range = self.bounds.partition_point(|&b| b <= r.user as usize) - 1;
            if !group.contains(&range) {
                return Err(Error::Internal(format!("{}: a record of another range", file.display())));
            }
            encode(&mut record, r.user, r.community, r.count, &text);
            text.clear();
            files[(range - group.start) / chunk].write(&record)?;
        }
        drop(reader);
        std::fs::remove_file(&file).map_err(|e| Error::io(&file, e))?;
        let mut todo = Vec::with_capacity(parts.len());
        for (f, part) in files.into_iter().zip(parts) {
            self.scratch_bytes += f.bytes;
            todo.push((f.finish()?, part));
        }
        for (f, part) in todo {
            self.group(f, part, level + 1)?;
        }
        Ok(())
    }

    /// Sorts range `r` (its records in `file`, in input order) and writes its users.
    fn range(&mut self, file: &Path, r: usize) -> Result<()> {
        let users = self.bounds[r]..self.bounds[r + 1];
        let mut ptr = Vec::with_capacity(users.len() + 1);
        ptr.push(0usize);
        for u in users.clone() {
            ptr.push(ptr[ptr.len() - 1] + self.user_rows[u]);
        }
        let mut cursor = ptr[..users.len()].to_vec();
        let mut slots = vec![Slot { community: 0, count: 0.0, snippet: NO_SNIPPET }; ptr[users.len()]];
        let (text_rows, text_bytes) = self.range_text[r];
        let mut text: Vec<u8> = Vec::with_capacity(text_bytes as usize);
        let mut text_at: Vec<usize> = Vec::with_capacity(text_rows as usize + 1);
        text_at.push(0);
        let mut reader = RecordReader::open(file)?;
        while let Some(rec) = reader.next(&mut text)? {
            self.rows += 1;
            self.tick()?;
            let u = rec.user as usize;
            if !users.contains(&u) {
                return Err(Error::Internal(format!("{}: a record of another range", file.display())));
            }
            let i = u - users.start;
            // More rows than pass 1 counted: the files changed between the passes.
            if cursor[i] >= ptr[i + 1] {
                return Err(changed(self.first_path));
            }
            let mut snippet = NO_SNIPPET;
            if rec.text_len > 0 {
                snippet = u32::try_from(text_at.len() - 1)
                    .ok()
                    .filter(|&s| s != NO_SNIPPET)
                    .ok_or_else(|| Error::InvalidInput("more than 2^32 - 2 snippets in one range".into()))?;
                text_at.push(text.len());
            }
            slots[cursor[i]] = Slot { community: rec.community, count: rec.count, snippet };
            cursor[i] += 1;
        }
        drop(reader);
        if (0..users.len()).any(|i| cursor[i] != ptr[i + 1]) {
            return Err(changed(self.first_path));
        }
        drop(cursor);
        std::fs::remove_file(file).map_err(|e| Error::io(file, e))?;

        let snippet = |s: u32| -> Result<&str> {
            let bytes = &text[text_at[s as usize]..text_at[s as usize + 1]];
            std::str::from_utf8(bytes)
                .map_err(|_| Error::Internal(format!("{}: a snippet is not UTF-8", file.display())))
        };
        // One user's merged edges: community, weight, and their snippets in `kept`.
        let mut merged: Vec<(u32, f32, Range<usize>)> = Vec::new();
        let mut kept: Vec<&str> = Vec::new();
        let mut parts: Vec<Part> = Vec::new();
        let mut order = Vec::new();
        for (i, u) in users.enumerate() {
            let user = &mut slots[ptr[i]..ptr[i + 1]];
            // Stable: a pair's rows stay in input order, for its sum and its snippets.
            user.sort_by_key(|s| s.community);
            merged.clear();
            kept.clear();
            let mut j = 0;
            while j < user.len() {
                let c = user[j].community;
                let first = kept.len();
                let mut weight = 0f64;
                while j < user.len() && user[j].community == c {
                    weight += f64::from(user[j].count);
                    if user[j].snippet != NO_SNIPPET && kept.len() - first < self.keep {
                        kept.push(snippet(user[j].snippet)?);
                    }
                    j += 1;
                }
                let weight = weight as f32;
                if !weight.is_finite() {
                    return Err(weight_overflow(&self.user_names[u], &self.communities[c as usize].name));
                }
                merged.push((c, weight, first..kept.len()));
            }
            parts.clear();
            parts.resize(merged.len(), Part::Train);
            if let Some(options) = self.split {
                split_user(options, u, &mut parts, &mut order);
            }
            for ((c, weight, texts), &part) in merged.iter().zip(&parts) {
                self.writer.edge(*c, *weight, part, &kept[texts.clone()])?;
            }
            self.snippets += kept.len();
            self.writer.end_user(&self.user_names[u])?;
        }
        Ok(())
    }
}
