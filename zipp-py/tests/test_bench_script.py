"""benches/python/bench_overhead.py keeps running (a smoke run, not a measurement)."""

import json
import subprocess
import sys


def test_overhead_bench_runs(repo):
    script = repo / "benches" / "python" / "bench_overhead.py"
    done = subprocess.run([sys.executable, str(script), "--quick", "--json"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [r["method"] for r in report["results"]] == ["identity", "vprag"]
    for r in report["results"]:
        for side in ("python", "rust"):
            assert r[side]["n"] == 5 and 0 < r[side]["p10_ns"] <= r[side]["median_ns"] <= r[side]["p90_ns"]
