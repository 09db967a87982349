"""`ecgscale demo` end to end on the tiny preset: every stage runs, the report's figures decode, a re-run reuses
all (by stage status and file mtimes; no browser here, see test_report_browser.py)."""

from __future__ import annotations

import base64
import io
import json
import os
import re
from pathlib import Path
from xml.etree import ElementTree

import pytest
from typer.testing import CliRunner

from ecgscale.cli import app
from ecgscale.errors import ConfigError
from ecgscale.workflows.demo import PRESETS, DemoPreset, run_demo

pytestmark = pytest.mark.slow

STAGES = ["synth", "cache", "sweep", "search-compare", "train", "evaluate", "report"]


def _embedded_images(page: str) -> list[tuple[str, tuple[int, int]]]:
    """Every ``<img src="data:...">`` of the page decoded without a browser: (media type, pixel size or SVG box).

    A PNG must decode completely (Pillow's ``load``); an SVG must parse as XML with a ``<svg>`` root. The render
    in a real browser is the ``browser`` test's job (tests/report/test_report_browser.py)."""
    from PIL import Image

    found = []
    for media, data in re.findall(r'<img src="data:(image/[a-z+]+);base64,([A-Za-z0-9+/=]+)"', page):
        raw = base64.b64decode(data, validate=True)
        if media == "image/png":
            with Image.open(io.BytesIO(raw)) as img:
                img.load()
                found.append((media, img.size))
        else:
            root = ElementTree.fromstring(raw)
            assert root.tag.endswith("svg"), root.tag
            found.append((media, (1, 1)))
    return found


def _snapshot(out: Path) -> dict[str, tuple[int, int]]:
    """``relative path -> (mtime_ns, size)`` of every file the demo wrote, except the summary it rewrites.

    SQLite's ``-wal``/``-shm``/``-journal`` side files are left out: reading the study opens the database, and
    SQLite creates or removes them by itself (an empty WAL after a reader exits); ``study.db`` is compared.
    """
    return {
        str(p.relative_to(out)): (p.stat().st_mtime_ns, p.stat().st_size)
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "demo_summary.json" and not p.name.endswith(("-wal", "-shm", "-journal"))
    }


