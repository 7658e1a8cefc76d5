//! Evaluation over C: the VPTT scorer of one persona, the streaming method-table runner,
//! and the statistics behind the tables (SPEC §4 and §9).

use std::ffi::c_char;

use zipp_eval::{stats, EvalAggregate, Report};
use zipp_factory::shared::{vptt_options, Scorer, SharedEvaluation};

use crate::call::{
    c_string, fail, free_handle, guarded, handle, into_handle, opt_str_arg, out_arg, out_ptr, str_arg, CallResult,
};
use crate::{json, result_json, zipp_models, zipp_persona, zipp_status};

// ---------------------------------------------------------------------------------------
// VPTT scorer

/// A persona's VPTT scoring state (persona-text vector, caption basis, clusters, trigrams),
/// built once and reused for every prompt. Immutable and thread-safe. It keeps the embedder
/// alive, so the models and persona handles may be freed before it.
pub struct zipp_scorer {
    inner: Scorer,
}

/// Builds the VPTT scorer of `persona` (SPEC §4) with the models' embedder. `options_json`
/// is a JSON object of VPTT options, every field optional:
/// `{"weights": {"pa": 0.2, "gs": 0.3, "cp": 0.3, "nv": 0.2}, "clusters": 3, "seed": 0,
/// "novelty": "hard"|"soft", "cp_unit_coordinates": true, "gs_tolerance": 1e-6,
/// "kmeans_iterations": 100, "soft_cp_temperature": 0.1}`; NULL means the defaults.
/// Embeds the persona's memory and text (once per persona handle for the memory). A persona
/// without posts is `ZIPP_ERR_INVALID_INPUT`.
///
/// # Safety
/// `models`, `persona` are NULL or live handles; `options_json` NULL or a NUL-terminated
/// string; `out` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn zipp_scorer_new(
    models: *const zipp_models,
    persona: *const zipp_persona,
    options_json: *const c_char,
    out: *mut *mut zipp_scorer,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_ptr(out, "out")?;
        let (models, persona) = (handle(models, "models")?, handle(persona, "persona")?);
        let options = vptt_options(opt_str_arg(options_json, "options_json")?)?;
        let inner = Scorer::new(&models.inner, &persona.inner, &options)?;
        *out = into_handle(zipp_scorer { inner });
        Ok(())
    })
}

/// Scores one prompt: the VPTT score as JSON, a new string:
/// `{"pa": …, "gs": …, "cp": …, "cp_soft": …, "nv": …, "nv_soft": null, "vptt": …, "vptt_c": …}`
/// (`nv_soft` is a number with `"novelty": "soft"`). NV is measured: the evaluation's
/// "NV = 0 without memory" convention does not apply to a single score.
///
/// # Safety
/// `scorer` is NULL or a live handle; `prompt` a NUL-terminated string; `out_json` writable.
#[no_mangle]
pub unsafe extern "C" fn zipp_scorer_score(
    scorer: *const zipp_scorer,
    prompt: *const c_char,
    out_json: *mut *mut c_char,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_ptr(out_json, "out_json")?;
        let scorer = handle(scorer, "scorer")?;
        let prompt = str_arg(prompt, "prompt")?;
        *out = result_json(&scorer.inner.score(prompt)?)?;
        Ok(())
    })
}

/// Scores many prompts (embedded in one batch). `prompts_json` is a JSON array of strings;
/// the result a JSON array of scores (as `zipp_scorer_score`) in the same order.
///
/// # Safety
/// `scorer` is NULL or a live handle; `prompts_json` a NUL-terminated string; `out_json`
/// writable.
#[no_mangle]
pub unsafe extern "C" fn zipp_scorer_score_batch(
    scorer: *const zipp_scorer,
    prompts_json: *const c_char,
    out_json: *mut *mut c_char,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_ptr(out_json, "out_json")?;
        let scorer = handle(scorer, "scorer")?;
        let prompts: Vec<String> = json::parse(str_arg(prompts_json, "prompts_json")?, "prompt list")?;
        let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
        *out = result_json(&scorer.inner.score_batch(&refs)?)?;
        Ok(())
    })
}

