"""CLI command ``ecgscale prepare``: read ECG sources once into a preprocessed, memory-mapped cache."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import typer

from ecgscale.cli._app import app, console
from ecgscale.errors import ConfigError
from ecgscale.progress import as_progress

__all__ = ["prepare"]


def _floats(text: str, what: str, n: int) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise ConfigError(f"{text!r} is not {n} comma-separated numbers", key=what) from None
    if len(values) != n:
        raise ConfigError(f"{text!r} must be {n} comma-separated numbers", key=what)
    return values


@app.command("prepare")
def prepare(
    sources: list[Path] = typer.Argument(
        ..., help="Record files or folders (any WFDB, CinC 2021, PTB-XL, Tianchi, SPH, CODE-15%)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Cache folder to create (or reuse when up to date)."),
    fs: float = typer.Option(250.0, "--fs", help="Target sampling rate in Hz."),
    window_s: float = typer.Option(10.0, "--window", help="Model input window in seconds."),
    max_store_s: float = typer.Option(60.0, "--max-store", help="Longest signal stored per record (centre part), s."),
    bandpass: str = typer.Option("0.5,45", "--bandpass", help="Band-pass 'LOW,HIGH' in Hz, or 'none'."),
    standardize: bool = typer.Option(True, "--standardize/--no-standardize", help="Per-lead zero mean, unit SD."),
    dtype: str = typer.Option("float16", "--dtype", help="Storage dtype: float16 or float32."),
    resampler: str = typer.Option(
        "fft", "--resampler", help="fft (resample + band-pass in one FFT) or poly (scipy resample_poly + sosfiltfilt)."
    ),
    labels: str = typer.Option(
        "auto", "--labels", help="Label space: auto, cinc2021, cinc2021-all, tianchi or ptbxl:<task>."
    ),
    labels_csv: Path | None = typer.Option(
        None,
        "--labels-csv",
        help="Your labels table: a record column plus 0/1 class columns or a code-list column (docs/own-data.md). "
        "Its classes are the label space; with --labels cinc2021 they are mapped to the CinC 2021 classes.",
    ),
    record_column: str | None = typer.Option(
        None, "--record-column", help="Record column of --labels-csv (default: record, record_id, id, filename …)."
    ),
    label_columns: str | None = typer.Option(
        None, "--label-columns", help="Comma-separated 0/1 class columns of --labels-csv (default: all others)."
    ),
    split: str = typer.Option("auto", "--split", help="Split method: auto, stratified, official or source."),
    train_folds: str | None = typer.Option(
        None, "--train-folds", help="PTB-XL strat_folds for training with --split official, e.g. 1-7 (default 1-8)."
    ),
    val_folds: str | None = typer.Option(
        None, "--val-folds", help="PTB-XL strat_folds for validation, e.g. 8 (default 9)."
    ),
    test_folds: str | None = typer.Option(
        None, "--test-folds", help="PTB-XL strat_folds for testing, e.g. 9 (default 10; the shipped copy lacks 10)."
    ),
    fractions: str = typer.Option("0.8,0.1,0.1", "--fractions", help="Train,val,test fractions."),
    test_source: list[str] = typer.Option([], "--test-source", help="Held-out source for --split source (repeatable)."),
    seed: int = typer.Option(0, "--seed", help="Split seed."),
    by_patient: bool = typer.Option(True, "--by-patient/--no-by-patient", help="Keep a patient's records together."),
    ptbxl_fs: int = typer.Option(500, "--ptbxl-fs", help="PTB-XL records to read: 500 or 100 Hz."),
    drop_unlabelled: bool = typer.Option(
        False,
        "--drop-unlabelled",
        help="Leave out (counted as skipped, reason no_class) records with no class of the label space, "
        "as the PTB-XL benchmark does for each task.",
    ),
    workers: int | None = typer.Option(None, "--workers", "-j", help="Worker processes (default: all cores)."),
    rebuild: bool = typer.Option(False, "--rebuild", help="Replace a cache built with other parameters."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Read, resample, filter and standardise every record once into a cache for training.

    Bad records are skipped (logged with their reason) and counted in the summary; the cache is written
    atomically, so an interrupted prepare never leaves a half cache or damages an existing one.
    """
    from ecgscale.data.cache import build_cache
    from ecgscale.data.readers.label_table import LabelTable, read_label_table
    from ecgscale.data.splits import SplitConfig, parse_folds
    from ecgscale.data.transforms import PreprocessConfig

    band = None if bandpass.strip().lower() in ("none", "off", "") else _floats(bandpass, "bandpass", 2)
    config = PreprocessConfig(
        fs=fs,
        window_s=window_s,
        max_store_s=max_store_s,
        bandpass=band,
        standardize=standardize,
        dtype=dtype,
        resampler=resampler,
    )
    folds = None
    if any(f is not None for f in (train_folds, val_folds, test_folds)):
        if split not in ("auto", "official"):
            raise ConfigError(
                f"--train-folds/--val-folds/--test-folds need --split official (got --split {split})", key="folds"
            )
        defaults = ("1-8", "9", "10")
        given = (train_folds, val_folds, test_folds)
        folds = tuple(
            parse_folds(text if text is not None else default, what=f"--{role}-folds")
            for role, text, default in zip(("train", "val", "test"), given, defaults, strict=True)
        )
    split_config = SplitConfig(
        folds=folds,
        method=split,
        fractions=_floats(fractions, "fractions", 3),
        seed=seed,
        group_by_patient=by_patient,
        test_sources=tuple(test_source),
    )
    label_choice: str | LabelTable = labels
    if labels_csv is not None:
        if labels not in ("auto", "cinc2021"):
            raise ConfigError(
                f"--labels-csv takes --labels auto (your classes) or cinc2021, not {labels}", key="labels"
            )
        columns = None if label_columns is None else [c.strip() for c in label_columns.split(",") if c.strip()]
        table = read_label_table(labels_csv, record_column=record_column, label_columns=columns)
        label_choice = dataclasses.replace(table, map_to="cinc2021" if labels == "cinc2021" else None)
    elif record_column is not None or label_columns is not None:
        raise ConfigError("--record-column/--label-columns need --labels-csv", key="labels-csv")
    summary = build_cache(
        sources,
        out,
        config=config,
        labels=label_choice,
        split=split_config,
        workers=workers,
        progress=as_progress(progress and not as_json),
        rebuild=rebuild,
        ptbxl_fs=ptbxl_fs,
        drop_unlabelled=drop_unlabelled,
    )
    if as_json:
        console.print_json(json.dumps(summary.to_dict()))
        return
    _print_summary(summary)


