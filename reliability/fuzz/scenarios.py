"""Fuzzing as fault-injection scenarios: one per atheris target, ``iterations`` = seconds of fuzzing.

Each scenario replays the committed corpus and crashers first (every one must parse or raise the target's
allowed error), then runs the coverage-guided fuzzer for ``iterations`` seconds with ``seed``. A crash, a hang
(libFuzzer ``-timeout``) or an RSS over the limit is one failure line naming the saved input.
"""

from __future__ import annotations

import logging
import time
import traceback
from functools import partial
from pathlib import Path

from reliability.common import FaultResult, Scenario
from reliability.fuzz.runner import corpus_files, crasher_files, run_atheris
from reliability.fuzz.targets import ALLOWED, TARGETS, run_target

__all__ = ["SCENARIOS", "fuzz_scenario"]

_WHAT = {
    "cinc_header": "CinC 2021 WFDB header parser (`parse_cinc_header_text`)",
    "mat_v4": "`.mat` (MATLAB v4) reader under a generated header, header/file disagreements, 10¹² samples",
    "wfdb_record": "wfdb `.hea` + `.dat` reader (`read_wfdb_record`, PTB-XL path): fuzzed header or `.dat`",
    "tianchi_signal": "Tianchi text signal reader (`read_tianchi`)",
    "tianchi_labels": "Tianchi label file and class list readers",
    "ptbxl_scp_codes": "PTB-XL `scp_codes` parser and `ptbxl_database.csv` rows",
}


def fuzz_scenario(workdir: Path, *, iterations: int, seed: int, target: str) -> FaultResult:
    """Replay the committed inputs of ``target``, then fuzz it for ``iterations`` seconds."""
    allowed = " or ".join(t.__name__ for t in ALLOWED[target])
    result = FaultResult(
        area="fuzzing",
        fault=f"atheris: {_WHAT[target]}",
        how_often="",
        checked=f"each input parses to a valid result (invariants checked) or raises {allowed}; "
        "no other exception, no hang (10 s per input), RSS under 2 GB",
        runs=0,
    )
    start = time.monotonic()
    replayed = [*corpus_files(target), *crasher_files(target)]
    logging.disable(logging.WARNING)  # hostile inputs are meant to be refused: their skip warnings are noise here
    try:
        for path in replayed:
            try:
                run_target(target, path.read_bytes())
            except Exception as exc:  # any escape is a violated invariant: record it, go on
                trace = traceback.format_exc(limit=-2)
                result.failures.append(f"{path.name}: {type(exc).__name__}: {exc} :: {trace}")
    finally:
        logging.disable(logging.NOTSET)
    run = run_atheris(target, int(iterations), Path(workdir) / target, seed=seed)
    result.runs = run.executions + len(replayed)
    rate = run.executions / max(iterations, 1)
    result.how_often = (
        f"atheris, {int(iterations)} s, {run.executions:,} inputs ({rate:,.0f}/s, seed {seed}, "
        f"{run.coverage} edges) + {len(replayed)} committed inputs replayed"
    )
    if run.crashed:
        result.failures.append(run.describe_crash(tail_chars=1500).replace("\n", " | "))
    if run.executions == 0:
        result.failures.append(f"the fuzzer ran no inputs (exit {run.returncode}); see {run.log}")
    result.seconds = time.monotonic() - start
    return result


def _named(target: str) -> Scenario:
    fn = partial(fuzz_scenario, target=target)
    fn.__name__ = f"fuzz_{target}"  # type: ignore[attr-defined]
    fn.__doc__ = f"Fuzz {_WHAT[target]}."
    return fn


#: One scenario per atheris target, in the order of the docs table.
SCENARIOS: list[Scenario] = [_named(t) for t in TARGETS]
