//! The mining export called from Rust the way C calls it: a tiny CSV graph mined with the
//! real MiniLM and CLIP vocabulary, progress per stage, cancellation by the callback and by
//! the flag, and statuses for NULLs, invalid UTF-8, bad specs and missing files.

use std::ffi::{CStr, CString};
use std::ptr::{null, null_mut};

use super::*;
use crate::{zipp_last_error_message, zipp_status, zipp_string_free};

fn last_error() -> String {
    let p = zipp_last_error_message();
    if p.is_null() {
        return String::new();
    }
    // SAFETY: the thread's last error message, valid until the next zipp call.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Counts reports per stage (`[load, features, train, evaluate, evidence]`) and cancels
/// at the `stop_at`-th epoch (0: never).
struct Seen {
    per_stage: [u64; 5],
    last_train: (u64, u64, f64),
    stop_at: u64,
}

unsafe extern "C" fn record(
    stage: *const c_char,
    done: u64,
    total: u64,
    loss: f64,
    _auc: f64,
    user: *mut c_void,
) -> c_int {
    // SAFETY: `user` is the `Seen` the test passed; `stage` a NUL-terminated name.
    let (seen, stage) = unsafe { (&mut *(user as *mut Seen), CStr::from_ptr(stage).to_str().unwrap()) };
    let i = ["load", "features", "train", "evaluate", "evidence"].iter().position(|s| *s == stage).unwrap();
    seen.per_stage[i] += 1;
    if stage == "train" {
        seen.last_train = (done, total, loss);
        return c_int::from(seen.stop_at != 0 && done >= seen.stop_at);
    }
    0
}

fn run(spec: &str, seen: &mut Seen, cancel: *const c_int) -> (i32, *mut c_char) {
    let spec = CString::new(spec).unwrap();
    // Garbage the call must overwrite.
    let mut out: *mut c_char = std::ptr::dangling_mut();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract.
    let s = unsafe {
        zipp_mine_personas(null(), spec.as_ptr(), Some(record), seen as *mut Seen as *mut c_void, cancel, &mut out)
    };
    (s, out)
}

#[test]
fn mines_a_tiny_graph_reports_progress_and_cancels() {
    let dir = std::env::temp_dir().join(format!("zipp-ffi-mine-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let edges = dir.join("edges.csv");
    let mut rows = String::from("user,community,text\n");
    for (u, cs) in [("ana", ["analog photography", "film noir"]), ("bo", ["sourdough baking", "ramen"])] {
        for c in cs {
            rows.push_str(&format!("{u},{c},\"I love {c}, truly\"\n"));
        }
    }
    rows.push_str("cy,analog photography,\ncy,ramen,\n");
    std::fs::write(&edges, rows).unwrap();
    let spec = serde_json::json!({"edges": [edges], "split": {"validation": 0.0, "test": 0.0},
        "encoder": {"hidden": 8, "heads": 2, "out": 8}, "train": {"epochs": 3}})
    .to_string();
    let mut seen = Seen { per_stage: [0; 5], last_train: (0, 0, 0.0), stop_at: 0 };
    let (s, out) = run(&spec, &mut seen, null());
    assert_eq!(s, zipp_status::ZIPP_OK as i32, "{}", last_error());
    // SAFETY: a string this library returned, freed once.
    let json: serde_json::Value = serde_json::from_str(unsafe { CStr::from_ptr(out) }.to_str().unwrap()).unwrap();
    // SAFETY: as above.
    unsafe { zipp_string_free(out) };
    let users: Vec<&str> = json["personas"].as_array().unwrap().iter().map(|u| u["user"].as_str().unwrap()).collect();
    assert_eq!(users, ["ana", "bo", "cy"]);
    assert_eq!(json["personas"][0]["persona"]["id"], "ana");
    let names: Vec<&str> = json["personas"][1]["evidence"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"ramen") && names.contains(&"sourdough baking"), "{names:?}");
    assert!(json["metrics"]["test"].is_null(), "no test edges, no test metrics");
    assert_eq!(json["metrics"]["epochs"], 3);
    assert_eq!(seen.per_stage[2], 3);
    assert_eq!((seen.last_train.0, seen.last_train.1), (3, 3));
    assert!(seen.last_train.2.is_finite() && seen.per_stage[0] >= 1 && seen.per_stage[4] >= 1);

    // Cancelled by the callback at epoch 2, or by the flag before anything runs.
    let mut seen = Seen { per_stage: [0; 5], last_train: (0, 0, 0.0), stop_at: 2 };
    let (s, out) = run(&spec, &mut seen, null());
    assert_eq!((s, out), (zipp_status::ZIPP_ERR_CANCELLED as i32, null_mut()));
    assert_eq!(seen.per_stage[2], 2);
    let flag: c_int = 1;
    let mut seen = Seen { per_stage: [0; 5], last_train: (0, 0, 0.0), stop_at: 0 };
    assert_eq!(run(&spec, &mut seen, &flag).0, zipp_status::ZIPP_ERR_CANCELLED as i32);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn nulls_bad_utf8_bad_specs_and_missing_files_are_statuses() {
    let mut out: *mut c_char = null_mut();
    // SAFETY: a call into the C ABI under test; NULL where the test checks NULL handling.
    let s = unsafe { zipp_mine_personas(null(), null(), None, null_mut(), null(), &mut out) };
    assert_eq!(s, zipp_status::ZIPP_ERR_NULL_POINTER as i32);
    let spec = CString::new(r#"{"edges": ["/nonexistent/zipp/e.jsonl"]}"#).unwrap();
    // SAFETY: as above.
    let s = unsafe { zipp_mine_personas(null(), spec.as_ptr(), None, null_mut(), null(), null_mut()) };
    assert_eq!(s, zipp_status::ZIPP_ERR_NULL_POINTER as i32);
    let bad = [b'{', 0xff, b'}', 0];
    // SAFETY: as above; `bad` is NUL-terminated.
    let s = unsafe { zipp_mine_personas(null(), bad.as_ptr() as *const c_char, None, null_mut(), null(), &mut out) };
    assert_eq!(s, zipp_status::ZIPP_ERR_INVALID_UTF8 as i32);
    let mut seen = Seen { per_stage: [0; 5], last_train: (0, 0, 0.0), stop_at: 0 };
    for (spec, status, needle) in [
        (r#"{"edges": ["e.jsonl"], "train": {"epohcs": 2}}"#, zipp_status::ZIPP_ERR_SCHEMA, "epohcs"),
        (r#"{"edges": ["e.jsonl"]"#, zipp_status::ZIPP_ERR_PARSE, "line 1"),
        ("{}", zipp_status::ZIPP_ERR_INVALID_INPUT, "edges"),
        (r#"{"edges": ["/nonexistent/zipp/e.jsonl"]}"#, zipp_status::ZIPP_ERR_IO, "e.jsonl"),
    ] {
        let (s, out) = run(spec, &mut seen, null());
        assert_eq!((s, out), (status as i32, null_mut()), "{spec}");
        let message = last_error();
        assert!(message.contains(needle), "{spec}: {message}");
    }
    assert_eq!(seen.per_stage, [0; 5], "nothing ran");
}

unsafe extern "C" fn count_passes(pass: u32, _rows: u64, user: *mut c_void) -> c_int {
    // SAFETY: `user` is the `[u32; 4]` the test passed.
    let seen = unsafe { &mut *(user as *mut [u32; 4]) };
    seen[pass as usize] += 1;
    0
}

#[test]
fn builds_a_graph_on_disk_reports_passes_and_cancels() {
    let dir = std::env::temp_dir().join(format!("zipp-ffi-build-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let edges = dir.join("edges.jsonl");
    std::fs::write(
        &edges,
        "{\"user\":\"ana\",\"community\":\"film\",\"text\":\"grain\"}\n{\"user\":\"bo\",\"community\":\"film\"}\n",
    )
    .unwrap();
    let out_dir = dir.join("export");
    let spec =
        CString::new(serde_json::json!({"edges": [edges], "out": out_dir, "memory_budget_mb": 1}).to_string()).unwrap();
    let mut seen = [0u32; 4];
    let mut out: *mut c_char = std::ptr::dangling_mut();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract.
    let s = unsafe {
        zipp_build_graph(spec.as_ptr(), Some(count_passes), &mut seen as *mut _ as *mut c_void, null(), &mut out)
    };
    assert_eq!(s, zipp_status::ZIPP_OK as i32, "{}", last_error());
    // SAFETY: a string this library returned, freed once.
    let json: serde_json::Value = serde_json::from_str(unsafe { CStr::from_ptr(out) }.to_str().unwrap()).unwrap();
    // SAFETY: as above.
    unsafe { zipp_string_free(out) };
    assert_eq!((json["load"]["users"].as_u64(), json["load"]["edges"].as_u64()), (Some(2), Some(2)));
    assert_eq!(seen, [0, 1, 1, 1]);
    assert!(out_dir.join("meta.json").exists() && out_dir.join("edge_snippets.jsonl").exists());

    // A set flag cancels before the first pass ends; the older export's meta.json stays.
    let flag: c_int = 1;
    let mut seen = [0u32; 4];
    // SAFETY: as above.
    let s = unsafe {
        zipp_build_graph(spec.as_ptr(), Some(count_passes), &mut seen as *mut _ as *mut c_void, &flag, &mut out)
    };
    assert_eq!((s, out), (zipp_status::ZIPP_ERR_CANCELLED as i32, null_mut()));
    assert_eq!(seen, [0; 4], "no report after the cancel");
    assert!(out_dir.join("meta.json").exists());

    // SAFETY: as above; NULL where the test checks NULL handling.
    let s = unsafe { zipp_build_graph(null(), None, null_mut(), null(), &mut out) };
    assert_eq!(s, zipp_status::ZIPP_ERR_NULL_POINTER as i32);
    let bad = CString::new(r#"{"edges": ["/nonexistent/zipp/e.jsonl"], "out": "/tmp/zipp-never"}"#).unwrap();
    // SAFETY: as above.
    let s = unsafe { zipp_build_graph(bad.as_ptr(), None, null_mut(), null(), &mut out) };
    assert!(s == zipp_status::ZIPP_ERR_IO as i32 && last_error().contains("e.jsonl"), "{}", last_error());
    let bad = CString::new(r#"{"edges": ["e.jsonl"]}"#).unwrap();
    // SAFETY: as above.
    let s = unsafe { zipp_build_graph(bad.as_ptr(), None, null_mut(), null(), &mut out) };
    assert!(s == zipp_status::ZIPP_ERR_INVALID_INPUT as i32 && last_error().contains("out"), "{}", last_error());
    std::fs::remove_dir_all(&dir).unwrap();
}
