"""Run every fault-injection scenario with many iterations and write the table of docs/reliability.md.

    python -m reliability.run                      # the full run behind the docs table (about an hour on 2 cores)
    python -m reliability.run --only fuzz --fuzz-seconds 30 --no-write
    python -m reliability.run --only kill --scenario train_killed --kills 5

The tests run the same scenarios with a few iterations each; this is the long run whose figures the docs quote.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reliability.common import FaultResult, markdown_table, write_jsonl

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "reliability.md"
START, END = "<!-- reliability-table:start -->", "<!-- reliability-table:end -->"
# module -> (CLI option naming its iteration count, default for the docs run)
MODULES = {
    "fuzz": ("fuzz_seconds", 120),
    "kill": ("kills", 20),
    "faults": ("repeats", 5),
}


def _git_sha() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def run(
    only: list[str], iterations: dict[str, int], seed: int, workdir: Path, pick: list[str] | None = None
) -> list[FaultResult]:
    results: list[FaultResult] = []
    for name in only:
        module = importlib.import_module(f"reliability.{name}.scenarios")
        for scenario in module.SCENARIOS:
            if pick and scenario.__name__ not in pick:
                continue
            folder = workdir / f"{name}-{scenario.__name__}"
            folder.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            print(f"[{name}] {scenario.__name__} x{iterations[name]} ...", flush=True)
            try:
                result = scenario(folder, iterations=iterations[name], seed=seed)
            except Exception as exc:  # a broken set-up is a failed row, not a lost run
                result = FaultResult(
                    area=name,
                    fault=scenario.__name__,
                    how_often="set-up failed",
                    checked="-",
                    runs=0,
                    failures=[f"{type(exc).__name__}: {exc}"],
                )
            result.seconds = result.seconds or time.perf_counter() - t0
            verdict = "pass" if result.passed else "FAIL"
            print(f"    {verdict} in {result.seconds:.0f} s: {result.summary()}", flush=True)
            results.append(result)
    return results


def write_doc(results: list[FaultResult], header: str, path: Path = DOC) -> None:
    """Replace the table between the markers of docs/reliability.md (the prose around it is hand-written)."""
    text = path.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise SystemExit(f"{path}: markers {START} / {END} not found")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{START}\n{header}\n\n{markdown_table(results)}{END}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", choices=sorted(MODULES), default=list(MODULES))
    for option, default in MODULES.values():
        ap.add_argument(f"--{option.replace('_', '-')}", type=int, default=default)
    ap.add_argument("--scenario", nargs="+", default=None, help="run only these scenarios (by function name)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=None, help="kept for inspection (default: a temp dir, removed)")
    ap.add_argument("--no-write", action="store_true", help="print the table, leave docs/reliability.md as it is")
    ap.add_argument("--jsonl", type=Path, default=None, help="also append one JSON line per scenario here")
    args = ap.parse_args(argv)
    iterations = {name: getattr(args, option) for name, (option, _) in MODULES.items()}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ecgscale-reliability-") as tmp:
        results = run(args.only, iterations, args.seed, args.workdir or Path(tmp), args.scenario)
    minutes = (time.perf_counter() - t0) / 60
    header = (
        f"Run `python -m reliability.run` on {dt.date.today().isoformat()} at commit {_git_sha()}: "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, seed {args.seed}, "
        f"{minutes:.0f} min in all."
    )
    print(markdown_table(results))
    if args.jsonl:
        write_jsonl(results, args.jsonl)
    if not args.no_write and set(args.only) == set(MODULES) and not args.scenario:
        write_doc(results, header)
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
