"""Fine-tuning (``TrainConfig.init_from``): trunk weights really transferred, a new head for a new label set,
a frozen trunk really frozen (weights and batch-norm statistics), a slower trunk in its own optimiser groups."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ecgscale.cli import app
from ecgscale.data.arrays import build_cache_from_arrays
from ecgscale.data.cache import open_cache
from ecgscale.data.records import STANDARD_LEADS
from ecgscale.data.transforms import PreprocessConfig
from ecgscale.errors import ConfigError
from ecgscale.train import TrainConfig, load_run, train_run
from ecgscale.train.finetune import init_from_run, optimizer_groups
from ecgscale.train.run import build_model

PRE = PreprocessConfig(fs=100, window_s=4.0, max_store_s=4.0)
ARCH = {"depth": 2, "channels": 8, "kernel_size": 5}
CFG = TrainConfig(epochs=1, batch_size=8, lr=3e-3, precision="fp32", patience=None, checkpoint_every=0, seed=1)


def _cache(path, classes, seed):
    rng = np.random.default_rng(seed)
    n = 40
    t = np.arange(400) / 100.0
    y = rng.integers(0, 2, (n, len(classes))).astype(np.uint8)
    x = rng.normal(0, 0.1, (n, 12, 400)) + np.sin(2 * np.pi * (1 + y[:, :1, None]) * t)
    build_cache_from_arrays(x.astype(np.float32), 100.0, STANDARD_LEADS, y, class_names=classes, out=path, config=PRE)
    return open_cache(path)


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    root = tmp_path_factory.mktemp("ft")
    cache = _cache(root / "big", ["A", "B"], 0)
    train_run(cache, {**ARCH, "n_classes": 2}, CFG, root / "parent", progress=False)
    child_cache = _cache(root / "small", ["X", "Y", "Z"], 1)
    return root, load_run(root / "parent"), child_cache


def _trunk(state):
    return {k: v for k, v in state.items() if not k.startswith("head.")}


def test_trunk_is_transferred_and_a_new_label_set_gets_a_new_head(parent, tmp_path):
    root, run, child_cache = parent
    model = build_model({**ARCH, "n_classes": 3}, n_classes=3, window=400, seed=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert any(not torch.equal(before[k], v) for k, v in _trunk(run.model.state_dict()).items())  # else: vacuous
    info = init_from_run(model, root / "parent", label_space=child_cache.label_space)
    for key, value in _trunk(run.model.state_dict()).items():
        assert torch.equal(model.state_dict()[key], value), key
    assert model.head.out_features == 3 and torch.equal(model.head.weight, before["head.weight"])
    assert info["head"] == "new" and info["label_space"] == run.label_space.name and len(info["weights_sha256"]) == 64
    same = build_model({**ARCH, "n_classes": 2}, n_classes=2, window=400, seed=5)
    assert init_from_run(same, root / "parent", label_space=run.label_space)["head"] == "kept"
    assert torch.equal(same.head.weight, run.model.head.weight)


def test_frozen_trunk_stays_frozen_and_the_run_records_its_parent(parent, tmp_path):
    root, run, child_cache = parent
    cfg = TrainConfig(**{**CFG.to_dict(), "init_from": str(root / "parent"), "freeze_trunk": True, "epochs": 2})
    train_run(child_cache, {**ARCH, "n_classes": 3}, cfg, tmp_path / "child", progress=False)
    child = load_run(tmp_path / "child")
    parent_state, child_state = run.model.state_dict(), child.model.state_dict()
    for key, value in _trunk(parent_state).items():  # weights AND batch-norm running statistics
        assert torch.equal(child_state[key], value), key
    fresh = build_model({**ARCH, "n_classes": 3}, n_classes=3, window=400, seed=cfg.seed)
    assert not torch.equal(child_state["head.weight"], fresh.state_dict()["head.weight"])  # the head did train
    info = json.loads((tmp_path / "child" / "config.json").read_text())
    assert info["parent"]["run_dir"] == str((root / "parent").resolve()) and info["parent"]["head"] == "new"
    assert info["parent"]["freeze_trunk"] and info["train"]["init_from"] == str(root / "parent")


def test_slower_trunk_has_its_own_groups_and_still_trains(parent, tmp_path):
    root, run, child_cache = parent
    model = build_model({**ARCH, "n_classes": 3}, n_classes=3, window=400, seed=1)
    groups = optimizer_groups(model, lr=1e-2, weight_decay=0.1, trunk_lr_factor=0.1)
    by_factor: dict[float, int] = {}
    for g in groups:
        assert g["lr"] == pytest.approx(1e-2 * g["lr_factor"])
        by_factor[g["lr_factor"]] = by_factor.get(g["lr_factor"], 0) + sum(p.numel() for p in g["params"])
    n_head = model.head.weight.numel() + model.head.bias.numel()
    assert by_factor == {0.1: sum(p.numel() for p in model.parameters()) - n_head, 1.0: n_head}
    cfg = TrainConfig(**{**CFG.to_dict(), "init_from": str(root / "parent"), "trunk_lr_factor": 0.1})
    train_run(child_cache, {**ARCH, "n_classes": 3}, cfg, tmp_path / "slow", progress=False)
    child = load_run(tmp_path / "slow").model.state_dict()
    key = "stem.0.weight" if "stem.0.weight" in child else next(k for k in child if k.endswith("weight"))
    assert not torch.equal(child[key], run.model.state_dict()[key])  # not frozen: the trunk moved


def test_other_architecture_and_options_without_parent_are_refused(parent, tmp_path):
    root, _, child_cache = parent
    model = build_model({**ARCH, "channels": 16, "n_classes": 3}, n_classes=3, window=400, seed=1)
    with pytest.raises(ConfigError, match=r"parent's architecture; differs in channels 8 → 16"):
        init_from_run(model, root / "parent", label_space=child_cache.label_space)
    with pytest.raises(ConfigError, match="freeze_trunk and trunk_lr_factor apply only when fine-tuning"):
        TrainConfig(freeze_trunk=True)


def test_cli_takes_the_parents_architecture(parent, tmp_path):
    root, _, child_cache = parent
    out = tmp_path / "cli"
    args = ["train", "--cache", str(child_cache.path), "--init-from", str(root / "parent"), "--out", str(out)]
    res = CliRunner().invoke(app, [*args, "--freeze-trunk", "--epochs", "1", "--batch-size", "8", "--no-progress"])
    assert res.exit_code == 0, res.output
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["model"]["depth"], cfg["model"]["channels"], cfg["model"]["kernel_size"]) == (2, 8, 5)
    assert cfg["parent"]["run_dir"] == str((root / "parent").resolve())
    res = CliRunner().invoke(app, ["inspect", str(out)])
    text = " ".join(res.output.split())  # the console wraps long lines
    assert res.exit_code == 0 and "fine-tuned from" in text and "(new head, frozen trunk)" in text
