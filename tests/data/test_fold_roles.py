"""Fold roles for ``--split official``: parsing, validation, the manifest's fold column, the CLI, the metadata."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb
from typer.testing import CliRunner

from ecgscale.cli import app
from ecgscale.data.cache import open_cache
from ecgscale.data.records import STANDARD_LEADS
from ecgscale.data.splits import OFFICIAL_FOLDS, SplitConfig, assign_splits, parse_folds
from ecgscale.errors import ConfigError

runner = CliRunner()
FAST = ["--fs", "100", "--window", "5", "--max-store", "10", "--workers", "1", "--no-progress", "--ptbxl-fs", "100"]


@pytest.fixture(scope="module")
def ptbxl_tree(tmp_path_factory) -> Path:
    """A PTB-XL-like folder: 24 records at 100 Hz in folds 1–6 (4 each), one patient per record."""
    root = tmp_path_factory.mktemp("ptbxl_folds")
    rng = np.random.default_rng(3)
    with open(root / "ptbxl_database.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["ecg_id", "patient_id", "age", "sex", "scp_codes", "strat_fold", "filename_lr", "filename_hr"])
        for i in range(1, 25):
            name = f"{i:05d}_lr"
            folder = root / "records100" / "00000"
            folder.mkdir(parents=True, exist_ok=True)
            wfdb.wrsamp(
                name,
                fs=100,
                units=["mV"] * 12,
                sig_name=list(STANDARD_LEADS),
                p_signal=np.round(rng.standard_normal((1000, 12)) * 0.3, 3),
                fmt=["16"] * 12,
                adc_gain=[1000.0] * 12,
                baseline=[0] * 12,
                write_dir=str(folder),
            )
            scp = "{'NORM': 100.0, 'SR': 0.0}" if i % 2 else "{'IMI': 100.0}"
            w.writerow([i, 100 + i, 60, i % 2, scp, (i - 1) % 6 + 1, f"records100/00000/{name}", ""])
    with open(root / "scp_statements.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["", "description", "diagnostic", "form", "rhythm", "diagnostic_class", "diagnostic_subclass"])
        w.writerow(["NORM", "normal ECG", "1.0", "", "", "NORM", "NORM"])
        w.writerow(["IMI", "inferior MI", "1.0", "", "", "MI", "IMI"])
        w.writerow(["SR", "sinus rhythm", "", "", "1.0", "", ""])
    return root


def test_parse_folds():
    assert parse_folds("1-7") == (1, 2, 3, 4, 5, 6, 7)
    assert parse_folds(" 9, 1-2,2") == (1, 2, 9)
    for bad in ("", "x", "3-1", "0", "1-"):
        with pytest.raises(ConfigError):
            parse_folds(bad)


def test_fold_roles_are_validated():
    with pytest.raises(ConfigError, match="fold 8 is in train and val"):
        SplitConfig(method="official", folds=((1, 8), (8,), (9,)))
    with pytest.raises(ConfigError, match="no val fold"):
        SplitConfig(method="official", folds=((1,), (), (9,)))
    with pytest.raises(ConfigError, match="only used with method='official'"):
        SplitConfig(method="stratified", folds=((1,), (2,), (3,)))
    cfg = SplitConfig(folds={"train": [2, 1], "val": [3], "test": [4]})  # auto + folds -> official
    assert cfg.method == "official" and cfg.folds == ((1, 2), (3,), (4,))
    assert cfg.to_dict()["folds"] == {"train": [1, 2], "val": [3], "test": [4]}
    assert SplitConfig.from_dict(cfg.to_dict()) == cfg
    assert "folds" not in SplitConfig().to_dict() and SplitConfig().fold_roles == OFFICIAL_FOLDS


def test_assign_by_fold_number():
    manifest = pd.DataFrame(
        {"source": ["ptb-xl"] * 9 + ["x"] * 30, "patient_id": [str(i) for i in range(39)]}
        | {"official_split": [""] * 39, "fold": [str(f) for f in range(1, 10)] + [""] * 30}
    )
    labels = np.ones((39, 2), np.uint8)
    cfg = SplitConfig(method="official", folds=((1, 2, 3, 4, 5, 6), (7,), (8,)))
    out = assign_splits(manifest, labels, cfg)
    assert out[:9].tolist() == ["train"] * 6 + ["val", "test", ""]  # fold 9 has no role: in no split
    assert set(out[9:]) == {"train", "val", "test"}  # records without a fold are stratified as before
    with pytest.raises(ConfigError, match=r"the test folds \(10\) hold no records; folds present: 1-9"):
        assign_splits(manifest, labels, SplitConfig(method="official"))
    # auto keeps working on a copy without fold 10 (a warning, an empty test split)
    manifest["official_split"] = ["train"] * 8 + ["val"] + ["train"] * 30
    auto = assign_splits(manifest.iloc[:9], labels[:9], SplitConfig())
    assert auto.tolist() == ["train"] * 8 + ["val"]


def test_cli_fold_roles_on_a_generated_tree(ptbxl_tree: Path, tmp_path: Path):
    out = tmp_path / "c"
    base = ["prepare", str(ptbxl_tree), "--out", str(out), *FAST]
    res = runner.invoke(app, [*base, "--train-folds", "1-4", "--val-folds", "5", "--test-folds", "6", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["split_counts"] == {"train": 16, "val": 4, "test": 4}
    info = open_cache(out).info
    assert info["split"]["folds"] == {"train": [1, 2, 3, 4], "val": [5], "test": [6]}
    assert open_cache(out).manifest.fold.tolist() == [str((i - 1) % 6 + 1) for i in range(1, 25)]
    # a fold left without a role: its records are in no split, counted as unassigned
    res = runner.invoke(app, [*base, "--train-folds", "1-3", "--val-folds", "4", "--test-folds", "5", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["status"] == "resplit"
    assert summary["split_counts"] == {"train": 12, "val": 4, "test": 4, "unassigned": 4}
    # errors name the folds; nothing is built
    bad = runner.invoke(app, [*base[:3], str(tmp_path / "d"), *FAST, "--train-folds", "1-5", "--test-folds", "5"])
    assert bad.exit_code != 0 and "fold 5 is in train and test" in str(bad.exception)
    empty = runner.invoke(
        app, [*base[:3], str(tmp_path / "e"), *FAST, "--train-folds", "1-5", "--val-folds", "6", "--test-folds", "7-8"]
    )
    assert empty.exit_code != 0 and "the test folds (7-8) hold no records; folds present: 1-6" in str(empty.exception)
    assert not (tmp_path / "e").exists()
    wrong = runner.invoke(app, [*base[:3], str(tmp_path / "f"), *FAST, "--split", "stratified", "--val-folds", "6"])
    assert wrong.exit_code != 0 and "need --split official" in str(wrong.exception)
