//! The C ABI called from Rust the way C calls it: raw pointers, statuses, the last error.
//! The same surface is exercised from real C and C++ programs by `scripts/test-c.sh`.

use std::ffi::{c_char, CStr, CString};
use std::ptr::{null, null_mut};

use super::*;

fn last_error() -> Option<String> {
    let p = zipp_last_error_message();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

fn take(s: *mut c_char) -> String {
    assert!(!s.is_null());
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    let out = unsafe { CStr::from_ptr(s) }.to_str().unwrap().to_string();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    unsafe { zipp_string_free(s) };
    out
}

const PERSONA: &str = r#"{"id":"ana","summary":"Ana paints.","memory":[
  {"caption":"a teal door in Lisbon","elements":{"color":["teal"],"object":["door"]}},
  {"caption":"orange tiles at dusk","elements":{"color":["orange"],"lighting":["dusk light"]}}]}"#;

#[test]
fn version_and_status_names() {
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    let v = unsafe { CStr::from_ptr(zipp_version()) };
    assert_eq!(v.to_str().unwrap(), zipp_core::VERSION);
    assert_eq!(zipp_abi_version(), ZIPP_ABI_VERSION);
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    let name = |s: i32| unsafe { CStr::from_ptr(zipp_status_name(s)) }.to_str().unwrap();
    assert_eq!(name(zipp_status::ZIPP_ERR_SCHEMA as i32), "ZIPP_ERR_SCHEMA");
    assert_eq!(name(zipp_status::ZIPP_ERR_INTERNAL as i32), "ZIPP_ERR_INTERNAL");
    assert_eq!(name(zipp_status::ZIPP_ERR_REMOTE as i32), "ZIPP_ERR_REMOTE");
    assert_eq!(name(-3), "ZIPP_UNKNOWN_STATUS");
    assert_eq!(name(zipp_status::ZIPP_ERR_CANCELLED as i32), "ZIPP_ERR_CANCELLED");
    assert_eq!(name(14), "ZIPP_UNKNOWN_STATUS");
}

#[test]
fn null_pointers_are_statuses_and_out_params_are_cleared() {
    let mut p: *mut zipp_persona = std::ptr::dangling_mut(); // garbage the call must overwrite
                                                             // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    let s = unsafe { zipp_persona_from_json(null(), &mut p) };
    assert_eq!(s, zipp_status::ZIPP_ERR_NULL_POINTER);
    assert!(p.is_null());
    assert!(last_error().unwrap().contains("`json` is NULL"));

    let json = CString::new(PERSONA).unwrap();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_persona_from_json(json.as_ptr(), null_mut()) }, zipp_status::ZIPP_ERR_NULL_POINTER);
    assert!(last_error().unwrap().contains("out"));

    let mut out: *mut c_char = null_mut();
    let prompt = CString::new("a chair").unwrap();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    let s = unsafe { zipp_personalize_prompt(null(), null(), prompt.as_ptr(), &mut out) };
    assert_eq!(s, zipp_status::ZIPP_ERR_NULL_POINTER);
    assert!(out.is_null());
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_models_load(null()) }, zipp_status::ZIPP_ERR_NULL_POINTER);
    let mut n = 7usize;
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_count_tokens(null(), prompt.as_ptr(), &mut n) }, zipp_status::ZIPP_ERR_NULL_POINTER);
    assert_eq!(n, 0);
    // Freeing NULL is a no-op.
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
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
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    let s = unsafe { zipp_persona_from_json(bad.as_ptr() as *const c_char, &mut p) };
    assert_eq!(s, zipp_status::ZIPP_ERR_INVALID_UTF8);
    assert!(last_error().unwrap().contains("offset 1"), "{:?}", last_error());

    let truncated = CString::new(r#"{"id":"ana","memory":["#).unwrap();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_persona_from_json(truncated.as_ptr(), &mut p) }, zipp_status::ZIPP_ERR_PARSE);
    let wrong = CString::new(r#"{"id":"ana","memory":[{"caption":""}]}"#).unwrap();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_persona_from_json(wrong.as_ptr(), &mut p) }, zipp_status::ZIPP_ERR_SCHEMA);
    assert!(last_error().unwrap().contains("memory[0].caption"), "{:?}", last_error());

    // A successful call clears the last error.
    let good = CString::new(PERSONA).unwrap();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_persona_from_json(good.as_ptr(), &mut p) }, zipp_status::ZIPP_OK);
    assert_eq!(last_error(), None);
    let mut id = null_mut();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_persona_id(p, &mut id) }, zipp_status::ZIPP_OK);
    assert_eq!(take(id), "ana");
    let mut json = null_mut();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_persona_to_json(p, 0, &mut json) }, zipp_status::ZIPP_OK);
    let back = zipp_core::Persona::from_json_str(&take(json)).unwrap();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(&back, unsafe { &*p }.inner.persona());
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
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
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_models_new(root.as_ptr(), &mut m) }, zipp_status::ZIPP_OK);
    let mut p = null_mut();
    for (spec, want) in [
        ("vprag", zipp_status::ZIPP_ERR_MODEL_NOT_FOUND),
        ("dalle", zipp_status::ZIPP_ERR_SCHEMA),
        (r#"{"method":"brag","k":0}"#, zipp_status::ZIPP_ERR_INVALID_INPUT),
        (r#"{"method":"brag""#, zipp_status::ZIPP_ERR_PARSE),
    ] {
        let c = CString::new(spec).unwrap();
        // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
        assert_eq!(unsafe { zipp_personalizer_new(m, c.as_ptr(), &mut p) }, want, "{spec}: {:?}", last_error());
        assert!(p.is_null());
    }
    assert!(last_error().is_some());
    // Identity needs no model.
    let c = CString::new("identity").unwrap();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_personalizer_new(m, c.as_ptr(), &mut p) }, zipp_status::ZIPP_OK);
    let mut spec = null_mut();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_personalizer_spec(p, &mut spec) }, zipp_status::ZIPP_OK);
    assert_eq!(take(spec), r#"{"method":"identity"}"#);
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    unsafe {
        zipp_personalizer_free(p);
        zipp_models_free(m);
    }
}

