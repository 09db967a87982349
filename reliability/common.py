"""What a fault-injection scenario reports, and the Markdown table docs/reliability.md is built from."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FaultResult", "Scenario", "ecgscale_cmd", "markdown_table", "run_ecgscale"]


@dataclass(slots=True)
class FaultResult:
    """One scenario's outcome: what was injected, how often, what was checked after each injection."""

    area: str  # "fuzzing", "crash/resume", "concurrency", "disk", "safe loading"
    fault: str  # the fault injected, e.g. "kill -9 during `ecgscale prepare`"
    how_often: str  # e.g. "20 kills at seeded uniform times over the run" or "61,000 inputs in 60 s"
    checked: str  # the invariant checked after each injection
    runs: int  # injections performed
    failures: list[str] = field(default_factory=list)  # one line per violated check (empty: passed)
    seconds: float = 0.0
    notes: str = ""  # anything a reader of the table needs (e.g. a fallback used)

    @property
    def passed(self) -> bool:
        return not self.failures and self.runs > 0

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "passed": self.passed}

    def summary(self) -> str:
        """One line for an assertion message: the failures, or what passed."""
        head = f"{self.fault}: {self.runs} run(s), {len(self.failures)} failure(s)"
        return head + ("" if not self.failures else "\n  " + "\n  ".join(self.failures[:20]))


# A scenario: (workdir, *, iterations, seed) -> FaultResult. workdir is an empty folder it may fill.
Scenario = Callable[..., FaultResult]


def ecgscale_cmd(*args: str | os.PathLike[str]) -> list[str]:
    """The CLI as a child process of this interpreter (so the venv's ecgscale is the one tested)."""
    return [sys.executable, "-m", "ecgscale", *map(str, args)]


def run_ecgscale(
    *args: str | os.PathLike[str], timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ecgscale_cmd(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(results: Sequence[FaultResult]) -> str:
    """The table of docs/reliability.md: one row per scenario."""
    lines = [
        "| area | fault injected | how often | what was checked | result |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        verdict = f"pass ({r.runs}/{r.runs})" if r.passed else f"**FAIL** ({len(r.failures)} of {r.runs})"
        if r.notes:
            verdict += f"; {r.notes}"
        lines.append(
            f"| {_cell(r.area)} | {_cell(r.fault)} | {_cell(r.how_often)} | {_cell(r.checked)} | {_cell(verdict)} |"
        )
    return "\n".join(lines) + "\n"


def write_jsonl(results: Sequence[FaultResult], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        for r in results:
            fh.write(json.dumps(r.to_dict()) + "\n")
