//! The graph, its split and its features as files PyTorch Geometric reads (STYLE: PyG's
//! names are the lingua franca), and back.
//!
//! [`export_pyg`] writes one folder; every array is a `.npy` file (numpy format 1.0,
//! little-endian, C order, data 64-byte aligned), so numpy can memory-map it
//! (`np.load(path, mmap_mode="r")`):
//!
//! | file                  | dtype     | shape    | what |
//! |-----------------------|-----------|----------|------|
//! | `meta.json`           |           |          | `{"format": "zipp-graph", "version": 1, "num_users": U, "num_communities": S, "num_edges": E, "feature_dim": d or null, "content_dim": d2 or null, "has_snippets": bool}` (`has_snippets` may be absent: false) |
//! | `user_rowptr.npy`     | `int64`   | `[U + 1]`| CSR offsets users → communities (PyG's `rowptr`) |
//! | `user_col.npy`        | `int64`   | `[E]`    | the community of each edge (PyG's `col`), ascending within a user |
//! | `edge_weight.npy`     | `float32` | `[E]`    | the edge weights (counts) |
//! | `edge_split.npy`      | `uint8`   | `[E]`    | 0 train, 1 validation, 2 test ([`Part`] `as u8`) |
//! | `community_x.npy`     | `float32` | `[S, d]` | community features, when given |
//! | `user_content.npy`    | `float32` | `[U, d2]`| per-user content embeddings (ImageAlign), when given |
//! | `users.txt`           |           | U lines  | user ids, one per line (split on `\n` only: ids may hold U+2028) |
//! | `communities.jsonl`   |           | S lines  | `{"name", "description"}` per line — a communities file [`crate::io`] reads |
//! | `edge_snippets.jsonl` |           | E lines  | a JSON array of each edge's snippets, when any edge has one |
//!
//! Edge `e` in every per-edge file is edge `e` of [`BipartiteGraph::by_user`], so the
//! user of edge `e` is the row whose `rowptr` range holds `e`. An export over an old one
//! removes the optional files it does not write, and writes `meta.json` last (removing the
//! old one first), so a half-written folder never imports.
//!
//! In Python (`torch_geometric.data.HeteroData`):
//!
//! ```text
//! import json, numpy as np, torch
//! from torch_geometric.data import HeteroData
//! d = "graph-export"
//! meta = json.load(open(f"{d}/meta.json"))
//! rowptr = torch.from_numpy(np.load(f"{d}/user_rowptr.npy"))
//! col = torch.from_numpy(np.load(f"{d}/user_col.npy"))
//! row = torch.repeat_interleave(torch.arange(meta["num_users"]), rowptr.diff())
//! data = HeteroData()
//! data["user"].num_nodes = meta["num_users"]
//! data["community"].num_nodes = meta["num_communities"]
//! if meta["feature_dim"] is not None:
//!     data["community"].x = torch.from_numpy(np.load(f"{d}/community_x.npy"))
//! edges = data["user", "posts_in", "community"]
//! edges.edge_index = torch.stack([row, col])
//! edges.edge_weight = torch.from_numpy(np.load(f"{d}/edge_weight.npy"))
//! split = torch.from_numpy(np.load(f"{d}/edge_split.npy"))
//! edges.train_mask, edges.val_mask, edges.test_mask = split == 0, split == 1, split == 2
//! ```
//!
//! `bash benches/reference/pyg_round_trip.sh` checks the whole round trip on MovieLens 100K
//! (this export → PyG training → `Encoder::load` and persona mining, and zipp's weights
//! evaluated by PyG), failing unless both sides give the same embeddings and test metrics.
//!
//! [`import_pyg`] reads such a folder back, checking everything: a missing file is
//! [`Error::Io`] naming it; a wrong magic, dtype or shape, truncated or trailing data, a
//! value out of range or a count that disagrees with `meta.json` is [`Error::ModelInvalid`]
//! naming the file; a malformed JSON line is located by file and line.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use zipp_core::error::{Error, Location, Result};

use crate::graph::{BipartiteGraph, Community, Csr};
use crate::split::{EdgeSplit, Part};

/// The `format` of `meta.json`.
pub const FORMAT: &str = "zipp-graph";
/// The `version` of `meta.json` this build writes and reads.
pub const VERSION: u32 = 1;

const META: &str = "meta.json";
const USER_ROWPTR: &str = "user_rowptr.npy";
const USER_COL: &str = "user_col.npy";
const EDGE_WEIGHT: &str = "edge_weight.npy";
const EDGE_SPLIT: &str = "edge_split.npy";
const COMMUNITY_X: &str = "community_x.npy";
const USER_CONTENT: &str = "user_content.npy";
const USERS: &str = "users.txt";
const COMMUNITIES: &str = "communities.jsonl";
const EDGE_SNIPPETS: &str = "edge_snippets.jsonl";

