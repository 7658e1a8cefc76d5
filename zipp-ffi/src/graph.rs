//! Persona mining over C: zipp-factory's `MiningSpec` and its driver; and building a graph
//! too large for memory into an export folder (`GraphBuildSpec`). The work runs on a zipp
//! thread; the progress callback runs on the calling thread.

use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::atomic::Ordering;

use zipp_factory::graph::{self as fgraph, GraphBuildProgress, MiningProgress};
use zipp_factory::{GraphBuildSpec, MiningSpec};

use crate::call::{build_with, c_string, cancel_flag, guarded, out_ptr, str_arg};
use crate::zipp_models;

/// Told of persona mining's progress on the calling thread, with `user_data`: `stage` is
/// `"load"` (`done` rows read), `"features"` (`done` of `total` communities embedded),
/// `"train"` (epoch `done` of `total`, with its `loss` and, on evaluation epochs, the
/// validation `auc`), `"evaluate"` or `"evidence"` (`done` of `total` users); `loss` and `auc`
/// are NaN when they do not apply. `stage` is valid only during the call. Return 0 to go on,
/// anything else to cancel (`ZIPP_ERR_CANCELLED`).
pub type zipp_mining_callback = Option<
    unsafe extern "C" fn(
        stage: *const c_char,
        done: u64,
        total: u64,
        loss: f64,
        auc: f64,
        user_data: *mut c_void,
    ) -> c_int,
>;

/// Mines personas from an activity graph (SPEC §6): trains the GATv2 encoder (or loads its
/// weights), ranks each user's communities by attention and verbalizes them. `spec` is JSON:
/// `{"edges": ["edges.jsonl"], "communities": "communities.jsonl", "split": {"validation":
/// 0.05, "test": 0.1, "seed": 0}, "encoder": {"hidden": 64, "heads": 2, "out": 64}, "train":
/// {"epochs": 100, "lr": 0.005, "weight_decay": 0.01, "lambda": 0.5, "tau": 0.07, "seed": 0,
/// "eval_every": 5, "patience": 0, "mini_batch": null}, "content": "mean_of_communities", "evidence":
/// {"token_budget": 512, "snippets_per_community": 3}, "verbalizer": "template", "embedder":
/// "minilm", "checkpoint": "w.safetensors"}` (only `edges` required; `"movielens": true` for
/// the provisioned MovieLens 100K graph instead; `"weights": "w.safetensors"` to load an
/// encoder instead of training; `"mini_batch": {"batch_edges": 4096, "fanouts": [10, 10]}` to
/// train on neighbour-sampled mini-batches). The models (MiniLM, the CLIP vocabulary, a language model
/// for an LLM verbalizer) come from `models`, or the default models folder when it is NULL.
///
/// `on_progress` (may be NULL) is called on this thread; mining is cancelled
/// (`ZIPP_ERR_CANCELLED`, no result) when it returns non-zero or when `*cancel` (may be NULL)
/// becomes non-zero, set from any thread with an atomic store and polled at least every
/// 20 ms; it stops within one epoch. The result is a new string: `{"personas": [{"user",
/// "persona", "evidence", "verbalization"} or {"user", "error": {"kind", "message"}}, ...],
/// "metrics": {"test": {"auc", "hit10", "edges"} or null, "trained", "epochs", "best_epoch",
/// "seconds_per_epoch", "seconds"}, "history": [{"epoch", "loss", "link_loss", "align_loss",
/// "validation", "seconds"}, ...], "graph": {"users", "communities", "edges", "train_edges",
/// "validation_edges", "test_edges"}}`, users in the graph's order (a user whose persona
/// cannot be made is an error row); each `persona` is zipp's persona JSON.
///
/// # Safety
/// `models` is NULL or a live handle; `spec` NUL-terminated; `cancel` NULL or an aligned
/// `int` valid for the call, written only atomically; `on_progress` NULL or safe to call with
/// the arguments described; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn zipp_mine_personas(
    models: *const zipp_models,
    spec: *const c_char,
    on_progress: zipp_mining_callback,
    user_data: *mut c_void,
    cancel: *const c_int,
    out: *mut *mut c_char,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_ptr(out, "out")?;
        let spec = MiningSpec::from_json(str_arg(spec, "spec")?)?;
        let flag = cancel_flag(cancel)?;
        let result = build_with(models, |m| {
            fgraph::mine(
                &spec,
                m,
                |p: MiningProgress| match on_progress {
                    Some(f) => {
                        // Stage names are fixed identifiers: no NUL.
                        let stage = CString::new(p.stage.name()).unwrap_or_default();
                        // SAFETY: `f` is a valid callback (the caller's contract); `stage`
                        // outlives the call.
                        f(
                            stage.as_ptr(),
                            p.done,
                            p.total,
                            p.loss.unwrap_or(f64::NAN),
                            p.auc.unwrap_or(f64::NAN),
                            user_data,
                        ) == 0
                    }
                    None => true,
                },
                || flag.is_some_and(|f| f.load(Ordering::Relaxed) != 0),
            )
        })?;
        *out = c_string(result.to_json()?)?;
        Ok(())
    })
}