/// The dimension of the persona's caption span (≤ its number of posts).
///
/// # Safety
/// `scorer` is NULL or a live handle; `out` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn zipp_scorer_rank(scorer: *const zipp_scorer, out: *mut usize) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_arg(out, "out")?;
        *out = handle(scorer, "scorer")?.inner.scorer().rank();
        Ok(())
    })
}

/// The number of caption clusters CP measures against.
///
/// # Safety
/// `scorer` is NULL or a live handle; `out` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn zipp_scorer_clusters(scorer: *const zipp_scorer, out: *mut usize) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_arg(out, "out")?;
        *out = handle(scorer, "scorer")?.inner.scorer().clusters();
        Ok(())
    })
}

/// Frees a scorer. NULL is ignored.
///
/// # Safety
/// `scorer` is NULL or a live handle no other thread is using.
#[no_mangle]
pub unsafe extern "C" fn zipp_scorer_free(scorer: *mut zipp_scorer) {
    // SAFETY: the caller passes NULL or a live handle of this type that no other thread uses
    // (this function\'s `# Safety` contract), as `free_handle` requires.
    unsafe { free_handle(scorer) }
}

// ---------------------------------------------------------------------------------------
// Evaluation

/// A streaming evaluation: methods × personas × queries, scored with VPTT and folded into
/// running aggregates (memory does not grow with the number of personas). Thread-safe: calls
/// on one handle are serialised by a lock inside it, so it may be shared, though personas
/// are then added one at a time. It keeps the models it needs alive.
pub struct zipp_evaluation {
    inner: SharedEvaluation,
}

/// Creates an evaluation from a JSON configuration (every field optional):
/// `{"methods": ["identity", {"method": "vprag", "temperature": 0.2}, …],
///   "queries": "vptt" | "extended" | [{"name": "q", "task": "edit", "prompt": "…"}, …],
///   "options": {"novelty": "zero_without_memory" | "measured", "vptt": {VPTT options},
///               "tie_epsilon": 1e-9, "confidence": 0.95, "baseline": "identity", "spearman_sample": 100000}}`.
/// NULL is the defaults: the five methods (identity, persona_only, brag, vprag, combined)
/// on the four VPTT queries. Errors name the field (`methods[1]`). Loads the models the
/// methods need and embeds the queries.
///
/// # Safety
/// `models` is NULL or a live handle; `config_json` NULL or a NUL-terminated string; `out`
/// is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn zipp_evaluation_new(
    models: *const zipp_models,
    config_json: *const c_char,
    out: *mut *mut zipp_evaluation,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_ptr(out, "out")?;
        let models = handle(models, "models")?;
        let inner = SharedEvaluation::from_json(&models.inner, opt_str_arg(config_json, "config_json")?)?;
        *out = into_handle(zipp_evaluation { inner });
        Ok(())
    })
}

/// Personalizes `persona` with every method for every query, scores every prompt and adds
/// the scores to the aggregates. All or nothing: on failure nothing is added. When
/// `out_samples_json` is not NULL it receives the scored prompts as a JSON array (query-major,
/// methods × queries), each `{"persona", "query", "method", "prompt", "pa", "gs", "cp",
/// "cp_soft", "nv", "nv_soft", "vptt", "vptt_c"}`, a new string.
///
/// # Safety
/// `evaluation`, `persona` are NULL or live handles; `out_samples_json` is NULL or valid for
/// writes.
#[no_mangle]
pub unsafe extern "C" fn zipp_evaluation_add_persona(
    evaluation: *mut zipp_evaluation,
    persona: *const zipp_persona,
    out_samples_json: *mut *mut c_char,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = if out_samples_json.is_null() { None } else { Some(out_ptr(out_samples_json, "out_samples_json")?) };
        // Shared, not `&mut`: the lock inside serialises concurrent calls on one handle.
        let (evaluation, persona) = (handle(evaluation.cast_const(), "evaluation")?, handle(persona, "persona")?);
        let samples = evaluation.inner.add_persona(&persona.inner)?;
        if let Some(out) = out {
            *out = result_json(&samples)?;
        }
        Ok(())
    })
}

/// The configuration the evaluation was built from as JSON, omitted fields filled in with
/// their defaults (for a run record next to the report), a new string.
///
/// # Safety
/// `evaluation` is NULL or a live handle; `out_json` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn zipp_evaluation_config(evaluation: *const zipp_evaluation, out_json: *mut *mut c_char) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_ptr(out_json, "out_json")?;
        *out = result_json(handle(evaluation, "evaluation")?.inner.config())?;
        Ok(())
    })
}