def test_demo_end_to_end_and_resume(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    first = run_demo(out, preset="tiny", device="cpu", progress=False, workers=1)
    assert [s.name for s in first.stages] == STAGES
    assert all(s.status == "done" for s in first.stages), first.stages
    # the study holds every grid point (2 depths x GAP on/off), the report and the trained run exist
    assert "4 trials" in first.stages[2].detail
    assert first.report_html.is_file() and (out / "runs" / "recommended" / "eval_test.json").is_file()
    assert set(first.recommended) == {"depth", "channels", "kernel_size", "gap"}
    assert 0.0 <= first.test_metrics["macro_auroc"] <= 1.0
    assert first.test_metrics["challenge_metric"] is not None  # CinC 2021 label space: challenge metric included
    page = first.report_html.read_text()
    rec = first.recommended
    assert f"--depth {rec['depth']} --channels {rec['channels']} --kernel {rec['kernel_size']}" in page
    assert "Test metrics of the trained recommended model" in page and "Verdict:" in page
    assert "Records per source and split" in page
    images = _embedded_images(page)
    assert len(images) >= 5 and len(images) == page.count("<img "), images
    assert all(w > 0 and h > 0 for _, (w, h) in images), images
    summary = json.loads((out / "demo_summary.json").read_text())
    assert summary["recommended"] == rec and len(summary["stages"]) == len(STAGES)

    # second run through the CLI: every stage reports "reused" and no file the first run wrote is touched
    # (same mtime and size), none is added: nothing was regenerated, re-prepared, retrained or re-rendered
    before = _snapshot(out)
    assert {"report/report.html", "runs/recommended/model.safetensors", "runs/recommended/eval_test.json"} <= set(
        before
    )
    res = CliRunner().invoke(app, ["demo", "--preset", "tiny", "--out", str(out), "--cpu"])
    assert res.exit_code == 0, res.output
    again = json.loads((out / "demo_summary.json").read_text())
    assert [s["status"] for s in again["stages"]] == ["reused"] * len(STAGES)
    assert again["recommended"] == rec and again["test_metrics"] == summary["test_metrics"]
    assert "report:" in res.output and "recommended: D=" in res.output
    assert _snapshot(out) == before

    # a missing output makes its stage run again, and only that stage: the report folder and its stamp are
    # rewritten, the synthetic data, cache, study, runs and the other stamps are not touched
    first.report_html.unlink()
    third = run_demo(out, preset="tiny", device="cpu", progress=False, workers=1)
    assert [s.status for s in third.stages] == ["reused"] * (len(STAGES) - 1) + ["done"]
    after = _snapshot(out)
    assert set(after) == set(before)
    changed = {k for k in before if after[k] != before[k]}
    assert changed and all(k.startswith("report/") or k == ".demo/report.json" for k in changed), changed
    assert after["report/report.html"][0] > before["report/report.html"][0]  # written anew
    assert f"--depth {rec['depth']} --channels {rec['channels']}" in first.report_html.read_text()


def test_cli_demo_quick_end_to_end(tmp_path: Path) -> None:
    """``ecgscale demo --quick`` as a user runs it (the console entry point, a child process): every stage of
    the quick preset runs, the axes grid and the searches are complete, the report and the trained run exist."""
    import subprocess
    import sys

    out = tmp_path / "quick"
    # one torch thread, as the other subprocess tests: on a busy 2-core machine two spinning OpenMP threads per
    # process stall (measured here: 5.7 min with one thread, over 13 min with two, under load 13)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "ecgscale", "demo", "--quick", "--cpu", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    summary = json.loads((out / "demo_summary.json").read_text())
    quick = PRESETS["quick"]
    assert summary["preset"] == "quick" and summary["device"] == "cpu"
    assert [s["name"] for s in summary["stages"]] == STAGES and {s["status"] for s in summary["stages"]} == {"done"}
    # the axes grid around the base point, with and without GAP, every point trained once
    points = 1 + sum(len(set(axis)) - 1 for axis in (quick.depths, quick.channels, quick.kernels))
    assert f"{points * 2 * quick.repeats} trials" in summary["stages"][2]["detail"], summary["stages"][2]
    assert f"{quick.n_records} records" in summary["stages"][0]["detail"], summary["stages"][0]
    assert Path(summary["report_html"]).is_file() and (out / "runs" / "recommended" / "model.safetensors").is_file()
    eval_test = json.loads((out / "runs" / "recommended" / "eval_test.json").read_text())
    assert eval_test["metrics"]["macro_auroc"] == summary["test_metrics"]["macro_auroc"]
    rec = summary["recommended"]
    assert f"recommended: D={rec['depth']} C={rec['channels']} K={rec['kernel_size']}" in proc.stdout
    assert "report:" in proc.stdout and "Traceback" not in proc.stderr


def test_demo_refuses_a_folder_made_with_other_settings(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    (out / "synth").mkdir(parents=True)
    (out / "synth" / "x.txt").write_text("not ours")
    with pytest.raises(ConfigError, match="not finished by this demo"):
        run_demo(out, preset="tiny", device="cpu", progress=False)
    assert (out / "synth" / "x.txt").read_text() == "not ours"  # nothing deleted


def test_demo_refuses_a_folder_made_by_another_preset(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    stamps = out / ".demo"
    stamps.mkdir(parents=True)
    (stamps / "synth.json").write_text(json.dumps({"params": {"n": 1, "seed": 0, "format": "cinc2021"}}))
    (out / "synth").mkdir()
    with pytest.raises(ConfigError, match=r"other settings.*'synth'"):
        run_demo(out, preset="tiny", device="cpu", progress=False)


def test_presets_and_bad_arguments() -> None:
    assert set(PRESETS) == {"full", "quick", "tiny"}
    for p in PRESETS.values():
        assert "[vary]" in p.grid_toml() and "gap = [true, false]" in p.grid_toml()
    with pytest.raises(ConfigError, match="preset"):
        run_demo("unused", preset="huge")
    with pytest.raises(ConfigError, match="device"):
        run_demo("unused", preset="tiny", device="tpu")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            run_demo("unused", preset="tiny", device="cuda")
    with pytest.raises(ConfigError, match="n_records"):
        DemoPreset(
            name="x",
            n_records=0,
            fs=100,
            window_s=5,
            max_store_s=10,
            grid_base=(1, 8, 3),
            depths=(1,),
            channels=(8,),
            kernels=(3,),
            repeats=1,
            sweep_epochs=1,
            search_trials=1,
            search_seeds=1,
            search_epochs=1,
            final_epochs=1,
        )
