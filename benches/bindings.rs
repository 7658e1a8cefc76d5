//! The cost of the C ABI over the same call in Rust: one persona, one prompt, the persona's
//! memory already indexed. `native` calls `Personalizer::personalize`; `c_abi` calls the
//! exported `zipp_personalize_prompt` exactly as a C program does (C-string arguments, JSON
//! result, `zipp_string_free`), so the difference is the binding overhead.
//! The Python side of the comparison is `benches/python/bench_overhead.py`.

use std::ffi::{c_char, CString};
use std::ptr::null_mut;

use criterion::{criterion_group, criterion_main, Criterion};
use zipp::*;
use zipp_core::models::Models;
use zipp_core::personalize::{MethodSpec, Request};
use zipp_core::IndexedPersona;

pub const PERSONA: &str = "ren-tokyo-night-streets";
pub const PROMPT: &str = "a portrait of a person in a park at dusk";

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
    // SAFETY: NULL is the documented "default models folder"; the out-pointers and the
    // NUL-terminated JSON are valid for the calls.
    unsafe {
        assert_eq!(zipp_models_new(std::ptr::null(), &mut c_models), zipp_status::ZIPP_OK);
        let pj = CString::new(persona_json).unwrap();
        assert_eq!(zipp_persona_from_json(pj.as_ptr(), &mut c_persona), zipp_status::ZIPP_OK);
    }

    for method in ["identity", "vprag"] {
        let native = MethodSpec::from_json(method).unwrap().build(&models).unwrap();
        let mut c_p = null_mut();
        let spec = CString::new(method).unwrap();
        // SAFETY: `c_models` is a live handle from zipp_models_new; `spec` is NUL-terminated;
        // `c_p` is a valid out-pointer.
        assert_eq!(unsafe { zipp_personalizer_new(c_models, spec.as_ptr(), &mut c_p) }, zipp_status::ZIPP_OK);
        // Warm both indexes.
        native.personalize(&persona, &request).unwrap();
        // SAFETY: live handles from the calls above; `prompt` is NUL-terminated; the result
        // string is freed once, by zipp_string_free.
        let call_c = || unsafe {
            let mut out: *mut c_char = null_mut();
            let s = zipp_personalize_prompt(c_p, c_persona, prompt.as_ptr(), &mut out);
            assert_eq!(s, zipp_status::ZIPP_OK);
            zipp_string_free(out);
        };
        call_c();

        let mut g = c.benchmark_group(format!("bindings_{method}"));
        g.bench_function("native", |b| b.iter(|| native.personalize(&persona, &request).unwrap()));
        g.bench_function("c_abi", |b| b.iter(call_c));
        // The deterministic part of the C overhead: serialising the result (evidence included).
        let result = native.personalize(&persona, &request).unwrap();
        g.bench_function("result_to_json", |b| b.iter(|| serde_json::to_string(&result).unwrap()));
        g.finish();
        // SAFETY: `c_p` is a live handle, freed once and not used after.
        unsafe { zipp_personalizer_free(c_p) };
    }
    // SAFETY: live handles, each freed once and not used after.
    unsafe {
        zipp_persona_free(c_persona);
        zipp_models_free(c_models);
    }
}

criterion_group!(benches, bindings);
criterion_main!(benches);
