"""Several workers from one command (``ecgscale sweep --workers N``) share one study: every grid point is run
exactly once, each worker under its own name, and a trial whose process dies in one worker is recorded FAIL with
the reason while the other trials complete. Also: a trial's user attributes written in one transaction
(``set_user_attrs``) are what optuna stores key by key."""

from __future__ import annotations

import collections
import subprocess
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from ecgscale.errors import StudyError
from ecgscale.study.grids import ArchPoint, Grid
from ecgscale.study.objective import SurrogateRunner
from ecgscale.study.storage import open_storage, set_user_attrs
from ecgscale.study.sweep import SweepSettings, run_sweep

GRID_TOML = """
name = "g"
seeds = [0, 1]
points = [
  {depth = 1, channels = 8, kernel_size = 3, gap = true},
  {depth = 2, channels = 16, kernel_size = 5, gap = true},
  {depth = 1, channels = 8, kernel_size = 3, gap = false},
  {depth = 2, channels = 8, kernel_size = 5, gap = false},
]
"""
DEAD = "D2-C16-K5-gap"


def _trials(tmp_path: Path) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 's' / 'study.db'}").get_trials()


def _sweep(
    run_ecgscale: Callable[..., subprocess.CompletedProcess[str]],
    tmp_path: Path,
    *extra: str,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    grid = tmp_path / "g.toml"
    grid.write_text(GRID_TOML)
    args = ("sweep", "--study", "s", "--grid", grid, "--runner", "surrogate:0.05", "--epochs", "2")
    return run_ecgscale(
        *args, "--studies-dir", tmp_path, "--no-progress", "--heartbeat-interval", "30", *extra, env=env
    )


def test_cli_workers_run_every_grid_point_exactly_once(tmp_path: Path, run_ecgscale) -> None:
    res = _sweep(run_ecgscale, tmp_path, "--workers", "2")
    assert res.returncode == 0, res.stderr
    assert "8/8 grid points complete; its 2 workers ran 8 trial(s), 0 failed" in res.stdout, res.stdout
    trials = _trials(tmp_path)
    done = [(t.params["config"], t.params["seed"]) for t in trials if t.state == TrialState.COMPLETE]
    assert len(done) == 8 and len(set(done)) == 8  # every point, none twice
    # a trial the GridSampler race gave both workers would be PRUNED with duplicate_of; none ran twice either way
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    workers = collections.Counter(t.user_attrs["worker"] for t in trials if t.state == TrialState.COMPLETE)
    assert len(workers) == 2, workers  # two processes shared the work, each under its own name
    res = _sweep(run_ecgscale, tmp_path, "--workers", "2")  # resuming a finished study runs nothing
    assert res.returncode == 0 and "its 2 workers ran 0 trial(s)" in res.stdout, res.stdout + res.stderr


def test_cli_workers_keep_crash_isolation(tmp_path: Path, run_ecgscale) -> None:
    res = _sweep(run_ecgscale, tmp_path, "--workers", "2", env={"ECGSCALE_TEST_DIE": f"SIGSEGV:{DEAD}"})
    assert res.returncode == 0, res.stderr
    assert "6/8 grid points incomplete" in res.stdout and "2 failed" in res.stdout, res.stdout
    assert f"failed: training process died: SIGSEGV (signal 11) — {DEAD} seed" in res.stdout
    trials = _trials(tmp_path)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert {t.params["config"] for t in failed} == {DEAD} and len(failed) == 2
    assert all(t.user_attrs["died"] == "SIGSEGV" and "SIGSEGV" in t.user_attrs["error"] for t in failed)
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 6


def test_api_workers_without_isolation_share_the_study(tmp_path: Path) -> None:
    grid = Grid("g", (ArchPoint(1, 8, 3, True), ArchPoint(2, 16, 5, False)), seeds=(0, 1, 2))
    settings = SweepSettings(name="s", grid=grid, train={"epochs": 2}, studies_dir=tmp_path, heartbeat_interval=5)
    summary = run_sweep(settings, runner=SurrogateRunner(seconds_per_epoch=0.02), data={"d": 1}, workers=2)
    assert summary.done and sorted(summary.ran) == sorted(set(summary.ran)) and len(summary.ran) == 6
    done = [t for t in _trials(tmp_path) if t.state == TrialState.COMPLETE]  # a duplicate (PRUNED) has no worker
    assert len(done) == 6 and len({t.user_attrs["worker"] for t in done}) == 2


@pytest.mark.parametrize("workers", [0, -1, True])
def test_workers_must_be_a_positive_integer(tmp_path: Path, workers: object) -> None:
    settings = SweepSettings(name="s", grid=Grid("g", (ArchPoint(1, 8, 3, True),)), studies_dir=tmp_path)
    with pytest.raises(StudyError, match="workers"):
        run_sweep(settings, runner=SurrogateRunner(), data={}, workers=workers)  # type: ignore[arg-type]


def test_set_user_attrs_stores_what_optuna_stores_key_by_key(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'a.db'}")
    study = optuna.create_study(study_name="a", storage=storage)
    attrs = {"metrics": {"auroc": 0.5, "f1": None}, "n": 3, "name": "D1", "none": None, "list": [1, 2]}
    by_key, batched = study.ask(), study.ask()
    for key, value in attrs.items():
        by_key.set_user_attr(key, value)
    batched.set_user_attr("n", -1)  # an existing key is overwritten, as optuna's upsert does
    set_user_attrs(storage, batched._trial_id, attrs)
    got = {t.number: t.user_attrs for t in study.get_trials()}
    assert got[by_key.number] == got[batched.number] == attrs
    study.tell(batched, 1.0)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        set_user_attrs(storage, batched._trial_id, {"late": 1}, failed=True)  # complete: never written to
    assert "late" not in study.get_trials()[batched.number].user_attrs
    study.tell(by_key, state=TrialState.FAIL)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        set_user_attrs(storage, by_key._trial_id, {"error": "died"})
    set_user_attrs(storage, by_key._trial_id, {"error": "died"}, failed=True)  # a dead trial's reason, late
    assert study.get_trials()[by_key.number].user_attrs["error"] == "died"


def test_a_death_recorded_after_the_heartbeat_failed_the_trial_still_says_why(tmp_path: Path) -> None:
    """On a loaded machine the supervisor can take longer than the grace period to record a death; another
    worker's heartbeat check has then failed the trial. Without its ``error`` the point would be re-queued as a
    killed worker's is, and die again in a loop."""
    from ecgscale.study.isolation import _record_death

    url = f"sqlite:///{tmp_path / 'a.db'}"
    study = optuna.create_study(study_name="a", storage=open_storage(url))
    trial = study.ask()
    study.tell(trial, state=TrialState.FAIL)  # what the heartbeat check does
    _record_death({"storage": url, "trial_id": trial._trial_id, "number": trial.number}, "died: SIGSEGV", "SIGSEGV")
    assert study.get_trials()[0].user_attrs == {"error": "died: SIGSEGV", "died": "SIGSEGV"}
