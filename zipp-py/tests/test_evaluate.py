"""Evaluation through Python: the VPTT scorer on hand cases, the streaming evaluation over the
example personas, configuration errors, and the statistics functions."""

import itertools
import json
import math
import pathlib
import subprocess
import sys
import threading

import pytest

import zipp_persona as zipp
from zipp_persona import stats

REPO = pathlib.Path(__file__).resolve().parents[2]
PERSONAS = REPO / "examples" / "data" / "personas.jsonl"
METHODS = ["identity", "persona_only", "brag", "vprag", "combined"]
VPTT_QUERIES = ["social_post", "cultural_site", "living_room", "garden"]

# --- PersonaScorer, VpttScore ---------------------------------------------------------------


def test_a_caption_scored_against_its_own_persona_lies_in_its_span_and_is_not_novel(models, personas):
    persona = personas[0]
    scorer = zipp.PersonaScorer(models, persona)
    n = len(persona.memory)
    assert scorer.persona_id == persona.id
    assert scorer.rank == n  # distinct captions are independent
    assert scorer.clusters == max(1, round(math.sqrt(n / 2)))
    assert scorer.options["weights"] == {"pa": 0.2, "gs": 0.3, "cp": 0.3, "nv": 0.2}
    assert repr(scorer) == f"PersonaScorer(persona_id='{persona.id}', rank={n}, clusters={scorer.clusters})"

    caption = persona.memory[0]["caption"]
    s = scorer.score_one(caption)
    assert s.gs == pytest.approx(1.0, abs=1e-5)
    assert s.nv == 0.0 and s.nv_soft is None
    assert 0.0 < s.cp <= 1.0 and 0.0 < s.cp_soft <= 1.0 and -1.0 <= s.pa <= 1.0
    assert s.vptt == pytest.approx(0.2 * s.pa + 0.3 * s.gs + 0.3 * s.cp + 0.2 * s.nv, abs=1e-12)
    assert s.vptt_c == pytest.approx((s.pa + s.gs + s.cp) / 3, abs=1e-12)
    assert s.to_dict() == {"pa": s.pa, "gs": s.gs, "cp": s.cp, "cp_soft": s.cp_soft, "nv": 0.0, "nv_soft": None,
                           "vptt": s.vptt, "vptt_c": s.vptt_c}
    assert repr(s).startswith("VpttScore(vptt=") and "nv_soft=None" in repr(s)
    with pytest.raises(AttributeError):
        s.gs = 0.5  # type: ignore[misc]

    off = "a spaceship landing on the moon at noon"
    batch = scorer.score([caption, off])
    # A batch embeds the prompts together: the same score up to float noise.
    assert len(batch) == 2 and batch[0].vptt == pytest.approx(s.vptt, abs=1e-6) and batch[0].nv == 0.0
    assert batch[1].nv == 1.0 and batch[1].gs < 0.99
    assert scorer.score([]) == []
    with pytest.raises(TypeError):
        scorer.score("a single string is not a list of prompts")


def test_scorer_options_from_a_dict_or_json_text(models, personas):
    persona = personas[1]
    soft = zipp.PersonaScorer(models, persona, {"novelty": "soft", "clusters": 2,
                                                "weights": {"pa": 0, "gs": 1, "cp": 0, "nv": 0}})
    assert soft.clusters == 2 and soft.options["novelty"] == "soft"
    s = soft.score_one(persona.memory[2]["caption"])
    assert s.nv_soft == pytest.approx(0.0, abs=1e-6)
    assert s.vptt == s.gs
    same = zipp.PersonaScorer(models, persona, '{"novelty": "soft", "clusters": 2, '
                                               '"weights": {"pa": 0, "gs": 1, "cp": 0, "nv": 0}}')
    assert same.score_one(persona.memory[2]["caption"]) == s
    # Unit-coordinate CP is the default (SPEC §4); the raw form stays an option and differs.
    assert zipp.PersonaScorer(models, persona).options["cp_unit_coordinates"] is True
    raw = zipp.PersonaScorer(models, persona, {"cp_unit_coordinates": False})
    assert raw.options["cp_unit_coordinates"] is False
    prompt = "A spreadsheet of quarterly tax figures."
    assert raw.score_one(prompt).cp != zipp.PersonaScorer(models, persona).score_one(prompt).cp


