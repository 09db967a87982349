"""Run one atheris target as a child process for a bounded time and read what libFuzzer reports.

Shared by the fault scenarios (``scenarios.py``) and the CI test (``tests/reliability/test_fuzz_atheris.py``):
the committed corpus and crashers are copied to a scratch folder first, so a run never writes into the repository.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from reliability.fuzz.targets import scratch_base

__all__ = ["REPO_ROOT", "AtherisRun", "corpus_files", "crasher_files", "run_atheris"]

REPO_ROOT = Path(__file__).resolve().parents[2]
_FUZZ_DIR = Path(__file__).resolve().parent

_DONE_RE = re.compile(r"^Done (\d+) runs in (\d+) second", re.MULTILINE)
_EXECS_RE = re.compile(r"stat::number_of_executed_units:\s*(\d+)")
_ARTIFACT_RE = re.compile(r"Test unit written to (\S+)")
_COV_RE = re.compile(r"#\d+\s+\w+\s+cov: (\d+) ft: (\d+)")


@dataclass(frozen=True, slots=True)
class AtherisRun:
    """What one bounded fuzzing run did: executions, coverage, and the crasher if it found one."""

    target: str
    seconds: float
    returncode: int
    executions: int
    coverage: int  # libFuzzer's last "cov:" figure (edges reached)
    artifact: Path | None  # crash-/timeout-/oom- input written by libFuzzer
    log: Path

    @property
    def crashed(self) -> bool:
        return self.returncode != 0 or self.artifact is not None

    def describe_crash(self, *, tail_chars: int = 6000) -> str:
        """Everything a developer needs to reproduce: the input's path, size, hex head, and the traceback."""
        lines = [f"atheris target {self.target!r} crashed (exit {self.returncode}) after {self.executions} inputs"]
        if self.artifact is not None and self.artifact.is_file():
            data = self.artifact.read_bytes()
            lines += [
                f"input: {self.artifact} ({len(data)} bytes)",
                f"hex head: {data[:64].hex(' ')}",
                f"keep it: copy it to reliability/fuzz/crashers/{self.target}/ with a one-line .txt note beside it "
                "saying what it broke, fix the reader, and test_fuzz_regressions.py replays it from then on",
            ]
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.is_file() else ""
        lines += ["--- fuzzer output (tail) ---", text[-tail_chars:]]
        return "\n".join(lines)


def corpus_files(target: str) -> list[Path]:
    """The committed seed inputs of a target."""
    folder = _FUZZ_DIR / "corpus" / target
    return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


def crasher_files(target: str) -> list[Path]:
    """The committed regression inputs of a target (each has a ``<input>.txt`` note beside it)."""
    folder = _FUZZ_DIR / "crashers" / target
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.iterdir() if p.is_file() and not (p.suffix == ".txt" and p.with_suffix("").exists())
    )


def _copy_all(files: Iterable[Path], dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copyfile(f, dest / f.name)


@contextlib.contextmanager
def _removed(folder: str) -> Iterator[None]:
    try:
        yield
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_atheris(
    target: str,
    seconds: int,
    workdir: Path,
    *,
    seed: int = 1,
    rss_limit_mb: int = 2048,
    timeout_s: int = 10,
    max_len: int = 8192,
    extra_args: Iterable[str] = (),
) -> AtherisRun:
    """Fuzz ``target`` for ``seconds`` from a scratch copy of its corpus and crashers under ``workdir``."""
    seconds = max(1, int(seconds))  # libFuzzer reads -max_total_time=0 as "no limit"
    workdir = Path(workdir)
    corpus = workdir / "corpus"
    _copy_all([*corpus_files(target), *crasher_files(target)], corpus)
    artifacts = workdir / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    log = workdir / "fuzz.log"
    cmd = [
        sys.executable,
        "-m",
        "reliability.fuzz.atheris_main",
        target,
        f"-max_total_time={int(seconds)}",
        f"-seed={int(seed)}",
        f"-rss_limit_mb={int(rss_limit_mb)}",
        f"-timeout={int(timeout_s)}",
        f"-max_len={int(max_len)}",
        f"-artifact_prefix={artifacts}/",
        "-print_final_stats=1",
        *extra_args,
        str(corpus),
    ]
    scratch = tempfile.mkdtemp(prefix="ecgscale-fuzz-run-", dir=scratch_base())
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        "ECGSCALE_FUZZ_SCRATCH": scratch,
    }
    with open(log, "wb") as fh, _removed(scratch):
        # The outer timeout only guards against a fuzzer that ignores -max_total_time (a hang inside one input
        # is libFuzzer's -timeout, which writes the input as a timeout- artifact and fails the run).
        proc = subprocess.run(
            cmd,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            timeout=seconds + 10 * timeout_s + 120,
            check=False,
        )
    text = log.read_text(encoding="utf-8", errors="replace")
    execs = _EXECS_RE.search(text) or _DONE_RE.search(text)
    covs = _COV_RE.findall(text)
    found = _ARTIFACT_RE.findall(text)
    artifact = Path(found[-1]) if found else None
    if artifact is None:
        leftovers = sorted(artifacts.iterdir())
        artifact = leftovers[0] if leftovers else None
    return AtherisRun(
        target=target,
        seconds=float(seconds),
        returncode=proc.returncode,
        executions=int(execs.group(1)) if execs else 0,
        coverage=int(covs[-1][0]) if covs else 0,
        artifact=artifact,
        log=log,
    )
