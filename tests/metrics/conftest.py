"""Fixtures of the metric tests: ``official``, an independent loop statement of the CinC 2021 scores."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent


def _load_official():
    name = "ecgscale_tests_official_scores"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _HERE / "_official.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def official():
    """The module ``_official.py``: ``challenge_metric``, ``challenge_metric_of_codes``, ``auc``, ``f_measure``,
    ``accuracy``, ``official_weights``, ``OFFICIAL_WEIGHTS_SHA256`` (it imports nothing from ecgscale)."""
    return _load_official()
