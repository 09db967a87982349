"""CLI commands ``ecgscale predict`` and ``ecgscale export`` (registered on the shared app)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import typer

from ecgscale.cli._app import app, console, err_console
from ecgscale.errors import ConfigError
from ecgscale.progress import as_progress

__all__ = ["export", "predict"]

_SHOW_ERRORS = 5


@app.command("predict")
def predict(
    run_dir: Path = typer.Argument(..., help="Run directory written by `ecgscale train` (config.json + weights)."),
    inputs: list[Path] = typer.Argument(
        ..., help="Record files (.hea/.mat/.dat WFDB, Tianchi .txt) and/or folders of them (searched recursively)."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="csv: the CSV file (default predictions.csv); challenge: the folder of per-record output files "
        "(default predictions/). Failed files are listed in <out>_errors.csv beside it.",
    ),
    fmt: str = typer.Option("csv", "--format", "-f", help="csv (one table) or challenge (official CinC 2021 files)."),
    batch_size: int = typer.Option(64, "--batch-size", help="Windows per forward pass (records are batched together)."),
    aggregate: str | None = typer.Option(
        None,
        "--aggregate",
        help="How the windows of a record are combined: mean or max of probabilities (default: the run's own "
        "aggregation for a run trained on crops, else mean).",
    ),
    precision: str = typer.Option("fp32", "--precision", help="fp32, or bf16 autocast (faster on recent CPUs/GPUs)."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA if available), cpu, cuda or cuda:N."),
    workers: int = typer.Option(
        1, "--workers", help="Threads reading and preprocessing records while the model runs (0: inline)."
    ),
    allow_upsample: bool = typer.Option(
        False,
        "--allow-upsample",
        help="Accept records sampled below the model's rate if their Nyquist frequency covers the model's band-pass.",
    ),
    threads: int = typer.Option(0, "--threads", help="torch CPU threads (0: torch's default)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Predict diagnoses for new ECG records with a trained run.

    Each record is preprocessed exactly as the run's training data (the preprocessing config and its hash travel
    in config.json), scored in windows of the training length (stride = window, the last window aligned to the
    end) and the window probabilities are averaged (--aggregate max for the maximum). Labels use the run's
    validation-tuned thresholds.

    CSV columns: record_id, path, p_<abbreviation> per class, labels (abbreviations joined by ';'), codes,
    n_windows, fs, duration_s. Files that cannot be predicted (not an ECG, missing leads, NaN samples, a sampling
    rate below the model's, unreadable) are listed with the reason in <out>_errors.csv; the others are still
    predicted and the exit status is 1. Example:

        ecgscale predict runs/best data/new_ecgs --out predictions.csv
    """
    from ecgscale.infer.predict import (
        PredictionResult,
        PredictionRow,
        Predictor,
        errors_frame,
        errors_path_for,
        write_challenge_outputs,
        write_errors_csv,
        write_predictions_csv,
    )

    if threads < 0:
        raise ConfigError(f"got {threads}; allowed: an integer >= 0", key="--threads")
    if threads:
        import torch

        torch.set_num_threads(threads)
    if fmt not in ("csv", "challenge"):
        raise ConfigError(f"got {fmt!r}; allowed: csv | challenge", key="--format")
    if out is None:
        out = Path("predictions.csv" if fmt == "csv" else "predictions")
    if fmt == "challenge" and out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file; --format challenge writes a folder of output files", key="--out")
    if fmt == "csv" and out.is_dir():
        raise ConfigError(f"{out} is a folder; --format csv writes one CSV file", key="--out")
    predictor = Predictor(
        run_dir,
        device=None if device == "auto" else device,
        batch_size=batch_size,
        aggregate=aggregate,
        precision=precision,
        allow_upsample=allow_upsample,
        workers=workers,
    )
    rows, errors = [], []
    for item in predictor.iter_predict(inputs, progress=as_progress(progress)):
        (rows if isinstance(item, PredictionRow) else errors).append(item)
    if not rows and not errors:
        raise ConfigError(
            f"no ECG records found in {', '.join(map(str, inputs))} (expected .hea/.mat/.dat WFDB "
            "records or Tianchi .txt files)",
            key="INPUT",
        )
    if fmt == "challenge":
        _, duplicates = write_challenge_outputs(predictor, rows, out)
        errors.extend(duplicates)
    result = PredictionResult(predictor.table_of(rows), errors_frame(errors))
    if fmt == "csv":
        write_predictions_csv(result, out)
    errors_file = errors_path_for(out)
    if errors:
        write_errors_csv(result, errors_file)
    else:
        with contextlib.suppress(FileNotFoundError):
            errors_file.unlink()  # a stale list from an earlier run would describe other inputs
    console.print(f"{result.summary()} -> {out}" + (f" (errors: {errors_file})" if errors else ""), highlight=False)
    if errors:
        for e in errors[:_SHOW_ERRORS]:
            err_console.print(f"[red]failed:[/] {e.message}", highlight=False)
        if len(errors) > _SHOW_ERRORS:
            err_console.print(f"... and {len(errors) - _SHOW_ERRORS} more in {errors_file}", highlight=False)
        # SystemExit, not typer.Exit: the entry point runs click with standalone_mode=False, where Exit(1)
        # becomes a return value that ecgscale.cli.main does not pass on, and the status would be 0.
        raise SystemExit(1)


@app.command("export")
def export(
    run_dir: Path = typer.Argument(..., help="Run directory written by `ecgscale train`."),
    fmt: str = typer.Option(..., "--format", "-f", help="onnx or torchscript."),
    out: Path = typer.Option(..., "--out", "-o", help="File to write (e.g. model.onnx, model.pt)."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset version (>= 17)."),
    fixed_time: bool = typer.Option(
        False, "--fixed-time", help="Fix the time axis to the training window even for a GAP model."
    ),
    verify: bool = typer.Option(
        True, "--verify/--no-verify", help="Run the exported file against PyTorch (max |difference| must be < 1e-4)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result and metadata as JSON."),
) -> None:
    """Export a run's model to ONNX or TorchScript; the file outputs probabilities (sigmoid included).

    Input 'ecg': float32 (batch, 12, time), preprocessed as the run's training data; output 'probabilities':
    (batch, n_classes). The batch axis is dynamic; the time axis is dynamic for GAP models and fixed to the
    training window for no-GAP ones. Labels, thresholds, preprocessing config + hash, model config and the
    ecgscale version are stored in the file (ONNX metadata_props / TorchScript extra files). Example:

        ecgscale export runs/best --format onnx --out best.onnx
    """
    from ecgscale.infer.export import export_model

    result = export_model(run_dir, fmt, out, opset=opset, dynamic_time=False if fixed_time else None, verify=verify)
    if as_json:
        meta = {k: json.loads(v) for k, v in result.metadata.items()}
        console.print_json(
            json.dumps(
                {
                    "path": str(result.path),
                    "format": result.format,
                    "dynamic_time": result.dynamic_time,
                    "max_abs_diff": result.max_abs_diff,
                    "metadata": meta,
                }
            )
        )
        return
    diff = "" if result.max_abs_diff is None else f"; max |PyTorch - {fmt}| = {result.max_abs_diff:.1e}"
    console.print(
        f"wrote {result.path} ({fmt}, {'dynamic' if result.dynamic_time else 'fixed'} time axis{diff})", highlight=False
    )