def _print_summary(summary) -> None:
    from rich.table import Table

    if summary.status == "up_to_date":
        console.print(
            f"[green]{summary.out}: up to date[/] ({summary.n_records} records, "
            f"preprocessing {summary.preprocess_hash}); nothing to do"
        )
        return
    if summary.status == "resplit":
        console.print(f"[green]{summary.out}: up to date[/]; split recomputed without re-reading signals")
    head = Table(title=f"Cache {summary.out} ({summary.status})", show_header=False)
    head.add_row("records found", str(summary.n_found))
    head.add_row("records cached", str(summary.n_records))
    head.add_row("skipped", str(summary.n_skipped))
    for reason, count in summary.skipped_by_reason.items():
        head.add_row(f"  {reason}", str(count))
    head.add_row("label space", summary.label_space)
    head.add_row("unknown codes (occurrences)", str(summary.n_unknown_codes))
    counts = "/".join(str(summary.split_counts.get(s, 0)) for s in ("train", "val", "test"))
    head.add_row("split train/val/test", counts)
    if summary.split_counts.get("unassigned"):
        head.add_row("  in no split (folds without a role)", str(summary.split_counts["unassigned"]))
    head.add_row("preprocessing hash", summary.preprocess_hash)
    if summary.status in ("built", "rebuilt"):
        head.add_row("time", f"{summary.seconds:.1f} s ({summary.records_per_s:,.0f} records/s)")
    console.print(head)

    sources = list(summary.label_counts)
    if sources:
        labels = sorted({k for counts in summary.label_counts.values() for k in counts})
        table = Table(title="Positive records per class and source")
        table.add_column("class")
        for s in sources:
            table.add_column(s, justify="right")
        table.add_row("[dim]records[/]", *(str(summary.records_per_source.get(s, 0)) for s in sources))
        for label in labels:
            table.add_row(label, *(str(summary.label_counts[s].get(label, 0)) for s in sources))
        console.print(table)
    if summary.unknown_codes:
        top = ", ".join(f"{c} ({n})" for c, n in list(summary.unknown_codes.items())[:10])
        console.print(f"[dim]most frequent codes outside the label space: {top}[/]")
