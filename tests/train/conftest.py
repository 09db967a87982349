"""Fixtures of the trainer tests: planted-signal data (classes are sines on known leads) and tiny models."""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def planted(load_test_module):
    """The helper module: ``planted(n, seed)``, ``space()``, ``tiny_resnet()``."""
    return load_test_module("ecgscale_tests_planted", _HERE / "_planted.py")


@pytest.fixture(scope="session")
def planted_data(planted):
    """``(train, val)`` pairs of planted arrays: 256 and 128 records of 12 x 500 samples, 4 classes."""
    return planted.planted(256, 1), planted.planted(128, 2)


@pytest.fixture(scope="session")
def worker_script() -> Path:
    return _HERE / "_worker.py"


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models train faster on one thread, and a busy 2-core CI machine does not stall two spinning OpenMP
    threads; subprocesses of these tests get OMP_NUM_THREADS=1 so their arithmetic matches this process's."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
