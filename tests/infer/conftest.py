"""Fixtures of the inference tests: tiny runs trained on the ``tiny_cache`` fixture and small record folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def _train(cache, out: Path, **model_options):
    from ecgscale.models import ResNet1dConfig
    from ecgscale.train import TrainConfig, train_run

    cfg = ResNet1dConfig(depth=1, channels=8, kernel_size=5, n_classes=len(cache.label_space), **model_options)
    train_run(
        cache, cfg, TrainConfig(epochs=1, batch_size=32, device="cpu", precision="fp32", seed=0), out, progress=False
    )
    return out


@pytest.fixture(scope="module")
def tiny_run(tiny_cache, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GAP run (D=1, C=8, K=5) trained for one epoch on the tiny cache (100 Hz, 5 s windows)."""
    return _train(tiny_cache, tmp_path_factory.mktemp("run") / "gap")


@pytest.fixture(scope="module")
def tiny_run_nogap(tiny_cache, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A no-GAP run (flatten + linear head for exactly 500 samples)."""
    return _train(
        tiny_cache, tmp_path_factory.mktemp("run") / "nogap", gap=False, input_length=tiny_cache.window_length
    )


def _ecg_like(fs: float, seconds: float, *, n_leads: int = 12, seed: int = 0) -> np.ndarray:
    """A plausible multi-lead signal in mV: a 1.2 Hz spike train plus baseline wander and noise, per lead gains."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(fs * seconds)) / fs
    beat = np.exp(-(((t * 1.2) % 1.0 - 0.3) ** 2) / 0.0008)
    gains = rng.uniform(-1.5, 1.5, size=(n_leads, 1))
    wander = 0.2 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 6, size=(n_leads, 1)))
    return (gains * beat + wander + 0.02 * rng.standard_normal((n_leads, t.size))).astype(np.float32)


@pytest.fixture(scope="session")
def ecg_like():
    """``ecg_like(fs, seconds, *, n_leads=12, seed=0) -> float32 (n_leads, n) mV``."""
    return _ecg_like
