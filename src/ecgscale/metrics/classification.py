"""Multi-label classification metrics as ECG papers report them, with bootstrap intervals that take seconds.

Point estimates equal scikit-learn's (``roc_auc_score``, ``average_precision_score``) to rounding (1e-12, tested),
so a number here is the number a reviewer gets from the same predictions. Neither they nor the bootstrap call
sklearn per class: AUROC/AP follow from cumulative sums over records sorted once per class
(:func:`weighted_auroc_ap`; a bootstrap resample is a vector of integer record multiplicities). sklearn's input
validation cost ~4 ms per call, 0.15 s per 26-class ``compute_metrics``: a third of a small sweep trial, paid
at every epoch's validation and again in the test evaluation. 1,000 resamples of 10,000 × 26 take seconds.

Undefined values, by design never an exception:

* a class with no positive or no negative record has no AUROC (NaN); with no positive record it has no AUPRC
  (NaN; sklearn would return 0.0) — such classes are left out of macro means and counted in
  ``n_classes_scored`` / listed in ``classes_undefined``;
* F1/F-beta of a class is NaN when it has neither positives nor predicted positives (0/0, as the challenge's
  F-measure) and is left out of the macro mean;
* a bootstrap resample in which a class becomes undefined leaves that class out of that resample's macro mean.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ecgscale.data.labels import LabelSpace, cinc2021_weights

from .challenge import challenge_record_scores, resolve_challenge_classes

__all__ = [
    "bootstrap_counts",
    "compute_metrics",
    "fbeta_per_class",
    "metrics_to_jsonable",
    "resolve_thresholds",
    "tune_thresholds",
    "weighted_auroc_ap",
]

log = logging.getLogger(__name__)

_CI_LEVEL = 0.95
# Elements (resamples × records) processed at once by the bootstrap: bounds memory to ~100 MB of float64 temps.
_BOOTSTRAP_BLOCK = 4_000_000


# --------------------------------------------------------------------------------------------------------------
# Input checks


def _check_inputs(y_true: np.ndarray, y_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    yt = np.asarray(y_true)
    yp = np.asarray(y_prob, dtype=np.float64)
    if yt.ndim != 2:
        raise ValueError(f"y_true must be 2-D (records, classes), got shape {yt.shape}")
    if yp.shape != yt.shape:
        raise ValueError(f"y_prob has shape {yp.shape} but y_true has shape {yt.shape}; they must match")
    if yt.shape[0] == 0 or yt.shape[1] == 0:
        raise ValueError(f"y_true has shape {yt.shape}; need at least one record and one class")
    if yt.dtype != np.bool_:
        ok = np.isin(yt, (0, 1))
        if not ok.all():
            raise ValueError(f"y_true must hold only 0/1, found {yt[~ok].ravel()[0]!r}")
    if not np.isfinite(yp).all():
        raise ValueError("y_prob contains NaN or infinite values")
    return yt.astype(bool), yp


def resolve_thresholds(thresholds: float | Sequence[float] | np.ndarray | None, n_classes: int) -> np.ndarray:
    """Per-class thresholds from ``None`` (0.5 each), one number, or ``n_classes`` numbers."""
    if thresholds is None:
        return np.full(n_classes, 0.5)
    th = np.asarray(thresholds, dtype=np.float64)
    if th.ndim == 0:
        th = np.full(n_classes, float(th))
    if th.shape != (n_classes,):
        raise ValueError(f"thresholds must be a number or {n_classes} numbers, got shape {th.shape}")
    if not np.isfinite(th).all():
        raise ValueError("thresholds contains NaN or infinite values")
    return th


# --------------------------------------------------------------------------------------------------------------
# Building blocks


def fbeta_per_class(y_true: np.ndarray, y_pred: np.ndarray, beta: float = 1.0) -> np.ndarray:
    """F-beta of every class; NaN where a class has neither positives nor predicted positives."""
    yt = np.asarray(y_true, dtype=bool)
    yp = np.asarray(y_pred, dtype=bool)
    tp = np.count_nonzero(yt & yp, axis=0).astype(np.float64)
    fp = np.count_nonzero(~yt & yp, axis=0).astype(np.float64)
    fn = np.count_nonzero(yt & ~yp, axis=0).astype(np.float64)
    return _fbeta(tp, fp, fn, beta)


def _fbeta(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, beta: float) -> np.ndarray:
    b2 = beta * beta
    num = (1.0 + b2) * tp
    denom = num + b2 * fn + fp
    out = np.full(np.broadcast(tp, fp, fn).shape, np.nan)
    np.divide(num, denom, out=out, where=denom > 0)
    return out


def bootstrap_counts(n_records: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_resamples, n_records)`` multiplicities of records drawn with replacement (one row per resample)."""
    idx = rng.integers(0, n_records, size=(n_resamples, n_records))
    idx += np.arange(n_resamples)[:, None] * n_records
    return np.bincount(idx.ravel(), minlength=n_resamples * n_records).reshape(n_resamples, n_records)


