"""Grids and search spaces written as files: ``load(to_toml(x)) == x`` for every shape a file can state."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecgscale.errors import ConfigError
from ecgscale.study.grids import ArchPoint, Grid, axes_grid, factorial_grid, load_grid, paper_grid, with_lead_sets
from ecgscale.study.spaces import FloatRange, IntRange, SearchSpace, load_space, narrow_space, wide_space


def _reload_grid(grid: Grid, tmp_path: Path, **kwargs) -> Grid:
    path = tmp_path / "grid.toml"
    path.write_text(grid.to_toml(**kwargs), encoding="utf-8")
    return load_grid(path)


@pytest.mark.parametrize(
    "grid",
    [
        axes_grid(),
        paper_grid(seeds=(0, 1, 2)),
        factorial_grid((2, 1), (32,), (9, 3), (False,), seeds=(3, 7), name='odd "name" \\ é'),
        # the base's depth is not on the depth list, the lists are not sorted: the points' order must survive
        axes_grid({"depth": 4, "channels": 16, "kernel_size": 9}, depths=(8, 1), channels=(64, 16, 8), kernels=(5,)),
        axes_grid({"depth": 2, "channels": 8, "kernel_size": 3}, depths=(1, 2), gaps=(False, True), name="gap-first"),
        with_lead_sets(axes_grid(seeds=(0, 1)), ["12", "6", "I,II,V2"]),
        with_lead_sets(factorial_grid((1,), (8, 16), (3,)), ["2"]),
        Grid("points", (ArchPoint(2, 16, 9, False), ArchPoint(1, 8, 3)), (0,), "points", None),
        Grid(
            "points-base",
            (ArchPoint(2, 16, 9), ArchPoint(4, 16, 9, False)),
            (1,),
            "points",
            {"depth": 2, "channels": 16, "kernel_size": 9},
        ),
    ],
    ids=lambda g: g.name,
)
def test_grid_to_toml_loads_back_equal(grid: Grid, tmp_path: Path) -> None:
    loaded = _reload_grid(grid, tmp_path)
    assert loaded == grid
    assert loaded.to_dict() == grid.to_dict() and loaded.keys == grid.keys


@settings(max_examples=40, deadline=None)
@given(
    depths=st.lists(st.sampled_from([1, 2, 3, 4, 8]), min_size=1, max_size=4, unique=True),
    channels=st.lists(st.sampled_from([8, 16, 32]), min_size=1, max_size=3, unique=True),
    kernels=st.lists(st.sampled_from([3, 5, 9, 17]), min_size=1, max_size=3, unique=True),
    base=st.tuples(st.sampled_from([1, 2, 4]), st.sampled_from([8, 16]), st.sampled_from([3, 9])),
    gaps=st.sampled_from([(True,), (False,), (True, False), (False, True)]),
    factorial=st.booleans(),
)
def test_any_built_grid_round_trips(depths, channels, kernels, base, gaps, factorial, tmp_path_factory) -> None:
    if factorial:
        grid = factorial_grid(depths, channels, kernels, gaps)
    else:
        grid = axes_grid(
            dict(zip(("depth", "channels", "kernel_size"), base, strict=True)),
            depths=depths,
            channels=channels,
            kernels=kernels,
            gaps=gaps,
        )
    assert _reload_grid(grid, tmp_path_factory.mktemp("g")) == grid


def test_grid_to_toml_comment_and_refusal(tmp_path: Path) -> None:
    grid = axes_grid(seeds=(0, 1))
    text = grid.to_toml(comment="first line\nsecond line")
    assert text.startswith('# first line\n# second line\nname = "axes"\nrepeats = 2\n')
    assert "[base]" in text and "[vary]" in text
    assert _reload_grid(grid, tmp_path, comment="a comment") == grid
    # a hand-built grid that calls itself an axes grid but is not one has no file that loads back the same
    fake = Grid(
        "fake", (ArchPoint(1, 8, 3), ArchPoint(2, 16, 5)), (0,), "axes", {"depth": 1, "channels": 8, "kernel_size": 3}
    )
    with pytest.raises(ConfigError, match="cannot be written"):
        fake.to_toml()
    mixed = Grid("mixed", (ArchPoint(1, 8, 3, leads="6"), ArchPoint(2, 8, 3)), (0,), "points", None)
    with pytest.raises(ConfigError, match="cannot be written"):
        mixed.to_toml()


@pytest.mark.parametrize(
    "space",
    [
        wide_space(),
        narrow_space(),
        SearchSpace(
            "cpu", IntRange(1, 16, log=True), IntRange(8, 128, log=True), IntRange(3, 33, step=2), batch_size=(32, 64)
        ),
        SearchSpace(
            "odd",
            IntRange(2, 2),
            IntRange(8, 64, step=8),
            IntRange(5, 5, step=2),
            gap=(False,),
            lr=FloatRange(3e-4, 3e-4),
            weight_decay=FloatRange(0, 1e-6),
            dropout=FloatRange(0.1, 0.123456789),
            batch_size=(128,),
        ),
    ],
    ids=lambda s: s.name,
)
def test_space_to_toml_loads_back_equal(space: SearchSpace, tmp_path: Path) -> None:
    path = tmp_path / "other-stem.toml"
    path.write_text(space.to_toml(), encoding="utf-8")
    assert load_space(path) == space


def test_the_demos_grid_files_load_back_as_its_grids(tmp_path: Path) -> None:
    from ecgscale.workflows.demo import PRESETS

    for preset in PRESETS.values():
        path = tmp_path / f"{preset.name}.toml"
        path.write_text(preset.grid_toml(), encoding="utf-8")
        assert load_grid(path) == preset.grid() and preset.grid().kind == "axes"
