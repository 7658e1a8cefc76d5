"""Language models from Python: the same JSON specs as Rust and C, streaming as an iterator
or a callback on the calling thread, cancellation (a callback returning False, Ctrl-C, a
dropped iterator), the GIL released while generating."""

import _thread
import threading
import time

import pytest

import zipp_persona as zipp


def scripted(*replies):
    return zipp.LanguageModel({"scripted": {"replies": list(replies)}})


def test_a_scripted_model_streams_through_the_callback_on_this_thread():
    lm = scripted("a bright red kite over the dunes")
    seen, threads = [], set()

    def on_text(piece):
        seen.append(piece)
        threads.add(threading.get_ident())

    out = lm.generate([{"role": "user", "content": "a kite"}], on_text=on_text)
    assert out == {
        "text": "a bright red kite over the dunes",
        "finish": "end_of_turn",
        "prompt_tokens": out["prompt_tokens"],
        "completion_tokens": out["completion_tokens"],
    }
    assert len(seen) > 1 and "".join(seen) == out["text"]
    assert threads == {threading.get_ident()}
    assert lm.id.startswith("scripted")


def test_the_iterator_yields_the_pieces_and_keeps_the_result():
    s = scripted("one two three").stream("count")
    assert s.result is None
    pieces = list(s)
    assert "".join(pieces) == "one two three"
    assert s.result["finish"] == "end_of_turn" and s.result["text"] == "one two three"
    assert list(s) == []


def test_bad_specs_messages_and_sampling_are_typed_errors():
    with pytest.raises(zipp.SchemaError):
        zipp.LanguageModel("gpt9")
    with pytest.raises(zipp.SchemaError):
        zipp.LanguageModel({"gguf": {"path": "m.gguf", "extra": 1}})
    with pytest.raises(zipp.InvalidInputError, match="path"):
        zipp.LanguageModel({"gguf": {"path": ""}})
    with pytest.raises(zipp.ModelNotFoundError):
        zipp.LanguageModel({"gguf": {"path": "/nonexistent/model.gguf"}})
    lm = scripted("x")
    with pytest.raises(zipp.InvalidInputError):
        lm.generate([])
    with pytest.raises(zipp.SchemaError):
        lm.generate([{"role": "robot", "content": "hi"}])
    with pytest.raises(zipp.SchemaError, match="temprature"):
        lm.generate("hi", {"temprature": 1.0})
    with pytest.raises(zipp.InvalidInputError, match="top_k"):
        lm.generate("hi", {"top_k": 0})
    with pytest.raises(TypeError):
        lm.generate("hi", {"seed": object()})


@pytest.fixture(scope="module")
def smollm2(models):
    return zipp.LanguageModel("smollm2", models=models)


def test_smollm2_generates_reproducibly_and_a_false_callback_stops_it(smollm2):
    msgs = [{"role": "user", "content": "Describe a lighthouse in one sentence."}]
    sampling = {"temperature": 0.8, "top_p": 0.9, "seed": 7, "max_tokens": 12}
    a, b = smollm2.generate(msgs, sampling), smollm2.generate(msgs, sampling)
    assert a == b and a["completion_tokens"] <= 12 and a["text"]
    assert "".join(smollm2.stream(msgs, sampling)) == a["text"]
    seen = []
    stopped = smollm2.generate(msgs, {"max_tokens": 64}, on_text=lambda p: seen.append(p) or False)
    assert stopped["finish"] == "cancelled" and stopped["text"] == "".join(seen)
    assert stopped["completion_tokens"] < 64
    assert smollm2.id.startswith("gguf:")


def test_a_callback_error_propagates_after_cancelling(smollm2):
    def boom(piece):
        raise ValueError("from the callback")

    with pytest.raises(ValueError, match="from the callback"):
        smollm2.generate("Say hello.", {"max_tokens": 64}, on_text=boom)


def test_ctrl_c_interrupts_a_generation(smollm2):
    """KeyboardInterrupt (what Ctrl-C raises) reaches a generation waiting in zipp: it is
    cancelled and the interrupt propagates, long before max_tokens."""
    timer = threading.Timer(0.3, _thread.interrupt_main)
    t = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        smollm2.generate("Write a very long story about the sea.", {"max_tokens": 2000, "stop": []})
    assert time.monotonic() - t < 10
    timer.cancel()