/// The number of personas added so far.
///
/// # Safety
/// `evaluation` is NULL or a live handle; `out` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn zipp_evaluation_personas(evaluation: *const zipp_evaluation, out: *mut u64) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_arg(out, "out")?;
        *out = handle(evaluation, "evaluation")?.inner.personas()?;
        Ok(())
    })
}

/// The report so far as JSON, a new string: `personas`, `methods`, `novelty`, `weights`,
/// `confidence`, `baseline`, `tables` (one per query, then one per task kind with several
/// queries: rows of PA, GS, CP, NV, VPTT_c and VPTT with means, s.d., win %, Wilson
/// intervals, Cohen's d, head-to-head tests) and `timings`. Same JSON as the Rust and Python
/// reports.
///
/// # Safety
/// `evaluation` is NULL or a live handle; `out_json` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn zipp_evaluation_report(evaluation: *const zipp_evaluation, out_json: *mut *mut c_char) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_ptr(out_json, "out_json")?;
        let report = handle(evaluation, "evaluation")?.inner.report()?;
        *out = c_string(report.to_json(false)?)?;
        Ok(())
    })
}

/// The report so far as text tables (the VPTT paper's Table 7 layout), a new string.
///
/// # Safety
/// `evaluation` is NULL or a live handle; `out_text` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn zipp_evaluation_table(evaluation: *const zipp_evaluation, out_text: *mut *mut c_char) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_ptr(out_text, "out_text")?;
        let report = handle(evaluation, "evaluation")?.inner.report()?;
        *out = c_string(report.table())?;
        Ok(())
    })
}

/// The text tables of a report given as JSON (as `zipp_evaluation_report` returns it, e.g.
/// read back from a file), a new string.
///
/// # Safety
/// `report_json` is a NUL-terminated string; `out_text` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn zipp_report_table(report_json: *const c_char, out_text: *mut *mut c_char) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_ptr(out_text, "out_text")?;
        let report = Report::from_json(str_arg(report_json, "report_json")?)?;
        *out = c_string(report.table())?;
        Ok(())
    })
}

/// The evaluation's aggregates so far as JSON, a new string: exact sums, counts and the
/// Spearman sample, versioned (`"format": 1`). Evaluate shards of the personas apart (other
/// processes or machines, e.g. Spark tasks), bring their aggregates together with
/// `zipp_aggregate_merge` or `zipp_evaluation_merge` in any order, and the report equals one
/// local pass over all the personas bit for bit (except `timings`, which are summed).
///
/// # Safety
/// `evaluation` is NULL or a live handle; `out_json` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn zipp_evaluation_aggregate(
    evaluation: *const zipp_evaluation,
    out_json: *mut *mut c_char,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_ptr(out_json, "out_json")?;
        *out = c_string(handle(evaluation, "evaluation")?.inner.aggregate()?.to_json()?)?;
        Ok(())
    })
}

/// Adds another shard's aggregates (JSON from `zipp_evaluation_aggregate` or
/// `zipp_aggregate_merge`, made by the same config) to this evaluation's, as if its personas
/// had been added here. A different config, a bad format or a malformed aggregate is an
/// error and changes nothing.
///
/// # Safety
/// `evaluation` is NULL or a live handle; `aggregate_json` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn zipp_evaluation_merge(evaluation: *mut zipp_evaluation, aggregate_json: *const c_char) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let evaluation = handle(evaluation.cast_const(), "evaluation")?;
        let other = EvalAggregate::from_json(str_arg(aggregate_json, "aggregate_json")?)?;
        evaluation.inner.merge(&other)?;
        Ok(())
    })
}

/// Merges `n` serialised aggregates into one, a new JSON string — no model needed (a driver
/// merging its workers' results). `n == 0`, a malformed aggregate or two from different
/// configs is an error naming the aggregate's index.
///
/// # Safety
/// `aggregates_json` points to `n` NUL-terminated strings (NULL allowed when `n == 0`);
/// `out_json` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn zipp_aggregate_merge(
    aggregates_json: *const *const c_char,
    n: usize,
    out_json: *mut *mut c_char,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_ptr(out_json, "out_json")?;
        let ptrs = slice_arg(aggregates_json, n, "aggregates_json")?;
        let texts = ptrs
            .iter()
            .enumerate()
            .map(|(i, &p)| str_arg(p, &format!("aggregates_json[{i}]")))
            .collect::<CallResult<Vec<&str>>>()?;
        *out = c_string(zipp_factory::shared::merge_aggregates(texts)?.to_json()?)?;
        Ok(())
    })
}

