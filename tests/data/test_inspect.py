"""``ecgscale inspect`` on a record and on a folder, as tables and as JSON."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ecgscale.cli import app
from ecgscale.errors import ConfigError, RecordError

runner = CliRunner()


def _ok(args):
    result = runner.invoke(app, ["inspect", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_record_table_and_json(cinc_specimens):
    hea = str(cinc_specimens.records["I0001"])
    text = _ok([hea])
    for fragment in (
        "I0001",
        "257 Hz",
        "15420 (60 s)",
        "I II III aVR aVL aVF V1 V2 V3 V4 V5 V6",
        "unknown / unknown",
        "999999999",
        "unknown",
        "164884008",
        "VEB",
    ):
        assert fragment in text, fragment
    info = json.loads(_ok([hea, "--json"]))
    assert info["record_id"] == "I0001" and info["fs"] == 257.0 and info["n_samples"] == 15420
    assert info["duration_s"] == 60.0 and info["age"] is None and info["sex"] is None
    codes = {c["code"]: c for c in info["codes"]}
    assert codes["999999999"]["known"] is False
    assert codes["164884008"]["known"] is True and codes["164884008"]["scored"] is False

    a1 = json.loads(_ok([str(cinc_specimens.records["A0001"]), "--json"]))
    groups = {c["abbreviation"]: c["group"] for c in a1["codes"]}
    assert groups == {"RBBB": "conduction", "AF": "rhythm"} and a1["sex"] == "M" and a1["age"] == 74.0


def test_tianchi_and_ptbxl_records(tianchi_specimens, ptbxl_specimens):
    info = json.loads(_ok([str(tianchi_specimens.records["100"]), "--json"]))
    assert [(c["code"], c["abbreviation"], c["group"]) for c in info["codes"]] == [
        ("窦性心律", "NSR", "rhythm"),
        ("电轴左偏", "LAD", "axis"),
    ]
    assert "窦性心律" in _ok([str(tianchi_specimens.records["100"])])
    info = json.loads(_ok([str(ptbxl_specimens.root / "records500" / "00000" / "00004_hr.hea"), "--json"]))
    codes = {c["code"]: c for c in info["codes"]}
    assert codes["CRBBB"]["name"] == "complete right bundle branch block" and codes["CRBBB"]["group"] == "conduction"
    assert info["meta"]["split"] == "train" and info["patient_id"] == "17014"


def test_folder_summary(cinc_specimens, malformed):
    text = _ok([str(cinc_specimens.root)])
    for fragment in (
        "5 records",
        "records per source",
        "st_petersburg_incart",
        "label prevalence (cinc2021",
        "RBBB",
        "999999999",
    ):
        assert fragment in text, fragment
    info = json.loads(_ok([str(cinc_specimens.root), "--json"]))
    assert info["n_records"] == 5 and info["sources"]["cpsc_2018"] == 2

    root, _ = malformed
    text = _ok([str(root)])
    assert "skipped files by reason" in text and "bad_header" in text
    info = json.loads(_ok([str(root), "--json"]))
    assert info["skipped_by_reason"]["bad_header"] == 3 and info["n_skipped"] == len(info["skipped"])


def test_errors_are_ecgscale_errors(malformed, tmp_path):
    _, bad = malformed
    result = runner.invoke(app, ["inspect", str(bad["truncated_mat"].path)])
    assert isinstance(result.exception, RecordError) and "truncated" in str(result.exception)
    result = runner.invoke(app, ["inspect", str(tmp_path / "nope")])
    assert isinstance(result.exception, ConfigError)
    result = runner.invoke(app, ["inspect", str(tmp_path), "--ptbxl-fs", "250"])
    assert isinstance(result.exception, ConfigError) and "--ptbxl-fs" in str(result.exception)


@pytest.mark.parametrize("args", [["--help"]])
def test_help(args):
    assert "label prevalence" in _ok(args)
