"""A lead-set axis in sweeps: grid keys (old 12-lead keys unchanged), grid files, and the per-lead-set analysis on
a surrogate sweep whose lead losses are known (precordial leads matter for conduction/morphology, not axis)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ecgscale.cli import app
from ecgscale.errors import ConfigError, StudyError
from ecgscale.study.analysis import analyze_study
from ecgscale.study.grids import ArchPoint, Grid, axes_grid, load_grid, resolve_grid, with_lead_sets
from ecgscale.study.lead_sets import best_per_lead_set, lead_findings, lead_set_drop
from ecgscale.study.objective import SurrogateRunner
from ecgscale.study.results import study_results
from ecgscale.study.sweep import SweepSettings, run_sweep

GRID = axes_grid(
    {"depth": 2, "channels": 32, "kernel_size": 5}, depths=(1, 2), channels=(32,), kernels=(5,), seeds=(0, 1)
)


def test_twelve_lead_keys_are_unchanged_and_others_are_suffixed():
    assert ArchPoint(2, 64, 9).key == "D2-C64-K9-gap" == ArchPoint(2, 64, 9, True, "12").key
    assert ArchPoint(2, 64, 9, False, "6").key == "D2-C64-K9-nogap-L6"
    odd = ArchPoint(2, 64, 9, True, "v1, i")
    assert odd.leads == "I+V1" and odd.key == "D2-C64-K9-gap-LI+V1"
    for p in (ArchPoint(2, 64, 9), ArchPoint(2, 64, 9, False, "2"), odd):
        assert ArchPoint.from_key(p.key) == p
    assert ArchPoint(1, 8, 3).to_dict() == {"depth": 1, "channels": 8, "kernel_size": 3, "gap": True}
    assert ArchPoint(1, 8, 3, leads="3").to_dict()["leads"] == "3"
    for bad in ("D2-C64-K9-gap-6", "D2-C64-K9-gap-L5", "D2-C64-K9-gap-L6-x"):
        with pytest.raises(ConfigError, match="config"):
            ArchPoint.from_key(bad)


def test_lead_axis_multiplies_the_grid_and_round_trips():
    g = with_lead_sets(GRID, ["12", "6", "I,II"])
    assert len(g.points) == 3 * len(GRID.points) and g.lead_sets == ["12", "6", "2"]
    assert Grid.from_dict(g.to_dict()) == g
    assert [p.key for p in g.points if p.leads == "12"] == GRID.keys  # old studies resume: same 12-lead keys
    assert resolve_grid("axes", leads=["12"]).keys == resolve_grid("axes").keys
    assert len(resolve_grid("axes", leads=["12", "3"]).points) == 52


def test_grid_file_leads_key(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text('depth = [1, 2]\nchannels = [16]\nkernel_size = [3]\ngap = true\nleads = ["12", "2"]\n')
    g = load_grid(path)
    assert g.keys == ["D1-C16-K3-gap", "D1-C16-K3-gap-L2", "D2-C16-K3-gap", "D2-C16-K3-gap-L2"]
    assert resolve_grid(str(path), leads=["6"]).keys == ["D1-C16-K3-gap-L6", "D2-C16-K3-gap-L6"]  # CLI wins
    path.write_text('depth = [1]\nchannels = [16]\nkernel_size = [3]\nleads = ["12", "I,MLII"]\n')
    with pytest.raises(ConfigError, match="MLII") as err:
        load_grid(path)
    assert str(path) in str(err.value) and "leads" in str(err.value)


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("studies")
    grid = with_lead_sets(GRID, ["12", "6", "3", "2"])
    run_sweep(
        SweepSettings(name="leads", grid=grid, train={"epochs": 1}, studies_dir=root, heartbeat_interval=10),
        runner=SurrogateRunner(),
        data={"d": 1},
    )
    return study_results("leads", studies_dir=root)


def test_results_carry_the_lead_set(swept):
    assert sorted(swept["leads"].unique()) == ["12", "2", "3", "6"]
    assert len(swept) == 4 * len(GRID)
    twelve = swept[swept["leads"] == "12"]
    assert not twelve["config"].str.contains("-L").any()


def test_drop_per_group_finds_the_known_losses(swept):
    drop = lead_set_drop(swept)
    by = drop.set_index(["leads", "target"])
    n_pairs = len(GRID)  # every architecture and seed was trained on both sets
    assert (drop["n_pairs"] == n_pairs).all()
    # The surrogate's surface: without V1-V6 conduction and morphology lose ~0.05-0.06; axis lives in I and II.
    for tag in ("6", "2"):
        assert by.loc[(tag, "group:morphology"), "mean_diff"] < -0.04
        assert by.loc[(tag, "group:morphology"), "ci_high"] < 0
        assert abs(by.loc[(tag, "group:axis"), "mean_diff"]) < 0.01
    # Keeping V2 (3 leads) loses less than losing all six precordial leads (2 leads).
    assert by.loc[("3", "group:morphology"), "mean_diff"] > by.loc[("2", "group:morphology"), "mean_diff"]
    with pytest.raises(StudyError, match="12-lead"):
        lead_set_drop(swept[swept["leads"] != "12"])


def test_best_per_lead_set_and_analysis_files(swept, tmp_path):
    best = best_per_lead_set(swept)
    assert list(best["leads"]) == ["12", "6", "3", "2"]
    assert best.loc[best.leads == "12", "test_drop_vs_12"].iloc[0] == 0
    assert (best.loc[best.leads != "12", "test_drop_vs_12"] < 0).all()
    rep = analyze_study(swept, tmp_path / "an", figures=False)
    for name in ("best_per_lead_set", "lead_set_drop"):
        assert (tmp_path / "an" / f"{name}.csv").is_file() and (tmp_path / "an" / f"{name}.md").is_file()
    assert any(line.startswith("Best configuration per lead set") for line in rep.findings)
    assert any(line.startswith("2 leads vs 12") for line in rep.findings)
    # the other analyses are of the 12-lead trials only
    cost = rep.tables["cost"]
    assert len(cost) == len(GRID.points)


def test_analysis_draws_the_lead_set_drop(swept, tmp_path):
    pytest.importorskip("matplotlib")
    rep = analyze_study(swept, tmp_path / "fig", figures=True)
    png = tmp_path / "fig" / "lead_set_drop.png"
    assert png in rep.files and png.stat().st_size > 5_000 and (tmp_path / "fig" / "lead_set_drop.svg").is_file()


def test_cli_sweep_with_a_leads_axis(tmp_path, monkeypatch):
    monkeypatch.setenv("ECGSCALE_ISOLATE", "0")
    grid = tmp_path / "g.toml"
    grid.write_text("depth = [1, 2]\nchannels = [16]\nkernel_size = [3]\ngap = true\n")
    runner = CliRunner()
    base = ["sweep", "--study", "cl", "--grid", str(grid), "--runner", "surrogate", "--epochs", "1"]
    args = [*base, "--studies-dir", str(tmp_path), "--no-progress", "--leads", "12", "--leads", "I,II"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, (res.output, res.exception)
    assert "4/4 grid points complete" in res.output
    df = study_results("cl", studies_dir=tmp_path)
    assert sorted(df["config"]) == ["D1-C16-K3-gap", "D1-C16-K3-gap-L2", "D2-C16-K3-gap", "D2-C16-K3-gap-L2"]
    out = tmp_path / "a"
    res = runner.invoke(
        app, ["analyze", "--study", "cl", "--out", str(out), "--studies-dir", str(tmp_path), "--no-figures"]
    )
    assert res.exit_code == 0, (res.output, res.exception)
    assert (Path(tmp_path) / "a" / "lead_set_drop.csv").is_file()


def test_train_runner_trains_each_point_on_its_lead_set(tiny_cache, tmp_path):
    """The real runner: a grid point's lead set, or (for a 12-lead point) the trial's own ``leads`` setting."""
    import json

    from ecgscale.study.objective import TrainRunner, TrialConfig
    from ecgscale.train import TrainConfig

    runner = TrainRunner(
        tiny_cache, base=TrainConfig(epochs=1, batch_size=64, device="cpu", precision="fp32", deterministic=False)
    )
    cases = {
        "axis": (TrialConfig(ArchPoint(1, 8, 5, True, "6")), ["I", "II", "III", "aVR", "aVL", "aVF"]),
        "search": (TrialConfig(ArchPoint(1, 8, 5), train={"leads": ["I", "V2"]}), ["I", "V2"]),
    }
    for name, (config, want) in cases.items():
        outcome = runner(config, tmp_path / name, lambda _epoch, _value: None)
        cfg = json.loads((tmp_path / name / "config.json").read_text())
        assert cfg["leads"] == want and cfg["model"]["n_leads"] == len(want), name
        assert outcome.test_metrics["macro_auroc"] > 0


def test_one_paired_trial_is_reported_without_an_interval(swept):
    """One architecture and one seed per lead set (the PTB-XL study): no spread over trials exists, so the
    finding says so instead of printing a NaN interval."""
    one = swept[(swept.seed == swept.seed.min()) & (swept.config.str.startswith(swept.config.iloc[0].split("-L")[0]))]
    drop = lead_set_drop(one)
    assert (drop.n_pairs == 1).all()
    lines = [x for x in lead_findings(best_per_lead_set(one), drop) if " leads vs 12" in x]
    assert lines and all("no interval over trials" in x and "nan" not in x for x in lines)