def test_scorer_option_errors(models, personas):
    persona = personas[0]
    with pytest.raises(zipp.SchemaError) as e:
        zipp.PersonaScorer(models, persona, {"novelty": "fuzzy"})
    assert e.value.location.field == "novelty" and e.value.location.line is None
    with pytest.raises(zipp.SchemaError) as e:
        zipp.PersonaScorer(models, persona, '{\n "clustres": 2}')
    assert e.value.location.line == 2 and "clustres" in e.value.message
    with pytest.raises(zipp.ParseError):
        zipp.PersonaScorer(models, persona, '{"clusters": ')
    with pytest.raises(zipp.InvalidInputError) as e:
        zipp.PersonaScorer(models, persona, {"weights": {"pa": 0.5, "gs": 0.5, "cp": 0.5, "nv": 0.0}})
    assert "sum to 1" in str(e.value)
    with pytest.raises(zipp.InvalidInputError):
        zipp.PersonaScorer(models, persona, {"clusters": 0})
    with pytest.raises(TypeError):
        zipp.PersonaScorer(models, persona, 3)  # type: ignore[arg-type]
    with pytest.raises(zipp.InvalidInputError) as e:
        zipp.PersonaScorer(models, zipp.Persona("bare", summary="No posts."))
    assert "has no posts" in str(e.value)


# --- Evaluation, Report ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def evaluation(models, personas):
    """The five example personas × the four VPTT queries × the five default methods."""
    ev = zipp.Evaluation(models)
    first = ev.add_persona(personas[0])
    added = ev.add_personas(itertools.islice(zipp.iter_jsonl(PERSONAS), 1, None))  # streamed
    return ev, first, added


def test_evaluation_over_the_example_personas(evaluation, personas):
    ev, first, added = evaluation
    assert added == 4 and ev.personas == 5
    assert ev.methods == METHODS
    assert [q["name"] for q in ev.queries] == VPTT_QUERIES
    assert ev.config["methods"] == METHODS and ev.config["queries"] == "vptt"
    assert ev.config["options"]["novelty"] == "zero_without_memory"
    assert repr(ev) == "Evaluation(methods=5, queries=4, personas=5)"

    assert len(first) == 4 * 5
    assert [(r["query"], r["method"]) for r in first[:6]] == [("social_post", m) for m in METHODS] + [
        ("cultural_site", "identity")]
    assert all(r["persona"] == personas[0].id for r in first)
    assert first[0]["prompt"] == ev.queries[0]["prompt"]  # identity
    assert first[0]["nv"] == 0.0  # identity never reads the memory: NV = 0 (paper)
    assert set(first[0]) == {"persona", "query", "method", "prompt", "pa", "gs", "cp", "cp_soft", "nv", "nv_soft",
                             "vptt", "vptt_c"}

    report = ev.report()
    assert report.personas == 5 and report.methods == METHODS
    assert report.novelty == "zero_without_memory" and report.baseline == "identity"
    tables = report.tables
    assert len(tables) == 6
    assert [t["name"] for t in tables] == VPTT_QUERIES + ["all generation queries", "all edit queries"]
    for t in tables:
        rows = {r["method"]: r for r in t["rows"]}
        assert list(rows) == METHODS
        assert rows["identity"]["nv"] is None and rows["persona_only"]["nv"] is None
        assert rows["vprag"]["nv"]["mean"] is not None
        assert rows["identity"]["n"] == (5 if t["query"] else 10)
        assert t["best_vptt"] in METHODS
    assert set(report.timings) == {"index_memory", "persona_state", "personalize", "embed_prompts", "score"}
    text = report.table()
    assert text.startswith("5 personas") and "social_post (generation)" in text and "all edit queries" in text
    assert repr(report) == ("Report(personas=5, methods=['identity', 'persona_only', 'brag', 'vprag', 'combined'], "
                            "tables=6)")


