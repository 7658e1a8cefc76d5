//! The C ABI called from Rust the way C calls it: raw pointers, statuses, the last error.
//! The same surface is exercised from real C and C++ programs by `scripts/test-c.sh`.

use std::ffi::{c_char, CStr, CString};
use std::ptr::{null, null_mut};

use super::*;

fn last_error() -> Option<String> {
    let p = zipp_last_error_message();
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

fn take(s: *mut c_char) -> String {
    assert!(!s.is_null());
    let out = unsafe { CStr::from_ptr(s) }.to_str().unwrap().to_string();
    unsafe { zipp_string_free(s) };
    out
}

const PERSONA: &str = r#"{"id":"ana","summary":"Ana paints.","memory":[
  {"caption":"a teal door in Lisbon","elements":{"color":["teal"],"object":["door"]}},
  {"caption":"orange tiles at dusk","elements":{"color":["orange"],"lighting":["dusk light"]}}]}"#;

#[test]
fn version_and_status_names() {
    let v = unsafe { CStr::from_ptr(zipp_version()) };
    assert_eq!(v.to_str().unwrap(), zipp_core::VERSION);
    assert_eq!(zipp_abi_version(), ZIPP_ABI_VERSION);
    let name = |s: i32| unsafe { CStr::from_ptr(zipp_status_name(s)) }.to_str().unwrap();
    assert_eq!(name(zipp_status::ZIPP_ERR_SCHEMA as i32), "ZIPP_ERR_SCHEMA");
    assert_eq!(name(zipp_status::ZIPP_ERR_INTERNAL as i32), "ZIPP_ERR_INTERNAL");
    assert_eq!(name(-3), "ZIPP_UNKNOWN_STATUS");
    assert_eq!(name(12), "ZIPP_UNKNOWN_STATUS");
}

#[test]
fn null_pointers_are_statuses_and_out_params_are_cleared() {
    let mut p: *mut zipp_persona = std::ptr::dangling_mut(); // garbage the call must overwrite
    let s = unsafe { zipp_persona_from_json(null(), &mut p) };
    assert_eq!(s, zipp_status::ZIPP_ERR_NULL_POINTER);
    assert!(p.is_null());
    assert!(last_error().unwrap().contains("`json` is NULL"));

    let json = CString::new(PERSONA).unwrap();
    assert_eq!(unsafe { zipp_persona_from_json(json.as_ptr(), null_mut()) }, zipp_status::ZIPP_ERR_NULL_POINTER);
    assert!(last_error().unwrap().contains("out"));

    let mut out: *mut c_char = null_mut();
    let prompt = CString::new("a chair").unwrap();
    let s = unsafe { zipp_personalize_prompt(null(), null(), prompt.as_ptr(), &mut out) };
    assert_eq!(s, zipp_status::ZIPP_ERR_NULL_POINTER);
    assert!(out.is_null());
    assert_eq!(unsafe { zipp_models_load(null()) }, zipp_status::ZIPP_ERR_NULL_POINTER);
    let mut n = 7usize;
    assert_eq!(unsafe { zipp_count_tokens(null(), prompt.as_ptr(), &mut n) }, zipp_status::ZIPP_ERR_NULL_POINTER);
    assert_eq!(n, 0);
    // Freeing NULL is a no-op.
    unsafe {
        zipp_persona_free(null_mut());
        zipp_models_free(null_mut());
        zipp_personalizer_free(null_mut());
        zipp_jsonl_free(null_mut());
        zipp_string_free(null_mut());
    }
}

