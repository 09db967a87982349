"""Building a TrainRunner pays torch's lazy imports (``torch._dynamo``, which the first optimiser imports, and the
compiler config the deterministic flag imports), so a worker's first trial is not seconds slower than the rest and
its training time is training; and it reads a small cache's signals into RAM, so forked workers share them."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

CHECK = """
import sys, pathlib, numpy, torch
torch.set_num_threads(1)
from ecgscale.data.cache import open_cache
from ecgscale.study.grids import ArchPoint
from ecgscale.study.objective import TrainRunner, TrialConfig
runner = TrainRunner(open_cache(sys.argv[1]), min_source_records=1)
print("signals in RAM:", not isinstance(runner.cache.signals, numpy.memmap))
before = set(sys.modules)
runner(TrialConfig(ArchPoint(1, 8, 3, True), 0, train={"epochs": 1}), pathlib.Path(sys.argv[2]), lambda e, v: None)
late = sorted(m for m in set(sys.modules) - before if m.startswith(("torch._dynamo", "torch._inductor")))
print("late:", late)
"""


def test_first_trial_imports_no_torch_compiler_module(tiny_cache, tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHECK, str(tiny_cache.path), str(tmp_path / "t")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-2:] == ["signals in RAM: True", "late: []"]
