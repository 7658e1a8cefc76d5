"""candle's generic BERT path (`Models(force_candle=True)`) in a forked child after the parent
used it. candle's own thread pools do not survive a fork; zipp runs all candle CPU work in its
per-process pool (zipp_core::runtime::compute), so the child computes instead of hanging. The
parent waits with a timeout, so a hang fails the test instead of hanging it."""

import numpy as np
import pytest

import zipp_persona as zipp

# Short texts, and long ones: their FFN activations (texts x tokens x 1536) pass 64 Ki
# elements, the size from which candle 0.11 runs element-wise ops on its barrier pool.
TEXTS = ["a lighthouse in fog", "two cats asleep on a red sofa"] + [
    f"{i} " + "a long walk along the harbour wall at dawn, gulls and fishing boats; " * 12 for i in range(4)
]


@pytest.fixture(scope="module")
def candle_models() -> zipp.Models:
    return zipp.Models(force_candle=True)


def child_embeds(conn, models):
    try:
        conn.send(("ok", models.embed(TEXTS)))
    except BaseException as e:  # report anything, never hang the parent
        conn.send(("error", repr(e)))
    finally:
        conn.close()


def test_forked_child_runs_the_candle_path_after_the_parent(candle_models, run_in_fork):
    parent = candle_models.embed(TEXTS)
    assert parent.shape == (len(TEXTS), candle_models.dim)

    payload = run_in_fork(child_embeds, candle_models)
    np.testing.assert_array_equal(payload, parent)
    # The child's result is the candle path's, not an accident of the packed encoder.
    packed = zipp.Models().embed(TEXTS)
    assert np.abs(packed - parent).max() < 1e-5
