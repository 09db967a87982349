"""The PhysioNet/CinC 2021 scores, computed exactly as the challenge's own ``evaluate_model.py``.

Followed line by line: ``physionetchallenges/evaluation-2021`` (final 2021 version, whose ``weights.csv`` header
joins equivalent codes with ``|`` and whose "inactive" classifier always outputs sinus rhythm 426783006), BSD
2-Clause, (c) 2020, 2021 PhysioNet/Computing in Cardiology Challenges. The functions here give the official numbers
with matrix products, which is what makes scoring 88,000 records take a fraction of a second instead of minutes.
The official loops are restated outside the package: independently in ``tests/metrics/_official.py`` (the tests'
ground truth, written from the challenge's definition and the official ``weights.csv``) and one to one in
``benchmarks/_official_loops.py`` (timed against these functions by ``benchmarks/bench_score.py``).

Definitions (all over the classes of ``weights.csv``; columns of other classes are ignored, as the official
scorer never loads them):

* modified confusion matrix ``A[j, k] += 1 / max(1, |labels_i ∪ outputs_i|)`` for every record ``i`` with label
  ``j`` and output ``k``; score ``= nansum(weights * A)``;
* challenge metric ``= (observed − inactive) / (correct − inactive)``, where "correct" outputs the labels and
  "inactive" outputs only sinus rhythm; ``0.0`` when ``correct == inactive`` (the official convention);
* AUROC/AUPRC per class over the distinct output values (``compute_auc``), macro = ``nanmean`` over classes;
* F-measure per class ``2TP / (2TP + FP + FN)`` (NaN when the denominator is 0), macro = ``nanmean``;
* accuracy = fraction of records whose 26 binary outputs all equal their labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ecgscale.data.labels import cinc2021_weights

__all__ = [
    "NORMAL_CLASS",
    "ChallengeScores",
    "challenge_metric",
    "challenge_record_scores",
    "modified_confusion_matrix",
    "official_accuracy",
    "official_auc",
    "official_f_measure",
    "resolve_challenge_classes",
    "score_challenge",
]

#: SNOMED-CT code of sinus rhythm, the output of the challenge's "inactive" classifier.
NORMAL_CLASS = "426783006"


@dataclass(frozen=True, slots=True)
class ChallengeScores:
    """The five numbers ``evaluate_model.py`` prints, plus its per-class rows (classes in ``weights.csv`` order)."""

    class_keys: tuple[str, ...]
    auroc: float
    auprc: float
    accuracy: float
    f_measure: float
    challenge_metric: float
    auroc_classes: np.ndarray
    auprc_classes: np.ndarray
    f_measure_classes: np.ndarray

    def to_dict(self) -> dict:
        return {
            "auroc": self.auroc,
            "auprc": self.auprc,
            "accuracy": self.accuracy,
            "f_measure": self.f_measure,
            "challenge_metric": self.challenge_metric,
            "classes": [
                {"key": key, "auroc": _nan_to_none(a), "auprc": _nan_to_none(p), "f_measure": _nan_to_none(f)}
                for key, a, p, f in zip(
                    self.class_keys, self.auroc_classes, self.auprc_classes, self.f_measure_classes, strict=True
                )
            ],
        }


def _nan_to_none(x: float) -> float | None:
    x = float(x)
    return None if np.isnan(x) else x


# --------------------------------------------------------------------------------------------------------------
# Inputs


def _as_bool_matrix(x: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (records, classes) array, got shape {arr.shape}")
    if arr.dtype != np.bool_:
        if arr.size and not np.isin(arr, (0, 1)).all():
            bad = arr[~np.isin(arr, (0, 1))].ravel()[0]
            raise ValueError(f"{name} must hold only 0/1 (or booleans), found {bad!r}")
        arr = arr.astype(bool)
    return arr


def _as_float_matrix(x: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (records, classes) array, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values (the official loader turns them into 0 first)")
    return arr


def _check_same_shape(a: np.ndarray, b: np.ndarray, names: tuple[str, str]) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} has shape {a.shape} but {names[1]} has shape {b.shape}; they must match")


def resolve_challenge_classes(
    class_keys: Sequence[str], weights: np.ndarray | None = None, *, normal_class: str = NORMAL_CLASS
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], int]:
    """Map the columns of a prediction matrix onto the scored classes.

    Returns ``(columns, weights, keys, normal_index)``: the column of each scored class, the weight matrix in
    that order, the scored class keys, and the index of the sinus-rhythm class among them.

    With ``weights=None`` the official ``weights.csv`` is used: every one of its classes must match exactly one
    column (a column matches when its ``|``-separated codes share a code with the class, so ``"59118001"`` and
    ``"713427006|59118001"`` both name RBBB), and columns of other classes are left out, as the official scorer
    never reads them. With an explicit ``(K, K)`` matrix the columns are taken as they are.
    """
    keys = [str(k).strip() for k in class_keys]
    normal_codes = set(normal_class.split("|"))
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (len(keys), len(keys)):
            n = len(keys)
            raise ValueError(f"weights has shape {w.shape}; expected ({n}, {n}) for {n} class keys")
        columns = np.arange(len(keys))
        scored = tuple(keys)
    else:
        official_keys, w = cinc2021_weights()
        column_codes = [set(k.split("|")) for k in keys]
        cols = []
        for okey in official_keys:
            ocodes = set(okey.split("|"))
            hits = [j for j, codes in enumerate(column_codes) if codes & ocodes]
            if not hits:
                raise ValueError(
                    f"class {okey} of the challenge's weights.csv has no column in class_keys; "
                    "the challenge metric needs all 26 scored classes"
                )
            if len(hits) > 1:
                raise ValueError(f"class {okey} of weights.csv matches several columns: {[keys[j] for j in hits]}")
            cols.append(hits[0])
        columns = np.asarray(cols, dtype=np.intp)
        scored = tuple(official_keys)
    normal = [i for i, key in enumerate(scored) if set(key.split("|")) & normal_codes]
    if not normal:
        raise ValueError(f"the normal class {normal_class} is not among the scored classes {list(scored)}")
    return columns, w, scored, normal[0]


# --------------------------------------------------------------------------------------------------------------
# Vectorised scores


def modified_confusion_matrix(labels: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """``A[j, k] = Σ_i labels[i, j] · outputs[i, k] / max(1, |labels_i ∪ outputs_i|)``, vectorised over records.

    Row ``j`` is the column sum of the normalised outputs of the records labelled ``j``. This equals
    ``(labels / norm).T @ outputs`` but is computed as K masked sums: on a shared CPU a multithreaded BLAS call
    was 5-20x slower and noisier, and the row-by-row sums keep the official code's order of additions.
    """
    lab = np.asarray(labels, dtype=bool)
    out = np.asarray(outputs, dtype=bool)
    norm = np.maximum(np.count_nonzero(lab | out, axis=1), 1).astype(np.float64)
    scaled = out / norm[:, None]
    a = np.zeros((lab.shape[1], out.shape[1]))
    for j in range(lab.shape[1]):  # one vectorised pass per label class, none per record
        rows = lab[:, j]
        if rows.any():
            a[j] = scaled[rows].sum(axis=0)
    return a


def _normalised(observed: float, correct: float, inactive: float) -> float:
    # The official code compares the two floats exactly and returns 0.0 when they are equal.
    if correct != inactive:
        return float(observed - inactive) / float(correct - inactive)
    return 0.0


def _challenge_from_matrices(weights: np.ndarray, labels: np.ndarray, outputs: np.ndarray, normal_index: int) -> float:
    observed = np.nansum(weights * modified_confusion_matrix(labels, outputs))
    correct = np.nansum(weights * modified_confusion_matrix(labels, labels))
    inactive_outputs = np.zeros_like(labels, dtype=bool)
    inactive_outputs[:, normal_index] = True
    inactive = np.nansum(weights * modified_confusion_matrix(labels, inactive_outputs))
    return _normalised(observed, correct, inactive)


def challenge_metric(
    y_true_bool: np.ndarray,
    y_pred_bool: np.ndarray,
    class_keys: Sequence[str],
    *,
    weights: np.ndarray | None = None,
    normal_class: str = NORMAL_CLASS,
) -> float:
    """The PhysioNet/CinC 2021 challenge metric: 1 for perfect outputs, 0 for "always sinus rhythm".

    ``class_keys`` name the columns (SNOMED-CT codes, equivalents either alone or ``|``-joined); with
    ``weights=None`` the official ``weights.csv`` is used and columns of unscored classes are ignored. The result
    equals the official ``compute_challenge_metric`` to floating-point rounding (tested in
    ``tests/metrics/test_challenge_metric.py``).
    """
    labels = _as_bool_matrix(y_true_bool, "y_true_bool")
    outputs = _as_bool_matrix(y_pred_bool, "y_pred_bool")
    _check_same_shape(labels, outputs, ("y_true_bool", "y_pred_bool"))
    if labels.shape[1] != len(class_keys):
        raise ValueError(f"class_keys has {len(class_keys)} entries but the arrays have {labels.shape[1]} columns")
    columns, w, _, normal_index = resolve_challenge_classes(class_keys, weights, normal_class=normal_class)
    return _challenge_from_matrices(w, labels[:, columns], outputs[:, columns], normal_index)


def challenge_record_scores(
    labels: np.ndarray, outputs: np.ndarray, weights: np.ndarray, normal_index: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-record contributions ``(observed, correct, inactive)`` to the three challenge scores.

    The score of any resample of records is the weighted sum of these, which is how the bootstrap gets a
    challenge-metric interval from one ``(B, N) @ (N,)`` product instead of B recomputations. Inputs are already
    in the scored classes' order (see :func:`resolve_challenge_classes`).
    """
    lab = np.asarray(labels, dtype=bool)
    out = np.asarray(outputs, dtype=bool)
    w = np.nan_to_num(np.asarray(weights, dtype=np.float64), nan=0.0)  # nansum semantics
    lw = lab.astype(np.float64) @ w  # (N, K): Σ_j labels[i, j] · W[j, k]

    def per_record(o: np.ndarray) -> np.ndarray:
        norm = np.maximum(np.count_nonzero(lab | o, axis=1), 1).astype(np.float64)
        return np.einsum("ik,ik->i", lw, o.astype(np.float64)) / norm

    inactive = np.zeros_like(lab)
    inactive[:, normal_index] = True
    return per_record(out), per_record(lab), per_record(inactive)


