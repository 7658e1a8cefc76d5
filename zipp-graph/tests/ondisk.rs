//! The on-disk build: the folder it writes is byte for byte the export of the graph
//! `load_edges` loads (every format, duplicates, snippets, skipped rows, a split, budgets
//! from one user per range to one range), errors are located, and a failed or cancelled
//! build leaves no scratch file and no `meta.json`.

mod common;

use std::cell::Cell;
use std::path::{Path, PathBuf};

use common::{csv, jsonl, parquet_table, write_parquet, Row, TempDir};
use zipp_core::rng::SplitMix;
use zipp_graph::export::{export_pyg, import_pyg};
use zipp_graph::io::{load_edges, LoadOptions, LoadProgress, LoadStats};
use zipp_graph::ondisk::{build_on_disk, build_on_disk_with_progress, OnDiskOptions, FANOUT};
use zipp_graph::split::{EdgeSplit, SplitOptions};

/// `n` rows over ~300 users (a few heavy ones) and 40 communities: duplicate pairs, counts
/// absent, fractional or bad (-1, about 1 row in 40), snippets with quotes, commas,
/// newlines and non-ASCII text, and rows without.
fn rows(n: usize, seed: u64) -> Vec<Row<String>> {
    let mut r = SplitMix(seed);
    (0..n)
        .map(|i| {
            let heavy = r.next_u64().is_multiple_of(8);
            let u = if heavy { r.next_u64() % 4 } else { r.next_u64() % 300 };
            let user = if u % 7 == 3 { format!("ünï {u}") } else { format!("user{u}") };
            let community = format!("c{}", r.next_u64() % 40);
            let count = match r.next_u64() % 40 {
                0 => Some(-1.0),
                1..=12 => None,
                13..=20 => Some(2.5),
                k => Some((k % 4 + 1) as f64),
            };
            let text = match r.next_u64() % 3 {
                0 => None,
                1 => Some(format!("row {i} said \"hi\", then, left")),
                _ => Some(format!("line {i}\nÜnïcødé ✓")),
            };
            (user, community, count, text)
        })
        .collect()
}

/// Writes `rows` as `edges.<format>` in `dir`.
fn write(dir: &TempDir, format: &str, rows: &[Row<String>]) -> PathBuf {
    match format {
        "jsonl" => dir.write("edges.jsonl", jsonl(rows)),
        "csv" => dir.write("edges.csv", csv(rows)),
        _ => {
            let path = dir.0.join("edges.parquet");
            write_parquet(&path, &parquet_table(rows), 700);
            path
        }
    }
}

/// The files of a folder, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

fn assert_same_folder(disk: &Path, memory: &Path, what: &str) {
    assert_eq!(files(disk), files(memory), "{what}: the same files");
    for name in files(memory) {
        let (a, b) = (std::fs::read(disk.join(&name)).unwrap(), std::fs::read(memory.join(&name)).unwrap());
        assert!(a == b, "{what}: {name} differs ({} vs {} bytes)", a.len(), b.len());
    }
}

/// The export of what `load_edges` loads, the reference.
fn export_in_memory(paths: &[PathBuf], options: &OnDiskOptions, dir: &Path) -> LoadStats {
    let (graph, stats) = load_edges(paths, &options.load).unwrap();
    let split = match options.split {
        Some(s) => EdgeSplit::new(&graph, s).unwrap(),
        None => EdgeSplit::all_train(&graph),
    };
    export_pyg(&graph, &split, None, None, dir).unwrap();
    stats
}

fn same_counts(a: &LoadStats, b: &LoadStats) {
    let counts =
        |s: &LoadStats| (s.rows_read, s.rows_skipped, s.skipped.clone(), s.users, s.communities, s.edges, s.snippets);
    assert_eq!(counts(a), counts(b));
}

