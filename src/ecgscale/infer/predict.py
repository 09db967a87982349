"""Prediction on new ECG files with a trained run, preprocessed exactly as the run's training cache was.

Per record: read (any supported format) → the sampling-rate check → ``ecgscale.data.transforms.preprocess``
with the run's ``PreprocessConfig`` (hash checked) → rounded through the cache's storage dtype (float16 by
default), so the model sees bit-for-bit the numbers it saw in training and validation → cut into windows of the
training length (stride = window; the last window aligned to the end; a record shorter than one window is
zero-padded at the end, like training) → one forward pass over windows of many records at once → sigmoid →
aggregated over the windows of each record (``mean`` by default, or ``max``) → thresholded with the run's
validation-tuned thresholds. A run trained on crops (``TrainConfig.crop_s``) records its evaluation windows in
``config.json`` (``eval_windows``: length, stride, aggregation); prediction then uses windows of the crop length
at that stride and that aggregation, as its validation and test metrics did (``ecgscale.train.windows``).

Bad input never stops a batch: each unreadable or unusable file becomes one error entry (path, reason, message)
and the other files are still predicted. See ``docs/predict.md`` for the choices (aggregation, low sampling
rates, long records).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ecgscale.errors import ConfigError, RecordError
from ecgscale.progress import Progress, as_progress

__all__ = [
    "AGGREGATES",
    "ERROR_COLUMNS",
    "PRECISIONS",
    "PredictionError",
    "PredictionResult",
    "PredictionRow",
    "Predictor",
    "collect_inputs",
    "errors_frame",
    "errors_path_for",
    "predict_paths",
    "window_starts",
    "write_challenge_outputs",
    "write_errors_csv",
    "write_predictions_csv",
]

log = logging.getLogger(__name__)

AGGREGATES = ("mean", "max")  # ecgscale.train.windows.AGGREGATES (not imported here: that would import torch)
PRECISIONS = ("fp32", "bf16")
ERROR_COLUMNS = ("path", "record_id", "reason", "error")


def window_starts(n_samples: int, length: int, stride: int | None = None) -> list[int]:
    """Window starts covering ``n_samples`` (``ecgscale.train.windows.window_starts``, the one implementation
    that training, evaluation and prediction share): every ``stride`` samples (default ``length``), the last
    window ending at the last sample; a record of at most one window gets the single start 0."""
    from ecgscale.train.windows import window_starts as starts

    return starts(n_samples, length, stride)


@dataclass(frozen=True, slots=True)
class PredictionRow:
    """The prediction for one record: aggregated probabilities, thresholded labels and the per-window ones."""

    record_id: str
    path: str | None
    probabilities: np.ndarray  # float32 (K,), aggregated over windows
    labels: np.ndarray  # bool (K,): probabilities >= the run's thresholds
    window_probabilities: np.ndarray  # float32 (n_windows, K)
    abbreviations: tuple[str, ...]  # of the positive classes, in label-space order
    codes: tuple[str, ...]  # class keys of the positive classes (equivalent codes joined by "|")
    fs: float
    duration_s: float

    @property
    def n_windows(self) -> int:
        return int(self.window_probabilities.shape[0])


@dataclass(frozen=True, slots=True)
class PredictionError:
    """A file that could not be predicted: ``reason`` is the ``RecordError`` tag (``missing_leads``, ...)."""

    path: str
    record_id: str | None
    reason: str
    message: str


class PredictionResult(NamedTuple):
    """``(table, errors)``: one row per predicted record, one row per failed file (columns ``ERROR_COLUMNS``)."""

    table: pd.DataFrame
    errors: pd.DataFrame

    @property
    def n_predicted(self) -> int:
        return len(self.table)

    @property
    def n_failed(self) -> int:
        return len(self.errors)

    def summary(self) -> str:
        """One line for logs and the CLI, e.g. ``"998 predicted, 2 failed"``."""
        text = f"{self.n_predicted} predicted, {self.n_failed} failed"
        if self.n_failed:
            counts = self.errors["reason"].value_counts().sort_index()
            text += " (" + ", ".join(f"{reason}: {n}" for reason, n in counts.items()) + ")"
        return text


@dataclass(frozen=True, slots=True)
class _Item:
    """One input to read: a reference found by ``discover`` or a file named on the command line."""

    path: Path
    ref: Any = None  # ecgscale.data.readers.RecordRef


class Predictor:
    """A trained run, ready to predict on new records.

    ``aggregate`` combines the probabilities of a record's windows (``"mean"`` or ``"max"``, see
    ``docs/predict.md``; ``None``: the run's own, recorded in ``config.json`` ``eval_windows``, else mean);
    ``batch_size`` counts windows per forward pass; ``precision="bf16"`` runs under bf16 autocast (faster on
    CPUs with AVX-512-BF16 and on GPUs, probabilities differ by ~1e-2).
    ``allow_upsample`` accepts records sampled below the model's rate as long as their Nyquist frequency still
    covers the band-pass the model was trained on; by default such records are refused. ``workers`` threads
    read and preprocess the next records while the model runs (0: in the calling thread).
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        *,
        device: Any = None,
        batch_size: int = 64,
        aggregate: str | None = None,
        precision: str = "fp32",
        allow_upsample: bool = False,
        workers: int = 1,
    ) -> None:
        from ecgscale.infer._run import open_run
        from ecgscale.train.device import resolve_device

        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"got {batch_size!r}; allowed: an integer >= 1", key="batch_size")
        if aggregate is not None and aggregate not in AGGREGATES:
            raise ConfigError(f"got {aggregate!r}; allowed: {' | '.join(AGGREGATES)}", key="aggregate")
        if precision not in PRECISIONS:
            raise ConfigError(f"got {precision!r}; allowed: {' | '.join(PRECISIONS)}", key="precision")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise ConfigError(f"got {workers!r}; allowed: an integer >= 0", key="workers")
        loaded, config = open_run(run_dir)
        self.run_dir = Path(run_dir)
        self.preprocess_config = config
        self.label_space = loaded.label_space
        self.thresholds = np.asarray(loaded.thresholds, dtype=np.float64)
        #: The lead set the model takes (``ecgscale.data.leads.LeadSet``); each record's leads are picked by name.
        self.leads = loaded.leads
        self.batch_size = batch_size
        #: The run's evaluation windows (None: windows of the whole training window, adjacent).
        self.eval_windows = loaded.config.parse_eval_windows()
        if aggregate is None:
            aggregate = "mean" if self.eval_windows is None else self.eval_windows.aggregate
        self.aggregate = aggregate
        self.precision = precision
        self.allow_upsample = bool(allow_upsample)
        self.workers = workers
        self.device = resolve_device(device, local_rank=None, key="device", hint="use 'cpu' or leave it unset")
        self.model = loaded.model.to(self.device).eval()
        self.run_config = loaded.config
        # The model's validity check on the window (kernel reach, no-GAP input length) runs once, here.
        self.model.config.validate_input_length(self.window_length)

    # -- what the run expects ---------------------------------------------------------------------------------

    @property
    def window_length(self) -> int:
        """Model input length in samples (the training window, or the crop length of a run trained on crops)."""
        if self.eval_windows is not None:
            return int(self.eval_windows.length)
        return int(self.preprocess_config.window_samples)

    @property
    def window_stride(self) -> int:
        """Samples between window starts (the run's evaluation stride; the window length by default)."""
        if self.eval_windows is not None and self.eval_windows.stride is not None:
            return int(self.eval_windows.stride)
        return self.window_length

    @property
    def fs(self) -> float:
        """The sampling rate the model was trained at."""
        return float(self.preprocess_config.fs)

    @property
    def min_fs(self) -> float:
        """The lowest input sampling rate accepted (see the class docstring and ``docs/predict.md``)."""
        if not self.allow_upsample:
            return self.fs
        band_top = self.preprocess_config.bandpass[1] if self.preprocess_config.bandpass else self.fs / 2
        return 2.0 * band_top

    # -- one record -------------------------------------------------------------------------------------------

    def prepare(self, record: Any) -> np.ndarray:
        """The record as the model's training cache stored it: float32 ``(n_leads, n)`` at the model's rate.

        The model's leads (:attr:`leads`) are taken from the record by name, whatever order and extra leads the
        file has. Raises ``RecordError`` for a rate below :attr:`min_fs`, leads of the model's set the record
        lacks (``missing_leads``, naming them) or non-finite samples.
        """
        from ecgscale.data.transforms import preprocess, to_storage

        where = record.path if record.path is not None else record.record_id
        fs = float(record.fs)
        if not math.isfinite(fs) or fs < self.min_fs - 1e-9:
            if self.allow_upsample:
                why = (
                    f"its Nyquist frequency ({fs / 2:g} Hz) is below the {self.min_fs / 2:g} Hz band the model "
                    "was trained on"
                )
            else:
                why = (
                    f"the model was trained at {self.fs:g} Hz and upsampling cannot restore the band between "
                    f"{fs / 2:g} and {self.fs / 2:g} Hz (allow_upsample / --allow-upsample accepts rates down to "
                    "twice the band-pass upper edge)"
                )
            raise RecordError(where, f"sampling rate {fs:g} Hz is too low: {why}", reason="low_fs", field="fs")
        x = preprocess(record, self.preprocess_config, leads=self.leads)
        # Rounded as the cache stores it (float16 by default): the model gets exactly its training inputs.
        return to_storage(x, self.preprocess_config.dtype).astype(np.float32, copy=False)

    def windows(self, signal: np.ndarray) -> np.ndarray:
        """Float32 ``(n_windows, n_leads, window)`` covering a prepared signal (see :func:`window_starts`)."""
        from ecgscale.train.windows import cut_windows

        return cut_windows(signal, self.window_length, self.window_stride).astype(np.float32, copy=False)

    def predict_windows(self, windows: np.ndarray) -> np.ndarray:
        """Probabilities float32 ``(n, K)`` of ``(n, n_leads, window)`` inputs, in batches of :attr:`batch_size`."""
        import torch

        from ecgscale.train.device import autocast, resolve_precision

        x_all = np.asarray(windows, dtype=np.float32)
        if x_all.ndim != 3 or x_all.shape[1] != len(self.leads):
            raise ConfigError(
                f"expected windows shaped (n, {len(self.leads)}, {self.window_length}), got {x_all.shape}",
                key="windows",
            )
        out = []
        amp_dtype = resolve_precision(self.precision, self.device).amp_dtype
        with torch.inference_mode():
            for start in range(0, len(x_all), self.batch_size):
                x = torch.from_numpy(x_all[start : start + self.batch_size]).to(self.device)
                with autocast(self.device, amp_dtype):
                    logits = self.model(x)
                out.append(torch.sigmoid(logits.float()).cpu().numpy())
        if not out:
            return np.zeros((0, len(self.label_space)), dtype=np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)

    def _row(self, record: Any, window_probs: np.ndarray) -> PredictionRow:
        from ecgscale.train.windows import aggregate_probabilities

        probs = aggregate_probabilities(window_probs, self.aggregate, axis=0).astype(np.float32)
        labels = probs >= self.thresholds
        abbr = self.label_space.abbreviations
        keys = self.label_space.keys
        return PredictionRow(
            record_id=str(record.record_id),
            path=None if record.path is None else str(record.path),
            probabilities=probs,
            labels=labels,
            window_probabilities=window_probs,
            abbreviations=tuple(a for a, on in zip(abbr, labels, strict=True) if on),
            codes=tuple(k for k, on in zip(keys, labels, strict=True) if on),
            fs=float(record.fs),
            duration_s=float(record.n_samples / record.fs),
        )

    def predict_record(self, record: Any) -> PredictionRow:
        """Predict one record (an ``EcgRecord`` or a path to a record file); bad input raises ``RecordError``."""
        if isinstance(record, str | os.PathLike):
            from ecgscale.data.readers import read_record

            record = read_record(record)
        return self._row(record, self.predict_windows(self.windows(self.prepare(record))))

    def predict_records(self, records: Iterable[Any]) -> list[PredictionRow]:
        """Predict several ``EcgRecord`` objects with their windows batched together (errors raise)."""
        records = list(records)
        prepared = [self.windows(self.prepare(r)) for r in records]
        return self._batched(records, prepared)

    def _batched(self, records: Sequence[Any], windows: Sequence[np.ndarray]) -> list[PredictionRow]:
        if not records:
            return []
        counts = [len(w) for w in windows]
        probs = self.predict_windows(np.concatenate(windows))
        bounds = np.cumsum([0, *counts])
        return [self._row(r, probs[a:b]) for r, a, b in zip(records, bounds[:-1], bounds[1:], strict=True)]

    # -- files ------------------------------------------------------------------------------------------------

    def _load(self, item: _Item) -> tuple[Any, np.ndarray | None, PredictionError | None]:
        """Read + prepare one input; never raises (one bad file must not stop the others)."""
        from ecgscale.data.readers import read, read_record

        record = None
        try:
            record = read(item.ref) if item.ref is not None else read_record(item.path)
            return record, self.windows(self.prepare(record)), None
        except RecordError as exc:
            rid = (
                record.record_id
                if record is not None
                else item.ref.record_id
                if item.ref is not None
                else item.path.stem
            )
            return record, None, PredictionError(str(exc.path), rid, exc.reason, str(exc))
        except Exception as exc:  # a reader bug on a strange file must not kill a 10k-record prediction
            log.debug("unexpected error on %s", item.path, exc_info=True)
            return (
                record,
                None,
                PredictionError(
                    str(item.path), item.path.stem, "unexpected_error", f"{item.path}: {type(exc).__name__}: {exc}"
                ),
            )

    def iter_predict(
        self, paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *, progress: bool | Progress = False
    ) -> Iterator[PredictionRow | PredictionError]:
        """Predict every record under ``paths`` (files and folders), yielding rows and errors in input order.

        Records are read and preprocessed by :attr:`workers` threads while the model runs on the previous
        chunk; windows of about :attr:`batch_size` records go through the model together.
        """
        items, errors = collect_inputs(paths)
        yield from errors
        chunk = max(1, self.batch_size)
        chunks = [items[i : i + chunk] for i in range(0, len(items), chunk)]
        bar = as_progress(progress).task("predict", total=len(items))
        # One thread prefetches the next chunk (overlapping file reading and filtering with the forward pass);
        # with workers > 1 the records of a chunk are also read in parallel (numpy/scipy release the GIL).
        item_pool = ThreadPoolExecutor(max_workers=self.workers) if self.workers > 1 else None
        prefetch = ThreadPoolExecutor(max_workers=1) if self.workers > 0 else None

        def load_chunk(c: list[_Item]) -> list[Any]:
            return list(item_pool.map(self._load, c)) if item_pool is not None else [self._load(it) for it in c]

        try:
            pending = None
            for i, c in enumerate(chunks):
                if prefetch is None:
                    loaded = load_chunk(c)
                else:
                    loaded = (pending if pending is not None else prefetch.submit(load_chunk, c)).result()
                    pending = prefetch.submit(load_chunk, chunks[i + 1]) if i + 1 < len(chunks) else None
                good = [(rec, w) for rec, w, err in loaded if err is None]
                rows = iter(self._batched([g[0] for g in good], [g[1] for g in good]))
                for _rec, _w, err in loaded:
                    yield err if err is not None else next(rows)
                bar.advance(len(c))
        finally:
            for pool in (prefetch, item_pool):
                if pool is not None:
                    pool.shutdown(wait=True, cancel_futures=True)
            bar.close()

    def predict_paths(
        self, paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *, progress: bool | Progress = False
    ) -> PredictionResult:
        """Predict every record under ``paths``: ``PredictionResult(table, errors)`` (see :meth:`table_of`)."""
        rows: list[PredictionRow] = []
        errors: list[PredictionError] = []
        for out in self.iter_predict(paths, progress=progress):
            (rows if isinstance(out, PredictionRow) else errors).append(out)
        return PredictionResult(self.table_of(rows), errors_frame(errors))

    def column_names(self) -> list[str]:
        """``p_<abbreviation>`` per class (the class key instead where abbreviations repeat)."""
        abbr = self.label_space.abbreviations
        names = abbr if len(set(abbr)) == len(abbr) else self.label_space.keys
        return [f"p_{a}" for a in names]

    def table_of(self, rows: Sequence[PredictionRow]) -> pd.DataFrame:
        """Rows as a DataFrame: record_id, path, ``p_<abbr>`` per class, labels, codes, n_windows, fs, duration_s."""
        cols = self.column_names()
        probs = np.stack([r.probabilities for r in rows]) if rows else np.zeros((0, len(cols)), dtype=np.float32)
        frame = pd.DataFrame({"record_id": [r.record_id for r in rows], "path": [r.path or "" for r in rows]})
        frame = pd.concat([frame, pd.DataFrame(probs, columns=cols)], axis=1)
        frame["labels"] = [";".join(r.abbreviations) for r in rows]
        frame["codes"] = [";".join(r.codes) for r in rows]
        frame["n_windows"] = np.asarray([r.n_windows for r in rows], dtype=np.int64)
        frame["fs"] = np.asarray([r.fs for r in rows], dtype=np.float64)
        frame["duration_s"] = np.asarray([round(r.duration_s, 4) for r in rows], dtype=np.float64)
        return frame

    def __repr__(self) -> str:
        tag = getattr(self.model.config, "tag", type(self.model).__name__)
        return (
            f"Predictor({str(self.run_dir)!r}, model={tag}, classes={len(self.label_space)}, "
            f"leads={self.leads.tag}, fs={self.fs:g}, window={self.window_length}, aggregate={self.aggregate!r}, "
            f"device={self.device})"
        )


