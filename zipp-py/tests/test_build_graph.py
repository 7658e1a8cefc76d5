"""Building a graph on disk from Python: the export folder numpy reads (CSR, weights, split,
users, snippets), progress per pass, cancellation that leaves no scratch files and no
meta.json, and typed errors located by file and line."""

import json

import numpy as np
import pytest

import zipp_persona as zipp


def write_edges(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_builds_the_pyg_folder_in_a_small_budget(tmp_path):
    edges = write_edges(tmp_path / "edges.jsonl", [
        {"user": "ana", "community": "film", "text": "grain"},
        {"user": "bo", "community": "bread"},
        {"user": "ana", "community": "bread", "count": 2},
        {"user": "ana", "community": "film", "count": 0.5, "text": "dusk"},
        {"user": "cy", "community": "film", "count": -1},
    ])
    out = tmp_path / "export"
    events = []
    report = zipp.build_graph(
        {"edges": [str(edges)], "out": str(out), "memory_budget_mb": 1, "skip_bad_rows": True,
         "split": {"validation": 0.0, "test": 0.5, "seed": 2}},
        on_progress=lambda p, rows: events.append((p, rows)),
    )
    assert report["out"] == str(out)
    load = report["load"]
    assert (load["rows_read"], load["rows_skipped"], load["users"], load["edges"]) == (5, 1, 2, 3)
    assert "line 5" in load["skipped"][0]
    assert [p for p, _ in events] == [1, 2, 3] and events[-1] == (3, 4)

    meta = json.loads((out / "meta.json").read_text())
    assert (meta["num_users"], meta["num_communities"], meta["num_edges"]) == (2, 2, 3)
    assert np.load(out / "user_rowptr.npy").tolist() == [0, 2, 3]
    assert np.load(out / "user_col.npy").tolist() == [0, 1, 1]
    assert np.load(out / "edge_weight.npy").tolist() == [1.5, 2.0, 1.0]
    split = np.load(out / "edge_split.npy", mmap_mode="r")
    assert split.dtype == np.uint8 and split[2] == 0 and sorted(split[:2].tolist()) == [0, 2]
    assert (out / "users.txt").read_text() == "ana\nbo\n"
    assert (out / "edge_snippets.jsonl").read_text().splitlines()[0] == '["grain","dusk"]'
    assert sorted(p.name for p in out.iterdir()) == [
        "communities.jsonl", "edge_snippets.jsonl", "edge_split.npy", "edge_weight.npy", "meta.json",
        "user_col.npy", "user_rowptr.npy", "users.txt",
    ]


def test_cancelling_leaves_no_scratch_and_no_meta(tmp_path):
    edges = tmp_path / "edges.jsonl"
    with edges.open("w") as f:
        for i in range(300_000):
            f.write(f'{{"user":"u{i % 7000}","community":"c{i % 11}"}}\n')
    out = tmp_path / "export"
    with pytest.raises(zipp.CancelledError):
        zipp.build_graph(json.dumps({"edges": [str(edges)], "out": str(out)}), on_progress=lambda p, rows: False)
    assert not out.exists() or list(out.iterdir()) == []


def test_errors_are_typed_and_located(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("user,community,count\nu,c,1\nu,c,zero\n")
    with pytest.raises(zipp.SchemaError) as e:
        zipp.build_graph({"edges": [str(bad)], "out": str(tmp_path / "x")})
    assert "bad.csv" in str(e.value) and "line 3" in str(e.value)
    with pytest.raises(zipp.SchemaError, match="budget"):
        zipp.build_graph({"edges": [str(bad)], "out": "x", "budget": 1})
    with pytest.raises(zipp.InvalidInputError, match="out"):
        zipp.build_graph({"edges": [str(bad)]})
    with pytest.raises(zipp.IoError, match="absent.jsonl"):
        zipp.build_graph({"edges": [str(tmp_path / "absent.jsonl")], "out": str(tmp_path / "y")})
