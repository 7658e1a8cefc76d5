"""How often the embedded SmolLM2-135M gives the LLM extractor and the LLM verbalizer JSON
that passes their checks (3 attempts each, the defaults). Run with the test wheel installed:

    ZIPP_NUM_THREADS=2 target/py-venv/bin/python benches/python/llm_json_validity.py
"""
import time
import zipp_persona as zipp
m = zipp.Models()
sets = [
    ["I love the neon colours but the lens flare is too much"],
    ["The pastel tones are lovely", "I can't stand the harsh shadows"],
    ["Great use of negative space, very minimalist"],
    ["Too dark and gloomy for me", "I prefer bright, warm lighting"],
    ["The watercolour texture is beautiful"],
    ["I hate the fisheye distortion", "The symmetry is perfect"],
    ["Not a fan of the grainy film look"],
    ["The golden hour light makes this", "but the composition feels cluttered"],
    ["Love the vintage feel and muted colours"],
    ["The bokeh is gorgeous", "the oversaturated greens ruin it"],
]
x = zipp.Extractor({"llm": {}}, models=m)
vx = zipp.Extractor()
ok = 0; t0 = time.time(); attempts = []
for comments in sets:
    try:
        out = x.extract(comments)
        ok += 1
        attempts.append(len(out["evidence"]["transcript"]["answers"]))
        print("OK ", out["preferences"], "| vocabulary:", vx.extract(comments)["preferences"])
    except zipp.ZippError as e:
        print("ERR", e.kind, str(e)[:120])
print(f"valid: {ok}/{len(sets)}, attempts of the valid ones: {attempts}, {time.time()-t0:.0f}s")
v = zipp.Verbalizer({"llm": {}}, models=m)
ev = {"user": "u1", "items": [
    {"kind": "community", "name": "r/analog", "weight": 3.0, "snippets": ["grainy film portraits at dusk", "my new lens"]},
    {"kind": "community", "name": "r/lisbon", "weight": 1.0, "snippets": ["teal doors and yellow trams"]}]}
vok = 0
for i in range(3):
    try:
        persona, e = v.verbalize(ev); vok += 1; print("VERB OK", persona.summary[:100])
    except zipp.ZippError as err:
        print("VERB ERR", err.kind, str(err)[:150])
print(f"verbalizer valid: {vok}/3")