def test_other_threads_run_while_a_generation_waits(smollm2):
    """The GIL is released while the model computes: a Python thread keeps counting."""
    counter = {"n": 0}
    done = threading.Event()

    def count():
        while not done.is_set():
            counter["n"] += 1

    th = threading.Thread(target=count)
    th.start()
    try:
        smollm2.generate("Name three colours.", {"max_tokens": 16})
    finally:
        done.set()
        th.join()
    assert counter["n"] > 1000


def test_a_stream_can_be_cancelled_from_another_thread(smollm2):
    s = smollm2.stream("Write a long story about a forest.", {"max_tokens": 400})
    first = next(s)
    threading.Timer(0.05, s.cancel).start()
    rest = list(s)
    assert s.result["finish"] == "cancelled"
    assert s.result["text"] == first + "".join(rest)
    assert s.result["completion_tokens"] < 400


def test_vocabulary_extraction_with_negation_and_the_both_lists_rule():
    x = zipp.Extractor()
    out = x.extract(["I love the neon colours", "I can't stand the lens flare, but the pastel tones are lovely"])
    assert out["preferences"]["liked"] == ["neon colours", "pastel tones"]
    assert out["preferences"]["disliked"] == ["lens flare"]
    both = x.extract(["I love the neon colours", "I hate the neon colours"])
    assert both["preferences"].get("liked", []) == [] and both["preferences"].get("disliked", []) == []
    assert "neon colours" in both["evidence"]["removed"]
    with pytest.raises(zipp.InvalidInputError):
        x.extract([])
    with pytest.raises(zipp.InvalidInputError):
        x.extract(["   "])
    with pytest.raises(TypeError):
        x.extract("a single string is not a list of comments")
    with pytest.raises(zipp.SchemaError):
        zipp.Extractor("vocab")


def test_llm_extraction_validates_the_models_answer():
    answers = ['{"liked": ["teal"]}', '{"liked": ["teal"], "disliked": []}']
    x = zipp.Extractor({"llm": {"model": {"scripted": {"replies": answers}}}})
    out = x.extract(["the teal is lovely"])
    assert out["preferences"]["liked"] == ["teal"]
    assert len(out["evidence"]["transcript"]["answers"]) == 2


def test_the_template_verbalizer_states_no_demographic_the_evidence_lacks():
    evidence = {
        "user": "u1",
        "items": [
            {"kind": "community", "name": "r/analog", "weight": 3.0, "snippets": ["grainy film portraits at dusk"]},
            {"kind": "community", "name": "r/lisbon", "weight": 1.0, "snippets": ["teal doors and yellow trams"]},
        ],
    }
    persona, ev = zipp.Verbalizer().verbalize(evidence)
    assert isinstance(persona, zipp.Persona)
    assert "r/analog" in persona.summary
    for word in ("woman", "man", "old", "young", "female", "male"):
        assert f" {word} " not in f" {persona.summary.lower()} "
    assert ev["method"] == "template"
    with pytest.raises(zipp.InvalidInputError):
        zipp.Verbalizer().verbalize({"user": "u1", "items": []})


def test_an_unreachable_openai_server_is_a_remote_error_and_https_is_refused():
    """The OpenAI-compatible backend through the same spec as Rust and C (its behaviour
    against real and misbehaving servers is tested in zipp-lm/tests/openai_*.rs)."""
    lm = zipp.LanguageModel(
        {"openai": {"base_url": "http://127.0.0.1:9/v1", "model": "m", "max_retries": 0, "connect_timeout_ms": 500}}
    )
    assert lm.id.startswith("openai:")
    with pytest.raises(zipp.RemoteError) as e:
        lm.generate("hi")
    assert e.value.kind == "remote"
    with pytest.raises(zipp.InvalidInputError, match="https"):
        zipp.LanguageModel({"openai": {"base_url": "https://api.example.com/v1", "model": "m"}})
