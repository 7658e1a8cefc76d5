//! The runner's aggregates checked against the per-sample stream it returns (an independent
//! path: the samples are re-aggregated here with `stats` directly).

use super::*;
use zipp_core::personalize::{Identity, Personalization};
use zipp_core::{Persona, Post};

/// Pseudo-random unit vectors per distinct text, 12 dimensions.
const HASHING: zipp_core::rng::HashingEmbedder = zipp_core::rng::HashingEmbedder(12);

/// Returns caption `post` of the persona verbatim (a caricature of BRAG copy-pasting).
struct Copy(usize);

impl Personalizer for Copy {
    fn name(&self) -> &str {
        "copy"
    }
    fn personalize(&self, persona: &IndexedPersona, request: &Request) -> Result<Personalization> {
        let p = persona.persona();
        let caption = &p.memory[self.0 % p.memory.len()].caption;
        Ok(Personalization { prompt: caption.to_string(), ..Identity::new().personalize(persona, request)? })
    }
}

fn persona(i: usize, posts: usize) -> Persona {
    let mut p = Persona::new(format!("p{i}"));
    p.summary = format!("person number {i} who likes walks");
    for j in 0..posts {
        p.memory
            .push(Post::new(format!("post {j} of person {i}: a walk by the river at dusk number {}", (i * 7 + j) % 5)));
    }
    p
}

fn methods() -> Vec<EvalMethod> {
    vec![
        EvalMethod::new("identity", Arc::new(Identity::new()), false),
        EvalMethod::new("copy0", Arc::new(Copy(0)), true),
        EvalMethod::new("copy1", Arc::new(Copy(1)), true),
    ]
}

fn queries() -> Vec<Query> {
    vec![
        Query::new("g1", Task::Generate, "a photo of my day"),
        Query::new("g2", Task::Generate, "my favourite place"),
        Query::new("e1", Task::Edit, "redesign this room"),
    ]
}

fn run(options: EvalOptions, n: usize) -> (Report, Vec<Sample>) {
    let mut ev = Evaluation::new(Arc::new(HASHING), methods(), queries(), options).unwrap();
    let mut all = Vec::new();
    for i in 0..n {
        all.extend(ev.add_persona(&IndexedPersona::new(persona(i, 3 + i % 4))).unwrap());
    }
    (ev.report().unwrap(), all)
}

#[test]
fn aggregates_match_the_samples_they_were_built_from() {
    let (report, samples) = run(EvalOptions::default(), 25);
    assert_eq!(report.personas, 25);
    assert_eq!(samples.len(), 25 * 3 * 3);
    assert_eq!(report.tables.len(), 4, "three queries and the generation group");
    for q in ["g1", "g2", "e1"] {
        let t = report.tables.iter().find(|t| t.name == q).unwrap();
        let rows_of =
            |m: &str| samples.iter().filter(|s| s.query == q && s.method == m).map(|s| s.score).collect::<Vec<_>>();
        let moments =
            |m: &str, f: fn(&VpttScore) -> f64| Moments::from_slice(&rows_of(m).iter().map(f).collect::<Vec<_>>());
        for r in &t.rows {
            assert_eq!(r.n, 25);
            let v = moments(&r.method, |s| s.vptt);
            assert!((r.vptt.mean.unwrap() - v.mean().unwrap()).abs() < 1e-12);
            assert!((r.vptt.sd.unwrap() - v.sd().unwrap()).abs() < 1e-12);
            let gs = moments(&r.method, |s| s.gs);
            assert!((r.gs.mean.unwrap() - gs.mean().unwrap()).abs() < 1e-12);
        }
        // Win shares recomputed per (persona, query) from the samples.
        let persona_ids: Vec<String> = (0..25).map(|i| format!("p{i}")).collect();
        let mut wins = [0u64; 3];
        for p in &persona_ids {
            let row: Vec<f64> = ["identity", "copy0", "copy1"]
                .iter()
                .map(|m| samples.iter().find(|s| &s.persona == p && s.query == q && s.method == *m).unwrap().score.vptt)
                .collect();
            if let Some((b, false)) = stats::argmax_with_tie(&row, 1e-9) {
                wins[b] += 1;
            }
        }
        for (r, w) in t.rows.iter().zip(wins) {
            assert!((r.vptt.win_pct.unwrap() - 100.0 * w as f64 / 25.0).abs() < 1e-9, "{q} {}", r.method);
        }
        // Cohen's d against the best mean, from the samples.
        let best = t.best_vptt.clone().unwrap();
        for r in t.rows.iter().filter(|r| r.method != best) {
            let d = stats::cohens_d(&moments(&r.method, |s| s.vptt), &moments(&best, |s| s.vptt)).unwrap();
            assert!((r.vptt.d_vs_best.unwrap() - d).abs() < 1e-12);
            let h = r.vptt.vs_best.as_ref().unwrap();
            assert_eq!(h.wins + h.losses + h.ties, 25);
            assert_eq!(h.against, best);
        }
        assert!(t.rows.iter().find(|r| r.method == best).unwrap().vptt.d_vs_best.is_none());
    }
    // The group table merges the two generation queries.
    let g = report.tables.iter().find(|t| t.name == "all generation queries").unwrap();
    assert!(g.rows.iter().all(|r| r.n == 50));
}

