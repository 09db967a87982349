"""Planted-signal data and tiny models for the trainer tests (also imported by the subprocess workers)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

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


class NoBNNet(nn.Module):
    """A small conv net without BatchNorm: data-parallel training of it must equal single-process training."""

    def __init__(self, seed: int = 0, k: int = K):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.conv1 = nn.Conv1d(12, 8, 7, padding=3)
        self.conv2 = nn.Conv1d(8, 8, 7, padding=3, stride=2)
        self.head = nn.Linear(8, k)
        for p in self.parameters():
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=gen) * (1.0 / np.sqrt(max(p.shape[-1], 1) * 4)))

    def forward(self, x):
        h = torch.relu(self.conv1(x))
        h = torch.relu(self.conv2(h))
        return self.head(h.mean(-1))