/// The `model` an unusable export's error names, and how to fix it.
const EXPORT_MODEL: &str = "zipp-graph export";
const EXPORT_HINT: &str = "export it again with zipp_graph::export::export_pyg";
/// The same for a lone `.npy` file.
const NPY_MODEL: &str = "npy array";
const NPY_HINT: &str = "save it with numpy.save as little-endian float32 in C order";

/// A dense row-major `f32` matrix: one row of [`Features::dim`] values per node.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    rows: usize,
    dim: usize,
    data: Vec<f32>,
}

impl Features {
    /// Rows of `dim` values (`dim` > 0) from `data`, whose length must be a multiple of it.
    pub fn new(data: Vec<f32>, dim: usize) -> Result<Features> {
        if dim == 0 || !data.len().is_multiple_of(dim) {
            return Err(Error::InvalidInput(format!(
                "features: {} values do not make rows of {dim} (a positive dimension)",
                data.len()
            )));
        }
        Ok(Features { rows: data.len() / dim, dim, data })
    }

    /// Number of rows (nodes).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Values per row.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// All values, row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// The values, row-major.
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }
}

/// `meta.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Meta {
    format: String,
    version: u32,
    num_users: usize,
    num_communities: usize,
    num_edges: usize,
    feature_dim: Option<usize>,
    content_dim: Option<usize>,
    /// Not in the first drafts of the layout: absent means no `edge_snippets.jsonl`.
    #[serde(default)]
    has_snippets: bool,
}

#[derive(Serialize)]
struct CommunityLine<'a> {
    name: &'a str,
    description: &'a str,
}

/// Writes `graph`, its `split` and optional features (`(row-major values, dim)`:
/// `community_x` one row per community, `user_content` one per user) into `dir` (created if
/// needed) in the layout of the module docs.
pub fn export_pyg(
    graph: &BipartiteGraph,
    split: &EdgeSplit,
    community_x: Option<(&[f32], usize)>,
    user_content: Option<(&[f32], usize)>,
    dir: &Path,
) -> Result<()> {
    let (users, communities, edges) = (graph.num_users(), graph.num_communities(), graph.num_edges());
    if split.parts().len() != edges {
        return Err(Error::InvalidInput(format!("export: a split of {} edges for {edges}", split.parts().len())));
    }
    check_features("community_x", community_x, communities)?;
    check_features("user_content", user_content, users)?;
    let mut out = PygWriter::create(dir, users, graph.has_snippets())?;
    let csr = graph.by_user();
    for (u, name) in graph.users().iter().enumerate() {
        for e in csr.range(u) {
            out.edge(csr.col[e], graph.weights()[e], split.part(e), graph.snippets(e))?;
        }
        out.end_user(name)?;
    }
    out.finish(graph.communities(), community_x, user_content)
}

/// An export written one user at a time, in the layout of the module docs: the one writer
/// of that layout, used by [`export_pyg`] and by the on-disk build ([`crate::ondisk`]),
/// which never holds the per-edge arrays. The `.npy` files are streamed with a provisional
/// header whose first dimension is 0 and rewritten in place at the end: numpy pads the
/// header so that the first dimension can grow to 21 digits without moving the data, so the
/// final bytes are what `numpy.save` writes. `meta.json` of an older export is removed
/// when the writer is created and the new one written last, by [`PygWriter::finish`]; a
/// writer dropped before that removes the files it was writing.
pub(crate) struct PygWriter {
    dir: PathBuf,
    rowptr: NpyStream,
    col: NpyStream,
    weight: NpyStream,
    split: NpyStream,
    users: TextStream,
    snippets: Option<TextStream>,
    num_users: usize,
    users_written: usize,
    edges: usize,
    finished: bool,
}