def test_the_report_round_trips_through_json(evaluation):
    report = evaluation[0].report()
    text = report.to_json()
    assert json.loads(text) == report.to_dict()
    back = zipp.Report.from_json(text)
    assert back == report and back.table() == report.table()
    assert zipp.Report.from_json(report.to_json(pretty=True)) == report
    with pytest.raises(zipp.SchemaError):
        zipp.Report.from_json('{"personas": 1}')


def _without_timings(report):
    d = report.to_dict()
    del d["timings"]  # wall time, summed over shards
    return d


def test_shards_merge_into_exactly_the_local_report(evaluation, models, personas):
    """Two shards in other orders, through pickle and JSON, merged either way: the local report
    bit for bit (floats compared with ==)."""
    import pickle

    local = evaluation[0]
    a, b = zipp.Evaluation(models), zipp.Evaluation(models)
    for p in [personas[4], personas[2], personas[0]]:
        a.add_persona(p)
    for p in [personas[3], personas[1]]:
        b.add_persona(p)
    agg_a, agg_b = a.aggregate(), b.aggregate()
    assert agg_a.personas == 3 and agg_a.methods == METHODS
    assert repr(agg_a) == "EvalAggregate(personas=3, methods=5, queries=4)"
    back = pickle.loads(pickle.dumps(agg_b))
    assert back == agg_b and json.loads(back.to_json())["format"] == 1
    want = _without_timings(local.report())
    for merged in [agg_a.merge(back), back.merge(agg_a), zipp.merge_aggregates([agg_b.to_json(), agg_a])]:
        assert merged.personas == 5
        assert _without_timings(merged.report()) == want
        assert merged.report().table() == local.report().table()
    assert agg_a.personas == 3  # merge returns a new aggregate
    a.merge(agg_b)
    assert a.personas == 5 and _without_timings(a.report()) == want


def test_aggregate_errors(models, evaluation):
    agg = evaluation[0].aggregate()
    other = zipp.Evaluation(models, {"methods": ["identity"]}).aggregate()
    with pytest.raises(zipp.InvalidInputError, match="different methods"):
        agg.merge(other)
    with pytest.raises(zipp.InvalidInputError, match="aggregate 1: .*different methods"):
        zipp.merge_aggregates([agg, other])
    with pytest.raises(zipp.InvalidInputError, match="no aggregates"):
        zipp.merge_aggregates([])
    with pytest.raises(TypeError, match="item 0 is a int"):
        zipp.merge_aggregates([3])
    with pytest.raises(zipp.ParseError):
        zipp.EvalAggregate.from_json("{")
    with pytest.raises(zipp.SchemaError, match="format 7"):
        zipp.EvalAggregate.from_json(agg.to_json().replace('"format":1', '"format":7'))


def test_the_evaluation_matches_the_scorer(models, personas):
    # Measured novelty, one method, one query: each sample is the scorer's score.
    config = {"methods": ["vprag"], "queries": [{"name": "q", "task": "generate", "prompt": "my weekend"}],
              "options": {"novelty": "measured"}}
    ev = zipp.Evaluation(models, config)
    [sample] = ev.add_persona(personas[3])
    score = zipp.PersonaScorer(models, personas[3]).score_one(sample["prompt"])
    assert {k: sample[k] for k in score.to_dict()} == score.to_dict()
    report = ev.report()
    assert report.novelty == "measured" and report.baseline is None and len(report.tables) == 1


