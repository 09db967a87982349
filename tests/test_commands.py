"""Command lines rendered by ``ecgscale.commands`` are ones the CLI takes: every flag the renderer spells is an
option of the typer app, and a rendered line parsed by the app gives back the settings it was rendered from."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import click
import pytest
import typer.main

from ecgscale.cli import app
from ecgscale.commands import (
    NEGATABLE,
    TRAIN_OPTIONS,
    command_line,
    flag,
    prepare_options,
    train_command,
    train_options,
)
from ecgscale.errors import ConfigError

_GROUP = typer.main.get_command(app)


def _commands() -> dict[str, click.Command]:
    ctx = click.Context(_GROUP)
    return {name: _GROUP.get_command(ctx, name) for name in _GROUP.list_commands(ctx)}


def parse(line: str) -> dict[str, Any]:
    """The parameters the typer app gives the command of ``line`` (a shell line, as a user would paste it)."""
    words = shlex.split(line.split("  # ")[0])
    assert words[0] == "ecgscale", line
    command = _commands()[words[1]]
    return command.make_context(words[1], words[2:]).params


def test_flag_names_every_option_of_the_cli() -> None:
    negatable_seen = set()
    for name, command in _commands().items():
        for param in command.params:
            if not isinstance(param, click.Option):
                continue
            assert flag(param.name) in param.opts, (name, param.name, param.opts)
            if param.name in NEGATABLE:
                assert "--no-" + flag(param.name)[2:] in param.secondary_opts, (name, param.name)
                negatable_seen.add(param.name)
    assert negatable_seen == NEGATABLE


def test_a_rendered_line_parses_to_its_options(tmp_path: Path) -> None:
    odd = tmp_path / "a folder with spaces & 'quotes'"
    options = {
        "cache": odd,
        "depth": 3,
        "channels": 16,
        "kernel": 9,
        "no_gap": True,
        "lr": 0.1 + 0.2,  # not short: written exactly
        "warmup_epochs": 1.0,
        "crop_s": 2.5,
        "leads": ("I", "II", "V2"),
        "pos_weight": False,  # not negatable: left out, the default
        "progress": False,
        "out": odd / "run",
    }
    line = command_line("train", **options)
    assert " --warmup-epochs 1 " in line and " --no-progress" in line and "--pos-weight" not in line
    params = parse(line)
    assert Path(params["cache"]) == odd and Path(params["out"]) == odd / "run"  # click gives paths as text
    assert params["lr"] == 0.1 + 0.2 and params["warmup_epochs"] == 1.0 and params["crop_s"] == 2.5
    assert params["leads"] == "I,II,V2" and params["no_gap"] is True and params["progress"] is False
    assert (params["depth"], params["channels"], params["kernel"]) == (3, 16, 9) and params["pos_weight"] is False
    assert parse(command_line("evaluate", odd, split="test", n_bootstrap=20)) | {"run_dir": None} == {
        **parse(command_line("evaluate", "x")),
        "run_dir": None,
        "split": "test",
        "n_bootstrap": 20,
    }


def test_train_command_gives_the_cli_the_same_settings(tiny_cache, tmp_path: Path, monkeypatch) -> None:
    """A study protocol (the ptbxl recipe's, 3 lead names), an architecture without GAP, seed and device: the line
    run through ``ecgscale train`` builds the same TrainConfig and model the settings describe."""
    from typer.testing import CliRunner

    import ecgscale.cli.train as cli_train
    from ecgscale.train import TrainConfig
    from ecgscale.train.recipes import RECIPES

    protocol = {**RECIPES["ptbxl"]["train"], "epochs": 2, "leads": ("I", "II", "V2"), "pos_weight": True}
    architecture = {"depth": 2, "channels": 8, "kernel_size": 5, "gap": False, "dropout": 0.25}
    line = train_command(
        cache=tiny_cache.path, architecture=architecture, train=protocol, seed=3, device="cpu", out=tmp_path / "r"
    )
    seen: dict[str, Any] = {}

    class Captured(Exception):
        pass

    def capture(ecg_cache, cache_path, model, cfg, out, *, resume, progress):
        seen.update(model=model, cfg=cfg, out=out)
        raise Captured

    monkeypatch.setattr(cli_train, "_train_supervised", capture)
    res = CliRunner().invoke(app, shlex.split(line)[1:])
    assert isinstance(res.exception, Captured), res.output
    rendered = {k: v for k, v in protocol.items() if k in (*TRAIN_OPTIONS, "patience", "pos_weight")}
    assert seen["cfg"] == TrainConfig(**rendered, seed=3, device="cpu")
    assert seen["cfg"].patience is None and seen["cfg"].crop_s == 2.5 and seen["cfg"].leads == ("I", "II", "V2")
    assert {k: seen["model"][k] for k in architecture} == architecture
    assert seen["out"] == tmp_path / "r"


def test_train_options_of_a_protocol() -> None:
    assert train_options({}) == {}
    assert train_options({"patience": None, "seed": 4, "device": "cuda", "pos_weight": False}) == {"patience": 0}
    assert list(train_options({"leads": "6", "epochs": 3, "lr": None})) == ["epochs", "leads"]


def test_prepare_options_round_trip_through_the_cli() -> None:
    from ecgscale.data.transforms import PreprocessConfig

    config = PreprocessConfig(fs=100, window_s=4.0, max_store_s=8.0, bandpass=(0.5, 20.0), standardize=False)
    line = command_line("prepare", "SOURCES", out="CACHE", **prepare_options(config))
    assert line == (
        "ecgscale prepare SOURCES --out CACHE --fs 100 --window 4 --max-store 8 --bandpass 0.5,20 --no-standardize"
    )
    params = parse(line)
    assert (params["fs"], params["window_s"], params["max_store_s"]) == (100.0, 4.0, 8.0)
    assert params["bandpass"] == "0.5,20" and params["standardize"] is False and params["dtype"] == "float16"
    assert (
        parse(command_line("prepare", "S", out="C", **prepare_options(PreprocessConfig(bandpass=None))))["bandpass"]
        == "none"
    )
    with pytest.raises(ConfigError, match="filter_order"):
        prepare_options(PreprocessConfig(filter_order=4))


@pytest.mark.parametrize("dev", ["cpu", "cuda"])
def test_the_demos_reproduce_lines_parse_to_its_settings(dev: str, tmp_path: Path) -> None:
    """The commands the demo's report lists (an output folder with a space in its name) are ones the CLI takes,
    with the preset's sizes and training settings."""
    from ecgscale.workflows.demo import PRESETS, STUDY_NAME, _commands

    p = PRESETS["quick"]
    rec = {"depth": 4, "channels": 16, "kernel_size": 9, "gap": False}
    text = _commands(p, tmp_path / "demo out", dev, rec)
    params = {shlex.split(line)[1]: parse(line) for line in text.splitlines() if not line.startswith("#")}
    assert list(params) == ["synth", "prepare", "sweep", "search-compare", "recommend", "train", "evaluate", "report"]
    assert params["synth"]["n"] == p.n_records and params["evaluate"]["n_bootstrap"] == p.n_bootstrap
    pre = params["prepare"]
    assert (pre["fs"], pre["window_s"], pre["max_store_s"]) == (p.fs, p.window_s, p.max_store_s)
    assert tuple(float(v) for v in pre["bandpass"].split(",")) == p.bandpass
    sweep, search, train = params["sweep"], params["search-compare"], params["train"]
    assert (sweep["study"], sweep["epochs"], sweep["batch_size"], sweep["lr"]) == (STUDY_NAME, p.sweep_epochs, 64, p.lr)
    assert Path(sweep["grid"]) == tmp_path / "demo out" / "grid.toml"
    assert (search["trials"], search["seeds"], search["epochs"]) == (p.search_trials, p.search_seeds, p.search_epochs)
    assert search["max_minutes"] == p.search_max_minutes and Path(search["narrow"]).name == "space_narrow.toml"
    assert (train["depth"], train["channels"], train["kernel"], train["no_gap"]) == (4, 16, 9, True)
    assert (train["epochs"], train["batch_size"], train["lr"]) == (p.final_epochs, p.batch_size, p.lr)
    assert (train["patience"], train["seed"]) == (0, p.seed)
    if dev != "cpu":
        assert sweep["device"] == search["device"] == train["device"] == dev
