"""Coverage-guided fuzzing in CI: every atheris target runs for ``ECGSCALE_FUZZ_SECONDS`` (default 60) seconds.

Two targets at a time (CI has 2 cores), each a child process with a fixed ``-seed``, ``-rss_limit_mb=2048`` and
``-timeout=10`` per input, from a scratch copy of the committed corpus and crashers (CI never writes into the
repository). A crash, a hang or a memory blow-up fails that target's test with the input's path, size, hex head
and the traceback; the message says how to keep it as a regression file.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from reliability.fuzz.runner import AtherisRun, run_atheris
from reliability.fuzz.targets import TARGETS

pytestmark = pytest.mark.fuzz

SEED = 20240607


def _seconds() -> int:
    return int(os.environ.get("ECGSCALE_FUZZ_SECONDS", "60"))


@pytest.fixture(scope="module")
def fuzz_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, AtherisRun]:
    """All targets fuzzed once, two in parallel; each test below reports one target."""
    root = tmp_path_factory.mktemp("atheris")
    seconds = _seconds()

    def one(target: str) -> AtherisRun:
        return run_atheris(target, seconds, root / target, seed=SEED, rss_limit_mb=2048, timeout_s=10)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(TARGETS, pool.map(one, TARGETS), strict=True))


@pytest.mark.parametrize("target", list(TARGETS))
def test_atheris_target(fuzz_runs: dict[str, AtherisRun], target: str) -> None:
    run = fuzz_runs[target]
    assert not run.crashed, run.describe_crash()
    assert run.executions > 0, f"{target}: the fuzzer ran no inputs\n{run.describe_crash()}"
    assert Path(run.log).is_file()


def test_scenario_reports_what_it_ran(tmp_path: Path) -> None:
    """The scenario form (used by ``python -m reliability.run``) replays the committed inputs and counts inputs."""
    from reliability.fuzz.scenarios import SCENARIOS

    scenario = SCENARIOS[0]
    result = scenario(tmp_path, iterations=3, seed=SEED)
    assert result.passed, result.summary()
    assert result.area == "fuzzing" and "inputs" in result.how_often and result.runs > 10
