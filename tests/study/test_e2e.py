"""End to end with the real trainer on the tiny synthetic cache: `ecgscale sweep` then `ecgscale analyze`."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pandas as pd
import pytest
from typer.testing import CliRunner

from ecgscale.study.grids import ArchPoint
from ecgscale.study.objective import TrainRunner, TrialConfig
from ecgscale.study.results import study_results

pytestmark = pytest.mark.slow

GRID = """
name = "tiny"
points = [
  {depth = 1, channels = 8, kernel_size = 3, gap = true},
  {depth = 1, channels = 8, kernel_size = 3, gap = false},
  {depth = 2, channels = 8, kernel_size = 5, gap = true},
]
"""


def test_sweep_and_analyze_with_the_real_trainer(tiny_cache, tmp_path: Path) -> None:
    from ecgscale.cli import app

    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    studies = tmp_path / "studies"
    cli = CliRunner()
    args = [
        "sweep",
        "--study",
        "real",
        "--cache",
        str(tiny_cache.path),
        "--grid",
        str(grid),
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--studies-dir",
        str(studies),
        "--no-progress",
        "--threads",
        "1",
    ]
    res = cli.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "3/3 grid points complete" in res.output
    df = study_results("real", studies_dir=studies)
    assert sorted(df.config) == ["D1-C8-K3-gap", "D1-C8-K3-nogap", "D2-C8-K5-gap"]
    for row in df.itertuples():
        assert row.params > 0 and row.flops > 0 and math.isfinite(row.train_seconds)  # recorded, not timed here
        assert row.receptive_field > 1 and math.isclose(row.receptive_field_s, row.receptive_field / 100.0)
        assert 0 <= row.test_macro_auroc <= 1 and 0 <= row.val_macro_auroc <= 1
        assert (Path(row.run_dir) / "model.safetensors").is_file()
        assert (Path(row.run_dir) / "eval_test.json").is_file()
    # the bigger kernel and depth see further; no GAP means a wider head, so more parameters
    by = df.set_index("config")
    assert by.loc["D2-C8-K5-gap", "receptive_field"] > by.loc["D1-C8-K3-gap", "receptive_field"]
    assert by.loc["D1-C8-K3-nogap", "params"] > by.loc["D1-C8-K3-gap", "params"]
    assert any(c.startswith("test_group_") for c in df.columns)
    # a second invocation finds the study complete and trains nothing
    again = cli.invoke(app, args)
    assert again.exit_code == 0 and "ran 0 trial(s)" in again.output, again.output

    out = tmp_path / "analysis"
    res = cli.invoke(
        app, ["analyze", "--study", "real", "--studies-dir", str(studies), "--out", str(out), "--no-figures"]
    )  # figures are checked in test_analysis
    assert res.exit_code == 0, res.output
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 3
    cost = pd.read_csv(out / "cost.csv")
    assert set(cost.config) == set(df.config) and cost.pareto_params.any()
    assert (out / "perf_vs_depth.csv").is_file() and (out / "best_per_label.md").is_file()


def test_train_runner_per_source_metrics_and_pruning(tiny_cache, tmp_path: Path) -> None:
    runner = TrainRunner(tiny_cache, min_source_records=1)
    config = TrialConfig(ArchPoint(1, 8, 3, True), seed=0, train={"epochs": 1, "batch_size": 32})
    reports: list[tuple[int, float]] = []
    outcome = runner(config, tmp_path / "t0", lambda e, v: reports.append((e, v)))
    test_sources = set(tiny_cache.manifest.source[tiny_cache.manifest.split == "test"])
    assert set(outcome.per_source) == test_sources
    assert all("macro_auroc" in m or "macro_f1" in m for m in outcome.per_source.values())
    assert (tmp_path / "t0" / "predictions_test.npz").is_file()
    assert reports and reports[0][0] == 1 and outcome.value == pytest.approx(max(v for _, v in reports))

    def prune(epoch: int, value: float) -> None:
        raise optuna.TrialPruned(f"epoch {epoch}")

    with pytest.raises(optuna.TrialPruned):
        runner(config, tmp_path / "t1", prune)
