"""TPE search with pruning, search spaces (files, from a finished sweep) and the wide-vs-narrow comparison."""

from __future__ import annotations

import collections
import dataclasses
from pathlib import Path

import optuna
import pandas as pd
import pytest

from ecgscale.errors import ConfigError
from ecgscale.study.grids import ArchPoint, Grid
from ecgscale.study.objective import SurrogateRunner
from ecgscale.study.search import SearchSettings, compare_spaces, resolve_space, run_search
from ecgscale.study.spaces import IntRange, load_space, narrow_space, space_from_results, wide_space
from ecgscale.study.sweep import SweepSettings, run_sweep


def test_builtin_spaces_match_the_documented_ranges() -> None:
    w, n = wide_space(), narrow_space()
    assert (w.depth.low, w.depth.high, w.channels.low, w.channels.high, w.kernel_size.low, w.kernel_size.high) == (
        1,
        32,
        8,
        512,
        3,
        65,
    )
    assert (n.depth.low, n.depth.high, n.channels.low, n.channels.high, n.kernel_size.low, n.kernel_size.high) == (
        1,
        8,
        64,
        512,
        3,
        9,
    )
    assert w.kernel_size.step == n.kernel_size.step == 2 and w.channels.log


def test_search_with_pruning_runs_and_tops_up(tmp_path: Path) -> None:
    settings = SearchSettings(
        name="srch", space=narrow_space(), n_trials=8, seed=1, train={"epochs": 4}, studies_dir=tmp_path
    )
    s = run_search(settings, runner=SurrogateRunner(), data={"d": 1})
    assert s.n_complete + s.n_pruned == 8 and s.n_pruned >= 1 and s.n_complete >= 2
    assert 0 < s.best_value <= 1 and 0 < s.best_test <= 1
    st = optuna.load_study(study_name="srch", storage=f"sqlite:///{tmp_path / 'srch' / 'study.db'}")
    pruned = st.get_trials(states=(optuna.trial.TrialState.PRUNED,))
    assert all(max(t.intermediate_values) < 4 for t in pruned)  # stopped before the last epoch
    for t in st.trials:
        p = t.params
        assert 1 <= p["depth"] <= 8 and 64 <= p["channels"] <= 512 and p["kernel_size"] in (3, 5, 7, 9)
        assert {"lr", "weight_decay", "dropout", "batch_size"} <= set(p)
    # same seed and budget: nothing more to run
    again = run_search(settings, runner=SurrogateRunner(), data={"d": 1})
    assert len(st.trials) == 8 and again.best_trial == s.best_trial


def test_killed_trials_do_not_spend_the_budget_but_errors_do(tmp_path: Path) -> None:
    """A trial failed by the heartbeat (its worker was killed: FAIL, no error) is not counted; one that raised is."""
    settings = SearchSettings(
        name="k", space=narrow_space(), n_trials=2, seed=3, train={"epochs": 2}, studies_dir=tmp_path
    )
    run_search(settings, runner=SurrogateRunner(), data={"d": 1})
    st = optuna.load_study(study_name="k", storage=f"sqlite:///{tmp_path / 'k' / 'study.db'}")
    st.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))  # what a killed worker leaves

    calls = {"n": 0}

    def flaky(config, trial_dir, report):  # the first trial of the resumed search raises
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("out of memory")
        return SurrogateRunner()(config, trial_dir, report)

    s = run_search(dataclasses.replace(settings, n_trials=5), runner=flaky, data={"d": 1})
    states = collections.Counter(t.state for t in st.get_trials())
    # 2 finished before + 1 error + 2 more finished = 5 spent; the killed trial came on top.
    assert s.n_complete + s.n_pruned == 4 and states[optuna.trial.TrialState.FAIL] == 2, states
    assert calls["n"] == 3


