//! Edge files on disk → graphs: the three formats agree, duplicates merge, every error is
//! located, bad rows can be skipped, and a load can be cancelled.

mod common;

use std::cell::Cell;
use std::path::Path;

use common::{csv, jsonl, parquet_table, strs, write_parquet, Col, TempDir};

use zipp_core::error::Error;
use zipp_graph::graph::{BipartiteGraph, MAX_SNIPPETS_PER_EDGE, MAX_SNIPPET_CHARS};
use zipp_graph::io::{load_edges, load_edges_with_progress, EdgeFormat, EdgeReader, LoadOptions};

/// (user, community, count, text)
type Row = common::Row<&'static str>;

/// Duplicated pairs, snippets with commas, quotes and a newline, a user without text.
const ROWS: &[Row] = &[
    ("alice", "AnalogCommunity", Some(2.0), Some("expired film, heavy grain")),
    ("bob", "woodworking", None, None),
    ("alice", "AnalogCommunity", None, Some("she said \"develop it yourself\"")),
    ("alice", "darkroom", Some(0.5), Some("line one\nline two")),
    ("carol", "woodworking", Some(3.0), Some("dovetails")),
    ("alice", "AnalogCommunity", Some(1.0), None),
    ("bob", "AnalogCommunity", Some(1.0), Some("first roll")),
    ("bob", "woodworking", Some(4.0), Some("Ünïcødé ✓")),
];

fn load(path: &Path) -> BipartiteGraph {
    load_edges(&[path.to_path_buf()], &LoadOptions::default()).unwrap().0
}

fn snippets(g: &BipartiteGraph, user: &str, community: &str) -> Vec<String> {
    let e = g.edge_id(g.user_index(user).unwrap(), g.community_index(community).unwrap()).unwrap();
    g.snippets(e).iter().map(|s| s.to_string()).collect()
}

fn weight(g: &BipartiteGraph, user: &str, community: &str) -> f32 {
    g.weight(g.edge_id(g.user_index(user).unwrap(), g.community_index(community).unwrap()).unwrap())
}

#[test]
fn the_three_formats_give_the_same_graph() {
    let dir = TempDir::new("same");
    let j = load(&dir.write("edges.jsonl", jsonl(ROWS)));
    let c = load(&dir.write("edges.csv", csv(ROWS)));
    let p = dir.0.join("edges.parquet");
    // Row groups of 3 rows: batches cross group boundaries.
    write_parquet(&p, &parquet_table(ROWS), 3);
    let p = load(&p);
    assert_eq!(j, c);
    assert_eq!(j, p);

    // Duplicates merged, counts summed (missing = 1), snippets in input order.
    assert_eq!(j.users(), ["alice", "bob", "carol"]);
    assert_eq!(
        j.communities().iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["AnalogCommunity", "woodworking", "darkroom"]
    );
    assert_eq!(j.num_edges(), 5);
    assert_eq!(weight(&j, "alice", "AnalogCommunity"), 4.0);
    assert_eq!(weight(&j, "bob", "woodworking"), 5.0);
    assert_eq!(weight(&j, "alice", "darkroom"), 0.5);
    assert_eq!(
        snippets(&j, "alice", "AnalogCommunity"),
        ["expired film, heavy grain", "she said \"develop it yourself\""]
    );
    assert_eq!(snippets(&j, "alice", "darkroom"), ["line one\nline two"]);
    assert_eq!(snippets(&j, "bob", "woodworking"), ["Ünïcødé ✓"]);
    assert!(j.communities().iter().all(|c| c.description.is_empty()));

    // Two files are one stream: the same graph as one file holding both.
    let a = dir.write("a.jsonl", jsonl(&ROWS[..4]));
    let b = dir.write("b.csv", csv(&ROWS[4..]));
    let (two, stats) = load_edges(&[a, b], &LoadOptions::default()).unwrap();
    assert_eq!(two, j);
    assert_eq!((stats.rows_read, stats.rows_skipped, stats.users, stats.communities, stats.edges), (8, 0, 3, 3, 5));
    assert_eq!(stats.snippets, 6);
}

