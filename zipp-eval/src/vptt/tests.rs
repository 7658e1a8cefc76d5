//! Hand-checkable cases of the VPTT score. Vectors are built so each expected number can be
//! worked out on paper (basis vectors e_i, their sums); the real-model path is tested in
//! `zipp-core/tests/evaluate.rs`.

use super::*;

const DIM: usize = 6;

fn e(i: usize) -> Vec<f32> {
    let mut v = vec![0.0; DIM];
    v[i] = 1.0;
    v
}

fn sum(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

fn rows(rs: &[Vec<f32>]) -> Embeddings {
    Embeddings::new(DIM, rs.concat()).unwrap()
}

fn scorer(captions: &[Vec<f32>], texts: &[&str], persona: &[f32]) -> PersonaScorer {
    PersonaScorer::from_parts("t", persona, &rows(captions), texts, &VpttOptions::default()).unwrap()
}

const TEXTS3: [&str; 3] =
    ["a red bicycle leans on a blue wall", "morning fog over the quiet harbour", "neon signs glow in the rain"];

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn gs_is_one_for_a_prompt_identical_to_a_caption_and_zero_orthogonal_to_the_span() {
    let caps = vec![e(0), sum(&e(0), &e(1)), e(2)];
    let s = scorer(&caps, &TEXTS3, &e(0));
    assert_eq!(s.rank(), 3);
    for (i, c) in caps.iter().enumerate() {
        let sc = s.score_vector(c, TEXTS3[i]).unwrap();
        assert!(close(sc.gs, 1.0), "caption {i}: GS {}", sc.gs);
        assert_eq!(sc.nv, 0.0, "a verbatim caption has no novelty");
    }
    let orth = s.score_vector(&e(4), "a completely different scene").unwrap();
    assert!(orth.gs.abs() < 1e-12, "GS {}", orth.gs);
    // PA = cos(e4, e0) = 0.
    assert!(orth.pa.abs() < 1e-12);
}

#[test]
fn a_worked_example_of_every_component() {
    // Captions e0 and e1; persona text vector e0; prompt v = (1,1,1,1,0,0)/2.
    // PA = 1/2. GS = ‖(1/2, 1/2)‖ = 1/√2. N = 2 → k = round(√1) = 1; the centroid of the
    // caption coordinates (1,0) and (0,1) is c = (1/2, 1/2).
    // CP (unit coordinates, the default): x = unit(1/2, 1/2) = (1,1)/√2, ‖x − c‖ =
    // √2 (1/√2 − 1/2) = 1 − 1/√2, so CP = exp(−(1 − 1/√2)); one cluster, so CP~ = CP.
    let texts = ["the cat sat on the mat", "a dog ran in the park"];
    let s = scorer(&[e(0), e(1)], &texts, &e(0));
    assert_eq!(s.clusters(), 1);
    let v = vec![1.0, 1.0, 1.0, 1.0, 0.0, 0.0];
    // Prompt trigrams: "the cat sat", "cat sat on", "sat on a", "on a hill": 2 of 4 in caption 0.
    let sc = s.score_vector(&v, "The cat sat on a hill").unwrap();
    let r2 = 0.5f64.sqrt();
    let cp = (-(1.0 - r2)).exp();
    assert!(close(sc.pa, 0.5));
    assert!(close(sc.gs, r2));
    assert!(close(sc.cp, cp) && close(sc.cp_soft, cp), "CP {} {}", sc.cp, sc.cp_soft);
    assert!(close(sc.nv, 0.5), "NV {}", sc.nv);
    let want = 0.2 * 0.5 + 0.3 * r2 + 0.3 * cp + 0.2 * 0.5;
    assert!(close(sc.vptt, want));
    assert!(close(sc.vptt_c, (0.5 + r2 + cp) / 3.0));
    // The paper's convention for methods that never saw the captions.
    let z = sc.with_novelty(0.0, &Weights::default());
    assert_eq!(z.nv, 0.0);
    assert!(close(z.vptt, want - 0.2 * 0.5));
    assert_eq!(z.vptt_c, sc.vptt_c);
    // The raw form (the paper's x = Bᵀv): x = (1/2, 1/2) is the centroid, CP = e⁰ = 1.
    let raw = VpttOptions { cp_unit_coordinates: false, ..VpttOptions::default() };
    let s = PersonaScorer::from_parts("t", &e(0), &rows(&[e(0), e(1)]), &texts, &raw).unwrap();
    let sr = s.score_vector(&v, "The cat sat on a hill").unwrap();
    assert!(close(sr.cp, 1.0) && close(sr.cp_soft, 1.0), "raw CP {} {}", sr.cp, sr.cp_soft);
    assert_eq!((sr.pa, sr.gs, sr.nv), (sc.pa, sc.gs, sc.nv));
}

#[test]
fn unit_coordinates_are_the_default_in_code_and_json() {
    assert!(VpttOptions::default().cp_unit_coordinates);
    assert!(VpttOptions::from_json("{}").unwrap().cp_unit_coordinates);
    assert!(!VpttOptions::from_json(r#"{"cp_unit_coordinates": false}"#).unwrap().cp_unit_coordinates);
}

#[test]
fn cp_of_a_centroid_is_one_and_decays_with_distance() {
    let caps: Vec<Vec<f32>> = (0..6).map(e).collect();
    let texts = ["one two three", "four five six", "seven eight nine", "ten eleven twelve", "a b c", "d e f"];
    let s = scorer(&caps, &texts, &e(0));
    assert_eq!(s.clusters(), 2, "k = round(sqrt(6/2)) = 2");
    for c in s.centroids().map(<[f64]>::to_vec).collect::<Vec<_>>() {
        let (hard, soft) = s.cluster_proximity(&c).unwrap();
        assert!(close(hard, 1.0));
        assert!(soft <= 1.0 && soft > 0.5, "soft {soft}");
        let far: Vec<f64> = c.iter().map(|x| x + 1.0).collect();
        let (h2, _) = s.cluster_proximity(&far).unwrap();
        assert!(h2 < hard);
    }
    assert!(s.cluster_proximity(&[0.0; 3]).is_err(), "wrong number of coordinates");
    assert!(s.cluster_proximity(&[f64::NAN; 6]).is_err());
}

#[test]
fn novelty_is_zero_for_a_verbatim_caption_and_one_without_shared_trigrams() {
    let s = scorer(&[e(0), e(1), e(2)], &TEXTS3, &e(0));
    assert_eq!(s.novelty("Morning fog over the quiet harbour."), 0.0, "case and punctuation are ignored");
    assert_eq!(s.novelty("a red bicycle in the snow"), 1.0 - 1.0 / 4.0);
    assert_eq!(s.novelty("bicycle wall red blue a on leans"), 1.0, "same words, no shared trigram");
    assert_eq!(s.novelty("two words"), 1.0, "fewer than three words: no trigram");
    assert_eq!(s.novelty(""), 1.0);
    // Unknown words do not collapse into one trigram: 3 distinct trigrams, none shared.
    assert_eq!(s.novelty("zz yy xx ww vv"), 1.0);
    // Repeated trigrams count once: Tri = {"neon signs glow", "signs glow neon", "glow neon signs"}.
    assert!(close(s.novelty("neon signs glow neon signs glow"), 1.0 - 1.0 / 3.0));
}

#[test]
fn duplicated_and_dependent_captions_are_rank_deficient_not_broken() {
    let a = e(0);
    let b = sum(&e(0), &e(1));
    let c = sum(&a, &b); // in span(a, b)
    let caps = vec![a.clone(), a.clone(), b.clone(), c, a.clone()];
    let texts = ["x y z", "x y z", "p q r", "s t u", "x y z"];
    let s = scorer(&caps, &texts, &e(0));
    assert_eq!(s.rank(), 2);
    let sc = s.score_vector(&b, "p q r").unwrap();
    assert!(close(sc.gs, 1.0) && sc.nv == 0.0);
    // Many duplicates: k-means never invents clusters for identical points.
    let dupes = vec![a.clone(); 8];
    let s = scorer(&dupes, &["x y z"; 8], &e(0));
    assert_eq!(s.rank(), 1);
    assert_eq!(s.clusters(), 1, "k = 2 requested by the rule, one distinct point");
    let sc = s.score_vector(&a, "x y z").unwrap();
    assert!(close(sc.gs, 1.0) && close(sc.cp, 1.0));
}

#[test]
fn a_one_post_persona_scores_its_own_caption_perfectly() {
    let s = scorer(&[e(3)], &["sunset over the dunes"], &e(3));
    assert_eq!((s.rank(), s.clusters()), (1, 1));
    let sc = s.score_vector(&e(3), "sunset over the dunes").unwrap();
    assert!(close(sc.pa, 1.0) && close(sc.gs, 1.0) && close(sc.cp, 1.0) && sc.nv == 0.0);
    assert!(close(sc.vptt, 0.8) && close(sc.vptt_c, 1.0));
    // Opposite direction: x = -1 in the basis, d = 2 from the centroid (1).
    let neg: Vec<f32> = e(3).iter().map(|x| -x).collect();
    let sc = s.score_vector(&neg, "x").unwrap();
    assert!(close(sc.pa, -1.0) && close(sc.gs, 1.0) && close(sc.cp, (-2.0f64).exp()));
}

#[test]
fn vectors_are_normalised_and_scale_free() {
    let s = scorer(&[e(0), e(1)], &["a b c", "d e f"], &e(0));
    let v = [0.3f32, 0.4, 0.0, 0.0, 0.0, 0.0];
    let w: Vec<f32> = v.iter().map(|x| x * 7.0).collect();
    same(s.score_vector(&v, "q").unwrap(), s.score_vector(&w, "q").unwrap());
    // Unnormalised caption vectors give the same state as unit ones.
    let s2 =
        scorer(&[vec![5.0, 0.0, 0.0, 0.0, 0.0, 0.0], vec![0.0, 0.1, 0.0, 0.0, 0.0, 0.0]], &["a b c", "d e f"], &e(0));
    same(s.score_vector(&v, "q").unwrap(), s2.score_vector(&v, "q").unwrap());
}

fn same(a: VpttScore, b: VpttScore) {
    for (x, y) in [(a.pa, b.pa), (a.gs, b.gs), (a.cp, b.cp), (a.cp_soft, b.cp_soft), (a.nv, b.nv), (a.vptt, b.vptt)] {
        assert!((x - y).abs() < 1e-6, "{a:?} vs {b:?}"); // f32 inputs
    }
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let caps = rows(&[e(0), e(1)]);
    let o = VpttOptions::default();
    assert!(PersonaScorer::from_parts("t", &e(0), &Embeddings::empty(DIM), &[], &o).is_err(), "no captions");
    assert!(PersonaScorer::from_parts("t", &e(0), &caps, &["only one"], &o).is_err(), "text count");
    assert!(PersonaScorer::from_parts("t", &[1.0; 3], &caps, &["a", "b"], &o).is_err(), "persona dim");
    assert!(PersonaScorer::from_parts("t", &[0.0; DIM], &caps, &["a", "b"], &o).is_err(), "zero persona");
    let zero = rows(&[e(0), vec![0.0; DIM]]);
    assert!(PersonaScorer::from_parts("t", &e(0), &zero, &["a", "b"], &o).is_err(), "zero caption");
    let s = PersonaScorer::from_parts("t", &e(0), &caps, &["a", "b"], &o).unwrap();
    assert!(s.score_vector(&[1.0; 3], "x").is_err());
    assert!(s.score_vector(&[f32::NAN; DIM], "x").is_err());
    assert!(s.score_vector(&[0.0; DIM], "x").is_err());
    for bad in [
        VpttOptions { weights: Weights { pa: 0.5, ..Weights::default() }, ..o.clone() },
        VpttOptions { weights: Weights { nv: f64::NAN, ..Weights::default() }, ..o.clone() },
        VpttOptions { gs_tolerance: 0.0, ..o.clone() },
        VpttOptions { clusters: Some(0), ..o.clone() },
        VpttOptions { kmeans_iterations: 0, ..o.clone() },
        VpttOptions { soft_cp_temperature: -1.0, ..o.clone() },
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
        assert!(PersonaScorer::from_parts("t", &e(0), &caps, &["a", "b"], &bad).is_err());
    }
}

use zipp_core::rng::{unit_noise as noise, HashingEmbedder};

#[test]
fn gram_schmidt_is_orthonormal_on_near_dependent_vectors() {
    let dim = 48;
    let mut vs: Vec<f64> = (0..20).flat_map(|i| noise(i, dim)).collect();
    // Three near-copies of vector 0 (differences of 1e-4) and one exact linear combination.
    for j in 0..3 {
        let mut w = vs[..dim].to_vec();
        w[j] += 1e-4;
        vs.extend(w);
    }
    let comb: Vec<f64> = (0..dim).map(|j| vs[j] + 2.0 * vs[dim + j]).collect();
    vs.extend(comb);
    let b = gram_schmidt(&vs, dim, 1e-6);
    let r = b.len() / dim;
    assert_eq!(r, 23, "20 independent + 3 near copies kept (residual 1e-4 > tol), the combination dropped");
    for i in 0..r {
        for j in 0..r {
            let d = dot(&b[i * dim..(i + 1) * dim], &b[j * dim..(j + 1) * dim]);
            let want = if i == j { 1.0 } else { 0.0 };
            assert!((d - want).abs() < 1e-12, "B Bᵀ[{i}][{j}] = {d}");
        }
    }
}

#[test]
fn kmeans_is_deterministic_and_finds_separated_groups() {
    // Two tight groups around (0,0) and (10,10).
    let mut pts = Vec::new();
    for i in 0..10 {
        let d = i as f64 * 0.01;
        pts.extend([d, -d]);
        pts.extend([10.0 + d, 10.0 - d]);
    }
    let c1 = kmeans(&pts, 2, 2, 100, 7);
    assert_eq!(c1, kmeans(&pts, 2, 2, 100, 7), "same seed, same centroids");
    let mut cs: Vec<(f64, f64)> = c1.chunks(2).map(|c| (c[0], c[1])).collect();
    cs.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!((cs[0].0 - 0.045).abs() < 1e-9 && (cs[1].0 - 10.045).abs() < 1e-9, "{cs:?}");
    for seed in 0..20 {
        assert_eq!(kmeans(&pts, 2, 2, 100, seed).len(), 4, "k-means++ always finds both groups");
    }
    assert!(kmeans(&[], 2, 2, 10, 0).is_empty());
    assert_eq!(default_clusters(30), 4);
    assert_eq!(default_clusters(1), 1);
    assert_eq!(default_clusters(2), 1);
    assert_eq!(default_clusters(200), 10);
}

#[test]
fn words_are_lower_cased_alphanumeric_runs() {
    let w: Vec<String> = tokenize_words("It's a Café—at 5pm, isn't it?").collect();
    assert_eq!(w, ["it's", "a", "café", "at", "5pm", "isn't", "it"]);
    assert_eq!(distinct_trigram_texts("a b c a b c"), ["a b c", "b c a", "c a b"]);
}

const HASHING: HashingEmbedder = HashingEmbedder(16);

#[test]
fn soft_novelty_matches_hard_novelty_on_exact_trigrams_and_is_never_larger() {
    let mut p = zipp_core::Persona::new("soft");
    p.summary = "a photographer".into();
    for c in TEXTS3 {
        p.memory.push(zipp_core::Post::new(c));
    }
    let persona = IndexedPersona::new(p);
    let opts = VpttOptions { novelty: Novelty::Soft, ..VpttOptions::default() };
    let s = PersonaScorer::new(&persona, &HASHING, &opts).unwrap();
    let prompts = ["neon signs glow in the rain", "a red bicycle in the snow", "zz yy xx ww", "hi"];
    let scores = s.score(&HASHING, &prompts).unwrap();
    for (p, sc) in prompts.iter().zip(&scores) {
        let soft = sc.nv_soft.unwrap();
        assert!(soft <= sc.nv + 1e-9, "{p}: soft {soft} > hard {}", sc.nv);
        assert!((0.0..=1.0).contains(&soft));
    }
    assert!(scores[0].nv_soft.unwrap() < 1e-6, "a verbatim caption");
    assert_eq!(scores[3].nv_soft, Some(1.0), "no trigram");
    // Hard-only scorers refuse the soft form instead of inventing it.
    let hard = PersonaScorer::new(&persona, &HASHING, &VpttOptions::default()).unwrap();
    assert!(hard.score(&HASHING, &prompts).unwrap().iter().all(|s| s.nv_soft.is_none()));
    assert!(hard.soft_novelty(&HASHING, &prompts).is_err());
    // No posts: an error, not a score of zero.
    let empty = IndexedPersona::new(zipp_core::Persona::new("empty"));
    assert!(PersonaScorer::new(&empty, &HASHING, &opts).is_err());
}
