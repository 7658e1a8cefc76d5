//! zipp-eval's image metrics against an independent numpy computation on the same inputs:
//! tests/fixtures/image_metrics_numpy.json, produced by
//! `benches/reference/image_metrics_reference.py` (numpy only; its header has the command).
//! The inputs are f64 there and f32 here, so agreement is to ~1e-6 relative.

use serde::Deserialize;
use zipp_core::ErrorKind;
use zipp_eval::image_metrics::{
    clip_score, clip_score_100, cmmd, cosine, ipf_aggregate, personalization_clip_score, rake,
};

#[derive(Deserialize)]
struct Fixture {
    inputs: Inputs,
    clip_score: Vec<(f64, f64, f64)>,
    personalization: f64,
    cmmd: Cmmd,
    rake: Rake,
}
#[derive(Deserialize)]
struct Inputs {
    img: Vec<f32>,
    txt: Vec<f32>,
    txt_close: Vec<f32>,
    refs: Vec<Vec<f32>>,
    x: Vec<Vec<f32>>,
    y_near: Vec<Vec<f32>>,
    y_far: Vec<Vec<f32>>,
    counts: Vec<f64>,
    dims: Vec<usize>,
    targets: Vec<Vec<f64>>,
    values: Vec<f64>,
}
#[derive(Deserialize)]
struct Cmmd {
    xx: f64,
    x_near: f64,
    x_far: f64,
}
#[derive(Deserialize)]
struct Rake {
    weights: Vec<f64>,
    sweeps: usize,
    max_relative_error: f64,
    raw: f64,
    ipf: f64,
    delta_pct: f64,
}

fn fixture() -> Fixture {
    serde_json::from_str(include_str!("fixtures/image_metrics_numpy.json")).unwrap()
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-3)
}

#[test]
fn clip_scores_match_numpy_in_both_conventions() {
    let f = fixture();
    let i = &f.inputs;
    for (txt, (want, want100, cos)) in [&i.txt, &i.txt_close].into_iter().zip(&f.clip_score) {
        assert!(close(cosine(&i.img, txt).unwrap(), *cos, 1e-5));
        assert!(close(clip_score(&i.img, txt).unwrap(), *want, 1e-5), "{want}");
        assert!(close(clip_score_100(&i.img, txt).unwrap(), *want100, 1e-5), "{want100}");
    }
    // The first pair's cosine is negative: both conventions clip it to 0.
    assert_eq!(clip_score(&i.img, &i.txt).unwrap(), 0.0);
    assert!(close(personalization_clip_score(&i.img, &i.refs).unwrap(), f.personalization, 1e-5));
}

#[test]
fn cmmd_matches_numpy_is_zero_on_identical_sets_and_grows_with_shift() {
    let f = fixture();
    let i = &f.inputs;
    assert_eq!(cmmd(&i.x, &i.x).unwrap(), f.cmmd.xx);
    let near = cmmd(&i.x, &i.y_near).unwrap();
    let far = cmmd(&i.x, &i.y_far).unwrap();
    assert!(close(near, f.cmmd.x_near, 1e-4), "{near} vs {}", f.cmmd.x_near);
    assert!(close(far, f.cmmd.x_far, 1e-4), "{far} vs {}", f.cmmd.x_far);
    assert!(0.0 < near && near < far);
}

#[test]
fn raking_matches_numpy_and_keeps_zero_cells_zero() {
    let f = fixture();
    let i = &f.inputs;
    let r = rake(&i.counts, &i.dims, &i.targets).unwrap();
    assert!(r.converged && r.max_relative_error < 1e-5);
    assert_eq!(r.sweeps, f.rake.sweeps);
    for (a, b) in r.weights.iter().zip(&f.rake.weights) {
        assert!(close(*a, *b, 1e-9), "{a} vs {b}");
    }
    for (c, w) in i.counts.iter().zip(&r.weights) {
        if *c == 0.0 {
            assert_eq!(*w, 0.0);
        }
    }
    assert!(close(r.max_relative_error, f.rake.max_relative_error, 1e-6));
    let (raw, ipf, delta) = ipf_aggregate(&i.values, &i.counts, &r).unwrap();
    assert!(close(raw, f.rake.raw, 1e-12) && close(ipf, f.rake.ipf, 1e-9) && close(delta, f.rake.delta_pct, 1e-7));
}

#[test]
fn bad_input_is_a_typed_error() {
    let e = |r: zipp_core::Result<f64>| r.unwrap_err().kind();
    assert_eq!(e(clip_score(&[1.0, 0.0], &[1.0])), ErrorKind::InvalidInput);
    assert_eq!(e(clip_score(&[0.0, 0.0], &[1.0, 0.0])), ErrorKind::InvalidInput);
    assert_eq!(e(clip_score(&[f32::NAN, 0.0], &[1.0, 0.0])), ErrorKind::InvalidInput);
    assert_eq!(e(personalization_clip_score(&[1.0], &[])), ErrorKind::InvalidInput);
    assert_eq!(e(cmmd(&[], &[vec![1.0]])), ErrorKind::InvalidInput);
    assert_eq!(e(cmmd(&[vec![1.0, 0.0]], &[vec![1.0]])), ErrorKind::InvalidInput);
    let bad_rake =
        |counts: &[f64], dims: &[usize], targets: &[Vec<f64>]| rake(counts, dims, targets).unwrap_err().kind();
    assert_eq!(bad_rake(&[1.0, 2.0], &[3], &[vec![1.0, 0.0, 0.0]]), ErrorKind::InvalidInput);
    assert_eq!(bad_rake(&[1.0, 2.0], &[2], &[vec![0.6, 0.6]]), ErrorKind::InvalidInput);
    assert_eq!(bad_rake(&[0.0, 2.0], &[2], &[vec![0.5, 0.5]]), ErrorKind::InvalidInput, "no sample for a target");
    assert_eq!(bad_rake(&[-1.0, 2.0], &[2], &[vec![0.5, 0.5]]), ErrorKind::InvalidInput);
}
