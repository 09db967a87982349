"""An independent, deliberately slow statement of the PhysioNet/CinC 2021 scores, for the tests only.

Written from the challenge's definition (``/work/shared/reference/FORMATS.md``, the official ``weights.csv``
in ``/work/shared/reference/cinc2021/`` and the scoring rules of the 2021 ``evaluate_model.py`` as stated in
``docs/metrics.md``), NOT from ``ecgscale.metrics``: nothing here imports ecgscale. Plain Python loops over
records and classes, one line per rule:

* classes are the rows of ``weights.csv``; a row name ``a|b`` is one class with two equivalent SNOMED codes;
  a record's code set switches class ``j`` on when it shares a code with it; codes of other classes are ignored;
* modified confusion matrix: for record ``i``, ``A[j, k] += 1 / max(1, |L_i ∪ O_i|)`` for label ``j``, output ``k``;
* score = ``nansum(W * A)``; normalised ``(observed - inactive) / (correct - inactive)``, where "correct" outputs
  the labels and "inactive" outputs sinus rhythm 426783006 only; ``0.0`` when ``correct == inactive``;
* AUROC/AUPRC per class over the distinct output values (thresholds ``>=``, plus one above the maximum):
  trapezoid of TNR over TPR and ``Σ ΔTPR · PPV``; macro = ``nanmean``;
* F-measure per class ``2TP / (2TP + FP + FN)`` (NaN if 0/0), macro = ``nanmean``; accuracy = fraction of
  records whose outputs equal their labels in every class.
"""

from __future__ import annotations

import csv
import hashlib
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

#: The official files as distributed with the challenge (read-only reference copy next to the checkout).
OFFICIAL_DIR = Path(__file__).resolve().parents[3] / "shared" / "reference" / "cinc2021"
#: SHA-256 of the official ``weights.csv`` (final 2021 version, ``|``-joined equivalent classes).
OFFICIAL_WEIGHTS_SHA256 = "668cb04555a97e8977488cb4bb6088d0d2bf9e59557945deedf29d5065c14d2b"
SINUS_RHYTHM = "426783006"


def read_weights_csv(path: Path) -> tuple[list[frozenset[str]], list[str], np.ndarray]:
    """``(classes as code sets, row names, weights)`` of a ``weights.csv``; rows must equal the columns."""
    with open(path, newline="") as f:
        table = [row for row in csv.reader(f) if row]
    header = [c.strip() for c in table[0][1:]]
    names = [row[0].strip() for row in table[1:]]
    if header != names:
        raise ValueError("weights.csv: row names differ from column names")
    w = np.zeros((len(names), len(names)))
    for i, row in enumerate(table[1:]):
        for j, cell in enumerate(row[1:]):
            try:
                w[i, j] = float(cell)
            except ValueError:
                w[i, j] = float("nan")  # the official loader also reads non-numbers as NaN
    return [frozenset(n.split("|")) for n in names], names, w


#: The copy bundled with ecgscale: used only where the official copy is not readable, and only if it has the
#: official file's SHA-256 (so the table read is the official one either way).
BUNDLED_WEIGHTS = (
    Path(__file__).resolve().parents[2] / "src" / "ecgscale" / "data" / "resources" / "cinc2021" / "weights.csv"
)


def official_weights_csv() -> Path:
    """The official ``weights.csv``: the reference copy, else the bundled one after checking its SHA-256."""
    official = OFFICIAL_DIR / "weights.csv"
    if official.is_file():
        return official
    digest = hashlib.sha256(BUNDLED_WEIGHTS.read_bytes()).hexdigest()
    if digest != OFFICIAL_WEIGHTS_SHA256:
        raise ValueError(f"{BUNDLED_WEIGHTS} is not the official weights.csv (SHA-256 {digest})")
    return BUNDLED_WEIGHTS


def official_weights(path: Path | None = None) -> tuple[list[frozenset[str]], list[str], np.ndarray]:
    return read_weights_csv(path if path is not None else official_weights_csv())


def encode(code_sets: Iterable[Iterable[str]], classes: Sequence[frozenset[str]]) -> np.ndarray:
    """Records' SNOMED code sets -> a boolean (records, classes) matrix, equivalent codes merged."""
    rows = []
    for codes in code_sets:
        codes = {str(c).strip() for c in codes}
        rows.append([bool(codes & cls) for cls in classes])
    return np.array(rows, dtype=bool).reshape(len(rows), len(classes))


