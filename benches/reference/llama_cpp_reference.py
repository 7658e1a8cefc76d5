"""Reference values for zipp-lm's GGUF backend from llama.cpp (through llama-cpp-python).

Produces zipp-lm/tests/fixtures/smollm2_llama_cpp.json: llama.cpp's token ids for tricky
strings, and for chat prompts its token ids, its 10 highest next-token logits and its greedy
continuation (up to 32 tokens). Run in a throwaway venv (never in CI: it builds llama.cpp
from source, ~6+ minutes on 2 cores):

    python3 -m venv /tmp/llref/v && /tmp/llref/v/bin/pip install llama-cpp-python==0.3.36
    /tmp/llref/v/bin/python benches/reference/llama_cpp_reference.py \
        ~/.cache/zipp/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf \
        > zipp-lm/tests/fixtures/smollm2_llama_cpp.json
"""

import hashlib
import json
import sys

import llama_cpp
import numpy as np

TRICKY = [
    "Hello world",
    " leading space and  double  spaces",
    "digits 1234567890 and 3.14159 and 1,000,000",
    "tabs\tand\nnewlines\n\n\nthree",
    "unicode: café naïve Zürich 東京 🚀 — “quotes” ‘single’",
    "<|im_start|>user\nspecial tokens inline<|im_end|>",
    "code: fn main() { println!(\"{}\", x[0]); } // done",
    "CAPS and MiXeD case, don't won't it's y'all",
    "a" * 40,
    "     ",
]

SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
QUESTIONS = [
    "Describe a teal door in Lisbon in one sentence.",
    "What is the capital of France?",
    "Write an image prompt about paper clouds and brown origami birds.",
    "List three colours of a sunset.",
    "Rewrite this prompt in a cozy style: a reading corner with a lamp.",
    "Say hello in Portuguese.",
    "What is 12 plus 30?",
    "Give a one-line description of a rainy street at night.",
]


def chatml(question: str) -> str:
    return (
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n"
        f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
    )


def main() -> None:
    path = sys.argv[1]
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    # An f32 KV cache (llama.cpp's default is f16): zipp keeps keys and values in f32, and
    # the comparison is about the model's arithmetic, not cache precision.
    kv = 0 if "--kv-f16" not in sys.argv else 1  # GGML_TYPE_F32 = 0, GGML_TYPE_F16 = 1
    llm = llama_cpp.Llama(
        model_path=path, n_ctx=1024, n_threads=2, logits_all=True, verbose=False, type_k=kv, type_v=kv, flash_attn=False
    )
    eos = llm.token_eos()
    out = {
        "generator": f"benches/reference/llama_cpp_reference.py, llama-cpp-python {llama_cpp.__version__}, "
        f"KV cache {'f16' if kv else 'f32'}",
        "model_sha256": digest,
        "tokenize": [
            {"text": t, "ids": llm.tokenize(t.encode("utf-8"), add_bos=False, special=True)} for t in TRICKY
        ],
        "greedy": [],
    }
    for q in QUESTIONS:
        prompt = chatml(q)
        ids = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        llm.reset()
        llm.eval(ids)
        first = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        top = np.argsort(-first)[:10]
        cont = []
        logits = first
        for _ in range(32):
            nxt = int(np.argmax(logits))
            if nxt == eos or nxt == 2:
                break
            cont.append(nxt)
            llm.eval([nxt])
            logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        out["greedy"].append(
            {
                "prompt": prompt,
                "ids": ids,
                "top10": [[int(i), float(first[i])] for i in top],
                "continuation": cont,
                "text": llm.detokenize(cont).decode("utf-8", errors="replace"),
            }
        )
    json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
