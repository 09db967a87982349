"""The report of a sweep with a lead-set axis: a "Lead sets" section with the best configuration per set and the
drop per label group; the scale sections and the recommendation use the 12-lead trials only."""

from __future__ import annotations

from pathlib import Path

from ecgscale.report.build import build_report, load_study
from ecgscale.study.analysis import analyze_study
from ecgscale.study.grids import axes_grid, with_lead_sets
from ecgscale.study.objective import SurrogateRunner
from ecgscale.study.sweep import SweepSettings, run_sweep


def test_report_has_a_lead_set_section(tmp_path: Path) -> None:
    grid = axes_grid(
        {"depth": 2, "channels": 32, "kernel_size": 5}, depths=(1, 2), channels=(32,), kernels=(5,), seeds=(0,)
    )
    grid = with_lead_sets(grid, ["12", "3", "2"])
    run_sweep(
        SweepSettings(name="lr", grid=grid, train={"epochs": 1}, studies_dir=tmp_path, heartbeat_interval=10),
        runner=SurrogateRunner(),
        data={"d": 1},
    )
    ctx = load_study("lr", studies_dir=tmp_path)
    analyze_study(ctx.results, tmp_path / "an", figures=False)  # figures are tested elsewhere (slow to draw)
    build_report("lr", studies_dir=tmp_path, out=tmp_path / "rep", analysis_dir=tmp_path / "an")
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Lead sets" in md
    section = md.split("## Lead sets", 1)[1].split("\n## ", 1)[0]
    assert "group:morphology" in section and "D2-C32-K5-gap" in section
    assert "2 leads vs 12" in section and "3 leads vs 12" in section
    assert "Challenge summary" in section  # the surrogate reports a challenge score: 12/3/2 summary computed
    # the recommendation is made among the 12-lead trials: no lead-set key is recommended
    assert len(ctx.results) == len(grid.points)
    rec_line = next(line for line in md.splitlines() if "Recommended: D=" in line)
    assert "-L" not in rec_line


def test_cli_recommend_per_lead_set(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from ecgscale.cli import app

    grid = with_lead_sets(
        axes_grid({"depth": 2, "channels": 32, "kernel_size": 5}, depths=(1, 2), channels=(32,), kernels=(5,)),
        ["12", "2"],
    )
    run_sweep(
        SweepSettings(name="rc", grid=grid, train={"epochs": 1}, studies_dir=tmp_path, heartbeat_interval=10),
        runner=SurrogateRunner(),
        data={"d": 1},
    )
    base = ["recommend", "--study", "rc", "--studies-dir", str(tmp_path)]
    res = CliRunner().invoke(app, [*base, "--leads", "I,II", "--json"])
    assert res.exit_code == 0, (res.output, res.exception)
    out = json.loads(res.stdout)
    # the study's training protocol (epochs 1) and the lead set are in the command that trains the choice
    assert " --epochs 1 " in out["train_command"] and " --leads 2 " in out["train_command"]
    res = CliRunner().invoke(app, [*base, "--leads", "6"])
    assert res.exit_code != 0 and "lead sets 12, 2" in str(res.exception)
