"""Metrics as the field computes them: sklearn AUROC/AUPRC/F with bootstrap intervals, and the PhysioNet/CinC 2021
challenge scores exactly as the official ``evaluate_model.py`` (see ``docs/metrics.md``)."""

from __future__ import annotations

from .challenge import (
    NORMAL_CLASS,
    ChallengeScores,
    challenge_metric,
    challenge_record_scores,
    modified_confusion_matrix,
    official_accuracy,
    official_auc,
    official_f_measure,
    resolve_challenge_classes,
    score_challenge,
)
from .challenge_io import (
    ChallengeData,
    ChallengeOutput,
    labels_matrix,
    load_challenge_dirs,
    outputs_matrix,
    read_challenge_output,
    read_header_labels,
    write_challenge_output,
)
from .classification import (
    bootstrap_counts,
    compute_metrics,
    fbeta_per_class,
    metrics_to_jsonable,
    resolve_thresholds,
    tune_thresholds,
    weighted_auroc_ap,
)

__all__ = [
    "NORMAL_CLASS",
    "ChallengeData",
    "ChallengeOutput",
    "ChallengeScores",
    "bootstrap_counts",
    "challenge_metric",
    "challenge_record_scores",
    "compute_metrics",
    "fbeta_per_class",
    "labels_matrix",
    "load_challenge_dirs",
    "metrics_to_jsonable",
    "modified_confusion_matrix",
    "official_accuracy",
    "official_auc",
    "official_f_measure",
    "outputs_matrix",
    "read_challenge_output",
    "read_header_labels",
    "resolve_challenge_classes",
    "resolve_thresholds",
    "score_challenge",
    "tune_thresholds",
    "weighted_auroc_ap",
    "write_challenge_output",
]
