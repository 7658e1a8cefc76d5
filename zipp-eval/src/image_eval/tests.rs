//! The image columns with a deterministic fake embedder (an image is its mean colour, a
//! colour word its primary), so every cell's value is known in closed form, and the report
//! is checked against the per-sample stream re-aggregated independently.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::stats;
use crate::{EvalMethod, EvalOptions, Evaluation};
use zipp_core::personalize::Identity;
use zipp_core::{IndexedPersona, Persona, Post};

/// Image → its mean (r, g, b) / 255; "red"/"green"/"blue" → the primary; any other text → a
/// fixed pseudo-random positive vector. Counts its image calls.
#[derive(Default)]
struct Fake {
    image_calls: AtomicUsize,
}

impl ImageEmbedder for Fake {
    fn embed_images(&self, images: &[Image]) -> Result<Vec<Vec<f32>>> {
        self.image_calls.fetch_add(1, Ordering::Relaxed);
        Ok(images
            .iter()
            .map(|im| {
                let mut sum = [0f64; 3];
                for px in im.rgb().chunks(3) {
                    for c in 0..3 {
                        sum[c] += px[c] as f64;
                    }
                }
                let n = (im.width() * im.height()) as f64 * 255.0;
                sum.iter().map(|s| (s / n) as f32).collect()
            })
            .collect())
    }

    fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        Ok(texts
            .iter()
            .map(|t| match *t {
                "red" => vec![1.0, 0.0, 0.0],
                "green" => vec![0.0, 1.0, 0.0],
                "blue" => vec![0.0, 0.0, 1.0],
                other => zipp_core::rng::unit_noise(zipp_core::rng::fnv1a(other.as_bytes()), 3)
                    .iter()
                    .map(|x| x.abs() as f32 + 0.01)
                    .collect(),
            })
            .collect())
    }
}

/// Answers one embedding too few: a broken embedder.
struct Short;

impl ImageEmbedder for Short {
    fn embed_images(&self, images: &[Image]) -> Result<Vec<Vec<f32>>> {
        Ok(vec![vec![1.0, 0.0, 0.0]; images.len().saturating_sub(1)])
    }
    fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        Ok(vec![vec![1.0, 0.0, 0.0]; texts.len()])
    }
}

fn solid(r: u8, g: u8, b: u8) -> Image {
    Image::new(4, 4, [r, g, b].repeat(16)).unwrap()
}

fn red() -> Image {
    solid(255, 0, 0)
}
fn green() -> Image {
    solid(0, 255, 0)
}
fn blue() -> Image {
    solid(0, 0, 255)
}
fn yellow() -> Image {
    solid(255, 255, 0)
}

fn queries() -> Vec<Query> {
    vec![
        Query::new("q_red", Task::Generate, "red"),
        Query::new("q_green", Task::Generate, "green"),
        Query::new("q_blue", Task::Edit, "blue"),
    ]
}

fn methods() -> Vec<String> {
    vec!["a".to_string(), "b".to_string()]
}

fn eval(options: ImageEvalOptions) -> ImageEvaluation {
    ImageEvaluation::new(Arc::new(Fake::default()), methods(), queries(), options).unwrap()
}

fn item(query: &str, method: &str, images: Vec<Image>) -> MethodImages {
    MethodImages { query: query.into(), method: method.into(), images }
}