impl PygWriter {
    /// Starts an export of `num_users` users into `dir` (created if needed), with
    /// `edge_snippets.jsonl` when `has_snippets` (some edge has a snippet).
    pub(crate) fn create(dir: &Path, num_users: usize, has_snippets: bool) -> Result<PygWriter> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        remove_if_present(&dir.join(META))?;
        let mut out = PygWriter {
            dir: dir.to_path_buf(),
            rowptr: NpyStream::create(&dir.join(USER_ROWPTR), Dtype::I8)?,
            col: NpyStream::create(&dir.join(USER_COL), Dtype::I8)?,
            weight: NpyStream::create(&dir.join(EDGE_WEIGHT), Dtype::F4)?,
            split: NpyStream::create(&dir.join(EDGE_SPLIT), Dtype::U1)?,
            users: TextStream::create(&dir.join(USERS))?,
            snippets: if has_snippets { Some(TextStream::create(&dir.join(EDGE_SNIPPETS))?) } else { None },
            num_users,
            users_written: 0,
            edges: 0,
            finished: false,
        };
        out.rowptr.push(0i64.to_le_bytes())?;
        Ok(out)
    }

    /// The next edge of the current user: communities ascending, weights positive.
    pub(crate) fn edge(&mut self, community: u32, weight: f32, part: Part, snippets: &[impl AsRef<str>]) -> Result<()> {
        if self.edges >= u32::MAX as usize {
            return Err(Error::InvalidInput(format!("graph: more than {} edges are not supported", u32::MAX)));
        }
        self.edges += 1;
        self.col.push(i64::from(community).to_le_bytes())?;
        self.weight.push(weight.to_le_bytes())?;
        self.split.push([part as u8])?;
        if let Some(out) = &mut self.snippets {
            // What serde_json writes for a `Vec<&str>`, without building one per edge.
            out.write(b"[")?;
            for (i, s) in snippets.iter().enumerate() {
                if i > 0 {
                    out.write(b",")?;
                }
                out.json(s.as_ref())?;
            }
            out.write(b"]\n")?;
        }
        Ok(())
    }

    /// Ends the current user, whose id is `name`.
    pub(crate) fn end_user(&mut self, name: &str) -> Result<()> {
        self.users_written += 1;
        self.rowptr.push((self.edges as i64).to_le_bytes())?;
        self.users.write(name.as_bytes())?;
        self.users.write(b"\n")
    }

    /// Edges written so far.
    pub(crate) fn edges(&self) -> usize {
        self.edges
    }

    /// Writes the communities and the optional features (checked by the caller), removes an
    /// older export's optional files this one lacks, fixes the `.npy` headers and writes
    /// `meta.json`.
    pub(crate) fn finish(
        mut self,
        communities: &[Community],
        community_x: Option<(&[f32], usize)>,
        user_content: Option<(&[f32], usize)>,
    ) -> Result<()> {
        if self.users_written != self.num_users {
            return Err(Error::Internal(format!(
                "export writer: {} users written of {}",
                self.users_written, self.num_users
            )));
        }
        let dir = self.dir.clone();
        self.rowptr.finish()?;
        self.col.finish()?;
        self.weight.finish()?;
        self.split.finish()?;
        self.users.finish()?;
        let has_snippets = self.snippets.is_some();
        match &mut self.snippets {
            Some(s) => s.finish()?,
            None => remove_if_present(&dir.join(EDGE_SNIPPETS))?,
        }
        for (name, features, rows) in
            [(COMMUNITY_X, community_x, communities.len()), (USER_CONTENT, user_content, self.num_users)]
        {
            let path = dir.join(name);
            match features {
                Some((data, dim)) => write_npy_f32(&path, &[rows, dim], data)?,
                None => remove_if_present(&path)?,
            }
        }
        write_text(&dir.join(COMMUNITIES), |out| {
            for c in communities {
                serde_json::to_writer(&mut *out, &CommunityLine { name: &c.name, description: &c.description })?;
                out.write_all(b"\n")?;
            }
            Ok(())
        })?;
        let meta = Meta {
            format: FORMAT.into(),
            version: VERSION,
            num_users: self.num_users,
            num_communities: communities.len(),
            num_edges: self.edges,
            feature_dim: community_x.map(|(_, d)| d),
            content_dim: user_content.map(|(_, d)| d),
            has_snippets,
        };
        // From here on the files are the export's: not removed when the writer drops.
        self.finished = true;
        write_text(&dir.join(META), |out| {
            serde_json::to_writer_pretty(&mut *out, &meta)?;
            out.write_all(b"\n")?;
            Ok(())
        })
    }
}

impl Drop for PygWriter {
    fn drop(&mut self) {
        if !self.finished {
            for name in [USER_ROWPTR, USER_COL, EDGE_WEIGHT, EDGE_SPLIT, USERS, EDGE_SNIPPETS] {
                let _ = std::fs::remove_file(self.dir.join(name));
            }
        }
    }
}

/// A text file written through a buffer, its errors naming it.
struct TextStream {
    path: PathBuf,
    out: Option<BufWriter<File>>,
}

impl TextStream {
    fn create(path: &Path) -> Result<TextStream> {
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        Ok(TextStream { path: path.to_path_buf(), out: Some(BufWriter::with_capacity(1 << 16, file)) })
    }

