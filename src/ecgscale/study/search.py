"""TPE search over architecture and training hyper-parameters, and the wide-vs-narrow comparison.

Every trial reports its validation metric after each epoch (the trainer's ``epoch_callback``); the pruner
(median by default) stops trials that are behind the running median at the same epoch, so a budget of N trials
is spent mostly on promising ones. ``max_minutes`` caps one trial's wall time (the trainer stops and keeps its
best epoch), so the huge models of the wide space cannot eat a CPU budget.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgscale.errors import ConfigError, StudyError
from ecgscale.fileio import write_text_atomic
from ecgscale.study.grids import ArchPoint
from ecgscale.study.objective import RunTrial, TrialConfig
from ecgscale.study.spaces import SearchSpace, load_space, narrow_space, sample_space, space_from_results, wide_space
from ecgscale.study.storage import create_or_load_study, default_storage_url, open_storage, redact_url, study_dir
from ecgscale.study.sweep import _trial_dir

__all__ = [
    "CompareReport",
    "SearchSettings",
    "SearchSummary",
    "best_so_far",
    "compare_spaces",
    "make_pruner",
    "resolve_space",
    "run_search",
]

log = logging.getLogger(__name__)

PRUNERS = ("median", "hyperband", "none")


def resolve_space(
    spec: str, *, storage: str | None = None, studies_dir: str | Path = "studies", top_q: float = 0.2
) -> SearchSpace:
    """``wide``, ``narrow``, a TOML/YAML file, or ``from-study:NAME`` (a finished sweep's top-q region)."""
    if spec == "wide":
        return wide_space()
    if spec == "narrow":
        return narrow_space()
    if spec.startswith("from-study:"):
        from ecgscale.study.results import study_results

        name = spec.split(":", 1)[1]
        df = study_results(name, storage, studies_dir=studies_dir)
        return space_from_results(df, top_q=top_q, name=f"from-study:{name}")
    path = Path(spec)
    if path.suffix.lower() in (".toml", ".yaml", ".yml") or path.exists():
        return load_space(path)
    raise ConfigError(
        f"got {spec!r}; allowed: wide | narrow | from-study:NAME | a .toml/.yaml space file", key="--space"
    )


def make_pruner(name: str, *, max_epochs: int) -> Any:
    import optuna

    if name == "median":
        # Two complete trials before pruning anyone, and never before the second epoch: early epochs are noisy.
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(max_epochs, 2), reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"got {name!r}; allowed: {' | '.join(PRUNERS)}", key="pruner")


@dataclass(frozen=True, slots=True)
class SearchSettings:
    """One search: ``n_trials`` is the total budget of the study (a re-run tops it up, it does not add)."""

    name: str
    space: SearchSpace
    n_trials: int = 20
    seed: int = 0
    train: Mapping[str, Any] = field(default_factory=lambda: {"epochs": 20, "max_minutes": 10.0})
    pruner: str = "median"
    studies_dir: Path = Path("studies")
    storage: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.n_trials, bool) or not isinstance(self.n_trials, int) or self.n_trials < 1:
            raise ConfigError(f"got {self.n_trials!r}; allowed: an integer >= 1", key="trials")
        if self.pruner not in PRUNERS:
            raise ConfigError(f"got {self.pruner!r}; allowed: {' | '.join(PRUNERS)}", key="pruner")

    @property
    def storage_url(self) -> str:
        return self.storage or default_storage_url(self.studies_dir, self.name)


@dataclass(frozen=True, slots=True)
class SearchSummary:
    name: str
    space: str
    n_complete: int
    n_pruned: int
    n_failed: int
    best_trial: int | None
    best_value: float
    best_test: float
    best_config: str
    seconds: float
    died: tuple[tuple[int, str], ...] = ()  # (trial, reason) of trials whose training process died (isolate=True)


