"""The ZIPP rewriter's latency per prompt with the embedded SmolLM2-135M (strength full,
defaults): the 5 example personas x 4 prompts after one warm-up call; p50/p95 of the wall
time and of the generation alone. Run with the test wheel installed:

    ZIPP_NUM_THREADS=2 target/py-venv/bin/python benches/python/rewrite_latency.py
"""
import time, statistics, json
import zipp_persona as zipp
m = zipp.Models()
personas = zipp.read_jsonl("examples/data/personas.jsonl")
prompts = ["a teal door in Lisbon", "A photo of a cultural site in my region.", "Decorate this empty living room.", "Redesign this garden."]
p = zipp.Personalizer.from_spec(m, {"method": "pipeline", "name": "zipp", "retrievers": ["persona_facts"], "composer": {"kind": "zipp_rewrite"}})
p.personalize(personas[0], "warm up")
wall, gen, ptok, ctok, outcomes = [], [], [], [], []
for persona in personas:
    for pr in prompts:
        t = time.perf_counter()
        out = p.personalize(persona, pr)
        wall.append(time.perf_counter() - t)
        rw = out.evidence.to_dict()["rewrite"]
        gen.append(rw["generation_ms"] / 1000); ptok.append(rw["prompt_tokens"]); ctok.append(rw["completion_tokens"]); outcomes.append(rw["outcome"])
q = lambda xs, f: sorted(xs)[min(len(xs) - 1, int(f * len(xs)))]
print(f"n={len(wall)} wall p50 {q(wall,.5):.2f}s p95 {q(wall,.95):.2f}s; generation p50 {q(gen,.5):.2f}s p95 {q(gen,.95):.2f}s; prompt tokens median {statistics.median(ptok)}, completion median {statistics.median(ctok)} max {max(ctok)}; outcomes {dict((o, outcomes.count(o)) for o in set(outcomes))}")