/// The report of an aggregate given as JSON (e.g. `zipp_aggregate_merge`'s result), as JSON, a
/// new string: the same report `zipp_evaluation_report` gives (`zipp_report_table` renders it).
///
/// # Safety
/// `aggregate_json` is a NUL-terminated string; `out_json` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn zipp_aggregate_report(aggregate_json: *const c_char, out_json: *mut *mut c_char) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_ptr(out_json, "out_json")?;
        let aggregate = EvalAggregate::from_json(str_arg(aggregate_json, "aggregate_json")?)?;
        *out = c_string(aggregate.report()?.to_json(false)?)?;
        Ok(())
    })
}

/// Frees an evaluation. NULL is ignored.
///
/// # Safety
/// `evaluation` is NULL or a live handle no other thread is using.
#[no_mangle]
pub unsafe extern "C" fn zipp_evaluation_free(evaluation: *mut zipp_evaluation) {
    // SAFETY: the caller passes NULL or a live handle of this type that no other thread uses
    // (this function\'s `# Safety` contract), as `free_handle` requires.
    unsafe { free_handle(evaluation) }
}

// ---------------------------------------------------------------------------------------
// Statistics

/// `n` values (doubles, floats, sizes) at `p`; NULL is allowed only for `n == 0`.
///
/// # Safety
/// `p` is NULL or points to `n` readable values.
unsafe fn slice_arg<'a, T>(p: *const T, n: usize, name: &str) -> CallResult<&'a [T]> {
    if n == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(fail(zipp_status::ZIPP_ERR_NULL_POINTER, format!("`{name}` is NULL with {n} values")));
    }
    // SAFETY: `p` is non-null and points to `n` readable values (the caller's contract).
    Ok(unsafe { std::slice::from_raw_parts(p, n) })
}

/// The arithmetic mean of `n` values (compensated sum). `n == 0` or a NaN/±∞ value is
/// `ZIPP_ERR_INVALID_INPUT`.
///
/// # Safety
/// `xs` points to `n` doubles (NULL allowed when `n == 0`); `out` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn zipp_stats_mean(xs: *const f64, n: usize, out: *mut f64) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_arg(out, "out")?;
        *out = stats::mean(slice_arg(xs, n, "xs")?)?;
        Ok(())
    })
}

/// Cohen's d between two groups with the pooled standard deviation:
/// `|mean_a − mean_b| / s_pooled`. When d is undefined — a group has fewer than 2 values,
/// both groups are constant with equal means, or a value is NaN/±∞ — the call succeeds and
/// `*out` is NaN (test with `isnan`); two constant groups with different means give +∞.
///
/// # Safety
/// `a` points to `na` doubles and `b` to `nb` (NULL allowed for a count of 0); `out` is
/// valid for writes.
#[no_mangle]
pub unsafe extern "C" fn zipp_stats_cohens_d(a: *const f64, na: usize, b: *const f64, nb: usize, out: *mut f64) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_arg(out, "out")?;
        let (a, b) = (slice_arg(a, na, "a")?, slice_arg(b, nb, "b")?);
        *out = stats::cohens_d(&stats::Moments::from_slice(a), &stats::Moments::from_slice(b)).unwrap_or(f64::NAN);
        Ok(())
    })
}

/// The exact two-sided binomial test (as `scipy.stats.binomtest`): the p-value of `k`
/// successes in `n` trials with success probability `p`. `n == 0`, `k > n`, `n > 2^53` or
/// `p` outside [0, 1] is `ZIPP_ERR_INVALID_INPUT`.
///
/// # Safety
/// `out` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn zipp_stats_binomial_test(k: u64, n: u64, p: f64, out: *mut f64) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_arg(out, "out")?;
        *out = stats::binomial_test(k, n, p)?;
        Ok(())
    })
}

