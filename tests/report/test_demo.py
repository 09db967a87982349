"""`ecgscale demo` end to end on the tiny preset: every stage runs, the report renders, a re-run reuses all."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ecgscale.cli import app
from ecgscale.demo import PRESETS, DemoPreset, run_demo
from ecgscale.errors import ConfigError

pytestmark = pytest.mark.slow

STAGES = ["synth", "cache", "sweep", "search-compare", "train", "evaluate", "report"]


def test_demo_end_to_end_and_resume(tmp_path: Path, chromium_check) -> None:
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
    result = chromium_check(first.report_html)
    assert result["n"] >= 5 and all(w > 0 for w in result["widths"]), result
    assert result["errors"] == [] and result["console_errors"] == []
    summary = json.loads((out / "demo_summary.json").read_text())
    assert summary["recommended"] == rec and len(summary["stages"]) == len(STAGES)

    # second run through the CLI: everything is reused, nothing retrained, and it is fast
    t0 = time.perf_counter()
    res = CliRunner().invoke(app, ["demo", "--preset", "tiny", "--out", str(out), "--cpu"])
    seconds = time.perf_counter() - t0
    assert res.exit_code == 0, res.output
    again = json.loads((out / "demo_summary.json").read_text())
    assert [s["status"] for s in again["stages"]] == ["reused"] * len(STAGES)
    assert again["recommended"] == rec
    assert "report:" in res.output and "recommended: D=" in res.output
    assert seconds < sum(s.seconds for s in first.stages)  # reuse is much cheaper than the work


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