def test_config_errors_are_located(models):
    with pytest.raises(zipp.SchemaError) as e:
        zipp.Evaluation(models, {"methods": ["identity", "nope"]})
    assert e.value.location.field == "methods[1]"
    with pytest.raises(zipp.SchemaError) as e:
        zipp.Evaluation(models, {"methods": [{"method": "vprag", "temperature": "hot"}]})
    assert e.value.location.field == "methods[0]"
    with pytest.raises(zipp.SchemaError) as e:
        zipp.Evaluation(models, '{"options": {\n"novelty": "sometimes"}}')
    assert e.value.location.field == "options.novelty" and e.value.location.line == 2
    with pytest.raises(zipp.ParseError) as e:
        zipp.Evaluation(models, "[")
    assert e.value.location.line == 1
    with pytest.raises(zipp.InvalidInputError) as e:
        zipp.Evaluation(models, {"queries": "all"})
    assert "query set" in str(e.value)
    with pytest.raises(zipp.InvalidInputError) as e:
        zipp.Evaluation(models, {"methods": ["identity"], "options": {"baseline": "brag"}})
    assert "baseline" in str(e.value)
    with pytest.raises(TypeError):
        zipp.Evaluation(models, ["identity"])  # type: ignore[arg-type]


def test_a_persona_that_cannot_be_scored_adds_nothing(models, personas):
    ev = zipp.Evaluation(models, {"methods": ["identity"], "queries": "vptt"})
    ev.add_persona(personas[0])
    with pytest.raises(zipp.InvalidInputError) as e:
        ev.add_personas([zipp.Persona("bare", summary="No posts."), personas[1]])
    assert "persona `bare`" in str(e.value)
    assert ev.personas == 1
    with pytest.raises(TypeError):
        ev.add_personas(["not a persona"])  # type: ignore[list-item]


def test_one_evaluation_shared_by_threads(models, personas):
    ev = zipp.Evaluation(models, {"methods": ["identity", "vprag"],
                                  "queries": [{"name": "q", "task": "edit", "prompt": "redesign this room"}]})
    errors = []

    def work(i):
        try:
            for _ in range(2):
                ev.add_persona(personas[i % len(personas)])
                ev.report()
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and ev.personas == 8


# --- stats ----------------------------------------------------------------------------------


def test_stats_values():
    assert stats.binomial_test(3, 10, 0.5) == pytest.approx(0.34375, abs=1e-15)  # 2 · 176 / 1024
    assert stats.binomial_test(3, 10) == stats.binomial_test(3, 10, 0.5)
    assert stats.binomial_test(5, 10) == 1.0
    z = 1.959963984540054
    lo, hi = stats.wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(z * z / (10 + z * z), rel=1e-12)
    lo, hi = stats.wilson_interval(5, 10, confidence=0.9)
    assert lo + hi == pytest.approx(1.0, abs=1e-15)
    assert stats.mean([1, 2, 3, 4]) == 2.5
    assert stats.cohens_d([0.61, 0.72, 0.58, 0.69, 0.66], [0.52, 0.55, 0.49, 0.6]) == pytest.approx(
        2.1122946333043076, rel=1e-12)
    assert stats.cohens_d([1.0], [1.0, 2.0]) is None
    assert stats.cohens_d([0.5, 0.5], [0.5, 0.5]) is None
    assert stats.cohens_d([0.5, 0.5], [0.7, 0.7, 0.7]) == math.inf
    assert stats.average_ranks([1.0, 2.0, 2.0, 3.0]) == [1.0, 2.5, 2.5, 4.0]
    assert stats.average_ranks([]) == []
    assert stats.spearman([1, 2, 3, 4], [10, 30, 20, 40]) == pytest.approx(0.8, abs=1e-12)
    assert stats.spearman((1.0, 2.0, 3.0), (3.0, 2.0, 1.0)) == pytest.approx(-1.0, abs=1e-12)
    assert stats.__all__ == ["average_ranks", "binomial_test", "cohens_d", "mean", "spearman", "wilson_interval"]
    assert zipp.stats is stats