/// The Wilson score interval `[*lo, *hi]` of `k` successes in `n` trials at `confidence`
/// (e.g. 0.95). `n == 0`, `k > n` or a confidence outside (0, 1) is
/// `ZIPP_ERR_INVALID_INPUT`.
///
/// # Safety
/// `lo` and `hi` are valid for writes.
#[no_mangle]
pub unsafe extern "C" fn zipp_stats_wilson_interval(
    k: u64,
    n: u64,
    confidence: f64,
    lo: *mut f64,
    hi: *mut f64,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let lo = out_arg(lo, "lo")?;
        let hi = out_arg(hi, "hi")?;
        (*lo, *hi) = stats::wilson_interval(k, n, confidence)?;
        Ok(())
    })
}

/// The ranks of `n` values, 1-based, ties sharing their average rank, written to `out`
/// (room for `n` doubles). A NaN/±∞ value is `ZIPP_ERR_INVALID_INPUT`; `n == 0` writes
/// nothing.
///
/// # Safety
/// `xs` points to `n` readable doubles and `out` to `n` writable ones (NULL allowed when
/// `n == 0`).
#[no_mangle]
pub unsafe extern "C" fn zipp_stats_average_ranks(xs: *const f64, n: usize, out: *mut f64) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let xs = slice_arg(xs, n, "xs")?;
        if n == 0 {
            return Ok(());
        }
        if out.is_null() {
            return Err(fail(zipp_status::ZIPP_ERR_NULL_POINTER, "`out` is NULL"));
        }
        let ranks = stats::average_ranks(xs)?;
        std::slice::from_raw_parts_mut(out, n).copy_from_slice(&ranks);
        Ok(())
    })
}

/// Spearman's rank correlation ρ of `n` pairs `(x[i], y[i])` (average ranks for ties, as
/// `scipy.stats.spearmanr`). Fewer than 2 pairs, a NaN/±∞ value or a constant side is
/// `ZIPP_ERR_INVALID_INPUT`.
///
/// # Safety
/// `x` and `y` point to `n` doubles each (NULL allowed when `n == 0`); `out` is valid for
/// writes.
#[no_mangle]
pub unsafe extern "C" fn zipp_stats_spearman(x: *const f64, y: *const f64, n: usize, out: *mut f64) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the `call` helpers, which check it for NULL (strings for UTF-8) first.
    guarded(|| unsafe {
        let out = out_arg(out, "out")?;
        *out = stats::spearman(slice_arg(x, n, "x")?, slice_arg(y, n, "y")?)?;
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------
// Image metrics over embeddings (zipp-eval's image_metrics)

/// `rows × dim` row-major floats as rows.
///
/// # Safety
/// As [`slice_arg`], for `rows * dim` values.
unsafe fn float_rows(p: *const f32, rows: usize, dim: usize, name: &str) -> CallResult<Vec<Vec<f32>>> {
    let n = rows
        .checked_mul(dim)
        .ok_or_else(|| fail(zipp_status::ZIPP_ERR_INVALID_INPUT, format!("`{name}`: {rows} × {dim} overflows")))?;
    // SAFETY: forwarded contract.
    Ok(unsafe { slice_arg(p, n, name) }?.chunks(dim.max(1)).map(<[f32]>::to_vec).collect())
}

/// CLIPScore of an image and a text embedding of `dim` floats each: `2.5 · max(cos, 0)`, or
/// `100 · max(cos, 0)` when `scale100` is non-zero. Compares images of one prompt.
///
/// # Safety
/// `image` and `text` point to `dim` floats each; `out` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn zipp_clip_score(
    image: *const f32,
    text: *const f32,
    dim: usize,
    scale100: i32,
    out: *mut f64,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the helpers, which check it for NULL first.
    guarded(|| unsafe {
        let out = out_arg(out, "out")?;
        let (i, t) = (slice_arg(image, dim, "image")?, slice_arg(text, dim, "text")?);
        *out = if scale100 != 0 {
            zipp_eval::image_metrics::clip_score_100(i, t)?
        } else {
            zipp_eval::image_metrics::clip_score(i, t)?
        };
        Ok(())
    })
}

/// Personalization CLIPScore: the mean cosine between an image embedding (`dim` floats) and
/// `n_refs` reference image embeddings (`n_refs × dim`, row-major).
///
/// # Safety
/// The pointers hold the stated number of floats; `out` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn zipp_personalization_clip_score(
    image: *const f32,
    references: *const f32,
    n_refs: usize,
    dim: usize,
    out: *mut f64,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the helpers, which check it for NULL first.
    guarded(|| unsafe {
        let out = out_arg(out, "out")?;
        let refs = float_rows(references, n_refs, dim, "references")?;
        *out = zipp_eval::image_metrics::personalization_clip_score(slice_arg(image, dim, "image")?, &refs)?;
        Ok(())
    })
}