/// Method `a` renders each query's own colour; `b` renders yellow for everything, twice.
fn items() -> Vec<MethodImages> {
    vec![
        item("q_red", "a", vec![red()]),
        item("q_green", "a", vec![green()]),
        item("q_blue", "a", vec![blue()]),
        item("q_red", "b", vec![yellow(), yellow()]),
        item("q_green", "b", vec![yellow(), yellow()]),
        item("q_blue", "b", vec![yellow(), yellow()]),
    ]
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

#[test]
fn cells_have_their_closed_form_values() {
    let mut ev = eval(ImageEvalOptions::default());
    let samples = ev.add_persona("p", &[red(), green()], &items()).unwrap();
    // Query-major, methods in table order, whatever the order given.
    let order: Vec<(&str, &str)> = samples.iter().map(|s| (s.query.as_str(), s.method.as_str())).collect();
    assert_eq!(
        order,
        [("q_red", "a"), ("q_red", "b"), ("q_green", "a"), ("q_green", "b"), ("q_blue", "a"), ("q_blue", "b")]
    );
    let h = std::f64::consts::FRAC_1_SQRT_2;
    let want = [
        // (images, clip, p-clip): red vs "red"; yellow vs "red" (cos 1/√2); refs red and green.
        (1, 2.5, 0.5),
        (2, 2.5 * h, h),
        (1, 2.5, 0.5),
        (2, 2.5 * h, h),
        (1, 2.5, 0.0),
        (2, 0.0, h),
    ];
    for (s, (n, clip, p)) in samples.iter().zip(want) {
        assert_eq!(s.images, n, "{s:?}");
        assert!(close(s.clip_score, clip), "{s:?} vs {clip}");
        assert!(close(s.clip_score_100, 40.0 * clip), "{s:?}");
        assert!(close(s.personalization_clip_score.unwrap(), p), "{s:?} vs {p}");
    }
}

#[test]
fn one_embedding_call_per_persona_for_its_images() {
    let fake = Arc::new(Fake::default());
    let mut ev = ImageEvaluation::new(fake.clone(), methods(), queries(), Default::default()).unwrap();
    ev.add_persona("p", &[], &items()).unwrap();
    assert_eq!(fake.image_calls.load(Ordering::Relaxed), 1);
    ev.add_persona("q", &[red()], &items()).unwrap();
    assert_eq!(fake.image_calls.load(Ordering::Relaxed), 3, "references, then every generated image");
}

/// Persona `i`'s reference is a grey-ish colour of its own; method `a` renders it exactly
/// (so its images are the reference set), `b` renders blue; `c` has no references.
fn persona_items(i: u8) -> (Vec<Image>, Vec<MethodImages>) {
    let own = solid(40 * i + 10, 200 - 30 * i, 90);
    let mut v = Vec::new();
    for q in queries() {
        v.push(item(&q.name, "a", vec![own.clone()]));
        v.push(item(&q.name, "b", vec![blue(), solid(10 * i, 0, 255)]));
    }
    (vec![own], v)
}

#[test]
fn the_report_reaggregates_the_samples() {
    let mut ev = eval(ImageEvalOptions::default());
    let mut all = Vec::new();
    for i in 0..4 {
        let (refs, items) = persona_items(i);
        // The last persona has no references.
        let refs = if i == 3 { Vec::new() } else { refs };
        all.extend(ev.add_persona(&format!("p{i}"), &refs, &items).unwrap());
    }
    assert_eq!(ev.personas(), 4);
    let report = ev.report().unwrap();
    assert_eq!((report.personas, report.personas_with_references, report.reference_images), (4, 3, 3));
    let names: Vec<&str> = report.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["q_red", "q_green", "q_blue", "all generation queries"]);
    for t in &report.tables {
        let in_table = |s: &&ImageSample| match &t.query {
            Some(q) => s.query == q.name,
            None => s.query != "q_blue",
        };
        for r in &t.rows {
            let cells: Vec<&ImageSample> = all.iter().filter(in_table).filter(|s| s.method == r.method).collect();
            let clip: Vec<f64> = cells.iter().map(|s| s.clip_score).collect();
            let clip100: Vec<f64> = cells.iter().map(|s| s.clip_score_100).collect();
            let p: Vec<f64> = cells.iter().filter_map(|s| s.personalization_clip_score).collect();
            assert_eq!(r.n, cells.len() as u64);
            assert_eq!(r.images, cells.iter().map(|s| s.images as u64).sum::<u64>());
            assert!(close(r.clip_score.mean.unwrap(), stats::mean(&clip).unwrap()), "{}/{}", t.name, r.method);
            assert!(close(r.clip_score_100.mean.unwrap(), stats::mean(&clip100).unwrap()));
            let sd = stats::Moments::from_slice(&clip).sd().unwrap();
            assert!((r.clip_score.sd.unwrap() - sd).abs() <= 1e-9);
            assert_eq!(p.len(), cells.len() - cells.len() / 4, "the persona without references has no P-CLIP");
            assert!(close(r.personalization_clip_score.unwrap().mean.unwrap(), stats::mean(&p).unwrap()));
        }
        // Method a's images of the personas with references are the reference set: CMMD 0
        // (also in the pooled table, where each appears once per query); b's are far.
        let (a, b) = (&t.rows[0], &t.rows[1]);
        assert!(a.cmmd.unwrap() < 1e-9, "{}: {:?}", t.name, a.cmmd);
        assert!(b.cmmd.unwrap() > 0.1, "{}: {:?}", t.name, b.cmmd);
    }
}

