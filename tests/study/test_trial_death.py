"""A trial whose training process dies (a signal: SIGSEGV, SIGKILL as the OOM killer sends it) is recorded FAIL with
the reason and the sweep or search goes on; kill -9 of the whole command still leaves the trial to the heartbeat.

The deaths are real: ``ECGSCALE_TEST_DIE=SIGNAL:KEY`` makes the training of configuration KEY kill its own process
(``os.kill(os.getpid(), SIGNAL)``) after its first epoch (``ecgscale.study.isolation.die_if_asked``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from ecgscale.errors import StudyError
from ecgscale.study.grids import ArchPoint, Grid
from ecgscale.study.objective import SurrogateRunner
from ecgscale.study.search import SearchSettings, run_search
from ecgscale.study.spaces import narrow_space
from ecgscale.study.sweep import SweepSettings, run_sweep

GRID = Grid("g", (ArchPoint(1, 8, 3, True), ArchPoint(2, 16, 5, True), ArchPoint(1, 8, 3, False)), seeds=(0,))
DEAD = "D2-C16-K5-gap"
GRID_TOML = """
name = "g"
seeds = [0]
points = [
  {depth = 1, channels = 8, kernel_size = 3, gap = true},
  {depth = 2, channels = 16, kernel_size = 5, gap = true},
  {depth = 1, channels = 8, kernel_size = 3, gap = false},
]
"""


def _settings(tmp_path: Path, **kw) -> SweepSettings:
    base = {"name": "s", "grid": GRID, "train": {"epochs": 2}, "studies_dir": tmp_path, "heartbeat_interval": 5}
    return SweepSettings(**{**base, **kw})


def _trials(tmp_path: Path, name: str = "s") -> list[optuna.trial.FrozenTrial]:
    url = f"sqlite:///{tmp_path / name / 'study.db'}"
    return optuna.load_study(study_name=name, storage=url).get_trials()


def _by_point(trials):
    return {(t.params["config"], t.state) for t in trials}


@pytest.mark.parametrize(
    ("sig", "words"),
    [("SIGSEGV", "died: SIGSEGV (signal 11)"), ("SIGKILL", "was killed by SIGKILL (signal 9; out of memory?)")],
)
def test_dead_trial_is_failed_with_its_reason_and_the_sweep_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sig: str, words: str
) -> None:
    monkeypatch.setenv("ECGSCALE_TEST_DIE", f"{sig}:{DEAD}")
    summary = run_sweep(_settings(tmp_path), runner=SurrogateRunner(), data={"d": 1}, isolate=True)
    assert summary.n_complete == 2 and len(summary.ran) == 2 and not summary.done
    (number, reason), *rest = summary.died
    assert not rest and number in summary.failed
    assert reason == f"training process {words} — {DEAD} seed 0, epochs 2"
    trials = _trials(tmp_path)
    assert _by_point(trials) == {
        ("D1-C8-K3-gap", optuna.trial.TrialState.COMPLETE),
        ("D1-C8-K3-nogap", optuna.trial.TrialState.COMPLETE),
        (DEAD, optuna.trial.TrialState.FAIL),
    }
    dead = next(t for t in trials if t.state == optuna.trial.TrialState.FAIL)
    assert dead.number == number and dead.user_attrs["error"] == reason and dead.user_attrs["died"] == sig
    # the worker attribute names the command's process (the supervisor), as without isolation
    assert {t.user_attrs["worker"].rsplit(":", 1)[1] for t in trials} == {str(os.getpid())}

    # re-running does not run the dead point again (it would die again) ...
    monkeypatch.delenv("ECGSCALE_TEST_DIE")
    again = run_sweep(_settings(tmp_path), runner=SurrogateRunner(), data={"d": 1}, isolate=True)
    assert again.ran == () and again.died == () and len(_trials(tmp_path)) == 3
    # ... unless asked to, after the cause was fixed
    fixed = run_sweep(_settings(tmp_path, retry_failed=True), runner=SurrogateRunner(), data={"d": 1}, isolate=True)
    assert fixed.done and len(fixed.ran) == 1


def test_retry_of_a_point_that_dies_again_is_not_requeued_in_a_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECGSCALE_TEST_DIE", f"SIGSEGV:{DEAD}")
    run_sweep(_settings(tmp_path), runner=SurrogateRunner(), data={"d": 1}, isolate=True)
    again = run_sweep(_settings(tmp_path, retry_failed=True), runner=SurrogateRunner(), data={"d": 1}, isolate=True)
    assert len(again.died) == 1 and again.ran == ()  # queued once on request, died once, not queued again
    fails = [t for t in _trials(tmp_path) if t.state == optuna.trial.TrialState.FAIL]
    assert len(fails) == 2 and all("SIGSEGV" in t.user_attrs["error"] for t in fails)


def test_every_trial_dying_stops_the_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECGSCALE_TEST_DIE", "SIGABRT:*")
    grid = Grid("g", (*GRID.points, ArchPoint(4, 8, 3, True)), seeds=(0,))
    with pytest.raises(StudyError, match=r"3 trials in a row died in this sweep; last: .*SIGABRT"):
        run_sweep(_settings(tmp_path, grid=grid), runner=SurrogateRunner(), data={"d": 1}, isolate=True)
    assert [t.state for t in _trials(tmp_path)] == [optuna.trial.TrialState.FAIL] * 3


def test_search_trial_deaths_are_failed_and_spend_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECGSCALE_TEST_DIE", "SIGSEGV:*")
    settings = SearchSettings(name="q", space=narrow_space(), n_trials=3, train={"epochs": 2}, studies_dir=tmp_path)
    with pytest.raises(StudyError, match="3 trials in a row died in this search"):
        run_search(settings, runner=SurrogateRunner(), data={"d": 1}, isolate=True)
    trials = _trials(tmp_path, "q")
    assert len(trials) == 3 and all(t.state == optuna.trial.TrialState.FAIL for t in trials)
    assert all(t.user_attrs["error"].startswith("training process died: SIGSEGV") for t in trials)
    monkeypatch.delenv("ECGSCALE_TEST_DIE")
    summary = run_search(settings, runner=SurrogateRunner(), data={"d": 1}, isolate=True)
    assert summary.n_failed == 3 and summary.n_complete == 0  # the budget was spent by the failures


def test_cli_sweep_reports_the_dead_trial_and_exits_0(tmp_path: Path, run_ecgscale) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text(GRID_TOML)
    args = ("sweep", "--study", "s", "--grid", grid, "--runner", "surrogate", "--epochs", "2")
    args += ("--studies-dir", tmp_path, "--no-progress")
    res = run_ecgscale(*args, env={"ECGSCALE_TEST_DIE": f"SIGSEGV:{DEAD}"})
    assert res.returncode == 0, res.stderr
    assert "2/3 grid points incomplete" in res.stdout and "1 failed" in res.stdout
    assert f"failed: training process died: SIGSEGV (signal 11) — {DEAD} seed 0, epochs 2" in res.stdout
    assert "--retry-failed" in res.stdout and "Traceback" not in res.stderr
    res = run_ecgscale(*args)
    assert res.returncode == 0 and "ran 0 trial(s)" in res.stdout, res.stdout + res.stderr


def test_kill_9_of_the_command_kills_the_worker_and_leaves_the_trial_to_the_heartbeat(
    tmp_path: Path, run_ecgscale
) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text(GRID_TOML)
    args = ("sweep", "--study", "s", "--grid", grid, "--runner", "surrogate:0.3", "--epochs", "8")
    args += ("--studies-dir", tmp_path, "--no-progress", "--heartbeat-interval", "1", "--grace-period", "2")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ecgscale", *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if (tmp_path / "s" / "study.db").exists():
                running = [t for t in _safe_trials(tmp_path) if t.state == optuna.trial.TrialState.RUNNING]
                if running and "config" in running[0].params:
                    break
            time.sleep(0.2)
        else:
            pytest.fail("no trial started")
        kids = _children(proc.pid)
        assert kids, "the sweep runs its trials in a child process"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        end = time.monotonic() + 10
        while any(_alive(k) for k in kids) and time.monotonic() < end:
            time.sleep(0.05)
        assert not any(_alive(k) for k in kids), "the worker outlived the killed command"
    finally:
        if proc.poll() is None:
            proc.kill()
    killed = [t for t in _trials(tmp_path) if t.state == optuna.trial.TrialState.RUNNING]
    assert len(killed) == 1 and "error" not in killed[0].user_attrs
    time.sleep(3)  # past the grace period: the next run fails the trial by its heartbeat and queues it again
    res = run_ecgscale(*args)
    assert res.returncode == 0, res.stderr
    assert "3/3 grid points complete" in res.stdout, res.stdout
    first = next(t for t in _trials(tmp_path) if t.number == killed[0].number)
    assert first.state == optuna.trial.TrialState.FAIL and "error" not in first.user_attrs


def _safe_trials(tmp_path: Path) -> list:
    try:
        return _trials(tmp_path)
    except Exception:  # the study is being created
        return []


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as fh:
                    if int(fh.read().rsplit(")", 1)[-1].split()[1]) == pid:
                        kids.append(int(entry.name))
            except OSError:
                continue
    return kids


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False
