"""CLI commands: synth (registered on the shared app)."""

from __future__ import annotations

from pathlib import Path

import typer

from ecgscale.cli._app import app, console

__all__ = ["synth"]


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


@app.command("synth")
def synth(
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (must not exist or be empty)."),
    n: int = typer.Option(1000, "--n", "-n", help="Number of records."),
    seed: int = typer.Option(0, "--seed", help="Seed; the same seed gives byte-identical files."),
    format: str = typer.Option("cinc2021", "--format", "-f", help="cinc2021 (WFDB .hea/.mat) or tianchi (.txt)."),
    sources: str | None = typer.Option(
        None,
        "--sources",
        help="Comma-separated source profiles: cpsc_like, ptbxl_like, ningbo_like, incart_like (default: all four).",
    ),
    fs: int | None = typer.Option(None, "--fs", help="Sampling rate for every source (Hz, 100-2000)."),
    classes: str | None = typer.Option(
        None, "--classes", help="Only records whose labels are among these CinC classes (e.g. NSR,AF,RBBB)."
    ),
    workers: int = typer.Option(1, "--workers", "-j", help="Worker processes (output does not depend on it)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a previous synth output in --out."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Generate the synthetic 12-lead ECG benchmark in the real CinC 2021 or Tianchi formats.

    Records come from a cardiac dipole model projected through the Dower transform, with rhythms,
    conduction blocks, axis, interval and morphology findings whose labels are derived from the generated
    signal, realistic artefacts, and several sources with different rates and label mixes.
    """
    from ecgscale.synth import generate

    summary = generate(
        out,
        n=n,
        seed=seed,
        format=format,
        sources=_split(sources),
        fs=fs,
        classes=_split(classes),
        progress=progress,
        workers=workers,
        overwrite=overwrite,
    )
    per_source = ", ".join(f"{k} {v}" for k, v in summary.sources.items())
    console.print(
        f"wrote {summary.n} records ({per_source}) to {summary.out} "
        f"in {summary.seconds:.1f} s ({summary.records_per_s:.0f} records/s)"
    )
    top = sorted(summary.label_counts.items(), key=lambda kv: -kv[1])
    console.print("labels: " + ", ".join(f"{k} {v}" for k, v in top if v))
