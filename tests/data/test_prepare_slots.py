"""Worker processes hand signals back through shared slots (or the pipe when a record does not fit one)."""

from __future__ import annotations

import numpy as np
import pytest

from ecgscale.data.cache import build_cache
from ecgscale.data.cache import pool as cache_pool
from ecgscale.data.transforms import PreprocessConfig
from ecgscale.data.writers import write_cinc2021

CFG = PreprocessConfig(fs=100, window_s=5.0, max_store_s=20.0, bandpass=(0.5, 40.0))


@pytest.fixture()
def records(tmp_path):
    root = tmp_path / "src"
    rng = np.random.default_rng(3)
    for i in range(14):
        seconds = 30 if i % 5 == 0 else 8  # some records longer than max_store_s
        sig = np.sin(np.arange(500 * seconds) / 40.0)[None] * rng.uniform(0.5, 1.5, (12, 1))
        write_cinc2021(
            root,
            f"S{i:04d}",
            (sig + 0.05 * rng.standard_normal(sig.shape)).astype(np.float32),
            500,
            codes=("426783006",),
        )
    return root


@pytest.mark.parametrize("slot_limit", [None, 4096 * 64])  # default slots; slots too small for the long records
def test_workers_write_the_same_cache_as_one_process(records, tmp_path, monkeypatch, slot_limit):
    if slot_limit is not None:
        monkeypatch.setattr(cache_pool, "_SLOTS_MAX_BYTES", slot_limit)
    one = build_cache([records], tmp_path / "one", config=CFG, workers=1, progress=False)
    two = build_cache([records], tmp_path / "two", config=CFG, workers=2, chunksize=1, progress=False)
    assert one.n_records == two.n_records == 14
    for name in ("signals.bin", "offsets.npy", "labels.npy", "manifest.csv"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    assert not (tmp_path / "two" / "slots.scratch").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "src", "two"]