def errors_frame(errors: Sequence[PredictionError]) -> pd.DataFrame:
    """Errors as a DataFrame with ``ERROR_COLUMNS`` (path, record_id, reason, error)."""
    return pd.DataFrame(
        {
            "path": [e.path for e in errors],
            "record_id": [e.record_id or "" for e in errors],
            "reason": [e.reason for e in errors],
            "error": [e.message for e in errors],
        },
        columns=list(ERROR_COLUMNS),
    )


def _record_key(path: Path) -> str:
    """The same record named by its ``.hea``, ``.mat`` or ``.dat`` file is one input."""
    suffix = path.suffix.lower()
    if suffix in (".mat", ".dat"):
        path = path.with_suffix(".hea")
    return os.path.realpath(path)


def collect_inputs(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
) -> tuple[list[_Item], list[PredictionError]]:
    """Inputs to predict and inputs that are already known to be unusable.

    Folders are walked with ``ecgscale.data.readers.discover``; its skipped files become errors, except
    unlabelled Tianchi records (``no_labels``: test sets), which are predicted. A file named explicitly is
    read with ``read_record`` whatever its name, so a non-ECG file given by the user is reported, not ignored.
    """
    from ecgscale.data.readers import discover
    from ecgscale.data.readers.ptbxl import PTBXL_DATABASE

    given = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    items: list[_Item] = []
    errors: list[PredictionError] = []
    seen: set[str] = set()

    def add(item: _Item) -> None:
        key = _record_key(item.path)
        if key not in seen:
            seen.add(key)
            items.append(item)

    for p in map(Path, given):
        if not p.exists():
            errors.append(PredictionError(str(p), None, "not_found", f"{p}: no such file or directory"))
        elif p.is_file() and p.name != PTBXL_DATABASE:
            add(_Item(p))
        else:
            found = discover(p)
            for ref in found.refs:
                add(_Item(Path(ref.path), ref))
            for skip in found.skipped:
                if skip.reason == "no_labels" and Path(skip.path).suffix.lower() == ".txt":
                    add(_Item(Path(skip.path)))
                else:
                    errors.append(PredictionError(str(skip.path), None, skip.reason, skip.message))
    return items, errors


