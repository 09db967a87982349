"""CLI commands: synth (registered on the shared app)."""

from __future__ import annotations

from pathlib import Path

import typer

from ecgscale.cli._app import app, console
from ecgscale.progress import as_progress

__all__ = ["synth"]


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


@app.command("synth")
def synth(
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (must not exist or be empty)."),
    n: int | None = typer.Option(None, "--n", "-n", help="Number of records (default 1000, or the profile's)."),
    profile: str | None = typer.Option(
        None,
        "--profile",
        help="A whole-benchmark preset: cinc2021 (the CinC 2021 training set's 88,253 records in its seven "
        "source groups, with their rates, durations and label prevalences).",
    ),
    fraction: float | None = typer.Option(
        None, "--fraction", help="With --profile: generate this fraction of its records (0 < f <= 1), same shares."
    ),
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
    from ecgscale.errors import ConfigError
    from ecgscale.synth import generate
    from ecgscale.synth.sources import profile_records, profile_sources

    chosen: list | None = _split(sources)
    if profile is not None:
        if sources is not None:
            raise ConfigError("give --profile or --sources, not both", key="--sources")
        if n is not None and fraction is not None:
            raise ConfigError("give --n or --fraction with --profile, not both", key="--fraction")
        chosen = list(profile_sources(profile))
        if n is None:
            n = profile_records(profile, 1.0 if fraction is None else fraction)
    elif fraction is not None:
        raise ConfigError("only applies with --profile", key="--fraction")
    summary = generate(
        out,
        n=1000 if n is None else n,
        seed=seed,
        format=format,
        sources=chosen,
        fs=fs,
        classes=_split(classes),
        progress=as_progress(progress),
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
