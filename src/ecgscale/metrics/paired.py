"""Paired comparison of two models scored on the same records: the AUROC difference with a bootstrap CI.

Why paired: two runs evaluated on one test fold share its records, so most of each run's sampling error is the
same draw of records. Resampling the records once per bootstrap replicate and scoring both models on it gives
the CI of the *difference*, much narrower than two overlapping per-model CIs suggest — the honest way to say
whether dropping leads, a kernel size or GAP changed anything when only one seed per arm was affordable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ecgscale.metrics.classification import _nanmean_rows, _percentile_ci, _RankedScores, bootstrap_counts

__all__ = ["PairedDifference", "paired_auroc_difference"]


@dataclass(frozen=True, slots=True)
class PairedDifference:
    """``b − a`` per class and for the macro mean over the classes both define, with 95% percentile CIs.

    ``per_class``/``per_class_ci``: ``(K,)`` and ``(2, K)``; NaN for a class without positives or negatives.
    """

    classes: tuple[str, ...]
    macro: float
    macro_ci: tuple[float, float]
    per_class: np.ndarray
    per_class_ci: np.ndarray
    n_records: int
    n_resamples: int

    def to_dict(self) -> dict[str, object]:
        return {
            "macro_auroc_diff": self.macro,
            "macro_auroc_diff_ci": list(self.macro_ci),
            "per_class": {
                c: {"diff": float(d), "ci": [float(lo), float(hi)]}
                for c, d, lo, hi in zip(
                    self.classes, self.per_class, self.per_class_ci[0], self.per_class_ci[1], strict=True
                )
            },
            "n_records": self.n_records,
            "n_resamples": self.n_resamples,
        }


def paired_auroc_difference(
    y_true: np.ndarray,
    prob_a: np.ndarray,
    prob_b: np.ndarray,
    *,
    classes: Sequence[str] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> PairedDifference:
    """AUROC of ``prob_b`` minus AUROC of ``prob_a`` on the same ``(N, K)`` labels, per class and macro-averaged.

    Each bootstrap replicate draws the N records with replacement once and scores both models on that draw.
    """
    y = np.asarray(y_true).astype(bool)
    a = np.asarray(prob_a, dtype=np.float64)
    b = np.asarray(prob_b, dtype=np.float64)
    if y.ndim != 2 or a.shape != y.shape or b.shape != y.shape:
        raise ValueError(f"labels {y.shape}, prob_a {a.shape} and prob_b {b.shape} must be the same (N, K) shape")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    n, k = y.shape
    names = tuple(classes) if classes is not None else tuple(str(i) for i in range(k))
    if len(names) != k:
        raise ValueError(f"{len(names)} class names for {k} classes")
    weights = np.vstack([np.ones((1, n)), bootstrap_counts(n, n_resamples, np.random.default_rng(seed))])
    weights = weights.astype(np.float64)
    diffs = np.empty((n_resamples + 1, k))
    for j in range(k):
        auc_a, _ = _RankedScores.build(y[:, j], a[:, j]).score(weights)
        auc_b, _ = _RankedScores.build(y[:, j], b[:, j]).score(weights)
        diffs[:, j] = auc_b - auc_a
    macro = _nanmean_rows(diffs)  # row 0: the data as they are; rows 1..: the bootstrap replicates
    macro_ci = _percentile_ci(macro[1:])
    return PairedDifference(
        classes=names,
        macro=float(macro[0]),
        macro_ci=(float(macro_ci[0]), float(macro_ci[1])),
        per_class=diffs[0],
        per_class_ci=_percentile_ci(diffs[1:]),
        n_records=n,
        n_resamples=n_resamples,
    )
