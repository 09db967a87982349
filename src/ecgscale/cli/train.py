"""CLI commands ``ecgscale train`` and ``ecgscale evaluate`` (registered on the shared app)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from ecgscale.cli._app import app, console, err_console, typed_on_command_line
from ecgscale.commands import command_line
from ecgscale.errors import ConfigError
from ecgscale.progress import Progress, as_progress

__all__ = ["evaluate", "train"]


@app.command("train")
def train(
    ctx: typer.Context,
    cache: Path = typer.Option(..., "--cache", "-c", help="Prepared cache (ecgscale prepare)."),
    depth: int | None = typer.Option(None, "--depth", "-D", help="Residual blocks D (required without --recipe)."),
    channels: int | None = typer.Option(None, "--channels", "-C", help="Channels C (required without --recipe)."),
    kernel: int | None = typer.Option(None, "--kernel", "-K", help="Kernel size K, odd (required without --recipe)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory to write."),
    no_gap: bool = typer.Option(False, "--no-gap", help="Flatten + linear head instead of global average pooling."),
    dropout: float = typer.Option(0.0, "--dropout", help="Dropout inside residual blocks."),
    epochs: int = typer.Option(30, "--epochs", help="Maximum epochs."),
    batch_size: int = typer.Option(64, "--batch-size", help="Global batch size."),
    lr: float = typer.Option(1e-3, "--lr", help="Peak learning rate (AdamW)."),
    weight_decay: float = typer.Option(1e-2, "--weight-decay", help="AdamW weight decay."),
    schedule: str = typer.Option("cosine", "--schedule", help="cosine (with warm-up) or onecycle."),
    warmup_epochs: float = typer.Option(1.0, "--warmup-epochs", help="Linear warm-up length in epochs."),
    patience: int = typer.Option(10, "--patience", help="Early stopping patience in epochs (0 = off)."),
    monitor: str = typer.Option(
        "macro_auroc",
        "--monitor",
        help="Validation metric for early stopping and best checkpoint: macro_auroc, "
        "challenge, macro_auprc, macro_f1, val_loss.",
    ),
    pos_weight: bool = typer.Option(False, "--pos-weight", help="Weight positives by train label frequency."),
    recipe: str | None = typer.Option(
        None,
        "--recipe",
        help="Start from a recipe: a built-in name (ptbxl) or a TOML file; options given here override it.",
    ),
    crop_s: float | None = typer.Option(
        None, "--crop-s", help="Train on random crops of this many seconds (default: the cache's whole window)."
    ),
    eval_stride_s: float | None = typer.Option(
        None, "--eval-stride-s", help="With --crop-s: stride of the evaluation windows in seconds (default: crop)."
    ),
    eval_aggregate: str = typer.Option(
        "mean", "--eval-aggregate", help="With --crop-s: combine window probabilities by mean or max."
    ),
    leads: str | None = typer.Option(
        None,
        "--leads",
        help="Lead set the network takes: 12 (default), 6, 4, 3, 2 (CinC 2021 sets) or a list such as I,II,V2; "
        "the rows are taken from the 12-lead cache (docs/leads.md).",
    ),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 on CPU, fp16 on CUDA), fp32, bf16, fp16."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    seed: int = typer.Option(0, "--seed", help="Seed of initialisation, data order and augmentation."),
    num_workers: int = typer.Option(0, "--num-workers", help="DataLoader workers (generic datasets only)."),
    max_minutes: float | None = typer.Option(None, "--max-minutes", help="Wall-clock budget in minutes."),
    tensorboard: bool = typer.Option(False, "--tensorboard", help="Also write TensorBoard scalars."),
    checkpoint_every: int = typer.Option(
        50, "--checkpoint-every", help="Steps between mid-epoch resume checkpoints (0 = only at epoch ends)."
    ),
    init_from: Path | None = typer.Option(
        None,
        "--init-from",
        help="Fine-tune: start from this run's weights (same architecture, taken from it when -D/-C/-K are not "
        "given); a new head when the label set differs.",
    ),
    freeze_trunk: bool = typer.Option(False, "--freeze-trunk", help="With --init-from: train only the head."),
    trunk_lr_factor: float = typer.Option(
        1.0, "--trunk-lr-factor", help="With --init-from: the trunk's learning rate is --lr times this (0 < f <= 1)."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run in --out."),
    ddp: bool = typer.Option(False, "--ddp", help="Data-parallel under torchrun (reads WORLD_SIZE, RANK)."),
    nproc: int = typer.Option(1, "--nproc", help="Spawn N local data-parallel processes (gloo on CPU)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Train one D x C x K ResNet on a cache; the best checkpoint and val-tuned thresholds go to --out.

    Kill it at any time: ``--resume`` continues from the last checkpoint (saved every epoch and every
    few dozen steps) and reaches the same result. Evaluate afterwards with ``ecgscale evaluate RUN``.
    """
    from ecgscale.data.cache import open_cache
    from ecgscale.train import TrainConfig, train_run
    from ecgscale.train.distributed import context_from_env, init_distributed, spawn_train

    given = {
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "schedule": schedule,
        "warmup_epochs": warmup_epochs,
        "patience": patience or None,
        "monitor": monitor,
        "pos_weight": pos_weight,
        "precision": precision,
        "device": device,
        "seed": seed,
        "num_workers": num_workers,
        "max_minutes": max_minutes,
        "tensorboard": tensorboard,
        "checkpoint_every": checkpoint_every,
        "crop_s": crop_s,
        "eval_stride_s": eval_stride_s,
        "eval_aggregate": eval_aggregate,
        "leads": leads,
    }
    arch = {"depth": depth, "channels": channels, "kernel_size": kernel, "gap": not no_gap, "dropout": dropout}
    ecg_cache = open_cache(cache)
    if recipe is not None:
        given, arch = _apply_recipe(ctx, recipe, given, arch, ecg_cache)
    if init_from is not None:
        given.update(init_from=str(init_from), freeze_trunk=freeze_trunk, trunk_lr_factor=trunk_lr_factor)
        arch = _arch_of_parent(init_from, arch, no_gap=no_gap)
    elif freeze_trunk or trunk_lr_factor != 1.0:
        raise ConfigError("--freeze-trunk and --trunk-lr-factor need --init-from RUN_DIR", key="--init-from")
    missing = [f"--{k.split('_')[0]}" for k in ("depth", "channels", "kernel_size") if arch[k] is None]
    if missing:
        raise ConfigError(f"missing {', '.join(missing)} (or a --recipe that sets them)", key=missing[0])
    cfg = TrainConfig(**given)
    model: dict[str, Any] = {**arch, "n_classes": len(ecg_cache.label_space)}
    if not model["gap"]:
        from ecgscale.train.trainer import model_input_length

        model["input_length"] = model_input_length(cfg, float(ecg_cache.config.fs), int(ecg_cache.window_length))
    show = progress and not as_json
    if ddp:
        ctx = context_from_env(os.environ)
        if ctx is None:
            raise ConfigError(
                "WORLD_SIZE is not set; launch with `torchrun --nproc_per_node=N $(which ecgscale) "
                "train --ddp ...`, or use --nproc N to spawn local processes",
                key="--ddp",
            )
        import torch.distributed as dist

        init_distributed(ctx, device=device)
        try:
            result = train_run(
                ecg_cache, model, cfg, out, resume=resume, progress=as_progress(show and ctx.is_main), dist=ctx
            )
        finally:
            dist.destroy_process_group()
        if not ctx.is_main:
            return
    elif nproc > 1:
        result = spawn_train(cache, model, cfg, out, nproc=nproc, resume=resume, progress=show)  # rank 0 draws
    else:
        result = _train_supervised(ecg_cache, cache, model, cfg, out, resume=resume, progress=as_progress(show))
    if as_json:
        console.print_json(json.dumps(_result_dict(result), default=str))
        return
    _print_train_summary(result, model)