def predict_paths(
    run_dir: str | os.PathLike[str], paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], **options: Any
) -> PredictionResult:
    """``Predictor(run_dir, **options).predict_paths(paths)`` (``progress`` goes to ``predict_paths``)."""
    progress = bool(options.pop("progress", False))
    return Predictor(run_dir, **options).predict_paths(paths, progress=progress)


def errors_path_for(out: str | os.PathLike[str]) -> Path:
    """Where the error list of an output goes: ``preds.csv`` → ``preds_errors.csv``; ``outdir`` → ``outdir_errors.csv``.

    Beside, not inside, a challenge output folder, so ``ecgscale score`` sees only output files there.
    """
    out = Path(out)
    stem = out.name[: -len(out.suffix)] if out.suffix.lower() == ".csv" else out.name
    return out.with_name(f"{stem}_errors.csv")


def write_predictions_csv(result: PredictionResult, out: str | os.PathLike[str]) -> Path:
    """The table as CSV (probabilities to 6 significant digits), written atomically."""
    from ecgscale.fileio import atomic_path

    with atomic_path(out, suffix=".csv") as tmp:
        result.table.to_csv(tmp, index=False, float_format="%.6g")
    return Path(out)


def write_errors_csv(result: PredictionResult, out: str | os.PathLike[str]) -> Path:
    """The error list as CSV (``ERROR_COLUMNS``), written atomically."""
    from ecgscale.fileio import atomic_path

    with atomic_path(out, suffix=".csv") as tmp:
        result.errors.to_csv(tmp, index=False)
    return Path(out)


