//! The CLIP exports called from Rust the way C calls them, on the tiny random CLIP fixture
//! (zipp-diffusion/tests/fixtures/tiny-clip): the results equal zipp-factory's, buffers of
//! any stride, statuses and cleared out-parameters.

use std::ffi::{CStr, CString};
use std::ptr::{null, null_mut};
use std::sync::Arc;

use super::*;
use crate::{zipp_last_error_message, zipp_string_free};

fn last_error() -> String {
    let p = zipp_last_error_message();
    if p.is_null() {
        return String::new();
    }
    // SAFETY: the thread's last error message, valid until the next zipp call.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn take(s: *mut c_char) -> String {
    assert!(!s.is_null());
    // SAFETY: a string zipp returned, read once and freed once.
    let out = unsafe { CStr::from_ptr(s) }.to_str().unwrap().to_string();
    // SAFETY: as above.
    unsafe { zipp_string_free(s) };
    out
}

fn fixture() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../zipp-diffusion/tests/fixtures/tiny-clip").to_string()
}

fn clip() -> *mut zipp_clip {
    let spec = CString::new(serde_json::json!({ "path": fixture() }).to_string()).unwrap();
    let mut out = null_mut();
    // SAFETY: a NUL-terminated spec and a writable out-parameter.
    let st = unsafe { zipp_clip_new(spec.as_ptr(), &mut out) };
    assert_eq!(st, 0, "{}", last_error());
    out
}

/// A deterministic picture (phase `k`), packed.
fn picture(k: u32, w: u32, h: u32) -> Vec<u8> {
    let mut rgb = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            rgb.extend([
                ((x * 7 + k * 40) % 256) as u8,
                ((y * 5 + k * 90) % 256) as u8,
                (((x + y) * 3 + k * 17) % 256) as u8,
            ]);
        }
    }
    rgb
}

fn desc(rgb: &[u8], w: u32, h: u32, stride: usize) -> zipp_rgb_image {
    zipp_rgb_image { rgb: rgb.as_ptr(), width: w, height: h, stride }
}

fn model() -> Arc<ClipModel> {
    ClipSpec { path: fixture().into() }.build().unwrap()
}

