"""Shared fixtures: small generated data sets, built once per test session (seeded, deterministic)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synth_cinc_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small multi-source CinC 2021-format tree from the synthetic benchmark (~120 records)."""
    from ecgscale.synth import generate

    out = tmp_path_factory.mktemp("synth_cinc")
    generate(out, n=120, seed=7, format="cinc2021", progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_cache(synth_cinc_tree: Path, tmp_path_factory: pytest.TempPathFactory):
    """The synthetic tree prepared into a cache at 100 Hz x 5 s windows: enough to train in seconds."""
    from ecgscale.data.cache import build_cache, open_cache
    from ecgscale.data.transforms import PreprocessConfig

    out = tmp_path_factory.mktemp("cache") / "tiny"
    build_cache(
        [synth_cinc_tree],
        out,
        config=PreprocessConfig(fs=100, window_s=5.0, max_store_s=10.0),
        workers=1,
        progress=False,
    )
    return open_cache(out)
