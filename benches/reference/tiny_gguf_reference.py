"""llama.cpp's logits for the tiny random-initialised llama, qwen2 and qwen3 GGUF files of
zipp-lm's engine tests (written by `target/release/examples/tiny_gguf DIR`, from
zipp-lm/tests/common/tiny_gguf.rs). For each file: its sha256, and for fixed token-id
sequences every next-token logit after the sequence and the greedy continuation of 8 tokens,
and llama.cpp's token ids for tricky strings (the tiny vocabulary: bytes, 8 merges, 3 special
tokens; llama uses the `smollm` pre-tokenizer, qwen2/qwen3 the `qwen2` one).
Run in the throwaway venv of llama_cpp_reference.py (never in CI):

    target/release/examples/tiny_gguf /tmp/tiny
    /tmp/llref/v/bin/python benches/reference/tiny_gguf_reference.py /tmp/tiny \
        > zipp-lm/tests/fixtures/tiny_llama_cpp.json
"""

import hashlib
import json
import pathlib
import sys

import llama_cpp
import numpy as np

TRICKY = [
    "the theater in the 1990s",
    " leading space and  double  spaces",
    "digits 1234567890 and 3.14159",
    "tabs\tand\nnewlines\n\n\nthree",
    "unicode: café naïve 東京 🚀 — “quotes”",
    "<|im_start|>user\nspecial tokens inline<|im_end|>",
    "CAPS and MiXeD case, don't won't it's y'all",
    "     ",
]

SEQUENCES = [
    [265, 72, 101, 108, 108, 111, 220, 258],
    [100, 200, 50, 7, 256, 257, 263, 12, 99, 31, 44, 180],
    [3],
]


def main() -> None:
    root = pathlib.Path(sys.argv[1])
    out = {"llama_cpp_python": llama_cpp.__version__, "models": {}}
    for arch in ("llama", "qwen2", "qwen3"):
        path = root / f"tiny-{arch}.gguf"
        # f32 KV cache (type 0), as zipp's; every position's logits kept.
        llm = llama_cpp.Llama(model_path=str(path), n_ctx=128, n_threads=2, logits_all=True, verbose=False,
                              type_k=0, type_v=0, flash_attn=False)
        runs = []
        for ids in SEQUENCES:
            llm.reset()
            llm.eval(ids)
            logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float64)
            cont = []
            for _ in range(8):
                nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
                cont.append(nxt)
                llm.eval([nxt])
            runs.append({"ids": ids, "logits": [round(float(x), 5) for x in logits], "greedy": cont})
        tokens = [{"text": t, "ids": llm.tokenize(t.encode(), add_bos=False, special=True)} for t in TRICKY]
        out["models"][arch] = {
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "runs": runs,
            "tokenize": tokens,
        }
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
