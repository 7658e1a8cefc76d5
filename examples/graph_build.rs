//! zipp graph-build: edge files → the PyTorch Geometric export folder, two ways — in memory
//! (`io::load_edges` + `EdgeSplit` + `export::export_pyg`) and on disk under a memory budget
//! (`ondisk::build_on_disk`) — with rows per second and peak resident memory (VmHWM) of
//! each. Prints one JSON line per way; with `--mode both` each runs in its own process (so
//! each peak is its own) and the two folders are compared file by file.
//!
//! ```text
//! cargo run --release -p zipp-examples --bin graph-build -- [options]
//!   --generate N        first write N synthetic rows of JSONL to --edges (skewed users and
//!                       communities, duplicate pairs, a snippet on some rows)
//!   --users U           users to draw from (generate; default 1000000)
//!   --communities C     communities to draw from (generate; default 40000)
//!   --text-every K      a ~60-byte snippet on every K-th row (generate; default 10; 0: none)
//!   --seed S            (generate; default 0)
//!   --edges PATH        the edge file (default /tmp/zipp-graph-build/edges.jsonl)
//!   --out DIR           where the exports go, DIR/memory and DIR/disk (default
//!                       /tmp/zipp-graph-build)
//!   --mode M            memory | disk | both (default both)
//!   --budget-mb B       the on-disk build's memory budget (default 256)
//!   --max-snippets K    snippets kept per edge (default 16; 0: no text)
//!   --split             a 5% / 10% validation / test split per user (default: all train)
//! ```
#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use zipp_core::rng::SplitMix;
use zipp_core::Error;
use zipp_graph::export::export_pyg;
use zipp_graph::io::{load_edges, LoadOptions};
use zipp_graph::ondisk::{build_on_disk, OnDiskOptions};
use zipp_graph::split::{EdgeSplit, SplitOptions};

#[path = "peak_memory.rs"]
mod peak_memory;

/// Peak resident memory so far in MiB (NaN, a JSON null, where unknown).
fn peak_mib() -> f64 {
    peak_memory::peak_rss_mib().unwrap_or(f64::NAN)
}

struct Args {
    generate: Option<u64>,
    users: u64,
    communities: u64,
    text_every: u64,
    seed: u64,
    edges: PathBuf,
    out: PathBuf,
    mode: String,
    budget_mb: u64,
    max_snippets: usize,
    split: bool,
}

fn parse() -> Result<Args, String> {
    let base = PathBuf::from("/tmp/zipp-graph-build");
    let mut a = Args {
        generate: None,
        users: 1_000_000,
        communities: 40_000,
        text_every: 10,
        seed: 0,
        edges: base.join("edges.jsonl"),
        out: base,
        mode: "both".into(),
        budget_mb: 256,
        max_snippets: 16,
        split: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--split" {
            a.split = true;
            continue;
        }
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--generate" => a.generate = Some(num(&v)?),
            "--users" => a.users = num(&v)?.max(1),
            "--communities" => a.communities = num(&v)?.max(1),
            "--text-every" => a.text_every = num(&v)?,
            "--seed" => a.seed = num(&v)?,
            "--edges" => a.edges = v.into(),
            "--out" => a.out = v.into(),
            "--mode" if ["memory", "disk", "both"].contains(&v.as_str()) => a.mode = v,
            "--budget-mb" => a.budget_mb = num(&v)?,
            "--max-snippets" => a.max_snippets = num(&v)? as usize,
            other => return Err(format!("unknown option or value: {other} {v}")),
        }
    }
    Ok(a)
}

/// Writes `rows` JSONL rows: users and communities drawn with a skew (index = n·x² and
/// n·x³ for uniform x), so some users and communities are heavy and pairs repeat.
fn generate(a: &Args, rows: u64) -> Result<(), Error> {
    if let Some(dir) = a.edges.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let io = |e| Error::io(&a.edges, e);
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&a.edges).map_err(io)?);
    let mut r = SplitMix(a.seed);
    let unit = |r: &mut SplitMix| (r.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let t = Instant::now();
    for i in 0..rows {
        let x = unit(&mut r);
        let u = ((a.users as f64 * x * x) as u64).min(a.users - 1);
        let y = unit(&mut r);
        let c = ((a.communities as f64 * y * y * y) as u64).min(a.communities - 1);
        write!(out, "{{\"user\":\"u{u}\",\"community\":\"c{c}\"").map_err(io)?;
        if i % 4 == 0 {
            write!(out, ",\"count\":{}", 1 + r.next_u64() % 5).map_err(io)?;
        }
        if a.text_every > 0 && i % a.text_every == 0 {
            write!(out, ",\"text\":\"row {i}: what this user wrote in community c{c}, give or take\"").map_err(io)?;
        }
        out.write_all(b"}\n").map_err(io)?;
    }
    out.flush().map_err(io)?;
    let bytes = std::fs::metadata(&a.edges).map_err(|e| Error::io(&a.edges, e))?.len();
    eprintln!(
        "generated {rows} rows ({:.0} MiB) in {:.1} s: {}",
        bytes as f64 / (1 << 20) as f64,
        t.elapsed().as_secs_f64(),
        a.edges.display()
    );
    Ok(())
}

