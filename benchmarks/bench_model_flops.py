"""Achieved training GFLOP/s of a large ResNet1d on CPU against this machine's matmul peak, in one run.

    .venv/bin/python benchmarks/bench_model_flops.py [--depth 8 --channels 256 --kernel 9 --batch 32 ...]

Training FLOPs = 3 x forward FLOPs from ``ecgscale.models.cost`` (backward computes the gradient w.r.t. the
activations and w.r.t. the weights, each about one forward). The peak is the best of several large
``torch.matmul`` calls in the same dtype, measured in interleaved rounds with everything else, so the ratio
survives a busy machine better than absolute numbers do (still: run it on an idle machine). Also measured: the
model in both trunk layouts (and ``cl`` with its strided 1x1 shortcuts as one direct oneDNN call, the pre-fix
path of issue 11, to show what the fix costs), one residual convolution alone in four memory layouts (the
kernel ceiling), and a profile of where a training step spends its time.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ecgscale.models import build_resnet1d, cost


def train_step_fn(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, bf16: bool) -> Callable[[], None]:
    def step() -> None:
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        F.binary_cross_entropy_with_logits(logits.float(), y).backward()

    return step


def direct_shortcut_step(step: Callable[[], None]) -> Callable[[], None]:
    """``step`` with the strided 1x1 shortcut run as one strided oneDNN call, as before the issue-11 fix.

    The fix runs it as subsample + unit-stride 1x1 convolution (the direct call corrupts the heap when the block
    has fewer channels than a SIMD register); this variant measures what that costs. Only for C >= 16.
    """
    from ecgscale.models import resnet1d

    fixed = resnet1d._Conv1d.forward

    def direct(self: torch.nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4 and self.kernel_size[0] == 1 and self.stride[0] > 1:
            return F.conv2d(x, self.weight.unsqueeze(2), self.bias, (1, self.stride[0]))
        return fixed(self, x)

    def patched() -> None:
        resnet1d._Conv1d.forward = direct
        try:
            step()
        finally:
            resnet1d._Conv1d.forward = fixed

    return patched


def conv_alone(
    channels: int, kernel: int, length: int, batch: int, bf16: bool, layout: str
) -> tuple[float, Callable[[], None]]:
    """GFLOP and fwd+bwd step of one C->C convolution at the first stage's length, in one memory layout.

    Layouts: ``conv1d`` (N, C, L); ``conv2d(1,K)`` (N, C, 1, L) contiguous; ``conv2d(1,K) CL`` the same
    channels-last (what ResNet1d's default layout runs); ``conv2d(K,1) CL`` (N, C, L, 1) channels-last.
    """
    gen = torch.Generator().manual_seed(0)
    weight = (torch.randn(channels, channels, kernel, generator=gen) * 0.02).requires_grad_(True)
    x = torch.randn(batch, channels, length, generator=gen)
    pad = kernel // 2
    if layout == "conv1d":

        def conv(t: torch.Tensor) -> torch.Tensor:
            return F.conv1d(t, weight, padding=pad)
    elif layout.startswith("conv2d(1,K)"):
        x = x.unsqueeze(2)
        if layout.endswith("CL"):
            x = x.contiguous(memory_format=torch.channels_last)

        def conv(t: torch.Tensor) -> torch.Tensor:
            return F.conv2d(t, weight.unsqueeze(2), padding=(0, pad))
    else:
        x = x.unsqueeze(3).contiguous(memory_format=torch.channels_last)

        def conv(t: torch.Tensor) -> torch.Tensor:
            return F.conv2d(t, weight.unsqueeze(3), padding=(pad, 0))

    x.requires_grad_(True)

    def step() -> None:
        weight.grad = x.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = conv(x)
        out.float().sum().backward()

    return 3 * 2 * batch * channels * channels * kernel * length / 1e9, step


def profile_step(step: Callable[[], None]) -> list[tuple[str, float]]:
    """Share of a training step's CPU time per operator family."""
    from torch.profiler import ProfilerActivity, profile

    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    families = {
        "conv forward": ("mkldnn_convolution",),
        "conv backward": ("convolution_backward",),
        "batch norm": ("batch_norm",),
        "relu/add/dropout": ("threshold", "clamp", "relu", "add", "mul", "dropout", "bernoulli"),
        "copies/casts": ("copy_", "_to_copy"),
        "linear/loss": ("mm", "addmm", "sigmoid", "binary"),
    }
    shares = dict.fromkeys(families, 0.0)
    total = 0.0
    for event in prof.key_averages():
        t = event.self_cpu_time_total
        total += t
        for family, keys in families.items():
            if any(k in event.key for k in keys):
                shares[family] += t
                break
    return [(k, v / total) for k, v in shares.items()] + [("other", 1 - sum(shares.values()) / total)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--kernel", type=int, default=9)
    parser.add_argument("--n-samples", type=int, default=2500)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--reps", type=int, default=3, help="interleaved timed rounds (best is reported)")
    parser.add_argument("--matmul-n", type=int, default=4096)
    parser.add_argument("--no-fp32", action="store_true", help="skip the fp32 reference numbers")
    parser.add_argument("--compile", action="store_true", help="also try torch.compile (slow to compile)")
    args = parser.parse_args()

    torch.manual_seed(0)  # benchmark script, not library code
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"cpu capability {torch.backends.cpu.get_cpu_capability()}"
    )
    fwd = cost(build_resnet1d(args.depth, args.channels, args.kernel, generator=0).config, args.n_samples)
    train_flops = 3 * fwd.flops * args.batch
    print(
        f"model D={args.depth} C={args.channels} K={args.kernel}, input 12 x {args.n_samples}, batch {args.batch}:"
        f" {fwd.params:,} params, forward {fwd.flops / 1e9:.2f} GFLOP/record, "
        f"training step {train_flops / 1e9:.1f} GFLOP"
    )

    x = torch.randn(args.batch, 12, args.n_samples)
    y = (torch.rand(args.batch, 26) > 0.8).float()
    precisions = [("bf16", True)] + ([] if args.no_fp32 else [("fp32", False)])
    gen = torch.Generator().manual_seed(0)
    mats = {
        prec: (
            torch.randn(args.matmul_n, args.matmul_n, generator=gen).to(dtype),
            torch.randn(args.matmul_n, args.matmul_n, generator=gen).to(dtype),
        )
        for prec, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32))
    }
    length = args.n_samples // 2
    # name -> (precision, work in GFLOP, callable); peaks are ordinary entries so they share the rounds
    jobs: dict[str, tuple[str, float, Callable[[], object]]] = {}
    for prec, bf16 in precisions:
        a, b = mats[prec]
        jobs[f"{prec} matmul peak"] = (prec, 2 * args.matmul_n**3 / 1e9, lambda a=a, b=b: torch.matmul(a, b))
        for layout in ("cl", "ncl"):
            model = build_resnet1d(args.depth, args.channels, args.kernel, generator=0, layout=layout)
            jobs[f"{prec} layout={layout}"] = (prec, train_flops / 1e9, train_step_fn(model, x, y, bf16))
        if args.channels >= 16:
            model = build_resnet1d(args.depth, args.channels, args.kernel, generator=0, layout="cl")
            jobs[f"{prec} layout=cl, pre-fix direct strided 1x1"] = (
                prec,
                train_flops / 1e9,
                direct_shortcut_step(train_step_fn(model, x, y, bf16)),
            )
        if args.compile:
            model = torch.compile(build_resnet1d(args.depth, args.channels, args.kernel, generator=0))
            jobs[f"{prec} layout=cl + torch.compile"] = (prec, train_flops / 1e9, train_step_fn(model, x, y, bf16))
        for layout in ("conv1d", "conv2d(1,K)", "conv2d(1,K) CL", "conv2d(K,1) CL"):
            work, fn = conv_alone(args.channels, args.kernel, length, args.batch, bf16, layout)
            jobs[f"{prec} one conv L={length}: {layout}"] = (prec, work, fn)
    for name, (_, _, fn) in jobs.items():  # warm-up (and compilation)
        start = time.perf_counter()
        fn()
        if "compile" in name:
            print(f"  {name}: first call (compilation) took {time.perf_counter() - start:.0f} s")
    # Interleaved rounds, best of each: a neighbour's burst of load hits every variant alike.
    best = dict.fromkeys(jobs, float("inf"))
    for _ in range(args.reps):
        for name, (_, _, fn) in jobs.items():
            for _ in range(3 if "matmul" in name else 1):
                start = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - start)
    results = {name: jobs[name][1] / best[name] for name in jobs}
    peaks = {prec: results[f"{prec} matmul peak"] for prec, _ in precisions}

    print(f"\n{'variant (fwd+bwd; bf16 = autocast)':54s}  {'GFLOP/s':>8s}  {'of matmul peak':>14s}")
    for name, gflops in results.items():
        print(f"{name:54s}  {gflops:8.1f}  {gflops / peaks[jobs[name][0]]:13.0%}")

    top, top_name = max((v, k) for k, v in results.items() if k.startswith("bf16 layout"))
    print(
        f"\nbf16 autocast training, best model variant ({top_name}): {top:.1f} GFLOP/s = "
        f"{top / peaks['bf16']:.0%} of the bf16 matmul peak (issue target >= 70%)"
    )
    model = build_resnet1d(args.depth, args.channels, args.kernel, generator=0, layout="cl")
    print("where a bf16 training step spends its CPU time (layout=cl):")
    for family, share in profile_step(train_step_fn(model, x, y, True)):
        print(f"  {family:20s} {share:6.1%}")


if __name__ == "__main__":
    main()