#[test]
fn embed_checks_the_buffer_and_end_to_end_personalization_round_trips() {
    let mut m = null_mut();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_models_new(null(), &mut m) }, zipp_status::ZIPP_OK);
    let mut dim = 0;
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_models_dim(m, &mut dim) }, zipp_status::ZIPP_OK, "{:?}", last_error());
    assert_eq!(dim, 384);
    let texts = [CString::new("a teal door").unwrap(), CString::new("a teal door").unwrap()];
    let ptrs: Vec<*const c_char> = texts.iter().map(|t| t.as_ptr()).collect();
    let mut small = vec![0f32; dim];
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    let s = unsafe { zipp_embed(m, ptrs.as_ptr(), 2, small.as_mut_ptr(), small.len()) };
    assert_eq!(s, zipp_status::ZIPP_ERR_INVALID_INPUT);
    assert!(small.iter().all(|&x| x == 0.0), "nothing written on failure");
    let mut out = vec![0f32; 2 * dim];
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_embed(m, ptrs.as_ptr(), 2, out.as_mut_ptr(), out.len()) }, zipp_status::ZIPP_OK);
    let cos: f32 = out[..dim].iter().zip(&out[dim..]).map(|(a, b)| a * b).sum();
    assert!((cos - 1.0).abs() < 1e-5);

    let json = CString::new(PERSONA).unwrap();
    let mut persona = null_mut();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_persona_from_json(json.as_ptr(), &mut persona) }, zipp_status::ZIPP_OK);
    let spec = CString::new(r#"{"method":"vprag","token_budget":40}"#).unwrap();
    let mut p = null_mut();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_personalizer_new(m, spec.as_ptr(), &mut p) }, zipp_status::ZIPP_OK);
    let req = CString::new(r#"{"prompt":"a front door","task":"edit"}"#).unwrap();
    let mut res = null_mut();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
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
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_explain(c.as_ptr(), &mut text) }, zipp_status::ZIPP_OK);
    assert!(take(text).starts_with("[vprag] a front door"));

    let batch = CString::new(r#"["a front door", {"prompt":"a roof","token_budget":20}]"#).unwrap();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_personalize_batch(p, persona, batch.as_ptr(), &mut res) }, zipp_status::ZIPP_OK);
    let results: Vec<Personalization> = serde_json::from_str(&take(res)).unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[1].evidence.content_budget, 18);
    let empty = CString::new("  ").unwrap();
    assert_eq!(
        // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
        unsafe { zipp_personalize_prompt(p, persona, empty.as_ptr(), &mut res) },
        zipp_status::ZIPP_ERR_INVALID_INPUT
    );
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    unsafe {
        zipp_personalizer_free(p);
        zipp_persona_free(persona);
        zipp_models_free(m);
    }
}

// ---------------------------------------------------------------------------------------
// Evaluation: scorer, evaluation runner, statistics

fn models() -> *mut zipp_models {
    let mut m = null_mut();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_models_new(null(), &mut m) }, zipp_status::ZIPP_OK);
    m
}

fn persona(json: &str) -> *mut zipp_persona {
    let json = CString::new(json).unwrap();
    let mut p = null_mut();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_persona_from_json(json.as_ptr(), &mut p) }, zipp_status::ZIPP_OK, "{:?}", last_error());
    p
}

