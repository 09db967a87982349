"""Reduced-lead runs end to end: training on rows of the 12-lead cache, evaluation, prediction on records that
hold only some leads (any order), refusal naming missing leads, export metadata, the ``--leads`` options."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ecgscale.cli import app
from ecgscale.data.readers import read_record
from ecgscale.data.records import STANDARD_LEADS
from ecgscale.data.reduced import write_reduced_record
from ecgscale.data.writers import write_cinc2021
from ecgscale.errors import CheckpointError, ConfigError, RecordError
from ecgscale.infer import Predictor
from ecgscale.infer.export import export_model, read_export_metadata
from ecgscale.models import ResNet1dConfig
from ecgscale.train import TrainConfig, evaluate_run, load_run, train_run
from ecgscale.train.data import CacheSource


def _train_leads(cache, out: Path, leads: str, **train) -> Path:
    cfg = ResNet1dConfig(depth=1, channels=8, kernel_size=5, n_classes=len(cache.label_space))
    opts = {"epochs": 1, "batch_size": 32, "device": "cpu", "precision": "fp32", "seed": 0, "leads": leads, **train}
    train_run(cache, cfg, TrainConfig(**opts), out, progress=False)
    return out


@pytest.fixture(scope="module")
def run3(tiny_cache, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train_leads(tiny_cache, tmp_path_factory.mktemp("run") / "three", "V2,II,I")


def test_run_records_its_lead_set_and_trains_on_those_rows(run3, tiny_cache):
    cfg = json.loads((run3 / "config.json").read_text())
    assert cfg["leads"] == ["I", "II", "V2"] and cfg["train"]["leads"] == ["I", "II", "V2"]
    assert cfg["model"]["n_leads"] == 3
    loaded = load_run(run3)
    assert loaded.leads.tag == "3" and loaded.model.config.n_leads == 3
    full, sub = CacheSource(tiny_cache, "val"), CacheSource(tiny_cache, "val", leads="3")
    idx = np.arange(4)
    x12, _ = full.batch(idx, None)
    x3, _ = sub.batch(idx, None)
    torch.testing.assert_close(x3, x12[:, [0, 1, 7]], rtol=0, atol=0)
    crops, _ = sub.batch(idx, np.full(4, 0.3), 200)  # the crop path keeps the rows too
    assert crops.shape == (4, 3, 200)
    report = evaluate_run(run3, split="test", n_bootstrap=0, write=False)
    assert report["leads"] == ["I", "II", "V2"] and report["n_records"] == len(tiny_cache.indices("test"))


def test_twelve_lead_configs_are_unchanged():
    assert TrainConfig(leads="12").leads is None and TrainConfig().to_dict()["leads"] is None
    assert TrainConfig.from_dict(TrainConfig(leads="6").to_dict()) == TrainConfig(leads="6")
    with pytest.raises(ConfigError, match=r"train\.leads"):
        TrainConfig(leads="I,II,V9")


def test_model_n_leads_follows_the_set_and_a_conflict_is_refused(tiny_cache, tmp_path):
    cfg = ResNet1dConfig(depth=1, channels=8, kernel_size=5, n_classes=len(tiny_cache.label_space), n_leads=6)
    with pytest.raises(ConfigError, match="n_leads=6"):
        train_run(tiny_cache, cfg, TrainConfig(epochs=1, device="cpu", leads="2"), tmp_path / "x", progress=False)


def test_resume_with_another_lead_set_is_refused(tiny_cache, tmp_path):
    run = _train_leads(tiny_cache, tmp_path / "r", "2")
    cfg = ResNet1dConfig(depth=1, channels=8, kernel_size=5, n_classes=len(tiny_cache.label_space))
    other = TrainConfig(epochs=2, batch_size=32, device="cpu", precision="fp32", seed=0, leads="6")
    with pytest.raises(ConfigError, match="leads"):
        train_run(tiny_cache, cfg, other, run, resume=True, progress=False)


def test_predict_reads_a_subset_in_any_order(run3, tiny_cache, tmp_path):
    m = tiny_cache.manifest
    i = int(m.index[0])
    full = Path(m["path"][i])
    reduced = write_reduced_record(full, tmp_path / "three", "3", order=["V2", "I", "II"])
    assert read_record(reduced).lead_names == ("V2", "I", "II")
    predictor = Predictor(run3, device="cpu")
    x = predictor.prepare(read_record(reduced))
    np.testing.assert_array_equal(x, tiny_cache.signal(i)[[0, 1, 7]])  # exactly the rows the model trained on
    a, b = predictor.predict_record(reduced), predictor.predict_record(full)  # extra leads are dropped
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-6)
    assert "leads=3" in repr(predictor)


def test_twelve_lead_model_refuses_a_six_lead_record_per_file(tiny_run, tiny_cache, tmp_path, ecg_like):
    m = tiny_cache.manifest
    folder = tmp_path / "mixed"
    write_reduced_record(Path(m["path"][int(m.index[0])]), folder, "6")
    write_cinc2021(folder, "FULL", ecg_like(500, 6, seed=3), 500)
    result = Predictor(tiny_run, device="cpu").predict_paths(folder)
    assert result.n_predicted == 1 and result.n_failed == 1
    err = result.errors.iloc[0]
    assert err["reason"] == "missing_leads"
    assert "missing leads V1, V2, V3, V4, V5, V6" in err["error"] and err["error"].startswith(str(folder))
    with pytest.raises(RecordError, match="missing leads V1"):
        Predictor(tiny_run, device="cpu").predict_record(next(folder.glob("[!F]*.hea")))


def test_export_metadata_carries_the_lead_set(run3, tmp_path):
    out = tmp_path / "m.onnx"
    result = export_model(run3, "onnx", out)
    meta = read_export_metadata(out)
    assert meta["input"]["leads"] == ["I", "II", "V2"] and meta["input"]["lead_set"] == "3"
    assert meta["input"]["shape"][1] == 3 and result.max_abs_diff is not None


def test_a_run_whose_lead_set_contradicts_its_model_is_refused(run3, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(run3, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["leads"] = list(STANDARD_LEADS)
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="takes 3 leads"):
        load_run(bad)


def test_cli_train_leads_and_reduce_leads(tiny_cache, tmp_path, monkeypatch):
    # In-process training: a forked training child of this test process (which already ran OpenMP in earlier
    # tests) can deadlock in libgomp; crash isolation is tested elsewhere.
    monkeypatch.setenv("ECGSCALE_ISOLATE", "0")
    runner = CliRunner()
    run = tmp_path / "run"
    args = ["train", "--cache", str(tiny_cache.path), "-D", "1", "-C", "8", "-K", "5", "--epochs", "1"]
    res = runner.invoke(app, [*args, "--leads", "i,dii", "--out", str(run), "--no-progress"])
    assert res.exit_code == 0, (res.output, res.exception)
    assert json.loads((run / "config.json").read_text())["leads"] == ["I", "II"]
    res = runner.invoke(app, [*args, "--leads", "I,MLII", "--out", str(tmp_path / "bad"), "--no-progress"])
    assert res.exit_code != 0 and "MLII" in str(res.exception)
    src = Path(tiny_cache.manifest["path"][0]).parent
    res = runner.invoke(app, ["reduce-leads", str(src), str(tmp_path / "two"), "--leads", "2"])
    assert res.exit_code == 0, (res.output, res.exception)
    n = len(list(src.glob("*.hea")))
    assert f"wrote {n} 2-lead record(s)" in res.output and len(list((tmp_path / "two").glob("*.mat"))) == n