def official_accuracy(labels: np.ndarray, outputs: np.ndarray) -> float:
    """Fraction of records whose binary outputs equal their labels in every class (``compute_accuracy``)."""
    lab = _as_bool_matrix(labels, "labels")
    out = _as_bool_matrix(outputs, "outputs")
    _check_same_shape(lab, out, ("labels", "outputs"))
    return float(np.count_nonzero(np.all(lab == out, axis=1))) / float(lab.shape[0])


def official_f_measure(labels: np.ndarray, outputs: np.ndarray) -> tuple[float, np.ndarray]:
    """Macro and per-class F-measure of ``compute_f_measure``: NaN for a class with 2TP + FP + FN = 0."""
    lab = _as_bool_matrix(labels, "labels")
    out = _as_bool_matrix(outputs, "outputs")
    _check_same_shape(lab, out, ("labels", "outputs"))
    tp = np.count_nonzero(lab & out, axis=0).astype(np.float64)
    fp = np.count_nonzero(~lab & out, axis=0).astype(np.float64)
    fn = np.count_nonzero(lab & ~out, axis=0).astype(np.float64)
    denom = 2 * tp + fp + fn
    f = np.full(lab.shape[1], np.nan)
    np.divide(2 * tp, denom, out=f, where=denom > 0)
    macro = float(np.nanmean(f)) if np.isfinite(f).any() else float("nan")
    return macro, f


