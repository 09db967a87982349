"""kill -9 of ``prepare``, ``train`` and ``sweep`` (real CLI child processes), then resume: nothing lost or torn.

The scenarios of ``reliability.kill`` run here with three kills each (one at a seeded uniform time, one at a
polled moment, one just before a seeded rename); ``python -m reliability.run`` runs them with many more. The
other tests pin the bugs those kills found, deterministically.
"""

from __future__ import annotations

import collections
import shutil
from pathlib import Path

import optuna
import pytest
from reliability.common import ecgscale_cmd
from reliability.kill import scenarios
from reliability.kill.harness import KillPoint, count_renames, kill_run

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("scenario", scenarios.SCENARIOS, ids=[s.__name__ for s in scenarios.SCENARIOS])
def test_kill_scenario(scenario, tmp_path: Path) -> None:
    # one kill of each kind (uniform time, polled moment, before a file operation); the rebuild's swap is pinned below
    result = scenario(tmp_path, iterations=2 if scenario is scenarios.prepare_rebuild_killed else 3, seed=0)
    assert result.passed, result.summary() + "\n" + result.how_often


def test_rebuild_killed_before_each_file_operation_leaves_old_or_new_cache(tmp_path: Path) -> None:
    """Kill a ``prepare --rebuild`` just before each of its renames/rmtrees in turn. Before the fix the old cache
    was moved aside and the new one moved in by two renames: a kill between them left no cache at --out."""
    from ecgscale.synth import generate

    tree = tmp_path / "tree"
    generate(tree, n=40, seed=1, format="cinc2021", progress=False)
    refs = {name: tmp_path / name for name in ("old", "new")}
    for name, extra in (("old", scenarios.OLD_CACHE_ARGS), ("new", ())):
        rc, _, _ = count_renames(
            ecgscale_cmd("prepare", tree, "--out", refs[name], "--workers", "1", "--no-progress", *extra),
            log_path=tmp_path / f"{name}.log",
        )
        assert rc == 0, (tmp_path / f"{name}.log").read_text()
    out = tmp_path / "out" / "cache"
    cmd = ecgscale_cmd("prepare", tree, "--out", out, "--workers", "1", "--no-progress", "--rebuild")
    out.parent.mkdir()
    shutil.copytree(refs["old"], out)
    rc, _, ops = count_renames(cmd, log_path=tmp_path / "count.log")
    assert rc == 0 and ops, (tmp_path / "count.log").read_text()
    for k in range(1, len(ops) + 1):
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(refs["old"], out)
        outcome = kill_run(cmd, KillPoint(f"op {k}", rename=k), log_path=tmp_path / "kill.log")
        assert outcome.killed, f"op {k} ({ops[k - 1]}): not killed: {outcome.log}"
        assert out.is_dir(), f"no cache at {out} after a kill before {ops[k - 1]}"
        assert scenarios._valid_cache(out) is None
        assert not scenarios._compare_cache(out, refs["old"]) or not scenarios._compare_cache(out, refs["new"])
    # the next prepare cleans up whatever the last kill left (the old cache under its .tmp- name)
    rc, _, _ = count_renames(cmd, log_path=tmp_path / "final.log")
    assert rc == 0 and not scenarios._compare_cache(out, refs["new"]) and not scenarios._cache_debris(out)


def test_remove_partial_writes_deletes_only_atomic_write_temps(tmp_path: Path) -> None:
    """A kill inside an atomic write leaves ``.<name>.<random>.tmp``; a resumed run must not pile them up."""
    from ecgscale.fileio import atomic_path
    from ecgscale.train.checkpoint import remove_partial_writes

    keep = ["model.safetensors", ".x.tmp", "notes.tmp", ".hidden"]
    for name in keep:
        (tmp_path / name).write_text("x")
    partial, open_writes = [], []
    for name, suffix in (("last.safetensors", ".safetensors"), ("metrics.jsonl", "")):
        open_writes.append(atomic_path(tmp_path / name, suffix=suffix))  # kept: a collected one would clean up
        partial.append(open_writes[-1].__enter__())  # never exited: what a SIGKILL inside the write leaves
        partial[-1].write_text("half")
    assert sorted(remove_partial_writes(tmp_path)) == sorted(partial)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep)


