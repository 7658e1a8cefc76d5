"""Persona mining from Python on a small edge file written here (three planted interest
groups, MiniLM features, a few GATv2 epochs): personas in user order with their evidence,
metrics and history, progress callbacks and cancellation (False, an exception, Ctrl-C),
JSONL out, typed errors for bad specs and missing files."""

import _thread
import json
import threading
import time

import pytest

import zipp_persona as zipp

GROUPS = {
    "photo": ["analog photography", "film noir", "darkroom printing"],
    "food": ["sourdough baking", "ramen", "cast iron cooking"],
    "games": ["speedrunning", "retro games", "pixel art"],
}


@pytest.fixture(scope="module")
def edges(tmp_path_factory):
    """Four users per group touch their group's communities, with what they wrote there."""
    path = tmp_path_factory.mktemp("mine") / "edges.jsonl"
    rows = []
    for group, communities in GROUPS.items():
        for i in range(4):
            for c in communities:
                rows.append({"user": f"{group}-{i}", "community": c, "text": f"I keep coming back to {c}"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def spec(edges, **extra):
    s = {
        "edges": [str(edges)],
        "split": {"validation": 0.0, "test": 0.34, "seed": 1},
        "encoder": {"hidden": 16, "heads": 2, "out": 16},
        "train": {"epochs": 5, "lr": 0.01},
    }
    s.update(extra)
    return s


def test_personas_come_back_in_user_order_with_their_evidence(models, edges, tmp_path):
    events = []
    out = zipp.mine_personas(spec(edges), models=models,
                             on_progress=lambda *e: events.append(e))
    users = [f"{g}-{i}" for g in GROUPS for i in range(4)]
    assert [p.id for p in out.personas] == users and len(out) == 12
    assert all(isinstance(p, zipp.Persona) and p.summary for p in out.personas)
    assert out.errors == []
    for persona, evidence in zip(out.personas, out.evidence):
        group = persona.id.split("-")[0]
        assert evidence["user"] == persona.id
        names = [item["name"] for item in evidence["items"]]
        assert names and set(names) <= set(GROUPS[group]), names
        weights = [item["weight"] for item in evidence["items"]]
        assert weights == sorted(weights, reverse=True), "ranked by attention"
    assert out.verbalizations[0]["method"] == "template"
    m = out.metrics
    assert m["trained"] and m["epochs"] == 5 and m["best_epoch"] == 5
    assert 0.0 <= m["test"]["auc"] <= 1.0 and m["test"]["edges"] == out.graph["test_edges"] > 0
    assert [r["epoch"] for r in out.history] == [1, 2, 3, 4, 5]
    assert out.graph["users"] == 12 and out.graph["communities"] == 9
    assert "12 personas" in repr(out)

    stages = [e[0] for e in events]
    assert stages[0] == "load" and stages[-1] == "evidence"
    train = [e for e in events if e[0] == "train"]
    assert [(e[1], e[2]) for e in train] == [(k, 5) for k in range(1, 6)]
    assert all(isinstance(e[3], float) for e in train)
    assert events[-1][1:3] == (12, 12)

    # The result's JSON is C's; the personas round-trip through JSONL.
    as_json = json.loads(out.to_json())
    assert as_json["personas"][0]["persona"]["id"] == "photo-0"
    path = tmp_path / "personas.jsonl"
    out.to_jsonl(path)
    assert [p.id for p in zipp.read_jsonl(path)] == users


def test_a_spec_as_json_text_and_checkpointed_weights(models, edges, tmp_path):
    ckpt = tmp_path / "encoder.safetensors"
    trained = zipp.mine_personas(json.dumps(spec(edges, checkpoint=str(ckpt))), models=models)
    assert ckpt.is_file()
    loaded = zipp.mine_personas({"edges": [str(edges)], "split": spec(edges)["split"], "weights": str(ckpt)},
                                models=models)
    assert loaded.metrics["trained"] is False and loaded.history == []
    assert [p.to_dict() for p in loaded.personas] == [p.to_dict() for p in trained.personas]


def test_the_callback_cancels_or_raises(models, edges):
    def stop_at_two(stage, done, total, loss, auc):
        return not (stage == "train" and done == 2)

    with pytest.raises(zipp.CancelledError) as e:
        zipp.mine_personas(spec(edges, train={"epochs": 1000}), models=models, on_progress=stop_at_two)
    assert e.value.kind == "cancelled"

    def boom(*_):
        raise ValueError("from the callback")

    with pytest.raises(ValueError, match="from the callback"):
        zipp.mine_personas(spec(edges), models=models, on_progress=boom)


def test_ctrl_c_cancels_and_raises_keyboard_interrupt(models, edges):
    epochs = []

    def interrupt_at_three(stage, done, total, loss, auc):
        if stage == "train":
            epochs.append(done)
            if done == 3:
                _thread.interrupt_main()

    with pytest.raises(KeyboardInterrupt):
        zipp.mine_personas(spec(edges, train={"epochs": 100000}), models=models, on_progress=interrupt_at_three)
    assert len(epochs) < 1000


def test_other_threads_run_while_mining(models, edges):
    """The GIL is released while the encoder trains: a Python thread keeps counting."""
    counter = {"n": 0}
    done = threading.Event()

    def count():
        while not done.is_set():
            counter["n"] += 1

    th = threading.Thread(target=count)
    th.start()
    t = time.monotonic()
    try:
        zipp.mine_personas(spec(edges, train={"epochs": 40}), models=models)
    finally:
        done.set()
        th.join()
    assert counter["n"] > 1000 and time.monotonic() - t < 30


def test_bad_specs_and_missing_files_are_typed_errors(models, edges):
    with pytest.raises(zipp.SchemaError) as e:
        zipp.mine_personas(spec(edges, train={"epohcs": 3}), models=models)
    assert "epohcs" in str(e.value) and "train" in (e.value.location.field or "")
    with pytest.raises(zipp.SchemaError) as e:
        zipp.mine_personas('{"edges": ["e.jsonl"],\n "evidence": {"token_budget": "lots"}}', models=models)
    assert e.value.location.line == 2
    with pytest.raises(zipp.ParseError):
        zipp.mine_personas('{"edges": [', models=models)
    with pytest.raises(zipp.InvalidInputError, match="edges"):
        zipp.mine_personas({}, models=models)
    with pytest.raises(zipp.InvalidInputError, match="epochs"):
        zipp.mine_personas(spec(edges, train={"epochs": 0}), models=models)
    with pytest.raises(zipp.IoError) as e:
        zipp.mine_personas({"edges": ["/nonexistent/zipp/edges.jsonl"]}, models=models)
    assert e.value.path.endswith("edges.jsonl")
    with pytest.raises(zipp.ModelNotFoundError):
        zipp.mine_personas({"edges": [str(edges)], "weights": "/nonexistent/zipp/w.safetensors"}, models=models)
    with pytest.raises(TypeError):
        zipp.mine_personas({"edges": [str(edges)], "split": {"seed": object()}}, models=models)
