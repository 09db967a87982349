"""`ecgscale sweep --recipe`: every trial trains with the recipe's settings, options typed on the command line
win, and the grid (not the recipe) decides the architecture."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from ecgscale.train.recipes import RECIPES


def _protocol(root: Path, name: str) -> dict:
    from ecgscale.study.results import load_study

    return load_study(name, None, studies_dir=root).user_attrs["protocol"]


def _sweep(root: Path, name: str, *extra: str) -> None:
    from ecgscale.cli import app

    grid = root / "grid.toml"
    grid.write_text('name = "tiny"\ndepth = [1]\nchannels = [8]\nkernel_size = [3]\ngap = [true]\n')
    res = CliRunner().invoke(
        app,
        ["sweep", "--study", name, "--studies-dir", str(root), "--grid", str(grid), "--runner", "surrogate", *extra],
    )
    assert res.exit_code == 0, res.output


def test_recipe_settings_reach_every_trial_and_typed_options_win(tmp_path: Path) -> None:
    _sweep(tmp_path, "r", "--recipe", "ptbxl", "--epochs", "3", "--batch-size", "32")
    train = _protocol(tmp_path, "r")["train"]
    recipe = RECIPES["ptbxl"]["train"]
    assert train["epochs"] == 3 and train["batch_size"] == 32  # typed here
    for key in ("crop_s", "eval_stride_s", "eval_aggregate", "schedule", "lr", "weight_decay"):
        assert train[key] == recipe[key], key
    assert _protocol(tmp_path, "r")["model"] == {}  # D/C/K/GAP come from the grid


def test_without_recipe_the_default_epochs_stand(tmp_path: Path) -> None:
    _sweep(tmp_path, "plain")
    train = _protocol(tmp_path, "plain")["train"]
    assert train == {"epochs": 30}


def test_recipe_epochs_used_when_not_typed(tmp_path: Path) -> None:
    _sweep(tmp_path, "e", "--recipe", "ptbxl")
    assert _protocol(tmp_path, "e")["train"]["epochs"] == RECIPES["ptbxl"]["train"]["epochs"]
