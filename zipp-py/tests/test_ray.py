"""zipp_persona.ray on a local Ray cluster (one per session: 2 CPUs, no dashboard, offline):
the persona reader, the Embed / Personalize / Score / EvaluateBatch actors against the same
local zipp calls (exactly), error rows, models loaded once per actor, zipp's threads per
actor, a killed actor, and the distributed evaluation against a local Evaluation."""

import gzip
import importlib.util
import json
import logging
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray
import ray.data

import zipp_persona as zipp
from zipp_persona import ray as zray  # the `ray` extra: zipp-py/requirements-test.txt installs it

REPO = pathlib.Path(__file__).resolve().parents[2]
PERSONAS = REPO / "examples" / "data" / "personas.jsonl"
PROMPTS = ["a portrait in the park at dusk", "a cozy living room"]


def test_import_zipp_persona_does_not_import_ray():
    code = (
        "import sys, zipp_persona, zipp_persona.stats\n"
        "assert 'ray' not in sys.modules, 'import zipp_persona imported ray'\n"
        "assert 'pyarrow' not in sys.modules\n"
        "import zipp_persona.ray\n"
        "assert 'ray' in sys.modules and callable(zipp_persona.ray.evaluate)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ---- the cluster -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One local cluster for the module. ZIPP_NUM_THREADS=3 in every worker's environment
    stands for a setting inherited from the driver: the actors must still run zipp with their
    num_cpus threads."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    temp = tmp_path_factory.mktemp("ray")
    # Ray's unix socket paths must stay short (107 bytes).
    short = pathlib.Path("/tmp") / f"zipp-ray-{os.getpid()}"
    short.symlink_to(temp)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        _temp_dir=str(short),
        runtime_env={"env_vars": {"ZIPP_NUM_THREADS": "3", "RAY_USAGE_STATS_ENABLED": "0"}},
    )
    for name in ("ray", "ray.data"):  # Ray Data logs every operator's metrics at DEBUG
        logging.getLogger(name).setLevel(logging.WARNING)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    # Test-defined callables travel by value (the workers cannot import this file).
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        yield
    finally:
        ray.shutdown()
        short.unlink()


def pool(n):
    return ray.data.ActorPoolStrategy(size=n)


@pytest.fixture(scope="module")
def bad_jsonl(tmp_path_factory):
    """The example personas with a blank line, malformed JSON, a schema error and a line that
    is not UTF-8 between them, CRLF endings, and no newline after the last line."""
    lines = PERSONAS.read_bytes().splitlines()
    body = [lines[0], lines[1], b"", b'{"id": "broken", ', lines[2], b'{"id": "x", "bogus": 1}', b"\xff\xfe{}",
            lines[3], lines[4]]
    path = tmp_path_factory.mktemp("in") / "personas.jsonl"
    path.write_bytes(b"\r\n".join(body))
    # line numbers (1-based) of the good and bad lines
    return path, {1: 0, 2: 1, 5: 2, 8: 3, 9: 4}, {4: "parse", 6: "schema", 7: "parse"}


def _local_error(text):
    try:
        zipp.Persona.from_json(text)
    except zipp.ZippError as e:
        return e
    raise AssertionError("valid")


# ---- reading ---------------------------------------------------------------------------------


class _CountingStream:
    """A file that records how far it has been read."""

    def __init__(self, data):
        self.data, self.pos = data, 0

    def read(self, n):
        chunk = self.data[self.pos:self.pos + n]
        self.pos += len(chunk)
        return chunk


def test_jsonl_is_read_a_block_at_a_time(cluster, tmp_path, monkeypatch):
    """A big file is streamed: the first block comes out after reading only its first chunk."""
    line = PERSONAS.read_bytes().splitlines()[0]
    n = 5000  # ~10 MB
    (tmp_path / "big.jsonl").write_bytes(b"\n".join([line] * n) + b"\n")
    source = zray.PersonaJsonlDatasource(str(tmp_path / "big.jsonl"), rows_per_block=500)
    monkeypatch.setattr(zray, "_CHUNK", 1 << 16)
    stream = _CountingStream((tmp_path / "big.jsonl").read_bytes())
    blocks = source._read_stream(stream, "big.jsonl")
    first = next(blocks)
    assert first.num_rows == 500 and stream.pos < len(stream.data) // 8
    rest = list(blocks)
    assert stream.pos == len(stream.data)
    assert [b.num_rows for b in rest] == [500] * 9
    assert first.column("line").to_pylist() == list(range(1, 501))
    assert rest[-1].column("line").to_pylist()[-1] == n
    assert first.column("persona")[0].as_py() == line


