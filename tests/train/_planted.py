"""Planted-signal data and tiny models for the trainer tests (also imported by the subprocess workers)."""

from __future__ import annotations

import numpy as np

from ecgscale.data.labels import LabelClass, LabelSpace

K = 4
FS = 100
L = 500  # 100 Hz x 5 s


def planted(n: int, seed: int, *, k: int = K, length: int = L, amplitude: float = 1.5):
    """Class j adds a sine of (3 + 4j) Hz to leads 3j..3j+2 on top of unit white noise; ~30% prevalence."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, k)) < 0.3).astype(np.float32)
    t = np.arange(length) / FS
    x = rng.normal(0.0, 1.0, (n, 12, length)).astype(np.float32)
    for j in range(k):
        wave = (amplitude * np.sin(2 * np.pi * (3 + 4 * j) * t + rng.uniform(0, 2 * np.pi, (n, 1)))).astype(np.float32)
        x[:, 3 * j : 3 * j + 3, :] += (y[:, j : j + 1] * wave)[:, None, :]
    return x, y


def space(k: int = K) -> LabelSpace:
    return LabelSpace(
        "planted", [LabelClass(f"c{j}", (f"c{j}",), f"C{j}", f"planted class {j}", None) for j in range(k)]
    )


def tiny_resnet(seed: int = 0, **options):
    from ecgscale.models import build_resnet1d

    return build_resnet1d(2, 8, 5, n_classes=K, generator=seed, **options)