def test_space_files_and_their_errors(tmp_path: Path) -> None:
    f = tmp_path / "mine.toml"
    f.write_text(
        "depth = [1, 4]\nchannels = {low = 32, high = 256, log = true}\nkernel_size = [3, 7]\n"
        "gap = [true]\nbatch_size = [64]\n"
    )
    sp = load_space(f)
    assert sp.name == "mine" and sp.depth == IntRange(1, 4) and sp.kernel_size == IntRange(3, 7, step=2)
    assert sp.gap == (True,) and sp.batch_size == (64,) and sp.channels.log
    assert resolve_space(str(f)) == sp
    for text, key in (
        ("depth = [1, 4]\nchannels = [8, 16]\nkernel_size = [4, 8]\n", "kernel_size"),
        ("depth = [1, 4]\nchannels = [8, 16]\nkernel_size = [3, 9]\nlr = [0, 1]\n", "lr"),
        ("depth = [1, 4]\nchannels = [8, 16]\nkernel_size = [3, 9]\nmomentum = 1\n", "momentum"),
        ("depth = [4, 1]\nchannels = [8, 16]\nkernel_size = [3, 9]\n", "depth"),
    ):
        f.write_text(text)
        with pytest.raises(ConfigError) as info:
            load_space(f)
        assert str(f) in str(info.value) and key in str(info.value)
    with pytest.raises(ConfigError, match="wide \\| narrow"):
        resolve_space("medium")


def test_space_from_results_pads_the_top_region_one_grid_step() -> None:
    rows = []
    for d in (1, 2, 4, 8):
        for c in (16, 32, 64, 128, 256):
            for k in (3, 5, 9, 17):
                score = 0.9 if (d == 2 and c in (64, 128) and k == 3) else 0.5
                rows.append(
                    {
                        "depth": d,
                        "channels": c,
                        "kernel_size": k,
                        "gap": True,
                        "seed": 0,
                        "val_macro_auroc": score,
                        "test_macro_auroc": 0.0,
                    }
                )
    df = pd.DataFrame(rows)
    sp = space_from_results(df, top_q=2 / len(df))
    assert (sp.depth.low, sp.depth.high) == (1, 4)
    assert (sp.channels.low, sp.channels.high) == (32, 256)
    assert (sp.kernel_size.low, sp.kernel_size.high) == (3, 5)
    assert sp.gap == (True,)
    assert sp.lr == narrow_space().lr  # training ranges are kept
    with pytest.raises(ConfigError):
        space_from_results(df, top_q=0)


def test_from_study_space_reads_a_finished_sweep(tmp_path: Path) -> None:
    grid = Grid("g", tuple(ArchPoint(d, c, 3, g) for d in (1, 2, 4) for c in (16, 64) for g in (True, False)))
    run_sweep(
        SweepSettings(name="sw", grid=grid, train={"epochs": 1}, studies_dir=tmp_path, heartbeat_interval=10),
        runner=SurrogateRunner(),
        data={"d": 1},
    )
    sp = resolve_space("from-study:sw", studies_dir=tmp_path, top_q=0.25)
    assert sp.name == "from-study:sw"
    assert 1 <= sp.depth.low <= sp.depth.high <= 4 and {sp.channels.low, sp.channels.high} <= {16, 64}
    assert (sp.kernel_size.low, sp.kernel_size.high) == (3, 3)


def test_search_compare_writes_table_figure_and_verdict(tmp_path: Path) -> None:
    rep = compare_spaces(
        [wide_space(), narrow_space()],
        tmp_path / "cmp",
        runner=SurrogateRunner(),
        data={"d": 1},
        n_trials=5,
        seeds=(0, 1),
        train={"epochs": 3},
        studies_dir=tmp_path / "st",
    )
    t = rep.table.set_index("space")
    assert list(t.index) == ["wide", "narrow", "narrow − wide"]
    assert (t.n_seeds == 2).all()
    diff = t.loc["narrow − wide"]
    assert diff.test_mean == pytest.approx(t.loc["narrow"].test_mean - t.loc["wide"].test_mean)
    assert diff.test_ci_low <= diff.test_mean <= diff.test_ci_high
    assert rep.verdict.startswith("Verdict:") and f"{diff.test_mean:+.4f}" in rep.verdict
    assert len(rep.curves) == 2 * 2 * 5
    for s, c in rep.curves.groupby(["space", "seed"]):  # best-so-far never decreases
        assert c.best.dropna().is_monotonic_increasing, s
    for name in (
        "compare.csv",
        "compare.md",
        "compare_runs.csv",
        "best_so_far.csv",
        "best_so_far.png",
        "best_so_far.svg",
    ):
        assert (tmp_path / "cmp" / name).stat().st_size > 0


