"""The persona benches through Python: the seeded synthetic bench and MovieLens 100K
(both provisioned by scripts/provision-models.sh), and the evaluate example over them."""

import itertools
import json
import pathlib
import subprocess
import sys
import threading

import pytest

import zipp_persona as zipp

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    return zipp.SyntheticBench(seed=3, personas=6, posts_per_persona=5)


def test_synthetic_personas_by_index_and_streamed(bench):
    assert len(bench) == 6 and bench.seed == 3
    assert repr(bench) == "SyntheticBench(seed=3, personas=6, posts_per_persona=5)"
    options = bench.options
    assert options["personas"] == 6 and options["posts_per_persona"] == 5
    assert options["words_per_caption"] == [40, 80]  # zipp-core's defaults, written out
    first, last = bench[0], bench[-1]
    assert (first.id, last.id) == ("syn-3-0", "syn-3-5")
    assert len(first.memory) == 5 and first.summary
    assert bench[5] == last
    streamed = list(bench)
    assert [p.id for p in streamed] == [f"syn-3-{i}" for i in range(6)]
    assert streamed[2] == bench[2]  # a persona depends on (seed, index) alone
    it = iter(bench)
    assert it.__length_hint__() == 6 and next(it) == first and it.__length_hint__() == 5
    with pytest.raises(IndexError):
        bench[6]
    with pytest.raises(IndexError):
        bench[-7]


def test_synthetic_bench_options(bench):
    other = zipp.SyntheticBench(seed=4, personas=1, posts_per_persona=5,
                                options={"words_per_caption": (50, 90), "examples_per_persona": 1})
    assert other.options["words_per_caption"] == [50, 90] and other.options["seed"] == 4
    p = other[0]
    assert p.id == "syn-4-0" and p != bench[0] and len(p.examples) == 1
    # Keyword arguments win over `options`.
    assert zipp.SyntheticBench(personas=2, options={"personas": 9}).options["personas"] == 2
    assert zipp.SyntheticBench().options["personas"] == 10_000


def test_synthetic_bench_errors(tmp_path):
    with pytest.raises(zipp.InvalidInputError) as e:
        zipp.SyntheticBench(posts_per_persona=0)
    assert "posts_per_persona" in str(e.value)
    with pytest.raises(zipp.SchemaError) as e:
        zipp.SyntheticBench(options={"persons": 3})
    assert e.value.location.field == "persons" and e.value.location.line is None
    with pytest.raises(zipp.SchemaError) as e:
        zipp.SyntheticBench(options={"words_per_caption": [40]})
    assert e.value.location.field == "words_per_caption"
    with pytest.raises(zipp.ModelNotFoundError) as e:
        zipp.SyntheticBench(personas=1, vocabulary_dir=tmp_path)
    assert "flavors.txt" in str(e.value)
    with pytest.raises(TypeError):
        zipp.SyntheticBench(options=[("personas", 1)])  # type: ignore[arg-type]


def test_threads_sharing_one_iterator_each_get_different_personas():
    bench = zipp.SyntheticBench(seed=1, personas=12, posts_per_persona=3)
    it = iter(bench)
    seen = []
    lock = threading.Lock()

    def drain():
        for p in it:
            with lock:
                seen.append(p.id)

    threads = [threading.Thread(target=drain) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen) == sorted(f"syn-1-{i}" for i in range(12))
    assert next(it, None) is None


def test_a_synthetic_persona_evaluates(models, bench):
    ev = zipp.Evaluation(models, {"methods": ["identity", "vprag"], "queries": "vptt"})
    assert ev.add_personas(itertools.islice(bench, 2)) == 2
    scorer = zipp.PersonaScorer(models, bench[0])
    assert scorer.score_one(bench[0].memory[0]["caption"]).nv == 0.0


@pytest.fixture(scope="module")
def movielens():
    return zipp.MovieLens.load()