#[test]
fn scorer_scores_a_caption_of_its_own_persona_as_in_the_span_and_not_novel() {
    let (m, p) = (models(), persona(PERSONA));
    let mut s: *mut zipp_scorer = std::ptr::dangling_mut();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_scorer_new(m, p, null(), &mut s) }, zipp_status::ZIPP_OK, "{:?}", last_error());
    let (mut rank, mut k) = (0, 0);
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_scorer_rank(s, &mut rank) }, zipp_status::ZIPP_OK);
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_scorer_clusters(s, &mut k) }, zipp_status::ZIPP_OK);
    assert_eq!((rank, k), (2, 1));

    let caption = CString::new("a teal door in Lisbon").unwrap();
    let mut out = null_mut();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_scorer_score(s, caption.as_ptr(), &mut out) }, zipp_status::ZIPP_OK);
    let score: zipp_eval::VpttScore = serde_json::from_str(&take(out)).unwrap();
    assert!((score.gs - 1.0).abs() < 1e-5 && score.nv == 0.0 && score.nv_soft.is_none(), "{score:?}");
    // Same as zipp-core directly (up to float noise: MiniLM's packed encoder rounds a text
    // slightly differently in batches of different shapes, and the memory index batch
    // depends on what is cached already).
    let models = Models::new();
    let embedder = models.embedder().unwrap();
    let indexed = IndexedPersona::new(Persona::from_json_str(PERSONA).unwrap());
    let direct = zipp_eval::PersonaScorer::new(&indexed, &*embedder, &Default::default()).unwrap();
    let d = direct.score(&*embedder, &["a teal door in Lisbon"]).unwrap()[0];
    for (a, b) in [(d.pa, score.pa), (d.gs, score.gs), (d.cp, score.cp), (d.nv, score.nv), (d.vptt, score.vptt)] {
        assert!((a - b).abs() < 1e-6, "{d:?} vs {score:?}");
    }

    let batch = CString::new(r#"["a teal door in Lisbon", "a spaceship over the sea at noon"]"#).unwrap();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_scorer_score_batch(s, batch.as_ptr(), &mut out) }, zipp_status::ZIPP_OK);
    let scores: Vec<zipp_eval::VpttScore> = serde_json::from_str(&take(out)).unwrap();
    assert_eq!(scores.len(), 2);
    assert!((scores[0].vptt - score.vptt).abs() < 1e-6 && scores[0].nv == 0.0, "{:?} vs {score:?}", scores[0]);
    assert!(scores[1].gs < 0.99 && scores[1].nv == 1.0, "{:?}", scores[1]);
    let empty = CString::new("[]").unwrap();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_scorer_score_batch(s, empty.as_ptr(), &mut out) }, zipp_status::ZIPP_OK);
    assert_eq!(take(out), "[]");
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    unsafe { zipp_scorer_free(s) };

    // Options: soft novelty fills nv_soft; weights change vptt.
    let options = CString::new(r#"{"novelty": "soft", "weights": {"pa": 0, "gs": 1, "cp": 0, "nv": 0}}"#).unwrap();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_scorer_new(m, p, options.as_ptr(), &mut s) }, zipp_status::ZIPP_OK, "{:?}", last_error());
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_scorer_score(s, caption.as_ptr(), &mut out) }, zipp_status::ZIPP_OK);
    let soft: zipp_eval::VpttScore = serde_json::from_str(&take(out)).unwrap();
    assert!(soft.nv_soft.unwrap() < 1e-6 && (soft.vptt - soft.gs).abs() < 1e-12, "{soft:?}");
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    unsafe {
        zipp_scorer_free(s);
        zipp_persona_free(p);
        zipp_models_free(m);
    }
}

