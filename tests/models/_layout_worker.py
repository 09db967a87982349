"""Runs ResNet1d cases in this process and prints one JSON line per case (used by test_layout_crash_grid.py).

Each case builds one model and runs it in the ``cl`` layout, in the ``ncl`` layout (plain ``Conv1d``) and in
float64 ``ncl`` as the reference, from the same weights and BatchNorm state, and reports how far the outputs,
parameter gradients and input gradients of each layout are from the reference.
A heap corruption in either layout kills this process; the parent test sees the signal or exit
status and names the case.

Usage: ``python _layout_worker.py CASES_JSON`` where the file holds a list of case dicts.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import torch

from ecgscale.errors import ConfigError
from ecgscale.models import build_resnet1d


def _run(model: torch.nn.Module, x: torch.Tensor, case: dict, *, reference: bool = False) -> dict[str, torch.Tensor]:
    model.train(case["mode"] == "train")
    x = x.clone().requires_grad_(case["input_grad"])
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=case["precision"] == "bf16" and not reference):
        out = model(x)
    result = {"out": out.detach()}
    if case["mode"] == "train" or case["input_grad"]:
        # A fixed, non-uniform weighting so every logit's gradient matters (sum() would hide a swapped row).
        w = torch.linspace(-1.0, 1.0, out.numel(), dtype=out.dtype).reshape(out.shape)
        (out * w).sum().backward()
        if case["mode"] == "train":
            result["param_grad"] = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        if case["input_grad"]:
            result["input_grad"] = x.grad.detach()
    return {key: value.double() for key, value in result.items()}


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b||: layout-independent scale, 0 for identical tensors."""
    denom = float(b.norm())
    return float((a - b).norm()) / denom if denom > 0 else float((a - b).norm())


def run_case(case: dict) -> dict:
    try:
        model = build_resnet1d(case["depth"], case["channels"], case["kernel"], generator=case["seed"], layout="cl")
        model.validate_input_length(case["length"])
    except ConfigError as exc:  # e.g. a kernel wider than the deepest feature map: not a runnable case
        return {**case, "status": "invalid", "reason": str(exc)}
    twin = copy.deepcopy(model)
    twin.layout = "ncl"
    reference = copy.deepcopy(twin).double()
    gen = torch.Generator().manual_seed(case["seed"])
    x = torch.randn(case["batch"], 12, case["length"], generator=gen)
    ref = _run(reference, x.double(), case, reference=True)
    cl, ncl = _run(model, x, case), _run(twin, x, case)
    finite = all(bool(torch.isfinite(t).all()) for t in (*cl.values(), *ncl.values()))
    return {
        **case,
        "status": "ran",
        "finite": finite,
        "cl_error": {key: _rel(cl[key], ref[key]) for key in ref},
        "ncl_error": {key: _rel(ncl[key], ref[key]) for key in ref},
    }


def main() -> None:
    torch.set_num_threads(1)
    cases = json.loads(Path(sys.argv[1]).read_text())
    for case in cases:
        print(json.dumps(run_case(case)), flush=True)


if __name__ == "__main__":
    main()