def _arch_of_parent(run_dir: Path, arch: dict[str, Any], *, no_gap: bool) -> dict[str, Any]:
    """The parent run's architecture, with the D/C/K given on the command line (a mismatch is refused later)."""
    from ecgscale.train.finetune import parent_model_config

    parent = {k: v for k, v in parent_model_config(run_dir).items() if k not in ("n_classes", "input_length")}
    given = {k: v for k, v in arch.items() if v is not None and k not in ("gap", "dropout")}
    return {**parent, **given, "gap": False if no_gap else bool(parent.get("gap", True)), "dropout": arch["dropout"]}


def _train_supervised(
    ecg_cache: Any, cache_path: Path, model: dict[str, Any], cfg: Any, out: Path, *, resume: bool, progress: Progress
) -> Any:
    """``train_run`` in a forked child (:mod:`ecgscale.study.isolation`); its death becomes one line and an exit.

    Why a child: a native crash (SIGSEGV/abort in a oneDNN kernel) or the OOM killer ends the process that
    trains without any Python exception, so only another process can say what happened; ``faulthandler`` in the
    training process would print a stack for SIGSEGV but nothing for SIGKILL. The training itself is unchanged
    (one process, same seeds, same numbers); this process holds the run directory's lock (so a second ``train``
    is refused naming the pid of this command) and hands it to the child. A death prints
    ``error: training died: SIGSEGV (signal 11) — D4-C64-K9 GAP, batch 64, ...; resume with --resume`` and exits
    with 128 + the signal number (137 for SIGKILL), as a shell reports a killed process.
    """
    import shutil

    from ecgscale.fileio import writer_lock
    from ecgscale.study import isolation
    from ecgscale.study.grids import ArchPoint
    from ecgscale.train import train_run
    from ecgscale.train.rundir import RunDir

    key = ArchPoint(model["depth"], model["channels"], model["kernel_size"], model["gap"]).key

    def work() -> Any:
        _adopt_parent_locks()
        die = None if not os.environ.get(isolation.TEST_DIE_ENV) else (lambda _e, _m: isolation.die_if_asked(key))
        return train_run(ecg_cache, model, cfg, out, resume=resume, progress=progress, epoch_callback=die)

    if not isolation.available():
        return work()
    created = not out.exists()
    run = RunDir(out)
    lock = run.lock_file
    try:
        with writer_lock(
            lock, guards=out, action="ecgscale train", hint="wait for it to finish or choose another --out"
        ):
            return isolation.call_in_child(work)
    except isolation.ProcessDied as died:
        where = "" if not run.last_file.exists() else "; continue it with --resume"
        err_console.print(
            f"[bold red]error:[/] {escape(_death_line(died, model, cfg, cache_path, out))}{where}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(died.shell_status) from None
    except BaseException:
        # A run refused before it wrote anything leaves no empty directory behind (as train_run does).
        if created and out.is_dir() and {p.name for p in out.iterdir()} <= {lock.name, lock.name + ".json"}:
            shutil.rmtree(out, ignore_errors=True)
        raise


def _adopt_parent_locks() -> None:
    """In the forked child: count the writer locks the parent holds as this process's, so ``train_run`` re-enters
    the run directory's lock instead of being refused by its own parent (the kernel's flock stays the parent's)."""
    from ecgscale import fileio

    parent = os.getppid()
    with fileio._HELD_GUARD:
        for k, (pid, lock, depth) in list(fileio._HELD_LOCKS.items()):
            if pid == parent:
                fileio._HELD_LOCKS[k] = (os.getpid(), lock, depth)


def _death_line(died: Any, model: dict[str, Any], cfg: Any, cache: Path, out: Path) -> str:
    arch = f"D{model['depth']}-C{model['channels']}-K{model['kernel_size']} " + ("GAP" if model["gap"] else "no GAP")
    parts = [arch, f"batch {cfg.batch_size}", f"precision {cfg.precision}", f"device {cfg.device}"]
    if cfg.crop_s is not None:
        parts.append(f"crop {cfg.crop_s} s")
    if cfg.leads is not None:
        parts.append(f"leads {cfg.lead_set.tag}")
    parts += [f"cache {cache}", f"run {out}"]
    return f"training {died.what} — {', '.join(parts)}"


def _apply_recipe(
    ctx: typer.Context, recipe: str, given: dict[str, Any], arch: dict[str, Any], cache: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Recipe values for every option left at its default; options typed on the command line win."""
    from ecgscale.train.recipes import check_preprocess, load_recipe

    loaded = load_recipe(recipe)
    params = {"kernel_size": "kernel", "gap": "no_gap"}

    def explicit(key: str) -> bool:
        return typed_on_command_line(ctx, params.get(key, key))

    given = dict(given)
    for key, value in loaded["train"].items():
        if not explicit(key):
            given[key] = value
    arch = dict(arch)
    for key, value in loaded["model"].items():
        if not explicit(key):
            arch[key] = value
    for line in check_preprocess(loaded, cache.config):
        console.print(f"[yellow]warning:[/] recipe {recipe}: {line}")
    return given, arch


def _result_dict(result: Any) -> dict[str, Any]:
    return {
        "run_dir": str(result.run_dir),
        "best_epoch": result.best_epoch,
        "best_score": None if math.isnan(result.best_score) else result.best_score,
        "stop_reason": result.stop_reason,
        "epochs_run": result.epochs_run,
        "train_seconds": result.train_seconds,
        "records_per_s": result.records_per_s,
        "device": result.device,
        "precision": result.precision,
        "history": result.history,
    }


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "-" if math.isnan(v) else f"{v:.4f}"
    return "-" if v is None else str(v)


def _print_train_summary(result: Any, model: dict[str, Any]) -> None:
    from rich.table import Table

    head = Table(title=f"Run {result.run_dir}", show_header=False)
    head.add_row(
        "model", f"D{model['depth']}-C{model['channels']}-K{model['kernel_size']}" + ("" if model["gap"] else "-noGAP")
    )
    head.add_row("best epoch", f"{result.best_epoch} of {result.epochs_run} ({result.stop_reason})")
    head.add_row("best val score", _fmt(result.best_score))
    head.add_row(
        "time",
        f"{result.train_seconds:.1f} s ({result.records_per_s:,.0f} train records/s, "
        f"{result.device}, {result.precision})",
    )
    console.print(head)
    if result.history:
        cols = [
            k
            for k in (
                "epoch",
                "train_loss",
                "val_loss",
                "val_macro_auroc",
                "val_macro_auprc",
                "val_macro_f1",
                "val_challenge_metric",
            )
            if k in result.history[0]
        ]
        table = Table(title="Epochs")
        for c in cols:
            table.add_column(c, justify="right")
        for row in result.history:
            mark = " *" if row.get("improved") else ""
            table.add_row(*[_fmt(row.get(c)) + (mark if c == "epoch" else "") for c in cols])
        console.print(table)
    console.print(f"next: [bold]{escape(command_line('evaluate', result.run_dir))}[/]")


@app.command("evaluate")
def evaluate(
    run_dir: Path = typer.Argument(..., help="Run directory written by ecgscale train."),
    split: str = typer.Option("test", "--split", help="Cache split to evaluate: train, val, test or all."),
    cache: Path | None = typer.Option(None, "--cache", "-c", help="Cache to read (default: the run's own cache)."),
    n_bootstrap: int = typer.Option(200, "--n-bootstrap", help="Bootstrap resamples for 95% CIs (0 = none)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    aggregate: str | None = typer.Option(
        None,
        "--aggregate",
        help="Re-score a sliding-window run with mean or max over windows instead of its own rule "
        "(written to eval_<split>_<aggregate>.json; thresholds stay those tuned under the run's rule).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the evaluation as JSON."),
) -> None:
    """Score a run on a split with thresholds tuned on VALIDATION; writes eval_<split>.json and a per-label CSV."""
    from ecgscale.train import evaluate_run

    if n_bootstrap < 0:
        raise ConfigError(f"got {n_bootstrap}; allowed: an integer >= 0", key="--n-bootstrap")
    if aggregate is not None and aggregate not in ("mean", "max"):
        raise ConfigError(f"got {aggregate!r}; allowed: mean or max", key="--aggregate")
    result = evaluate_run(
        run_dir, split=split, cache=cache, n_bootstrap=n_bootstrap, device=device, aggregate=aggregate
    )
    if as_json:
        console.print_json(json.dumps(result, default=str))
        return
    _print_eval(result, run_dir)


_EVAL_METRICS = ("macro_auroc", "micro_auroc", "macro_auprc", "macro_f1", "macro_fbeta", "challenge_metric", "loss")


def _ci_text(ci: Any) -> str:
    if isinstance(ci, list | tuple) and len(ci) == 2 and None not in ci:
        return f"{ci[0]:.4f} - {ci[1]:.4f}"
    return ""


def _print_eval(result: dict[str, Any], run_dir: Path) -> None:
    from rich.table import Table

    metrics = result["metrics"]
    cis = metrics.get("ci") or {}
    win = result.get("eval_windows")
    windows = (
        f"{win['length']}-sample windows every {win['stride']}, {win['aggregate']}"
        if result.get("window") == "sliding" and win
        else "centre windows"
    )
    lead_names = result.get("leads") or []
    lead_text = "" if len(lead_names) in (0, 12) else f"leads {','.join(lead_names)}, "
    head = Table(
        title=f"{run_dir} on {result['split']}: {result['n_records']} records, {lead_text}{windows}, "
        f"thresholds tuned on {result['thresholds_source']}"
    )
    head.add_column("metric")
    head.add_column("value", justify="right")
    head.add_column("95% CI", justify="right")
    for k in _EVAL_METRICS:
        if metrics.get(k) is not None:
            head.add_row(k, _fmt(float(metrics[k])), _ci_text(cis.get(k)))
    console.print(head)
    groups = result.get("per_group") or {}
    if groups:
        table = Table(title="Per label group (macro over the group's classes)")
        for c in ("group", "classes scored", "auroc", "95% CI", "auprc", "f1"):
            table.add_column(c, justify="right" if c != "group" else "left")
        for g, e in groups.items():
            table.add_row(
                g,
                f"{e.get('n_classes_scored')}/{e.get('n_classes')}",
                _fmt(e.get("auroc")),
                _ci_text(e.get("auroc_ci")),
                _fmt(e.get("auprc")),
                _fmt(e.get("f1")),
            )
        console.print(table)
    rows = result.get("per_label") or []
    if rows:
        table = Table(title="Per label")
        cols = ("abbreviation", "group", "support", "auroc", "auprc", "f1", "threshold")
        for c in cols:
            table.add_column(c, justify="left" if c in ("abbreviation", "group") else "right")
        for r in rows:
            table.add_row(*[_fmt(r.get(c)) for c in cols])
        console.print(table)
    console.print(f"wrote {run_dir / ('eval_' + result['split'] + '.json')} and the per-label CSV")