/// CMMD between `nx` and `ny` CLIP image embeddings of `dim` floats (row-major): σ = 10,
/// ×1000, biased estimator; 0 for identical sets.
///
/// # Safety
/// `x` holds `nx × dim` floats, `y` `ny × dim`; `out` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn zipp_cmmd(
    x: *const f32,
    nx: usize,
    y: *const f32,
    ny: usize,
    dim: usize,
    out: *mut f64,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the helpers, which check it for NULL first.
    guarded(|| unsafe {
        let out = out_arg(out, "out")?;
        let (xs, ys) = (float_rows(x, nx, dim, "x")?, float_rows(y, ny, dim, "y")?);
        *out = zipp_eval::image_metrics::cmmd(&xs, &ys)?;
        Ok(())
    })
}

/// IPF raking: `counts` has one value per cell of a table with `ndims` dimensions of sizes
/// `dims` (row-major); `targets` the target shares of every dimension's categories, one
/// dimension after the other (`dims[0] + dims[1] + …` values, each dimension's summing to
/// 1). Writes the raked weight of every cell to `weights` and the sweeps run to `sweeps`;
/// with `values` (a metric's mean per cell, may be NULL) and `aggregate` (3 doubles, may be
/// NULL), also the raw aggregate, the raked one and Δ% (100 · (ipf − raw) / raw).
///
/// # Safety
/// `dims` holds `ndims` sizes; `counts`, `weights` and (when not NULL) `values` hold one
/// double per cell; `targets` the sum of `dims`; `aggregate` is NULL or 3 writable doubles;
/// `sweeps` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn zipp_rake(
    counts: *const f64,
    dims: *const usize,
    ndims: usize,
    targets: *const f64,
    values: *const f64,
    weights: *mut f64,
    aggregate: *mut f64,
    sweeps: *mut usize,
) -> i32 {
    // SAFETY: the caller keeps this function's `# Safety` contract; every pointer is read
    // through the helpers, which check it for NULL first.
    guarded(|| unsafe {
        let sweeps = out_arg(sweeps, "sweeps")?;
        if ndims == 0 {
            return Err(fail(zipp_status::ZIPP_ERR_INVALID_INPUT, "a table needs at least one dimension"));
        }
        let dims = slice_arg(dims, ndims, "dims")?;
        let cells = dims.iter().try_fold(1usize, |a, d| a.checked_mul(*d));
        let cells = cells.ok_or_else(|| fail(zipp_status::ZIPP_ERR_INVALID_INPUT, "the table is too large"))?;
        let n_targets = dims.iter().sum::<usize>();
        let counts = slice_arg(counts, cells, "counts")?;
        let flat = slice_arg(targets, n_targets, "targets")?;
        let mut per_dim = Vec::with_capacity(ndims);
        let mut at = 0;
        for d in dims {
            per_dim.push(flat[at..at + d].to_vec());
            at += d;
        }
        let raked = zipp_eval::image_metrics::rake(counts, dims, &per_dim)?;
        if weights.is_null() {
            return Err(fail(zipp_status::ZIPP_ERR_NULL_POINTER, "`weights` (out-parameter) is NULL"));
        }
        // SAFETY: non-null, one writable double per cell (the caller's contract).
        std::slice::from_raw_parts_mut(weights, cells).copy_from_slice(&raked.weights);
        *sweeps = raked.sweeps;
        if !values.is_null() && !aggregate.is_null() {
            let (raw, ipf, delta) =
                zipp_eval::image_metrics::ipf_aggregate(slice_arg(values, cells, "values")?, counts, &raked)?;
            // SAFETY: non-null, 3 writable doubles (the caller's contract).
            std::slice::from_raw_parts_mut(aggregate, 3).copy_from_slice(&[raw, ipf, delta]);
        }
        Ok(())
    })
}
