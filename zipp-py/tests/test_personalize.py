"""Personalizers end to end on the real MiniLM and CLIP vocabulary over the example
personas: construction through MethodSpec, invariants of every result, batch == single."""

import json
import math

import pytest

import zipp_persona as zipp
from zipp_persona import _zipp

METHODS = ["identity", "persona_only", "brag", "vprag", "combined"]
CLASSES = {
    "identity": zipp.Identity,
    "persona_only": zipp.PersonaOnly,
    "brag": zipp.Brag,
    "vprag": zipp.Vprag,
    "combined": zipp.Combined,
}


def test_classes_and_specs_agree(models):
    for name, cls in CLASSES.items():
        built = cls() if cls is zipp.Identity else cls(models)
        from_name = zipp.Personalizer.from_spec(models, name)
        from_dict = zipp.Personalizer.from_spec(models, built.spec)
        for p in (built, from_name, from_dict):
            assert type(p) is cls and isinstance(p, zipp.Personalizer)
            assert p.name == name and p.spec == built.spec
        assert repr(built) == f"{cls.__name__}(spec={built.spec!r})"
    # Defaults come from zipp-core's MethodSpec, every one written out.
    assert zipp.Vprag(models).spec == {"method": "vprag", "temperature": 0.1, "default_budget": 3, "budgets": {}}
    assert zipp.Brag(models).spec == {"method": "brag", "k": 3}
    assert zipp.Combined(models).spec == {
        "method": "combined", "brag_k": 3, "temperature": 0.1, "default_budget": 3, "budgets": {}}
    v = zipp.Vprag(models, temperature=0.25, default_budget=2, budgets={"lighting": 1}, token_budget=60)
    assert v.spec == {"method": "vprag", "temperature": 0.25, "default_budget": 2, "budgets": {"lighting": 1},
                      "token_budget": 60}
    assert zipp.Personalizer.from_spec(models, json.dumps(v.spec)).spec == v.spec
    assert zipp.Personalizer.from_spec(models, '"brag"').spec == zipp.Brag(models).spec
    with pytest.raises(TypeError):
        zipp.Personalizer()  # type: ignore[call-arg]


def test_bad_specs(models):
    with pytest.raises(zipp.SchemaError) as e:
        zipp.Personalizer.from_spec(models, "dalle")
    assert "dalle" in str(e.value)
    with pytest.raises(zipp.SchemaError) as e:
        zipp.Personalizer.from_spec(models, {"method": "vprag", "temprature": 0.2})
    assert "temprature" in str(e.value) and e.value.location.line is None
    with pytest.raises(zipp.InvalidInputError):
        zipp.Personalizer.from_spec(models, {"method": "combined", "brag_k": 0})
    with pytest.raises(zipp.ParseError):
        zipp.Personalizer.from_spec(models, '{"method": "brag"')


