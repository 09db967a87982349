"""Paired AUROC differences: point estimates equal sklearn's, identical models differ by exactly 0, and the
pairing makes the CI of a difference narrower than the per-model CIs when both models share most errors."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ecgscale.metrics.paired import paired_auroc_difference


def _data(seed: int = 0, n: int = 600, k: int = 3):
    rng = np.random.default_rng(seed)
    y = rng.random((n, k)) < 0.3
    shared = rng.normal(size=(n, k))
    a = y * 1.0 + shared
    b = y * 1.3 + shared + 0.3 * rng.normal(size=(n, k))  # better, and correlated with a
    return y, a, b


def test_point_estimates_are_sklearns_differences() -> None:
    y, a, b = _data()
    d = paired_auroc_difference(y, a, b, classes=["x", "y", "z"], n_resamples=200)
    want = [roc_auc_score(y[:, j], b[:, j]) - roc_auc_score(y[:, j], a[:, j]) for j in range(3)]
    np.testing.assert_allclose(d.per_class, want, atol=1e-12)
    assert d.macro == pytest.approx(np.mean(want), abs=1e-12)
    assert d.to_dict()["per_class"]["y"]["diff"] == pytest.approx(want[1])


def test_identical_models_differ_by_exactly_zero() -> None:
    y, a, _ = _data(1)
    d = paired_auroc_difference(y, a, a.copy(), n_resamples=100)
    assert d.macro == 0.0 and d.macro_ci == (0.0, 0.0)
    assert np.all(d.per_class_ci == 0.0)


def test_pairing_narrows_the_interval_and_covers_the_estimate() -> None:
    y, a, b = _data(2)
    d = paired_auroc_difference(y, a, b, n_resamples=500, seed=3)
    lo, hi = d.macro_ci
    assert lo < d.macro < hi and lo > 0  # b really is better, and the paired CI can tell
    # the unpaired view: each model's own bootstrap spread of macro AUROC
    rng = np.random.default_rng(3)
    spreads = []
    for p in (a, b):
        reps = []
        for _ in range(100):
            idx = rng.integers(0, len(y), len(y))
            reps.append(np.mean([roc_auc_score(y[idx, j], p[idx, j]) for j in range(y.shape[1])]))
        spreads.append(np.percentile(reps, 97.5) - np.percentile(reps, 2.5))
    assert hi - lo < 0.6 * min(spreads)


def test_a_class_without_positives_is_left_out_of_the_macro_mean() -> None:
    y, a, b = _data(4)
    y[:, 2] = False
    d = paired_auroc_difference(y, a, b, n_resamples=50)
    assert np.isnan(d.per_class[2])
    assert d.macro == pytest.approx(np.mean(d.per_class[:2]))


def test_bad_shapes_are_refused() -> None:
    y, a, b = _data()
    with pytest.raises(ValueError, match="same"):
        paired_auroc_difference(y, a, b[:, :2])
    with pytest.raises(ValueError, match="class names"):
        paired_auroc_difference(y, a, b, classes=["x"])