#[test]
fn the_folder_is_byte_identical_to_the_export_of_load_edges() {
    let dir = TempDir::new("ondisk-same");
    let rows = rows(3000, 7);
    let communities = dir.write(
        "communities.jsonl",
        "{\"name\": \"c5\", \"description\": \"listed first\"}\n{\"name\": \"lonely\", \"description\": \"no edges\"}\n",
    );
    let split = SplitOptions { validation: 0.1, test: 0.2, seed: 3 };
    for format in ["jsonl", "csv", "parquet"] {
        let paths = [write(&dir, format, &rows)];
        for (budget, keep, split) in
            [(0, 16, Some(split)), (0, 2, None), (4096, 16, None), (4096, 0, Some(split)), (1 << 30, 16, Some(split))]
        {
            let what = format!("{format}, budget {budget}, {keep} snippets, split {}", split.is_some());
            let load = LoadOptions {
                skip_bad_rows: true,
                max_snippets_per_edge: keep,
                communities: Some(communities.clone()),
                ..LoadOptions::default()
            };
            let options = OnDiskOptions { load, split, memory_budget_bytes: budget, scratch_dir: None };
            let (disk, memory) = (dir.0.join("disk"), dir.0.join("memory"));
            let _ = std::fs::remove_dir_all(&disk);
            let _ = std::fs::remove_dir_all(&memory);
            let stats = build_on_disk(&paths, &options, &disk).unwrap();
            let reference = export_in_memory(&paths, &options, &memory);
            assert_same_folder(&disk, &memory, &what);
            same_counts(&stats.load, &reference);
            assert!(stats.load.rows_skipped > 0 && stats.load.edges < 3000, "{what}: skips and merges");
            match budget {
                // One user per range: more ranges than files at once, so a second level.
                0 => {
                    assert_eq!(stats.ranges, stats.load.users, "{what}");
                    assert!(stats.ranges > FANOUT && stats.levels == 2, "{what}: {stats:?}");
                    assert!(stats.largest_range_bytes > 0, "{what}");
                }
                4096 => assert!(stats.ranges > 1 && stats.ranges <= FANOUT && stats.levels == 1, "{what}: {stats:?}"),
                _ => assert_eq!((stats.ranges, stats.levels), (1, 1), "{what}"),
            }
            assert!(stats.scratch_bytes > 0, "{what}");
            // The folder imports, as the graph load_edges builds.
            let (graph, _, x, content) = import_pyg(&disk).unwrap();
            assert_eq!(graph, load_edges(&paths, &options.load).unwrap().0, "{what}");
            assert!(x.is_none() && content.is_none());
        }
    }
}

#[test]
fn many_files_empty_input_and_a_scratch_folder_elsewhere() {
    let dir = TempDir::new("ondisk-files");
    let rows = rows(1200, 11);
    let a = dir.write("a.jsonl", jsonl(&rows[..500]));
    let b = dir.write("b.csv", csv(&rows[500..900]));
    let c = dir.0.join("c.parquet");
    write_parquet(&c, &parquet_table(&rows[900..]), 64);
    let scratch = dir.0.join("scratch");
    let load = LoadOptions { skip_bad_rows: true, ..LoadOptions::default() };
    let options = OnDiskOptions { load, split: None, memory_budget_bytes: 2048, scratch_dir: Some(scratch.clone()) };
    let paths = [a, b, c];
    build_on_disk(&paths, &options, &dir.0.join("disk")).unwrap();
    export_in_memory(&paths, &options, &dir.0.join("memory"));
    assert_same_folder(&dir.0.join("disk"), &dir.0.join("memory"), "three files");
    assert!(files(&scratch).is_empty(), "the scratch folder is emptied: {:?}", files(&scratch));

    let empty = [dir.write("empty.jsonl", "\n")];
    let stats = build_on_disk(&empty, &OnDiskOptions::default(), &dir.0.join("empty-disk")).unwrap();
    export_in_memory(&empty, &OnDiskOptions::default(), &dir.0.join("empty-memory"));
    assert_same_folder(&dir.0.join("empty-disk"), &dir.0.join("empty-memory"), "no rows");
    assert_eq!((stats.ranges, stats.load.users, stats.load.edges), (0, 0, 0));
}