def run_search(
    settings: SearchSettings,
    *,
    runner: RunTrial,
    data: Mapping[str, Any],
    metric: str = "macro_auroc",
    isolate: bool = False,
) -> SearchSummary:
    """Run (or finish) a seeded TPE search; returns the best trial by validation score and its test score.

    ``isolate=True`` (what ``ecgscale search`` uses) runs the search in a forked child process: a trial whose
    process dies is recorded FAIL with the reason in ``error`` (it spends budget, like a trial that raised) and
    the search goes on in a new child (see :func:`ecgscale.study.sweep.run_sweep`).
    """
    from ecgscale.study import isolation

    if not (isolate and isolation.available()):
        return _run_search(settings, runner=runner, data=data, metric=metric)
    t0 = time.monotonic()
    sup = isolation.supervise_trials(
        lambda _first: _run_search(settings, runner=runner, data=data, metric=metric), what="search"
    )
    return dataclasses.replace(
        sup.result, seconds=time.monotonic() - t0, died=tuple((d.number, d.reason) for d in sup.deaths)
    )


def _run_search(settings: SearchSettings, *, runner: RunTrial, data: Mapping[str, Any], metric: str) -> SearchSummary:
    import optuna

    from ecgscale.study import isolation
    from ecgscale.study.sweep import describe_config

    t0 = time.monotonic()
    url = settings.storage_url
    # Several search workers may share one study (--storage): a heartbeat re-queues a killed worker's trial.
    storage = open_storage(url, heartbeat_interval=60, max_retry=1)
    attrs = {
        "ecgscale_kind": "search",
        "space": settings.space.to_dict(),
        "data": dict(data),
        "protocol": {"train": dict(settings.train), "pruner": settings.pruner, "seed": settings.seed},
    }
    epochs = int(settings.train.get("epochs", 20))
    study = create_or_load_study(
        settings.name,
        storage,
        attrs=attrs,
        shown_url=redact_url(url),
        sampler=optuna.samplers.TPESampler(seed=settings.seed, n_startup_trials=min(5, settings.n_trials)),
        pruner=make_pruner(settings.pruner, max_epochs=epochs),
    )
    n_before = len(study.get_trials(deepcopy=False))
    if n_before:
        # A resumed search (after a kill, or a dead trial's restart): a sampler seeded as at the start would draw
        # its random start-up configurations again and re-run trials the study already holds. Seed it with how
        # far the study has come: still reproducible, never a replay. An uninterrupted search is unchanged.
        study.sampler = optuna.samplers.TPESampler(
            seed=settings.seed * 1_000_003 + n_before, n_startup_trials=min(5, settings.n_trials)
        )
    root = study_dir(settings.studies_dir, settings.name)

    def objective(trial: optuna.Trial) -> float:
        p = sample_space(trial, settings.space)
        arch = ArchPoint(p["depth"], p["channels"], p["kernel_size"], p["gap"])
        train = {**settings.train, "lr": p["lr"], "weight_decay": p["weight_decay"], "batch_size": p["batch_size"]}
        config = TrialConfig(arch, settings.seed, train=train, model={"dropout": p["dropout"]})
        trial_dir = _trial_dir(study, trial.number, root)
        trial.set_user_attr("trial_dir", str(trial_dir))

        def report(epoch: int, value: float) -> None:
            isolation.die_if_asked(arch.key)  # fault injection for tests (ECGSCALE_TEST_DIE), else nothing
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch} (validation {value:.4f})")

        isolation.trial_started(
            storage=url, trial_id=trial._trial_id, number=trial.number, config=describe_config(config)
        )
        try:
            outcome = runner(config, trial_dir, report)
        except optuna.TrialPruned:
            isolation.trial_ended(trial.number, "pruned")
            raise
        except Exception as exc:  # a real failure spends budget; a killed worker's trial (no error) does not
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:2000])
            isolation.trial_ended(trial.number, "failed")
            raise
        isolation.trial_ended(trial.number, "ran")
        for k, v in outcome.user_attrs().items():
            trial.set_user_attr(k, v)
        return float(outcome.value)

    def stop_when_spent(study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        if budget_spent(study) >= settings.n_trials:  # other workers may share the study
            study.stop()

    remaining = settings.n_trials - budget_spent(study)
    if remaining > 0:
        study.optimize(
            objective, n_trials=remaining, catch=(Exception,), gc_after_trial=False, callbacks=[stop_when_spent]
        )
    return _summary(study, settings, metric, time.monotonic() - t0)


def budget_spent(study: Any) -> int:
    """How many trials count against a search's budget (see :func:`_spends_budget`)."""
    return sum(_spends_budget(t) for t in study.get_trials(deepcopy=False))


def _spends_budget(trial: Any) -> bool:
    """Finished trials and failures that raised an error spend budget; a killed worker's trial does not.

    Why not every FAIL: a trial whose worker was killed is failed by the heartbeat and re-queued; counting it
    too would leave a killed-and-resumed search one completed trial short of what was asked.
    """
    from optuna.trial import TrialState

    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
        trial.state == TrialState.FAIL and "error" in trial.user_attrs
    )


