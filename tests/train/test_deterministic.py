"""The trainer's deterministic mode sets torch's flag without importing torch's compiler (2-6 s at start-up)."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys, torch
from ecgscale.train.trainer import set_deterministic, _deterministic
assert not torch.are_deterministic_algorithms_enabled()
with _deterministic(True):
    assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
assert not torch.are_deterministic_algorithms_enabled() and not torch.is_deterministic_algorithms_warn_only_enabled()
set_deterministic(True)
assert torch.are_deterministic_algorithms_enabled() and not torch.is_deterministic_algorithms_warn_only_enabled()
assert "torch._inductor.config" not in sys.modules, "the compiler's config was imported"
import torch._inductor.config as inductor  # once imported elsewhere, its flag follows
set_deterministic(False)
assert not torch.are_deterministic_algorithms_enabled() and inductor.deterministic is False
set_deterministic(True, warn_only=True)
assert inductor.deterministic is True
print("ok")
"""


def test_deterministic_mode_without_importing_the_compiler() -> None:
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
