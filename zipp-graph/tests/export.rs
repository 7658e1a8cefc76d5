//! The PyTorch Geometric layout: a round trip, numpy's exact bytes, and every corruption
//! refused with the file named.

use std::path::{Path, PathBuf};

use zipp_core::error::Error;
use zipp_graph::export::{export_pyg, import_pyg, read_npy_f32, write_npy_f32, Features};
use zipp_graph::graph::{BipartiteGraph, GraphBuilder};
use zipp_graph::split::{EdgeSplit, Part, SplitOptions};

/// A fresh folder, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("zipp-graph-export-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// 4 users (one without edges), 3 communities (one without edges), snippets on some edges.
fn graph() -> BipartiteGraph {
    let mut b = GraphBuilder::new();
    let film = b.community("analog photography", "film cameras and darkroom work").unwrap();
    let wood = b.community("woodworking", "").unwrap();
    b.community("quiet \"corner\"", "nobody posts\nhere").unwrap();
    let alice = b.user("alice").unwrap();
    let bob = b.user("bob").unwrap();
    b.user("carol (lurker)").unwrap();
    let dan = b.user("dan ✓").unwrap();
    b.edge(alice, film, 3.0, Some("expired film, heavy grain")).unwrap();
    b.edge(alice, film, 1.0, Some("second \"roll\"")).unwrap();
    b.edge(alice, wood, 2.5, None).unwrap();
    b.edge(bob, wood, 1.0, Some("dovetails\nby hand")).unwrap();
    b.edge(dan, film, 7.0, None).unwrap();
    b.edge(dan, wood, 0.25, None).unwrap();
    b.build().unwrap()
}

fn split(g: &BipartiteGraph) -> EdgeSplit {
    let parts = (0..g.num_edges()).map(|e| [Part::Train, Part::Validation, Part::Test][e % 3]).collect();
    EdgeSplit::from_parts(g, parts).unwrap()
}

fn features(rows: usize, dim: usize, scale: f32) -> Vec<f32> {
    (0..rows * dim).map(|i| (i as f32 - 3.5) * scale).collect()
}

/// Exports the full example (graph, split, both feature matrices) into `dir`.
fn export_full(dir: &Path) -> (BipartiteGraph, EdgeSplit, Vec<f32>, Vec<f32>) {
    let g = graph();
    let s = split(&g);
    let x = features(g.num_communities(), 3, 0.5);
    let content = features(g.num_users(), 2, -1.25);
    export_pyg(&g, &s, Some((&x, 3)), Some((&content, 2)), dir).unwrap();
    (g, s, x, content)
}

#[test]
fn a_graph_with_snippets_features_and_split_round_trips() {
    let dir = TempDir::new("round-trip");
    let (g, s, x, content) = export_full(&dir.0);
    let (g2, s2, x2, content2) = import_pyg(&dir.0).unwrap();
    assert_eq!(g2, g);
    assert_eq!(s2, s);
    assert_eq!(x2, Some(Features::new(x, 3).unwrap()));
    assert_eq!(content2.as_ref().map(|c| (c.rows(), c.dim())), Some((4, 2)));
    assert_eq!(content2.unwrap().into_data(), content);
    assert_eq!(&*g2.snippets(g2.edge_id(1, 1).unwrap())[0], "dovetails\nby hand");

    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.0.join("meta.json")).unwrap()).unwrap();
    assert_eq!(
        meta,
        serde_json::json!({"format": "zipp-graph", "version": 1, "num_users": 4, "num_communities": 3,
            "num_edges": 5, "feature_dim": 3, "content_dim": 2, "has_snippets": true})
    );
    assert_eq!(std::fs::read_to_string(dir.0.join("users.txt")).unwrap(), "alice\nbob\ncarol (lurker)\ndan ✓\n");
    let (shape, values) = read_npy_f32(&dir.0.join("edge_weight.npy")).unwrap();
    assert_eq!((shape, values), (vec![5], g.weights().to_vec()));

    // The exported communities file is one the edge loader reads.
    let listed = zipp_graph::io::read_communities(&dir.0.join("communities.jsonl")).unwrap();
    assert_eq!(listed, g.communities());

    // A second export without the optional parts removes their stale files.
    let plain = EdgeSplit::new(&g, SplitOptions::default()).unwrap();
    let mut b = GraphBuilder::new();
    let c = b.community("c", "").unwrap();
    let u = b.user("u").unwrap();
    b.edge(u, c, 1.0, None).unwrap();
    let small = b.build().unwrap();
    let small_split = EdgeSplit::all_train(&small);
    export_pyg(&small, &small_split, None, None, &dir.0).unwrap();
    for stale in ["community_x.npy", "user_content.npy", "edge_snippets.jsonl"] {
        assert!(!dir.0.join(stale).exists(), "{stale}");
    }
    let (g3, s3, x3, c3) = import_pyg(&dir.0).unwrap();
    assert_eq!((g3, s3, x3, c3), (small, small_split, None, None));
    assert_eq!(plain.parts().len(), 5);
}