    /// The buffer and the path apart (written per element: no allocation per call).
    fn parts(&mut self) -> Result<(&mut BufWriter<File>, &Path)> {
        match &mut self.out {
            Some(out) => Ok((out, &self.path)),
            None => Err(Error::Internal(format!("{}: written after it was closed", self.path.display()))),
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let (out, path) = self.parts()?;
        out.write_all(bytes).map_err(|e| Error::io(path, e))
    }

    /// `text` as a JSON string.
    fn json(&mut self, text: &str) -> Result<()> {
        let (out, path) = self.parts()?;
        serde_json::to_writer(out, text).map_err(|e| Error::io(path, std::io::Error::other(e)))
    }

    fn finish(&mut self) -> Result<()> {
        let (out, path) = self.parts()?;
        out.flush().map_err(|e| Error::io(path, e))?;
        out.get_ref().sync_all().map_err(|e| Error::io(path, e))?;
        self.out = None;
        Ok(())
    }
}

/// A one-dimensional `.npy` file written element by element ([`PygWriter`]'s docs).
struct NpyStream {
    dtype: Dtype,
    count: usize,
    text: TextStream,
}

impl NpyStream {
    fn create(path: &Path, dtype: Dtype) -> Result<NpyStream> {
        let mut text = TextStream::create(path)?;
        text.write(&npy_header(path, dtype, &[0])?)?;
        Ok(NpyStream { dtype, count: 0, text })
    }

    fn push<const N: usize>(&mut self, value: [u8; N]) -> Result<()> {
        debug_assert_eq!(N, self.dtype.size());
        self.count += 1;
        self.text.write(&value)
    }