def _official_auc_column(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    n = y.shape[0]
    order = np.argsort(-s, kind="stable")  # descending outputs
    s_sorted = s[order]
    tp_cum = np.cumsum(y[order], dtype=np.float64)
    fp_cum = np.arange(1, n + 1, dtype=np.float64) - tp_cum
    # The official thresholds are the distinct output values (plus one above the maximum, giving the origin):
    # the counts at a threshold are those after the last record holding that value.
    last = np.empty(n, dtype=bool)
    last[:-1] = s_sorted[1:] != s_sorted[:-1]
    last[-1] = True
    tp = np.concatenate(([0.0], tp_cum[last]))
    fp = np.concatenate(([0.0], fp_cum[last]))
    n_pos = tp_cum[-1]
    n_neg = n - n_pos
    tpr = tp / n_pos if n_pos else np.full(tp.shape, np.nan)
    tnr = (n_neg - fp) / n_neg if n_neg else np.full(tp.shape, np.nan)
    ppv = tp[1:] / (tp[1:] + fp[1:])  # at least one record lies above every threshold but the first
    dtpr = np.diff(tpr)
    auroc = float(np.sum(0.5 * dtpr * (tnr[1:] + tnr[:-1])))
    auprc = float(np.sum(dtpr * ppv))
    return auroc, auprc


def official_auc(labels: np.ndarray, outputs: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray]:
    """``compute_auc`` of the official scorer: ``(macro AUROC, macro AUPRC, AUROC per class, AUPRC per class)``.

    Per class, over the distinct output values: AUROC is the trapezoidal area under TNR against TPR and AUPRC is
    ``Σ ΔTPR · PPV`` (a step function). These are the same quantities as scikit-learn's ``roc_auc_score`` and
    ``average_precision_score`` (ties handled alike), differing only in rounding and in the undefined cases: a
    class with no positive record gets NaN for both (sklearn: AUROC NaN with a warning, AP 0.0), a class with no
    negative record gets AUROC NaN and AUPRC 1.0. Macro values are ``nanmean`` over classes.
    """
    lab = _as_bool_matrix(labels, "labels")
    out = _as_float_matrix(outputs, "outputs")
    _check_same_shape(lab, out, ("labels", "outputs"))
    if lab.shape[0] == 0:
        raise ValueError("labels has no records")
    k = lab.shape[1]
    auroc = np.zeros(k)
    auprc = np.zeros(k)
    for j in range(k):  # one vectorised pass per class; no loop over records
        auroc[j], auprc[j] = _official_auc_column(lab[:, j], out[:, j])
    macro_auroc = float(np.nanmean(auroc)) if np.isfinite(auroc).any() else float("nan")
    macro_auprc = float(np.nanmean(auprc)) if np.isfinite(auprc).any() else float("nan")
    return macro_auroc, macro_auprc, auroc, auprc


def score_challenge(
    labels: np.ndarray,
    binary_outputs: np.ndarray,
    scalar_outputs: np.ndarray,
    class_keys: Sequence[str],
    *,
    weights: np.ndarray | None = None,
    normal_class: str = NORMAL_CLASS,
) -> ChallengeScores:
    """Everything ``evaluate_model.py`` reports, from label and output matrices whose columns are ``class_keys``."""
    lab = _as_bool_matrix(labels, "labels")
    binary = _as_bool_matrix(binary_outputs, "binary_outputs")
    scalar = _as_float_matrix(scalar_outputs, "scalar_outputs")
    _check_same_shape(lab, binary, ("labels", "binary_outputs"))
    _check_same_shape(lab, scalar, ("labels", "scalar_outputs"))
    if lab.shape[1] != len(class_keys):
        raise ValueError(f"class_keys has {len(class_keys)} entries but the arrays have {lab.shape[1]} columns")
    columns, w, keys, normal_index = resolve_challenge_classes(class_keys, weights, normal_class=normal_class)
    lab, binary, scalar = lab[:, columns], binary[:, columns], scalar[:, columns]
    auroc, auprc, auroc_k, auprc_k = official_auc(lab, scalar)
    f_measure, f_k = official_f_measure(lab, binary)
    return ChallengeScores(
        class_keys=keys,
        auroc=auroc,
        auprc=auprc,
        accuracy=official_accuracy(lab, binary),
        f_measure=f_measure,
        challenge_metric=_challenge_from_matrices(w, lab, binary, normal_index),
        auroc_classes=auroc_k,
        auprc_classes=auprc_k,
        f_measure_classes=f_k,
    )