#[test]
fn without_references_there_is_no_p_clip_and_no_cmmd() {
    let mut ev = eval(ImageEvalOptions::default());
    let s = ev.add_persona("p", &[], &items()).unwrap();
    assert!(s.iter().all(|s| s.personalization_clip_score.is_none()));
    let report = ev.report().unwrap();
    for t in &report.tables {
        for r in &t.rows {
            assert!(r.personalization_clip_score.is_none() && r.cmmd.is_none(), "{r:?}");
            // One cell per query table: a mean, no s.d.
            assert_eq!(r.clip_score.sd.is_some(), t.query.is_none(), "{r:?}");
        }
    }
    // cmmd_sample 0 turns CMMD off even with references.
    let mut ev = eval(ImageEvalOptions { cmmd_sample: 0, seed: 0 });
    let (refs, items) = persona_items(1);
    ev.add_persona("p", &refs, &items).unwrap();
    let report = ev.report().unwrap();
    assert!(report
        .tables
        .iter()
        .flat_map(|t| &t.rows)
        .all(|r| r.cmmd.is_none() && r.personalization_clip_score.is_some()));
}

#[test]
fn reservoirs_bound_cmmd_and_the_report_is_deterministic() {
    let run = |seed| {
        let mut ev = eval(ImageEvalOptions { cmmd_sample: 2, seed });
        for i in 0..5 {
            let (refs, items) = persona_items(i);
            ev.add_persona(&format!("p{i}"), &refs, &items).unwrap();
        }
        assert_eq!((ev.references.seen, ev.references.rows.len()), (5, 2));
        assert!(ev.acc.iter().all(|a| a.generated.rows.len() == 2));
        ev.report().unwrap()
    };
    let (r1, r2) = (run(7), run(7));
    assert_eq!(r1, r2);
    assert_eq!(r1.reference_images, 5);
    for t in &r1.tables {
        for r in &t.rows {
            assert!(r.cmmd.unwrap().is_finite() && r.cmmd.unwrap() >= 0.0);
            assert_eq!(r.n, if t.query.is_some() { 5 } else { 10 });
        }
    }
}

#[test]
fn bad_input_adds_nothing() {
    let mut ev = eval(ImageEvalOptions::default());
    ev.add_persona("ok", &[red()], &items()).unwrap();
    let before = ev.report().unwrap();
    let mut cases: Vec<(Vec<MethodImages>, &str)> = Vec::new();
    let mut v = items();
    v[0].query = "nope".into();
    cases.push((v, "unknown query `nope`"));
    let mut v = items();
    v[1].method = "zzz".into();
    cases.push((v, "unknown method `zzz`"));
    let mut v = items();
    v.push(item("q_red", "a", vec![red()]));
    cases.push((v, "given twice"));
    let mut v = items();
    v.remove(4);
    cases.push((v, "no images for query `q_green` and method `b`"));
    let mut v = items();
    v[2].images.clear();
    cases.push((v, "has no image"));
    let mut v = items();
    v[0].images = vec![solid(0, 0, 0)];
    cases.push((v, "zero vector"));
    for (v, needle) in cases {
        let e = ev.add_persona("bad", &[red()], &v).unwrap_err();
        assert_eq!(e.kind(), zipp_core::ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains(needle) && e.to_string().contains("persona `bad`"), "{e}");
    }
    assert_eq!(ev.report().unwrap(), before);
    assert_eq!(ev.personas(), 1);
    let mut short = ImageEvaluation::new(Arc::new(Short), methods(), queries(), Default::default()).unwrap();
    let e = short.add_persona("p", &[], &items()).unwrap_err();
    assert_eq!(e.kind(), zipp_core::ErrorKind::Compute, "{e}");
    assert_eq!(short.personas(), 0);
}