def test_movielens_users_become_personas(movielens):
    assert (movielens.users, movielens.movies, movielens.ratings) == (943, 1682, 100_000)
    assert repr(movielens) == "MovieLens(users=943, movies=1682, ratings=100000)"
    assert movielens.user_id(0) == 1 and movielens.user_id(943) is None
    p = movielens.persona(0)
    assert p.id == "ml100k-1" and len(p.memory) == 30
    assert set(p.demographics) <= {"age_band", "gender", "profession"}
    assert all("rated" in post["caption"] for post in p.memory)
    short = movielens.persona(0, max_posts=5, min_rating=5)
    assert len(short.memory) == 5 and all("rated 5 out of 5" in post["caption"] for post in short.memory)
    source = movielens.source(max_posts=3)
    assert source.len_hint == 943 and "movielens-100k" in repr(source)
    first = list(itertools.islice(source, 3))
    assert [q.id for q in first] == ["ml100k-1", "ml100k-2", "ml100k-3"]
    assert all(len(q.memory) <= 3 for q in first)
    stream = iter(movielens.source())
    next(stream)
    assert stream.__length_hint__() == 942


def test_a_jsonl_file_is_a_persona_source_like_the_benches(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "a"}\n{"id": "b"}\n{"id": "b"}\n', encoding="utf-8")
    source = zipp.PersonaSource.jsonl(path)
    assert source.len_hint is None
    stream = iter(source)
    assert [next(stream).id, next(stream).id] == ["a", "b"]
    with pytest.raises(zipp.SchemaError) as e:
        next(stream)  # the duplicate id, located at line 3
    assert e.value.location is not None and e.value.location.line == 3
    assert [p.id for p in itertools.islice(source, 1)] == ["a"], "each iteration starts over"


def test_movielens_errors(movielens, tmp_path):
    with pytest.raises(zipp.InvalidInputError) as e:
        movielens.persona(943)
    assert "out of range" in str(e.value)
    with pytest.raises(zipp.InvalidInputError):
        movielens.persona(0, min_rating=9)
    with pytest.raises(zipp.ModelNotFoundError):
        zipp.MovieLens.load(tmp_path / "nope")


def run_example(*args, cwd):
    script = REPO / "examples" / "python" / "evaluate.py"
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=600, cwd=cwd)


@pytest.mark.parametrize("bench_name, first_id", [("synthetic", "syn-5-0"), ("movielens", "ml100k-1")])
def test_the_evaluate_example_on_a_bench(tmp_path, bench_name, first_id):
    done = run_example("--bench", bench_name, "--personas", "2", "--seed", "5", "--methods", "identity,vprag",
                       "--samples", "s.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("2 personas")
    assert f"2 {bench_name} personas × 2 methods × 4 queries" in done.stderr
    assert "[2/2]" in done.stderr and "personas/s" in done.stderr  # progress with a known total
    doc = json.loads((tmp_path / "evaluation.json").read_text(encoding="utf-8"))
    assert doc["run"]["bench"] == bench_name and doc["run"]["seed"] == 5
    assert doc["run"]["config"]["options"]["vptt"]["seed"] == 5
    assert doc["report"]["personas"] == 2
    samples = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(samples) == 2 * 4 * 2 and samples[0]["persona"] == first_id


def test_the_evaluate_example_with_a_config_file(tmp_path):
    config = {"methods": ["identity", {"method": "brag", "k": 2}],
              "queries": [{"name": "desk", "task": "generate", "prompt": "my desk"}]}
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    done = run_example("--bench", "synthetic", "--personas", "1", "--config", "@config.json", "--json", "-",
                       cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout[done.stdout.index("\n{") + 1:])
    assert doc["report"]["methods"] == ["identity", "brag"]
    assert doc["run"]["config"]["methods"] == ["identity", {"method": "brag", "k": 2}]
    assert [t["name"] for t in doc["report"]["tables"]] == ["desk"]
    done = run_example("--bench", "synthetic", "--personas", "1", "--config", '{"methods": ', cwd=tmp_path)
    assert done.returncode == 1 and "line 1" in done.stderr