@dataclass(frozen=True, slots=True)
class _RankedScores:
    """One score vector sorted once, so that any weighting of its records is scored with cumulative sums."""

    pos_records: np.ndarray  # record index of each positive, positives sorted by ascending score
    neg_records: np.ndarray  # record index of each negative, sorted by ascending score
    neg_below: np.ndarray  # per positive: negatives with a strictly lower score
    neg_upto: np.ndarray  # per positive: negatives with a lower or equal score
    pos_below: np.ndarray  # per positive: positives with a strictly lower score

    @classmethod
    def build(cls, y: np.ndarray, s: np.ndarray, record_of: np.ndarray | None = None) -> _RankedScores:
        y = np.asarray(y, dtype=bool)
        s = np.asarray(s, dtype=np.float64)
        pos = np.flatnonzero(y)
        neg = np.flatnonzero(~y)
        pos = pos[np.argsort(s[pos], kind="stable")]
        neg = neg[np.argsort(s[neg], kind="stable")]
        s_pos, s_neg = s[pos], s[neg]
        return cls(
            pos_records=pos if record_of is None else record_of[pos],
            neg_records=neg if record_of is None else record_of[neg],
            neg_below=np.searchsorted(s_neg, s_pos, side="left"),
            neg_upto=np.searchsorted(s_neg, s_pos, side="right"),
            pos_below=np.searchsorted(s_pos, s_pos, side="left"),
        )

    def score(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """AUROC and AP for each row of ``weights`` ``(B, n_records)``; NaN where undefined."""
        b = weights.shape[0]
        weights = np.asarray(weights, dtype=np.float64)  # no copy when the caller already passes float64
        wp = weights[:, self.pos_records]
        wn = weights[:, self.neg_records]
        cn = np.zeros((b, wn.shape[1] + 1))
        np.cumsum(wn, axis=1, out=cn[:, 1:])
        cp = np.zeros((b, wp.shape[1] + 1))
        np.cumsum(wp, axis=1, out=cp[:, 1:])
        n_pos = cp[:, -1]
        n_neg = cn[:, -1]
        # AUROC = P(score_pos > score_neg) + ½ P(tie): each positive counts the negative weight below it.
        below = cn[:, self.neg_below]
        upto = cn[:, self.neg_upto]
        pairs = np.einsum("bi,bi->b", wp, below + upto) * 0.5
        auroc = np.full(b, np.nan)
        denom = n_pos * n_neg
        np.divide(pairs, denom, out=auroc, where=denom > 0)
        # AP = Σ_positives w · precision at the positive's score (ties share one threshold, as sklearn/official).
        tp = n_pos[:, None] - cp[:, self.pos_below]
        fp = n_neg[:, None] - below
        prec = np.zeros_like(tp)
        np.divide(tp, tp + fp, out=prec, where=(tp + fp) > 0)
        ap = np.full(b, np.nan)
        np.divide(np.einsum("bi,bi->b", wp, prec), n_pos, out=ap, where=n_pos > 0)
        return auroc, ap


def weighted_auroc_ap(y: np.ndarray, s: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUROC and average precision of one class under each row of integer record ``weights`` ``(B, N)``.

    Row ``b`` gives the same numbers as ``roc_auc_score(y[idx], s[idx])`` and ``average_precision_score(y[idx],
    s[idx])`` where ``idx`` repeats record ``i`` ``weights[b, i]`` times, without building ``idx``: one sort, then
    cumulative sums. Undefined values (no positive or no negative weight) are NaN.
    """
    w = np.atleast_2d(np.asarray(weights))
    if w.shape[1] != len(y):
        raise ValueError(f"weights has {w.shape[1]} columns but there are {len(y)} records")
    return _RankedScores.build(y, s).score(w)


def _auroc_ap(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    """AUROC (NaN without a positive or a negative) and AP (NaN without a positive) of one score vector."""
    auroc, ap = _RankedScores.build(y, s).score(np.ones((1, len(y))))
    return float(auroc[0]), float(ap[0])


def _nanmean_rows(x: np.ndarray) -> np.ndarray:
    """Mean over the last axis ignoring NaN; NaN (without a warning) where a row has no finite value."""
    finite = np.isfinite(x)
    count = finite.sum(axis=-1)
    total = np.where(finite, x, 0.0).sum(axis=-1)
    out = np.full(count.shape, np.nan)
    np.divide(total, count, out=out, where=count > 0)
    return out


def _percentile_ci(samples: np.ndarray) -> np.ndarray:
    """2.5th and 97.5th percentiles along axis 0, ignoring NaN resamples; NaN when none is finite."""
    lo_q, hi_q = 50 * (1 - _CI_LEVEL), 50 * (1 + _CI_LEVEL)
    samples = np.asarray(samples, dtype=np.float64)
    out = np.full((2, *samples.shape[1:]), np.nan)
    finite = np.isfinite(samples).any(axis=0)
    if np.any(finite):
        out[:, finite] = np.nanpercentile(samples[:, finite], [lo_q, hi_q], axis=0)
    return out


# --------------------------------------------------------------------------------------------------------------
# Thresholds


def tune_thresholds(y_true: np.ndarray, y_prob: np.ndarray, *, beta: float = 1.0) -> np.ndarray:
    """Per-class decision thresholds that maximise F-beta on the given records.

    Tune on the VALIDATION split only and apply the result to the test split (the trainer does this); thresholds
    tuned on the test records inflate every F number reported with them. For each class every distinct score is
    a candidate (predict positive when ``prob >= t``); the winner is moved halfway down to the next lower score so
    that it does not sit on a training value. A class without positive records keeps 0.5.
    """
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    yt, yp = _check_inputs(y_true, y_prob)
    n, k = yt.shape
    b2 = beta * beta
    out = np.full(k, 0.5)
    for j in range(k):  # one vectorised pass per class
        y = yt[:, j]
        n_pos = int(y.sum())
        if n_pos == 0:
            continue
        order = np.argsort(-yp[:, j], kind="stable")
        s = yp[order, j]
        tp = np.cumsum(y[order], dtype=np.float64)
        fp = np.arange(1, n + 1, dtype=np.float64) - tp
        last = np.empty(n, dtype=bool)
        last[:-1] = s[1:] != s[:-1]
        last[-1] = True
        cand = np.flatnonzero(last)  # predicting "score >= s[i]" for the last record i of each tie group
        f = (1 + b2) * tp[cand] / (b2 * n_pos + tp[cand] + fp[cand])
        best = cand[int(np.argmax(f))]
        t = s[best]
        if best + 1 < n:
            mid = 0.5 * (t + s[best + 1])
            if s[best + 1] < mid < t:
                t = mid
        out[j] = t
    return out


# --------------------------------------------------------------------------------------------------------------
# compute_metrics


def _is_challenge_space(label_space: LabelSpace | None) -> bool:
    if label_space is None:
        return False
    official = set(cinc2021_weights()[0])
    return official.issubset(set(label_space.keys))


def compute_metrics(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    *,
    thresholds: float | Sequence[float] | np.ndarray | None = None,
    label_space: LabelSpace | None = None,
    n_bootstrap: int = 0,
    seed: int = 0,
    beta: float = 2.0,
) -> dict:
    """Every number a results table needs, from labels ``(N, K)`` in {0, 1} and scores ``(N, K)``.

    Returns a dict with ``n_records``, ``n_classes``, ``n_classes_scored`` (classes with a defined AUROC),
    ``classes_undefined``, ``macro_auroc``, ``micro_auroc``, ``macro_auprc``, ``macro_f1``, ``macro_fbeta``
    (with ``beta``), ``challenge_metric`` (when ``label_space`` holds the 26 CinC 2021 scored classes; else
    ``None``), ``thresholds``, ``per_label`` (one dict per class: key, abbreviation, group, support, auroc, auprc,
    f1, fbeta, threshold), ``per_group`` (means over ``label_space.groups``) and, when ``n_bootstrap > 0``,
    percentile 95% intervals: ``ci`` (``{metric: [low, high]}``) plus ``auroc_ci``/``auprc_ci``/``f1_ci`` in each
    per-label and per-group entry. Predictions are ``y_prob >= threshold`` (0.5 unless given). Undefined values
    are NaN (see the module docstring); :func:`metrics_to_jsonable` turns them into ``None``.
    """
    yt, yp = _check_inputs(y_true, y_prob)
    n, k = yt.shape
    if label_space is not None and len(label_space) != k:
        raise ValueError(f"label_space {label_space.name!r} has {len(label_space)} classes but y_true has {k} columns")
    if n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be >= 0, got {n_bootstrap}")
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    th = resolve_thresholds(thresholds, k)
    pred = yp >= th[None, :]

    support = yt.sum(axis=0)
    auroc, auprc = np.array([_auroc_ap(yt[:, j], yp[:, j]) for j in range(k)], dtype=np.float64).reshape(k, 2).T
    f1 = fbeta_per_class(yt, pred, 1.0)
    fb = fbeta_per_class(yt, pred, beta)
    flat_y = yt.ravel()
    micro_auroc = _auroc_ap(flat_y, yp.ravel())[0]

    keys = label_space.keys if label_space is not None else [str(j) for j in range(k)]
    abbrs = label_space.abbreviations if label_space is not None else [f"class_{j}" for j in range(k)]
    class_groups = [c.group for c in label_space.classes] if label_space is not None else [None] * k
    groups = label_space.groups if label_space is not None else {}

    challenge = None
    ch_parts = None
    if _is_challenge_space(label_space):
        columns, w, _, normal_index = resolve_challenge_classes(keys)
        ch_parts = challenge_record_scores(yt[:, columns], pred[:, columns], w, normal_index)
        challenge = _challenge_from_parts(*(p.sum() for p in ch_parts))

    result: dict = {
        "n_records": int(n),
        "n_classes": int(k),
        "n_classes_scored": int(np.isfinite(auroc).sum()),
        "classes_undefined": [abbrs[j] for j in range(k) if not np.isfinite(auroc[j])],
        "macro_auroc": float(_nanmean_rows(auroc)),
        "micro_auroc": micro_auroc,
        "macro_auprc": float(_nanmean_rows(auprc)),
        "macro_f1": float(_nanmean_rows(f1)),
        "macro_fbeta": float(_nanmean_rows(fb)),
        "beta": float(beta),
        "challenge_metric": challenge,
        "thresholds": th.tolist(),
        "per_label": [
            {
                "key": keys[j],
                "abbreviation": abbrs[j],
                "group": class_groups[j],
                "support": int(support[j]),
                "auroc": float(auroc[j]),
                "auprc": float(auprc[j]),
                "f1": float(f1[j]),
                "fbeta": float(fb[j]),
                "threshold": float(th[j]),
            }
            for j in range(k)
        ],
        "per_group": {
            g: {
                "classes": [abbrs[j] for j in idx],
                "n_classes": len(idx),
                "n_classes_scored": int(np.isfinite(auroc[idx]).sum()),
                "auroc": float(_nanmean_rows(auroc[idx])),
                "auprc": float(_nanmean_rows(auprc[idx])),
                "f1": float(_nanmean_rows(f1[idx])),
                "fbeta": float(_nanmean_rows(fb[idx])),
            }
            for g, idx in groups.items()
        },
        "n_bootstrap": int(n_bootstrap),
    }
    if n_bootstrap > 0:
        _add_bootstrap(result, yt, yp, pred, groups, ch_parts, n_bootstrap, np.random.default_rng(seed), beta)
    return result


def _challenge_from_parts(observed: float, correct: float, inactive: float) -> float:
    if correct != inactive:
        return float(observed - inactive) / float(correct - inactive)
    return 0.0


def _add_bootstrap(
    result: dict,
    yt: np.ndarray,
    yp: np.ndarray,
    pred: np.ndarray,
    groups: dict[str, list[int]],
    ch_parts: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    n_bootstrap: int,
    rng: np.random.Generator,
    beta: float,
) -> None:
    """Percentile intervals over ``n_bootstrap`` resamples of records, computed in blocks of resamples."""
    n, k = yt.shape
    ranked = [_RankedScores.build(yt[:, j], yp[:, j]) for j in range(k)]
    flat_record = np.repeat(np.arange(n), k)
    ranked_micro = _RankedScores.build(yt.ravel(), yp.ravel(), record_of=flat_record)
    tp_m = (yt & pred).astype(np.float64)
    fp_m = (~yt & pred).astype(np.float64)
    fn_m = (yt & ~pred).astype(np.float64)

    auroc_s = np.empty((n_bootstrap, k))
    auprc_s = np.empty((n_bootstrap, k))
    f1_s = np.empty((n_bootstrap, k))
    fb_s = np.empty((n_bootstrap, k))
    micro_s = np.empty(n_bootstrap)
    ch_s = np.full(n_bootstrap, np.nan)

    block = max(1, min(n_bootstrap, _BOOTSTRAP_BLOCK // n))
    micro_block = max(1, _BOOTSTRAP_BLOCK // (n * k))
    for start in range(0, n_bootstrap, block):
        stop = min(n_bootstrap, start + block)
        wf = bootstrap_counts(n, stop - start, rng).astype(np.float64)
        for j in range(k):
            auroc_s[start:stop, j], auprc_s[start:stop, j] = ranked[j].score(wf)
        tp, fp, fn = wf @ tp_m, wf @ fp_m, wf @ fn_m
        f1_s[start:stop] = _fbeta(tp, fp, fn, 1.0)
        fb_s[start:stop] = _fbeta(tp, fp, fn, beta)
        for s2 in range(0, stop - start, micro_block):
            sl = slice(s2, min(stop - start, s2 + micro_block))
            micro_s[start + sl.start : start + sl.stop] = ranked_micro.score(wf[sl])[0]
        if ch_parts is not None:
            obs, cor, ina = (wf @ p for p in ch_parts)
            ch_s[start:stop] = [_challenge_from_parts(o, c, i) for o, c, i in zip(obs, cor, ina, strict=True)]

    ci: dict[str, list[float]] = {}
    for name, samples in (
        ("macro_auroc", _nanmean_rows(auroc_s)),
        ("micro_auroc", micro_s),
        ("macro_auprc", _nanmean_rows(auprc_s)),
        ("macro_f1", _nanmean_rows(f1_s)),
        ("macro_fbeta", _nanmean_rows(fb_s)),
    ):
        ci[name] = _percentile_ci(samples).tolist()
    if ch_parts is not None:
        ci["challenge_metric"] = _percentile_ci(ch_s).tolist()
    result["ci"] = ci
    result["ci_level"] = _CI_LEVEL
    per_class = {
        "auroc_ci": _percentile_ci(auroc_s),
        "auprc_ci": _percentile_ci(auprc_s),
        "f1_ci": _percentile_ci(f1_s),
    }
    for j, row in enumerate(result["per_label"]):
        for name, bounds in per_class.items():
            row[name] = bounds[:, j].tolist()
    for g, idx in groups.items():
        entry = result["per_group"][g]
        entry["auroc_ci"] = _percentile_ci(_nanmean_rows(auroc_s[:, idx])).tolist()
        entry["auprc_ci"] = _percentile_ci(_nanmean_rows(auprc_s[:, idx])).tolist()
        entry["f1_ci"] = _percentile_ci(_nanmean_rows(f1_s[:, idx])).tolist()


def metrics_to_jsonable(obj: Any) -> Any:
    """A copy of a metrics result with NaN turned into ``None`` and numpy scalars into Python numbers (strict JSON)."""
    if isinstance(obj, dict):
        return {key: metrics_to_jsonable(v) for key, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [metrics_to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return metrics_to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