#[test]
fn scorer_rejects_nulls_bad_utf8_bad_options_and_a_persona_without_posts() {
    let (m, p) = (models(), persona(PERSONA));
    let mut s: *mut zipp_scorer = std::ptr::dangling_mut();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_scorer_new(null(), p, null(), &mut s) }, zipp_status::ZIPP_ERR_NULL_POINTER);
    assert!(s.is_null());
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_scorer_new(m, null(), null(), &mut s) }, zipp_status::ZIPP_ERR_NULL_POINTER);
    assert!(last_error().unwrap().contains("`persona` is NULL"));
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_scorer_new(m, p, null(), null_mut()) }, zipp_status::ZIPP_ERR_NULL_POINTER);
    let bad = [b'{', 0xc3, 0];
    assert_eq!(
        // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
        unsafe { zipp_scorer_new(m, p, bad.as_ptr() as *const c_char, &mut s) },
        zipp_status::ZIPP_ERR_INVALID_UTF8
    );
    for (options, want, needle) in [
        (r#"{"clusters": "#, zipp_status::ZIPP_ERR_PARSE, "line 1"),
        (r#"{"novelty": "fuzzy"}"#, zipp_status::ZIPP_ERR_SCHEMA, "novelty"),
        (r#"{"weights": {"pa": 1}}"#, zipp_status::ZIPP_ERR_SCHEMA, "weights"),
        (r#"{"clustres": 2}"#, zipp_status::ZIPP_ERR_SCHEMA, "clustres"),
        (r#"{"weights": {"pa": 0.5, "gs": 0.5, "cp": 0.5, "nv": 0}}"#, zipp_status::ZIPP_ERR_INVALID_INPUT, "sum to 1"),
        (r#"{"clusters": 0}"#, zipp_status::ZIPP_ERR_INVALID_INPUT, "clusters"),
    ] {
        let c = CString::new(options).unwrap();
        // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
        assert_eq!(unsafe { zipp_scorer_new(m, p, c.as_ptr(), &mut s) }, want, "{options}: {:?}", last_error());
        assert!(last_error().unwrap().contains(needle), "{options}: {:?}", last_error());
        assert!(s.is_null());
    }
    let bare = persona(r#"{"id":"bare","summary":"No posts."}"#);
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_scorer_new(m, bare, null(), &mut s) }, zipp_status::ZIPP_ERR_INVALID_INPUT);
    assert!(last_error().unwrap().contains("has no posts"), "{:?}", last_error());

    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_scorer_new(m, p, null(), &mut s) }, zipp_status::ZIPP_OK);
    let mut out: *mut c_char = std::ptr::dangling_mut();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_scorer_score(s, null(), &mut out) }, zipp_status::ZIPP_ERR_NULL_POINTER);
    assert!(out.is_null());
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_scorer_score(null(), c"x".as_ptr(), &mut out) }, zipp_status::ZIPP_ERR_NULL_POINTER);
    assert_eq!(
        // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
        unsafe { zipp_scorer_score(s, bad.as_ptr() as *const c_char, &mut out) },
        zipp_status::ZIPP_ERR_INVALID_UTF8
    );
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_scorer_score(s, c"x".as_ptr(), null_mut()) }, zipp_status::ZIPP_ERR_NULL_POINTER);
    for (batch, want, needle) in [
        (r#"["a", 3]"#, zipp_status::ZIPP_ERR_SCHEMA, "[1]"),
        (r#"{"prompt": "a"}"#, zipp_status::ZIPP_ERR_SCHEMA, "expected a sequence"),
        (r#"["a""#, zipp_status::ZIPP_ERR_PARSE, "line 1"),
        (r#"["a"] x"#, zipp_status::ZIPP_ERR_PARSE, "trailing characters"),
    ] {
        let c = CString::new(batch).unwrap();
        // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
        assert_eq!(unsafe { zipp_scorer_score_batch(s, c.as_ptr(), &mut out) }, want, "{batch}: {:?}", last_error());
        assert!(last_error().unwrap().contains(needle), "{batch}: {:?}", last_error());
        assert!(out.is_null());
    }
    let mut n = 9usize;
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_scorer_rank(null(), &mut n) }, zipp_status::ZIPP_ERR_NULL_POINTER);
    assert_eq!(n, 0);
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_scorer_clusters(s, null_mut()) }, zipp_status::ZIPP_ERR_NULL_POINTER);
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    unsafe {
        zipp_scorer_free(s);
        zipp_scorer_free(null_mut());
        zipp_persona_free(bare);
        zipp_persona_free(p);
        zipp_models_free(m);
    }
}

const BEN: &str = r#"{"id":"ben","summary":"Ben sails.","memory":[
  {"caption":"a white sail on a grey sea","elements":{"color":["white"],"object":["sail"]}},
  {"caption":"rope coiled on a wet deck","elements":{"object":["rope"],"lighting":["overcast"]}},
  {"caption":"a lighthouse at dawn","elements":{"object":["lighthouse"],"lighting":["dawn"]}}]}"#;

const SMALL_EVAL: &str = r#"{"methods": ["identity", {"method": "brag", "k": 1}],
  "queries": [{"name": "door", "task": "generate", "prompt": "a front door"},
              {"name": "room", "task": "edit", "prompt": "redesign this room"}]}"#;

#[test]
fn evaluation_streams_personas_into_a_report() {
    let (m, p, ben) = (models(), persona(PERSONA), persona(BEN));
    let config = CString::new(SMALL_EVAL).unwrap();
    let mut ev: *mut zipp_evaluation = std::ptr::dangling_mut();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_evaluation_new(m, config.as_ptr(), &mut ev) }, zipp_status::ZIPP_OK, "{:?}", last_error());
    // The handle keeps what it needs: the models handle may go first.
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    unsafe { zipp_models_free(m) };
    let mut n = 7u64;
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_evaluation_personas(ev, &mut n) }, zipp_status::ZIPP_OK);
    assert_eq!(n, 0);

    let mut samples = null_mut();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_evaluation_add_persona(ev, p, &mut samples) }, zipp_status::ZIPP_OK, "{:?}", last_error());
    let samples: Vec<zipp_eval::Sample> = serde_json::from_str(&take(samples)).unwrap();
    assert_eq!(samples.len(), 4);
    assert_eq!((samples[0].query.as_str(), samples[0].method.as_str()), ("door", "identity"));
    assert_eq!((samples[3].query.as_str(), samples[3].method.as_str()), ("room", "brag"));
    assert_eq!(samples[0].prompt, "a front door");
    assert_eq!(samples[0].score.nv, 0.0, "identity never reads the memory: NV = 0 by the paper's convention");
    // Without an out-parameter the samples are dropped; the persona still counts.
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_evaluation_add_persona(ev, ben, null_mut()) }, zipp_status::ZIPP_OK);
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_evaluation_personas(ev, &mut n) }, zipp_status::ZIPP_OK);
    assert_eq!(n, 2);

    // A persona that cannot be scored adds nothing.
    let bare = persona(r#"{"id":"bare","summary":"No posts."}"#);
    let mut out: *mut c_char = std::ptr::dangling_mut();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_evaluation_add_persona(ev, bare, &mut out) }, zipp_status::ZIPP_ERR_INVALID_INPUT);
    assert!(out.is_null());
    assert!(last_error().unwrap().contains("persona `bare`"), "{:?}", last_error());
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_evaluation_personas(ev, &mut n) }, zipp_status::ZIPP_OK);
    assert_eq!(n, 2);

    let mut json = null_mut();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_evaluation_report(ev, &mut json) }, zipp_status::ZIPP_OK);
    let json = take(json);
    let report = zipp_eval::Report::from_json(&json).unwrap();
    assert_eq!(report.personas, 2);
    assert_eq!(report.methods, ["identity", "brag"]);
    assert_eq!(report.tables.len(), 2, "one table per query; no task kind has two queries");
    assert_eq!(report.tables[0].rows[0].nv, None);
    let mut text = null_mut();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_evaluation_table(ev, &mut text) }, zipp_status::ZIPP_OK);
    let text = take(text);
    assert_eq!(text, report.table());
    assert!(text.starts_with("2 personas") && text.contains("door (generation): \"a front door\""), "{text}");
    let c = CString::new(json).unwrap();
    let mut again = null_mut();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_report_table(c.as_ptr(), &mut again) }, zipp_status::ZIPP_OK);
    assert_eq!(take(again), text);
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_report_table(c"{\"personas\": 1}".as_ptr(), &mut again) }, zipp_status::ZIPP_ERR_SCHEMA);
    assert!(again.is_null());
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    unsafe {
        zipp_evaluation_free(ev);
        zipp_persona_free(bare);
        zipp_persona_free(ben);
        zipp_persona_free(p);
    }
}