def close(a, b):
    """Equal, floats to 1e-5: MiniLM's output for a text differs in the last bits with the
    other texts of its batch (different GEMM blocking), so batched query scores do too."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def check_result(models, out, request, name, budget=77):
    """What every personalization must satisfy, whatever the persona and prompt."""
    ev = out.evidence
    base = request["prompt"]
    assert out.method == name and out.negative_prompt is None and out.steering is None
    assert out.explain().startswith(f"[{name}] {out.prompt}")
    d = out.to_dict()
    assert d == json.loads(out.to_json()) and d["evidence"] == ev.to_dict() and d["prompt"] == out.prompt
    if name == "identity":
        assert out.prompt == base and ev.to_dict()["posts"] == [] and ev.content_budget == 0
        return
    # Base prompt first and whole; the rest fits the CLIP budget (start/end markers excluded).
    assert out.prompt.startswith(base)
    assert ev.content_budget == budget - 2
    assert models.count_tokens(out.prompt) == ev.tokens <= ev.content_budget
    # The piece that did not fit whole may end the prompt cut at a word boundary.
    cut = d["evidence"].get("cut_piece")
    if cut:
        assert out.prompt.endswith(", " + cut["kept"])
    whole = lambda kind, i: not cut or cut["source"] != {kind: i}  # noqa: E731
    assert all(e.text in out.prompt for i, e in enumerate(ev.elements) if e.used and whole("element", i))
    brag_posts = [p for p in ev.posts if p.weight is None]
    assert all(
        p.caption.strip().rstrip(".") in out.prompt
        for i, p in enumerate(ev.posts)
        if p.weight is None and p.caption_used and whole("caption", i)
    )
    if name in ("vprag", "combined"):
        vprag_posts = [p for p in ev.posts if p.weight is not None]
        assert ev.k == len(vprag_posts) >= 1
        assert math.isclose(ev.n_eff, math.exp(ev.entropy), rel_tol=1e-12)
        weights = [p.weight for p in vprag_posts]
        assert weights == sorted(weights, reverse=True) and sum(weights) <= 1 + 1e-9
        assert ev.total_budget == sum(c.budget for c in ev.categories)
        # Every allocated element is offered to the composer unless it duplicated a better one.
        assert sum(c.allocated for c in ev.categories) == len(ev.elements) + ev.duplicates_dropped
        assert all(c.allocated <= min(c.budget, c.available) for c in ev.categories)
        priorities = [c.priority for c in ev.categories]
        assert priorities == sorted(priorities, reverse=True)
    else:
        assert (ev.n_eff, ev.k, ev.entropy, ev.total_budget) == (None, None, None, None)
    if name in ("brag", "combined"):
        assert len(brag_posts) == 3
    if name != "persona_only":
        # Pieces left out: elements and captions not used (PersonaOnly's pieces are persona facts).
        unused = sum(not e.used for e in ev.elements) + sum(not p.caption_used for p in brag_posts)
        assert ev.dropped_by_budget == unused


def test_every_method_on_every_example(models, personas, prompts, personalizers):
    for persona in personas:
        for name in METHODS:
            for request in prompts:
                out = personalizers[name].personalize(persona, request["prompt"], task=request["task"])
                check_result(models, out, request, name)


def test_batch_equals_single_and_accepts_request_dicts(personas, prompts, personalizers):
    persona = personas[3]
    requests = prompts + [
        {"prompt": "a red bicycle", "task": "edit", "seed": 7},
        {"prompt": "a red bicycle", "token_budget": 30},
        "a bare prompt string",
    ]
    for name in METHODS:
        p = personalizers[name]
        batch = p.personalize_batch(persona, requests)
        single = []
        for r in requests:
            r = {"prompt": r} if isinstance(r, str) else r
            single.append(p.personalize(persona, r["prompt"], task=r.get("task", "generate"), seed=r.get("seed"),
                                        token_budget=r.get("token_budget")))
        assert [r.prompt for r in batch] == [r.prompt for r in single]
        assert close([r.to_dict() for r in batch], [r.to_dict() for r in single])
        assert close([r.to_dict() for r in p.personalize_batch(persona, tuple(requests[:2]))],
                     [r.to_dict() for r in single[:2]])
        assert p.personalize_batch(persona, []) == []
        if name != "identity":
            assert batch[-2].evidence.content_budget == 28 and batch[-2].evidence.tokens <= 28


def test_batch_request_errors_name_the_item(personas, personalizers):
    vprag = personalizers["vprag"]
    with pytest.raises(zipp.SchemaError) as e:
        vprag.personalize_batch(personas[0], ["a cat", {"promt": "a dog"}])
    assert e.value.location.field == "[1].promt"
    with pytest.raises(zipp.SchemaError) as e:
        vprag.personalize_batch(personas[0], ["a cat", {"prompt": "a dog", "task": "paint"}])
    assert e.value.location.field == "[1].task"
    with pytest.raises(zipp.SchemaError):
        vprag.personalize_batch(personas[0], ["a cat", 3])
    with pytest.raises(zipp.InvalidInputError):
        vprag.personalize_batch(personas[0], ["a cat", " "])
    with pytest.raises(TypeError):
        vprag.personalize_batch(personas[0], "a cat")  # type: ignore[arg-type]


def test_task_seed_and_budget_keywords(models, personas, personalizers):
    persona = personas[4]
    vprag = personalizers["vprag"]
    gen = vprag.personalize(persona, "a tent on a ridge")
    assert vprag.personalize(persona, "a tent on a ridge", task="edit", seed=3) == gen  # deterministic methods
    with pytest.raises(zipp.SchemaError) as e:
        vprag.personalize(persona, "a tent", task="paint")
    assert e.value.location.field == "task" and "paint" in e.value.message
    small = vprag.personalize(persona, "a tent on a ridge", token_budget=20)
    check_result(models, small, {"prompt": "a tent on a ridge"}, "vprag", budget=20)
    assert small.evidence.tokens <= 18 < gen.evidence.tokens
    assert zipp.Vprag(models, token_budget=20).personalize(persona, "a tent on a ridge") == small
    # A base prompt longer than the budget is kept whole, and the evidence says so.
    long_prompt = " and ".join(["a very long prompt about mountains"] * 8)
    out = vprag.personalize(persona, long_prompt, token_budget=10)
    assert out.prompt == long_prompt and out.evidence.notes and "over the budget" in out.evidence.notes[0]


def test_results_are_deterministic_and_readable(personas, personalizers):
    a = personalizers["combined"].personalize(personas[2], "a city street at night")
    b = personalizers["combined"].personalize(personas[2], "a city street at night")
    assert a == b and a is not b
    assert a != personalizers["vprag"].personalize(personas[2], "a city street at night")
    assert repr(a).startswith("Personalization(method='combined', prompt='a city street at night")
    assert repr(a.evidence).startswith(f"Evidence(posts={len(a.evidence.posts)}, elements=")
    post = a.evidence.posts[0]
    assert repr(post).startswith(f"EvidencePost(index={post.index}, score=")
    assert post == a.evidence.posts[0]
    with pytest.raises(AttributeError):
        post.caption = "x"  # type: ignore[misc]
    element = a.evidence.elements[0]
    assert element.category in personas[2].memory[element.post]["elements"]
    assert element.text in personas[2].memory[element.post]["elements"][element.category]
    category = a.evidence.categories[0]
    assert repr(category).startswith(f"EvidenceCategory(name={category.name!r}")


def test_edited_persona_gets_its_own_index(models, personas, personalizers):
    vprag = personalizers["vprag"]
    p = personas[0]
    p.index(models)
    before = vprag.personalize(p, "a neon sign in the rain")
    edited = p.add_post("A neon sign glowing in the rain", {"lighting": ["neon glow in rain"]})
    after = vprag.personalize(edited, "a neon sign in the rain")
    assert before != after
    assert after.evidence.posts[0].index == len(p.memory)  # the new post is the best match
    assert "neon glow in rain" in after.prompt


def test_native_benchmark_helper_runs_the_same_call(personas, personalizers):
    times = _zipp._bench_native(personalizers["identity"], personas[0], "a cat", 5)
    assert len(times) == 5 and all(isinstance(t, int) and t > 0 for t in times)
    with pytest.raises(zipp.InvalidInputError):
        _zipp._bench_native(personalizers["identity"], personas[0], " ", 1)


def test_the_zipp_rewriter_is_a_composer_spec(models, personas):
    """The ZIPP rewriter (SPEC §5) with the embedded SmolLM2, through the same JSON spec as
    Rust and C: whatever the small model answers, the base prompt's subjects survive, the
    CLIP budget holds, and the evidence says what happened."""
    spec = {
        "method": "pipeline",
        "name": "zipp",
        "retrievers": ["persona_facts"],
        "composer": {"kind": "zipp_rewrite", "strength": "light", "sampling": {"max_tokens": 24}},
    }
    p = zipp.Personalizer.from_spec(models, spec)
    assert p.name == "zipp" and p.spec["composer"]["kind"] == "zipp_rewrite"
    assert p.spec["composer"]["strength"] == "light" and p.spec["composer"]["sampling"]["max_tokens"] == 24
    out = p.personalize(personas[0], "a teal door in Lisbon", seed=3)
    rw = out.evidence.to_dict()["rewrite"]
    assert rw["model"].startswith("gguf:") and rw["strength"] == "light"
    assert rw["outcome"] in ("rewritten", "repaired", "fallback")
    assert rw["messages"][1] == {"role": "user", "content": "Prompt: a teal door in Lisbon"}
    assert "<persona>" in rw["messages"][0]["content"]
    assert all(word in out.prompt.lower() for word in ("teal", "door", "lisbon")), out.prompt
    assert models.count_tokens(out.prompt) <= 75
    # The same seed, the same result.
    assert p.personalize(personas[0], "a teal door in Lisbon", seed=3).prompt == out.prompt
    with pytest.raises(zipp.SchemaError, match="strenght"):
        zipp.Personalizer.from_spec(models, {"method": "pipeline", "composer": {"kind": "zipp_rewrite", "strenght": "x"}})
    with pytest.raises(zipp.InvalidInputError, match="max_words"):
        zipp.Personalizer.from_spec(models, {"method": "pipeline", "composer": {"kind": "zipp_rewrite", "max_words": 0}})
