"""Per-method rewriter statistics from an evaluation's samples file
(`evaluate ... --samples FILE.jsonl`): how each rewrite ended (rewritten / repaired /
fallback), how often the model's own answer kept every subject of the base prompt (concept
preservation, before any repair), the mean VPTT, and the generation time (p50 / p95).

    python3 benches/python/rewrite_stats.py syn.samples.jsonl [ml.samples.jsonl ...]
"""

import collections
import json
import statistics
import sys


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def main() -> None:
    for path in sys.argv[1:]:
        by_method = collections.defaultdict(list)
        with open(path) as f:
            for line in f:
                s = json.loads(line)
                by_method[s["method"]].append(s)
        print(f"## {path}")
        print("| method | n | VPTT | rewritten | repaired | fallback | answer kept all subjects | p50 s | p95 s |")
        print("|---|---|---|---|---|---|---|---|---|")
        for method, rows in by_method.items():
            vptt = statistics.mean(r["vptt"] for r in rows)
            rw = [r["rewrite"] for r in rows if r.get("rewrite")]
            if not rw:
                print(f"| {method} | {len(rows)} | {vptt:.3f} | | | | | | |")
                continue
            n = len(rw)
            out = collections.Counter(r["outcome"] for r in rw)
            kept = sum(1 for r in rw if not r["missing_subjects"] and r["outcome"] != "fallback")
            ms = [r["generation_ms"] / 1000 for r in rw]
            print(
                f"| {method} | {n} | {vptt:.3f} | {out['rewritten'] / n:.0%} | {out['repaired'] / n:.0%} | "
                f"{out['fallback'] / n:.0%} | {kept / n:.0%} | {pct(ms, 0.5):.1f} | {pct(ms, 0.95):.1f} |"
            )
        print()


if __name__ == "__main__":
    main()