#[test]
fn evaluation_is_shared_safely_between_threads() {
    let (m, p) = (models(), persona(PERSONA));
    let config = CString::new(SMALL_EVAL).unwrap();
    let mut ev = null_mut();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_evaluation_new(m, config.as_ptr(), &mut ev) }, zipp_status::ZIPP_OK, "{:?}", last_error());
    struct Shared(*mut zipp_evaluation, *const zipp_persona);
    // SAFETY: both handles are documented thread-safe (an evaluation serialises calls with
    // its lock; a persona is immutable), and they outlive the scope that shares them.
    unsafe impl Sync for Shared {}
    let shared = Shared(ev, p);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                let s = &shared;
                for _ in 0..2 {
                    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
                    assert_eq!(unsafe { zipp_evaluation_add_persona(s.0, s.1, null_mut()) }, zipp_status::ZIPP_OK);
                    let mut n = 0u64;
                    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
                    assert_eq!(unsafe { zipp_evaluation_personas(s.0, &mut n) }, zipp_status::ZIPP_OK);
                    assert!(n >= 1);
                }
            });
        }
    });
    let mut n = 0u64;
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_evaluation_personas(ev, &mut n) }, zipp_status::ZIPP_OK);
    assert_eq!(n, 8);
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    unsafe {
        zipp_evaluation_free(ev);
        zipp_persona_free(p);
        zipp_models_free(m);
    }
}

#[test]
fn evaluation_rejects_bad_configs_with_their_location_and_nulls() {
    let m = models();
    let mut ev: *mut zipp_evaluation = std::ptr::dangling_mut();
    for (config, want, needle) in [
        (r#"{"methods": ["identity", "nope"]}"#, zipp_status::ZIPP_ERR_SCHEMA, "methods[1]"),
        (r#"{"methods": [{"method": "vprag", "temperature": "hot"}]}"#, zipp_status::ZIPP_ERR_SCHEMA, "methods[0]"),
        (r#"{"queries": "all"}"#, zipp_status::ZIPP_ERR_INVALID_INPUT, "query set"),
        (r#"{"options": {"novelty": "sometimes"}}"#, zipp_status::ZIPP_ERR_SCHEMA, "options"),
        (r#"{"methods": []}"#, zipp_status::ZIPP_ERR_INVALID_INPUT, "at least one method"),
        (
            r#"{"methods": ["identity"], "options": {"baseline": "brag"}}"#,
            zipp_status::ZIPP_ERR_INVALID_INPUT,
            "baseline",
        ),
        ("[", zipp_status::ZIPP_ERR_PARSE, "line 1"),
    ] {
        let c = CString::new(config).unwrap();
        // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
        assert_eq!(unsafe { zipp_evaluation_new(m, c.as_ptr(), &mut ev) }, want, "{config}: {:?}", last_error());
        assert!(last_error().unwrap().contains(needle), "{config}: {:?}", last_error());
        assert!(ev.is_null());
    }
    let bad = [b'{', 0xff, 0];
    assert_eq!(
        // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
        unsafe { zipp_evaluation_new(m, bad.as_ptr() as *const c_char, &mut ev) },
        zipp_status::ZIPP_ERR_INVALID_UTF8
    );
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_evaluation_new(null(), null(), &mut ev) }, zipp_status::ZIPP_ERR_NULL_POINTER);
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_evaluation_new(m, null(), null_mut()) }, zipp_status::ZIPP_ERR_NULL_POINTER);
    // Models that are not there: the methods that need them say so.
    let mut missing = null_mut();
    assert_eq!(
        // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
        unsafe { zipp_models_new(c"/nonexistent/zipp-ffi-models".as_ptr(), &mut missing) },
        zipp_status::ZIPP_OK
    );
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_evaluation_new(missing, null(), &mut ev) }, zipp_status::ZIPP_ERR_MODEL_NOT_FOUND);

    let p = persona(PERSONA);
    let mut out: *mut c_char = std::ptr::dangling_mut();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_evaluation_add_persona(null_mut(), p, &mut out) }, zipp_status::ZIPP_ERR_NULL_POINTER);
    assert!(out.is_null());
    let mut n = 5u64;
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_evaluation_personas(null(), &mut n) }, zipp_status::ZIPP_ERR_NULL_POINTER);
    assert_eq!(n, 0);
    let mut out: *mut c_char = std::ptr::dangling_mut();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_evaluation_report(null(), &mut out) }, zipp_status::ZIPP_ERR_NULL_POINTER);
    assert!(out.is_null());
    let mut out: *mut c_char = std::ptr::dangling_mut();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_evaluation_table(null(), &mut out) }, zipp_status::ZIPP_ERR_NULL_POINTER);
    assert!(out.is_null());
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_report_table(null(), &mut out) }, zipp_status::ZIPP_ERR_NULL_POINTER);
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    unsafe {
        zipp_evaluation_free(null_mut());
        zipp_persona_free(p);
        zipp_models_free(missing);
        zipp_models_free(m);
    }
}

