"""Shared fixtures: small generated data sets, built once per test session (seeded, deterministic).

Also the one rule for tests that need something the machine may lack (a PostgreSQL server, headless Chromium,
permission to mount a tmpfs, the real-data folder): outside CI they skip with the reason; under CI (the
environment variable ``CI`` set, as ``.ci/run`` does) nothing may skip unnoticed:

* ``require_or_skip(reason)`` (also a fixture of that name) fails the test under CI and skips it elsewhere;
* every other skip under CI (``pytest.skip`` in a file that does not use the helper, ``importorskip``, an empty
  parametrisation, ...) turns the session's exit status into a failure unless it matches a pattern of
  ``.ci/expected-skips.txt`` (one fnmatch pattern per line against ``NODEID: REASON``, ``#`` starts a comment).
"""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
EXPECTED_SKIPS = REPO_ROOT / ".ci" / "expected-skips.txt"


def in_ci() -> bool:
    """True when the environment variable ``CI`` is set to anything but an empty string, ``0`` or ``false``."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_or_skip(reason: str) -> NoReturn:
    """Skip with ``reason`` on a user's machine; fail with it under CI, where everything needed is installed."""
    if in_ci():
        pytest.fail(f"{reason} [CI is set: this must not skip in CI]", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session", name="require_or_skip")
def require_or_skip_fixture() -> Callable[[str], NoReturn]:
    """``require_or_skip`` for test files that cannot import this conftest (pytest's importlib mode)."""
    return require_or_skip


def load_test_module(name: str, path: Path) -> ModuleType:
    """The helper file ``path`` of the tests (``_planted.py``, ``_official.py``, ...), imported once as ``name``.

    tests/ is not a package here (and a "tests" package from site-packages may shadow it): load by path.
    """
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session", name="load_test_module")
def load_test_module_fixture() -> Callable[[str, Path], ModuleType]:
    """``load_test_module`` for conftests and test files that cannot import this conftest."""
    return load_test_module


def run_ecgscale(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m ecgscale ARGS`` in a child process (wide console, so rich does not wrap the lines tests read)."""
    return subprocess.run(
        [sys.executable, "-m", "ecgscale", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "400", **(env or {})},
        check=False,
    )


@pytest.fixture(scope="session", name="run_ecgscale")
def run_ecgscale_fixture() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_ecgscale`` for test files, which cannot import this conftest."""
    return run_ecgscale


def load_expected_skips(path: Path | None = None) -> list[str]:
    """The allow-list's patterns: one per line, ``#`` to the end of the line is a comment, blank lines ignored.

    ``path`` defaults to ``$ECGSCALE_EXPECTED_SKIPS`` (used by this rule's own test), else ``.ci/expected-skips.txt``.
    """
    path = path or Path(os.environ.get("ECGSCALE_EXPECTED_SKIPS") or EXPECTED_SKIPS)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [p for line in text.splitlines() if (p := line.split("#", 1)[0].strip())]


def unexpected_skips(skips: list[tuple[str, str]], patterns: list[str]) -> list[tuple[str, str]]:
    """The ``(nodeid, reason)`` pairs that no pattern matches (a pattern is matched against ``NODEID: REASON``)."""
    return [(n, r) for n, r in skips if not any(fnmatch.fnmatchcase(f"{n}: {r}", p) for p in patterns)]


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (path, lineno, "Skipped: reason")
        reason = str(longrepr[2])
        return reason.removeprefix("Skipped: ")
    return str(longrepr)


class _SkipGuard:
    """Under CI, collects every skip and fails the session on one the allow-list does not name."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns = patterns
        self.skips: list[tuple[str, str]] = []
        self.unexpected: list[tuple[str, str]] = []

    def _record(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            self.skips.append((report.nodeid, _skip_reason(report)))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._record(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._record(report)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.unexpected = unexpected_skips(self.skips, self.patterns)
        if self.unexpected and exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.unexpected:
            return
        tr = terminalreporter
        tr.section("unexpected skips (CI is set)", sep="=", red=True, bold=True)
        for nodeid, reason in self.unexpected:
            tr.line(f"SKIPPED {nodeid}: {reason}", red=True)
        tr.line(f"{len(self.unexpected)} skip(s) not allowed by .ci/expected-skips.txt: the session fails")


def pytest_configure(config: pytest.Config) -> None:
    if in_ci():
        config.pluginmanager.register(_SkipGuard(load_expected_skips()), "ecgscale-ci-skip-guard")


@pytest.fixture(scope="session")
def synth_cinc_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small multi-source CinC 2021-format tree from the synthetic benchmark (~120 records)."""
    from ecgscale.synth import generate

    out = tmp_path_factory.mktemp("synth_cinc")
    generate(out, n=120, seed=7, format="cinc2021", progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_cache(synth_cinc_tree: Path, tmp_path_factory: pytest.TempPathFactory):
    """The synthetic tree prepared into a cache at 100 Hz x 5 s windows: enough to train in seconds."""
    from ecgscale.data.cache import build_cache, open_cache
    from ecgscale.data.transforms import PreprocessConfig

    out = tmp_path_factory.mktemp("cache") / "tiny"
    build_cache(
        [synth_cinc_tree],
        out,
        config=PreprocessConfig(fs=100, window_s=5.0, max_store_s=10.0),
        workers=1,
        progress=False,
    )
    return open_cache(out)