#[test]
fn npy_files_are_byte_identical_to_numpy_save() {
    // Produced by numpy 2.4.6: `np.save(f, np.array([[1.5, -2, 0.25], [3, 4, 5]], dtype=np.float32))`.
    let mut golden = b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }".to_vec();
    golden.resize(127, b' ');
    golden.push(b'\n');
    for v in [1.5f32, -2.0, 0.25, 3.0, 4.0, 5.0] {
        golden.extend_from_slice(&v.to_le_bytes());
    }
    let dir = TempDir::new("golden");
    let path = dir.0.join("x.npy");
    write_npy_f32(&path, &[2, 3], &[1.5, -2.0, 0.25, 3.0, 4.0, 5.0]).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), golden);
    assert_eq!(read_npy_f32(&path).unwrap(), (vec![2, 3], vec![1.5, -2.0, 0.25, 3.0, 4.0, 5.0]));

    // numpy's `|u1` (3,) and `<i8` (3,) headers, as written by the export.
    let g = graph();
    export_pyg(&g, &split(&g), None, None, &dir.0).unwrap();
    for (file, descr, len) in [("edge_split.npy", "|u1", 5), ("user_col.npy", "<i8", 5), ("user_rowptr.npy", "<i8", 5)]
    {
        let bytes = std::fs::read(dir.0.join(file)).unwrap();
        let header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({len},), }}");
        assert!(bytes[10..].starts_with(header.as_bytes()), "{file}");
        assert_eq!(&bytes[..10], b"\x93NUMPY\x01\x00v\x00", "{file}");
        assert_eq!(bytes[127], b'\n', "{file}");
    }

    // A version 2.0 file (4-byte header length) and a 0-d / empty array read too.
    let mut v2 = b"\x93NUMPY\x02\x00".to_vec();
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4)}\n";
    v2.extend_from_slice(&(header.len() as u32).to_le_bytes());
    v2.extend_from_slice(header.as_bytes());
    std::fs::write(&path, &v2).unwrap();
    assert_eq!(read_npy_f32(&path).unwrap(), (vec![0, 4], vec![]));
    write_npy_f32(&path, &[], &[2.5]).unwrap();
    assert_eq!(read_npy_f32(&path).unwrap(), (vec![], vec![2.5]));
}