#[test]
fn csv_quoting_follows_rfc_4180() {
    let dir = TempDir::new("quoting");
    let text = "\u{feff}user,community,text\n\
                \"a,b\",c,\"x \"\"quoted\"\", y\"\n\
                \n\
                u2,c,\"multi\r\nline\n\nfield\"\n\
                u3,\"\",\n\
                u4,c,last line without a line end";
    let path = dir.write("q.csv", text);
    let rows: Vec<_> = EdgeReader::open(&path, None).unwrap().collect();
    assert_eq!(rows.len(), 4);
    let r0 = rows[0].as_ref().unwrap();
    assert_eq!((r0.user.as_str(), r0.community.as_str(), r0.count), ("a,b", "c", 1.0));
    assert_eq!(r0.text.as_deref(), Some("x \"quoted\", y"));
    assert_eq!((r0.row, r0.location.line), (1, Some(2)));
    let r1 = rows[1].as_ref().unwrap();
    assert_eq!(r1.text.as_deref(), Some("multi\r\nline\n\nfield"));
    assert_eq!((r1.row, r1.location.line), (2, Some(4)));
    // An empty community is a located error; reading goes on.
    let e = rows[2].as_ref().unwrap_err().to_string();
    assert!(e.contains("line 8") && e.contains("field `community`") && e.contains("empty"), "{e}");
    let r3 = rows[3].as_ref().unwrap();
    assert_eq!((r3.user.as_str(), r3.text.as_deref()), ("u4", Some("last line without a line end")));
    assert_eq!(r3.location.line, Some(9));
}

/// Loads `content` as `name` and returns the error message.
fn load_error(dir: &TempDir, name: &str, content: impl AsRef<[u8]>) -> Error {
    let path = dir.write(name, content);
    load_edges(&[path], &LoadOptions::default()).unwrap_err()
}

