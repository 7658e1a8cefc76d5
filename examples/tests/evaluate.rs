//! The `evaluate` example end to end on both benches (small), with the real models and the
//! provisioned bench data: tables on stdout, the JSON report, the samples stream, and the
//! same report for the same seed.
#![forbid(unsafe_code)]

use std::process::Command;

fn evaluate(args: &[&str]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_evaluate")).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "evaluate {args:?} failed: {stderr}");
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("zipp-evaluate-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn the_synthetic_bench_gives_the_method_table_and_is_reproducible() {
    let json = tmp("synthetic.json");
    let samples = tmp("samples.jsonl");
    let args = ["--bench", "synthetic", "--personas", "3", "--seed", "7", "--json"];
    let (table, stderr) =
        evaluate(&[&args[..], &[json.to_str().unwrap(), "--samples", samples.to_str().unwrap()]].concat());
    for needle in ["social_post", "cultural_site", "living_room", "garden", "VPTT_c", "win%", "vprag", "combined"] {
        assert!(table.contains(needle), "{needle} missing:\n{table}");
    }
    assert!(stderr.contains("wall time") && stderr.contains("embedding memory"), "{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(doc["report"]["personas"], 3);
    assert_eq!(doc["report"]["tables"].as_array().unwrap().len(), 6);
    assert!(doc["run"]["wall_seconds"].as_f64().unwrap() > 0.0);
    let rows = std::fs::read_to_string(&samples).unwrap();
    assert_eq!(rows.lines().count(), 3 * 4 * 5, "personas × queries × methods");
    // Same seed, same tables (timings aside).
    let json2 = tmp("synthetic2.json");
    evaluate(&[&args[..], &[json2.to_str().unwrap()]].concat());
    let doc2: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json2).unwrap()).unwrap();
    assert_eq!(doc["report"]["tables"], doc2["report"]["tables"]);
}

#[test]
fn the_movielens_bench_runs_on_real_users() {
    let (table, _) =
        evaluate(&["--bench", "movielens", "--personas", "2", "--methods", "identity,vprag", "--json", "none"]);
    assert!(table.starts_with("2 personas"), "{table}");
    assert!(table.contains("vprag"));
}

#[test]
fn bad_arguments_are_reported_not_panicked() {
    for (args, needle) in [
        (&["--bogus"][..], "unknown argument `--bogus`"),
        (&["--personas", "many"][..], "--personas"),
        (&["--novelty", "maybe"][..], "--novelty"),
        (&["--methods", "identity,nope", "--personas", "1"][..], "nope"),
        (&["--bench", "/nonexistent.jsonl"][..], "nonexistent"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_evaluate")).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
