//! The cost of the C ABI over the same call in Rust: one persona, one prompt, the persona's
//! memory already indexed. `native` calls `Personalizer::personalize`; `c_abi` calls the
//! exported `zipp_personalize_prompt` exactly as a C program does (C-string arguments, JSON
//! result, `zipp_string_free`), so the difference is the binding overhead.
//!
//! `paired_native_and_c` is the measurement that resolves a few percent on a loaded host:
//! every iteration times one native sample and one C sample back to back, alternating which
//! goes first, and the bench prints the median of the per-pair ratios C / native with its
//! distribution-free 95% interval and the 10th–90th percentile of single pairs. Drift and
//! other load hit both halves of a pair, so they cancel in the ratio; the separate `native`
//! and `c_abi` times (criterion's mean estimates, minutes apart) do not have that property.
//! Criterion's own time for `paired_native_and_c` is the time of one pair (native + C).
//!
//! The Python side of the comparison is `benches/python/bench_overhead.py`.

use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::hint::black_box;
use std::ptr::null_mut;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use zipp::*;
use zipp_core::personalize::Request;
use zipp_core::IndexedPersona;
use zipp_factory::MethodSpec;
use zipp_factory::Models;

pub const PERSONA: &str = "ren-tokyo-night-streets";
pub const PROMPT: &str = "a portrait of a person in a park at dusk";

/// Per-call times (ns) of the native and the C half of each pair.
#[derive(Default)]
struct PairLog {
    native: Vec<f64>,
    c: Vec<f64>,
}

fn bindings(c: &mut Criterion) {
    let persona_json = zipp_benches::persona(PERSONA).to_json_string(false).unwrap();
    let prompt = CString::new(PROMPT).unwrap();
    let request = Request::generate(PROMPT);

    // Rust side.
    let models = Models::new();
    let persona = IndexedPersona::new(zipp_benches::persona(PERSONA));
    // C side: its own handles, built through the ABI.
    let mut c_models = null_mut();
    let mut c_persona = null_mut();
    // SAFETY: the out-pointers are valid locals, the JSON is a NUL-terminated C string that
    // outlives the call, and a null models folder means the default one.
    unsafe {
        assert_eq!(zipp_models_new(std::ptr::null(), &mut c_models), zipp_status::ZIPP_OK);
        let pj = CString::new(persona_json).unwrap();
        assert_eq!(zipp_persona_from_json(pj.as_ptr(), &mut c_persona), zipp_status::ZIPP_OK);
    }

    // Identity's call (~0.1 µs native) is too short to time alone, so each half of a pair
    // times a burst of calls; Vprag's (~4 ms) is timed one call per half.
    for (method, burst) in [("identity", 200u32), ("vprag", 1)] {
        let native = MethodSpec::from_json(method).unwrap().build(&models).unwrap();
        let mut c_p = null_mut();
        let spec = CString::new(method).unwrap();
        // SAFETY: `c_models` is a live handle from `zipp_models_new`, `spec` a C string,
        // `c_p` a valid out-pointer.
        assert_eq!(unsafe { zipp_personalizer_new(c_models, spec.as_ptr(), &mut c_p) }, zipp_status::ZIPP_OK);
        let call_native = || black_box(native.personalize(&persona, &request).unwrap());
        // SAFETY: `c_p` and `c_persona` are live handles (freed only after the benches),
        // `prompt` is a C string, and `out` is freed once, with `zipp_string_free`.
        let call_c = || unsafe {
            let mut out: *mut c_char = null_mut();
            let s = zipp_personalize_prompt(c_p, c_persona, prompt.as_ptr(), &mut out);
            assert_eq!(s, zipp_status::ZIPP_OK);
            zipp_string_free(black_box(out));
        };
        // Warm both indexes (the native and the C persona are separate objects).
        call_native();
        call_c();

        let mut g = c.benchmark_group(format!("bindings_{method}"));
        g.bench_function("native", |b| b.iter(call_native));
        g.bench_function("c_abi", |b| b.iter(call_c));
        let log = RefCell::new(PairLog::default());
        g.bench_function("paired_native_and_c", |b| {
            b.iter_custom(|iters| {
                let mut log = log.borrow_mut();
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // Alternate the order, so a systematic first/second effect (cache,
                    // frequency) falls on each side equally often.
                    let (tn, tc) = if log.native.len() % 2 == 0 {
                        let tn = time_burst(burst, || drop(call_native()));
                        (tn, time_burst(burst, call_c))
                    } else {
                        let tc = time_burst(burst, call_c);
                        (time_burst(burst, || drop(call_native())), tc)
                    };
                    total += tn + tc;
                    log.native.push(tn.as_nanos() as f64 / f64::from(burst));
                    log.c.push(tc.as_nanos() as f64 / f64::from(burst));
                }
                total
            })
        });
        // The deterministic part of the C overhead: serialising the result (evidence included).
        let result = native.personalize(&persona, &request).unwrap();
        g.bench_function("result_to_json", |b| b.iter(|| serde_json::to_string(&result).unwrap()));
        g.finish();
        report_pairs(method, burst, &log.into_inner());
        // SAFETY: `c_p` came from `zipp_personalizer_new` and is not used after this.
        unsafe { zipp_personalizer_free(c_p) };
    }
    // SAFETY: both handles came from their constructors above and are not used after this.
    unsafe {
        zipp_persona_free(c_persona);
        zipp_models_free(c_models);
    }
}

/// Wall time of `burst` calls of `f`.
fn time_burst(burst: u32, f: impl Fn()) -> Duration {
    let t = Instant::now();
    for _ in 0..burst {
        f();
    }
    t.elapsed()
}

/// Prints the paired summary (nothing when the paired bench was filtered out).
fn report_pairs(method: &str, burst: u32, log: &PairLog) {
    if log.native.is_empty() {
        return;
    }
    let fmt = |ns: f64| if ns.abs() < 1e6 { format!("{:.3} µs", ns / 1e3) } else { format!("{:.4} ms", ns / 1e6) };
    let Some(p) = zipp_benches::paired_summary(&log.native, &log.c) else {
        println!("bindings_{method}/paired: {} pairs, too few for a summary", log.native.len());
        return;
    };
    println!(
        "bindings_{method}/paired: {} pairs ({burst} call(s) per half, every timed pair incl. criterion's warm-up)\n  \
         per call, medians: native {}  C {}\n  \
         C / native, median of per-pair ratios: {:.4}  95% CI [{:.4}, {:.4}]  single pairs p10–p90 [{:.4}, {:.4}]\n  \
         C − native, median of per-pair differences: {}  95% CI [{}, {}]",
        p.n,
        fmt(p.base_median),
        fmt(p.other_median),
        p.ratio_median,
        p.ratio_ci95.0,
        p.ratio_ci95.1,
        p.ratio_p10_p90.0,
        p.ratio_p10_p90.1,
        fmt(p.diff_median),
        fmt(p.diff_ci95.0),
        fmt(p.diff_ci95.1),
    );
}

criterion_group!(benches, bindings);
criterion_main!(benches);