#[test]
fn embeddings_and_scores_equal_the_factorys() {
    let c = clip();
    let m = model();
    let mut dim = 0;
    // SAFETY: a live handle and a writable out-parameter.
    let st = unsafe { zipp_clip_dim(c, &mut dim) };
    assert_eq!(st, 0);
    assert_eq!(dim, 16);
    let (a, b) = (picture(0, 40, 32), picture(1, 32, 48));
    // `b` again, its rows 5 bytes apart beyond the pixels.
    let padded: Vec<u8> = b.chunks(96).flat_map(|r| r.iter().copied().chain([9; 5])).collect();
    let imgs = [desc(&a, 40, 32, 120), desc(&b, 32, 48, 96), desc(&padded, 32, 48, 101)];
    let mut out = vec![0f32; 3 * 16];
    // SAFETY: 3 descriptors of readable buffers; `out` holds 48 floats.
    let st = unsafe { zipp_clip_image_embeddings(c, imgs.as_ptr(), 3, out.as_mut_ptr(), out.len()) };
    assert_eq!(st, 0, "{}", last_error());
    let images = [Image::new(40, 32, a.clone()).unwrap(), Image::new(32, 48, b.clone()).unwrap()];
    let want = m.image_embeddings(&images).unwrap();
    assert_eq!(&out[..16], &want[0][..]);
    assert_eq!(&out[16..32], &want[1][..]);
    assert_eq!(&out[32..], &want[1][..], "a strided buffer is the same image");
    // Too small a buffer, and no image at all.
    // SAFETY: as above, with a smaller `out_len`.
    let st = unsafe { zipp_clip_image_embeddings(c, imgs.as_ptr(), 3, out.as_mut_ptr(), 47) };
    assert_eq!(st, zipp_status::ZIPP_ERR_INVALID_INPUT);
    assert!(last_error().contains("48"), "{}", last_error());
    // SAFETY: n = 0 with NULL images.
    let st = unsafe { zipp_clip_image_embeddings(c, null(), 0, out.as_mut_ptr(), 48) };
    assert_eq!(st, zipp_status::ZIPP_ERR_INVALID_INPUT);

    let texts = [CString::new("a photo of a red cat").unwrap(), CString::new("").unwrap()];
    let ptrs: Vec<*const c_char> = texts.iter().map(|t| t.as_ptr()).collect();
    let mut t = vec![0f32; 32];
    // SAFETY: 2 NUL-terminated texts; `t` holds 32 floats.
    let st = unsafe { zipp_clip_text_embeddings(c, ptrs.as_ptr(), 2, t.as_mut_ptr(), 32) };
    assert_eq!(st, 0, "{}", last_error());
    let want_t = m.text_embeddings(&["a photo of a red cat", ""]).unwrap();
    assert_eq!(t, want_t.concat());
    let mut one = vec![0f32; 16];
    // SAFETY: a NUL-terminated text; `one` holds 16 floats.
    let st = unsafe { zipp_clip_text_embedding(c, ptrs[0], one.as_mut_ptr(), 16) };
    assert_eq!(st, 0);
    assert_eq!(one, want_t[0]);
    // SAFETY: as above with too small a `dim`.
    let st = unsafe { zipp_clip_text_embedding(c, ptrs[0], one.as_mut_ptr(), 15) };
    assert_eq!(st, zipp_status::ZIPP_ERR_INVALID_INPUT);
    let long = CString::new("a ".repeat(100)).unwrap();
    // SAFETY: as above.
    let st = unsafe { zipp_clip_text_embedding(c, long.as_ptr(), one.as_mut_ptr(), 16) };
    assert_eq!(st, zipp_status::ZIPP_ERR_INVALID_INPUT);

    let mut s = [0f64; 2];
    // SAFETY: 2 descriptors, a NUL-terminated prompt, 2 writable doubles.
    let st = unsafe { zipp_clip_scores(c, imgs.as_ptr(), 2, ptrs[0], 0, s.as_mut_ptr()) };
    assert_eq!(st, 0);
    let want_s = fclip::clip_scores(&m, &images, "a photo of a red cat").unwrap();
    assert_eq!(s, [want_s[0].clip_score, want_s[1].clip_score]);
    // SAFETY: as above.
    let st = unsafe { zipp_clip_scores(c, imgs.as_ptr(), 2, ptrs[0], 1, s.as_mut_ptr()) };
    assert_eq!(st, 0);
    assert_eq!(s, [want_s[0].clip_score_100, want_s[1].clip_score_100]);
    // SAFETY: 2 images and 1 reference; 2 writable doubles.
    let st = unsafe { zipp_clip_personalization_scores(c, imgs.as_ptr(), 2, imgs[2..].as_ptr(), 1, s.as_mut_ptr()) };
    assert_eq!(st, 0);
    let want_p = fclip::personalization_clip_scores(&m, &images, &images[1..]).unwrap();
    assert_eq!(s.to_vec(), want_p);
    let mut d = -1.0;
    // SAFETY: 2 and 1 descriptors; a writable double.
    let st = unsafe { zipp_clip_cmmd(c, imgs.as_ptr(), 2, imgs[2..].as_ptr(), 1, &mut d) };
    assert_eq!(st, 0);
    assert_eq!(d, fclip::cmmd(&m, &images, &images[1..]).unwrap());
    // SAFETY: the handle is freed once.
    unsafe { zipp_clip_free(c) };
}

