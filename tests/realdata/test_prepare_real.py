"""``ecgscale prepare`` on real files: the 70 CinC records, and PTB-XL with configurable fold roles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from ecgscale.cli import app
from ecgscale.data.cache import open_cache

runner = CliRunner()


def _said(res) -> str:
    """What a failed command reports: the CLI's main prints a ConfigError; CliRunner keeps it as the exception."""
    return res.output + ("" if res.exception is None else str(res.exception))


FAST = ["--fs", "100", "--window", "5", "--max-store", "10", "--workers", "1", "--no-progress"]


def test_prepare_all_cinc_records(cinc_dir: Path, tmp_path: Path):
    out = tmp_path / "cinc"
    res = runner.invoke(app, ["prepare", str(cinc_dir), "--out", str(out), *FAST, "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["n_records"] == 70 and summary["n_skipped"] == 0
    cache = open_cache(out)
    assert len(cache) == 70 and cache.labels.sum() > 0
    assert np.isfinite(cache.signal(0)).all()


def test_ptbxl_fold_roles_via_cli(ptbxl_subset: Path, tmp_path: Path):
    out = tmp_path / "ptb"
    base = ["prepare", str(ptbxl_subset), "--out", str(out), "--ptbxl-fs", "100", *FAST]
    # PTB-XL's default roles put the test split on fold 10, which the shipped copy lacks: a clear error
    res = runner.invoke(app, [*base, "--split", "official"])
    assert res.exit_code != 0 and not out.exists()
    assert "test folds (10) hold no records" in _said(res) and "folds present: 1-9" in _said(res)
    res = runner.invoke(app, [*base, "--train-folds", "1-7", "--val-folds", "8", "--test-folds", "9", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["split_counts"] == {"train": 84, "val": 12, "test": 12}
    cache = open_cache(out)
    assert cache.info["split"]["method"] == "official"
    assert cache.info["split"]["folds"] == {"train": [1, 2, 3, 4, 5, 6, 7], "val": [8], "test": [9]}
    m = cache.manifest
    folds = m.fold.astype(int)
    assert (m.split[folds <= 7] == "train").all() and (m.split[folds == 8] == "val").all()
    assert (m.split[folds == 9] == "test").all()
    # a fold in two roles, named; the cache is left as it was
    res = runner.invoke(app, [*base, "--train-folds", "1-8", "--val-folds", "8", "--test-folds", "9"])
    assert res.exit_code != 0 and "fold 8 is in train and val" in _said(res)
    assert open_cache(out).info["split"]["folds"]["val"] == [8]
    # other roles on the same cache: recomputed from the manifest without re-reading a signal
    res = runner.invoke(app, [*base, "--train-folds", "1-6", "--val-folds", "7", "--test-folds", "8-9", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["status"] == "resplit"
    assert pd.Series(open_cache(out).manifest.split).value_counts().to_dict() == {"train": 72, "test": 24, "val": 12}
