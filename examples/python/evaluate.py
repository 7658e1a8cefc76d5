#!/usr/bin/env python3
"""zipp evaluate, in Python: runs methods × personas × queries, scores every rewritten prompt
with the VPTT score and prints, per query, the table of the VPTT paper's Tables 3/7 (PA, GS,
CP, NV, VPTT_c, VPTT, win %, Cohen's d), then writes the whole report as JSON.

The same flags and output as the Rust example (examples/evaluate.rs):

    python examples/python/evaluate.py [options]
      --bench synthetic|movielens|FILE.jsonl   persona source (default synthetic)
      --personas N        how many personas (default 100; synthetic: generated, others: first N; 0 = all)
      --seed S            synthetic bench seed and k-means seed (default 0)
      --queries vptt|extended                 the four VPTT tasks, or those plus five more (default vptt)
      --methods a,b,…     method specs by name (default identity,persona_only,brag,vprag,combined)
      --novelty paper|measured                NV = 0 for methods that never read the memory (paper, default), or measured
      --soft-novelty      also compute the soft NV (embeds every trigram: slower)
      --json FILE         the report as JSON (default evaluation.json; `-` for stdout, `none` to skip)
      --samples FILE      every scored prompt as JSONL (default: not written)
      --config JSON|@FILE an evaluation config (methods as names or spec objects, queries,
                          options); replaces --methods/--queries/--novelty/--soft-novelty
      --models DIR        models folder (default: $ZIPP_MODELS_DIR or ~/.cache/zipp/models)

Memory stays bounded: personas stream from their source one at a time and only running
aggregates are kept. Progress (rate, ETA, peak memory) goes to stderr.
"""

from __future__ import annotations

import argparse
import itertools
import json
import pathlib
import resource
import sys
import time
from typing import IO, Iterator, Optional, Tuple, Union

import zipp_persona as zipp

DEFAULT_METHODS = "identity,persona_only,brag,vprag,combined"


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="evaluate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", default="synthetic", help="synthetic | movielens | FILE.jsonl (default synthetic)")
    ap.add_argument("--personas", type=int, default=100, help="how many personas (0 = all; default 100)")
    ap.add_argument("--seed", type=int, default=0, help="synthetic bench seed and k-means seed (default 0)")
    ap.add_argument("--queries", default="vptt", help="vptt | extended (default vptt)")
    ap.add_argument("--methods", default=DEFAULT_METHODS, help=f"method names, comma-separated (default {DEFAULT_METHODS})")
    ap.add_argument("--novelty", choices=["paper", "measured"], default="paper",
                    help="NV = 0 for methods that never read the memory (paper, default), or measured")
    ap.add_argument("--soft-novelty", action="store_true", help="also compute the soft NV (slower)")
    ap.add_argument("--json", default="evaluation.json", help="report file (default evaluation.json; - stdout; none)")
    ap.add_argument("--samples", default=None, help="every scored prompt as JSONL (default: not written)")
    ap.add_argument("--config", default=None,
                    help="an evaluation config as JSON or @FILE; replaces --methods/--queries/--novelty/--soft-novelty")
    ap.add_argument("--models", default=None, help="models folder (default: $ZIPP_MODELS_DIR or ~/.cache/zipp/models)")
    args = ap.parse_args(argv)
    if args.personas < 0:
        ap.error("--personas: must not be negative")
    if args.seed < 0:
        ap.error("--seed: must not be negative")
    return args


def peak_rss_mib() -> Optional[float]:
    """Peak resident memory of this process, in MiB (Linux reports KiB)."""
    try:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    except (OSError, ValueError):
        return None


def fmt_duration(seconds: float) -> str:
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{seconds:.1f}s"


def persona_source(args: argparse.Namespace) -> Tuple[Iterator[zipp.Persona], Optional[int]]:
    """The personas to evaluate (streamed) and how many there will be, when known."""
    limit = None if args.personas == 0 else args.personas
    models_dir = pathlib.Path(args.models) if args.models else None
    if args.bench == "synthetic":
        bench = zipp.SyntheticBench(
            seed=args.seed,
            personas=limit,  # 0: the bench's default size
            vocabulary_dir=models_dir / "clip-interrogator" if models_dir else None,
        )
        return iter(bench), len(bench)
    if args.bench == "movielens":
        movielens = zipp.MovieLens.load(models_dir / "movielens-100k" if models_dir else None)
        n = movielens.users if limit is None else min(movielens.users, limit)
        return itertools.islice(movielens.source(), n), n
    return itertools.islice(zipp.iter_jsonl(args.bench), limit), None


