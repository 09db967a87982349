"""CLI commands: ``report`` (the study page), ``recommend`` (best model within a budget), ``demo`` (end to end)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from ecgscale.cli._app import app, console

__all__: list[str] = []


@app.command("report")
def report_command(
    study: str = typer.Option(..., "--study", help="Study name (folder under --studies-dir)."),
    storage: str | None = typer.Option(None, "--storage", help="SQLAlchemy URL; default the study's SQLite file."),
    studies_dir: Path = typer.Option(Path("studies"), "--studies-dir", help="Folder holding the studies."),
    out: Path = typer.Option(Path("report"), "--out", help="Output folder (report.html, report.md, tables/)."),
    cache: Path | None = typer.Option(None, "--cache", help="The study's cache (default: found via its trials)."),
    run: Path | None = typer.Option(None, "--run", help="A trained run of the recommended model (eval_test.json)."),
    search_compare: Path | None = typer.Option(
        None, "--search-compare", help="Output folder of `ecgscale search-compare`, if any."
    ),
    metric: str = typer.Option("macro_auroc", "--metric", help="Metric the recommendation is ranked on."),
) -> None:
    """Write ONE self-contained HTML page (figures embedded, no JavaScript, opens offline) plus Markdown tables:
    data summary, D/C/K figures per label group, receptive field vs performance with/without GAP, the
    cost–performance Pareto front, per-label best architectures, the search comparison, the recommended
    configuration and the commands to reproduce."""
    from ecgscale.report.build import build_report

    files = build_report(
        study,
        storage=storage,
        studies_dir=studies_dir,
        out=out,
        cache=cache,
        run_dir=run,
        search_compare_dir=search_compare,
        metric=metric,
    )
    console.print(f"report: [bold]{files.html}[/] (+ {files.markdown.name}, {len(files.tables)} table files)")


@app.command("recommend")
def recommend_command(
    study: str = typer.Option(..., "--study", help="Study name (folder under --studies-dir)."),
    storage: str | None = typer.Option(None, "--storage", help="SQLAlchemy URL; default the study's SQLite file."),
    studies_dir: Path = typer.Option(Path("studies"), "--studies-dir", help="Folder holding the studies."),
    budget_params: float | None = typer.Option(None, "--budget-params", help="At most this many parameters."),
    budget_flops: float | None = typer.Option(None, "--budget-flops", help="At most this many forward FLOPs."),
    budget_latency_ms: float | None = typer.Option(
        None, "--budget-latency-ms", help="At most this CPU latency (ms) for one 10-s record (measured here)."
    ),
    metric: str = typer.Option("macro_auroc", "--metric", help="Metric to maximise (validation-selected)."),
    leads: str | None = typer.Option(
        None, "--leads", help="For a sweep with a lead-set axis: recommend for this lead set (default 12 leads)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the recommendation as JSON."),
) -> None:
    """The best configuration within a compute budget, from the study's cost–performance Pareto front, with its
    expected metric (mean ± std over repeats) and the configurations it beat."""
    from rich.table import Table

    from ecgscale.report.build import load_study
    from ecgscale.report.recommend import recommend

    loaded = load_study(study, storage=storage, studies_dir=studies_dir)
    results, tag = _lead_set_rows(loaded.results, leads)
    rec = recommend(
        results,
        metric=metric,
        budget_params=budget_params,
        budget_flops=budget_flops,
        budget_latency_ms=budget_latency_ms,
        n_samples=loaded.window_samples,
        n_windows=loaded.record_windows,
        latency_cache=loaded.folder / "latency.json",
    )
    protocol = dict((loaded.attrs.get("protocol") or {}).get("train") or {})
    if tag != "12":
        protocol["leads"] = tag
    command = rec.train_command(cache=str(loaded.cache_path or "CACHE"), train=protocol)
    if as_json:
        console.print_json(json.dumps({"study": study, **rec.to_dict(), "train_command": command}))
        return
    console.print(f"[bold green]recommended[/] {rec.summary()}")
    console.print(f"train it: [bold]{command}[/]")
    if len(rec.beaten):
        table = Table(title=f"beaten within the budget (top {min(10, len(rec.beaten))} of {len(rec.beaten)})")
        latency = "latency_ms" in rec.beaten.columns
        for col in ("D", "C", "K", "GAP", "params", *(["ms / record"] if latency else []), rec.select_column, "± std"):
            table.add_column(col, justify="right")
        for row in rec.beaten.head(10).itertuples():
            table.add_row(
                str(row.depth),
                str(row.channels),
                str(row.kernel_size),
                "yes" if row.gap else "no",
                f"{row.params:,}",
                *([f"{row.latency_ms:.2f}"] if latency else []),
                f"{row.mean:.3f}",
                f"{row.std:.3f}",
            )
        console.print(table)


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("demo-out"), "--out", help="Output folder; re-running resumes in it."),
    quick: bool = typer.Option(False, "--quick", help="A first look in under ~3 minutes (smaller everything)."),
    gpu: bool | None = typer.Option(None, "--gpu/--cpu", help="Force CUDA or CPU (default: CUDA when present)."),
    preset: str | None = typer.Option(None, "--preset", hidden=True, help="full | quick | tiny (tests)."),
    workers: int | None = typer.Option(None, "--workers", help="Processes for data generation/preparation."),
) -> None:
    """From nothing: generate the synthetic benchmark → prepare the cache → axes sweep with the GAP ablation and
    a small wide-vs-narrow search → train and evaluate the recommended model → write the report. Full demo
    under 20 minutes on a 2-core CPU; each finished stage is reused when re-run."""
    import logging

    from rich.table import Table

    from ecgscale.study.storage import quiet_optuna
    from ecgscale.workflows.demo import run_demo

    # The demo's own stage lines and the sweep's progress bar say what is happening; per-trial chatter from
    # optuna and the trainer would bury them (``-v`` brings it back).
    if logging.getLogger().level > logging.DEBUG:
        quiet_optuna()
        logging.getLogger("ecgscale.train").setLevel(logging.WARNING)
    name = preset or ("quick" if quick else "full")
    device = "auto" if gpu is None else ("cuda" if gpu else "cpu")
    summary = run_demo(out, preset=name, device=device, progress=True, workers=workers)
    table = Table(title=f"ecgscale demo ({summary.preset}, {summary.device})")
    for col in ("stage", "status", "wall s", "CPU s", "result"):
        table.add_column(col, justify="right" if col.endswith(" s") else "left")
    for s in summary.stages:
        table.add_row(s.name, s.status, f"{s.seconds:.1f}", f"{s.cpu_seconds:.1f}", s.detail)
    table.add_row("total", "", f"{summary.total_seconds:.1f}", f"{summary.total_cpu_seconds:.1f}", "")
    console.print(table)
    c = summary.recommended
    console.print(
        f"recommended: [bold]D={c['depth']} C={c['channels']} K={c['kernel_size']} {'GAP' if c['gap'] else 'no GAP'}[/]"
    )
    metrics = ", ".join(f"{k} {v:.3f}" for k, v in summary.test_metrics.items() if isinstance(v, int | float))
    console.print(f"test metrics: {metrics}")
    console.print(f"report: [bold]{summary.report_html}[/]")


def _lead_set_rows(results: Any, leads: str | None) -> tuple[Any, str]:
    """The trials of one lead set (``leads``; 12 by default) and its tag; a study without a lead-set axis is a
    12-lead study."""
    from ecgscale.data.leads import parse_leads
    from ecgscale.errors import ConfigError

    tag = parse_leads(leads, key="--leads").tag
    present = sorted(results["leads"].unique()) if "leads" in results.columns else ["12"]
    if tag not in present:
        raise ConfigError(f"got {leads!r}; the study has the lead sets {', '.join(present)}", key="--leads")
    if "leads" in results.columns:
        results = results[results["leads"] == tag]
    return results, tag