def test_sweep_point_killed_more_often_than_max_retry_is_run_again(tmp_path: Path) -> None:
    """Optuna's retry callback re-queues a killed trial ``max_retry`` times only; a point killed once more stayed
    FAIL forever (``3/4 grid points incomplete`` on every re-run) until ``--retry-failed``. Killed trials (FAIL
    with no ``error``) are now queued again by the next run."""
    from ecgscale.study.grids import ArchPoint, Grid
    from ecgscale.study.objective import SurrogateRunner
    from ecgscale.study.storage import open_storage
    from ecgscale.study.sweep import SweepSettings, run_sweep

    grid = Grid("g", (ArchPoint(1, 8, 3, True), ArchPoint(1, 8, 3, False)), seeds=(0,))
    settings = SweepSettings(
        name="s", grid=grid, train={"epochs": 1}, studies_dir=tmp_path, heartbeat_interval=5, max_retry=2
    )
    space = grid.search_space()
    sampler = optuna.samplers.GridSampler(space, seed=0)
    killed = {"config": grid.keys[0], "seed": 0}
    gid = sampler._all_grids.index(tuple(killed[name] for name in sampler._search_space))
    study = optuna.create_study(study_name="s", storage=open_storage(settings.storage_url), direction="maximize")
    dists = {k: optuna.distributions.CategoricalDistribution(v) for k, v in space.items()}
    for attempt in range(settings.max_retry + 1):  # what the heartbeat and the retry callback leave after 3 kills
        attrs = {"grid_id": gid, "search_space": space}
        if attempt:
            attrs.update(failed_trial=0, retry_history=list(range(attempt)))
        study.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.FAIL, params=killed, distributions=dists, system_attrs=attrs
            )
        )
    summary = run_sweep(settings, runner=SurrogateRunner(), data={"d": 1})
    assert summary.done, summary
    complete = collections.Counter(
        (t.params["config"], t.params["seed"]) for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    )
    assert complete == {(k, 0): 1 for k in grid.keys}
    # the retry continues in the first killed trial's folder (a TrainRunner resumes its checkpoint there)
    retry = next(t for t in study.get_trials() if t.state == optuna.trial.TrialState.COMPLETE and t.params == killed)
    assert retry.system_attrs.get("failed_trial") == 0


def test_train_killed_inside_the_last_epoch_end_is_refused_then_repaired(tmp_path: Path) -> None:
    """Two kills found by the scenario, pinned: (1) between the new best weights and config.json (their thresholds):
    ``load_run`` must refuse the mix, not predict with another epoch's thresholds; (2) after the final resume state
    but before metrics.jsonl: ``--resume`` of that finished run used to return at once, leaving the last epoch out
    of metrics.jsonl/csv and train_state.json "running" for good."""
    import json

    from ecgscale.errors import CheckpointError
    from ecgscale.train.checkpoint import load_run

    cache = scenarios._tiny_cache(tmp_path, 0)
    one_epoch = ("--epochs", "1")
    rc, _, ops = count_renames(scenarios._train_cmd(cache, tmp_path / "count", *one_epoch), log_path=tmp_path / "c.log")
    assert rc == 0, (tmp_path / "c.log").read_text()
    names = [op.rsplit("/", 1)[-1] for op in ops]
    before_config = next(i for i in range(1, len(names)) if names[i - 1 : i + 1] == ["val_metrics.json", "config.json"])
    before_metrics = len(names) - 1 - names[::-1].index("metrics.jsonl")
    for case, k in (("config", before_config), ("metrics", before_metrics)):
        run = tmp_path / case
        cmd = scenarios._train_cmd(cache, run, *one_epoch)
        outcome = kill_run(cmd, KillPoint(case, rename=k + 1), log_path=tmp_path / f"{case}.log")
        assert outcome.killed, outcome.log
        assert scenarios.check_run_dir(run) == []  # complete files; for "config", load_run refuses (checked there)
        if case == "config":
            with pytest.raises(CheckpointError, match="resume"):
                load_run(run)
        rc, _, _ = count_renames([*cmd, "--resume"], log_path=tmp_path / "r.log")
        assert rc == 0, (tmp_path / "r.log").read_text()
        state = json.loads((run / "train_state.json").read_text())
        rows = (run / "metrics.jsonl").read_text().splitlines()
        assert state["status"] == "finished" and len(rows) == 1 and load_run(run).config["best_epoch"] == 1
