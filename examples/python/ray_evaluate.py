#!/usr/bin/env python3
"""Evaluate a persona bench on a Ray cluster: writes N synthetic personas to a JSONL file,
evaluates them (the five default methods × the four VPTT queries) with zipp_persona.ray on
ACTORS actors of CPUS CPUs each, and prints the report table. With --local it also runs the
same evaluation in this process and checks that the two reports are equal (timings aside).

    pip install 'zipp-persona[ray]'
    python examples/python/ray_evaluate.py [options]
      --personas N        synthetic personas (default 100)
      --posts N           posts per persona (default: the bench's 30)
      --seed S            bench seed (default 0)
      --actors N          actors (default 2)
      --cpus-per-actor N  CPUs (and zipp threads) per actor (default 1)
      --batch-size N      personas per actor call (default: 16, fewer when there would be
                          under 4 batches per actor)
      --dir DIR           where the JSONL goes (default: a temporary folder; on a cluster, a
                          folder every node reads, e.g. NFS, or write it to s3:// yourself)
      --local             also evaluate locally, for time and equality
      --json FILE         the run's numbers as JSON (`-` for stdout): wall times, Ray's overhead
                          per persona, each actor's peak memory (ru_maxrss), threads, batches

Ray's overhead per persona is (Ray's wall time × actors − the actors' time inside zipp) / N:
what the actors spend starting, loading models, waiting and moving data, per persona.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import resource
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

import ray

import zipp_persona as zipp
from zipp_persona import ray as zray


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="ray_evaluate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--personas", type=int, default=100)
    ap.add_argument("--posts", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--actors", type=int, default=2)
    ap.add_argument("--cpus-per-actor", type=float, default=1)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--local", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.batch_size is None:
        args.batch_size = max(1, min(16, args.personas // (4 * max(args.actors, 1))))
    if args.personas < 1 or args.actors < 1 or args.batch_size < 1:
        ap.error("--personas, --actors and --batch-size must be positive")
    return args


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def without_timings(report: zipp.Report) -> Dict[str, Any]:
    d = report.to_dict()
    d.pop("timings", None)
    return d


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    tmp = None if args.dir else tempfile.TemporaryDirectory(prefix="zipp-ray-")
    folder = pathlib.Path(args.dir or tmp.name)  # type: ignore[union-attr]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"synthetic-{args.seed}-{args.personas}.jsonl"
    t = time.perf_counter()
    zipp.write_jsonl(path, zipp.SyntheticBench(seed=args.seed, personas=args.personas,
                                               posts_per_persona=args.posts))
    generate = time.perf_counter() - t
    print(f"ray_evaluate: {args.personas} synthetic personas in {path} ({generate:.1f} s)", file=sys.stderr)

    started_here = not ray.is_initialized()
    t = time.perf_counter()
    if started_here:
        # The one line that changes on a real cluster: ray.init(address="auto") on one of its
        # nodes, or ray.init("ray://head:10001") from outside it (and --dir on shared storage).
        ray.init(num_cpus=max(int(args.actors * args.cpus_per_actor), 1), include_dashboard=False)
    init = time.perf_counter() - t
    try:
        t = time.perf_counter()
        result = zray.evaluate(str(path), concurrency=args.actors, num_cpus=args.cpus_per_actor,
                               batch_size=args.batch_size)
        ray_wall = time.perf_counter() - t
    finally:
        if started_here:
            ray.shutdown()
    driver_rss = peak_rss_mib()
    report = result.report
    sys.stdout.write(report.table())
    sys.stdout.flush()
    for e in result.errors:
        print(f"  {e['location']}: {e['error_kind']}: {e['error']}", file=sys.stderr)

    busy = sum(a.wall_seconds for a in result.actors.values())
    run: Dict[str, Any] = {
        "personas": report.personas,
        "methods": report.methods,
        "queries": sum(1 for t in report.tables if t.get("query") is not None),
        "generate_seconds": generate,
        "ray": {
            "actors_requested": args.actors,
            "cpus_per_actor": args.cpus_per_actor,
            "batch_size": args.batch_size,
            "init_seconds": init,
            "wall_seconds": ray_wall,
            "wall_seconds_per_persona": ray_wall / report.personas,
            "actor_busy_seconds": busy,
            "overhead_seconds_per_persona": (ray_wall * args.actors - busy) / report.personas,
            "batches": result.batches,
            "errors": len(result.errors),
            "driver_peak_rss_mib": driver_rss,
            "actors": [
                {"pid": a.pid, "threads": a.threads, "model_loads": a.loads, "batches": a.batches,
                 "personas": a.personas, "busy_seconds": a.wall_seconds, "cpu_seconds": a.cpu_seconds,
                 "maxrss_mib": a.maxrss_mib}
                for a in sorted(result.actors.values(), key=lambda a: a.pid)
            ],
        },
    }
    print(f"\nray: {ray_wall:.2f} s for {report.personas} personas on {len(result.actors)} actors "
          f"(init {init:.1f} s; overhead {run['ray']['overhead_seconds_per_persona']:.3f} s/persona; peak RSS per "
          f"actor {', '.join(f'{a.maxrss_mib:.0f}' for a in result.actors.values())} MiB)", file=sys.stderr)

    if args.local:
        t = time.perf_counter()
        ev = zipp.Evaluation(zipp.Models())
        ev.add_personas(zipp.iter_jsonl(path))
        local = ev.report()
        local_wall = time.perf_counter() - t
        equal = without_timings(local) == without_timings(report)
        run["local"] = {"wall_seconds": local_wall, "wall_seconds_per_persona": local_wall / local.personas,
                        "threads": zipp.num_threads(), "peak_rss_mib": peak_rss_mib()}
        run["ray_speedup_over_local"] = local_wall / ray_wall
        run["reports_equal"] = equal
        print(f"local: {local_wall:.2f} s with {zipp.num_threads()} threads; reports equal (timings aside): "
              f"{equal}", file=sys.stderr)

    if args.json:
        text = json.dumps(run, indent=2)
        if args.json == "-":
            print(text)
        else:
            pathlib.Path(args.json).write_text(text + "\n", encoding="utf-8")
    if tmp is not None:
        tmp.cleanup()
    return 0 if run.get("reports_equal", True) else 1


if __name__ == "__main__":
    sys.exit(main())