def eval_config(args: argparse.Namespace) -> Union[dict, str]:
    """The evaluation config: --config as given, or built from the name flags; either way
    with the k-means seed set to --seed."""
    if args.config is not None:
        text = args.config
        if text.startswith("@"):
            text = pathlib.Path(text[1:]).read_text(encoding="utf-8")
        try:
            config = json.loads(text)
        except ValueError:
            return text  # zipp reports where it is malformed
        if not isinstance(config, dict):
            return text
    else:
        config = {
            "methods": [m.strip() for m in args.methods.split(",")],
            "queries": args.queries,
            "options": {
                "novelty": "zero_without_memory" if args.novelty == "paper" else "measured",
                "vptt": {"novelty": "soft"} if args.soft_novelty else {},
            },
        }
    options = config.setdefault("options", {})
    if isinstance(options, dict):
        vptt = options.setdefault("vptt", {})
        if isinstance(vptt, dict):
            vptt["seed"] = args.seed
    return config


def main(argv: Optional[list] = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    try:
        models = zipp.Models(args.models)
        personas, total = persona_source(args)
        ev = zipp.Evaluation(models, eval_config(args))
        samples_out: Optional[IO[str]] = open(args.samples, "w", encoding="utf-8") if args.samples else None
    except (zipp.ZippError, OSError) as e:
        print(f"evaluate: {e}", file=sys.stderr)
        return 1

    setup = time.perf_counter() - started
    source = f"{total} {args.bench} personas" if total is not None else f"personas from {args.bench}"
    print(f"evaluate: {source} × {len(ev.methods)} methods × {len(ev.queries)} queries (setup {fmt_duration(setup)})",
          file=sys.stderr)
    every = max(total // 20, 1) if total is not None else 100
    last_report = time.perf_counter()
    reading = 0.0
    try:
        while True:
            t = time.perf_counter()
            persona = next(personas, None)
            reading += time.perf_counter() - t
            if persona is None:
                break
            rows = ev.add_persona(persona)
            if samples_out is not None:
                for row in rows:
                    samples_out.write(json.dumps(row, ensure_ascii=False) + "\n")
            done = ev.personas
            if done % every == 0 or time.perf_counter() - last_report > 30:
                last_report = time.perf_counter()
                elapsed = max(time.perf_counter() - started - setup, 1e-9)
                rate = done / elapsed
                progress = f"  [{done}" + (f"/{total}" if total is not None else "") + f"] {rate:.2f} personas/s"
                if total is not None:
                    progress += f", ETA {fmt_duration(max(total - done, 0) / rate)}"
                rss = peak_rss_mib()
                if rss is not None:
                    progress += f", peak RSS {rss:.0f} MiB"
                print(progress, file=sys.stderr)
        report = ev.report()
    except zipp.ZippError as e:
        print(f"evaluate: {e}", file=sys.stderr)
        return 1
    finally:
        if samples_out is not None:
            samples_out.close()

    wall = time.perf_counter() - started
    sys.stdout.write(report.table())
    sys.stdout.flush()
    rss = peak_rss_mib()
    print(f"\nwall time {wall:.2f} s for {report.personas} personas, peak RSS "
          + ("n/a" if rss is None else f"{rss:.0f} MiB"), file=sys.stderr)
    t = report.timings
    for name, seconds in [
        ("setup (models, vocabulary, queries)", setup),
        ("reading/generating personas", reading),
        ("embedding memory (captions, elements)", t["index_memory"]),
        ("persona state (text, basis, clusters)", t["persona_state"]),
        ("personalizing (query embeddings incl.)", t["personalize"]),
        ("embedding rewritten prompts", t["embed_prompts"]),
        ("scoring and aggregation", t["score"]),
    ]:
        print(f"  {name:<34} {seconds:>9.2f} s  {100.0 * seconds / wall:>5.1f}%", file=sys.stderr)

    run = {
        "bench": args.bench,
        "seed": args.seed,
        "config": ev.config,
        "wall_seconds": wall,
        "setup_seconds": setup,
        "read_seconds": reading,
        "peak_rss_mib": rss,
        "threads": zipp.num_threads(),
    }
    text = json.dumps({"run": run, "report": report.to_dict()}, indent=2, ensure_ascii=False)
    if args.json == "-":
        print(text)
    elif args.json != "none":
        pathlib.Path(args.json).write_text(text + "\n", encoding="utf-8")
        print(f"report written to {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
