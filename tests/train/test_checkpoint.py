"""Run directories load back only when they are what they claim: no pickle, clear CheckpointErrors."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from safetensors.torch import save_file

from ecgscale.errors import CheckpointError
from ecgscale.train import TrainConfig, Trainer, load_run
from ecgscale.train.checkpoint import load_resume_state, load_weights, save_resume_state, save_weights


@pytest.fixture(scope="module")
def trained(planted, planted_data, tmp_path_factory):
    """``(run_dir, the trained in-memory model, its TrainResult)`` of a one-epoch run (best = last epoch)."""
    (xt, yt), (xv, yv) = planted_data
    out = tmp_path_factory.mktemp("ckpt") / "run"
    cfg = TrainConfig(epochs=1, batch_size=64, precision="fp32", checkpoint_every=0)
    model = planted.tiny_resnet()
    res = Trainer(
        model, planted.space(), cfg, train_data=(xt, yt), val_data=(xv, yv), out_dir=out, progress=False
    ).fit()
    return out, model, res


@pytest.fixture(scope="module")
def run_dir(trained):
    return trained[0]


def _copy(run_dir, tmp_path):
    import shutil

    dst = tmp_path / "copy"
    shutil.copytree(run_dir, dst)
    return dst


def test_load_run_round_trip(trained, planted, planted_data):
    run_dir, model, res = trained
    loaded = load_run(run_dir)
    assert loaded.label_space.name == "planted" and loaded.label_space.classes == planted.space().classes
    assert loaded.thresholds.tolist() == res.thresholds and loaded.preprocess is None
    assert not loaded.model.training
    # Same tensors, same outputs bit for bit, as the network that was trained.
    assert loaded.model.state_dict().keys() == model.state_dict().keys()
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.model.state_dict().items())
    x = torch.from_numpy(planted_data[1][0])
    model.eval()
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model(x))


def test_pickle_renamed_to_safetensors_is_refused(run_dir, tmp_path):
    run = _copy(run_dir, tmp_path)
    state = load_run(run).model.state_dict()
    torch.save(state, run / "model.safetensors")  # a pickle zip under the safetensors name
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not a readable safetensors file"):
        load_run(run)
    (run / "model.safetensors").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError, match="never reads pickled"):
        load_run(run)


def test_wrong_keys_and_foreign_files_are_refused(run_dir, tmp_path):
    run = _copy(run_dir, tmp_path)
    save_weights(run / "model.safetensors", {"encoder.weight": torch.zeros(3, 3)})
    with pytest.raises(CheckpointError, match="belongs to another model"):
        load_run(run)
    save_file({"stem.0.weight": torch.zeros(1)}, str(run / "model.safetensors"))  # no ecgscale metadata
    with pytest.raises(CheckpointError, match="not written by ecgscale"):
        load_run(run)
    (run / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{trunc")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_run(run)


def test_missing_or_broken_config(run_dir, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_run(tmp_path / "nowhere")
    run = _copy(run_dir, tmp_path)
    (run / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="checkpoint file is missing"):
        load_run(run)
    (run / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_run(run)
    (run / "config.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(CheckpointError, match="not an ecgscale run config"):
        load_run(run)
    (run / "config.json").unlink()
    with pytest.raises(CheckpointError, match="not an ecgscale run directory"):
        load_run(run)


def test_resume_state_round_trip(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    save_resume_state(tmp_path / "last.safetensors", model.state_dict(), opt.state_dict(), {"epoch": 2, "step": 5})
    m_state, o_state, state = load_resume_state(tmp_path / "last.safetensors")
    assert state == {"epoch": 2, "step": 5}
    assert all(torch.equal(m_state[k], v) for k, v in model.state_dict().items())
    opt2 = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters(), lr=1e-3)
    opt2.load_state_dict(o_state)
    for a, b in zip(opt.state_dict()["state"].values(), opt2.state_dict()["state"].values(), strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(CheckpointError, match="holds 'resume' tensors, expected 'weights'"):
        load_weights(tmp_path / "last.safetensors", kind="weights")