#[test]
fn the_novelty_convention_is_explicit() {
    let (paper, samples) = run(EvalOptions::default(), 6);
    let (measured, samples_m) = run(EvalOptions { novelty: NoveltyConvention::Measured, ..EvalOptions::default() }, 6);
    let id = |r: &Report| r.tables[0].rows.iter().find(|r| r.method == "identity").unwrap().clone();
    assert!(id(&paper).nv.is_none(), "shown as — under the paper's convention");
    assert!(samples.iter().filter(|s| s.method == "identity").all(|s| s.score.nv == 0.0));
    // Identity's base prompt shares no trigram with the captions: measured NV is 1.
    assert_eq!(id(&measured).nv.unwrap().mean, Some(1.0));
    assert!(samples_m.iter().filter(|s| s.method == "identity").all(|s| s.score.nv == 1.0));
    // Copying a caption verbatim: NV = 0 and GS = 1 either way.
    for s in samples.iter().filter(|s| s.method.starts_with("copy")) {
        assert_eq!(s.score.nv, 0.0);
        assert!((s.score.gs - 1.0).abs() < 1e-9);
    }
    assert!(paper.table().contains("NV = 0 for methods that never read the memory"));
}

#[test]
fn results_are_reproducible_and_round_trip_through_json() {
    let (a, sa) = run(EvalOptions::default(), 8);
    let (b, sb) = run(EvalOptions::default(), 8);
    assert_eq!(sa, sb);
    assert_eq!(a.tables, b.tables);
    assert_eq!(a.table(), b.table());
    let back = Report::from_json(&a.to_json(true).unwrap()).unwrap();
    assert_eq!(back.tables, a.tables);
    assert!(Report::from_json("{\"personas\": 1}").is_err());
}

#[test]
fn a_bad_persona_is_an_error_that_adds_nothing() {
    let mut ev = Evaluation::new(Arc::new(HASHING), methods(), queries(), EvalOptions::default()).unwrap();
    ev.add_persona(&IndexedPersona::new(persona(0, 3))).unwrap();
    let before = ev.report().unwrap();
    let err = ev.add_persona(&IndexedPersona::new(Persona::new("empty"))).unwrap_err().to_string();
    assert!(err.contains("empty") && err.contains("no posts"), "{err}");
    assert_eq!(ev.personas(), 1);
    assert_eq!(ev.report().unwrap().tables, before.tables);
    ev.add_persona(&IndexedPersona::new(persona(1, 3))).unwrap();
    assert_eq!(ev.personas(), 2);
}