def _summary(study: Any, settings: SearchSettings, metric: str, seconds: float) -> SearchSummary:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if complete:
        best = max(complete, key=lambda t: t.value)
        p = best.params
        cfg = ArchPoint(p["depth"], p["channels"], p["kernel_size"], p["gap"]).key
        test = (best.user_attrs.get("test_metrics") or {}).get(metric)
        best_trial, best_value, best_test = best.number, float(best.value), float("nan") if test is None else test
    else:
        best_trial, best_value, best_test, cfg = None, float("nan"), float("nan"), "–"
    return SearchSummary(
        settings.name,
        settings.space.name,
        len(complete),
        sum(t.state == TrialState.PRUNED for t in trials),
        sum(t.state == TrialState.FAIL for t in trials),
        best_trial,
        best_value,
        best_test,
        cfg,
        seconds,
    )


def best_so_far(study: Any, n_trials: int | None = None) -> np.ndarray:
    """Best validation value after each trial that spent budget, in trial order (pruned/failed ones included)."""
    from optuna.trial import TrialState

    trials = sorted((t for t in study.get_trials(deepcopy=False) if _spends_budget(t)), key=lambda t: t.number)
    if n_trials is not None:
        trials = trials[:n_trials]
    best, out = -np.inf, []
    for t in trials:
        if t.state == TrialState.COMPLETE and t.value is not None:
            best = max(best, float(t.value))
        out.append(best if math.isfinite(best) else np.nan)
    return np.asarray(out, dtype=float)


@dataclass
class CompareReport:
    out: Path
    verdict: str
    table: pd.DataFrame
    curves: pd.DataFrame
    files: list[Path] = field(default_factory=list)


def _ci(x: Sequence[float]) -> tuple[float, float, float]:
    """Mean and two-sided 95% t-interval over seeds (NaN interval with one seed)."""
    from scipy import stats

    a = np.asarray([v for v in x if v is not None and math.isfinite(v)], dtype=float)
    if len(a) == 0:
        return float("nan"), float("nan"), float("nan")
    if len(a) < 2:
        return float(a.mean()), float("nan"), float("nan")
    half = stats.t.ppf(0.975, len(a) - 1) * a.std(ddof=1) / math.sqrt(len(a))
    return float(a.mean()), float(a.mean() - half), float(a.mean() + half)