def write_challenge_outputs(
    predictor: Predictor, rows: Iterable[PredictionRow], out_dir: str | os.PathLike[str]
) -> tuple[list[Path], list[PredictionError]]:
    """One official CinC 2021 output file ``<record_id>.csv`` per row (class keys, binary outputs, probabilities).

    Output files are named by record id: a second record with an id already written is returned as an error
    (``duplicate_id``) instead of overwriting the first.
    """
    from ecgscale.metrics.challenge_io import write_challenge_output

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keys = predictor.label_space.keys
    written: list[Path] = []
    errors: list[PredictionError] = []
    owners: dict[str, str | None] = {}
    for row in rows:
        if row.record_id in owners:
            errors.append(
                PredictionError(
                    row.path or row.record_id,
                    row.record_id,
                    "duplicate_id",
                    f"{row.path}: record id {row.record_id!r} was already written from "
                    f"{owners[row.record_id]}; challenge output files are named by record id",
                )
            )
            continue
        owners[row.record_id] = row.path
        # Not atomic per file: an fsync per small file would dominate; a truncated file reads back as malformed.
        written.append(
            write_challenge_output(
                out / f"{row.record_id}.csv",
                row.record_id,
                keys,
                row.labels,
                row.probabilities.astype(np.float64),
                atomic=False,
            )
        )
    return written, errors
