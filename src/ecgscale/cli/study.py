"""CLI commands: sweep, analyze, search, search-compare (scale studies on optuna)."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from ecgscale.cli._app import app, console, typed_on_command_line
from ecgscale.errors import ConfigError

log = logging.getLogger(__name__)

_RUNNER_HELP = (
    "What trains one configuration: 'train' (the real trainer), or 'surrogate[:SECONDS_PER_EPOCH]', an "
    "analytic stand-in that trains nothing, for checking storage/workers/analysis quickly."
)


@contextlib.contextmanager
def _storage_disk_errors(study: str, storage: str | None, studies_dir: Path) -> Iterator[None]:
    """Turn a study storage write refused by a full or read-only disk into an ``OSError`` naming the ``.db`` file.

    Why: SQLite says "database or disk is full" / "attempt to write a readonly database" through SQLAlchemy and
    optuna exceptions (sometimes behind optuna's own ``AssertionError``); the CLI prints a disk ``OSError`` as one
    line, anything else as a traceback.
    """
    from ecgscale.errors import EcgscaleError
    from ecgscale.study.storage import default_storage_url, storage_disk_error

    url = storage or default_storage_url(studies_dir, study)
    default_hook = threading.excepthook

    def heartbeat_hook(args: Any) -> None:
        # optuna's heartbeat thread dies with a traceback on the same full disk; the main thread reports it.
        if args.exc_value is not None and storage_disk_error(args.exc_value, url) is not None:
            log.debug("heartbeat thread stopped: %s", args.exc_value)
            return
        default_hook(args)

    threading.excepthook = heartbeat_hook
    try:
        yield
    except EcgscaleError:
        raise
    except Exception as exc:
        disk = storage_disk_error(exc, url)
        if disk is None or disk is exc:
            raise
        raise disk from exc
    finally:
        threading.excepthook = default_hook


def _set_threads(threads: int | None, n_workers_hint: int) -> None:
    """Workers sharing a machine split its cores instead of oversubscribing them."""
    n = threads or max(1, (os.cpu_count() or 1) // max(1, n_workers_hint))
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass


def _open_cache(cache: Path | None, *, required: bool) -> Any:
    if cache is None:
        if required:
            raise ConfigError("is required with the 'train' runner (a cache from `ecgscale prepare`)", key="--cache")
        return None
    from ecgscale.data.cache import open_cache

    return open_cache(cache)


def _make_runner(spec: str, cache: Any, *, progress: bool) -> tuple[Any, dict[str, Any]]:
    """The injected trial runner and the data identity recorded in the study."""
    from ecgscale.study.objective import SurrogateRunner, TrainRunner, cache_identity

    if spec == "train":
        return TrainRunner(cache, progress=progress), cache_identity(cache)
    if spec == "surrogate" or spec.startswith("surrogate:"):
        seconds = 0.0
        if ":" in spec:
            try:
                seconds = float(spec.split(":", 1)[1])
            except ValueError:
                raise ConfigError(f"got {spec!r}; allowed: surrogate:SECONDS (a number)", key="--runner") from None
        if cache is None:
            return SurrogateRunner(seconds_per_epoch=seconds), {"surrogate": True}
        space = cache.label_space
        labels = {c.abbreviation: c.group for c in space.classes if c.group is not None}
        sources = tuple(sorted(set(cache.manifest["source"].astype(str))))
        return (
            SurrogateRunner(labels=labels, sources=sources, seconds_per_epoch=seconds, fs=float(cache.config.fs)),
            {**cache_identity(cache), "surrogate": True},
        )
    raise ConfigError(f"got {spec!r}; allowed: train | surrogate[:SECONDS_PER_EPOCH]", key="--runner")


def _train_overrides(
    epochs: int,
    batch_size: int | None,
    lr: float | None,
    max_minutes: float | None,
    device: str | None,
    *,
    validate: bool,
) -> dict[str, Any]:
    out: dict[str, Any] = {"epochs": epochs}
    for key, value in (("batch_size", batch_size), ("lr", lr), ("max_minutes", max_minutes), ("device", device)):
        if value is not None:
            out[key] = value
    if epochs < 1:
        raise ConfigError(f"got {epochs}; allowed: an integer >= 1", key="--epochs")
    if validate:  # now, not in every trial (imports torch, so the surrogate skips it)
        from ecgscale.train import TrainConfig

        TrainConfig(**out)
    return out


def _recipe_settings(
    ctx: typer.Context, recipe: str, train: dict[str, Any], cache: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A recipe's training settings merged with this command's (options typed on the command line win), and its
    model settings other than the architecture.

    Shared by sweep, search and search-compare. A sweep's grid sets D/C/K/GAP, so only the recipe's other model
    settings (dropout) are returned; a search's space samples lr, weight decay, batch size and dropout on top of
    the training settings (the recipe contributes crops, schedule, windows and epochs) and ignores the model part.
    """
    from ecgscale.train import TrainConfig
    from ecgscale.train.recipes import check_preprocess, load_recipe

    loaded = load_recipe(recipe)
    merged = dict(loaded["train"])
    for key, value in train.items():  # the overrides' keys are the commands' option names (epochs, lr, ...)
        if typed_on_command_line(ctx, key) or key not in merged:
            merged[key] = value
    TrainConfig.from_dict(merged)
    if cache is not None:
        for line in check_preprocess(loaded, cache.config):
            console.print(f"[yellow]warning:[/] recipe {recipe}: {line}")
    model = {k: v for k, v in loaded["model"].items() if k not in ("depth", "channels", "kernel_size", "gap")}
    return merged, model


_SEARCH_RECIPE_HELP = (
    "Train every trial with a recipe's settings (built-in name, e.g. ptbxl, or a TOML file): crops, schedule, "
    "evaluation windows, epochs; --epochs/--max-minutes typed here override it; the space samples the "
    "architecture, lr, weight decay, batch size and dropout."
)


@app.command("sweep")
def sweep_cmd(
    ctx: typer.Context,
    study: str = typer.Option(..., "--study", help="Study name (folder under --studies-dir; key in --storage)."),
    cache: Path | None = typer.Option(None, "--cache", help="Prepared cache (`ecgscale prepare`)."),
    grid: str = typer.Option(
        "axes", "--grid", help="paper (250-point factorial), axes (one factor at a time), or a TOML/YAML grid file."
    ),
    storage: str | None = typer.Option(
        None,
        "--storage",
        help="SQLAlchemy URL shared by workers, e.g. "
        "postgresql://user@host/db (default: <studies-dir>/<study>/study.db).",
    ),
    epochs: int = typer.Option(30, "--epochs", help="Epochs per trial."),
    repeats: int | None = typer.Option(
        None, "--repeats", help="Seeds per configuration (error bars); default 1, or the grid file's seeds/repeats."
    ),
    leads: list[str] | None = typer.Option(
        None,
        "--leads",
        help="A lead-set axis: repeat for each set (--leads 12 --leads 6 --leads I,II,V2); every architecture is "
        "trained on each, from the one 12-lead cache. Replaces the grid file's 'leads' (docs/leads.md).",
    ),
    studies_dir: Path = typer.Option(Path("studies"), "--studies-dir", help="Where studies and trial runs live."),
    workers: int = typer.Option(
        1,
        "--workers",
        help="Worker processes this command starts on the study (sharing the start-up); each uses cores/N torch "
        "threads unless --threads. How many fit: docs/study.md.",
    ),
    n_workers_hint: int = typer.Option(
        1,
        "--n-workers-hint",
        help="Workers sharing this machine in all (other commands too); each uses cores/hint torch threads.",
    ),
    threads: int | None = typer.Option(None, "--threads", help="Torch threads per worker (overrides the split)."),
    timeout: float | None = typer.Option(None, "--timeout", help="Seconds after which no new trial starts."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Override the trainer's batch size."),
    lr: float | None = typer.Option(None, "--lr", help="Override the trainer's learning rate."),
    max_minutes: float | None = typer.Option(None, "--max-minutes", help="Wall-clock cap per trial."),
    device: str | None = typer.Option(None, "--device", help="auto | cpu | cuda[:N]."),
    heartbeat_interval: int = typer.Option(60, "--heartbeat-interval", help="Seconds between trial heartbeats."),
    grace_period: int | None = typer.Option(
        None,
        "--grace-period",
        help="Seconds without heartbeat after which a trial counts as dead and is re-run (default 2 x interval).",
    ),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Queue again grid points whose trials failed."),
    wait: bool = typer.Option(
        True,
        "--wait/--no-wait",
        help="When nothing is left to start, wait for other "
        "workers' trials (and re-run those whose worker died) before exiting.",
    ),
    runner: str = typer.Option("train", "--runner", help=_RUNNER_HELP),
    recipe: str | None = typer.Option(
        None,
        "--recipe",
        help="Train every trial with a recipe's settings (built-in name, e.g. ptbxl, or a TOML file); "
        "--epochs/--batch-size/--lr typed here override it; the grid sets the architecture.",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Train every configuration of a scale grid; any number of workers may share one study.

    Re-running the same command resumes the study (finished configurations are not re-run). Start more
    workers, on this or other machines, with the same --study and a shared --storage URL.
    """
    from ecgscale.study.grids import resolve_grid
    from ecgscale.study.storage import quiet_optuna
    from ecgscale.study.sweep import SweepSettings, run_sweep

    quiet_optuna()
    if repeats is not None and repeats < 1:
        raise ConfigError(f"got {repeats}; allowed: an integer >= 1", key="--repeats")
    if workers < 1:
        raise ConfigError(f"got {workers}; allowed: an integer >= 1", key="--workers")
    g = resolve_grid(grid, seeds=None if repeats is None else tuple(range(repeats)), leads=leads or None)
    train = _train_overrides(epochs, batch_size, lr, max_minutes, device, validate=runner == "train")
    if runner == "train":
        _set_threads(threads, max(n_workers_hint, workers))
    data = _open_cache(cache, required=runner == "train")
    model: dict[str, Any] = {}
    if recipe is not None:
        train, model = _recipe_settings(ctx, recipe, train, data)
    run_trial, identity = _make_runner(runner, data, progress=False)
    settings = SweepSettings(
        name=study,
        grid=g,
        train=train,
        model=model,
        studies_dir=studies_dir,
        storage=storage,
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
        timeout=timeout,
        wait=wait,
        retry_failed=retry_failed,
    )
    with _storage_disk_errors(study, storage, studies_dir):
        summary = run_sweep(settings, runner=run_trial, data=identity, progress=progress, isolate=True, workers=workers)
    state = "complete" if summary.done else "incomplete"
    who = "this worker" if workers == 1 else f"its {workers} workers"
    console.print(
        f"study [bold]{study}[/]: {summary.n_complete}/{summary.n_points} grid points {state}; {who} ran "
        f"{len(summary.ran)} trial(s), {len(summary.failed)} failed, {len(summary.duplicates)} duplicate(s) "
        f"skipped in {summary.seconds:.1f} s ({summary.storage})",
        highlight=False,
        soft_wrap=True,
    )
    _print_deaths(summary.died)
    if summary.failed:
        console.print("some trials failed; see `error` in the study's trials, fix, then re-run with --retry-failed")


def _print_deaths(died: tuple[tuple[int, str], ...]) -> None:
    """One line per trial whose training process died (recorded FAIL with this reason; not re-run by itself)."""
    for number, reason in died:
        console.print(f"trial {number} failed: {reason}", highlight=False, soft_wrap=True, markup=False)


@app.command("analyze")
def analyze_cmd(
    study: str = typer.Option(..., "--study", help="Study name."),
    out: Path = typer.Option(..., "--out", help="Output folder for tables (CSV + Markdown) and figures (PNG + SVG)."),
    storage: str | None = typer.Option(None, "--storage", help="SQLAlchemy URL (default: the study's SQLite file)."),
    studies_dir: Path = typer.Option(Path("studies"), "--studies-dir", help="Where studies live."),
    metric: str = typer.Option("macro_auroc", "--metric", help="Metric analysed (val_/test_ prefixed in tables)."),
    rf_threshold: float | None = typer.Option(
        None,
        "--rf-threshold",
        help="Receptive field (s) separating local from global fields in the GAP analysis (default: the median).",
    ),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Draw the figures (PNG + SVG)."),
) -> None:
    """Answer the scale questions from a finished sweep: performance vs D/C/K, receptive field, cost, per label."""
    from ecgscale.study.analysis import analyze_study
    from ecgscale.study.results import load_study, trials_frame
    from ecgscale.study.storage import quiet_optuna

    quiet_optuna()
    st = load_study(study, storage, studies_dir=studies_dir)
    report = analyze_study(
        trials_frame(st), out, metric=metric, rf_threshold=rf_threshold, grid=st.user_attrs.get("grid"), figures=figures
    )
    for line in report.findings:
        console.print(f"- {line}", highlight=False, soft_wrap=True, markup=False)
    console.print(f"wrote {len(report.files)} files to {out}", highlight=False, soft_wrap=True, markup=False)


@app.command("search")
def search_cmd(
    ctx: typer.Context,
    study: str = typer.Option(..., "--study", help="Study name for this search."),
    cache: Path | None = typer.Option(None, "--cache", help="Prepared cache (`ecgscale prepare`)."),
    space: str = typer.Option(
        "narrow",
        "--space",
        help="wide | narrow | a TOML/YAML space file | from-study:NAME (derived from a finished sweep).",
    ),
    trials: int = typer.Option(20, "--trials", help="Trial budget (finished trials, pruned ones included)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the TPE sampler and of every trial."),
    epochs: int = typer.Option(20, "--epochs", help="Maximum epochs per trial (pruning may stop earlier)."),
    max_minutes: float | None = typer.Option(
        10.0, "--max-minutes", help="Wall-clock cap per trial, so huge models of the wide space cannot eat the budget."
    ),
    pruner: str = typer.Option("median", "--pruner", help="median | hyperband | none."),
    top_q: float = typer.Option(0.2, "--top-q", help="from-study: fraction of best configurations kept."),
    storage: str | None = typer.Option(None, "--storage", help="SQLAlchemy URL (default: SQLite under --studies-dir)."),
    studies_dir: Path = typer.Option(Path("studies"), "--studies-dir", help="Where studies live."),
    device: str | None = typer.Option(None, "--device", help="auto | cpu | cuda[:N]."),
    threads: int | None = typer.Option(None, "--threads", help="Torch threads."),
    runner: str = typer.Option("train", "--runner", help=_RUNNER_HELP),
    leads: str | None = typer.Option(
        None,
        "--leads",
        help="Lead set every trial trains on: 12 (default), 6, 4, 3, 2 or a list such as I,II,V2 (recorded in the "
        "study's protocol; one search per lead set).",
    ),
    recipe: str | None = typer.Option(None, "--recipe", help=_SEARCH_RECIPE_HELP),
) -> None:
    """TPE search over architecture and training hyper-parameters, pruning hopeless trials."""
    from ecgscale.study.search import SearchSettings, resolve_space, run_search
    from ecgscale.study.storage import quiet_optuna

    quiet_optuna()
    sp = resolve_space(space, storage=storage, studies_dir=studies_dir, top_q=top_q)
    if runner == "train":
        _set_threads(threads, 1)
    data = _open_cache(cache, required=runner == "train")
    run_trial, identity = _make_runner(runner, data, progress=False)
    train = _train_overrides(epochs, None, None, max_minutes, device, validate=runner == "train")
    if recipe is not None:
        train, _ = _recipe_settings(ctx, recipe, train, data)
    if leads is not None:
        from ecgscale.data.leads import parse_leads

        names = parse_leads(leads, key="--leads").to_config()
        if names is not None:
            train["leads"] = names
    settings = SearchSettings(
        name=study,
        space=sp,
        n_trials=trials,
        seed=seed,
        train=train,
        pruner=pruner,
        studies_dir=studies_dir,
        storage=storage,
    )
    summary = run_search(settings, runner=run_trial, data=identity, isolate=True)
    _print_deaths(summary.died)
    console.print(
        f"search [bold]{study}[/] ({sp.name}): {summary.n_complete} complete, {summary.n_pruned} pruned; best "
        f"validation {summary.best_value:.4f} (trial {summary.best_trial}, {summary.best_config}); "
        f"test {summary.best_test:.4f}",
        highlight=False,
        soft_wrap=True,
    )


@app.command("search-compare")
def search_compare_cmd(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", help="Output folder for the comparison table, figure and verdict."),
    cache: Path | None = typer.Option(None, "--cache", help="Prepared cache (`ecgscale prepare`)."),
    trials: int = typer.Option(20, "--trials", help="Trial budget per search (equal for both spaces)."),
    seeds: int = typer.Option(3, "--seeds", help="Searches per space with different seeds (confidence intervals)."),
    study: str = typer.Option("compare", "--study", help="Prefix of the search studies' names."),
    epochs: int = typer.Option(20, "--epochs", help="Maximum epochs per trial."),
    max_minutes: float | None = typer.Option(10.0, "--max-minutes", help="Wall-clock cap per trial."),
    pruner: str = typer.Option("median", "--pruner", help="median | hyperband | none."),
    narrow: str = typer.Option("narrow", "--narrow", help="The narrow space: narrow | FILE | from-study:NAME."),
    wide: str = typer.Option("wide", "--wide", help="The wide space: wide | FILE (e.g. a CPU-sized generic space)."),
    storage: str | None = typer.Option(None, "--storage", help="SQLAlchemy URL (default: SQLite per study)."),
    studies_dir: Path = typer.Option(Path("studies"), "--studies-dir", help="Where studies live."),
    device: str | None = typer.Option(None, "--device", help="auto | cpu | cuda[:N]."),
    threads: int | None = typer.Option(None, "--threads", help="Torch threads."),
    runner: str = typer.Option("train", "--runner", help=_RUNNER_HELP),
    recipe: str | None = typer.Option(None, "--recipe", help=_SEARCH_RECIPE_HELP),
) -> None:
    """Does the narrow space beat the wide one? Equal budgets, several seeds, best-so-far curves, CIs."""
    from ecgscale.study.search import compare_spaces, resolve_space
    from ecgscale.study.storage import quiet_optuna

    quiet_optuna()
    if seeds < 1:
        raise ConfigError(f"got {seeds}; allowed: an integer >= 1", key="--seeds")
    narrow_sp = resolve_space(narrow, storage=storage, studies_dir=studies_dir)
    wide_sp = resolve_space(wide, storage=storage, studies_dir=studies_dir)
    if runner == "train":
        _set_threads(threads, 1)
    data = _open_cache(cache, required=runner == "train")
    run_trial, identity = _make_runner(runner, data, progress=False)
    train = _train_overrides(epochs, None, None, max_minutes, device, validate=runner == "train")
    if recipe is not None:
        train, _ = _recipe_settings(ctx, recipe, train, data)
    report = compare_spaces(
        [wide_sp, narrow_sp],
        out,
        runner=run_trial,
        data=identity,
        n_trials=trials,
        seeds=tuple(range(seeds)),
        prefix=study,
        train=train,
        pruner=pruner,
        studies_dir=studies_dir,
        storage=storage,
    )
    console.print(report.verdict, highlight=False, soft_wrap=True, markup=False)
    console.print(f"wrote {len(report.files)} files to {out}", highlight=False, soft_wrap=True, markup=False)
