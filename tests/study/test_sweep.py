"""Sweep mechanics on SQLite with a counting fake runner: resume, refusal of mismatched studies, storage errors,
duplicate grid points."""

from __future__ import annotations

import collections
from pathlib import Path

import optuna
import pytest

from ecgscale.errors import StudyError
from ecgscale.study import sweep as sweep_mod
from ecgscale.study.grids import ArchPoint, Grid, axes_grid
from ecgscale.study.objective import SurrogateRunner, TrialConfig, TrialOutcome
from ecgscale.study.results import study_results
from ecgscale.study.sweep import SweepSettings, run_sweep

GRID = Grid("g", (ArchPoint(1, 8, 3, True), ArchPoint(1, 8, 3, False), ArchPoint(2, 16, 5, True)), seeds=(0, 1))


class CountingRunner:
    """The surrogate, counting calls per (config, seed); optionally interrupts on call ``interrupt_at``."""

    def __init__(self, interrupt_at: int | None = None):
        self.calls: collections.Counter = collections.Counter()
        self.outcomes: dict[tuple[str, int], TrialOutcome] = {}
        self.n = 0
        self.interrupt_at = interrupt_at
        self.inner = SurrogateRunner()

    def __call__(self, config: TrialConfig, trial_dir: Path, report) -> TrialOutcome:
        self.n += 1
        if self.interrupt_at is not None and self.n == self.interrupt_at:
            trial_dir.mkdir(parents=True)  # a checkpoint folder the retry should continue in
            (trial_dir / "last.safetensors").write_bytes(b"")
            raise KeyboardInterrupt
        self.calls[(config.arch.key, config.seed)] += 1
        outcome = self.inner(config, trial_dir, report)
        self.outcomes[(config.arch.key, config.seed)] = outcome
        return outcome


def _settings(tmp_path: Path, **kw) -> SweepSettings:
    base = {"name": "s", "grid": GRID, "train": {"epochs": 2}, "studies_dir": tmp_path, "heartbeat_interval": 5}
    return SweepSettings(**{**base, **kw})


def test_sweep_runs_every_point_once_and_stores_results(tmp_path: Path) -> None:
    runner = CountingRunner()
    summary = run_sweep(_settings(tmp_path), runner=runner, data={"d": 1})
    assert summary.done and summary.n_points == 6 and len(summary.ran) == 6
    assert set(runner.calls.values()) == {1} and len(runner.calls) == 6
    df = study_results("s", studies_dir=tmp_path)
    assert len(df) == 6
    assert sorted(zip(df.config, df.seed, strict=True)) == sorted((k, s) for k in GRID.keys for s in (0, 1))
    # every stored number is the one the runner returned for that (config, seed)
    for row in df.itertuples():
        out = runner.outcomes[(row.config, row.seed)]
        stored = {
            "params": out.params,
            "flops": out.flops,
            "receptive_field": out.receptive_field,
            "receptive_field_s": out.receptive_field_s,
            "train_seconds": out.train_seconds,
            "test_macro_auroc": out.test_metrics["macro_auroc"],
            "val_macro_auroc": out.val_metrics["macro_auroc"],
            "test_group_rhythm": out.per_group["test"]["rhythm"],
            "test_label_AF": out.per_label["test"]["AF"],
            "test_source_cpsc_macro_auroc": out.per_source["cpsc"]["macro_auroc"],
        }
        for col, want in stored.items():
            assert getattr(row, col) == pytest.approx(want, rel=1e-12), (row.config, row.seed, col)
    assert (tmp_path / "s" / "study.db").is_file()
    assert all(Path(d).parent == tmp_path / "s" / "trials" for d in df.run_dir)
    st = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 's' / 'study.db'}")
    assert st.user_attrs["grid"] == GRID.to_dict() and st.user_attrs["data"] == {"d": 1}


def test_interrupted_sweep_resumes_without_rerunning_finished_points(tmp_path: Path) -> None:
    first = CountingRunner(interrupt_at=3)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(_settings(tmp_path), runner=first, data={"d": 1})
    assert sum(first.calls.values()) == 2
    second = CountingRunner()
    summary = run_sweep(_settings(tmp_path), runner=second, data={"d": 1})
    assert summary.done
    assert sum(second.calls.values()) == 4  # the interrupted point and the three never started
    assert not set(first.calls) & set(second.calls)
    # the interrupted trial (number 2) was retried in its own folder, so a resumable runner continues there
    df = study_results("s", studies_dir=tmp_path)
    interrupted = [d for d in df.run_dir if Path(d).name == "2"]
    assert len(interrupted) == 1 and (Path(interrupted[0]) / "last.safetensors").exists()
    assert 2 not in set(df.trial)
    third = CountingRunner()
    assert run_sweep(_settings(tmp_path), runner=third, data={"d": 1}).ran == ()
    assert sum(third.calls.values()) == 0
    assert len(study_results("s", studies_dir=tmp_path)) == 6


