"""The loops of the official CinC 2021 ``evaluate_model.py``, restated one to one (per record, per class).

Slow on purpose: ``bench_score.py`` times the vectorised ``ecgscale.metrics`` functions against these and checks
that they agree. Followed line by line: ``physionetchallenges/evaluation-2021`` (final 2021 version), BSD 2-Clause,
(c) 2020, 2021 PhysioNet/Computing in Cardiology Challenges. The tests use their own, independently written
statement (``tests/metrics/_official.py``).
"""

from __future__ import annotations

import numpy as np


def reference_modified_confusion_matrix(labels: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    n_records, n_classes = np.shape(labels)
    a = np.zeros((n_classes, n_classes))
    for i in range(n_records):
        normalization = float(max(np.sum(np.any((labels[i, :], outputs[i, :]), axis=0)), 1))
        for j in range(n_classes):
            if labels[i, j]:
                for k in range(n_classes):
                    if outputs[i, k]:
                        a[j, k] += 1.0 / normalization
    return a


def reference_challenge_metric(
    weights: np.ndarray, labels: np.ndarray, outputs: np.ndarray, normal_index: int
) -> float:
    n_records, n_classes = np.shape(labels)
    observed = np.nansum(weights * reference_modified_confusion_matrix(labels, outputs))
    correct = np.nansum(weights * reference_modified_confusion_matrix(labels, labels))
    inactive_outputs = np.zeros((n_records, n_classes), dtype=bool)
    inactive_outputs[:, normal_index] = 1
    inactive = np.nansum(weights * reference_modified_confusion_matrix(labels, inactive_outputs))
    if correct != inactive:
        return float(observed - inactive) / float(correct - inactive)
    return 0.0


def reference_accuracy(labels: np.ndarray, outputs: np.ndarray) -> float:
    n_records = np.shape(labels)[0]
    n_correct = 0
    for i in range(n_records):
        if np.all(labels[i, :] == outputs[i, :]):
            n_correct += 1
    return float(n_correct) / float(n_records)


def reference_f_measure(labels: np.ndarray, outputs: np.ndarray) -> tuple[float, np.ndarray]:
    n_records, n_classes = np.shape(labels)
    counts = np.zeros((n_classes, 2, 2))  # [class, output, label]
    for i in range(n_records):
        for j in range(n_classes):
            counts[j, int(bool(outputs[i, j])), int(bool(labels[i, j]))] += 1
    f = np.zeros(n_classes)
    for k in range(n_classes):
        tp, fp, fn = counts[k, 1, 1], counts[k, 1, 0], counts[k, 0, 1]
        f[k] = float(2 * tp) / float(2 * tp + fp + fn) if 2 * tp + fp + fn else float("nan")
    macro = float(np.nanmean(f)) if np.any(np.isfinite(f)) else float("nan")
    return macro, f


def reference_auc(labels: np.ndarray, outputs: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray]:
    n_records, n_classes = np.shape(labels)
    auroc = np.zeros(n_classes)
    auprc = np.zeros(n_classes)
    for k in range(n_classes):
        thresholds = np.unique(outputs[:, k])
        thresholds = np.append(thresholds, thresholds[-1] + 1)[::-1]
        m = len(thresholds)
        tp, fp, fn, tn = np.zeros(m), np.zeros(m), np.zeros(m), np.zeros(m)
        fn[0] = np.sum(labels[:, k] == 1)
        tn[0] = np.sum(labels[:, k] == 0)
        idx = np.argsort(outputs[:, k])[::-1]
        i = 0
        for j in range(1, m):
            tp[j], fp[j], fn[j], tn[j] = tp[j - 1], fp[j - 1], fn[j - 1], tn[j - 1]
            while i < n_records and outputs[idx[i], k] >= thresholds[j]:
                if labels[idx[i], k]:
                    tp[j] += 1
                    fn[j] -= 1
                else:
                    fp[j] += 1
                    tn[j] -= 1
                i += 1
        tpr, tnr, ppv = np.zeros(m), np.zeros(m), np.zeros(m)
        for j in range(m):
            tpr[j] = float(tp[j]) / float(tp[j] + fn[j]) if tp[j] + fn[j] else float("nan")
            tnr[j] = float(tn[j]) / float(fp[j] + tn[j]) if fp[j] + tn[j] else float("nan")
            ppv[j] = float(tp[j]) / float(tp[j] + fp[j]) if tp[j] + fp[j] else float("nan")
        for j in range(m - 1):
            auroc[k] += 0.5 * (tpr[j + 1] - tpr[j]) * (tnr[j + 1] + tnr[j])
            auprc[k] += (tpr[j + 1] - tpr[j]) * ppv[j + 1]
    macro_auroc = float(np.nanmean(auroc)) if np.any(np.isfinite(auroc)) else float("nan")
    macro_auprc = float(np.nanmean(auprc)) if np.any(np.isfinite(auprc)) else float("nan")
    return macro_auroc, macro_auprc, auroc, auprc
