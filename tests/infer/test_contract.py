"""``ecgscale inspect RUN_DIR``: a run's input contract in plain words (and as JSON), from its config.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from ecgscale.cli import app
from ecgscale.infer.contract import is_run_dir, run_contract

SHIPPED = Path(__file__).resolve().parents[2] / "results" / "ptbxl" / "runs" / "recipe_ptbxl_12ep"
runner = CliRunner()


def test_contract_of_a_shipped_run(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(SHIPPED, run)
    c = run_contract(run)
    assert (c["fs"], c["window_s"], c["window_samples"], c["units"]) == (100.0, 10.0, 1000, "mV")
    assert c["leads"][:3] == ["I", "II", "III"] and c["n_leads"] == 12 and not c["weights_present"]
    assert (c["model_input_samples"], c["model_input_s"], c["eval_windows"]["stride_s"]) == (250, 2.5, 1.25)
    assert c["preprocess_hash"] == "71e0d1726d9966c1" and c["classes"] == ["CD", "HYP", "MI", "NORM", "STTC"]
    res = runner.invoke(app, ["inspect", str(run)])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())  # the console wraps long lines
    for words in (
        "millivolts (mV)",
        "100 Hz; records at any other rate are resampled",
        "0.5-45 Hz",
        "none (amplitudes in mV)",
        "10 s = 1000 samples",
        "2.5 s windows every 1.25 s",
        "71e0d1726d9966c1",
        "I, II, III, aVR, aVL, aVF, V1",
    ):
        assert words in text, words
    res = runner.invoke(app, ["inspect", str(run), "--json"])
    assert json.loads(res.output)["preprocess_hash"] == "71e0d1726d9966c1"


def test_a_folder_of_records_is_not_a_run(tmp_path):
    (tmp_path / "config.json").write_text('{"format": "something-else"}')
    assert not is_run_dir(tmp_path) and not is_run_dir(tmp_path / "absent")
