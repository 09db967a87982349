"""``ecgscale rf``: table and JSON output agree with the Python API; bad input is a ConfigError."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from ecgscale.cli import app
from ecgscale.errors import ConfigError
from ecgscale.models import ResNet1dConfig, cost, receptive_field

runner = CliRunner()


def test_rf_json_matches_api() -> None:
    result = runner.invoke(
        app, ["rf", "--depth", "4", "--channels", "32", "--kernel", "9", "--fs", "500", "--n-samples", "5000", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    cfg = ResNet1dConfig(depth=4, channels=32, kernel_size=9)
    field = receptive_field(cfg, fs=500)
    assert data["receptive_field"]["samples"] == field.samples
    assert data["receptive_field"]["seconds"] == field.seconds
    assert data["flops"] == cost(cfg, 5000).flops
    assert data["params"] == cost(cfg, 5000).params
    assert ResNet1dConfig.from_dict(data["config"]) == cfg


def test_rf_table_and_no_gap() -> None:
    result = runner.invoke(app, ["rf", "-d", "2", "-c", "16", "-k", "5", "--no-gap", "--n-samples", "1000"])
    assert result.exit_code == 0, result.output
    field = receptive_field(ResNet1dConfig(depth=2, channels=16, kernel_size=5), fs=250)
    assert f"{field.samples} samples" in result.output
    assert "flatten + linear" in result.output
    params = cost(ResNet1dConfig(depth=2, channels=16, kernel_size=5, gap=False, input_length=1000)).params
    assert f"{params:,}" in result.output


def test_rf_bad_kernel_is_config_error() -> None:
    result = runner.invoke(app, ["rf", "--depth", "2", "--channels", "8", "--kernel", "4"])
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError)
    assert "kernel_size" in str(result.exception) and "4" in str(result.exception)
    result = runner.invoke(app, ["rf", "--depth", "16", "--channels", "8", "--kernel", "33", "--n-samples", "100"])
    assert isinstance(result.exception, ConfigError)
    assert "kernel_size=33" in str(result.exception)