def modified_confusion_matrix(labels: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    n, k = len(labels), len(labels[0]) if len(labels) else 0
    a = np.zeros((k, k))
    for i in range(n):
        union = 0
        for c in range(k):
            if labels[i][c] or outputs[i][c]:
                union += 1
        share = 1.0 / max(1, union)
        for j in range(k):
            if not labels[i][j]:
                continue
            for c in range(k):
                if outputs[i][c]:
                    a[j, c] += share
    return a


def _weighted_sum(weights: np.ndarray, a: np.ndarray) -> float:
    total = 0.0
    for j in range(a.shape[0]):
        for c in range(a.shape[1]):
            term = weights[j, c] * a[j, c]
            if not math.isnan(term):
                total += term
    return total


def challenge_metric(weights: np.ndarray, labels: np.ndarray, outputs: np.ndarray, normal_index: int) -> float:
    """The normalised challenge score of boolean matrices whose columns are the classes of ``weights``."""
    n, k = np.shape(labels)
    inactive = np.zeros((n, k), dtype=bool)
    for i in range(n):
        inactive[i, normal_index] = True
    observed = _weighted_sum(weights, modified_confusion_matrix(labels, outputs))
    correct = _weighted_sum(weights, modified_confusion_matrix(labels, labels))
    baseline = _weighted_sum(weights, modified_confusion_matrix(labels, inactive))
    if correct == baseline:
        return 0.0
    return (observed - baseline) / (correct - baseline)


def challenge_metric_of_codes(
    label_codes: Sequence[Iterable[str]], output_codes: Sequence[Iterable[str]], weights_csv: Path | None = None
) -> float:
    """The challenge metric of records given as SNOMED code sets (labels and positive outputs), official weights."""
    classes, _, w = official_weights(weights_csv)
    normal = [j for j, cls in enumerate(classes) if SINUS_RHYTHM in cls]
    if len(normal) != 1:
        raise ValueError("weights.csv must hold sinus rhythm exactly once")
    return challenge_metric(w, encode(label_codes, classes), encode(output_codes, classes), normal[0])


def accuracy(labels: np.ndarray, outputs: np.ndarray) -> float:
    n, k = np.shape(labels)
    hits = 0
    for i in range(n):
        if all(bool(labels[i, j]) == bool(outputs[i, j]) for j in range(k)):
            hits += 1
    return hits / n


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else float("nan")


def f_measure(labels: np.ndarray, outputs: np.ndarray) -> tuple[float, np.ndarray]:
    n, k = np.shape(labels)
    per_class = np.zeros(k)
    for j in range(k):
        tp = fp = fn = 0
        for i in range(n):
            y, o = bool(labels[i, j]), bool(outputs[i, j])
            tp += y and o
            fp += o and not y
            fn += y and not o
        per_class[j] = 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else float("nan")
    return _nanmean(list(per_class)), per_class


def _ratio(a: int, b: int) -> float:
    return a / b if b else float("nan")


def auc(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray]:
    """``(macro AUROC, macro AUPRC, per class, per class)`` by counting at every distinct output value."""
    n, k = np.shape(labels)
    auroc, auprc = np.zeros(k), np.zeros(k)
    for j in range(k):
        values = sorted({float(scores[i, j]) for i in range(n)}, reverse=True)
        thresholds = [values[0] + 1.0, *values]  # the first one predicts nobody positive: the ROC origin
        tpr, tnr, ppv = [], [], []
        for t in thresholds:
            tp = fp = fn = tn = 0
            for i in range(n):
                positive_output = scores[i, j] >= t
                if labels[i, j]:
                    tp += positive_output
                    fn += not positive_output
                else:
                    fp += positive_output
                    tn += not positive_output
            tpr.append(_ratio(tp, tp + fn))
            tnr.append(_ratio(tn, tn + fp))
            ppv.append(_ratio(tp, tp + fp))
        for m in range(len(thresholds) - 1):
            auroc[j] += 0.5 * (tpr[m + 1] - tpr[m]) * (tnr[m + 1] + tnr[m])
            auprc[j] += (tpr[m + 1] - tpr[m]) * ppv[m + 1]
    return _nanmean(list(auroc)), _nanmean(list(auprc)), auroc, auprc