#[test]
fn every_jsonl_error_is_located_by_file_line_and_field() {
    let dir = TempDir::new("jsonl-errors");
    let good = "{\"user\": \"a\", \"community\": \"c\"}\n\n";
    let long = "x".repeat(MAX_SNIPPET_CHARS + 1);
    let long_text = format!("{{\"user\": \"u\", \"community\": \"c\", \"text\": \"{long}\"}}");
    let long_user = format!("{{\"user\": \"{}\", \"community\": \"c\"}}", "u".repeat(301));
    let cases: Vec<(&str, String, Option<&str>, &str)> = vec![
        ("malformed", "{\"user\": \"u\", ".into(), None, "malformed JSON"),
        ("unknown field", r#"{"user": "u", "community": "c", "score": 1}"#.into(), None, "unknown field `score`"),
        ("missing user", r#"{"community": "c"}"#.into(), None, "missing field `user`"),
        ("empty user", r#"{"user": "  ", "community": "c"}"#.into(), Some("user"), "empty"),
        ("control char", r#"{"user": "a\u0007b", "community": "c"}"#.into(), Some("user"), "control character"),
        ("zero count", r#"{"user": "u", "community": "c", "count": 0}"#.into(), Some("count"), "positive finite"),
        ("negative count", r#"{"user": "u", "community": "c", "count": -2.5}"#.into(), Some("count"), "positive"),
        ("string count", r#"{"user": "u", "community": "c", "count": "3"}"#.into(), Some("count"), "invalid type"),
        ("huge count", r#"{"user": "u", "community": "c", "count": 1e39}"#.into(), Some("count"), "32-bit float"),
        ("numeric user", r#"{"user": 42, "community": "c"}"#.into(), Some("user"), "invalid type"),
        ("long text", long_text, Some("text"), "more than 2000"),
        ("long user", long_user, Some("user"), "more than 300"),
    ];
    for (what, bad, field, needle) in cases {
        let e = load_error(&dir, "e.jsonl", format!("{good}{bad}\n{good}"));
        let msg = e.to_string();
        assert!(msg.contains("e.jsonl") && msg.contains("line 3") && msg.contains(needle), "{what}: {msg}");
        if let Some(field) = field {
            assert_eq!(e.location().and_then(|l| l.field.as_deref()), Some(field), "{what}: {msg}");
        }
        assert!(matches!(e.kind().name(), "parse" | "schema"), "{what}: {msg}");
    }
    // Invalid UTF-8.
    let mut bytes = good.as_bytes().to_vec();
    bytes.extend_from_slice(b"{\"user\": \"\xff\", \"community\": \"c\"}\n");
    let msg = load_error(&dir, "e.jsonl", bytes).to_string();
    assert!(msg.contains("line 3") && msg.contains("UTF-8"), "{msg}");
}

#[test]
fn every_csv_error_is_located_by_file_line_and_field() {
    let dir = TempDir::new("csv-errors");
    let head = "user,community,count,text\nu,c,1,ok\n";
    let long = "x".repeat(MAX_SNIPPET_CHARS + 1);
    let cases: Vec<(&str, String, Option<&str>, &str)> = vec![
        ("zero count", "u,c,0,".into(), Some("count"), "positive finite"),
        ("negative count", "u,c,-1,".into(), Some("count"), "positive finite"),
        ("nan count", "u,c,NaN,".into(), Some("count"), "positive finite"),
        ("word count", "u,c,many,".into(), Some("count"), "not a number"),
        ("empty user", ",c,1,".into(), Some("user"), "empty"),
        ("stray quote", "u,c\"x,1,".into(), None, "quote inside an unquoted field"),
        ("after closing quote", "u,\"c\"x,1,".into(), None, "after the closing quote"),
        ("too few fields", "u,c,1".into(), None, "3 fields where the header has 4"),
        ("too many fields", "u,c,1,t,extra".into(), None, "5 fields"),
        ("long text", format!("u,c,1,{long}"), Some("text"), "more than 2000"),
    ];
    for (what, bad, field, needle) in cases {
        let e = load_error(&dir, "e.csv", format!("{head}{bad}\nu,c,1,\n"));
        let msg = e.to_string();
        assert!(msg.contains("e.csv") && msg.contains("line 3") && msg.contains(needle), "{what}: {msg}");
        assert_eq!(e.location().and_then(|l| l.field.as_deref()), field, "{what}: {msg}");
    }
    let mut bytes = head.as_bytes().to_vec();
    bytes.extend_from_slice(b"u,c,1,\xfe\n");
    let msg = load_error(&dir, "e.csv", bytes).to_string();
    assert!(msg.contains("line 3") && msg.contains("field `text`") && msg.contains("UTF-8"), "{msg}");

    // Whole-file problems.
    let file_cases: Vec<(&str, &str, &str)> = vec![
        ("unknown column", "user,community,score\n", "`score`"),
        ("missing column", "user,count\nu,1\n", "no `community` column"),
        ("repeated column", "user,community,user\n", "twice"),
        ("empty file", "", "empty"),
        ("unterminated quote", "user,community,text\nu,c,ok\nu,c,\"never\nends\n", "line 3"),
    ];
    for (what, content, needle) in file_cases {
        let msg = load_error(&dir, "f.csv", content).to_string();
        assert!(msg.contains("f.csv") && msg.contains(needle), "{what}: {msg}");
    }
}

#[test]
fn parquet_errors_name_the_file_column_and_row() {
    let dir = TempDir::new("parquet-errors");
    let path = dir.0.join("e.parquet");
    let err = |columns: &[(&str, Col)]| {
        write_parquet(&path, columns, 2);
        load_edges(std::slice::from_ref(&path), &LoadOptions::default()).unwrap_err()
    };
    let users = || strs([Some("a"), Some("b"), Some("c")]);
    let comms = || strs([Some("x"), Some("y"), Some("z")]);

    let e = err(&[("user", users())]);
    assert!(e.to_string().contains("missing column `community`"), "{e}");
    let e = err(&[("user", users()), ("community", comms()), ("score", Col::Int(vec![Some(1); 3]))]);
    assert!(e.to_string().contains("unexpected column `score`"), "{e}");
    let e = err(&[("user", users()), ("community", comms()), ("count", strs([Some("1"); 3]))]);
    assert!(e.to_string().contains("expected integers or floats"), "{e}");

    // Row errors: rows counted from 1 across row groups (2 per group here).
    let e = err(&[("user", strs([Some("a"), Some("b"), None])), ("community", comms())]);
    let msg = e.to_string();
    assert!(msg.contains("e.parquet") && msg.contains("row 3") && msg.contains("field `user`"), "{msg}");
    let e = err(&[("user", users()), ("community", comms()), ("count", Col::Int(vec![Some(1), Some(0), Some(2)]))]);
    let msg = e.to_string();
    assert!(msg.contains("row 2") && msg.contains("field `count`") && msg.contains("positive"), "{msg}");
    let e = err(&[
        ("user", users()),
        ("community", Col::Str(vec![Some(b"x".to_vec()), Some(b"y".to_vec()), Some(vec![0xff])])),
    ]);
    assert!(e.to_string().contains("row 3") && e.to_string().contains("UTF-8"), "{e}");

    // Null counts are 1, integer counts work, text is optional.
    write_parquet(
        &path,
        &[("user", users()), ("community", comms()), ("count", Col::Int(vec![Some(3), None, Some(7)]))],
        2,
    );
    let g = load(&path);
    assert_eq!(g.weights(), &[3.0, 1.0, 7.0]);
    assert!(!g.has_snippets());

    // Not parquet at all.
    let bad = dir.write("garbage.parquet", b"PAR1 but not really");
    let e = load_edges(&[bad], &LoadOptions::default()).unwrap_err();
    assert!(e.to_string().contains("garbage.parquet") && e.to_string().contains("parquet"), "{e}");
}

#[test]
fn skip_bad_rows_counts_them_and_reports_the_first_few() {
    let dir = TempDir::new("skip");
    let mut text = String::new();
    for i in 0..15 {
        text.push_str(&format!("{{\"user\": \"u{}\", \"community\": \"c\"}}\n", i % 3));
        text.push_str("{\"user\": \"u\", \"community\": \"c\", \"count\": -1}\n");
    }
    text.push_str("not json\n");
    let path = dir.write("s.jsonl", &text);
    let options = LoadOptions { skip_bad_rows: true, ..LoadOptions::default() };
    let (g, stats) = load_edges(std::slice::from_ref(&path), &options).unwrap();
    assert_eq!((stats.rows_read, stats.rows_skipped), (31, 16));
    assert_eq!(stats.skipped.len(), 10);
    assert!(stats.skipped[0].contains("line 2") && stats.skipped[1].contains("line 4"), "{:?}", stats.skipped);
    assert_eq!((g.num_users(), g.num_edges()), (3, 3));
    assert_eq!(g.weights(), &[5.0, 5.0, 5.0]);

    // Without the option, the first bad row fails the load.
    let e = load_edges(&[path], &LoadOptions::default()).unwrap_err();
    assert!(e.to_string().contains("line 2"), "{e}");

    // A whole-file problem is never skipped.
    let bad = dir.write("bad.csv", "user,community\nu,c\nu,\"open\n");
    let e = load_edges(&[bad], &options).unwrap_err();
    assert!(e.to_string().contains("never closes"), "{e}");
}

#[test]
fn the_communities_file_gives_descriptions_and_nodes_without_edges() {
    let dir = TempDir::new("communities");
    let comms = dir.write(
        "communities.jsonl",
        "{\"name\": \"darkroom\", \"description\": \"developing film at home\"}\n\n\
         {\"name\": \"quiet\", \"description\": \"nobody posts here\"}\n\
         {\"name\": \"bare\"}\n",
    );
    let edges = dir.write("e.jsonl", jsonl(ROWS));
    let options = LoadOptions { communities: Some(comms), ..LoadOptions::default() };
    let (g, stats) = load_edges(std::slice::from_ref(&edges), &options).unwrap();
    let names: Vec<&str> = g.communities().iter().map(|c| c.name.as_str()).collect();
    // Listed first, in file order; then the others in order of first appearance.
    assert_eq!(names, ["darkroom", "quiet", "bare", "AnalogCommunity", "woodworking"]);
    assert_eq!(g.communities()[0].description, "developing film at home");
    assert_eq!(g.communities()[2].description, "");
    assert_eq!(g.by_community().degree(1), 0);
    assert_eq!(stats.communities, 5);

    for (content, needle) in [
        ("{\"name\": \"a\"}\n{\"name\": \"a\"}\n", "listed twice (lines 1 and 2)"),
        ("{\"name\": \"a\", \"about\": \"x\"}\n", "unknown field `about`"),
        ("{\"name\": \"\"}\n", "empty"),
    ] {
        let comms = dir.write("bad-communities.jsonl", content);
        let options = LoadOptions { communities: Some(comms), ..LoadOptions::default() };
        let e = load_edges(std::slice::from_ref(&edges), &options).unwrap_err();
        assert!(e.to_string().contains("bad-communities.jsonl") && e.to_string().contains(needle), "{e}");
    }
}

#[test]
fn snippets_per_edge_can_be_capped_or_dropped() {
    let dir = TempDir::new("snippets");
    let mut text = String::new();
    for i in 0..20 {
        text.push_str(&format!("{{\"user\": \"u\", \"community\": \"c\", \"text\": \"s{i}\"}}\n"));
    }
    let path = dir.write("s.jsonl", &text);
    let with = |max| {
        load_edges(std::slice::from_ref(&path), &LoadOptions { max_snippets_per_edge: max, ..LoadOptions::default() })
    };
    let (g, _) = with(MAX_SNIPPETS_PER_EDGE).unwrap();
    assert_eq!(g.snippets(0).len(), MAX_SNIPPETS_PER_EDGE);
    assert_eq!(&*g.snippets(0)[15], "s15");
    let (g, stats) = with(2).unwrap();
    assert_eq!(g.snippets(0).iter().map(|s| &**s).collect::<Vec<_>>(), ["s0", "s1"]);
    assert_eq!((g.weight(0), stats.snippets), (20.0, 2));
    let (g, _) = with(0).unwrap();
    assert!(!g.has_snippets());
    assert_eq!(with(MAX_SNIPPETS_PER_EDGE + 1).unwrap_err().kind(), "invalid_input");
}

#[test]
fn progress_is_reported_and_a_false_cancels() {
    let dir = TempDir::new("progress");
    let path = dir.write("p.jsonl", jsonl(ROWS));
    let calls = Cell::new(Vec::new());
    let record = |p: zipp_graph::io::LoadProgress| {
        let mut v = calls.take();
        v.push((p.pass, p.rows_read));
        calls.set(v);
        true
    };
    load_edges_with_progress(std::slice::from_ref(&path), &LoadOptions::default(), &record).unwrap();
    assert_eq!(calls.take(), [(1, 8), (2, 8)]);
    let e = load_edges_with_progress(&[path], &LoadOptions::default(), &|p| p.pass < 2).unwrap_err();
    assert_eq!(e.kind(), "cancelled");
}

#[test]
fn formats_come_from_extensions_or_the_options() {
    let dir = TempDir::new("formats");
    let txt = dir.write("edges.txt", jsonl(ROWS));
    let e = load_edges(std::slice::from_ref(&txt), &LoadOptions::default()).unwrap_err();
    assert!(e.to_string().contains("edges.txt") && e.to_string().contains(".jsonl"), "{e}");
    let options = LoadOptions { format: Some(EdgeFormat::Jsonl), ..LoadOptions::default() };
    assert_eq!(load_edges(&[txt], &options).unwrap().0.num_edges(), 5);
    assert_eq!(EdgeFormat::from_path(Path::new("A.PARQUET")).unwrap(), EdgeFormat::Parquet);
    // The options read from JSON, strictly.
    let o: LoadOptions =
        zipp_core::json::from_str(r#"{"format": "csv", "skip_bad_rows": true}"#, "load options").unwrap();
    assert_eq!((o.format, o.skip_bad_rows, o.max_snippets_per_edge), (Some(EdgeFormat::Csv), true, 16));
    assert!(zipp_core::json::from_str::<LoadOptions>(r#"{"skip": true}"#, "load options").is_err());
    // Empty input is an empty graph; no files at all is an error; a missing file is I/O.
    let empty = dir.write("empty.jsonl", "\n\n");
    let (g, stats) = load_edges(&[empty], &LoadOptions::default()).unwrap();
    assert_eq!((g.num_users(), g.num_communities(), stats.rows_read), (0, 0, 0));
    assert_eq!(load_edges(&[], &LoadOptions::default()).unwrap_err().kind(), "invalid_input");
    let e = load_edges(&[dir.0.join("absent.csv")], &LoadOptions::default()).unwrap_err();
    assert!(e.kind() == "io" && e.to_string().contains("absent.csv"), "{e}");
}

#[test]
fn counts_that_overflow_when_merged_are_refused() {
    let dir = TempDir::new("overflow");
    let row = "{\"user\": \"u\", \"community\": \"c\", \"count\": 3e38}\n";
    let e = load_error(&dir, "o.jsonl", row.repeat(2));
    assert!(e.to_string().contains("sum to more than"), "{e}");
}

#[test]
fn an_overlong_line_is_a_row_error_not_a_memory_spike() {
    let dir = TempDir::new("overlong");
    let mut text = String::from("{\"user\": \"u\", \"community\": \"c\"}\n");
    text.push_str(&"x".repeat(zipp_graph::io::MAX_LINE_BYTES + 10));
    text.push_str("\n{\"user\": \"v\", \"community\": \"c\"}\n");
    let path = dir.write("long.jsonl", &text);
    let options = LoadOptions { skip_bad_rows: true, ..LoadOptions::default() };
    let (g, stats) = load_edges(&[path], &options).unwrap();
    assert_eq!((g.num_users(), stats.rows_skipped), (2, 1));
    assert!(stats.skipped[0].contains("line 2") && stats.skipped[0].contains("longer than"), "{:?}", stats.skipped);
}