#[test]
fn bad_arguments_are_statuses_and_clear_out_parameters() {
    let mut c: *mut zipp_clip = std::ptr::dangling_mut();
    let missing = CString::new(r#""/nonexistent/clip""#).unwrap();
    // SAFETY: a NUL-terminated spec; `c` writable.
    let st = unsafe { zipp_clip_new(missing.as_ptr(), &mut c) };
    assert_eq!(st, zipp_status::ZIPP_ERR_MODEL_NOT_FOUND);
    assert!(c.is_null());
    let bad = CString::new(r#"{"path": "x", "nope": 1}"#).unwrap();
    // SAFETY: as above.
    let st = unsafe { zipp_clip_new(bad.as_ptr(), &mut c) };
    assert_eq!(st, zipp_status::ZIPP_ERR_SCHEMA);
    // SAFETY: NULL spec.
    let st = unsafe { zipp_clip_new(null(), &mut c) };
    assert_eq!(st, zipp_status::ZIPP_ERR_NULL_POINTER);
    let mut dim = 7;
    // SAFETY: NULL handle; `dim` writable.
    let st = unsafe { zipp_clip_dim(null(), &mut dim) };
    assert_eq!(st, zipp_status::ZIPP_ERR_NULL_POINTER);
    assert_eq!(dim, 0);
    let c = clip();
    let px = picture(0, 8, 8);
    let mut out = [0f32; 16];
    for (img, status) in [
        (zipp_rgb_image { rgb: null(), width: 8, height: 8, stride: 24 }, zipp_status::ZIPP_ERR_NULL_POINTER),
        (desc(&px, 8, 8, 20), zipp_status::ZIPP_ERR_INVALID_INPUT),
        (desc(&px, 0, 8, 24), zipp_status::ZIPP_ERR_INVALID_INPUT),
        (desc(&px, 8, 0, 24), zipp_status::ZIPP_ERR_INVALID_INPUT),
    ] {
        // SAFETY: one descriptor whose buffer (when not NULL) holds what its sizes say.
        let got = unsafe { zipp_clip_image_embeddings(c, &img, 1, out.as_mut_ptr(), 16) };
        assert_eq!(got, status, "{img:?}: {}", last_error());
        assert!(last_error().contains("images[0]"), "{}", last_error());
    }
    let mut d = 5.0;
    // SAFETY: no images on one side (n = 0, NULL).
    let st = unsafe { zipp_clip_cmmd(c, &desc(&px, 8, 8, 24), 1, null(), 0, &mut d) };
    assert_eq!(st, zipp_status::ZIPP_ERR_INVALID_INPUT);
    assert_eq!(d, 0.0);
    // SAFETY: the handle is freed once; NULL is ignored.
    unsafe {
        zipp_clip_free(c);
        zipp_clip_free(null_mut());
    }
}

#[test]
fn image_evaluation_over_c_matches_the_factory_and_sits_beside_a_vptt_report() {
    let c = clip();
    let config = CString::new(
        r#"{"methods": ["identity", "vprag"], "queries": [
            {"name": "cat", "task": "generate", "prompt": "a photo of a red cat"},
            {"name": "dog", "task": "generate", "prompt": "a dog on a beach"}]}"#,
    )
    .unwrap();
    let options = CString::new(r#"{"cmmd_sample": 64}"#).unwrap();
    let mut ev = null_mut();
    // SAFETY: a live CLIP handle, NUL-terminated JSON, a writable out-parameter.
    let st = unsafe { zipp_image_evaluation_new(c, config.as_ptr(), options.as_ptr(), &mut ev) };
    assert_eq!(st, 0, "{}", last_error());
    // The evaluation keeps the model alive.
    // SAFETY: the CLIP handle is freed once, and not used again.
    unsafe { zipp_clip_free(c) };
    let mut layout = null_mut();
    // SAFETY: a live handle; writable out-parameter.
    let st = unsafe { zipp_image_evaluation_layout(ev, &mut layout) };
    assert_eq!(st, 0);
    let layout: serde_json::Value = serde_json::from_str(&take(layout)).unwrap();
    assert_eq!(layout["methods"], serde_json::json!(["identity", "vprag"]));
    assert_eq!(layout["queries"][1]["name"], "dog");

    let (r0, r1, o0, o1) = (picture(5, 32, 32), picture(6, 48, 32), picture(7, 32, 32), picture(8, 32, 40));
    let refs = [desc(&r0, 32, 32, 96), desc(&r1, 48, 32, 144)];
    // Cells: cat×identity (1 image), cat×vprag (the 2 references), dog×identity (2), dog×vprag (2 refs).
    let other = desc(&o0, 32, 32, 96);
    let images = [other, refs[0], refs[1], other, desc(&o1, 32, 40, 96), refs[0], refs[1]];
    let counts = [1usize, 2, 2, 2];
    let id = CString::new("ana").unwrap();
    let mut samples = null_mut();
    // SAFETY: descriptors of live buffers; `counts` sums to `images.len()`.
    let st = unsafe {
        zipp_image_evaluation_add_persona(
            ev,
            id.as_ptr(),
            refs.as_ptr(),
            2,
            images.as_ptr(),
            counts.as_ptr(),
            4,
            &mut samples,
        )
    };
    assert_eq!(st, 0, "{}", last_error());
    let samples: Vec<zipp_eval::image_eval::ImageSample> = serde_json::from_str(&take(samples)).unwrap();
    assert_eq!(samples.len(), 4);
    assert_eq!(samples.iter().map(|s| s.images).collect::<Vec<_>>(), [1, 2, 2, 2]);

    // The same persona through the factory gives the same samples.
    let img = |p: &[u8], w, h| Image::new(w, h, p.to_vec()).unwrap();
    let (ri0, ri1) = (img(&r0, 32, 32), img(&r1, 48, 32));
    let items = vec![
        MethodImages { query: "cat".into(), method: "identity".into(), images: vec![img(&o0, 32, 32)] },
        MethodImages { query: "cat".into(), method: "vprag".into(), images: vec![ri0.clone(), ri1.clone()] },
        MethodImages {
            query: "dog".into(),
            method: "identity".into(),
            images: vec![img(&o0, 32, 32), img(&o1, 32, 40)],
        },
        MethodImages { query: "dog".into(), method: "vprag".into(), images: vec![ri0.clone(), ri1.clone()] },
    ];
    let direct = SharedImageEvaluation::from_json(&model(), config.to_str().ok(), options.to_str().ok()).unwrap();
    assert_eq!(direct.add_persona("ana", &[ri0, ri1], &items).unwrap(), samples);

    // Wrong cell counts add nothing.
    // SAFETY: as above, with 3 counts where 4 are needed.
    let st = unsafe {
        zipp_image_evaluation_add_persona(
            ev,
            id.as_ptr(),
            refs.as_ptr(),
            2,
            images.as_ptr(),
            counts.as_ptr(),
            3,
            null_mut(),
        )
    };
    assert_eq!(st, zipp_status::ZIPP_ERR_INVALID_INPUT);
    assert!(last_error().contains("one count per cell"), "{}", last_error());
    let zero = [1usize, 0, 2, 2];
    // SAFETY: as above; `zero` sums to 5 of the 7 images.
    let st = unsafe {
        zipp_image_evaluation_add_persona(ev, id.as_ptr(), null(), 0, images.as_ptr(), zero.as_ptr(), 4, null_mut())
    };
    assert_eq!(st, zipp_status::ZIPP_ERR_INVALID_INPUT);
    assert!(last_error().contains("has no image"), "{}", last_error());
    let mut n = 9;
    // SAFETY: a live handle; a writable out-parameter.
    let st = unsafe { zipp_image_evaluation_personas(ev, &mut n) };
    assert_eq!(st, 0);
    assert_eq!(n, 1);

    let mut json = null_mut();
    // SAFETY: as above.
    let st = unsafe { zipp_image_evaluation_report(ev, &mut json) };
    assert_eq!(st, 0);
    let json = take(json);
    let report = ImageReport::from_json(&json).unwrap();
    assert_eq!(report, direct.report().unwrap());
    assert!(report.tables.iter().all(|t| t.rows[1].cmmd.unwrap() < 1e-9 && t.rows[0].cmmd.unwrap() > 0.0));
    let mut table = null_mut();
    // SAFETY: as above.
    let st = unsafe { zipp_image_evaluation_table(ev, &mut table) };
    assert_eq!(st, 0);
    assert_eq!(take(table), report.table());

    // Beside the VPTT report of the same methods and queries (a model-free one here).
    let methods = ["identity", "vprag"]
        .iter()
        .map(|m| zipp_eval::EvalMethod::new(m, Arc::new(zipp_core::personalize::Identity::new()), false))
        .collect();
    let queries = report.tables.iter().filter_map(|t| t.query.clone()).collect();
    let options = zipp_eval::EvalOptions { baseline: None, ..Default::default() };
    let mut text =
        zipp_eval::Evaluation::new(Arc::new(zipp_core::rng::HashingEmbedder(8)), methods, queries, options).unwrap();
    let mut p = zipp_core::Persona::new("ana");
    p.memory = vec![zipp_core::Post::new("a red cat on a sofa"), zipp_core::Post::new("a dog asleep")];
    text.add_persona(&zipp_core::IndexedPersona::new(p)).unwrap();
    let text = text.report().unwrap();
    let text_json = CString::new(text.to_json(false).unwrap()).unwrap();
    let json = CString::new(json).unwrap();
    let mut both = null_mut();
    // SAFETY: NUL-terminated JSON; a writable out-parameter.
    let st = unsafe { zipp_image_report_table_beside(json.as_ptr(), text_json.as_ptr(), &mut both) };
    assert_eq!(st, 0);
    assert_eq!(take(both), report.table_beside(&text));
    // SAFETY: malformed JSON is a parse error.
    let st = unsafe { zipp_image_report_table_beside(text_json.as_ptr(), text_json.as_ptr(), &mut both) };
    assert_eq!(st, zipp_status::ZIPP_ERR_SCHEMA);
    assert!(both.is_null());

    let bad = CString::new(r#"{"methods": ["nope"]}"#).unwrap();
    let c = clip();
    let mut other = null_mut();
    // SAFETY: a live CLIP handle; NUL-terminated JSON; writable out-parameter.
    let st = unsafe { zipp_image_evaluation_new(c, bad.as_ptr(), null(), &mut other) };
    assert_eq!(st, zipp_status::ZIPP_ERR_SCHEMA);
    assert!(last_error().contains("methods[0]"), "{}", last_error());
    // SAFETY: each handle freed once; NULL ignored.
    unsafe {
        zipp_image_evaluation_free(ev);
        zipp_image_evaluation_free(null_mut());
        zipp_clip_free(c);
    }
}