    /// Flushes the data and writes the header of the final length over the provisional one.
    fn finish(&mut self) -> Result<()> {
        let path = self.text.path.clone();
        let header = npy_header(&path, self.dtype, &[self.count])?;
        let (out, _) = self.text.parts()?;
        out.flush().map_err(|e| Error::io(&path, e))?;
        let file = out.get_mut();
        let provisional = npy_header(&path, self.dtype, &[0])?;
        if header.len() != provisional.len() {
            // numpy's padding leaves room for 21 digits; a `usize` has at most 20.
            return Err(Error::Internal(format!("{}: the npy header changed length", path.display())));
        }
        file.seek(SeekFrom::Start(0)).map_err(|e| Error::io(&path, e))?;
        file.write_all(&header).map_err(|e| Error::io(&path, e))?;
        self.text.finish()
    }
}

fn check_features(what: &str, features: Option<(&[f32], usize)>, rows: usize) -> Result<()> {
    let Some((data, dim)) = features else { return Ok(()) };
    if dim == 0 || Some(data.len()) != rows.checked_mul(dim) {
        return Err(Error::InvalidInput(format!(
            "export: {what} has {} values, expected {rows} rows of a positive dimension (given {dim})",
            data.len()
        )));
    }
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(Error::InvalidInput(format!(
            "export: {what} row {}, column {} is {} (features must be finite)",
            i / dim,
            i % dim,
            data[i]
        )));
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Writes a file through a buffer; `fill`'s JSON errors are I/O errors (JSON of strings
/// cannot otherwise fail).
fn write_text(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::result::Result<(), Box<dyn std::error::Error>>,
) -> Result<()> {
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let mut out = BufWriter::new(file);
    let io = |e: Box<dyn std::error::Error>| match e.downcast::<std::io::Error>() {
        Ok(e) => Error::io(path, *e),
        Err(e) => Error::io(path, std::io::Error::other(e.to_string())),
    };
    fill(&mut out).map_err(io)?;
    out.into_inner().map_err(|e| Error::io(path, e.into_error()))?.sync_all().map_err(|e| Error::io(path, e))
}

/// Reads a folder [`export_pyg`] wrote: the graph, the split, and the community features
/// and user content embeddings when the export has them. Everything is checked (module
/// docs).
pub fn import_pyg(dir: &Path) -> Result<(BipartiteGraph, EdgeSplit, Option<Features>, Option<Features>)> {
    let meta_path = dir.join(META);
    let bytes = std::fs::read(&meta_path).map_err(|e| Error::io(&meta_path, e))?;
    let at = Location { file: Some(meta_path.clone()), ..Location::default() };
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Error::Parse { location: at.clone(), message: "file is not valid UTF-8".into() })?;
    let meta: Meta = zipp_core::json::parse(text, &at, "meta object")?;
    if meta.format != FORMAT || meta.version != VERSION {
        return Err(unusable(
            &meta_path,
            format!(
                "format {:?} version {} (this build reads {FORMAT:?} version {VERSION})",
                meta.format, meta.version
            ),
        ));
    }
    let (users_n, communities_n, edges) = (meta.num_users, meta.num_communities, meta.num_edges);
    if edges > u32::MAX as usize || users_n > u32::MAX as usize || communities_n > u32::MAX as usize {
        return Err(unusable(&meta_path, "more than 2^32 - 1 users, communities or edges".into()));
    }

    let users = read_users(&dir.join(USERS), users_n)?;
    let communities_path = dir.join(COMMUNITIES);
    let communities = crate::io::read_communities(&communities_path)?;
    if communities.len() != communities_n {
        let msg = format!("{} communities where meta.json says {communities_n}", communities.len());
        return Err(unusable(&communities_path, msg));
    }

    let path = dir.join(USER_ROWPTR);
    let mut npy = NpyReader::open(&path, Dtype::I8, EXPORT_MODEL, EXPORT_HINT)?;
    npy.expect_shape(&[users_n + 1])?;
    let raw = npy.values(i64::from_le_bytes)?;
    let mut ptr = Vec::with_capacity(raw.len());
    for (u, &p) in raw.iter().enumerate() {
        let ok = usize::try_from(p).ok().filter(|&p| p <= edges && ptr.last().is_none_or(|&q| q <= p));
        let Some(p) = ok else {
            return Err(unusable(&path, format!("offset {u} is {p}: offsets must rise from 0 to {edges}")));
        };
        ptr.push(p);
    }
    if ptr.first() != Some(&0) || ptr.last() != Some(&edges) {
        return Err(unusable(&path, format!("the offsets must run from 0 to {edges}")));
    }

    let path = dir.join(USER_COL);
    let mut npy = NpyReader::open(&path, Dtype::I8, EXPORT_MODEL, EXPORT_HINT)?;
    npy.expect_shape(&[edges])?;
    let raw = npy.values(i64::from_le_bytes)?;
    let mut col = Vec::with_capacity(edges);
    for (e, &c) in raw.iter().enumerate() {
        let Some(c) = u32::try_from(c).ok().filter(|&c| (c as usize) < communities_n) else {
            return Err(unusable(&path, format!("edge {e}: community {c} is not in 0..{communities_n}")));
        };
        col.push(c);
    }
    drop(raw);

    let path = dir.join(EDGE_WEIGHT);
    let mut npy = NpyReader::open(&path, Dtype::F4, EXPORT_MODEL, EXPORT_HINT)?;
    npy.expect_shape(&[edges])?;
    let weights = npy.values(f32::from_le_bytes)?;
    if let Some(e) = weights.iter().position(|w| !w.is_finite() || *w <= 0.0) {
        return Err(unusable(&path, format!("edge {e}: weight {} is not finite and positive", weights[e])));
    }

    let path = dir.join(EDGE_SPLIT);
    let mut npy = NpyReader::open(&path, Dtype::U1, EXPORT_MODEL, EXPORT_HINT)?;
    npy.expect_shape(&[edges])?;
    let raw = npy.values(u8::from_le_bytes)?;
    let mut parts = Vec::with_capacity(edges);
    for (e, &p) in raw.iter().enumerate() {
        parts.push(match p {
            0 => Part::Train,
            1 => Part::Validation,
            2 => Part::Test,
            other => return Err(unusable(&path, format!("edge {e}: part {other} is not 0, 1 or 2"))),
        });
    }

    let (snippet_ptr, snippets) =
        if meta.has_snippets { read_snippets(&dir.join(EDGE_SNIPPETS), edges)? } else { (Vec::new(), Vec::new()) };

    let graph = BipartiteGraph::from_parts(users, communities, Csr { ptr, col }, weights, snippet_ptr, snippets)
        .map_err(|e| match e {
            Error::InvalidInput(m) => unusable(dir, m),
            other => other,
        })?;
    let split = EdgeSplit::from_parts(&graph, parts)?;
    let community_x = read_features(&dir.join(COMMUNITY_X), meta.feature_dim, communities_n)?;
    let user_content = read_features(&dir.join(USER_CONTENT), meta.content_dim, users_n)?;
    Ok((graph, split, community_x, user_content))
}

fn unusable(path: &Path, message: String) -> Error {
    Error::ModelInvalid { model: EXPORT_MODEL.into(), path: path.to_path_buf(), message, hint: EXPORT_HINT.into() }
}

/// `users.txt`: exactly `n` lines, each ended by `\n`.
fn read_users(path: &Path, n: usize) -> Result<Vec<String>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = String::from_utf8(bytes).map_err(|e| Error::Parse {
        location: Location { file: Some(path.to_path_buf()), ..Location::default() },
        message: format!("file is not valid UTF-8 (byte offset {})", e.utf8_error().valid_up_to()),
    })?;
    if !text.is_empty() && !text.ends_with('\n') {
        return Err(unusable(path, "the last line has no line end (truncated?)".into()));
    }
    let users: Vec<String> = text.split_terminator('\n').map(str::to_string).collect();
    if users.len() != n {
        return Err(unusable(path, format!("{} users where meta.json says {n}", users.len())));
    }
    Ok(users)
}

