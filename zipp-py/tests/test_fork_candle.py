"""candle's generic BERT path (`Models(force_candle=True)`) in a forked child after the parent
used it. candle's own thread pools do not survive a fork; zipp runs all candle CPU work in its
per-process pool (zipp_core::runtime::compute), so the child computes instead of hanging. The
parent waits with a timeout, so a hang fails the test instead of hanging it."""

import multiprocessing

import numpy as np
import pytest

import zipp_persona as zipp

TIMEOUT = 120

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


def test_forked_child_runs_the_candle_path_after_the_parent(candle_models):
    parent = candle_models.embed(TEXTS)
    assert parent.shape == (len(TEXTS), candle_models.dim)

    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=child_embeds, args=(send, candle_models), daemon=True)
    proc.start()
    send.close()
    try:
        if not recv.poll(TIMEOUT):
            pytest.fail(f"the forked child answered nothing within {TIMEOUT}s: it hangs on a pool of its parent")
        status, payload = recv.recv()
    finally:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()
    assert status == "ok", payload
    assert proc.exitcode == 0
    np.testing.assert_array_equal(payload, parent)
    # The child's result is the candle path's, not an accident of the packed encoder.
    packed = zipp.Models().embed(TEXTS)
    assert np.abs(packed - parent).max() < 1e-5
