"""Fixtures of the synth tests: a seeded pool of generated records (in memory, no files), the delineator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ecgscale.synth import DEFAULT_SOURCES, synth_record


@pytest.fixture(scope="session")
def delineator(load_test_module):
    """The module ``_delineate.py`` (written for these tests): ``delineate(signal, fs)``, ``bandpass(x, fs)``."""
    return load_test_module("ecgscale_synth_test_delineate", Path(__file__).with_name("_delineate.py"))


@pytest.fixture(scope="session")
def record_pool():
    """~400 records from every default source at 250 Hz x 8 s (fast; labels and measurements are rate-free)."""
    rng = np.random.default_rng(20261124)
    pool = []
    for i in range(400):
        profile = DEFAULT_SOURCES[i % len(DEFAULT_SOURCES)]
        pool.append(synth_record(rng, profile, fs=250, duration_s=8.0))
    return pool