/// `edge_snippets.jsonl`: exactly `edges` lines, each a JSON array of strings.
fn read_snippets(path: &Path, edges: usize) -> Result<(Vec<usize>, Vec<Box<str>>)> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = std::io::BufRead::lines(BufReader::new(file));
    let mut ptr = Vec::with_capacity(edges + 1);
    ptr.push(0);
    let mut snippets: Vec<Box<str>> = Vec::new();
    for e in 0..edges {
        let at = Location { file: Some(path.to_path_buf()), line: Some(e + 1), ..Location::default() };
        let line = match reader.next() {
            None => return Err(unusable(path, format!("{e} lines where meta.json says {edges} edges"))),
            Some(Err(err)) if err.kind() == std::io::ErrorKind::InvalidData => {
                return Err(Error::Parse { location: at, message: "line is not valid UTF-8".into() })
            }
            Some(Err(err)) => return Err(Error::io(path, err)),
            Some(Ok(line)) => line,
        };
        let texts: Vec<String> = zipp_core::json::parse(&line, &at, "list of snippets")?;
        snippets.extend(texts.into_iter().map(String::into_boxed_str));
        ptr.push(snippets.len());
    }
    if reader.next().is_some() {
        return Err(unusable(path, format!("more lines than the {edges} edges of meta.json")));
    }
    Ok((ptr, snippets))
}

/// An optional feature file: present with shape `[rows, dim]` when meta.json gives `dim`.
fn read_features(path: &Path, dim: Option<usize>, rows: usize) -> Result<Option<Features>> {
    let Some(dim) = dim else { return Ok(None) };
    if dim == 0 {
        return Err(unusable(path, "meta.json gives a feature dimension of 0".into()));
    }
    let mut npy = NpyReader::open(path, Dtype::F4, EXPORT_MODEL, EXPORT_HINT)?;
    npy.expect_shape(&[rows, dim])?;
    let data = npy.values(f32::from_le_bytes)?;
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(unusable(path, format!("row {}, column {} is {} (not finite)", i / dim, i % dim, data[i])));
    }
    Features::new(data, dim).map(Some)
}

// ---------------------------------------------------------------------------------------
// .npy: a magic string, a version, a Python-literal header dict, raw data.

const NPY_MAGIC: &[u8; 6] = b"\x93NUMPY";
/// numpy pads the header so the data starts on a multiple of this (memory-mapping).
const NPY_ALIGN: usize = 64;

/// The element types zipp writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dtype {
    /// `<f4`: little-endian float32.
    F4,
    /// `<i8`: little-endian int64.
    I8,
    /// `|u1`: uint8.
    U1,
}

impl Dtype {
    fn descr(self) -> &'static str {
        match self {
            Dtype::F4 => "<f4",
            Dtype::I8 => "<i8",
            Dtype::U1 => "|u1",
        }
    }

    fn size(self) -> usize {
        match self {
            Dtype::F4 => 4,
            Dtype::I8 => 8,
            Dtype::U1 => 1,
        }
    }

    /// Whether numpy's `descr` names this type (`<u1` and `u1` are `|u1` too).
    fn matches(self, descr: &str) -> bool {
        descr == self.descr() || (self == Dtype::U1 && matches!(descr, "<u1" | "u1"))
    }
}

/// The shape as Python writes a tuple: `()`, `(5,)`, `(3, 4)`.
fn shape_literal(shape: &[usize]) -> String {
    match shape {
        [one] => format!("({one},)"),
        _ => format!("({})", shape.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")),
    }
}

/// Writes a version 1.0 `.npy` file of `shape` whose elements come little-endian from
/// `values` (exactly the product of `shape` of them).
fn write_npy<const N: usize>(
    path: &Path,
    dtype: Dtype,
    shape: &[usize],
    values: impl Iterator<Item = [u8; N]>,
) -> Result<()> {
    let header = npy_header(path, dtype, shape)?;
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let mut out = BufWriter::with_capacity(1 << 16, file);
    let io = |e| Error::io(path, e);
    out.write_all(&header).map_err(io)?;
    let expected: usize = shape.iter().product();
    let mut written = 0usize;
    for v in values {
        out.write_all(&v).map_err(io)?;
        written += 1;
    }
    if written != expected {
        // Only this module calls it, with matching shapes: a bug, but never a bad file.
        drop(out);
        let _ = std::fs::remove_file(path);
        return Err(Error::Internal(format!("npy writer: {written} values for shape {shape:?} ({})", path.display())));
    }
    out.into_inner().map_err(|e| Error::io(path, e.into_error()))?.sync_all().map_err(io)
}

/// Everything of a version 1.0 `.npy` file before its data: magic, version, header length
/// and the padded header dict.
fn npy_header(path: &Path, dtype: Dtype, shape: &[usize]) -> Result<Vec<u8>> {
    let mut header =
        format!("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}", dtype.descr(), shape_literal(shape))
            .into_bytes();
    // Byte for byte as numpy.save (2.x) writes it (the tests hold its bytes): room for the
    // first dimension to grow to 21 digits in place, then spaces so that magic (6) +
    // version (2) + length (2) + header + '\n' ends on a multiple of 64.
    if let Some(first) = shape.first() {
        header.resize(header.len() + 21usize.saturating_sub(first.to_string().len()), b' ');
    }
    let unpadded = NPY_MAGIC.len() + 4 + header.len() + 1;
    header.resize(header.len() + unpadded.next_multiple_of(NPY_ALIGN) - unpadded, b' ');
    header.push(b'\n');
    let Ok(len) = u16::try_from(header.len()) else {
        return Err(Error::InvalidInput(format!(
            "{}: a shape of {} dimensions is too long",
            path.display(),
            shape.len()
        )));
    };
    let mut out = Vec::with_capacity(10 + header.len());
    out.extend_from_slice(NPY_MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&header);
    Ok(out)
}

/// Writes `data` (row-major, `shape`'s product of values) as a float32 `.npy` file (format
/// 1.0, little-endian, C order) that `numpy.load(path, mmap_mode="r")` maps.
pub fn write_npy_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    let count = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if count != Some(data.len()) {
        return Err(Error::InvalidInput(format!(
            "{}: {} values do not fill shape {}",
            path.display(),
            data.len(),
            shape_literal(shape)
        )));
    }
    write_npy(path, Dtype::F4, shape, data.iter().map(|v| v.to_le_bytes()))
}