def test_read_personas_jsonl_gz_and_parquet(cluster, tmp_path, bad_jsonl):
    path, good, bad = bad_jsonl
    rows = zray.read_personas(str(path), rows_per_block=2).take_all()
    assert [r["line"] for r in sorted(rows, key=lambda r: r["line"])] == [1, 2, 4, 5, 6, 7, 8, 9]
    assert {r["source"] for r in rows} == {str(path)}
    raw = path.read_bytes().split(b"\r\n")
    for r in rows:
        assert r["persona"].rstrip(b"\r") == raw[r["line"] - 1]

    # Compressed JSONL (by extension) and a folder of files.
    folder = tmp_path / "many"
    folder.mkdir()
    with gzip.open(folder / "a.jsonl.gz", "wb") as f:
        f.write(PERSONAS.read_bytes())
    (folder / "b.jsonl").write_bytes(PERSONAS.read_bytes())
    rows = zray.read_personas(str(folder)).take_all()
    assert len(rows) == 10 and {pathlib.Path(r["source"]).name for r in rows} == {"a.jsonl.gz", "b.jsonl"}
    assert sorted(r["line"] for r in rows) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]

    # Parquet: a string column of persona JSON (name configurable), rows numbered from 1.
    texts = PERSONAS.read_text(encoding="utf-8").splitlines()
    pq.write_table(pa.table({"n": list(range(5)), "persona": texts}), tmp_path / "p.parquet", row_group_size=2)
    pq.write_table(pa.table({"json": texts[:2]}), tmp_path / "q.parquet")
    rows = zray.read_personas(str(tmp_path / "p.parquet"), rows_per_block=2).take_all()
    assert sorted((r["line"], r["persona"]) for r in rows) == [(i + 1, t.encode()) for i, t in enumerate(texts)]
    rows = zray.read_personas([str(tmp_path / "q.parquet")], column="json").take_all()
    assert sorted(r["line"] for r in rows) == [1, 2]
    with pytest.raises(Exception, match="no column 'persona'"):
        zray.read_personas(str(tmp_path / "q.parquet")).take_all()


# ---- the callables ---------------------------------------------------------------------------


def _embed_texts():
    # Every text has more than 16 tokens: a Ray batch and one local call embed alike.
    personas = zipp.read_jsonl(PERSONAS)
    return [post["caption"] for p in personas for post in p.memory][:60]


def test_embed_equals_local_and_loads_once_per_actor(cluster, models):
    texts = _embed_texts()
    ds = ray.data.from_items([{"id": i, "text": t} for i, t in enumerate(texts)], override_num_blocks=6)
    out = ds.map_batches(zray.Embed, fn_constructor_kwargs={"diagnostics": True}, compute=pool(2), num_cpus=1,
                         batch_size=7)
    rows = sorted(out.take_all(), key=lambda r: r["id"])
    want = models.embed(texts)
    got = np.stack([r["embedding"] for r in rows])
    assert got.dtype == np.float32 and got.shape == (len(texts), 384)
    assert np.array_equal(got, want)
    pids = {r["zipp_pid"] for r in rows}
    assert 1 <= len(pids) <= 2
    assert {r["zipp_loads"] for r in rows} == {1}  # one model load per actor, however many batches
    assert {r["zipp_threads"] for r in rows} == {1}  # num_cpus=1, not the inherited ZIPP_NUM_THREADS=3


