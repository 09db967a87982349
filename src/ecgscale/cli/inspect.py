"""CLI command ``ecgscale inspect``: what is in a record file or a folder of records, before preparing it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from ecgscale.cli._app import app, console
from ecgscale.errors import ConfigError

__all__ = ["inspect"]


@app.command("inspect")
def inspect(
    path: Path = typer.Argument(
        ..., help="A record file (.hea/.mat/.dat/.h5, Tianchi .txt), a folder of records, or a run directory."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables (same content)."),
    ptbxl_fs: int = typer.Option(500, "--ptbxl-fs", help="PTB-XL sampling rate to read: 500 or 100 Hz."),
    max_skipped: int = typer.Option(20, "--max-skipped", help="Skipped files listed in the table view."),
) -> None:
    """Show one record (rate, length, leads, demographics, codes with meanings and label groups), summarise
    a folder (records per source, label prevalence per class, unknown codes, skipped files by reason), or say
    what a trained run expects as input (a run directory: rate, window, units, leads, preprocessing hash)."""
    from ecgscale.data.readers import describe_record, discover, read_record, summarize

    if ptbxl_fs not in (100, 500):
        raise ConfigError(f"--ptbxl-fs must be 100 or 500, got {ptbxl_fs}", key="--ptbxl-fs")
    if not path.exists():
        raise ConfigError(f"{path}: no such file or folder", key="PATH")
    from ecgscale.infer.contract import is_run_dir, run_contract

    if path.is_dir() and is_run_dir(path):
        contract = run_contract(path)
        if as_json:
            console.print_json(json.dumps(contract, ensure_ascii=False))
        else:
            _print_contract(contract)
        return
    if path.is_dir():
        info = summarize(discover(path, ptbxl_fs=ptbxl_fs))
        info["path"] = str(path)
        if as_json:
            console.print_json(json.dumps(info, ensure_ascii=False))
        else:
            _print_summary(info, max_skipped)
        return
    info = describe_record(read_record(path))
    if as_json:
        console.print_json(json.dumps(info, ensure_ascii=False))
    else:
        _print_record(info)


def _fmt(value: Any) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _print_record(info: dict[str, Any]) -> None:
    from rich.table import Table

    head = Table(show_header=False, box=None, pad_edge=False)
    head.add_column(style="bold")
    head.add_column()
    rows = [
        ("record", info["record_id"]),
        ("path", info["path"]),
        ("format / source", f"{info['format']} / {info['source']}"),
        ("sampling rate", f"{_fmt(info['fs'])} Hz"),
        ("samples", f"{info['n_samples']} ({info['duration_s']:g} s)"),
        ("leads", " ".join(info["lead_names"])),
        ("age / sex", f"{_fmt(info['age'])} / {_fmt(info['sex'])}"),
    ]
    if info["patient_id"] is not None:
        rows.append(("patient", info["patient_id"]))
    if info["flat_leads"]:
        rows.append(("flat leads", ", ".join(info["flat_leads"])))
    if info["amplitude_mv"]:
        rows.append(("amplitude", f"{info['amplitude_mv']['min']:.3f} … {info['amplitude_mv']['max']:.3f} mV"))
    for key, value in info["meta"].items():
        rows.append((key, str(value)))
    for k, v in rows:
        head.add_row(k, v)
    console.print(head)
    codes = Table(title="codes", title_justify="left")
    for col in ("code", "abbreviation", "name", "group", "scored"):
        codes.add_column(col)
    for c in info["codes"]:
        if not c["known"]:
            codes.add_row(c["code"], "[yellow]unknown[/]", "", "", "")
            continue
        scored = "" if c.get("scored") is None else ("yes" if c["scored"] else "no")
        codes.add_row(c["code"], c["abbreviation"] or "", c["name"] or "", c["group"] or "-", scored)
    if not info["codes"]:
        codes.add_row("(none)", "", "", "", "")
    console.print(codes)


def _print_summary(info: dict[str, Any], max_skipped: int) -> None:
    from rich.table import Table

    console.print(
        f"[bold]{info['path']}[/]: {info['n_records']} records "
        f"({', '.join(f'{k}: {v}' for k, v in info['formats'].items()) or 'none'}), "
        f"{info['n_skipped']} skipped"
    )
    if info["sampling_rates"]:
        console.print("sampling rates: " + ", ".join(f"{k} Hz x{v}" for k, v in info["sampling_rates"].items()))
    if info["duration_s"]:
        d = info["duration_s"]
        console.print(f"duration: {d['min']:.1f} s min, {d['median']:.1f} s median, {d['max']:.1f} s max")
    sources = Table(title="records per source", title_justify="left")
    sources.add_column("source")
    sources.add_column("records", justify="right")
    for k, v in info["sources"].items():
        sources.add_row(k, str(v))
    console.print(sources)
    if info["label_space"]:
        space = info["label_space"]
        prev = Table(title=f"label prevalence ({space['name']}, {space['n_classes']} classes)", title_justify="left")
        for col in ("class", "name", "group"):
            prev.add_column(col)
        prev.add_column("records", justify="right")
        prev.add_column("%", justify="right")
        for row in info["prevalence"]:
            prev.add_row(
                row["abbreviation"], row["name"], row["group"] or "-", str(row["count"]), f"{100 * row['fraction']:.1f}"
            )
        console.print(prev)
    elif info["label_space_error"]:
        console.print(f"[yellow]no label prevalence:[/] {info['label_space_error']}")
    if info["unknown_codes"]:
        top = list(info["unknown_codes"].items())[:15]
        console.print(
            "codes outside the label space: "
            + ", ".join(f"{k} x{v}" for k, v in top)
            + (" …" if len(info["unknown_codes"]) > len(top) else "")
        )
    if info["skipped_by_reason"]:
        skipped = Table(title="skipped files by reason", title_justify="left")
        skipped.add_column("reason")
        skipped.add_column("files", justify="right")
        for k, v in info["skipped_by_reason"].items():
            skipped.add_row(k, str(v))
        console.print(skipped)
        for s in info["skipped"][:max_skipped]:
            console.print(f"  [dim]{s['message']}[/]", highlight=False)
        if len(info["skipped"]) > max_skipped:
            console.print(f"  [dim]… {len(info['skipped']) - max_skipped} more (--json lists all)[/]")


def _print_contract(c: dict[str, Any]) -> None:
    """The input contract in plain words, one line per requirement."""
    arch = c["architecture"]
    shape = f"D{arch['depth']}-C{arch['channels']}-K{arch['kernel_size']} {'GAP' if arch['gap'] else 'no GAP'}"
    weights = "" if c["weights_present"] else " [yellow](config only: no model.safetensors here)[/]"
    console.print(f"[bold]{c['run_dir']}[/]: {shape}, {len(c['classes'])} classes ({c['label_space']}){weights}")
    band = c["bandpass_hz"]
    lines = [
        ("units", "millivolts (mV); records whose header gives uV or V are converted when read"),
        (
            "leads",
            f"{c['n_leads']}, in this order: {', '.join(c['leads'])} (matched by name, any case; see docs/own-data.md)",
        ),
        ("sampling rate", f"{c['fs']:g} Hz; records at any other rate are resampled ({c['resampler']})"),
        ("band-pass", "none" if band is None else f"{band[0]:g}-{band[1]:g} Hz"),
        ("standardisation", "per lead, zero mean and unit SD" if c["standardize"] else "none (amplitudes in mV)"),
        (
            "window",
            f"{c['window_s']:g} s = {c['window_samples']} samples per record (centre part of longer records, "
            "shorter ones zero-padded)",
        ),
    ]
    if c["eval_windows"]:
        w = c["eval_windows"]
        lines.append(
            (
                "model input",
                f"{c['model_input_s']:g} s windows every {w['stride_s']:g} s across the window, probabilities "
                f"combined by {w['aggregate']}",
            )
        )
    lines += [
        ("preprocessing hash", str(c["preprocess_hash"])),
        ("outputs", f"{', '.join(c['classes'])} (thresholds tuned on {c['thresholds_source']})"),
    ]
    parent = c.get("parent")
    if parent:
        how = "frozen trunk" if parent.get("freeze_trunk") else f"trunk lr x{parent.get('trunk_lr_factor', 1.0):g}"
        lines.append(("fine-tuned from", f"{parent['run_dir']} ({parent['head']} head, {how})"))
    width = max(len(k) for k, _ in lines)
    for key, text in lines:
        console.print(f"  {key:<{width}}  {text}", highlight=False)