#[test]
fn bad_configurations_are_refused() {
    let fake = || Arc::new(Fake::default()) as Arc<dyn ImageEmbedder>;
    assert!(ImageEvaluation::new(fake(), vec![], queries(), Default::default()).is_err());
    assert!(ImageEvaluation::new(fake(), methods(), vec![], Default::default()).is_err());
    let e = ImageEvaluation::new(fake(), vec!["a".into(), "a".into()], queries(), Default::default()).unwrap_err();
    assert!(e.to_string().contains("unique"), "{e}");
    let mut q = queries();
    q[1].name = "q_red".into();
    assert!(ImageEvaluation::new(fake(), methods(), q, Default::default()).is_err());
    assert_eq!(ImageEvalOptions::from_json("{}").unwrap(), ImageEvalOptions::default());
    assert_eq!(ImageEvalOptions::from_json(r#"{"cmmd_sample": 3}"#).unwrap().cmmd_sample, 3);
    let e = ImageEvalOptions::from_json(r#"{"cmmd": 3}"#).unwrap_err();
    assert_eq!(e.kind(), zipp_core::ErrorKind::Schema, "{e}");
}

#[test]
fn helpers_agree_with_the_metrics_on_the_embeddings() {
    let f = Fake::default();
    let imgs = [red(), yellow(), blue()];
    let s = prompt_scores(&f, &imgs, "red").unwrap();
    let e = f.embed_images(&imgs).unwrap();
    let t = f.embed_texts(&["red"]).unwrap().remove(0);
    for (s, e) in s.iter().zip(&e) {
        assert_eq!(s.clip_score, image_metrics::clip_score(e, &t).unwrap());
        assert_eq!(s.clip_score_100, image_metrics::clip_score_100(e, &t).unwrap());
    }
    let refs = [red(), green()];
    let r = f.embed_images(&refs).unwrap();
    let p = personalization_scores(&f, &imgs, &refs).unwrap();
    for (p, e) in p.iter().zip(&e) {
        assert_eq!(*p, image_metrics::personalization_clip_score(e, &r).unwrap());
    }
    assert_eq!(images_cmmd(&f, &imgs, &refs).unwrap(), image_metrics::cmmd(&e, &r).unwrap());
    assert_eq!(images_cmmd(&f, &imgs, &imgs).unwrap(), 0.0);
    for e in [
        prompt_scores(&f, &[], "red").unwrap_err(),
        personalization_scores(&f, &imgs, &[]).unwrap_err(),
        images_cmmd(&f, &[], &refs).unwrap_err(),
    ] {
        assert_eq!(e.kind(), zipp_core::ErrorKind::InvalidInput, "{e}");
    }
    assert_eq!(prompt_scores(&Short, &imgs, "red").unwrap_err().kind(), zipp_core::ErrorKind::Compute);
}

#[test]
fn reports_round_trip_and_render_beside_the_vptt_tables() {
    let mut ev = eval(ImageEvalOptions::default());
    let (refs, items) = persona_items(2);
    ev.add_persona("p", &refs, &items).unwrap();
    ev.add_persona("q", &[], &items).unwrap();
    let report = ev.report().unwrap();
    for pretty in [false, true] {
        assert_eq!(ImageReport::from_json(&report.to_json(pretty).unwrap()).unwrap(), report);
    }
    let md = report.table();
    assert!(md.starts_with("2 personas, 1 with reference images (1 images)"), "{md}");
    assert!(md.contains("### q_red (generation): \"red\""), "{md}");
    assert!(md.contains("### q_blue (editing): \"blue\""), "{md}");
    assert!(md.contains("### all generation queries"), "{md}");
    assert!(md.contains("| method | n | images | CLIPScore | CLIPScore×100 | P-CLIP | CMMD |"), "{md}");
    let row = &report.tables[0].rows[1];
    let line = format!(
        "| b | 2 | 4 | {:.3} | {:.2} | {:.3} | {:.3} |",
        row.clip_score.mean.unwrap(),
        row.clip_score_100.mean.unwrap(),
        row.personalization_clip_score.unwrap().mean.unwrap(),
        row.cmmd.unwrap()
    );
    assert!(md.contains(&line), "{line}\n{md}");

    // The VPTT report of the same methods and queries (Identity under both names).
    let methods: Vec<EvalMethod> =
        methods().iter().map(|m| EvalMethod::new(m, Arc::new(Identity::new()), false)).collect();
    let options = EvalOptions { baseline: None, ..EvalOptions::default() };
    let mut text = Evaluation::new(Arc::new(zipp_core::rng::HashingEmbedder(12)), methods, queries(), options).unwrap();
    let mut persona = Persona::new("p");
    persona.summary = "a person who likes colours".into();
    for j in 0..3 {
        persona.memory.push(Post::new(format!("a photo of a painted wall, shade {j}")));
    }
    text.add_persona(&IndexedPersona::new(persona)).unwrap();
    let text = text.report().unwrap();
    let both = report.table_beside(&text);
    assert!(both.contains("| method | VPTT | VPTT_c | CLIPScore | CLIPScore×100 | P-CLIP | CMMD |"), "{both}");
    let vptt = &text.tables[0].rows[0];
    let a = &report.tables[0].rows[0];
    let line = format!(
        "| a | {:.3} | {:.3} | {:.3} |",
        vptt.vptt.mean.unwrap(),
        vptt.vptt_c.mean.unwrap(),
        a.clip_score.mean.unwrap()
    );
    assert!(both.contains(&line), "{line}\n{both}");
    // A table the text report lacks keeps its image columns, with "—" for VPTT.
    let mut other = text.clone();
    other.tables.retain(|t| t.name != "q_green");
    assert!(report.table_beside(&other).contains("| a | — | — |"));
}