#[test]
fn stats_match_zipp_core_and_check_their_arguments() {
    let mut v = 7.0;
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_stats_binomial_test(3, 10, 0.5, &mut v) }, zipp_status::ZIPP_OK);
    assert!((v - 0.34375).abs() < 1e-15, "{v}");
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_stats_binomial_test(11, 10, 0.5, &mut v) }, zipp_status::ZIPP_ERR_INVALID_INPUT);
    assert_eq!(v, 0.0);
    assert!(last_error().unwrap().contains("binomial_test: k = 11"), "{:?}", last_error());
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_stats_binomial_test(1, 2, 0.5, null_mut()) }, zipp_status::ZIPP_ERR_NULL_POINTER);

    let (mut lo, mut hi) = (9.0, 9.0);
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_stats_wilson_interval(0, 10, 0.95, &mut lo, &mut hi) }, zipp_status::ZIPP_OK);
    let z = 1.959963984540054f64;
    assert_eq!(lo, 0.0);
    assert!((hi - z * z / (10.0 + z * z)).abs() < 1e-12);
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_stats_wilson_interval(1, 2, 1.0, &mut lo, &mut hi) }, zipp_status::ZIPP_ERR_INVALID_INPUT);
    assert_eq!((lo, hi), (0.0, 0.0));
    assert_eq!(
        // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
        unsafe { zipp_stats_wilson_interval(1, 2, 0.9, &mut lo, null_mut()) },
        zipp_status::ZIPP_ERR_NULL_POINTER
    );

    let xs = [1.0, 2.0, 3.0, 4.0];
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_stats_mean(xs.as_ptr(), 4, &mut v) }, zipp_status::ZIPP_OK);
    assert_eq!(v, 2.5);
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_stats_mean(null(), 0, &mut v) }, zipp_status::ZIPP_ERR_INVALID_INPUT);
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_stats_mean(null(), 3, &mut v) }, zipp_status::ZIPP_ERR_NULL_POINTER);
    assert!(last_error().unwrap().contains("`xs` is NULL"));
    let nan = [1.0, f64::NAN];
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_stats_mean(nan.as_ptr(), 2, &mut v) }, zipp_status::ZIPP_ERR_INVALID_INPUT);

    let (a, b) = ([0.61, 0.72, 0.58, 0.69, 0.66], [0.52, 0.55, 0.49, 0.6]);
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_stats_cohens_d(a.as_ptr(), 5, b.as_ptr(), 4, &mut v) }, zipp_status::ZIPP_OK);
    assert!((v - 2.1122946333043076).abs() < 1e-12);
    // Undefined: NaN, with success.
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_stats_cohens_d(a.as_ptr(), 1, b.as_ptr(), 4, &mut v) }, zipp_status::ZIPP_OK);
    assert!(v.is_nan());
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_stats_cohens_d(null(), 0, b.as_ptr(), 4, &mut v) }, zipp_status::ZIPP_OK);
    assert!(v.is_nan());
    let (c1, c2) = ([0.5, 0.5], [0.7, 0.7, 0.7]);
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_stats_cohens_d(c1.as_ptr(), 2, c2.as_ptr(), 3, &mut v) }, zipp_status::ZIPP_OK);
    assert_eq!(v, f64::INFINITY);
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_stats_cohens_d(a.as_ptr(), 5, null(), 4, &mut v) }, zipp_status::ZIPP_ERR_NULL_POINTER);

    let ys = [10.0, 30.0, 20.0, 40.0];
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_stats_spearman(xs.as_ptr(), ys.as_ptr(), 4, &mut v) }, zipp_status::ZIPP_OK);
    assert!((v - 0.8).abs() < 1e-12, "{v}");
    let flat = [1.0, 1.0, 1.0, 1.0];
    assert_eq!(
        // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
        unsafe { zipp_stats_spearman(xs.as_ptr(), flat.as_ptr(), 4, &mut v) },
        zipp_status::ZIPP_ERR_INVALID_INPUT
    );
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_stats_spearman(null(), null(), 0, &mut v) }, zipp_status::ZIPP_ERR_INVALID_INPUT);
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_stats_spearman(xs.as_ptr(), null(), 4, &mut v) }, zipp_status::ZIPP_ERR_NULL_POINTER);

    let mut ranks = [0.0; 4];
    let tied = [1.0, 2.0, 2.0, 3.0];
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_stats_average_ranks(tied.as_ptr(), 4, ranks.as_mut_ptr()) }, zipp_status::ZIPP_OK);
    assert_eq!(ranks, [1.0, 2.5, 2.5, 4.0]);
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_stats_average_ranks(null(), 0, null_mut()) }, zipp_status::ZIPP_OK);
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_stats_average_ranks(tied.as_ptr(), 4, null_mut()) }, zipp_status::ZIPP_ERR_NULL_POINTER);
    assert_eq!(
        // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
        unsafe { zipp_stats_average_ranks(nan.as_ptr(), 2, ranks.as_mut_ptr()) },
        zipp_status::ZIPP_ERR_INVALID_INPUT
    );
}