#[test]
fn bad_configurations_are_rejected() {
    let e = Arc::new(HASHING);
    let o = EvalOptions::default;
    assert!(Evaluation::new(e.clone(), vec![], queries(), o()).is_err());
    assert!(Evaluation::new(e.clone(), methods(), vec![], o()).is_err());
    let mut dup = methods();
    dup[1].name = "identity".into();
    assert!(Evaluation::new(e.clone(), dup, queries(), o()).is_err());
    assert!(
        Evaluation::new(e.clone(), methods(), queries(), EvalOptions { baseline: Some("nope".into()), ..o() }).is_err()
    );
    assert!(Evaluation::new(e.clone(), methods(), queries(), EvalOptions { confidence: 1.0, ..o() }).is_err());
    assert!(Evaluation::new(e.clone(), methods(), queries(), EvalOptions { tie_epsilon: f64::NAN, ..o() }).is_err());
    let mut q = queries();
    q[0].prompt = "x".repeat(zipp_core::personalize::MAX_PROMPT_BYTES + 1);
    assert!(Evaluation::new(e.clone(), methods(), q, o()).is_err());
    assert!(Query::set("nope").is_err());
    assert_eq!(Query::set("vptt").unwrap().len(), 4);
    assert_eq!(Query::extended().iter().filter(|q| q.task == Task::Edit).count(), 4);
}

#[test]
fn the_reservoir_keeps_spearman_bounded() {
    let (r, _) = run(EvalOptions { spearman_sample: 10, ..EvalOptions::default() }, 30);
    assert!(r.tables[0].spearman_vptt_vs_vptt_c.is_some());
}

/// The report's ρ is Spearman's ρ of the (VPTT, VPTT_c) pairs of that query's samples,
/// recomputed here with `stats::spearman` from the per-sample stream — with the reservoir
/// larger than the stream and exactly as large (Algorithm R then keeps every pair).
#[test]
fn the_reported_spearman_is_that_of_the_samples() {
    let n = 12;
    let per_query = n * methods().len();
    for cap in [EvalOptions::default().spearman_sample, per_query] {
        let (r, samples) = run(EvalOptions { spearman_sample: cap, ..EvalOptions::default() }, n);
        for q in queries() {
            let (a, b): (Vec<f64>, Vec<f64>) =
                samples.iter().filter(|s| s.query == q.name).map(|s| (s.score.vptt, s.score.vptt_c)).unzip();
            assert_eq!(a.len(), per_query);
            let want = stats::spearman(&a, &b).unwrap();
            let table = r.tables.iter().find(|t| t.name == q.name).unwrap();
            let got = table.spearman_vptt_vs_vptt_c.unwrap();
            assert!((got - want).abs() < 1e-12, "{} (cap {cap}): report {got}, samples {want}", q.name);
        }
    }
    // One pair fewer than the stream: ρ comes from a strict subset (bounded memory).
    let (r, samples) = run(EvalOptions { spearman_sample: per_query - 1, ..EvalOptions::default() }, n);
    let q = &queries()[0].name;
    let (a, b): (Vec<f64>, Vec<f64>) =
        samples.iter().filter(|s| &s.query == q).map(|s| (s.score.vptt, s.score.vptt_c)).unzip();
    let full = stats::spearman(&a, &b).unwrap();
    let got = r.tables.iter().find(|t| &t.name == q).unwrap().spearman_vptt_vs_vptt_c.unwrap();
    assert!((-1.0..=1.0).contains(&got));
    println!("ρ over all {per_query} pairs {full}, over a reservoir of {} {got}", per_query - 1);
}

/// The aggregates of `personas` evaluated in one pass, with the timings (wall time) cleared.
fn aggregate_of(options: &EvalOptions, personas: &[usize]) -> EvalAggregate {
    let mut ev = Evaluation::new(Arc::new(HASHING), methods(), queries(), options.clone()).unwrap();
    for &i in personas {
        ev.add_persona(&IndexedPersona::new(persona(i, 3 + i % 4))).unwrap();
    }
    let mut agg = ev.aggregate();
    agg.timings = Timings::default();
    agg
}

