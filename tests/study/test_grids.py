"""Grids: the built-in shapes, file grids (TOML and YAML) and their validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecgscale.errors import ConfigError
from ecgscale.study.grids import (
    AXES_BASE,
    PAPER_CHANNELS,
    PAPER_DEPTHS,
    PAPER_KERNELS,
    ArchPoint,
    Grid,
    axes_grid,
    load_grid,
    paper_grid,
    resolve_grid,
)


def test_paper_grid_is_the_full_factorial() -> None:
    g = paper_grid(seeds=(0, 1))
    assert len(g.points) == 250 == 5 * 5 * 5 * 2
    assert len(g) == 500
    assert len(set(g.keys)) == 250
    assert g.values("depth") == list(PAPER_DEPTHS)
    assert g.values("channels") == list(PAPER_CHANNELS)
    assert g.values("kernel_size") == list(PAPER_KERNELS)
    assert {p.gap for p in g.points} == {True, False}


def test_axes_grid_varies_one_factor_at_a_time() -> None:
    g = axes_grid()
    assert g.kind == "axes" and dict(g.base) == dict(AXES_BASE)
    # 5 + 4 + 4 distinct architectures (the base counted once), each with and without GAP
    assert len(g.points) == 26
    for p in g.points:
        differs = [a for a in ("depth", "channels", "kernel_size") if getattr(p, a) != AXES_BASE[a]]
        assert len(differs) <= 1, p
    assert {p.key for p in g.points} >= {
        "D4-C64-K9-gap",
        "D4-C64-K9-nogap",
        "D16-C64-K9-gap",
        "D4-C256-K9-nogap",
        "D4-C64-K33-gap",
    }


def test_arch_point_key_round_trip_and_validation() -> None:
    p = ArchPoint(2, 128, 5, False)
    assert p.key == "D2-C128-K5-nogap" and ArchPoint.from_key(p.key) == p
    with pytest.raises(ConfigError, match=r"kernel_size.*4.*odd"):
        ArchPoint(2, 16, 4)
    with pytest.raises(ConfigError, match="depth"):
        ArchPoint(0, 16, 3)
    with pytest.raises(ConfigError, match="config"):
        ArchPoint.from_key("D2-C8")


def test_grid_round_trips_and_rejects_duplicates() -> None:
    g = axes_grid(seeds=(0, 3))
    assert Grid.from_dict(g.to_dict()) == g
    assert g.search_space() == {"config": g.keys, "seed": [0, 3]}
    with pytest.raises(ConfigError, match="duplicate"):
        Grid("x", (ArchPoint(1, 8, 3), ArchPoint(1, 8, 3)))
    with pytest.raises(ConfigError, match="seeds"):
        Grid("x", (ArchPoint(1, 8, 3),), seeds=())


def test_toml_factorial_grid(tmp_path: Path) -> None:
    f = tmp_path / "small.toml"
    f.write_text("depth = [1, 2]\nchannels = [16]\nkernel_size = [3, 9]\ngap = [true]\nrepeats = 2\n")
    g = load_grid(f)
    assert g.name == "small" and g.kind == "factorial"
    assert g.keys == ["D1-C16-K3-gap", "D1-C16-K9-gap", "D2-C16-K3-gap", "D2-C16-K9-gap"]
    assert g.seeds == (0, 1)
    assert load_grid(f, seeds=(5,)).seeds == (5,)  # the command line wins


def test_yaml_axes_and_points_grids(tmp_path: Path) -> None:
    f = tmp_path / "ax.yaml"
    f.write_text(
        "name: myaxes\nbase: {depth: 2, channels: 32, kernel_size: 5}\n"
        "vary:\n  depth: [1, 2, 4]\n  kernel_size: [3, 5]\n  gap: [true, false]\nseeds: [0, 7]\n"
    )
    g = load_grid(f)
    assert g.name == "myaxes" and g.kind == "axes" and g.seeds == (0, 7)
    assert len(g.points) == (3 + 1) * 2  # depth 1, 2, 4 plus kernel 3; the base is not repeated
    f2 = tmp_path / "pts.yml"
    f2.write_text(
        "points:\n  - {depth: 1, channels: 8, kernel_size: 3}\n  - {depth: 2, channels: 8, kernel_size: 3, "
        "gap: false}\n"
    )
    assert load_grid(f2).keys == ["D1-C8-K3-gap", "D2-C8-K3-nogap"]
    assert resolve_grid(str(f2)).kind == "points" and load_grid(f2).base is None


def test_points_grid_with_a_base_is_analysed_through_it(tmp_path: Path) -> None:
    """A hand-picked one-factor-at-a-time design: the axis tables slice through the base, not the marginal."""
    import pandas as pd

    from ecgscale.study.analysis import axis_table

    f = tmp_path / "pts.toml"
    f.write_text(
        "base = {depth = 2, channels = 8, kernel_size = 3}\n"
        "points = [{depth = 1, channels = 8, kernel_size = 3}, {depth = 2, channels = 8, kernel_size = 3},"
        " {depth = 2, channels = 8, kernel_size = 9}, {depth = 1, channels = 8, kernel_size = 9}]\n"
    )
    g = load_grid(f)
    assert g.kind == "points" and g.base == {"depth": 2, "channels": 8, "kernel_size": 3}
    assert Grid.from_dict(g.to_dict()).base == g.base
    df = pd.DataFrame(
        [
            {**p.to_dict(), "seed": 0, "val_macro_auroc": v, "test_macro_auroc": v}
            for p, v in zip(g.points, [0.7, 0.8, 0.9, 0.1], strict=True)
        ]
    )
    depth = axis_table(df, "depth", base=g.base)
    rows = depth[depth.target == "all"].set_index("value")
    # D1 through the base (K3) is 0.7; the marginal over K would be the mean of 0.7 and 0.1
    assert rows.loc[1, "mean"] == pytest.approx(0.7) and rows.loc[2, "mean"] == pytest.approx(0.8)
    bad = tmp_path / "badbase.toml"
    bad.write_text("base = {depth = 2, channels = 8}\npoints = [{depth = 1, channels = 8, kernel_size = 3}]\n")
    with pytest.raises(ConfigError, match="base"):
        load_grid(bad)


@pytest.mark.parametrize(
    ("text", "suffix", "key", "value"),
    [
        ("depth = [1, 2]\nchannels = [16]\nkernel_size = [4]\n", ".toml", "kernel_size", "4"),
        ("depth = [1, 'two']\nchannels = [16]\nkernel_size = [3]\n", ".toml", "depth", "'two'"),
        ("depth = [1]\nchannels = [16]\nkernel_size = [3]\ngap = ['yes']\n", ".toml", "gap", "'yes'"),
        ("depth = [1]\nchannels = [16]\nkernel_size = [3]\nwidth = [2]\n", ".toml", "width", ""),
        ("depth: [1]\nchannels: [-8]\nkernel_size: [3]\n", ".yaml", "channels", "-8"),
        ("points:\n  - {depth: 1, channels: 8, kernel: 3}\n", ".yaml", "points[0]", "kernel"),
        ("base: {depth: 2, channels: 32, kernel_size: 5}\nvary: {depth: [0]}\n", ".yaml", "vary.depth", "0"),
        ("depth = [1]\nchannels = [16]\nkernel_size = [3]\nrepeats = 0\n", ".toml", "repeats", "0"),
    ],
)
def test_bad_grid_values_name_file_key_and_value(tmp_path: Path, text: str, suffix: str, key: str, value: str) -> None:
    f = tmp_path / f"bad{suffix}"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_grid(f)
    msg = str(info.value)
    assert str(f) in msg and key.split(".")[-1] in msg and value in msg


def test_unparsable_files_and_specs(tmp_path: Path) -> None:
    bad = tmp_path / "x.yaml"
    bad.write_text("depth: [1\n")
    with pytest.raises(ConfigError, match="YAML"):
        load_grid(bad)
    bad2 = tmp_path / "x.toml"
    bad2.write_text("depth = [1\n")
    with pytest.raises(ConfigError, match="TOML"):
        load_grid(bad2)
    with pytest.raises(ConfigError, match="not found"):
        load_grid(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="paper \\| axes"):
        resolve_grid("papr")