def test_personalize_and_score_equal_local_with_error_rows(cluster, models, bad_jsonl, tmp_path):
    path, good, bad = bad_jsonl
    personas = zipp.read_jsonl(PERSONAS)
    ds = zray.read_personas(str(path), rows_per_block=3)
    out = (
        ds.map_batches(zray.Personalize, fn_constructor_args=("vprag",),
                       fn_constructor_kwargs={"prompts": PROMPTS, "diagnostics": True},
                       compute=pool(1), num_cpus=1, batch_size=2)
        .map_batches(zray.Score, compute=pool(1), num_cpus=1, batch_size=4)
    )
    out.write_parquet(str(tmp_path / "out"))
    table = pq.read_table(tmp_path / "out")
    rows = table.to_pylist()
    assert len(rows) == 8 * len(PROMPTS)  # every input line, once per prompt
    assert table.schema.field("vptt").type == pa.float64() and table.schema.field("prompt").type == pa.string()

    vprag = zipp.Personalizer.from_spec(models, "vprag")
    for r in rows:
        line = r["line"]
        assert r["location"] == f"{path}:{line}" and r["method"] == "vprag"
        if line in bad:
            e = _local_error(r["persona"].decode("utf-8")) if line != 7 else None
            assert r["error_kind"] == bad[line] and r["prompt"] == "" and r["persona_id"] == ""
            if e is None:
                assert r["error"] == "line is not valid UTF-8"
            else:
                assert r["error"].endswith(e.message) and e.message
            assert all(np.isnan(r[f]) for f in ("pa", "gs", "cp", "vptt", "vptt_c"))
            continue
        p = personas[good[line]]
        assert r["error"] == "" and r["error_kind"] == "" and r["persona_id"] == p.id
        local = vprag.personalize_batch(p, PROMPTS)[PROMPTS.index(r["query"])]
        assert r["prompt"] == local.prompt
        assert r["personalization"] == local.to_json()
        s = zipp.PersonaScorer(models, p).score_one(local.prompt)
        for f in ("pa", "gs", "cp", "cp_soft", "nv", "vptt", "vptt_c"):
            assert r[f] == getattr(s, f), f
        assert np.isnan(r["nv_soft"])
        assert r["zipp_loads"] == 1 and r["zipp_threads"] == 1


def _without_generation_time(personalization_json):
    d = json.loads(personalization_json)
    d["evidence"]["rewrite"].pop("generation_ms")  # wall time: the one field that differs
    return d


def test_personalize_per_row_queries_with_a_spec_and_the_zipp_rewriter(cluster, models):
    """The ZIPP rewriter (local SmolLM2 GGUF) from a spec dict, one row per query, personas as
    picklable Persona objects (a column holds one type: Ray cannot store Persona and str
    together)."""
    persona = zipp.read_jsonl(PERSONAS)[0]
    spec = {"method": "pipeline", "name": "zipp", "retrievers": ["persona_facts"],
            "composer": {"kind": "zipp_rewrite", "strength": "light", "sampling": {"max_tokens": 16}}}
    items = [{"persona": persona, "query": "a teal door in Lisbon"},
             {"persona": persona, "query": "   "}]  # zipp rejects a blank prompt
    out = ray.data.from_items(items).map_batches(
        zray.Personalize, fn_constructor_args=(spec,), fn_constructor_kwargs={"seed": 3},
        compute=pool(1), num_cpus=1, batch_size=8)
    rows = {r["query"]: r for r in out.take_all()}
    local = zipp.Personalizer.from_spec(models, spec).personalize(persona, "a teal door in Lisbon", seed=3)
    r = rows["a teal door in Lisbon"]
    assert r["method"] == "zipp" and r["error"] == "" and r["persona_id"] == persona.id
    assert r["prompt"] == local.prompt
    assert _without_generation_time(r["personalization"]) == _without_generation_time(local.to_json())
    blank = rows["   "]
    assert blank["error_kind"] == "invalid_input" and blank["prompt"] == "" and blank["location"] == ""
    assert blank["error"] == "invalid input: the base prompt is empty" and blank["persona_id"] == persona.id


# ---- threads ---------------------------------------------------------------------------------


