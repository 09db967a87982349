"""Prediction on new ECG files with a trained run, and export of its model to ONNX / TorchScript.

Reads a run directory (``ecgscale.train`` writes it), never a study. ``Predictor`` preprocesses records exactly as
the run's training cache did (its preprocessing config travels in ``config.json`` and its hash is checked),
scores long records window by window and thresholds with the run's validation-tuned thresholds.
``export_model`` writes a self-describing ONNX or TorchScript file that outputs probabilities.
"""

from ecgscale.infer.export import EXPORT_FORMATS, ExportResult, export_model, read_export_metadata
from ecgscale.infer.predict import (
    AGGREGATES,
    PredictionError,
    PredictionResult,
    PredictionRow,
    Predictor,
    errors_path_for,
    predict_paths,
    window_starts,
    write_challenge_outputs,
    write_predictions_csv,
)

__all__ = [
    "AGGREGATES",
    "EXPORT_FORMATS",
    "ExportResult",
    "PredictionError",
    "PredictionResult",
    "PredictionRow",
    "Predictor",
    "errors_path_for",
    "export_model",
    "predict_paths",
    "read_export_metadata",
    "window_starts",
    "write_challenge_outputs",
    "write_predictions_csv",
]