// ---------------------------------------------------------------------------------------
// Benches

fn persona_json(p: *const zipp_persona) -> zipp_core::Persona {
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    unsafe { &*p }.inner.persona().clone()
}

#[test]
fn synthetic_bench_generates_the_personas_zipp_core_does() {
    let options = CString::new(r#"{"personas": 3, "seed": 7, "posts_per_persona": 4}"#).unwrap();
    let mut bench: *mut zipp_synthetic_bench = std::ptr::dangling_mut();
    assert_eq!(
        // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
        unsafe { zipp_synthetic_bench_new(null(), options.as_ptr(), &mut bench) },
        zipp_status::ZIPP_OK,
        "{:?}",
        last_error()
    );
    let mut n = 0;
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_synthetic_bench_len(bench, &mut n) }, zipp_status::ZIPP_OK);
    assert_eq!(n, 3);
    let mut p: *mut zipp_persona = std::ptr::dangling_mut();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_synthetic_bench_persona(bench, 2, &mut p) }, zipp_status::ZIPP_OK);
    let got = persona_json(p);
    assert_eq!(got.id, "syn-7-2");
    assert_eq!(got.memory.len(), 4);
    use zipp_eval::datasets::synthetic::{SyntheticBench, SyntheticOptions, Vocabulary};
    let direct = SyntheticBench::new(
        std::sync::Arc::new(Vocabulary::load_default().unwrap()),
        SyntheticOptions { personas: 3, seed: 7, posts_per_persona: 4, ..Default::default() },
    )
    .unwrap();
    assert_eq!(got, direct.persona(2).unwrap());
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    unsafe { zipp_persona_free(p) };

    let mut p: *mut zipp_persona = std::ptr::dangling_mut();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_synthetic_bench_persona(bench, 3, &mut p) }, zipp_status::ZIPP_ERR_INVALID_INPUT);
    assert!(p.is_null());
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_synthetic_bench_persona(null(), 0, &mut p) }, zipp_status::ZIPP_ERR_NULL_POINTER);
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_synthetic_bench_persona(bench, 0, null_mut()) }, zipp_status::ZIPP_ERR_NULL_POINTER);
    let mut n = 5;
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_synthetic_bench_len(null(), &mut n) }, zipp_status::ZIPP_ERR_NULL_POINTER);
    assert_eq!(n, 0);
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    unsafe {
        zipp_synthetic_bench_free(bench);
        zipp_synthetic_bench_free(null_mut());
    }
}

