"""llama.cpp's prefill and decode speed on the prompt of zipp-lm/examples/lm_speed.rs (the
same GGUF, 2 threads by default, greedy, 64 tokens). Venv: see llama_cpp_reference.py.

    /tmp/llref/v/bin/python benches/reference/llama_cpp_speed.py MODEL.gguf [THREADS] [REPS]
"""

import sys
import time

import llama_cpp
import numpy as np

PROMPT = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nWrite a long, detailed description of a quiet harbour at dawn, with boats, gulls and "
    "paper lanterns, for an image generator.<|im_end|>\n<|im_start|>assistant\n"
)


def main() -> None:
    path = sys.argv[1]
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    llm = llama_cpp.Llama(model_path=path, n_ctx=1024, n_threads=threads, n_threads_batch=threads, verbose=False)
    ids = llm.tokenize(PROMPT.encode(), add_bos=False, special=True)
    for _ in range(reps):
        llm.reset()
        t = time.perf_counter()
        llm.eval(ids)
        prefill = time.perf_counter() - t
        t = time.perf_counter()
        n = 0
        for _ in range(64):
            nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            if nxt in (llm.token_eos(), 2):
                break
            llm.eval([nxt])
            n += 1
        decode = time.perf_counter() - t
        print(f"prompt {len(ids)} tokens: prefill {len(ids) / prefill:.1f} tok/s ({prefill:.3f} s); "
              f"decode {n} tokens {n / decode:.1f} tok/s")


if __name__ == "__main__":
    main()
