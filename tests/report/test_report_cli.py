"""`ecgscale recommend` and `ecgscale report` through the real CLI entry point on a surrogate study."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from ecgscale.cli import app

runner = CliRunner()


def test_recommend_json_each_budget(surrogate_study) -> None:
    name, studies = surrogate_study
    base = ["recommend", "--study", name, "--studies-dir", str(studies), "--json"]
    free = runner.invoke(app, base)
    assert free.exit_code == 0, free.output
    best = json.loads(free.output)
    assert best["budget"] is None and best["study"] == name
    params = runner.invoke(app, [*base, "--budget-params", str(best["cost"]["params"] - 1)])
    assert params.exit_code == 0, params.output
    cheaper = json.loads(params.output)
    assert cheaper["cost"]["params"] < best["cost"]["params"] and cheaper["mean"] <= best["mean"]
    flops = runner.invoke(app, [*base, "--budget-flops", str(best["cost"]["flops"])])
    assert json.loads(flops.output)["config"] == best["config"]
    latency = runner.invoke(app, [*base, "--budget-latency-ms", "10000"])
    assert latency.exit_code == 0, latency.output
    lat = json.loads(latency.output)
    # the latency reported is one of the measurements cached in the study folder (no wall-clock threshold here:
    # what a measurement is, is test_recommend's job)
    cached = json.loads((studies / name / "latency.json").read_text())["entries"]
    assert lat["cost"]["latency_ms"] in [e["latency_ms"] for e in cached.values()]
    assert lat["cost"]["latency_ms"] <= 10000


def test_recommend_table_and_no_fit_error(surrogate_study) -> None:
    name, studies = surrogate_study
    ok = runner.invoke(app, ["recommend", "--study", name, "--studies-dir", str(studies), "--budget-params", "5000"])
    assert ok.exit_code == 0 and "recommended" in ok.output and "beaten within the budget" in ok.output
    # through the console script: one clear line, exit 2
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ecgscale",
            "recommend",
            "--study",
            name,
            "--studies-dir",
            str(studies),
            "--budget-params",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "error:" in proc.stderr and "smallest available is" in proc.stderr and "Traceback" not in proc.stderr
