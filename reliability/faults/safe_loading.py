"""Safe loading: no code path deserialises code from a file it did not just write.

- ``dangerous_calls`` scans ``src/`` with ``ast`` (not grep: aliases, keywords and comments are told apart) for
  ``torch.load`` without ``weights_only=True``, pickle/dill/joblib/marshal/shelve loads, ``np.load(...,
  allow_pickle=True)``, ``yaml.load`` without a safe loader, ``eval``/``exec``; ``torch.jit.load`` only where
  ecgscale runs a file it has just exported (``ALLOWED``).
- A crafted pickle whose ``__reduce__`` creates a marker file is planted in a trained run directory under every
  name the loaders read or a user might expect them to read, and handed to every entry point that reads run
  directories (CLI and Python API): the marker must never appear, and a planted file the loader reads must be
  refused with ``CheckpointError`` naming it.
"""

from __future__ import annotations

import ast
import io
import os
import pickle
import random
import shutil
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reliability.common import FaultResult, run_ecgscale
from reliability.faults._setup import CACHE_ARGS, synth_tree

__all__ = ["ALLOWED", "dangerous_calls", "malicious_files_in_run_dir", "source_scan", "torchscript_metadata_inert"]

AREA = "safe loading"
SRC = Path(__file__).resolve().parents[2] / "src" / "ecgscale"
# (file relative to src/ecgscale, enclosing function, call): reviewed exceptions, each with its reason.
ALLOWED = {
    ("infer/export.py", "_run_exported", "torch.jit.load"): "runs the file export_model wrote a moment ago",
}
_PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "joblib", "marshal", "shelve", "cloudpickle"}
_PICKLE_FUNCS = {"load", "loads", "Unpickler", "open"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def _kw(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _problem(call: ast.Call, aliases: dict[str, str]) -> str | None:
    name = _dotted(call.func)
    head, _, rest = name.partition(".")
    name = f"{aliases.get(head, head)}.{rest}" if rest else aliases.get(head, head)
    if name in ("eval", "exec", "builtins.eval", "builtins.exec"):
        return f"{name}()"
    if name == "torch.load" and not _is_true(_kw(call, "weights_only")):
        return "torch.load without weights_only=True"
    if name in ("torch.jit.load", "torch.package.PackageImporter"):
        return f"{name} (TorchScript/package archives can run code)"
    mod, _, func = name.rpartition(".")
    if mod in _PICKLE_MODULES and func in _PICKLE_FUNCS:
        return f"{name} (unpickling runs code)"
    if name in ("pandas.read_pickle", "pd.read_pickle"):
        return f"{name} (unpickling runs code)"
    if name in ("numpy.load", "np.load"):
        flag = _kw(call, "allow_pickle")
        if flag is not None and not (isinstance(flag, ast.Constant) and flag.value is False):
            return f"{name} with allow_pickle not False"
    if name in ("yaml.load", "yaml.load_all"):
        loader = _kw(call, "Loader") or (call.args[1] if len(call.args) > 1 else None)
        if loader is None or not _dotted(loader).split(".")[-1].startswith(("SafeLoader", "CSafeLoader")):
            return f"{name} without a safe Loader"
    if name in ("yaml.unsafe_load", "yaml.full_load", "yaml.unsafe_load_all", "yaml.full_load_all"):
        return f"{name} (constructs arbitrary objects)"
    return None


def _calls_with_owner(tree: ast.AST) -> list[tuple[ast.Call, str]]:
    """Every call with the name of its innermost enclosing function (``<module>`` at top level)."""
    out: list[tuple[ast.Call, str]] = []

    def visit(node: ast.AST, owner: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else owner
            if isinstance(child, ast.Call):
                out.append((child, owner))
            visit(child, inner)

    visit(tree, "<module>")
    return out


def dangerous_calls(root: Path = SRC) -> tuple[list[str], int]:
    """``(findings, files scanned)``: one ``file:line: problem`` per dangerous call not in ``ALLOWED``."""
    findings: list[str] = []
    files = sorted(root.rglob("*.py"))
    for path in files:
        rel = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        aliases: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    aliases[(a.asname or a.name).split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.module:
                for a in node.names:
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        for node, owner in _calls_with_owner(tree):
            problem = _problem(node, aliases)
            if problem is None:
                continue
            call = problem.split(" ")[0].rstrip("()")
            if (rel, owner, call) in ALLOWED:
                continue
            findings.append(f"src/ecgscale/{rel}:{node.lineno}: {problem} (in {owner})")
    return sorted(set(findings)), len(files)


def source_scan(workdir: Path, *, iterations: int, seed: int) -> FaultResult:
    """The static check as a scenario (it injects nothing; ``iterations`` is ignored)."""
    t0 = time.perf_counter()
    findings, n_files = dangerous_calls()
    return FaultResult(
        AREA,
        "unsafe deserialisation or eval/exec anywhere in src/ (ast scan)",
        f"every call in {n_files} source files",
        "no torch.load without weights_only=True, no pickle/dill/joblib/marshal/shelve load, no np.load with "
        "allow_pickle, no unsafe yaml.load, no eval/exec; torch.jit.load only on a file ecgscale just exported",
        n_files,
        findings,
        time.perf_counter() - t0,
    )


class _Payload:
    """Unpickling this creates ``marker`` (the stand-in for any code an attacker would run)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def _malicious_bytes(marker: Path, variant: int) -> bytes:
    """Variant 0-3: raw pickle protocols 2-5; 4: a ``torch.save`` zip whose data.pkl is the payload."""
    if variant < 4:
        return pickle.dumps(_Payload(marker), protocol=2 + variant)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"weight": _Payload(marker)}, protocol=2))
        zf.writestr("archive/version", "3\n")
    return buf.getvalue()


# Names the loaders read (refusal expected), and names beside them a loader might be tempted by (ignored).
READ_NAMES = ("model.safetensors", "last.safetensors")
BESIDE_NAMES = ("model.pt", "model.pth", "model.ckpt", "last.pt", "checkpoint.pt", "pytorch_model.bin")
TRAIN_ARGS = ("-D", "1", "-C", "8", "-K", "3", "--epochs", "1", "--batch-size", "16", "--device", "cpu")


def _trained_run(workdir: Path, seed: int) -> tuple[Path, Path, Path]:
    src = synth_tree(workdir / "src", n=60, seed=seed)
    cache = workdir / "cache"
    run = workdir / "run"
    if not (run / "model.safetensors").exists():
        for args in (
            ("prepare", src, "--out", cache, *CACHE_ARGS),
            ("train", "--cache", cache, "--out", run, *TRAIN_ARGS, "--precision", "fp32", "--no-progress"),
        ):
            done = run_ecgscale(*args, timeout=600)
            if done.returncode != 0:
                raise RuntimeError(f"set-up {args[0]} failed: {done.stderr[-500:]}")
    record = next(src.rglob("*.hea"))
    return cache, run, record


def malicious_files_in_run_dir(workdir: Path, *, iterations: int, seed: int) -> FaultResult:
    """Plant the payload under every name; run every entry point that reads run directories."""
    from ecgscale.errors import CheckpointError, EcgscaleError
    from ecgscale.infer import export_model, predict_paths
    from ecgscale.train.checkpoint import load_resume_state, load_run

    rng = random.Random(seed)
    cache, good, record = _trained_run(workdir, seed)
    result = FaultResult(
        AREA,
        "a crafted pickle (its __reduce__ runs a command) planted in a run directory as the weights, the resume "
        "state, or a .pt/.pth/.ckpt/.bin beside them; also a torch.save'd state dict renamed to .safetensors",
        f"{iterations} payload variants (pickle protocols 2-5, torch.save zip) x {len(READ_NAMES + BESIDE_NAMES)} "
        "names x entry points (CLI evaluate/predict/export/train --resume; load_run, predict_paths, export_model, "
        "load_resume_state)",
        "the marker file the payload would create never appears; a planted file the loader reads is refused "
        "(CLI exit 2 with one line naming it, API CheckpointError naming it); planted files beside are ignored",
        0,
    )
    t0 = time.perf_counter()
    marker = workdir / "PWNED"

    def check(tag: str, fn: Callable[[], Any], planted: Path | None) -> None:
        result.runs += 1
        try:
            fn()
            if planted is not None:
                result.failures.append(f"{tag}: accepted the planted {planted.name}")
        except CheckpointError as exc:
            if planted is None:
                result.failures.append(f"{tag}: refused a good run: {exc}")
            elif str(planted) not in str(exc):
                result.failures.append(f"{tag}: CheckpointError does not name {planted}: {exc}")
        except (EcgscaleError, Exception) as exc:
            result.failures.append(f"{tag}: {type(exc).__name__} instead of CheckpointError: {exc}")
        if marker.exists():
            result.failures.append(f"{tag}: THE PAYLOAD RAN (marker created)")
            marker.unlink()

    def cli(tag: str, args: tuple[Any, ...], planted: Path | None) -> None:
        result.runs += 1
        done = run_ecgscale(*args, timeout=600)
        if planted is None and done.returncode != 0:
            result.failures.append(f"{tag}: a good run failed: {done.stderr.strip()[-300:]!r}")
        if planted is not None and (done.returncode != 2 or str(planted) not in done.stderr):
            result.failures.append(f"{tag}: exit {done.returncode}, stderr {done.stderr.strip()[-300:]!r}")
        if "Traceback" in done.stderr:
            result.failures.append(f"{tag}: traceback on stderr")
        if marker.exists():
            result.failures.append(f"{tag}: THE PAYLOAD RAN (marker created)")
            marker.unlink()

    variants = [rng.randrange(5) for _ in range(iterations)]
    variants[0] = 4 if iterations == 1 else variants[0]  # one run: the torch.save zip (torch.load's format)
    for i, variant in enumerate(variants):
        payload = _malicious_bytes(marker, variant)
        for name in READ_NAMES + BESIDE_NAMES:
            run = workdir / f"run-{i}-{name}"
            shutil.copytree(good, run)
            planted = run / name
            planted.write_bytes(payload)
            reads = name if name in READ_NAMES else None
            weights = planted if reads == "model.safetensors" else None
            resume = planted if reads == "last.safetensors" else None
            tag = f"variant {variant}, {name}"
            check(f"{tag}: load_run", lambda run=run: load_run(run), weights)
            check(f"{tag}: predict_paths", lambda run=run: predict_paths(run, [record]), weights)
            check(
                f"{tag}: export_model",
                lambda run=run: export_model(run, "onnx", run.parent / f"{run.name}.onnx", verify=False),
                weights,
            )
            check(f"{tag}: load_resume_state", lambda run=run: load_resume_state(run / "last.safetensors"), resume)
            # The CLI once, on the file each command reads (every call starts torch: ~4 s).
            if i == 0 and reads == "model.safetensors":
                cli(f"{tag}: ecgscale evaluate", ("evaluate", run, "--n-bootstrap", "0"), weights)
                cli(f"{tag}: ecgscale predict", ("predict", run, record, "--no-progress"), weights)
                out = workdir / f"exp-{i}-{name}.onnx"
                cli(f"{tag}: ecgscale export", ("export", run, "--format", "onnx", "--out", out), weights)
            if i == 0 and reads == "last.safetensors":
                resume_args = ("train", "--cache", cache, "--out", run, *TRAIN_ARGS, "--precision", "fp32", "--resume")
                cli(f"{tag}: ecgscale train --resume", (*resume_args, "--no-progress"), resume)
            shutil.rmtree(run)

    import torch

    renamed = workdir / "run-torchsave-renamed"
    shutil.copytree(good, renamed)
    state = {k: v for k, v in load_run(good).model.state_dict().items()}
    torch.save(state, renamed / "model.safetensors")
    check(
        "torch.save'd state dict as model.safetensors: load_run",
        lambda: load_run(renamed),
        renamed / "model.safetensors",
    )
    result.seconds = time.perf_counter() - t0
    return result


def torchscript_metadata_inert(workdir: Path, *, iterations: int, seed: int) -> FaultResult:
    """``read_export_metadata`` on a crafted TorchScript-like archive reads its metadata and runs nothing."""
    import json

    from ecgscale.errors import CheckpointError
    from ecgscale.infer import read_export_metadata

    marker = workdir / "PWNED"
    result = FaultResult(
        AREA,
        "a crafted .pt archive (pickled payload in data.pkl, code/ entries) given to read_export_metadata",
        f"{iterations} archives (pickle protocols 2-5)",
        "its extra/ metadata are returned, the marker never appears; a non-zip .pt is a CheckpointError",
        0,
    )
    t0 = time.perf_counter()
    for i in range(iterations):
        path = workdir / f"evil{i}.pt"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("evil/data.pkl", pickle.dumps(_Payload(marker), protocol=2 + i % 4))
            zf.writestr("evil/code/__torch__.py", "import os\nos.system('touch PWNED')\n")
            zf.writestr("evil/extra/labels", json.dumps(["AF", "NSR"]))
        result.runs += 1
        try:
            meta = read_export_metadata(path)
            if meta != {"labels": ["AF", "NSR"]}:
                result.failures.append(f"#{i}: metadata {meta!r}")
        except Exception as exc:
            result.failures.append(f"#{i}: {type(exc).__name__}: {exc}")
        if marker.exists():
            result.failures.append(f"#{i}: THE PAYLOAD RAN")
            marker.unlink()
    bad = workdir / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    result.runs += 1
    try:
        read_export_metadata(bad)
        result.failures.append("a broken archive was accepted")
    except CheckpointError as exc:
        if str(bad) not in str(exc):
            result.failures.append(f"CheckpointError does not name the file: {exc}")
    result.seconds = time.perf_counter() - t0
    return result