#[test]
fn npy_corruptions_are_refused_naming_the_file() {
    let dir = TempDir::new("npy-corrupt");
    let path = dir.0.join("x.npy");
    write_npy_f32(&path, &[2, 3], &[0.0; 6]).unwrap();
    let good = std::fs::read(&path).unwrap();
    let header_end = good.len() - 24;
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        f(&mut b);
        std::fs::write(&path, &b).unwrap();
        read_npy_f32(&path).unwrap_err()
    };
    let replace = |b: &mut Vec<u8>, from: &str, to: &str| {
        let h = String::from_utf8(b[10..header_end].to_vec()).unwrap().replacen(from, to, 1);
        assert_eq!(h.len(), header_end - 10, "same length");
        b.splice(10..header_end, h.into_bytes());
    };
    let cases: Vec<(&str, Error)> = vec![
        ("wrong magic", with(&|b| b[1] = b'X')),
        ("dtype", with(&|b| replace(b, "<f4", "<f8"))),
        ("Fortran order", with(&|b| replace(b, "False", "True "))),
        ("truncated", with(&|b| b.truncate(b.len() - 1))),
        ("after the", with(&|b| b.push(0))),
        ("truncated", with(&|b| b.truncate(20))),
        ("bad header", with(&|b| replace(b, "'shape'", "'shapf'"))),
        ("version 9", with(&|b| b[6] = 9)),
        ("needs", with(&|b| replace(b, "(2, 3)", "(9, 9)"))),
    ];
    for (needle, e) in cases {
        let msg = e.to_string();
        assert_eq!(e.kind(), "model_invalid", "{needle}: {msg}");
        assert!(msg.contains("x.npy") && msg.contains(needle), "{needle}: {msg}");
    }
    // Writing checks the shape.
    assert_eq!(write_npy_f32(&path, &[2, 2], &[0.0; 3]).unwrap_err().kind(), "invalid_input");
    assert_eq!(read_npy_f32(&dir.0.join("absent.npy")).unwrap_err().kind(), "io");
}

#[test]
fn export_corruptions_are_refused_naming_the_file() {
    let dir = TempDir::new("export-corrupt");
    let source = dir.0.join("good");
    export_full(&source);
    let mut n = 0;
    // Copies the good export, damages one file, imports.
    let mut damaged = |file: &str, damage: &dyn Fn(&Path)| -> Error {
        n += 1;
        let d = dir.0.join(format!("case{n}"));
        std::fs::create_dir_all(&d).unwrap();
        for entry in std::fs::read_dir(&source).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), d.join(entry.file_name())).unwrap();
        }
        damage(&d.join(file));
        import_pyg(&d).unwrap_err()
    };
    let rewrite = |from: &'static str, to: &'static str| {
        move |p: &Path| {
            let text = std::fs::read_to_string(p).unwrap();
            assert!(text.contains(from), "{from}");
            std::fs::write(p, text.replacen(from, to, 1)).unwrap();
        }
    };
    let npy_i64 = |values: &'static [i64]| {
        move |p: &Path| {
            // A valid float32 file where int64 is expected, or int64 values of our choosing.
            let mut bytes = std::fs::read(p).unwrap();
            let data = bytes.len() - values.len() * 8;
            for (i, v) in values.iter().enumerate() {
                bytes[data + i * 8..data + i * 8 + 8].copy_from_slice(&v.to_le_bytes());
            }
            std::fs::write(p, bytes).unwrap();
        }
    };
    let cases: Vec<(&str, &str, Error)> = vec![
        ("meta.json", "version 2", damaged("meta.json", &rewrite("\"version\": 1", "\"version\": 2"))),
        ("meta.json", "unknown field", damaged("meta.json", &rewrite("\"version\"", "\"extra\": 1, \"version\""))),
        ("users.txt", "5 users where meta.json says 4", damaged("users.txt", &rewrite("bob\n", "bob\nbobby\n"))),
        ("users.txt", "no line end", damaged("users.txt", &rewrite("dan ✓\n", "dan ✓"))),
        (
            "communities.jsonl",
            "2 communities",
            damaged("communities.jsonl", &|p: &Path| {
                let text = std::fs::read_to_string(p).unwrap();
                std::fs::write(p, text.lines().take(2).map(|l| format!("{l}\n")).collect::<String>()).unwrap();
            }),
        ),
        ("user_col.npy", "dtype", damaged("user_col.npy", &|p: &Path| write_npy_f32(p, &[5], &[0.0; 5]).unwrap())),
        (
            "user_col.npy",
            "shape (4,), expected (5,)",
            damaged("user_col.npy", &|p: &Path| {
                let bytes = std::fs::read(p).unwrap();
                let at = bytes.windows(4).position(|w| w == b"(5,)").unwrap();
                let mut out = bytes[..bytes.len() - 8].to_vec();
                out[at + 1] = b'4';
                std::fs::write(p, out).unwrap();
            }),
        ),
        ("user_col.npy", "community 3 is not in 0..3", damaged("user_col.npy", &npy_i64(&[0, 1, 1, 0, 3]))),
        ("user_rowptr.npy", "offsets must rise", damaged("user_rowptr.npy", &npy_i64(&[0, 3, 2, 2, 5]))),
        (
            "user_rowptr.npy",
            "truncated",
            damaged("user_rowptr.npy", &|p: &Path| {
                let bytes = std::fs::read(p).unwrap();
                std::fs::write(p, &bytes[..bytes.len() - 3]).unwrap();
            }),
        ),
        (
            "edge_split.npy",
            "part 3",
            damaged("edge_split.npy", &|p: &Path| {
                let mut bytes = std::fs::read(p).unwrap();
                *bytes.last_mut().unwrap() = 3;
                std::fs::write(p, bytes).unwrap();
            }),
        ),
        (
            "edge_weight.npy",
            "not finite and positive",
            damaged("edge_weight.npy", &|p: &Path| {
                let mut bytes = std::fs::read(p).unwrap();
                let n = bytes.len();
                bytes[n - 4..].copy_from_slice(&(-1.0f32).to_le_bytes());
                std::fs::write(p, bytes).unwrap();
            }),
        ),
        (
            "community_x.npy",
            "shape (3, 4), expected (3, 3)",
            damaged("community_x.npy", &|p: &Path| write_npy_f32(p, &[3, 4], &[0.0; 12]).unwrap()),
        ),
        (
            "user_content.npy",
            "not finite",
            damaged("user_content.npy", &|p: &Path| {
                write_npy_f32(p, &[4, 2], &[0.0, 0.0, f32::NAN, 0.0, 0.0, 0.0, 0.0, 0.0]).unwrap()
            }),
        ),
        ("edge_snippets.jsonl", "line 2", damaged("edge_snippets.jsonl", &rewrite("\n[", "\n[1, "))),
        (
            "edge_snippets.jsonl",
            "4 lines where meta.json says 5 edges",
            damaged("edge_snippets.jsonl", &|p: &Path| {
                let text = std::fs::read_to_string(p).unwrap();
                std::fs::write(p, text.lines().take(4).map(|l| format!("{l}\n")).collect::<String>()).unwrap();
            }),
        ),
        ("user_content.npy", "No such file", damaged("user_content.npy", &|p: &Path| std::fs::remove_file(p).unwrap())),
    ];
    for (file, needle, e) in cases {
        let msg = e.to_string();
        assert!(msg.contains(file) && msg.contains(needle), "{file} / {needle}: {msg}");
    }
}