/// Reads a float32 `.npy` file (`<f4`, C order; numpy format 1.0, 2.0 or 3.0): its shape
/// and values, row-major. Anything else — another dtype, Fortran order, a damaged header,
/// truncated or trailing data — is [`Error::ModelInvalid`] naming the file.
pub fn read_npy_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let mut npy = NpyReader::open(path, Dtype::F4, NPY_MODEL, NPY_HINT)?;
    let shape = npy.shape.clone();
    let values = npy.values(f32::from_le_bytes)?;
    Ok((shape, values))
}

/// An open `.npy` file, positioned at its data, whose size has been checked.
struct NpyReader {
    path: PathBuf,
    model: &'static str,
    hint: &'static str,
    shape: Vec<usize>,
    count: usize,
    reader: BufReader<File>,
}

impl NpyReader {
    fn open(path: &Path, dtype: Dtype, model: &'static str, hint: &'static str) -> Result<NpyReader> {
        let bad = |message: String| Error::ModelInvalid {
            model: model.into(),
            path: path.to_path_buf(),
            message,
            hint: hint.into(),
        };
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut reader = BufReader::with_capacity(1 << 16, file);
        let mut preamble = [0u8; 8];
        read_exact(&mut reader, &mut preamble, path, &bad, "the preamble")?;
        if &preamble[..6] != NPY_MAGIC {
            return Err(bad("not a .npy file (wrong magic string)".into()));
        }
        let (major, minor) = (preamble[6], preamble[7]);
        let header_len = match major {
            1 => {
                let mut n = [0u8; 2];
                read_exact(&mut reader, &mut n, path, &bad, "the header length")?;
                u16::from_le_bytes(n) as usize
            }
            2 | 3 => {
                let mut n = [0u8; 4];
                read_exact(&mut reader, &mut n, path, &bad, "the header length")?;
                u32::from_le_bytes(n) as usize
            }
            _ => return Err(bad(format!("npy format version {major}.{minor} is not 1, 2 or 3"))),
        };
        let prefix = 8 + if major == 1 { 2 } else { 4 };
        if (prefix + header_len) as u64 > file_len {
            return Err(bad(format!("truncated: the header claims {header_len} bytes, the file has {file_len}")));
        }
        let mut header = vec![0u8; header_len];
        read_exact(&mut reader, &mut header, path, &bad, "the header")?;
        // Versions 1 and 2 are latin-1 (ASCII in practice), version 3 UTF-8.
        let header = std::str::from_utf8(&header).map_err(|_| bad("the header is not text".into()))?;
        let dict = parse_header(header).map_err(|m| bad(format!("bad header {:?}: {m}", header.trim_end())))?;
        if !dtype.matches(&dict.descr) {
            return Err(bad(format!("dtype {:?}, expected {:?}", dict.descr, dtype.descr())));
        }
        if dict.fortran_order && dict.shape.len() > 1 {
            return Err(bad("the array is in Fortran order; expected C order".into()));
        }
        let count = dict
            .shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .filter(|n| n.checked_mul(dtype.size()).is_some())
            .ok_or_else(|| bad(format!("shape {} is too large", shape_literal(&dict.shape))))?;
        // The size is checked before anything is allocated for the data: a damaged shape
        // must not ask for terabytes.
        let data_len = (file_len - (prefix + header_len) as u64) as u128;
        let need = (count * dtype.size()) as u128;
        if data_len < need {
            return Err(bad(format!(
                "truncated: shape {} needs {need} bytes of data, the file has {data_len}",
                shape_literal(&dict.shape)
            )));
        }
        if data_len > need {
            return Err(bad(format!(
                "{} bytes after the {need} bytes of data that shape {} needs",
                data_len - need,
                shape_literal(&dict.shape)
            )));
        }
        Ok(NpyReader { path: path.to_path_buf(), model, hint, shape: dict.shape, count, reader })
    }

