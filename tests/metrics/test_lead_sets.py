"""``score --per-lead-set``: the challenge metric of each lead-set folder and the challenge summary (12, 3, 2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ecgscale.cli import app
from ecgscale.data.labels import cinc2021_weights
from ecgscale.data.writers import write_cinc2021
from ecgscale.errors import RecordError
from ecgscale.metrics import load_challenge_dirs, score_challenge, write_challenge_output
from ecgscale.metrics.lead_sets import challenge_summary, lead_set_dirs, score_lead_sets

N = 40


@pytest.fixture(scope="module")
def entry(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Headers with random scored codes, and outputs per lead set that get worse as leads are removed."""
    root = tmp_path_factory.mktemp("entry")
    keys = list(cinc2021_weights()[0])
    rng = np.random.default_rng(0)
    truth = rng.random((N, len(keys))) < 0.15
    for i in range(N):
        codes = [k.split("|")[0] for k, on in zip(keys, truth[i], strict=True) if on] or ["426783006"]
        write_cinc2021(root / "labels", f"R{i:03d}", np.zeros((12, 50), dtype=np.float32), 500, codes=codes)
    for folder, flip in (("12_leads", 0.02), ("6", 0.1), ("3-lead", 0.2), ("2_leads", 0.3)):
        noisy = truth ^ (rng.random(truth.shape) < flip)
        for i in range(N):
            write_challenge_output(root / "out" / folder / f"R{i:03d}.csv", f"R{i:03d}", keys, noisy[i], noisy[i] * 0.9)
    (root / "out" / "notes").mkdir()  # not a lead-set folder: ignored
    return root / "labels", root / "out"


def test_each_lead_set_is_scored_like_a_single_folder(entry):
    labels, out = entry
    result = score_lead_sets(labels, out)
    assert list(result.scores) == ["12", "6", "3", "2"]
    for tag, folder in (("12", "12_leads"), ("3", "3-lead")):
        d = load_challenge_dirs(labels, out / folder)
        alone = score_challenge(d.labels, d.binary, d.scalar, d.class_keys)
        assert result.scores[tag].challenge_metric == alone.challenge_metric
    cm = {t: s.challenge_metric for t, s in result.scores.items()}
    assert cm["12"] > cm["6"] > cm["3"] > cm["2"]
    assert result.summary == pytest.approx((cm["12"] + cm["3"] + cm["2"]) / 3)
    assert result.to_dict()["challenge_summary"] == result.summary


def test_summary_needs_the_three_sets():
    assert challenge_summary({"12": 0.6, "3": 0.5, "2": 0.4}) == pytest.approx(0.5)
    assert challenge_summary({"12": 0.6, "6": 0.5, "2": 0.4}) is None
    assert challenge_summary({"12": 0.6, "3": float("nan"), "2": 0.4}) is None


def test_bad_lead_set_folders_are_named(tmp_path):
    (tmp_path / "5_leads").mkdir()
    with pytest.raises(RecordError, match="5 leads is not a lead set") as err:
        lead_set_dirs(tmp_path)
    assert "5_leads" in str(err.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RecordError, match="no lead-set subfolders"):
        lead_set_dirs(empty)
    (tmp_path / "dup" / "12").mkdir(parents=True)
    (tmp_path / "dup" / "12_leads").mkdir()
    with pytest.raises(RecordError, match="second folder"):
        lead_set_dirs(tmp_path / "dup")


def test_cli_per_lead_set(entry, tmp_path):
    labels, out = entry
    res = CliRunner().invoke(app, ["score", str(labels), str(out), "--per-lead-set", "--json"])
    assert res.exit_code == 0, (res.output, res.exception)
    report = json.loads(res.stdout)
    assert list(report["lead_sets"]) == ["12", "6", "3", "2"] and report["challenge_summary"] is not None
    res = CliRunner().invoke(app, ["score", str(labels), str(out), "--per-lead-set", "--out", str(tmp_path / "s.json")])
    assert res.exit_code == 0 and "challenge summary" in res.output
    assert json.loads((tmp_path / "s.json").read_text())["summary_lead_sets"] == ["12", "3", "2"]