def test_failed_points_are_rerun_only_on_request(tmp_path: Path) -> None:
    class Broken(CountingRunner):
        def __call__(self, config, trial_dir, report):
            if config.arch.depth == 2:
                raise RuntimeError("out of memory (simulated)")
            return super().__call__(config, trial_dir, report)

    s = run_sweep(_settings(tmp_path), runner=Broken(), data={"d": 1})
    assert len(s.failed) == 2 and s.n_complete == 4
    st = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 's' / 'study.db'}")
    failed = st.get_trials(states=(optuna.trial.TrialState.FAIL,))
    assert all("out of memory" in t.user_attrs["error"] for t in failed)
    again = CountingRunner()
    assert run_sweep(_settings(tmp_path), runner=again, data={"d": 1}).ran == ()
    fixed = CountingRunner()
    s2 = run_sweep(_settings(tmp_path, retry_failed=True), runner=fixed, data={"d": 1})
    assert s2.done and set(fixed.calls) == {("D2-C16-K5-gap", 0), ("D2-C16-K5-gap", 1)}


def test_consecutive_failures_stop_the_worker(tmp_path: Path) -> None:
    def broken(config, trial_dir, report):
        raise RuntimeError("bad setup")

    with pytest.raises(StudyError, match=r"3 trials in a row failed.*bad setup"):
        run_sweep(_settings(tmp_path), runner=broken, data={"d": 1})


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"grid": axes_grid()}, "grid"),
        ({"grid": GRID.with_seeds((0, 1, 2))}, "grid"),
        ({"train": {"epochs": 3}}, "protocol"),
    ],
)
def test_existing_study_with_other_settings_is_refused(tmp_path: Path, change: dict, key: str) -> None:
    run_sweep(_settings(tmp_path), runner=CountingRunner(), data={"d": 1})
    runner = CountingRunner()
    with pytest.raises(StudyError, match=f"already exists with a different '{key}'"):
        run_sweep(_settings(tmp_path, **change), runner=runner, data={"d": 1})
    assert runner.n == 0
    st = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 's' / 'study.db'}")
    assert st.user_attrs["grid"] == GRID.to_dict() and st.user_attrs["protocol"]["train"] == {"epochs": 2}


def test_existing_study_with_other_data_is_refused(tmp_path: Path) -> None:
    run_sweep(_settings(tmp_path), runner=CountingRunner(), data={"preprocess_hash": "aaa"})
    runner = CountingRunner()
    with pytest.raises(StudyError, match=r"different 'data'.*aaa.*bbb"):
        run_sweep(_settings(tmp_path), runner=runner, data={"preprocess_hash": "bbb"})
    assert runner.n == 0


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("postgresql://user:hunter2@127.0.0.1:1/nodb", "cannot reach study storage postgresql://user:\\*\\*\\*@"),
        ("nosuchdialect://x/y", "unknown database dialect|not valid"),
        ("sqlite:////proc/no/such/dir/study.db", "storage"),
    ],
)
def test_unreachable_storage_is_a_clear_error_before_any_trial(tmp_path: Path, url: str, match: str) -> None:
    runner = CountingRunner()
    with pytest.raises(StudyError, match=match) as info:
        run_sweep(_settings(tmp_path, storage=url), runner=runner, data={"d": 1})
    assert "hunter2" not in str(info.value)
    assert runner.n == 0


def test_duplicate_grid_point_is_skipped_not_trained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_sweep(_settings(tmp_path), runner=CountingRunner(), data={"d": 1})
    # Simulate the GridSampler race: this worker believes a point is still free although all are taken, so the
    # sampler hands out an already finished point.
    real = sweep_mod._grid_state
    fooled = {"n": 0}

    def fake_state(study, space):
        started, complete, running, waiting = real(study, space)
        fooled["n"] += 1
        return (set(), complete, running, waiting) if fooled["n"] == 1 else (started, complete, running, waiting)

    monkeypatch.setattr(sweep_mod, "_grid_state", fake_state)
    runner = CountingRunner()
    summary = run_sweep(_settings(tmp_path), runner=runner, data={"d": 1})
    assert runner.n == 0 and len(summary.duplicates) == 1 and summary.ran == ()
    st = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 's' / 'study.db'}")
    dup = st.trials[summary.duplicates[0]]
    assert dup.state == optuna.trial.TrialState.PRUNED
    original = st.trials[dup.user_attrs["duplicate_of"]]
    assert original.state == optuna.trial.TrialState.COMPLETE and original.params == dup.params
    assert len(study_results("s", studies_dir=tmp_path)) == 6


def test_bad_names_and_settings(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match="study name"):
        run_sweep(_settings(tmp_path, name="../evil"), runner=CountingRunner(), data={})
    with pytest.raises(StudyError, match="timeout"):
        _settings(tmp_path, timeout=0)
    with pytest.raises(StudyError, match="grace period"):
        run_sweep(_settings(tmp_path, heartbeat_interval=5, grace_period=5), runner=CountingRunner(), data={})
    with pytest.raises(StudyError, match="no study 'missing'"):
        study_results("missing", studies_dir=tmp_path)