def compare_spaces(
    spaces: Sequence[SearchSpace],
    out: str | Path,
    *,
    runner: RunTrial,
    data: Mapping[str, Any],
    n_trials: int,
    seeds: Sequence[int] = (0, 1, 2),
    prefix: str = "compare",
    train: Mapping[str, Any] | None = None,
    pruner: str = "median",
    studies_dir: str | Path = "studies",
    storage: str | None = None,
    metric: str = "macro_auroc",
    figures: bool = True,
) -> CompareReport:
    """Search each space with the same budget and seeds; table, best-so-far figure and a verdict from the numbers.

    The first space is the reference (``wide``) and the last the challenger (``narrow``); differences are
    challenger − reference, paired by seed. Final numbers are the TEST scores of each search's best-validation
    trial, so the choice never sees the test set.
    """
    if len(spaces) != 2:
        raise ConfigError(f"got {len(spaces)} spaces; allowed: exactly two (reference, challenger)", key="spaces")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    curve_rows, final_rows = [], []
    budgets = sorted({max(1, n_trials // 4), max(1, n_trials // 2), n_trials})
    for sp in spaces:
        safe = "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in sp.name)
        for seed in seeds:
            name = f"{prefix}-{safe}-s{seed}"
            settings = SearchSettings(
                name=name,
                space=sp,
                n_trials=n_trials,
                seed=seed,
                train=dict(train or {"epochs": 20, "max_minutes": 10.0}),
                pruner=pruner,
                studies_dir=Path(studies_dir),
                storage=storage,
            )
            summary = run_search(settings, runner=runner, data=data, metric=metric)
            from ecgscale.study.results import load_study

            curve = best_so_far(load_study(name, storage, studies_dir=studies_dir), n_trials)
            curve_rows += [{"space": sp.name, "seed": seed, "trial_index": i, "best": v} for i, v in enumerate(curve)]
            final_rows.append(
                {
                    "space": sp.name,
                    "seed": seed,
                    "best_val": summary.best_value,
                    "best_test": summary.best_test,
                    "best_config": summary.best_config,
                    "n_pruned": summary.n_pruned,
                    "seconds": summary.seconds,
                    **{f"val_at_{b}": float(curve[b - 1]) if len(curve) >= b else float("nan") for b in budgets},
                }
            )
    curves = pd.DataFrame(curve_rows)
    finals = pd.DataFrame(final_rows)
    rows = []
    for sp in spaces:
        f = finals[finals.space == sp.name]
        m, lo, hi = _ci(f.best_test)
        row = {
            "space": sp.name,
            "n_seeds": len(f),
            "test_mean": m,
            "test_ci_low": lo,
            "test_ci_high": hi,
            "val_mean": float(f.best_val.mean()),
        }
        for b in budgets:
            row[f"val_at_{b}"] = float(f[f"val_at_{b}"].mean())
        row["pruned_mean"] = float(f.n_pruned.mean())
        row["seconds_mean"] = float(f.seconds.mean())
        rows.append(row)
    ref, chal = spaces[0].name, spaces[-1].name
    paired = finals.pivot(index="seed", columns="space", values="best_test")
    diff = (paired[chal] - paired[ref]).to_numpy()
    dm, dlo, dhi = _ci(diff)
    rows.append(
        {
            "space": f"{chal} − {ref}",
            "n_seeds": int(np.isfinite(diff).sum()),
            "test_mean": dm,
            "test_ci_low": dlo,
            "test_ci_high": dhi,
            "val_mean": float(
                finals[finals.space == chal].best_val.mean() - finals[finals.space == ref].best_val.mean()
            ),
            **{f"val_at_{b}": rows[-1][f"val_at_{b}"] - rows[0][f"val_at_{b}"] for b in budgets},
        }
    )
    table = pd.DataFrame(rows)
    # the smallest budget at which the challenger's mean best-so-far validation is ahead
    ahead = [b for b in budgets if rows[-1][f"val_at_{b}"] > 0]
    if math.isfinite(dlo) and dlo > 0:
        verdict = f"{chal} beats {ref}"
    elif math.isfinite(dhi) and dhi < 0:
        verdict = f"{ref} beats {chal}"
    else:
        verdict = f"no significant difference between {chal} and {ref}"
    verdict = (
        f"Verdict: {verdict} on test {metric} after {n_trials} trials: {chal} − {ref} = {dm:+.4f} "
        f"(95% CI {dlo:+.4f} to {dhi:+.4f}, {len(seeds)} seeds); {chal} is ahead on validation "
        + (f"from {ahead[0]} trials on." if ahead else "at no budget checked.")
    )
    from ecgscale.study.analysis import markdown_table

    files = []
    for name, t in (("compare", table), ("compare_runs", finals), ("best_so_far", curves)):
        write_text_atomic(out / f"{name}.csv", t.to_csv(index=False))
        files.append(out / f"{name}.csv")
    write_text_atomic(out / "compare.md", f"# {chal} vs {ref}\n\n{markdown_table(table)}\n{verdict}\n")
    files.append(out / "compare.md")
    if figures and not curves.empty:
        from ecgscale.study.figures import best_so_far_figure

        files += best_so_far_figure(curves, out)
    if finals.best_test.isna().all():
        raise StudyError("no search finished a trial; see the trials' errors in the studies")
    return CompareReport(out, verdict, table, curves, files)