/// Shards evaluated apart — any split, any order inside a shard, any merge order, through
/// JSON — merge into exactly (`==`, every bit) the aggregates and report of one local pass.
/// A small Spearman cap makes the bottom-k sample choose across shards.
#[test]
fn sharded_aggregates_merge_into_exactly_the_local_report() {
    let n = 23;
    for cap in [EvalOptions::default().spearman_sample, 7] {
        let options = EvalOptions { spearman_sample: cap, ..EvalOptions::default() };
        let all: Vec<usize> = (0..n).collect();
        let local = aggregate_of(&options, &all);
        let report = local.report().unwrap();
        assert_eq!(report.personas, n as u64);
        let splits: Vec<Vec<Vec<usize>>> = vec![
            all.chunks(5).map(<[usize]>::to_vec).collect(),
            (0..3).map(|k| all.iter().copied().filter(|i| i % 3 == k).rev().collect()).collect(),
            vec![all.iter().rev().copied().collect()],
            vec![vec![], all[..1].to_vec(), all[1..].to_vec()],
        ];
        for (si, split) in splits.iter().enumerate() {
            let shards: Vec<EvalAggregate> = split
                .iter()
                .map(|part| EvalAggregate::from_json(&aggregate_of(&options, part).to_json().unwrap()).unwrap())
                .collect();
            for order in [false, true] {
                let mut parts: Vec<&EvalAggregate> = shards.iter().collect();
                if order {
                    parts.reverse();
                }
                let merged = EvalAggregate::merge_all(parts).unwrap().unwrap();
                assert_eq!(merged, local, "cap {cap}, split {si}, reversed {order}");
                assert_eq!(merged.report().unwrap(), report, "cap {cap}, split {si}");
            }
        }
        // Merging into a live evaluation is the same operation.
        let mut ev = Evaluation::new(Arc::new(HASHING), methods(), queries(), options.clone()).unwrap();
        for i in 0..10 {
            ev.add_persona(&IndexedPersona::new(persona(i, 3 + i % 4))).unwrap();
        }
        ev.merge(&aggregate_of(&options, &all[10..])).unwrap();
        let mut got = ev.aggregate();
        got.timings = Timings::default();
        assert_eq!(got, local);
        assert_eq!(ev.personas(), n as u64);
    }
}

#[test]
fn aggregates_round_trip_and_refuse_what_does_not_belong_together() {
    let options = EvalOptions::default();
    let agg = aggregate_of(&options, &[0, 1, 2]);
    let text = agg.to_json().unwrap();
    assert_eq!(EvalAggregate::from_json(&text).unwrap(), agg);
    assert!(text.starts_with(r#"{"format":1,"#), "{text}");
    // Different options, queries or methods: refused, nothing changed.
    let other = aggregate_of(&EvalOptions { tie_epsilon: 0.5, ..EvalOptions::default() }, &[3]);
    let mut a = agg.clone();
    let e = a.merge(&other).unwrap_err().to_string();
    assert!(e.contains("different options"), "{e}");
    assert_eq!(a, agg);
    let mut ev = Evaluation::new(Arc::new(HASHING), methods()[..2].to_vec(), queries(), options.clone()).unwrap();
    assert!(ev.merge(&agg).unwrap_err().to_string().contains("different methods"));
    let mut ev = Evaluation::new(Arc::new(HASHING), methods(), queries()[..2].to_vec(), options).unwrap();
    assert!(ev.merge(&agg).unwrap_err().to_string().contains("different queries"));
    // Malformed, wrong format, wrong shapes.
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = value.clone();
        f(&mut v);
        EvalAggregate::from_json(&v.to_string()).unwrap_err().to_string()
    };
    assert!(edit(&|v| v["format"] = 2.into()).contains("format 2"));
    assert!(edit(&|v| v["tables"].as_array_mut().unwrap().truncate(1)).contains("tables for"));
    assert!(edit(&|v| v["tables"][0]["beats"][0].as_array_mut().unwrap().truncate(2)).contains("shape"));
    assert!(edit(&|v| v["tables"][0]["methods"][0]["pa"]["sum"] = "0.5".into()).contains("sum"));
    assert!(edit(&|v| v["extra"] = 1.into()).contains("extra"));
    assert!(edit(&|v| v["methods"] = serde_json::json!([])).contains("at least one method"));
    assert!(EvalAggregate::from_json("{").is_err());
    assert_eq!(EvalAggregate::merge_all([]).unwrap(), None);
}