#[test]
fn synthetic_bench_rejects_bad_options_and_a_missing_vocabulary() {
    let mut bench: *mut zipp_synthetic_bench = std::ptr::dangling_mut();
    for (options, want, needle) in [
        (r#"{"personas": "many"}"#, zipp_status::ZIPP_ERR_SCHEMA, "personas"),
        (r#"{"persons": 3}"#, zipp_status::ZIPP_ERR_SCHEMA, "persons"),
        (r#"{"words_per_caption": [40]}"#, zipp_status::ZIPP_ERR_SCHEMA, "words_per_caption"),
        (r#"{"posts_per_persona": 0}"#, zipp_status::ZIPP_ERR_INVALID_INPUT, "posts_per_persona"),
        (r#"{"seed": 1"#, zipp_status::ZIPP_ERR_PARSE, "line 1"),
    ] {
        let c = CString::new(options).unwrap();
        // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
        assert_eq!(unsafe { zipp_synthetic_bench_new(null(), c.as_ptr(), &mut bench) }, want, "{options}");
        assert!(last_error().unwrap().contains(needle), "{options}: {:?}", last_error());
        assert!(bench.is_null());
    }
    let dir = CString::new("/nonexistent/phrase-lists").unwrap();
    assert_eq!(
        // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
        unsafe { zipp_synthetic_bench_new(dir.as_ptr(), null(), &mut bench) },
        zipp_status::ZIPP_ERR_MODEL_NOT_FOUND
    );
    assert!(last_error().unwrap().contains("flavors.txt"), "{:?}", last_error());
    let bad = [0xffu8, 0];
    assert_eq!(
        // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
        unsafe { zipp_synthetic_bench_new(bad.as_ptr() as *const c_char, null(), &mut bench) },
        zipp_status::ZIPP_ERR_INVALID_UTF8
    );
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_synthetic_bench_new(null(), null(), null_mut()) }, zipp_status::ZIPP_ERR_NULL_POINTER);
}

#[test]
fn movielens_users_become_personas() {
    let mut ml: *mut zipp_movielens = std::ptr::dangling_mut();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_movielens_load(null(), &mut ml) }, zipp_status::ZIPP_OK, "{:?}", last_error());
    let (mut users, mut movies, mut ratings) = (0, 0, 0);
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_movielens_users(ml, &mut users) }, zipp_status::ZIPP_OK);
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_movielens_movies(ml, &mut movies) }, zipp_status::ZIPP_OK);
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_movielens_ratings(ml, &mut ratings) }, zipp_status::ZIPP_OK);
    assert_eq!((users, movies, ratings), (943, 1682, 100_000));

    let mut p = null_mut();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_movielens_persona(ml, 0, null(), &mut p) }, zipp_status::ZIPP_OK);
    let first = persona_json(p);
    assert_eq!(first.id, "ml100k-1");
    assert_eq!(first.memory.len(), 30);
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    unsafe { zipp_persona_free(p) };
    let options = CString::new(r#"{"max_posts": 5, "min_rating": 4}"#).unwrap();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_movielens_persona(ml, 941, options.as_ptr(), &mut p) }, zipp_status::ZIPP_OK);
    let last = persona_json(p);
    assert!(last.memory.len() <= 5 && last.memory.iter().all(|post| !post.caption.contains("rated 3")), "{last:?}");
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    unsafe { zipp_persona_free(p) };

    for (index, options, want, needle) in [
        (943, "{}", zipp_status::ZIPP_ERR_INVALID_INPUT, "out of range"),
        (0, r#"{"min_rating": 9}"#, zipp_status::ZIPP_ERR_INVALID_INPUT, "min_rating"),
        (0, r#"{"max_post": 5}"#, zipp_status::ZIPP_ERR_SCHEMA, "max_post"),
        (0, r#"{"max_posts": -1}"#, zipp_status::ZIPP_ERR_SCHEMA, "max_posts"),
    ] {
        let c = CString::new(options).unwrap();
        let mut p: *mut zipp_persona = std::ptr::dangling_mut();
        // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
        assert_eq!(unsafe { zipp_movielens_persona(ml, index, c.as_ptr(), &mut p) }, want, "{options}");
        assert!(last_error().unwrap().contains(needle), "{options}: {:?}", last_error());
        assert!(p.is_null());
    }
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_movielens_persona(null(), 0, null(), &mut p) }, zipp_status::ZIPP_ERR_NULL_POINTER);
    let mut n = 1;
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_movielens_users(null(), &mut n) }, zipp_status::ZIPP_ERR_NULL_POINTER);
    assert_eq!(n, 0);
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    unsafe {
        zipp_movielens_free(ml);
        zipp_movielens_free(null_mut());
    }
    let mut ml: *mut zipp_movielens = std::ptr::dangling_mut();
    let dir = CString::new("/nonexistent/movielens").unwrap();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_movielens_load(dir.as_ptr(), &mut ml) }, zipp_status::ZIPP_ERR_MODEL_NOT_FOUND);
    assert!(ml.is_null());
}

#[test]
fn evaluation_config_is_returned_with_defaults_filled_in() {
    let m = models();
    let config = CString::new(r#"{"methods": ["identity"], "queries": "extended"}"#).unwrap();
    let mut ev = null_mut();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_evaluation_new(m, config.as_ptr(), &mut ev) }, zipp_status::ZIPP_OK, "{:?}", last_error());
    let mut out = null_mut();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_evaluation_config(ev, &mut out) }, zipp_status::ZIPP_OK);
    let back = zipp_factory::EvalConfig::from_json(&take(out)).unwrap();
    assert_eq!(back.methods, [serde_json::json!("identity")]);
    assert_eq!(back.queries, zipp_eval::QuerySet::Named("extended".into()));
    assert_eq!(back.options, zipp_eval::EvalOptions::default());
    let mut out: *mut c_char = std::ptr::dangling_mut();
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    assert_eq!(unsafe { zipp_evaluation_config(null(), &mut out) }, zipp_status::ZIPP_ERR_NULL_POINTER);
    assert!(out.is_null());
    // SAFETY: a call into the C ABI under test, with arguments that meet its contract (NULL only where the test checks NULL handling).
    unsafe {
        zipp_evaluation_free(ev);
        zipp_models_free(m);
    }
}
