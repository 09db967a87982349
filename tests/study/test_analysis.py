"""Analyses of a sweep: the surrogate's surface is known (small fields win, GAP helps local fields), so the
analysis must find it; plus the tables, figures and the CLI."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from scipy.stats import spearmanr
from typer.testing import CliRunner

from ecgscale.errors import StudyError
from ecgscale.study.analysis import (
    analyze_study,
    axis_table,
    best_per_label,
    gap_effect,
    pareto_front,
    rf_correlation,
)
from ecgscale.study.grids import axes_grid
from ecgscale.study.objective import SurrogateRunner
from ecgscale.study.results import study_results
from ecgscale.study.sweep import SweepSettings, run_sweep

GRID = axes_grid(
    {"depth": 2, "channels": 32, "kernel_size": 5},
    depths=(1, 2, 8),
    channels=(16, 32, 64),
    kernels=(3, 5, 33),
    seeds=(0, 1),
    name="small-axes",
)


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("studies")
    run_sweep(
        SweepSettings(name="an", grid=GRID, train={"epochs": 1}, studies_dir=root, heartbeat_interval=10),
        runner=SurrogateRunner(),
        data={"d": 1},
    )
    return root, study_results("an", studies_dir=root)


def test_axis_tables_hold_the_base_slice_with_error_bars(swept) -> None:
    _, df = swept
    t = axis_table(df, "depth", base=GRID.base)
    allrows = t[t.target == "all"]
    assert sorted(allrows.value.unique()) == [1, 2, 8]
    assert set(allrows.gap) == {True, False}
    assert (allrows.n == 2).all() and allrows["std"].notna().all()
    # every label group and every data source gets its own line
    assert {
        "group:rhythm",
        "group:conduction",
        "group:axis",
        "group:intervals",
        "group:morphology",
        "group:pacing",
        "source:cpsc",
        "source:georgia",
        "source:ptbxl",
    } <= set(t.target)
    # the base slice holds C and K at the base
    assert len(t) == 3 * 2 * len(set(t.target))


def test_analysis_recovers_the_known_surface(swept) -> None:
    _, df = swept
    rc = rf_correlation(df)
    overall = rc[(rc.target == "all") & (rc.gap == "all")].iloc[0]
    # Spearman rho over architectures (test AUROC averaged over seeds) against the receptive field, from scipy
    arch = df.groupby(["depth", "channels", "kernel_size", "gap"])[["receptive_field_s", "test_macro_auroc"]].mean()
    want = spearmanr(arch.receptive_field_s, arch.test_macro_auroc)
    assert overall.n == len(arch) == len(GRID.points)
    assert overall.rho == pytest.approx(want.statistic, abs=1e-12) and overall.p == pytest.approx(want.pvalue)
    assert overall.rho < -0.3  # the surrogate's surface: small fields win
    ge = gap_effect(df, threshold_s=2.0)
    a = ge[ge.target == "all"].set_index("rf_bin")
    local, wide = a.loc["local (< 2.00 s)"], a.loc["global (>= 2.00 s)"]
    # GAP - noGAP of the runs paired by (D, C, K, seed), split at a 2 s field
    keys = ["depth", "channels", "kernel_size", "seed"]
    pairs = df[df.gap].set_index(keys).join(df[~df.gap].set_index(keys), rsuffix="_nogap", how="inner")
    diff = pairs.test_macro_auroc - pairs.test_macro_auroc_nogap
    is_local = pairs.receptive_field_s < 2.0
    assert (local.n_pairs, wide.n_pairs) == (int(is_local.sum()), int((~is_local).sum())) and len(pairs) == len(df) // 2
    assert local.mean_diff == pytest.approx(diff[is_local].mean(), abs=1e-12)
    assert wide.mean_diff == pytest.approx(diff[~is_local].mean(), abs=1e-12)
    assert local.mean_diff > 0.01 > wide.mean_diff  # planted: +0.02 for local fields, -0.005 for wide ones


def test_pareto_front_on_hand_made_points() -> None:
    df = pd.DataFrame({"cost": [1, 2, 3, 4, 5, 2], "score": [0.5, 0.7, 0.6, 0.9, 0.9, 0.4]})
    front = pareto_front(df, "cost", "score")
    assert list(front.index) == [0, 1, 3]
    with pytest.raises(StudyError, match="nope"):
        pareto_front(df, "nope", "score")


def test_best_per_label_selects_on_validation_and_reports_test(swept) -> None:
    _, df = swept
    b = best_per_label(df)
    assert set(b[b.kind == "group"].target) == {"rhythm", "conduction", "axis", "intervals", "morphology", "pacing"}
    assert set(b[b.kind == "label"].target) == {"AF", "SB", "IAVB", "RBBB", "LAD", "LQT", "TAb", "PR"}
    means = df.groupby("config")[["val_label_AF", "test_label_AF"]].mean()
    af = b[b.target == "AF"].iloc[0]
    assert af.best_config == means.val_label_AF.idxmax()
    assert af.test == pytest.approx(means.test_label_AF[af.best_config])
    same = b[b.best_config == b.global_config]
    assert (same.gain == 0).all()


def test_analyze_writes_tables_figures_and_findings(swept, tmp_path: Path) -> None:
    _, df = swept
    rep = analyze_study(df, tmp_path / "out", grid=GRID.to_dict(), figures=False)  # figures: the CLI test
    names = {p.name for p in rep.files}
    for stem in ("results", "rf_correlation", "gap_effect", "cost", "best_per_label", "perf_vs_depth"):
        assert {f"{stem}.csv", f"{stem}.md"} <= names
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    assert len(results) == len(df) and sorted(results.test_macro_auroc) == pytest.approx(sorted(df.test_macro_auroc))
    rc = pd.read_csv(tmp_path / "out" / "rf_correlation.csv")
    pd.testing.assert_frame_equal(rc, rf_correlation(df), check_dtype=False)
    cost = pd.read_csv(tmp_path / "out" / "cost.csv")
    assert len(cost) == len(GRID.points) and cost.pareto_params.any()
    text = (tmp_path / "out" / "findings.md").read_text()
    assert "Spearman rho = -" in text and "GAP − noGAP" in text and "Pareto front" in text
    with pytest.raises(StudyError, match="no complete trial"):
        analyze_study(df.iloc[:0], tmp_path / "empty")


def test_analyze_cli(swept, tmp_path: Path) -> None:
    from ecgscale.cli import app

    root, _ = swept
    res = CliRunner().invoke(
        app, ["analyze", "--study", "an", "--studies-dir", str(root), "--out", str(tmp_path / "cli")]
    )
    assert res.exit_code == 0, res.output
    assert "Spearman" in res.output
    for stem in ("perf_vs_depth", "perf_vs_channels", "perf_vs_kernel_size", "rf_vs_perf", "cost_vs_perf"):
        for ext in ("png", "svg"):
            assert (tmp_path / "cli" / f"{stem}.{ext}").stat().st_size > 1000, (stem, ext)