#[test]
fn export_checks_its_arguments() {
    let dir = TempDir::new("export-args");
    let g = graph();
    let s = split(&g);
    let x = features(3, 2, 1.0);
    let e = export_pyg(&g, &s, Some((&x, 3)), None, &dir.0).unwrap_err();
    assert!(e.kind() == "invalid_input" && e.to_string().contains("community_x"), "{e}");
    let e = export_pyg(&g, &s, Some((&[], 0)), None, &dir.0).unwrap_err();
    assert_eq!(e.kind(), "invalid_input");
    let nan = [f32::NAN; 8];
    let e = export_pyg(&g, &s, None, Some((&nan, 2)), &dir.0).unwrap_err();
    assert!(e.to_string().contains("user_content row 0"), "{e}");
    let other = EdgeSplit::all_train(&{
        let mut b = GraphBuilder::new();
        let c = b.community("c", "").unwrap();
        let u = b.user("u").unwrap();
        b.edge(u, c, 1.0, None).unwrap();
        b.build().unwrap()
    });
    assert_eq!(export_pyg(&g, &other, None, None, &dir.0).unwrap_err().kind(), "invalid_input");
    assert!(Features::new(vec![1.0; 5], 2).is_err());
    assert!(Features::new(vec![], 0).is_err());
    let f = Features::new(vec![1.0, 2.0, 3.0, 4.0], 2).unwrap();
    assert_eq!((f.rows(), f.row(1)), (2, &[3.0, 4.0][..]));
}