/// Told of a graph build's progress on the calling thread, with `user_data`: `pass` is 1
/// (reading ids), 2 (distributing rows to scratch files) or 3 (sorting and writing the
/// export), `rows` the rows of that pass so far. Return 0 to go on, anything else to cancel
/// (`ZIPP_ERR_CANCELLED`).
pub type zipp_graph_build_callback =
    Option<unsafe extern "C" fn(pass: u32, rows: u64, user_data: *mut c_void) -> c_int>;

/// Builds an activity graph into a folder in PyTorch Geometric's layout (the files
/// `zipp_graph::export` documents: `meta.json`, `user_rowptr.npy`, `user_col.npy`,
/// `edge_weight.npy`, `edge_split.npy`, `users.txt`, `communities.jsonl`,
/// `edge_snippets.jsonl`) in bounded memory, however large the graph: the rows are sorted
/// through scratch files, `memory_budget_mb` at a time, besides the id maps. `spec` is JSON:
/// `{"edges": ["edges.jsonl"], "communities": "communities.jsonl", "out": "graph-export",
/// "split": {"validation": 0.05, "test": 0.1, "seed": 0}, "memory_budget_mb": 1024,
/// "skip_bad_rows": false, "max_snippets_per_edge": 16, "format": "jsonl", "scratch_dir":
/// "/tmp"}` (only `edges` and `out` required; no `split`: every edge in training). Edge-file
/// errors are located by file and line (`ZIPP_ERR_PARSE`, `ZIPP_ERR_SCHEMA`).
///
/// `on_progress` (may be NULL) is called on this thread; the build is cancelled
/// (`ZIPP_ERR_CANCELLED`, no result; the scratch files are removed and `out` never holds a
/// half-written export with a `meta.json`) when it returns non-zero or when `*cancel` (may be NULL) becomes non-zero, set from any thread
/// with an atomic store and polled at least every 20 ms; it stops within 65,536 rows. The
/// result is a new string: `{"out", "load": {"rows_read", "rows_skipped", "skipped",
/// "users", "communities", "edges", "snippets", "seconds"}, "ranges", "largest_range_bytes",
/// "levels", "scratch_bytes"}`.
///
/// # Safety
/// `spec` NUL-terminated; `cancel` NULL or an aligned `int` valid for the call, written only
/// atomically; `on_progress` NULL or safe to call with the arguments described; `out`
/// writable.
#[no_mangle]
pub unsafe extern "C" fn zipp_build_graph(
    spec: *const c_char,
    on_progress: zipp_graph_build_callback,
    user_data: *mut c_void,
    cancel: *const c_int,
    out: *mut *mut c_char,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_ptr(out, "out")?;
        let spec = GraphBuildSpec::from_json(str_arg(spec, "spec")?)?;
        let flag = cancel_flag(cancel)?;
        let report = fgraph::build_graph(
            &spec,
            |p: GraphBuildProgress| match on_progress {
                // SAFETY: `f` is a valid callback (the caller's contract).
                Some(f) => f(u32::from(p.pass), p.rows, user_data) == 0,
                None => true,
            },
            || flag.is_some_and(|f| f.load(Ordering::Relaxed) != 0),
        )?;
        *out = c_string(report.to_json()?)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests;
