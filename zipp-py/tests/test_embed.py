"""The embedder through numpy, CLIP token counts, and the GIL released while zipp computes."""

import threading
import time

import numpy as np
import pytest

import zipp_persona as zipp


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
    assert models.loaded == {"clip_bpe": True, "minilm": True}
    assert "loaded={'clip_bpe': True, 'minilm': True}" in repr(models)
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
    with pytest.raises(zipp.InvalidInputError):
        zipp.Models(model_files, batch_size=0).load_all()


class Ticker:
    """A Python thread that records when it runs; it can only run while no other thread
    holds the GIL."""

    def __init__(self):
        self.stamps = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            self.stamps.append(time.perf_counter())
            time.sleep(0.0005)

    def ticks_between(self, t0, t1):
        return [t for t in self.stamps if t0 < t < t1]


def long_call_with_ticker(call):
    ticker = Ticker()
    ticker.thread.start()
    time.sleep(0.05)
    t0 = time.perf_counter()
    call()
    t1 = time.perf_counter()
    ticker.stop.set()
    ticker.thread.join()
    return t1 - t0, ticker.ticks_between(t0, t1)


def test_embedding_releases_the_gil(models):
    texts = [f"sentence number {i} about a red bicycle leaning against a wall in the rain" for i in range(400)]
    took, ticks = long_call_with_ticker(lambda: models.embed(texts))
    assert took > 0.2, f"the batch took only {took:.3f}s: too short to tell"
    # Held GIL: no tick at all during the call. Released: the ticker keeps its ~1 ms pace.
    assert len(ticks) > took / 0.01, f"{len(ticks)} ticks in {took:.3f}s"


def test_batch_personalize_releases_the_gil(models, personas):
    vprag = zipp.Vprag(models)
    prompts = [f"prompt {i}: a portrait in a park at dusk with a bicycle" for i in range(300)]
    took, ticks = long_call_with_ticker(lambda: vprag.personalize_batch(personas[2], prompts))
    assert took > 0.2, f"the batch took only {took:.3f}s: too short to tell"
    assert len(ticks) > took / 0.01, f"{len(ticks)} ticks in {took:.3f}s"
