//! The evaluation on the real MiniLM and CLIP vocabulary: VPTT scores of real prompts, and
//! the method table over the example personas.

use std::sync::OnceLock;

use zipp_core::persona::read_jsonl;
use zipp_core::{IndexedPersona, Persona};
use zipp_eval::{EvalOptions, Evaluation, NoveltyConvention, PersonaScorer, Query, VpttOptions};
use zipp_factory::{eval_methods, MethodSpec, Models};

/// Loaded once per test binary, shared by the tests.
fn models() -> &'static Models {
    static M: OnceLock<Models> = OnceLock::new();
    M.get_or_init(Models::new)
}

fn personas() -> Vec<Persona> {
    read_jsonl(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/data/personas.jsonl")).unwrap()
}

#[test]
fn real_captions_score_as_the_definitions_say() {
    let models = models();
    let m = models.embedder().unwrap_or_else(|e| panic!("{e}"));
    let p = IndexedPersona::new(personas().remove(0));
    let s = PersonaScorer::new(&p, &*m, &VpttOptions::default()).unwrap();
    let caption = p.persona().memory[3].caption.clone();
    let scores = s.score(&*m, &[&caption, "A spreadsheet of quarterly tax figures.", ""]).unwrap();
    // The batch embedding of a caption equals its memory-index embedding to float precision.
    assert!((scores[0].gs - 1.0).abs() < 1e-5, "GS of a caption: {}", scores[0].gs);
    assert_eq!(scores[0].nv, 0.0);
    assert!(scores[0].pa > scores[1].pa && scores[0].gs > scores[1].gs);
    // CP by default (SPEC §4) compares directions in the span, unit(Bᵀv): a caption is
    // closer to its persona's clusters than an off-topic prompt.
    assert!(scores[0].cp > scores[1].cp, "{scores:?}");
    // The paper's raw coordinates x = Bᵀv as is: the off-topic prompt projects near the
    // origin, which here is closer to the centroids of 30 diverse captions than the caption
    // is (measured: 0.546 vs 0.458) — the effect unit coordinates remove.
    let raw = VpttOptions { cp_unit_coordinates: false, ..VpttOptions::default() };
    let sr = PersonaScorer::new(&p, &*m, &raw).unwrap();
    let r = sr.score(&*m, &[&caption, "A spreadsheet of quarterly tax figures."]).unwrap();
    println!(
        "CP unit coordinates: caption {} vs off-topic {}; raw: {} vs {}",
        scores[0].cp, scores[1].cp, r[0].cp, r[1].cp
    );
    assert!(r[1].cp > r[0].cp, "{r:?}");
    // Only CP (and the sums it enters) depends on the choice.
    assert_eq!((r[0].pa, r[0].gs, r[0].nv), (scores[0].pa, scores[0].gs, scores[0].nv));
    assert_eq!(scores[1].nv, 1.0);
    for sc in &scores {
        for v in [sc.gs, sc.cp, sc.cp_soft, sc.nv, sc.vptt] {
            assert!((0.0..=1.0).contains(&v), "{sc:?}");
        }
    }
    assert!(s.rank() == p.persona().memory.len(), "distinct real captions are independent");
}

#[test]
fn the_method_table_over_the_example_personas() {
    let models = models();
    let methods = eval_methods(&MethodSpec::defaults(), models).unwrap();
    let names: Vec<String> = methods.iter().map(|m| m.name.clone()).collect();
    assert_eq!(names, ["identity", "persona_only", "brag", "vprag", "combined"]);
    let mut ev = Evaluation::new(models.embedder().unwrap(), methods, Query::vptt(), EvalOptions::default()).unwrap();
    let all = personas();
    for p in all.clone() {
        let samples = ev.add_persona(&IndexedPersona::new(p)).unwrap();
        assert_eq!(samples.len(), 5 * 4);
    }
    let report = ev.report().unwrap();
    assert_eq!(report.personas, all.len() as u64);
    assert_eq!(report.tables.len(), 4 + 2);
    let text = report.table();
    for needle in ["social_post", "cultural_site", "living_room", "garden", "VPTT_c", "win%", "all edit queries"] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
    for t in &report.tables {
        let row = |m: &str| t.rows.iter().find(|r| r.method == m).unwrap();
        // The paper's convention: NV shown as — for the two methods that never read memory.
        assert!(row("identity").nv.is_none() && row("persona_only").nv.is_none());
        assert!(row("vprag").nv.is_some());
        // Retrieval beats the unpersonalized prompt on the persona's own captions.
        assert!(row("vprag").gs.mean > row("identity").gs.mean, "{}", t.name);
        assert!(row("vprag").vptt.mean > row("identity").vptt.mean, "{}", t.name);
        let wins: f64 = t.rows.iter().map(|r| r.vptt.win_pct.unwrap() + r.vptt.tie_pct.unwrap()).sum();
        assert!(wins >= 99.999, "every (persona, query) has a winner or a tie: {wins}");
    }
    assert!(report.timings.index_memory.as_nanos() > 0 && report.timings.embed_prompts.as_nanos() > 0);
    // Measured novelty changes only NV-dependent numbers.
    let mut ev2 = Evaluation::new(
        models.embedder().unwrap(),
        eval_methods(&MethodSpec::defaults(), models).unwrap(),
        Query::vptt(),
        EvalOptions { novelty: NoveltyConvention::Measured, ..EvalOptions::default() },
    )
    .unwrap();
    for p in all {
        ev2.add_persona(&IndexedPersona::new(p)).unwrap();
    }
    let r2 = ev2.report().unwrap();
    let id = |r: &zipp_eval::Report| r.tables[0].rows[0].clone();
    assert_eq!(id(&report).vptt_c.mean, id(&r2).vptt_c.mean);
    assert!(id(&r2).vptt.mean > id(&report).vptt.mean);
}