fn load_options(a: &Args) -> LoadOptions {
    LoadOptions { max_snippets_per_edge: a.max_snippets, ..LoadOptions::default() }
}

fn split_options(a: &Args) -> Option<SplitOptions> {
    a.split.then(SplitOptions::default)
}

fn memory(a: &Args) -> Result<serde_json::Value, Error> {
    let out = a.out.join("memory");
    let _ = std::fs::remove_dir_all(&out);
    let t = Instant::now();
    let (graph, stats) = load_edges(std::slice::from_ref(&a.edges), &load_options(a))?;
    let load_s = t.elapsed().as_secs_f64();
    let split = match split_options(a) {
        Some(s) => EdgeSplit::new(&graph, s)?,
        None => EdgeSplit::all_train(&graph),
    };
    export_pyg(&graph, &split, None, None, &out)?;
    let seconds = t.elapsed().as_secs_f64();
    Ok(serde_json::json!({
        "mode": "memory", "rows": stats.rows_read, "users": stats.users, "communities": stats.communities,
        "edges": stats.edges, "snippets": stats.snippets, "load_s": load_s, "seconds": seconds,
        "rows_per_s": stats.rows_read as f64 / seconds, "peak_mib": peak_mib(),
    }))
}

fn disk(a: &Args) -> Result<serde_json::Value, Error> {
    let out = a.out.join("disk");
    let _ = std::fs::remove_dir_all(&out);
    let options = OnDiskOptions {
        load: load_options(a),
        split: split_options(a),
        memory_budget_bytes: a.budget_mb << 20,
        scratch_dir: None,
    };
    let t = Instant::now();
    let stats = build_on_disk(std::slice::from_ref(&a.edges), &options, &out)?;
    let seconds = t.elapsed().as_secs_f64();
    let l = &stats.load;
    Ok(serde_json::json!({
        "mode": "disk", "rows": l.rows_read, "users": l.users, "communities": l.communities, "edges": l.edges,
        "snippets": l.snippets, "seconds": seconds, "rows_per_s": l.rows_read as f64 / seconds,
        "peak_mib": peak_mib(), "budget_mib": a.budget_mb, "ranges": stats.ranges, "levels": stats.levels,
        "largest_range_mib": stats.largest_range_bytes as f64 / (1 << 20) as f64,
        "scratch_mib": stats.scratch_bytes as f64 / (1 << 20) as f64,
    }))
}

/// Whether two files hold the same bytes, read in chunks.
fn same_file(a: &Path, b: &Path) -> Result<bool, Error> {
    let open = |p: &Path| File::open(p).map_err(|e| Error::io(p, e));
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = read_full(&mut fa, &mut ba).map_err(|e| Error::io(a, e))?;
        let m = read_full(&mut fb, &mut bb).map_err(|e| Error::io(b, e))?;
        if n != m || ba[..n] != bb[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Runs this program again for one mode; its JSON line goes to our stdout.
fn child(mode: &str) -> Result<(), Error> {
    let exe = std::env::current_exe().map_err(|e| Error::Internal(format!("this program's path: {e}")))?;
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    // Generated once, by the parent; the child runs one mode.
    if let Some(i) = args.iter().position(|a| a == "--generate") {
        args.drain(i..(i + 2).min(args.len()));
    }
    if let Some(i) = args.iter().position(|a| a == "--mode") {
        args.drain(i..(i + 2).min(args.len()));
    }
    let status = std::process::Command::new(exe)
        .args(args)
        .args(["--mode", mode])
        .status()
        .map_err(|e| Error::Internal(format!("running the {mode} build: {e}")))?;
    if !status.success() {
        return Err(Error::Internal(format!("the {mode} build failed ({status})")));
    }
    Ok(())
}

fn run(a: &Args) -> Result<(), Error> {
    if let Some(rows) = a.generate {
        generate(a, rows)?;
    }
    match a.mode.as_str() {
        "memory" => println!("{}", memory(a)?),
        "disk" => println!("{}", disk(a)?),
        _ => {
            child("memory")?;
            child("disk")?;
            let (m, d) = (a.out.join("memory"), a.out.join("disk"));
            let mut names: Vec<_> = std::fs::read_dir(&m)
                .map_err(|e| Error::io(&m, e))?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<std::io::Result<_>>()
                .map_err(|e| Error::io(&m, e))?;
            names.sort();
            let mut identical = true;
            for name in &names {
                identical &= same_file(&m.join(name), &d.join(name))?;
            }
            let files = names.len() == std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))?.count();
            println!("{}", serde_json::json!({"identical": identical && files, "files": names.len()}));
        }
    }
    Ok(())
}

fn main() {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&a) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
