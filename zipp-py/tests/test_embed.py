"""The embedder through numpy, CLIP token counts, and the GIL released while zipp computes."""

import threading

import numpy as np
import pytest

import zipp_persona as zipp
from zipp_persona import _zipp


def test_embeddings_are_unit_float32_rows(models):
    texts = ["a cat on a sofa", "a kitten sleeping on a couch", "quarterly stock market report", "a cat on a sofa"]
    e = models.embed(texts)
    assert isinstance(e, np.ndarray) and e.dtype == np.float32 and e.shape == (4, models.dim) == (4, 384)
    assert e.flags["C_CONTIGUOUS"] and e.flags["WRITEABLE"]
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    cos = e @ e.T
    assert abs(cos[0, 0] - 1.0) < 1e-5
    np.testing.assert_array_equal(e[0], e[3])  # the same text in one batch: the same row
    assert cos[0, 1] > 0.6 > 0.2 > cos[0, 2]  # the model actually means something
    # One text alone agrees with it inside a batch (to float rounding).
    np.testing.assert_allclose(models.embed(["a kitten sleeping on a couch"])[0], e[1], atol=1e-5)
    assert models.embed([]).shape == (0, 384)
    assert models.embed(("a tuple", "of texts")).shape == (2, 384)


def test_embedder_identity_and_token_counts(models):
    assert models.embedder_id.startswith("minilm:h384l6:max256:")
    assert models.loaded == {"clip_bpe": True, "minilm": True, "smollm2": True}
    assert "loaded={'clip_bpe': True, 'minilm': True, 'smollm2': True}" in repr(models)
    assert models.context_length == 77
    # open_clip: "a photo of a cat" is 5 BPE tokens between the start/end markers.
    assert models.count_tokens("a photo of a cat") == 5
    assert models.count_tokens("") == 0


def test_minilm_options_take_effect(model_files):
    short = zipp.Models(model_files, max_tokens=8, batch_size=1)
    long_text = "a very long sentence about a red bicycle leaning against a wall in the rain at night"
    full = zipp.Models(model_files).embed([long_text])
    cut = short.embed([long_text])
    assert short.embedder_id.startswith("minilm:h384l6:max8:")
    assert not np.allclose(full, cut, atol=1e-3)
    # Options are checked when the object is made, before any model loads.
    with pytest.raises(zipp.InvalidInputError):
        zipp.Models("/nonexistent/zipp-models", batch_size=0)


def python_ran_inside_zipp(call):
    """Whether another Python thread ran while `call` was inside zipp, which it can only do
    if the call released the GIL. No clock: the watcher spins on zipp's count of calls in
    progress, non-zero only while a call is inside zipp."""
    assert _zipp._active_calls() == 0
    seen, finished = threading.Event(), threading.Event()

    def watch():
        while not finished.is_set():
            if _zipp._active_calls() > 0:
                seen.set()
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        call()
    finally:
        finished.set()
        watcher.join()
    return seen.is_set()


def test_embedding_releases_the_gil(models):
    texts = [f"sentence number {i} about a red bicycle leaning against a wall in the rain" for i in range(64)]
    assert python_ran_inside_zipp(lambda: models.embed(texts)), "no Python thread ran during the call: GIL held"


def test_batch_personalize_releases_the_gil(models, personas):
    vprag = zipp.Vprag(models)
    prompts = [f"prompt {i}: a portrait in a park at dusk with a bicycle" for i in range(64)]
    call = lambda: vprag.personalize_batch(personas[2], prompts)  # noqa: E731
    assert python_ran_inside_zipp(call), "no Python thread ran during the call: GIL held"
