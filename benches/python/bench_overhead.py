"""What the Python bindings cost per call: `personalize` through Python vs. the same call
in a Rust loop, on the same persona, prompt and personalizer objects.

    python benches/python/bench_overhead.py [--reps N] [--rounds R] [--quick] [--json]

Needs the installed wheel (scripts/test-python.sh builds one into target/py-venv) and the
provisioned models. The persona and prompt are those of `cargo bench -p zipp-benches
--bench vprag` (ren-tokyo-night-streets, 30 posts, indexed before timing).

- Python side: `personalizer.personalize(persona, prompt)`, each call timed with
  time.perf_counter_ns (the timer's own cost is included, ~0.1 µs).
- Rust side: `_zipp._bench_native`, the hidden benchmark helper: the same
  `Personalizer::personalize(&IndexedPersona, &Request)` on the same objects, each call
  timed with `Instant` inside one GIL-free loop.
- `Identity` does no work, so its Python time is the fixed cost of a call (argument
  parsing, GIL release, fork gate, result object). `Vprag` is a full call, query
  embedding included.

Rounds alternate Python and Rust so drift (frequency, cache, other load) hits both; the
report gives medians, the 10th-90th percentile spread, and the overhead of the medians.
"""

import argparse
import json
import pathlib
import statistics
import sys
import time

import zipp_persona as zipp
from zipp_persona import _zipp

ROOT = pathlib.Path(__file__).resolve().parents[2]
PERSONA = "ren-tokyo-night-streets"
PROMPT = "a portrait of a person in a park at dusk"


def python_times(personalizer, persona, prompt, n):
    times = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        out = personalizer.personalize(persona, prompt)
        t1 = clock()
        times.append(t1 - t0)
        del out  # freed outside the timed region, as the Rust loop does
    return times


def summary(times):
    q = statistics.quantiles(times, n=10)
    return {"median_ns": statistics.median(times), "p10_ns": q[0], "p90_ns": q[-1], "n": len(times)}


def bench(personalizer, persona, prompt, reps, rounds, warmup):
    python_times(personalizer, persona, prompt, warmup)
    _zipp._bench_native(personalizer, persona, prompt, warmup)
    py, rust = [], []
    for _ in range(rounds):
        py += python_times(personalizer, persona, prompt, reps)
        rust += _zipp._bench_native(personalizer, persona, prompt, reps)
    p, r = summary(py), summary(rust)
    return {
        "method": personalizer.name,
        "python": p,
        "rust": r,
        "overhead_ns": p["median_ns"] - r["median_ns"],
        "overhead_pct": 100.0 * (p["median_ns"] - r["median_ns"]) / r["median_ns"],
    }


def fmt(ns):
    return f"{ns / 1e3:9.2f} µs" if ns < 1e6 else f"{ns / 1e6:9.3f} ms"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=None, help="calls per round (default: 2000 Identity, 100 Vprag)")
    ap.add_argument("--rounds", type=int, default=5, help="alternating Python/Rust rounds (default 5)")
    ap.add_argument("--quick", action="store_true", help="a few calls only (a smoke test, not a measurement)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = ap.parse_args()

    models = zipp.Models()
    models.load_all()
    persona = next(p for p in zipp.read_jsonl(ROOT / "examples" / "data" / "personas.jsonl") if p.id == PERSONA)
    persona.index(models)  # "persona already indexed", as in the Rust bench
    plan = [(zipp.Identity(), 2000, 200), (zipp.Vprag(models), 100, 20)]
    rounds = args.rounds
    if args.quick:
        plan = [(p, 5, 2) for p, _, _ in plan]
        rounds = 1
    results = [bench(p, persona, PROMPT, args.reps or reps, rounds, warmup) for p, reps, warmup in plan]
    report = {
        "persona": PERSONA,
        "prompt": PROMPT,
        "threads": zipp.num_threads(),
        "python": sys.version.split()[0],
        "results": results,
    }
    if args.json:
        print(json.dumps(report))
        return
    print(f"persona {PERSONA} ({len(persona.memory)} posts), prompt {PROMPT!r}, {report['threads']} zipp threads")
    print(f"{'method':<9} {'side':<7} {'median':>12} {'p10':>12} {'p90':>12} {'calls':>6}")
    for r in results:
        for side in ("python", "rust"):
            s = r[side]
            print(f"{r['method']:<9} {side:<7} {fmt(s['median_ns'])} {fmt(s['p10_ns'])} {fmt(s['p90_ns'])} {s['n']:>6}")
        print(f"{r['method']:<9} overhead of the medians: {fmt(r['overhead_ns']).strip()} ({r['overhead_pct']:+.2f}%)")


if __name__ == "__main__":
    main()