/// No scratch folder, no `meta.json`, and no export file left behind in `out`.
fn assert_clean(out: &Path) {
    let left = files(out);
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn errors_are_located_and_leave_nothing_behind() {
    let dir = TempDir::new("ondisk-errors");
    let out = dir.0.join("out");
    let options = OnDiskOptions { memory_budget_bytes: 0, ..OnDiskOptions::default() };
    // A bad row in pass 1, located by file and line.
    let bad = dir.write(
        "bad.jsonl",
        "{\"user\": \"a\", \"community\": \"c\"}\n\n{\"user\": \"a\", \"community\": \"c\", \"count\": -2}\n",
    );
    let e = build_on_disk(std::slice::from_ref(&bad), &options, &out).unwrap_err();
    let reference = load_edges(&[bad], &options.load).unwrap_err();
    assert_eq!(e.to_string(), reference.to_string());
    assert!(e.to_string().contains("bad.jsonl") && e.to_string().contains("line 3"), "{e}");
    assert_clean(&out);

    // A CSV row error, and a whole-file error even when skipping rows.
    let bad = dir.write("bad.csv", "user,community\nu,c\nu,\n");
    let e = build_on_disk(&[bad], &options, &out).unwrap_err();
    assert!(e.to_string().contains("bad.csv") && e.to_string().contains("line 3"), "{e}");
    let open = dir.write("open.csv", "user,community\nu,c\nu,\"never closed\n");
    let skip = OnDiskOptions { load: LoadOptions { skip_bad_rows: true, ..LoadOptions::default() }, ..options.clone() };
    assert!(build_on_disk(&[open], &skip, &out).unwrap_err().to_string().contains("never closes"));
    assert_clean(&out);

    // Counts that overflow when merged fail in pass 3, after the export was started.
    let row = "{\"user\": \"u\", \"community\": \"c\", \"count\": 3e38}\n";
    let users = "{\"user\": \"v\", \"community\": \"c\"}\n".repeat(3);
    let overflow = dir.write("overflow.jsonl", format!("{users}{}", row.repeat(2)));
    let e = build_on_disk(&[overflow], &options, &out).unwrap_err();
    assert!(e.to_string().contains("sum to more than"), "{e}");
    assert_clean(&out);

    // Bad options before anything is read.
    let good = [dir.write("good.csv", "user,community\nu,c\n")];
    let split = OnDiskOptions { split: Some(SplitOptions { validation: 0.5, test: 0.5, seed: 0 }), ..options.clone() };
    assert_eq!(build_on_disk(&good, &split, &out).unwrap_err().kind(), "invalid_input");
    let snippets =
        OnDiskOptions { load: LoadOptions { max_snippets_per_edge: 17, ..LoadOptions::default() }, ..options.clone() };
    assert_eq!(build_on_disk(&good, &snippets, &out).unwrap_err().kind(), "invalid_input");
    let e = build_on_disk(&[dir.0.join("absent.jsonl")], &options, &out).unwrap_err();
    assert!(e.kind() == "io" && e.to_string().contains("absent.jsonl"), "{e}");
}

#[test]
fn progress_is_reported_per_pass_and_a_false_cancels_cleanly() {
    let dir = TempDir::new("ondisk-cancel");
    // Enough rows for reports inside each pass (every 65,536 rows).
    let mut text = String::new();
    for i in 0..140_000 {
        text.push_str(&format!("{{\"user\":\"u{}\",\"community\":\"c{}\"}}\n", i % 5000, i % 13));
    }
    let paths = [dir.write("e.jsonl", text)];
    let options = OnDiskOptions { memory_budget_bytes: 64 << 10, ..OnDiskOptions::default() };
    let out = dir.0.join("out");
    let calls = Cell::new(Vec::new());
    let record = |p: LoadProgress| {
        let mut v = calls.take();
        v.push((p.pass, p.rows_read));
        calls.set(v);
        true
    };
    build_on_disk_with_progress(&paths, &options, &out, &record).unwrap();
    let calls = calls.take();
    for pass in 1..=3 {
        let of_pass: Vec<u64> = calls.iter().filter(|c| c.0 == pass).map(|c| c.1).collect();
        assert!(of_pass.len() >= 2 && of_pass.last() == Some(&140_000), "pass {pass}: {of_pass:?}");
    }
    assert!(out.join("meta.json").exists());
    std::fs::remove_dir_all(&out).unwrap();

    // Cancelled inside each pass, and at the very end of pass 3.
    for (pass, at) in [(1, 65_536), (2, 65_536), (3, 65_536), (3, 140_000)] {
        let e = build_on_disk_with_progress(&paths, &options, &out, &|p| !(p.pass == pass && p.rows_read >= at))
            .unwrap_err();
        assert_eq!(e.kind(), "cancelled", "pass {pass}: {e}");
        assert!(e.to_string().contains(&format!("pass {pass} of 3")), "{e}");
        assert_clean(&out);
    }
}

#[test]
fn a_build_over_an_older_export_replaces_it() {
    let dir = TempDir::new("ondisk-over");
    let rows = rows(800, 5);
    let paths = [dir.write("e.jsonl", jsonl(&rows))];
    let load = LoadOptions { skip_bad_rows: true, ..LoadOptions::default() };
    // The older export: another graph, with snippets and both feature files.
    let out = dir.0.join("out");
    let (old, _) = load_edges(&paths, &load).unwrap();
    let x: Vec<f32> = (0..old.num_communities() * 3).map(|i| i as f32).collect();
    let content: Vec<f32> = (0..old.num_users() * 2).map(|i| i as f32).collect();
    export_pyg(&old, &EdgeSplit::all_train(&old), Some((&x, 3)), Some((&content, 2)), &out).unwrap();
    assert!(out.join("community_x.npy").exists() && out.join("edge_snippets.jsonl").exists());

    let options = OnDiskOptions {
        load: LoadOptions { max_snippets_per_edge: 0, ..load },
        split: Some(SplitOptions::default()),
        memory_budget_bytes: 1000,
        scratch_dir: None,
    };
    build_on_disk(&paths, &options, &out).unwrap();
    export_in_memory(&paths, &options, &dir.0.join("memory"));
    assert_same_folder(&out, &dir.0.join("memory"), "over an older export");
    let (graph, split, x, content) = import_pyg(&out).unwrap();
    assert!(!graph.has_snippets() && x.is_none() && content.is_none());
    assert_eq!(split, EdgeSplit::new(&graph, SplitOptions::default()).unwrap());
}
