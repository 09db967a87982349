"""Fixtures of the synth tests: a seeded pool of generated records (in memory, no files)."""

from __future__ import annotations

import numpy as np
import pytest

from ecgscale.synth import DEFAULT_SOURCES, synth_record


@pytest.fixture(scope="session")
def record_pool():
    """~400 records from every default source at 250 Hz x 8 s (fast; labels and measurements are rate-free)."""
    rng = np.random.default_rng(20261124)
    pool = []
    for i in range(400):
        profile = DEFAULT_SOURCES[i % len(DEFAULT_SOURCES)]
        pool.append(synth_record(rng, profile, fs=250, duration_s=8.0))
    return pool
