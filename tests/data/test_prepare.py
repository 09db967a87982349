"""``ecgscale prepare`` through the CLI: build, summary table, up to date, refusal, rebuild, JSON, bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from ecgscale.cli import app
from ecgscale.data.cache import open_cache
from ecgscale.data.labels import cinc2021_scored
from ecgscale.data.writers import write_cinc2021
from ecgscale.errors import ConfigError

runner = CliRunner()
CODES = [c.codes[0] for c in cinc2021_scored().classes]


@pytest.fixture()
def tree(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "training" / "cpsc_2018" / "g1"
    for i in range(10):
        sig = (0.1 * rng.standard_normal((12, 5000))).astype(np.float32)
        write_cinc2021(root, f"A{i:04d}", sig, 500, codes=(CODES[i % 3], "12345"))
    (root / "A9999.hea").write_text("not a header\n")
    return tmp_path / "training"


ARGS = ["--fs", "100", "--window", "5", "--max-store", "10", "--bandpass", "0.5,40", "--workers", "1"]


def test_prepare_builds_and_reports(tree, tmp_path):
    out = tmp_path / "cache"
    res = runner.invoke(app, ["prepare", str(tree), "--out", str(out), *ARGS, "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "records cached" in res.output and "10" in res.output
    assert "cpsc_2018" in res.output  # per-source label table
    assert "12345" in res.output  # unknown codes listed
    cache = open_cache(out)
    assert len(cache) == 10 and cache.config.fs == 100 and cache.window_length == 500

    res = runner.invoke(app, ["prepare", str(tree), "--out", str(out), *ARGS])
    assert res.exit_code == 0 and "up to date" in res.output

    res = runner.invoke(
        app, ["prepare", str(tree), "--out", str(out), *ARGS, "--json", "--split", "stratified", "--seed", "4"]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["status"] == "resplit"


def test_prepare_refuses_changed_parameters_then_rebuilds(tree, tmp_path):
    out = tmp_path / "cache"
    assert runner.invoke(app, ["prepare", str(tree), "--out", str(out), *ARGS, "--no-progress"]).exit_code == 0
    changed = [*ARGS, "--dtype", "float32"]
    # through the real entry point: one clear line, exit code 2
    proc = subprocess.run(
        [sys.executable, "-m", "ecgscale", "prepare", str(tree), "--out", str(out), *changed, "--no-progress"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stderr
    assert "--rebuild" in proc.stderr and "dtype 'float16' → 'float32'" in proc.stderr
    assert "Traceback" not in proc.stderr
    res = runner.invoke(app, ["prepare", str(tree), "--out", str(out), *changed, "--rebuild", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["status"] == "rebuilt" and summary["n_skipped"] == 1
    assert open_cache(out).signals.dtype == np.float32


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        (["--bandpass", "1"], "bandpass"),
        (["--fractions", "0.5,0.5,0.5"], "fractions"),
        (["--split", "source"], "test_sources"),
        (["--dtype", "int8"], "dtype"),
    ],
)
def test_prepare_bad_options(tree, tmp_path, extra, key):
    res = runner.invoke(app, ["prepare", str(tree), "--out", str(tmp_path / "c"), *ARGS, *extra])
    assert isinstance(res.exception, ConfigError) and res.exception.key == key, res.output
    assert not (tmp_path / "c").exists()
    res = runner.invoke(app, ["prepare", "--help"])
    assert res.exit_code == 0 and "--rebuild" in res.output
