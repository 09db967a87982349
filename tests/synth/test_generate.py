"""``generate()``: real formats that round-trip, determinism, the parameter file, and bad input."""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from ecgscale.data.labels import cinc2021_scored
from ecgscale.errors import ConfigError
from ecgscale.synth import PARAMS_FILE, generate
from ecgscale.synth.generate import SUMMARY_FILE, TIANCHI_CLASS_FILE, TIANCHI_DIR, TIANCHI_LABEL_FILE, tianchi_name


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _rows(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / PARAMS_FILE).read_text().splitlines()]


def test_tree_layout_and_params_file(synth_cinc_tree: Path):
    rows = _rows(synth_cinc_tree)
    assert len(rows) == 120
    sources = {r["source"] for r in rows}
    assert sources == {"cpsc_like", "ptbxl_like", "ningbo_like", "incart_like"}
    assert {r["fs"] for r in rows} == {257, 500, 1000}
    for r in rows[:40]:
        hea = synth_cinc_tree / (r["path"] + ".hea")
        assert hea.exists() and hea.with_suffix(".mat").exists()
        assert hea.parent.parent.parent.name == "training" and hea.parent.name == "g1"
        text = hea.read_text()
        assert f"#Dx: {','.join(r['codes'])}\n" in text
        assert f"#Age: {r['age']}\n" in text
    summary = json.loads((synth_cinc_tree / SUMMARY_FILE).read_text())
    assert summary["n"] == 120 and sum(summary["sources"].values()) == 120


def test_cinc_round_trip_with_wfdb_and_own_reader(synth_cinc_tree: Path):
    wfdb = pytest.importorskip("wfdb")
    from ecgscale.data.readers import read_record

    rows = _rows(synth_cinc_tree)
    space = cinc2021_scored()
    for r in [rows[0], *[x for x in rows if x["fs"] != 500][:2]]:
        base = synth_cinc_tree / r["path"]
        rec = wfdb.rdrecord(str(base))
        assert rec.fs == r["fs"] and rec.sig_len == r["n_samples"]
        assert rec.sig_name == ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
        mat = scipy.io.loadmat(str(base) + ".mat")["val"]
        assert mat.dtype == np.int16 and mat.shape == (12, r["n_samples"])
        np.testing.assert_allclose(rec.p_signal.T, mat / 1000.0, atol=1e-9)
        ours = read_record(str(base) + ".hea")
        np.testing.assert_allclose(ours.signal, mat / 1000.0, atol=1e-6)
        assert ours.fs == r["fs"]
        assert list(ours.codes) == r["codes"]
        assert (space.encode(ours.codes).sum()) == len(r["labels"])
        assert ours.age == r["age"] and ours.sex == r["sex"]


def test_same_seed_same_bytes_and_workers_do_not_matter(tmp_path: Path):
    a = generate(tmp_path / "a", n=24, seed=11, progress=False, workers=1)
    generate(tmp_path / "b", n=24, seed=11, progress=False, workers=2)
    assert a.n == 24
    da, db = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert da == db and len(da) == 2 * 24 + 2
    generate(tmp_path / "c", n=24, seed=12, progress=False)
    assert _digest(tmp_path / "c") != da


def test_tianchi_format_round_trip(tmp_path: Path):
    from ecgscale.data.readers import read_record

    out = tmp_path / "tc"
    generate(out, n=12, seed=3, format="tianchi", progress=False)
    rows = _rows(out)
    assert (out / TIANCHI_LABEL_FILE).exists() and (out / TIANCHI_CLASS_FILE).exists()
    classes = (out / TIANCHI_CLASS_FILE).read_text(encoding="utf-8").split()
    assert "窦性心律" in classes
    for r in rows[:4]:
        assert r["fs"] == 500 and r["n_samples"] == 5000
        path = out / TIANCHI_DIR / f"{r['record_id']}.txt"
        lines = path.read_text().splitlines()
        assert lines[0] == "I II V1 V2 V3 V4 V5 V6" and len(lines) == 5001
        rec = read_record(path)
        assert rec.signal.shape == (12, 5000)
        np.testing.assert_allclose(rec.signal[2], rec.signal[1] - rec.signal[0], atol=1e-5)
        want = [tianchi_name(lab) for lab in r["labels"] if tianchi_name(lab)]
        assert list(rec.codes) == want


def test_sources_and_fs_options(tmp_path: Path):
    s = generate(tmp_path / "o", n=6, seed=1, sources=["incart_like"], fs=360, progress=False)
    assert s.sources == {"incart_like": 6}
    rows = _rows(tmp_path / "o")
    assert all(r["fs"] == 360 and r["path"].startswith("training/incart_like/g1/XI") for r in rows)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0}, "positive integer"),
        ({"n": -3}, "positive integer"),
        ({"n": 5, "classes": ["NSR", "NOPE"]}, "unknown class"),
        ({"n": 5, "fs": 50}, "unsupported sampling rate"),
        ({"n": 5, "fs": 250.5}, "unsupported sampling rate"),
        ({"n": 5, "format": "tianchi", "fs": 250}, "always 500 Hz"),
        ({"n": 5, "format": "edf"}, "unknown format"),
        ({"n": 5, "sources": ["nowhere"]}, "unknown source"),
        ({"n": 5, "workers": 0}, "workers"),
    ],
)
def test_bad_input_is_a_config_error_and_writes_nothing(tmp_path: Path, kwargs, match):
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=match):
        generate(out, seed=0, progress=False, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_non_empty_output_directory_is_refused(tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        generate(out, n=3, seed=0, progress=False)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_overwrite_replaces_a_previous_synth_output_only(tmp_path: Path):
    out = tmp_path / "out"
    generate(out, n=3, seed=0, progress=False)
    with pytest.raises(ConfigError, match="overwrite"):
        generate(out, n=3, seed=1, progress=False)
    generate(out, n=4, seed=1, progress=False, overwrite=True)
    assert len(_rows(out)) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_failure_midway_leaves_nothing(tmp_path: Path, monkeypatch):
    gen = importlib.import_module("ecgscale.synth.generate")  # the package re-exports a function of that name
    calls = {"n": 0}
    real = gen.synth_record

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(gen, "synth_record", flaky)
    with pytest.raises(RuntimeError, match="disk full"):
        generate(tmp_path / "out", n=5, seed=0, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_cli_synth(tmp_path: Path):
    from typer.testing import CliRunner

    from ecgscale.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["synth", "--help"])
    assert res.exit_code == 0 and "--format" in res.output
    res = runner.invoke(
        app,
        [
            "synth",
            "--out",
            str(tmp_path / "c"),
            "--n",
            "4",
            "--seed",
            "2",
            "--no-progress",
            "--sources",
            "ptbxl_like,ningbo_like",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "wrote 4 records" in res.output
    assert len(_rows(tmp_path / "c")) == 4


def test_cli_bad_input_exits_2(tmp_path: Path):
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "ecgscale", "synth", "--out", str(tmp_path / "x"), "--n", "0"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "n: must be a positive integer" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_impossible_classes_fail_cleanly(tmp_path: Path):
    # Every record has a rhythm label, so "LQT" alone cannot be satisfied.
    with pytest.raises(ConfigError, match="allow more classes"):
        generate(tmp_path / "out", n=2, seed=0, classes=["LQT"], sources=["ptbxl_like"], fs=100, progress=False)
    assert list(tmp_path.iterdir()) == []
