"""Regression grid for the channels-last (``layout="cl"``) crash of issue 11, and cl-vs-ncl agreement.

The crash: oneDNN's channels-last kernel for a strided 1x1 convolution (the downsampling shortcut) corrupted the
heap in training when the block had fewer input channels than one SIMD register holds (C < 8 on AVX2, C < 16 on
AVX-512): SIGSEGV, glibc aborts, hangs. ``_Conv1d`` now runs that convolution as subsample + unit-stride 1x1.

Every case runs in a child process (``_layout_worker.py``) with glibc's heap checks on, so corruption shows as
a signal or a non-zero exit instead of damaging the test process. Cases run in chunks for speed; when a chunk
dies, each of its cases is re-run alone so the failure names the exact configuration.

Agreement, per tensor (outputs, all parameter gradients, input gradients): each layout is compared with a
float64 ``ncl`` run of the same weights (relative L2 error). Outputs are well conditioned: the ``cl`` error must
stay within 2x the ``ncl`` error or a floor (1e-5 fp32; 2e-2 under bf16 autocast, whose 8-bit mantissa alone
gives ~4e-3 in both layouts). Gradients are not: a ReLU whose input lies within float32 rounding of zero flips
its mask, and the fixed loss weighting makes the batch sums behind each gradient cancel, so a rounding-level
forward difference becomes a percent-level gradient difference (measured up to 3e-2 in ``cl`` and 1e-2 in
``ncl`` in fp32, 0.35 in both under bf16). Their bound is therefore absolute, 0.1 in fp32 and 1.0 in bf16: far
above that noise, far below what a wrong computation gives (a shortcut that reads the wrong samples or drops
its gradient is off by O(1)).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("_layout_worker.py")
DEPTHS = range(1, 9)
SMALL_CHANNELS = (4, 5, 6, 7, 8, 12, 16, 20, 24, 32)
BATCHES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 33)
KERNELS = (3, 5, 7, 9, 15, 25, 33)
LENGTHS = (500, 1000, 1250, 2500)
CHUNK = 40
TIMEOUT_S = 900
OUT_FLOOR = {"fp32": 1e-5, "bf16": 2e-2}
GRAD_BOUND = {"fp32": 0.1, "bf16": 1.0}


def _cases() -> list[dict]:
    """Depth x small widths x batch sizes in full (where the crash lived); the other factors rotate over them.

    The rotation uses co-prime strides so every kernel, length, precision, mode and input-gradient setting
    meets every depth and width. bf16 runs on small inputs only: this CPU emulates bf16 (several times slower).
    """
    cases = []
    for i, (depth, channels, batch) in enumerate(itertools.product(DEPTHS, SMALL_CHANNELS, BATCHES)):
        bf16 = i % 5 == 0
        cases.append(
            {
                "depth": depth,
                "channels": channels,
                "kernel": KERNELS[(i * 3 + depth) % len(KERNELS)],
                "batch": batch,
                "length": 500 if bf16 else LENGTHS[(i * 7 + channels) % len(LENGTHS)],
                "precision": "bf16" if bf16 else "fp32",
                "mode": "eval" if i % 3 == 2 else "train",
                "input_grad": i % 2 == 1,
                "seed": i,
            }
        )
    # The input-gradient shape reported with the crash, longer inputs, and a few wide models.
    for j, (batch, grad) in enumerate(itertools.product((3, 4, 33), (True, False))):
        cases.append(
            dict(
                depth=4,
                channels=8,
                kernel=5,
                batch=batch,
                length=6000,
                precision="fp32",
                mode="train",
                input_grad=grad,
                seed=10_000 + j,
            )
        )
    for j, (channels, depth) in enumerate(itertools.product((64, 128, 256), (1, 3, 5, 8))):
        cases.append(
            dict(
                depth=depth,
                channels=channels,
                kernel=9,
                batch=3 if j % 2 else 2,
                length=1000,
                precision="bf16" if j % 3 == 0 else "fp32",
                mode="train",
                input_grad=j % 2 == 0,
                seed=20_000 + j,
            )
        )
    return cases


def _run_chunk(cases: list[dict], tmp: Path, tag: str) -> tuple[list[dict], int, str]:
    path = tmp / f"cases-{tag}.json"
    path.write_text(json.dumps(cases))
    env = {**os.environ, "MALLOC_CHECK_": "3", "MALLOC_PERTURB_": "165", "OMP_NUM_THREADS": "1"}
    try:
        proc = subprocess.run(
            [sys.executable, str(WORKER), str(path)], capture_output=True, text=True, env=env, timeout=TIMEOUT_S
        )
        rc, err = proc.returncode, proc.stderr
        out = proc.stdout
    except subprocess.TimeoutExpired as exc:  # a hang is one of the ways the corruption showed
        rc, err = -signal.SIGKILL, f"timed out after {TIMEOUT_S} s"
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")], rc, err


def _describe(rc: int) -> str:
    return f"signal {signal.Signals(-rc).name}" if rc < 0 else f"exit status {rc}"


def _tag(case: dict) -> str:
    return (
        "D{depth}-C{channels}-K{kernel} batch {batch} length {length} {precision} {mode} input_grad={input_grad}"
    ).format(**case)


def test_no_case_crashes_and_layouts_agree(tmp_path: Path) -> None:
    cases = _cases()
    chunks = [cases[i : i + CHUNK] for i in range(0, len(cases), CHUNK)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(lambda ic: _run_chunk(ic[1], tmp_path, str(ic[0])), enumerate(chunks)))

    results, crashes = [], []
    for chunk, (rows, rc, _err) in zip(chunks, outcomes, strict=True):
        if rc == 0 and len(rows) == len(chunk):
            results.extend(rows)
            continue
        for k, case in enumerate(chunk):  # name the case: re-run each alone
            alone, rc1, err1 = _run_chunk([case], tmp_path, f"alone-{case['seed']}-{k}")
            if rc1 != 0 or len(alone) != 1:
                crashes.append(f"{_tag(case)}: {_describe(rc1)}; {err1.strip()[-300:]}")
            else:
                results.extend(alone)
    assert not crashes, "ResNet1d cases that killed their process:\n" + "\n".join(crashes)

    ran = [r for r in results if r["status"] == "ran"]
    invalid = [r for r in results if r["status"] == "invalid"]
    # Invalid = a kernel wider than the deepest feature map; only a few of the rotated cases may be that.
    assert len(ran) >= 0.9 * len(cases), f"only {len(ran)} of {len(cases)} cases ran; e.g. {invalid[:2]}"
    assert {r["precision"] for r in ran} == {"fp32", "bf16"}
    assert {(r["mode"], r["input_grad"]) for r in ran} == {
        ("train", True),
        ("train", False),
        ("eval", True),
        ("eval", False),
    }

    disagreements = []
    for r in ran:
        if not r["finite"]:
            disagreements.append(f"{_tag(r)}: non-finite values")
            continue
        for key, cl_error in r["cl_error"].items():
            ncl_error = r["ncl_error"][key]
            precision = r["precision"]
            limit = max(2 * ncl_error, OUT_FLOOR[precision]) if key == "out" else GRAD_BOUND[precision]
            if cl_error > limit:
                disagreements.append(
                    f"{_tag(r)} {key}: cl error {cl_error:.2e} vs ncl {ncl_error:.2e} (limit {limit:.2e})"
                )
    assert not disagreements, "cl and ncl layouts disagree:\n" + "\n".join(disagreements)


def test_worker_reports_a_crash_as_a_crash(tmp_path: Path) -> None:
    """The harness must see a dying child: a case that kills its process is not a pass."""
    script = tmp_path / "die.py"
    script.write_text("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True)
    assert proc.returncode == -signal.SIGSEGV
    assert _describe(proc.returncode) == "signal SIGSEGV"


@pytest.mark.parametrize("channels", [4, 6])
def test_strided_shortcut_is_subsample_then_unit_stride(channels: int) -> None:
    """The rewritten shortcut computes exactly the strided 1x1 convolution (same weights, same gradients)."""
    import torch
    import torch.nn.functional as F

    from ecgscale.models.resnet1d import _Conv1d

    conv = _Conv1d(channels, 16, 1, stride=2, bias=False)
    x = torch.randn(3, channels, 501, dtype=torch.float64, requires_grad=True)
    conv = conv.double()
    y4 = conv(x.unsqueeze(2).contiguous(memory_format=torch.channels_last)).squeeze(2)
    y3 = F.conv1d(x, conv.weight, None, 2)
    assert y4.shape == y3.shape == (3, 16, 251)
    torch.testing.assert_close(y4, y3, rtol=0, atol=1e-12)
    (g4,) = torch.autograd.grad(y4.sum(), x)
    (g3,) = torch.autograd.grad(y3.sum(), x)
    torch.testing.assert_close(g4, g3, rtol=0, atol=1e-12)