def test_search_and_compare_commands(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ecgscale.cli import app

    cli = CliRunner()
    res = cli.invoke(
        app,
        [
            "search",
            "--study",
            "cs",
            "--space",
            "wide",
            "--trials",
            "3",
            "--epochs",
            "2",
            "--runner",
            "surrogate",
            "--studies-dir",
            str(tmp_path),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "search cs (wide): " in res.output and "best validation" in res.output
    res = cli.invoke(
        app,
        [
            "search-compare",
            "--out",
            str(tmp_path / "cmp"),
            "--trials",
            "2",
            "--seeds",
            "1",
            "--epochs",
            "2",
            "--runner",
            "surrogate",
            "--studies-dir",
            str(tmp_path),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "Verdict:" in res.output and (tmp_path / "cmp" / "best_so_far.png").is_file()
    bad = cli.invoke(
        app, ["search", "--study", "cs2", "--space", "huge", "--runner", "surrogate", "--studies-dir", str(tmp_path)]
    )
    assert bad.exit_code != 0 and isinstance(bad.exception, ConfigError)


def _search_args(study: str, studies: Path, trials: int, *extra: str) -> list[str]:
    """A narrow-space search of surrogate trials (3 epochs of 1 s: long enough to be killed mid-trial)."""
    return [
        "search",
        "--study",
        study,
        "--space",
        "narrow",
        "--trials",
        str(trials),
        "--epochs",
        "3",
        "--pruner",
        "none",
        "--runner",
        "surrogate:1",
        "--studies-dir",
        str(studies),
        *extra,
    ]


def _by_state(study: optuna.Study) -> collections.Counter:
    return collections.Counter(t.state.name for t in study.get_trials(deepcopy=False))


@pytest.mark.slow
def test_killed_search_resumed_finishes_exactly_its_budget(tmp_path: Path) -> None:
    """``ecgscale search`` SIGKILLed in the middle of a trial, then the same command again: the killed trial is
    failed by the heartbeat (as it is once its grace period has passed; here its last heartbeat is moved an hour
    back instead of waiting two minutes), re-run once, and the study ends with exactly the trials asked for."""
    import os
    import signal
    import sqlite3
    import subprocess

    from reliability.common import ecgscale_cmd
    from reliability.faults._setup import wait_for

    studies, name, budget = tmp_path / "studies", "killed", 4
    db = studies / name / "study.db"
    url = f"sqlite:///{db}"

    drawn = {"depth", "channels", "kernel_size", "gap", "lr", "weight_decay", "dropout", "batch_size"}

    def mid_trial() -> int | None:  # a trial running (all its parameters drawn) after at least one has finished
        if not db.exists():
            return None
        try:
            st = optuna.load_study(study_name=name, storage=url)
            trials = st.get_trials(deepcopy=False)
        except Exception:  # not created yet, or its tables are being created: not there yet
            return None
        done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
        running = [t.number for t in trials if t.state == optuna.trial.TrialState.RUNNING and drawn <= set(t.params)]
        return running[0] if done >= 1 and running else None

    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen(ecgscale_cmd(*_search_args(name, studies, budget)), stdout=log, stderr=subprocess.STDOUT)
    try:
        killed = wait_for(mid_trial, timeout=120, what="the search to be inside its second or later trial")
        os.kill(first.pid, signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
        log.close()
    st = optuna.load_study(study_name=name, storage=url)
    assert st.trials[killed].state == optuna.trial.TrialState.RUNNING  # what the kill left behind
    with sqlite3.connect(db) as con:
        moved = con.execute(
            "UPDATE trial_heartbeats SET heartbeat = datetime(heartbeat, '-1 hour') WHERE trial_id = "
            "(SELECT trial_id FROM trials WHERE number = ? AND study_id = "
            "(SELECT study_id FROM studies WHERE study_name = ?))",
            (killed, name),
        ).rowcount
    assert moved == 1

    again = subprocess.run(
        ecgscale_cmd(*_search_args(name, studies, budget)), capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stdout + again.stderr
    st = optuna.load_study(study_name=name, storage=url)
    trials = st.get_trials(deepcopy=False)
    assert trials[killed].state == optuna.trial.TrialState.FAIL and "error" not in trials[killed].user_attrs
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1 and retries[0].state == optuna.trial.TrialState.COMPLETE
    assert retries[0].params == trials[killed].params
    assert _by_state(st) == {"COMPLETE": budget, "FAIL": 1}, _by_state(st)

    # the budget is spent: the same command once more runs nothing
    third = subprocess.run(
        ecgscale_cmd(*_search_args(name, studies, budget)), capture_output=True, text=True, timeout=300
    )
    assert third.returncode == 0, third.stdout + third.stderr
    assert len(optuna.load_study(study_name=name, storage=url).trials) == len(trials)


@pytest.mark.slow
@pytest.mark.postgres
def test_search_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    """``ecgscale search --storage postgresql://...``: the study lives in the server (nothing in SQLite under
    --studies-dir), a re-run with the same budget adds nothing, a larger budget tops it up."""
    from typer.testing import CliRunner

    from ecgscale.cli import app

    studies, name = tmp_path / "studies", "pg-search"
    cli = CliRunner()
    res = cli.invoke(app, _search_args(name, studies, 3, "--storage", postgres_url))
    assert res.exit_code == 0, (res.output, res.exception)
    assert f"search {name} (narrow): " in res.output and "best validation" in res.output
    assert not list(studies.rglob("*.db"))
    st = optuna.load_study(study_name=name, storage=postgres_url)
    assert _by_state(st) == {"COMPLETE": 3} and st.user_attrs["ecgscale_kind"] == "search"
    assert all({"depth", "channels", "kernel_size", "lr"} <= set(t.params) for t in st.trials)
    res = cli.invoke(app, _search_args(name, studies, 3, "--storage", postgres_url))
    assert res.exit_code == 0 and len(optuna.load_study(study_name=name, storage=postgres_url).trials) == 3
    res = cli.invoke(app, _search_args(name, studies, 5, "--storage", postgres_url))
    assert res.exit_code == 0, (res.output, res.exception)
    assert _by_state(optuna.load_study(study_name=name, storage=postgres_url)) == {"COMPLETE": 5}


def test_search_recipe_sets_training_but_not_what_the_space_samples(tmp_path: Path) -> None:
    """`--recipe ptbxl` gives every trial the recipe's crops, schedule and windows; typed --epochs wins, and the
    space still samples lr (the recipe's fixed 1e-2 must not leak into every trial)."""
    from typer.testing import CliRunner

    from ecgscale.cli import app
    from ecgscale.study.results import load_study
    from ecgscale.train.recipes import RECIPES

    args = ["--trials", "3", "--runner", "surrogate", "--studies-dir", str(tmp_path), "--recipe", "ptbxl"]
    res = CliRunner().invoke(app, ["search", "--study", "rs", "--epochs", "2", *args])
    assert res.exit_code == 0, res.output
    st = load_study("rs", None, studies_dir=tmp_path)
    protocol = st.user_attrs["protocol"]["train"]
    recipe = RECIPES["ptbxl"]["train"]
    assert protocol["epochs"] == 2  # typed
    for key in ("crop_s", "eval_stride_s", "eval_aggregate", "schedule"):
        assert protocol[key] == recipe[key], key
    lrs = {t.params["lr"] for t in st.get_trials(deepcopy=False)}
    assert len(lrs) == 3 and recipe["lr"] not in lrs
    res = CliRunner().invoke(
        app, ["search-compare", "--out", str(tmp_path / "cmp"), "--seeds", "1", "--study", "rc", *args]
    )
    assert res.exit_code == 0, res.output
    st = load_study("rc-narrow-s0", None, studies_dir=tmp_path)
    assert st.user_attrs["protocol"]["train"]["epochs"] == recipe["epochs"]  # not typed: the recipe's


def test_a_resumed_search_does_not_replay_its_first_configurations(tmp_path: Path) -> None:
    """Stopping a search and starting it again must not re-run the start-up configurations it already tried
    (a sampler re-created with the same seed draws the same random start-up points)."""
    from ecgscale.study.results import load_study

    def search(n: int) -> None:
        settings = SearchSettings(
            name="resume", space=narrow_space(), n_trials=n, seed=0, train={"epochs": 2}, studies_dir=tmp_path
        )
        run_search(settings, runner=SurrogateRunner(), data={"d": 1})

    search(2)
    search(4)
    trials = load_study("resume", None, studies_dir=tmp_path).get_trials(deepcopy=False)
    configs = [tuple(sorted(t.params.items())) for t in trials]
    assert len(configs) == 4 and len(set(configs)) == 4, configs
    # an uninterrupted search with the same seed starts with the same two configurations as before
    fresh = tmp_path / "fresh"
    run_search(
        SearchSettings(name="resume", space=narrow_space(), n_trials=2, seed=0, train={"epochs": 2}, studies_dir=fresh),
        runner=SurrogateRunner(),
        data={"d": 1},
    )
    again = [tuple(sorted(t.params.items())) for t in load_study("resume", None, studies_dir=fresh).get_trials()]
    assert again == configs[:2]
