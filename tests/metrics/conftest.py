"""Fixtures of the metric tests: ``official``, an independent loop statement of the CinC 2021 scores."""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def official(load_test_module):
    """The module ``_official.py``: ``challenge_metric``, ``challenge_metric_of_codes``, ``auc``, ``f_measure``,
    ``accuracy``, ``official_weights``, ``OFFICIAL_WEIGHTS_SHA256`` (it imports nothing from ecgscale)."""
    return load_test_module("ecgscale_tests_official_scores", _HERE / "_official.py")