def _task_times():
    """{tid: (name, utime + stime in clock ticks)} of this process's threads."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            stat = pathlib.Path(f"/proc/self/task/{tid}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        out[tid] = (name, int(fields[11]) + int(fields[12]))
    return out


class MeasuredEmbed(zray.Embed):
    """Embed that measures, over each batch, this process's CPU seconds per wall second and
    the most threads busy at once (a thread is busy in a 50 ms sample if it ran ≥ half of it)."""

    def __call__(self, batch):
        tick = os.sysconf("SC_CLK_TCK")
        samples, stop = [], threading.Event()

        def sample():
            last, t_last = _task_times(), time.perf_counter()
            while not stop.wait(0.05):
                now, t_now = _task_times(), time.perf_counter()
                span = (t_now - t_last) * tick
                busy = [name for tid, (name, t) in now.items() if tid in last and t - last[tid][1] >= 0.5 * span]
                samples.append(busy)
                last, t_last = now, t_now

        sampler = threading.Thread(target=sample, daemon=True)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        sampler.start()
        out = super().__call__(batch)
        stop.set()
        sampler.join()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        n = len(batch["text"])
        out["cpu_per_wall"] = np.full(n, cpu / wall)
        out["wall"] = np.full(n, wall)
        out["busy_max"] = np.full(n, max((len(b) for b in samples), default=0))
        out["busy_zipp_max"] = np.full(n, max((sum(x.startswith("zipp-") for x in b) for b in samples), default=0))
        out["zipp_pool"] = np.full(n, sum(name.startswith("zipp-") for name, _ in _task_times().values()))
        out["omp"] = np.array([os.environ.get("OMP_NUM_THREADS", "")] * n, dtype=object)
        return out


@pytest.mark.parametrize("actors,cpus", [(2, 1), (1, 2)])
def test_each_actor_runs_zipp_with_its_num_cpus_threads_without_oversubscribing(cluster, actors, cpus):
    texts = [t + " " + t for t in _embed_texts()] * 2  # 120 texts of ~60 tokens: ~2 s on one core
    ds = ray.data.from_items([{"text": t} for t in texts], override_num_blocks=4)
    out = ds.map_batches(MeasuredEmbed, fn_constructor_kwargs={"diagnostics": True}, compute=pool(actors),
                         num_cpus=cpus, batch_size=len(texts) // 4)
    rows = out.drop_columns(["embedding"]).take_all()
    keys = ("zipp_threads", "zipp_pool", "omp", "cpu_per_wall", "wall", "busy_max", "busy_zipp_max")
    batches = {tuple(r[k] for k in keys) + (r["zipp_pid"],) for r in rows}  # one entry per batch
    print(f"actors={actors} num_cpus={cpus}: per batch {keys + ('pid',)}: {sorted(batches)}")
    assert 1 <= len({b[-1] for b in batches}) <= actors
    for threads, pool_threads, omp, cpu_per_wall, wall, busy, busy_zipp, pid in batches:
        assert threads == cpus and pool_threads == cpus, batches  # not the inherited ZIPP_NUM_THREADS=3
        assert omp == str(cpus), batches  # what Ray set for the actor
        assert busy_zipp <= cpus, batches
        assert cpu_per_wall <= cpus + 0.25, batches


# ---- faults ----------------------------------------------------------------------------------


def _wait_to_be_killed(signal_dir):
    """The first batch, in whichever actor gets there first: writes `ready-<pid>` and waits
    until the test has killed this process (file `killed`)."""
    killed = signal_dir / "killed"
    if not killed.exists():
        (signal_dir / f"ready-{os.getpid()}").write_text("")
        deadline = time.monotonic() + 60
        while not killed.exists() and time.monotonic() < deadline:
            time.sleep(0.02)


def _take_all_killing_one_actor(out, signal_dir):
    """`out.take_all()` while a thread SIGKILLs the first actor that reports ready (then lets
    the others pass); returns the rows and the killed pids."""
    killed = []

    def killer():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            ready = sorted(signal_dir.glob("ready-*"))
            if ready:
                pid = int(ready[0].name.split("-")[1])
                os.kill(pid, signal.SIGKILL)  # mid-batch: its output is not returned yet
                killed.append(pid)
                time.sleep(0.5)
                (signal_dir / "killed").write_text(str(pid))
                return
            time.sleep(0.02)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    rows = out.take_all()
    thread.join(timeout=5)
    return rows, killed


class KillableEmbed(zray.Embed):
    """Embed whose first call, in whichever actor gets there first, writes its pid to
    `ready-<pid>` and waits until the test has killed it (file `killed`)."""

    def __init__(self, signal_dir, **kw):
        super().__init__(**kw)
        self.dir = pathlib.Path(signal_dir)

    def __call__(self, batch):
        out = super().__call__(batch)
        _wait_to_be_killed(self.dir)
        return out


def test_a_killed_actor_is_restarted_and_no_row_is_lost_or_duplicated(cluster, models, tmp_path):
    texts = _embed_texts()
    n = len(texts)
    ds = ray.data.from_items([{"id": i, "text": texts[i]} for i in range(n)], override_num_blocks=6)
    out = ds.map_batches(KillableEmbed, fn_constructor_args=(str(tmp_path),),
                         fn_constructor_kwargs={"diagnostics": True}, compute=pool(2), num_cpus=1, batch_size=5)
    rows, killed = _take_all_killing_one_actor(out, tmp_path)
    assert len(killed) == 1
    ids = [r["id"] for r in rows]
    assert len(ids) == n and sorted(ids) == list(range(n))  # none lost, none duplicated
    got = np.stack([r["embedding"] for r in sorted(rows, key=lambda r: r["id"])])
    assert np.array_equal(got, models.embed(texts))
    pids = {r["zipp_pid"] for r in rows}
    assert killed[0] not in pids  # its unfinished batch was redone elsewhere
    assert 1 <= len(pids) <= 2 + 1  # the pool, plus the restarted actor
    assert {r["zipp_loads"] for r in rows} == {1}


# ---- evaluation ------------------------------------------------------------------------------


def _without_timings(report):
    d = report.to_dict()
    d.pop("timings")
    return d


def test_distributed_evaluation_equals_the_local_one(cluster, models, tmp_path):
    bench = list(zipp.SyntheticBench(seed=5, personas=7, posts_per_persona=6))
    path = tmp_path / "bench.jsonl"
    zipp.write_jsonl(path, bench[:4])
    with open(path, "ab") as f:
        f.write(b'{"id": "half"\n{"id": "syn-extra", "memory": 3}\n')
    with open(path, "a", encoding="utf-8") as f:
        for p in bench[4:]:
            f.write(p.to_json() + "\n")
    result = zray.evaluate(str(path), concurrency=2, num_cpus=1, batch_size=2)

    ev = zipp.Evaluation(models)
    ev.add_personas(bench)
    local = ev.report()
    assert result.report.personas == local.personas == 7
    assert result.report.tables == local.tables
    assert _without_timings(result.report) == _without_timings(local)  # bit for bit, sharded or not
    assert result.aggregate.personas == 7
    report, errors = result
    assert sorted((e["location"], e["error_kind"]) for e in errors) == [(f"{path}:5", "parse"), (f"{path}:6", "schema")]
    assert 1 <= len(result.actors) <= 2 and result.batches >= 4
    for a in result.actors.values():
        assert a.loads == 1 and a.threads == 1 and a.maxrss_mib > 0 and a.cpu_seconds > 0
    assert sum(a.personas for a in result.actors.values()) == 7

    # A Dataset works the same (here: a column of Persona objects, other batches).
    ds = ray.data.from_items([{"persona": p} for p in bench])
    again = zray.evaluate(ds, concurrency=1, num_cpus=1, batch_size=3)
    assert _without_timings(again.report) == _without_timings(local) and again.errors == []


class KillableEvaluateBatch(zray.EvaluateBatch):
    """EvaluateBatch whose first call, in whichever actor gets there first, has folded its
    personas, writes its pid to `ready-<pid>` and waits to be killed (file `killed`)."""

    def __init__(self, signal_dir, config=None, **kw):
        super().__init__(config, **kw)
        self.dir = pathlib.Path(signal_dir)

    def __call__(self, batch):
        out = super().__call__(batch)
        _wait_to_be_killed(self.dir)
        return out


def test_a_killed_evaluation_actor_still_gives_exactly_the_local_report(cluster, models, tmp_path):
    """An actor SIGKILLed with a batch's aggregate computed but not yet returned: the batch is
    redone, its personas counted once, and the merged report is the local one bit for bit."""
    bench = list(zipp.SyntheticBench(seed=11, personas=6, posts_per_persona=5))
    ds = ray.data.from_items([{"persona": p.to_json()} for p in bench], override_num_blocks=3)
    out = ds.map_batches(KillableEvaluateBatch, fn_constructor_args=(str(tmp_path),), compute=pool(2), num_cpus=1,
                         batch_size=2, batch_format="numpy")
    rows, killed = _take_all_killing_one_actor(out, tmp_path)
    assert len(killed) == 1
    aggregates = [r["aggregate"] for r in rows if r["kind"] == "aggregate"]
    assert killed[0] not in {r["zipp_pid"] for r in rows}
    merged = zipp.merge_aggregates(aggregates)
    ev = zipp.Evaluation(models)
    ev.add_personas(bench)
    assert merged.personas == 6 and sum(r["personas"] for r in rows) == 6  # none lost, none twice
    assert _without_timings(merged.report()) == _without_timings(ev.report())


def test_the_ray_example_runs_on_the_session_cluster(cluster, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("ray_evaluate_example", REPO / "examples" / "python" / "ray_evaluate.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out_json = tmp_path / "run.json"
    assert example.main(["--personas", "4", "--posts", "6", "--local", "--json", str(out_json),
                         "--dir", str(tmp_path)]) == 0
    run = json.loads(out_json.read_text())
    assert run["personas"] == 4 and run["reports_equal"] is True
    assert len(run["ray"]["actors"]) >= 1 and all(a["maxrss_mib"] > 0 for a in run["ray"]["actors"])
    assert "PA" in capsys.readouterr().out
