"""``export_model`` / ``ecgscale export``: ONNX and TorchScript give PyTorch's probabilities and carry metadata."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from typer.testing import CliRunner

from ecgscale.cli import app
from ecgscale.errors import ConfigError
from ecgscale.infer import export_model, read_export_metadata
from ecgscale.train import load_run

WINDOW = 500
# Exported and PyTorch float32 probabilities (in [0, 1]) may differ only by the rounding of reordered float32 sums:
# ~1e-7 observed (1 ulp of 1.0 is 1.2e-7), allowed 1e-5. A graph that computes something else (a BatchNorm eps, a
# layout or fusion mistake) differs by more; export_model's own check allows 1e-4.
FLOAT32_PARITY = 1e-5
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
KEYS = {
    "labels",
    "label_space",
    "thresholds",
    "preprocess",
    "preprocess_hash",
    "model",
    "input",
    "output",
    "ecgscale_version",
}


def _torch_probs(run_dir: Path, x: np.ndarray) -> np.ndarray:
    model = load_run(run_dir).model.eval()
    with torch.no_grad():
        return torch.sigmoid(model(torch.from_numpy(x))).numpy()


def _batch(n: int, length: int = WINDOW, seed: int = 11) -> np.ndarray:
    return np.random.default_rng(seed + n).standard_normal((n, 12, length)).astype(np.float32)


def _check_metadata(meta: dict, run_dir: Path) -> None:
    loaded = load_run(run_dir)
    assert set(meta) >= KEYS
    assert [c["abbreviation"] for c in meta["labels"]] == loaded.label_space.abbreviations
    assert meta["thresholds"] == pytest.approx(loaded.thresholds.tolist())
    assert meta["preprocess"] == loaded.config["preprocess"]
    assert meta["preprocess_hash"] == loaded.config["preprocess_hash"]
    assert meta["model"] == loaded.config["model"]
    assert meta["output"]["activation"] == "sigmoid"
    # the input contract: what a record must be before preprocessing, and which leads in which order
    assert meta["input"]["record_units"] == "mV" and meta["input"]["fs"] == loaded.config["preprocess"]["fs"]
    assert meta["input"]["leads"] == list(loaded.leads.names)


def test_onnx_parity_dynamic_batch_and_metadata(tiny_run, tmp_path):
    out = tmp_path / "model.onnx"
    result = export_model(tiny_run, "onnx", out)
    assert result.dynamic_time and 0.0 <= result.max_abs_diff < FLOAT32_PARITY  # export_model measured it
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto, full_check=True)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert (dims[0].dim_param, dims[1].dim_value, dims[2].dim_param) == ("batch", 12, "time")
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for n, length in ((1, WINDOW), (5, WINDOW), (3, 640)):  # GAP: the time axis is dynamic too
        x = _batch(n, length)
        got = session.run(["probabilities"], {"ecg": x})[0]
        assert got.shape == (n, 26)
        assert np.max(np.abs(got - _torch_probs(tiny_run, x))) < FLOAT32_PARITY
    meta = {p.key: json.loads(p.value) for p in proto.metadata_props}
    _check_metadata(meta, tiny_run)
    assert meta["input"]["dynamic_time"] is True and meta["input"]["window_samples"] == WINDOW
    assert read_export_metadata(out) == meta


def test_torchscript_parity_and_extra_files(tiny_run, tmp_path):
    out = tmp_path / "model.pt"
    export_model(tiny_run, "torchscript", out)
    files = {
        "labels": "",
        "preprocess": "",
        "preprocess_hash": "",
        "thresholds": "",
        "model": "",
        "ecgscale_version": "",
        "label_space": "",
        "input": "",
        "output": "",
    }
    module = torch.jit.load(str(out), map_location="cpu", _extra_files=files)
    for n in (1, 5):
        x = _batch(n)
        with torch.no_grad():
            got = module(torch.from_numpy(x)).numpy()
        assert np.max(np.abs(got - _torch_probs(tiny_run, x))) < FLOAT32_PARITY
    _check_metadata({k: json.loads(v) for k, v in files.items()}, tiny_run)
    assert read_export_metadata(out)["preprocess_hash"] == json.loads(files["preprocess_hash"])


def test_nogap_export_has_a_fixed_time_axis(tiny_run_nogap, tmp_path):
    with pytest.raises(ConfigError, match="fixed input length"):
        export_model(tiny_run_nogap, "onnx", tmp_path / "x.onnx", dynamic_time=True)
    out = tmp_path / "nogap.onnx"
    result = export_model(tiny_run_nogap, "onnx", out)
    assert not result.dynamic_time
    proto = onnx.load(str(out))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[2].dim_value == WINDOW
    meta = read_export_metadata(out)
    assert meta["input"]["dynamic_time"] is False and meta["input"]["shape"] == ["batch", 12, WINDOW]
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for n in (1, 5):
        x = _batch(n)
        assert np.max(np.abs(session.run(None, {"ecg": x})[0] - _torch_probs(tiny_run_nogap, x))) < FLOAT32_PARITY
    ts = tmp_path / "nogap.pt"
    export_model(tiny_run_nogap, "torchscript", ts)
    module = torch.jit.load(str(ts))
    x = _batch(5)
    with torch.no_grad():
        assert np.max(np.abs(module(torch.from_numpy(x)).numpy() - _torch_probs(tiny_run_nogap, x))) < FLOAT32_PARITY


def test_cli_export_and_bad_arguments(tiny_run, tmp_path):
    out = tmp_path / "cli.onnx"
    res = CliRunner().invoke(app, ["export", str(tiny_run), "--format", "onnx", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["max_abs_diff"] < FLOAT32_PARITY and out.is_file()
    with pytest.raises(ConfigError, match="format"):
        export_model(tiny_run, "tflite", tmp_path / "m.tflite")
    with pytest.raises(ConfigError, match="opset"):
        export_model(tiny_run, "onnx", tmp_path / "m.onnx", opset=13)
