"""Workers killed mid-trial: the heartbeat fails their trial and another worker (or a re-run) finishes it.

Real ``ecgscale sweep`` processes. PostgreSQL: two workers training for real on the tiny cache, one SIGKILLed
mid-trial. SQLite (single machine): the only worker killed, then the command re-run; there the surrogate runner
with a per-epoch sleep keeps it fast and deterministic.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
from pathlib import Path

import optuna
import pytest
from reliability.common import ecgscale_cmd
from reliability.faults._setup import wait_for
from reliability.sweeps import running_trial_of, sweep_worker_args

from ecgscale.study.storage import open_storage


def start_worker(*args: str, log_path: Path) -> subprocess.Popen:
    fh = open(log_path, "w")  # noqa: SIM115 - closed by the OS when the worker ends
    return subprocess.Popen(ecgscale_cmd(*args), stdout=fh, stderr=subprocess.STDOUT)


GRID = """
name = "tiny"
points = [
  {depth = 1, channels = 8, kernel_size = 3, gap = true},
  {depth = 1, channels = 8, kernel_size = 3, gap = false},
  {depth = 2, channels = 8, kernel_size = 5, gap = true},
]
"""


def _check_exactly_once(url: str, study: str, killed: int) -> optuna.Study:
    st = optuna.load_study(study_name=study, storage=open_storage(url))
    complete = st.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    counts = collections.Counter((t.params["config"], t.params["seed"]) for t in complete)
    assert sorted(counts) == sorted([("D1-C8-K3-gap", 0), ("D1-C8-K3-nogap", 0), ("D2-C8-K5-gap", 0)])
    assert set(counts.values()) == {1}, counts
    assert all(t.user_attrs.get("test_metrics", {}).get("macro_auroc") is not None for t in complete)
    by_number = {t.number: t for t in st.get_trials(deepcopy=False)}
    assert by_number[killed].state == optuna.trial.TrialState.FAIL
    retries = [t for t in complete if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1 and retries[0].params == by_number[killed].params
    return st


@pytest.mark.postgres
@pytest.mark.slow
def test_two_postgres_workers_one_killed_every_point_once(postgres_url: str, tiny_cache, tmp_path: Path) -> None:
    """Two real training workers (the real trainer on the tiny cache), one SIGKILLed in the middle of a trial."""
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    study = "pg-kill"
    cache = Path(tiny_cache.path)
    a = start_worker(*sweep_worker_args(study, postgres_url, grid, tmp_path / "a", cache), log_path=tmp_path / "a.log")
    b = start_worker(*sweep_worker_args(study, postgres_url, grid, tmp_path / "b", cache), log_path=tmp_path / "b.log")
    logs = {a.pid: tmp_path / "a.log", b.pid: tmp_path / "b.log"}

    def first_running() -> tuple[subprocess.Popen, int] | None:
        # whichever worker starts training first is killed (on a busy machine either may be slow to start)
        for p in (a, b):
            number = running_trial_of(postgres_url, study, p.pid)
            if number is not None:
                return p, number
        return None

    try:
        victim, killed = wait_for(first_running, timeout=90, what="a worker to start a trial")
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
        survivor = b if victim is a else a
        assert survivor.wait(120) == 0, logs[survivor.pid].read_text()
    finally:
        for p in (a, b):
            if p.poll() is None:
                p.kill()
    st = _check_exactly_once(postgres_url, study, killed)
    # The survivor re-ran the killed trial's point: it waited for the grace period instead of exiting.
    retry = next(
        t
        for t in st.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
        if t.system_attrs.get("failed_trial") == killed
    )
    assert retry.user_attrs["worker"].endswith(f":{survivor.pid}")


def test_sqlite_worker_killed_then_rerun_resumes(tmp_path: Path) -> None:
    """One machine, no server: kill the only worker mid-trial; the same command later re-runs that point."""
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    studies = tmp_path / "studies"
    study = "sq-kill"
    url = f"sqlite:///{studies / study / 'study.db'}"
    a = start_worker(*sweep_worker_args(study, None, grid, studies), log_path=tmp_path / "a.log")
    try:
        killed = wait_for(
            lambda: (studies / study / "study.db").exists() and running_trial_of(url, study, a.pid),
            timeout=60,
            what="the worker to start a trial",
        )
        os.kill(a.pid, signal.SIGKILL)
        a.wait(10)
    finally:
        if a.poll() is None:
            a.kill()
    again = subprocess.run(
        ecgscale_cmd(*sweep_worker_args(study, None, grid, studies)), capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stdout + again.stderr
    _check_exactly_once(url, study, killed)
    # A third run finds nothing to do.
    third = subprocess.run(
        ecgscale_cmd(*sweep_worker_args(study, None, grid, studies)), capture_output=True, text=True, timeout=120
    )
    assert third.returncode == 0 and "ran 0 trial(s)" in third.stdout, third.stdout + third.stderr
