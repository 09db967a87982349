"""Sweep workers as child processes: their command line, and which trial a given worker is running.

Shared by ``tests/study/test_distributed.py`` and the concurrency and disk scenarios in ``reliability/faults/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["running_trial_of", "sweep_worker_args"]


def sweep_worker_args(
    study: str,
    storage: str | None,
    grid: Path,
    studies: Path,
    cache: Path | None = None,
    *,
    grace_period: int = 3,
) -> list[str]:
    """``ecgscale sweep`` arguments: surrogate trials of 2 x 2 s (long enough for a kill to land mid-trial on a busy
    machine), or (with ``cache``) real 3-epoch trainings of a tiny cache; heartbeat every second."""
    runner = (
        ["--runner", "surrogate:2", "--epochs", "2"]
        if cache is None
        else ["--cache", str(cache), "--epochs", "3", "--batch-size", "16", "--threads", "1"]
    )
    args = [
        "sweep",
        "--study",
        study,
        "--grid",
        str(grid),
        *runner,
        "--heartbeat-interval",
        "1",
        "--grace-period",
        str(grace_period),
        "--studies-dir",
        str(studies),
        "--no-progress",
    ]
    return args + (["--storage", storage] if storage else [])


_STORAGES: dict[str, Any] = {}


def running_trial_of(url: str, study: str, pid: int) -> int | None:
    """The trial worker ``pid`` is running now (its parameters drawn), if any."""
    import optuna

    from ecgscale.errors import StudyError
    from ecgscale.study.storage import open_storage

    try:
        if url not in _STORAGES:  # connect once; polling must be cheap to catch the trial early
            _STORAGES[url] = open_storage(url)
        st = optuna.load_study(study_name=study, storage=_STORAGES[url])
    except (KeyError, StudyError):  # not created yet, or the file is being created
        return None
    for t in st.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if str(t.user_attrs.get("worker", "")).endswith(f":{pid}") and t.params:
            return t.number
    return None
