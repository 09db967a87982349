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


@pytest.fixture()
def two_sources(tmp_path):
    """A CinC 2021 tree with two sources (8 records each, one patient per record)."""
    rng = np.random.default_rng(3)
    for source, prefix in (("cpsc_2018", "A"), ("georgia", "E")):
        root = tmp_path / "cinc" / "training" / source / "g1"
        for i in range(8):
            sig = (0.1 * rng.standard_normal((12, 5000))).astype(np.float32)
            write_cinc2021(root, f"{prefix}{i:04d}", sig, 500, codes=(CODES[i % 3],))
    return tmp_path / "cinc" / "training"


def test_prepare_leave_one_source_out(two_sources, tianchi_specimens, tmp_path):
    """The README's ``prepare CINC TIANCHI --split source --test-source tianchi``: the held-out source is the
    whole test split and nothing else; the other sources fill train and val."""
    out = tmp_path / "loso"
    args = ["prepare", str(two_sources), str(tianchi_specimens.root), "--out", str(out), *ARGS]
    res = runner.invoke(app, [*args, "--split", "source", "--test-source", "tianchi", "--json"])
    assert res.exit_code == 0, (res.output, res.exception)
    m = open_cache(out).manifest
    assert set(m.source) == {"cpsc_2018", "georgia", "tianchi"}
    assert (m.split == "test").sum() > 0 and ((m.split == "test") == (m.source == "tianchi")).all()
    assert set(m.source[m.split == "train"]) == set(m.source[m.split == "val"]) == {"cpsc_2018", "georgia"}
    # two held-out sources (repeatable option), re-split without re-reading; an unknown source is refused
    res = runner.invoke(app, [*args, "--split", "source", "--test-source", "tianchi", "--test-source", "georgia"])
    assert res.exit_code == 0, (res.output, res.exception)
    m = open_cache(out).manifest
    assert ((m.split == "test") == m.source.isin(["tianchi", "georgia"])).all()
    assert set(m.source[m.split != "test"]) == {"cpsc_2018"}
    res = runner.invoke(app, [*args, "--split", "source", "--test-source", "nowhere"])
    assert isinstance(res.exception, ConfigError) and "nowhere" in str(res.exception), res.output


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        # ecg_id -> classes, from the specimens' scp_codes (tests/data/conftest.py)
        ("superdiagnostic", {1: {"NORM"}, 2: {"NORM"}, 3: {"MI"}, 4: {"CD"}, 5: {"STTC", "HYP"}}),
        ("rhythm", {1: {"SR"}, 2: set(), 3: {"SR"}, 4: {"AFIB"}, 5: set()}),  # SBRAD: not in the table
    ],
)
def test_prepare_ptbxl_task_labels_and_official_folds(ptbxl_specimens, tmp_path, task, expected):
    out = tmp_path / task
    args = ["prepare", str(ptbxl_specimens.root), "--out", str(out), *ARGS, "--ptbxl-fs", "100"]
    res = runner.invoke(app, [*args, "--labels", f"ptbxl:{task}", "--json"])
    assert res.exit_code == 0, (res.output, res.exception)
    assert json.loads(res.stdout)["label_space"] == f"ptbxl-{task}"
    cache = open_cache(out)
    keys = cache.label_space.keys
    got = {
        int(rid): {keys[j] for j in np.flatnonzero(row)}
        for rid, row in zip(cache.manifest.record_id, cache.labels, strict=True)
    }
    assert got == expected, (keys, got)
    # the official PTB-XL folds: 1-8 train, 9 val, 10 test
    split = dict(zip(cache.manifest.record_id.astype(int), cache.manifest.split, strict=True))
    assert split == {1: "train", 2: "val", 3: "test", 4: "train", 5: "train"}