@pytest.mark.parametrize("call, needle", [
    (lambda: stats.binomial_test(11, 10), "k = 11"),
    (lambda: stats.binomial_test(-1, 10), "k = -1"),
    (lambda: stats.binomial_test(3, 0), "n must be at least 1"),
    (lambda: stats.binomial_test(3, 10, 1.5), "p = 1.5"),
    (lambda: stats.wilson_interval(1, 2, 1.0), "confidence"),
    (lambda: stats.wilson_interval(0, -2), "n = -2"),
    (lambda: stats.mean([]), "no values"),
    (lambda: stats.mean([1.0, float("nan")]), "xs[1] is NaN"),
    (lambda: stats.average_ranks([float("inf")]), "average_ranks"),
    (lambda: stats.spearman([1.0, 2.0], [1.0]), "spearman"),
    (lambda: stats.spearman([1.0, 2.0, 3.0], [4.0, 4.0, 4.0]), "y is constant"),
])
def test_stats_bad_input_raises_invalid_input(call, needle):
    with pytest.raises(zipp.InvalidInputError) as e:
        call()
    assert isinstance(e.value, ValueError) and needle in str(e.value)


def test_stats_type_errors():
    with pytest.raises(TypeError):
        stats.mean("123")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        stats.binomial_test(1.5, 10)  # type: ignore[arg-type]


# --- examples/python/evaluate.py ------------------------------------------------------------


def run_example(*args, cwd):
    script = REPO / "examples" / "python" / "evaluate.py"
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=600, cwd=cwd)


def test_the_evaluate_example_on_a_jsonl_file(tmp_path):
    done = run_example("--bench", str(PERSONAS), "--personas", "2", "--json", "report.json", "--samples",
                       "samples.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("2 personas")
    for name in VPTT_QUERIES + ["all generation queries", "all edit queries"]:
        assert name in done.stdout
    # A JSONL file's length is unknown: progress every 100 personas (none here), then the timings.
    assert "wall time" in done.stderr and "report written to report.json" in done.stderr
    doc = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert doc["run"]["bench"] == str(PERSONAS) and doc["run"]["config"]["queries"] == "vptt"
    report = doc["report"]
    assert report["personas"] == 2 and report["methods"] == METHODS and len(report["tables"]) == 6
    assert zipp.Report.from_json(json.dumps(report)).table() == done.stdout
    samples = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(samples) == 2 * 4 * 5
    assert {s["method"] for s in samples} == set(METHODS)


def test_the_evaluate_example_with_options_and_json_on_stdout(tmp_path):
    done = run_example("--bench", str(PERSONAS), "--personas", "1", "--methods", "identity,vprag", "--queries",
                       "extended", "--novelty", "measured", "--json", "-", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout[done.stdout.index("\n{") + 1:])
    assert doc["report"]["novelty"] == "measured" and doc["report"]["methods"] == ["identity", "vprag"]
    assert len(doc["report"]["tables"]) == 9 + 2
    assert not (tmp_path / "evaluation.json").exists()


def test_the_evaluate_example_reports_bad_arguments(tmp_path):
    done = run_example("--bench", str(PERSONAS), "--config", "@missing.json", cwd=tmp_path)
    assert done.returncode == 1 and "missing.json" in done.stderr
    done = run_example("--bench", str(PERSONAS), "--methods", "identity,nope", "--json", "none", cwd=tmp_path)
    assert done.returncode == 1 and "methods[1]" in done.stderr
    done = run_example("--bench", str(tmp_path / "missing.jsonl"), cwd=tmp_path)
    assert done.returncode == 1 and "missing.jsonl" in done.stderr
    done = run_example("--novelty", "sometimes", cwd=tmp_path)
    assert done.returncode == 2 and "--novelty" in done.stderr
