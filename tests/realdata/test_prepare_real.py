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


def test_drop_unlabelled_leaves_out_exactly_the_records_without_a_task_statement(ptbxl_subset: Path, tmp_path: Path):
    """As the PTB-XL benchmark does per task: records with no form statement are not in the form cache, each one
    counted as a ``no_class`` skip. The expected set is computed here from the database and statement tables."""
    import ast

    db = pd.read_csv(ptbxl_subset / "ptbxl_database.csv")
    stmts = pd.read_csv(ptbxl_subset / "scp_statements.csv", index_col=0)
    form = set(stmts.index[stmts["form"] == 1])
    has_form = db.scp_codes.map(lambda s: bool(form & set(ast.literal_eval(s))))
    assert 0 < has_form.sum() < len(db)  # the subset has both kinds, or the test could not fail
    base = ["prepare", str(ptbxl_subset), "--ptbxl-fs", "100", "--labels", "ptbxl:form", *FAST, "--json"]
    res = runner.invoke(app, [*base, "--out", str(tmp_path / "all")])
    assert res.exit_code == 0, res.output
    kept_all = open_cache(tmp_path / "all")
    assert len(kept_all) == len(db) and (kept_all.labels.sum(axis=1) == 0).sum() == (~has_form).sum()

    res = runner.invoke(app, [*base, "--out", str(tmp_path / "drop"), "--drop-unlabelled"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["n_records"] == int(has_form.sum())
    assert summary["skipped_by_reason"] == {"no_class": int((~has_form).sum())}
    cache = open_cache(tmp_path / "drop")
    assert (cache.labels.sum(axis=1) > 0).all()
    skipped = pd.read_csv(tmp_path / "drop" / "skipped.csv")
    dropped_ids = {Path(p).stem for p in skipped.path}  # the header file of each record
    expected = {Path(f).name for f in db.filename_lr[~has_form]}
    assert dropped_ids == expected
    assert skipped.message.str.contains("no class of ptbxl-form").all()
    # the option is part of what the cache is: the same --out without it is refused, naming the difference
    res = runner.invoke(app, [*base, "--out", str(tmp_path / "drop")])
    assert res.exit_code != 0 and "drop_unlabelled True → False" in _said(res)
