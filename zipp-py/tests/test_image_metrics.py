"""The image metrics over embeddings (zipp-eval's image_metrics; their numpy cross-check is
zipp-eval/tests/image_metrics.rs): analytic cases and typed errors through the binding."""

import math

import pytest

import zipp_persona as zipp


def test_clip_scores_in_both_conventions():
    assert zipp.clip_score([1.0, 0.0], [2.0, 0.0]) == pytest.approx(2.5)
    assert zipp.clip_score([1.0, 0.0], [2.0, 0.0], scale100=True) == pytest.approx(100.0)
    assert zipp.clip_score([1.0, 0.0], [-1.0, 0.0]) == 0.0  # negative cosine clipped
    assert zipp.clip_score([1.0, 1.0], [1.0, 0.0]) == pytest.approx(2.5 / math.sqrt(2))
    assert zipp.personalization_clip_score([1.0, 0.0], [[1.0, 0.0], [0.0, 1.0]]) == pytest.approx(0.5)
    with pytest.raises(zipp.InvalidInputError):
        zipp.clip_score([0.0, 0.0], [1.0, 0.0])
    with pytest.raises(zipp.InvalidInputError):
        zipp.clip_score([1.0], [1.0, 0.0])


def test_cmmd_is_zero_for_one_set_and_grows_with_shift():
    x = [[1.0, 0.0, 0.2], [0.9, 0.1, 0.0], [1.0, 0.3, 0.1]]
    near = [[1.0, 0.05, 0.2], [0.9, 0.1, 0.05]]
    far = [[0.0, 1.0, 0.0], [0.1, 0.0, 1.0]]
    assert zipp.cmmd(x, x) == 0.0
    assert 0.0 < zipp.cmmd(x, near) < zipp.cmmd(x, far)
    with pytest.raises(zipp.InvalidInputError):
        zipp.cmmd([], x)


def test_raking_matches_the_target_marginals():
    out = zipp.rake([10.0, 30.0, 20.0, 40.0], [2, 2], [[0.5, 0.5], [0.3, 0.7]], values=[1.0, 2.0, 3.0, 4.0])
    w = out["weights"]
    assert out["converged"] and out["max_relative_error"] < 1e-5
    total = 100.0
    assert w[0] + w[1] == pytest.approx(0.5 * total, rel=1e-5) and w[0] + w[2] == pytest.approx(0.3 * total, rel=1e-5)
    assert out["raw"] == pytest.approx((10 + 60 + 60 + 160) / 100)
    assert out["delta_pct"] == pytest.approx(100 * (out["ipf"] - out["raw"]) / out["raw"])
    with pytest.raises(zipp.InvalidInputError, match="no sample"):
        zipp.rake([0.0, 5.0], [2], [[0.5, 0.5]])
