//! The main job runs end to end: the quick-start binary over the example personas, with the
//! real default models (provisioned by `scripts/provision-models.sh`).
#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::process::Command;

#[test]
fn quickstart_runs_every_method_on_the_example_personas() {
    let out = Command::new(env!("CARGO_BIN_EXE_quickstart"))
        .args(["--limit-personas", "2", "--limit-prompts", "2", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "quickstart failed: {stderr}");
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2 * 2 * 5, "2 personas × 2 prompts × 5 methods");
    let methods: BTreeSet<&str> = lines.iter().map(|l| l["result"]["method"].as_str().unwrap()).collect();
    assert_eq!(methods, ["brag", "combined", "identity", "persona_only", "vprag"].into_iter().collect());
    for l in &lines {
        let base = l["request"]["prompt"].as_str().unwrap();
        assert!(l["result"]["prompt"].as_str().unwrap().starts_with(base), "{l}");
    }
}

#[test]
fn quickstart_rejects_unknown_arguments() {
    let out = Command::new(env!("CARGO_BIN_EXE_quickstart")).arg("--bogus").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown argument `--bogus`"));
}