#[test]
fn invalid_utf8_and_bad_json_are_located_errors() {
    let bad = [b'{', 0xff, b'}', 0];
    let mut p: *mut zipp_persona = null_mut();
    let s = unsafe { zipp_persona_from_json(bad.as_ptr() as *const c_char, &mut p) };
    assert_eq!(s, zipp_status::ZIPP_ERR_INVALID_UTF8);
    assert!(last_error().unwrap().contains("offset 1"), "{:?}", last_error());

    let truncated = CString::new(r#"{"id":"ana","memory":["#).unwrap();
    assert_eq!(unsafe { zipp_persona_from_json(truncated.as_ptr(), &mut p) }, zipp_status::ZIPP_ERR_PARSE);
    let wrong = CString::new(r#"{"id":"ana","memory":[{"caption":""}]}"#).unwrap();
    assert_eq!(unsafe { zipp_persona_from_json(wrong.as_ptr(), &mut p) }, zipp_status::ZIPP_ERR_SCHEMA);
    assert!(last_error().unwrap().contains("memory[0].caption"), "{:?}", last_error());

    // A successful call clears the last error.
    let good = CString::new(PERSONA).unwrap();
    assert_eq!(unsafe { zipp_persona_from_json(good.as_ptr(), &mut p) }, zipp_status::ZIPP_OK);
    assert_eq!(last_error(), None);
    let mut id = null_mut();
    assert_eq!(unsafe { zipp_persona_id(p, &mut id) }, zipp_status::ZIPP_OK);
    assert_eq!(take(id), "ana");
    let mut json = null_mut();
    assert_eq!(unsafe { zipp_persona_to_json(p, 0, &mut json) }, zipp_status::ZIPP_OK);
    let back = zipp_core::Persona::from_json_str(&take(json)).unwrap();
    assert_eq!(&back, unsafe { &*p }.inner.persona());
    unsafe { zipp_persona_free(p) };
}

#[test]
fn panics_are_contained_and_reported() {
    let s = call::guarded(|| panic!("boom {}", 42));
    assert_eq!(s, zipp_status::ZIPP_ERR_INTERNAL);
    assert!(last_error().unwrap().contains("boom 42"));
}

#[test]
fn bad_specs_and_missing_models_fail_cleanly() {
    let root = CString::new("/nonexistent/zipp-ffi-models").unwrap();
    let mut m = null_mut();
    assert_eq!(unsafe { zipp_models_new(root.as_ptr(), &mut m) }, zipp_status::ZIPP_OK);
    let mut p = null_mut();
    for (spec, want) in [
        ("vprag", zipp_status::ZIPP_ERR_MODEL_NOT_FOUND),
        ("dalle", zipp_status::ZIPP_ERR_SCHEMA),
        (r#"{"method":"brag","k":0}"#, zipp_status::ZIPP_ERR_INVALID_INPUT),
        (r#"{"method":"brag""#, zipp_status::ZIPP_ERR_PARSE),
    ] {
        let c = CString::new(spec).unwrap();
        assert_eq!(unsafe { zipp_personalizer_new(m, c.as_ptr(), &mut p) }, want, "{spec}: {:?}", last_error());
        assert!(p.is_null());
    }
    assert!(last_error().is_some());
    // Identity needs no model.
    let c = CString::new("identity").unwrap();
    assert_eq!(unsafe { zipp_personalizer_new(m, c.as_ptr(), &mut p) }, zipp_status::ZIPP_OK);
    let mut spec = null_mut();
    assert_eq!(unsafe { zipp_personalizer_spec(p, &mut spec) }, zipp_status::ZIPP_OK);
    assert_eq!(take(spec), r#"{"method":"identity"}"#);
    unsafe {
        zipp_personalizer_free(p);
        zipp_models_free(m);
    }
}

#[test]
fn embed_checks_the_buffer_and_end_to_end_personalization_round_trips() {
    let mut m = null_mut();
    assert_eq!(unsafe { zipp_models_new(null(), &mut m) }, zipp_status::ZIPP_OK);
    let mut dim = 0;
    assert_eq!(unsafe { zipp_models_dim(m, &mut dim) }, zipp_status::ZIPP_OK, "{:?}", last_error());
    assert_eq!(dim, 384);
    let texts = [CString::new("a teal door").unwrap(), CString::new("a teal door").unwrap()];
    let ptrs: Vec<*const c_char> = texts.iter().map(|t| t.as_ptr()).collect();
    let mut small = vec![0f32; dim];
    let s = unsafe { zipp_embed(m, ptrs.as_ptr(), 2, small.as_mut_ptr(), small.len()) };
    assert_eq!(s, zipp_status::ZIPP_ERR_INVALID_INPUT);
    assert!(small.iter().all(|&x| x == 0.0), "nothing written on failure");
    let mut out = vec![0f32; 2 * dim];
    assert_eq!(unsafe { zipp_embed(m, ptrs.as_ptr(), 2, out.as_mut_ptr(), out.len()) }, zipp_status::ZIPP_OK);
    let cos: f32 = out[..dim].iter().zip(&out[dim..]).map(|(a, b)| a * b).sum();
    assert!((cos - 1.0).abs() < 1e-5);

    let json = CString::new(PERSONA).unwrap();
    let mut persona = null_mut();
    assert_eq!(unsafe { zipp_persona_from_json(json.as_ptr(), &mut persona) }, zipp_status::ZIPP_OK);
    let spec = CString::new(r#"{"method":"vprag","token_budget":40}"#).unwrap();
    let mut p = null_mut();
    assert_eq!(unsafe { zipp_personalizer_new(m, spec.as_ptr(), &mut p) }, zipp_status::ZIPP_OK);
    let req = CString::new(r#"{"prompt":"a front door","task":"edit"}"#).unwrap();
    let mut res = null_mut();
    assert_eq!(unsafe { zipp_personalize(p, persona, req.as_ptr(), &mut res) }, zipp_status::ZIPP_OK);
    let result = take(res);
    let parsed = Personalization::from_json(&result).unwrap();
    assert!(parsed.prompt.starts_with("a front door"), "{}", parsed.prompt);
    assert_eq!(parsed.evidence.content_budget, 38);
    // Same as calling zipp-core directly.
    let direct = MethodSpec::from_json(r#"{"method":"vprag","token_budget":40}"#)
        .unwrap()
        .build(&Models::new())
        .unwrap()
        .personalize(&IndexedPersona::new(Persona::from_json_str(PERSONA).unwrap()), &Request::edit("a front door"))
        .unwrap();
    assert_eq!(parsed, Personalization::from_json(&serde_json::to_string(&direct).unwrap()).unwrap());

    let c = CString::new(result).unwrap();
    let mut text = null_mut();
    assert_eq!(unsafe { zipp_explain(c.as_ptr(), &mut text) }, zipp_status::ZIPP_OK);
    assert!(take(text).starts_with("[vprag] a front door"));

    let batch = CString::new(r#"["a front door", {"prompt":"a roof","token_budget":20}]"#).unwrap();
    assert_eq!(unsafe { zipp_personalize_batch(p, persona, batch.as_ptr(), &mut res) }, zipp_status::ZIPP_OK);
    let results: Vec<Personalization> = serde_json::from_str(&take(res)).unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[1].evidence.content_budget, 18);
    let empty = CString::new("  ").unwrap();
    assert_eq!(
        unsafe { zipp_personalize_prompt(p, persona, empty.as_ptr(), &mut res) },
        zipp_status::ZIPP_ERR_INVALID_INPUT
    );
    unsafe {
        zipp_personalizer_free(p);
        zipp_persona_free(persona);
        zipp_models_free(m);
    }
}