    fn bad(&self, message: String) -> Error {
        Error::ModelInvalid { model: self.model.into(), path: self.path.clone(), message, hint: self.hint.into() }
    }

    fn expect_shape(&self, shape: &[usize]) -> Result<()> {
        if self.shape != shape {
            return Err(self.bad(format!(
                "shape {}, expected {} (from meta.json)",
                shape_literal(&self.shape),
                shape_literal(shape)
            )));
        }
        Ok(())
    }

    /// Every element, converted from its little-endian bytes.
    fn values<const N: usize, T>(&mut self, convert: fn([u8; N]) -> T) -> Result<Vec<T>> {
        let mut out = Vec::with_capacity(self.count);
        let mut chunk = vec![0u8; (1 << 16) / N * N];
        let mut left = self.count * N;
        let (path, model, hint) = (self.path.clone(), self.model, self.hint);
        let bad = |message: String| Error::ModelInvalid {
            model: model.into(),
            path: path.clone(),
            message,
            hint: hint.into(),
        };
        while left > 0 {
            let n = left.min(chunk.len());
            read_exact(&mut self.reader, &mut chunk[..n], &path, &bad, "the data")?;
            out.extend(chunk[..n].chunks_exact(N).map(|b| {
                let mut a = [0u8; N];
                a.copy_from_slice(b);
                convert(a)
            }));
            left -= n;
        }
        Ok(out)
    }
}

fn read_exact(
    reader: &mut impl Read,
    buf: &mut [u8],
    path: &Path,
    bad: &dyn Fn(String) -> Error,
    what: &str,
) -> Result<()> {
    reader.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => bad(format!("truncated in {what}")),
        _ => Error::io(path, e),
    })
}

/// The three keys of an npy header.
struct NpyHeader {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// Parses the header dict, a Python literal such as
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`.
fn parse_header(text: &str) -> std::result::Result<NpyHeader, String> {
    let mut p = Literal { s: text.as_bytes(), i: 0 };
    p.expect(b'{')?;
    let (mut descr, mut fortran_order, mut shape) = (None, None, None);
    loop {
        p.skip_space();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.skip_space();
        p.expect(b':')?;
        p.skip_space();
        match key.as_str() {
            "descr" if descr.is_none() => descr = Some(p.string()?),
            "fortran_order" if fortran_order.is_none() => fortran_order = Some(p.boolean()?),
            "shape" if shape.is_none() => shape = Some(p.tuple()?),
            other => return Err(format!("unexpected or repeated key {other:?}")),
        }
        p.skip_space();
        if !p.eat(b',') {
            p.skip_space();
            p.expect(b'}')?;
            break;
        }
    }
    p.skip_space();
    if p.i != p.s.len() {
        return Err("characters after the dict".into());
    }
    match (descr, fortran_order, shape) {
        (Some(descr), Some(fortran_order), Some(shape)) => Ok(NpyHeader { descr, fortran_order, shape }),
        _ => Err("it lacks one of descr, fortran_order and shape".into()),
    }
}

/// A cursor over a Python literal.
struct Literal<'a> {
    s: &'a [u8],
    i: usize,
}

impl Literal<'_> {
    fn skip_space(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.s.get(self.i) == Some(&b);
        self.i += usize::from(hit);
        hit
    }

    fn expect(&mut self, b: u8) -> std::result::Result<(), String> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(format!("expected `{}` at byte {}", b as char, self.i))
        }
    }

    fn string(&mut self) -> std::result::Result<String, String> {
        let quote = match self.s.get(self.i) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => return Err(format!("expected a string at byte {}", self.i)),
        };
        let start = self.i + 1;
        let Some(len) = self.s[start..].iter().position(|&b| b == quote || b == b'\\') else {
            return Err("a string never ends".into());
        };
        if self.s[start + len] == b'\\' {
            return Err("escapes in header strings are not supported".into());
        }
        self.i = start + len + 1;
        String::from_utf8(self.s[start..start + len].to_vec()).map_err(|_| "a string is not text".to_string())
    }

    fn boolean(&mut self) -> std::result::Result<bool, String> {
        for (word, value) in [(&b"True"[..], true), (&b"False"[..], false)] {
            if self.s[self.i..].starts_with(word) {
                self.i += word.len();
                return Ok(value);
            }
        }
        Err(format!("expected True or False at byte {}", self.i))
    }

    fn tuple(&mut self) -> std::result::Result<Vec<usize>, String> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            self.skip_space();
            if self.eat(b')') {
                return Ok(dims);
            }
            let start = self.i;
            while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
                self.i += 1;
            }
            let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default();
            let dim = digits.parse::<usize>().map_err(|_| format!("expected a dimension at byte {start}"))?;
            dims.push(dim);
            self.skip_space();
            if !self.eat(b',') {
                self.skip_space();
                self.expect(b')')?;
                return Ok(dims);
            }
        }
    }
}
