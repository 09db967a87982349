"""The report assembled from a real optuna study (filled by the analytic surrogate runner, no training)."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ecgscale.cli import app
from ecgscale.errors import StudyError
from ecgscale.report import recommend
from ecgscale.report.build import build_report, load_study


def test_report_of_a_surrogate_study(surrogate_study, tmp_path: Path) -> None:
    """Through the CLI (`ecgscale report`): every section, the Pareto table marked, Markdown tables written."""
    name, studies = surrogate_study
    res = CliRunner().invoke(
        app, ["report", "--study", name, "--studies-dir", str(studies), "--out", str(tmp_path / "rep")]
    )
    assert res.exit_code == 0, res.output
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "<script" not in page and "http://" not in page and "https://" not in page
    for title in (
        "Overview",
        "Data",
        "Scale: depth, width and kernel size",
        "Receptive field",
        "Pareto front",
        "Per-label best",
        "Search: wide vs narrow",
        "Recommended configuration",
        "Reproduce",
    ):
        assert title in page, title
    assert '<tr class="best">' in page  # the recommendation is marked on the Pareto table
    # the study layer's analysis figures (D, C, K, receptive field, cost) are embedded, and its findings listed
    assert page.count('<img src="data:image/') == 5
    assert "Findings computed from the study" in page and "Spearman rho" in page
    assert f"ecgscale report --study {name}" in page
    ctx = load_study(name, studies_dir=studies)
    assert len(ctx.results) == 7 * 2 * 2  # 7 architectures x GAP on/off x 2 seeds
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Cost vs performance: the Pareto front" in md
    assert (tmp_path / "rep" / "tables" / "pareto_front.md").is_file()
    # The recommendation shown is recommend() on the study's results, and it is the surrogate's planted optimum on
    # this grid: widest (C=32), D=2, K=5 (K=3 gains only 0.001), GAP (+0.02 with a local receptive field).
    rec = recommend(ctx.results)
    c = rec.config
    assert (c["depth"], c["channels"], c["kernel_size"], c["gap"]) == (2, 32, 5, True)
    assert f"Recommended: {html.escape(rec.summary())}." in page
    assert page.count("Recommended: D=") == 1
    assert re.search(r"Recommended: D=2, C=32, K=5, GAP", md)


def test_missing_study_is_a_study_error(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match="no study 'nope'"):
        build_report("nope", studies_dir=tmp_path, out=tmp_path / "rep")
