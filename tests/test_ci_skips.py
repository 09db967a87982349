"""The CI skip rule of ``tests/conftest.py``: outside CI a missing server skips; under CI it fails, and any
other skip not on the allow-list turns the session's exit status into a failure.

Each case runs a throw-away pytest session in a subprocess whose conftest loads the rule from this repository's
``tests/conftest.py`` (about a second each, no torch import).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT_CONFTEST = Path(__file__).resolve().parent / "conftest.py"

CONFTEST = f"""
import importlib.util

_spec = importlib.util.spec_from_file_location("ecgscale_root_conftest", {str(ROOT_CONFTEST)!r})
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
pytest_configure = _mod.pytest_configure
require_or_skip = _mod.require_or_skip_fixture
"""

TESTS = """
import pytest

def test_passes():
    assert True

def test_needs_a_server(require_or_skip):
    require_or_skip("no PostgreSQL binaries here")

def test_plain_skip():
    pytest.skip("real ECG data not found at /nowhere/shared/realdata")

@pytest.mark.parametrize("x", [])
def test_empty_parametrisation(x):
    pass
"""


def _session(tmp_path: Path, *, ci: str | None, allow: str = "", select: str = "") -> subprocess.CompletedProcess:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_x.py").write_text(TESTS)
    (tmp_path / "allow.txt").write_text(allow)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    env["ECGSCALE_EXPECTED_SKIPS"] = str(tmp_path / "allow.txt")
    if ci is not None:
        env["CI"] = ci
    args = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(tmp_path / "test_x.py")]
    if select:
        args += ["-k", select]
    return subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_outside_ci_everything_may_skip(tmp_path: Path) -> None:
    for ci in (None, "false"):
        proc = _session(tmp_path, ci=ci)
        assert proc.returncode == 0, (ci, proc.stdout)
        assert "1 passed, 3 skipped" in proc.stdout, (ci, proc.stdout)


def test_under_ci_a_missing_server_fails(tmp_path: Path) -> None:
    proc = _session(tmp_path, ci="1", select="needs_a_server")
    assert proc.returncode == 1, proc.stdout
    assert "1 failed" in proc.stdout and "no PostgreSQL binaries here" in proc.stdout
    assert "this must not skip in CI" in proc.stdout


def test_under_ci_an_unlisted_skip_fails_the_session(tmp_path: Path) -> None:
    proc = _session(tmp_path, ci="true", select="passes or plain_skip or empty")
    assert proc.returncode == 1, proc.stdout
    assert "1 passed, 2 skipped" in proc.stdout  # no test failed: the session did
    assert "unexpected skips (CI is set)" in proc.stdout
    assert "test_x.py::test_plain_skip: real ECG data not found at /nowhere/shared/realdata" in proc.stdout
    assert "test_x.py::test_empty_parametrisation" in proc.stdout, proc.stdout
    assert "2 skip(s) not allowed" in proc.stdout


def test_under_ci_listed_skips_pass(tmp_path: Path) -> None:
    allow = (
        "# comment lines and blank lines are ignored\n\n"
        "*::test_plain_skip: real ECG data not found*  # why: a pattern on node id and reason\n"
        "*test_empty_parametrisation*got empty parameter set*  # why: an empty list here\n"
    )
    proc = _session(tmp_path, ci="true", allow=allow, select="passes or plain_skip or empty")
    assert proc.returncode == 0, proc.stdout
    assert "unexpected skips" not in proc.stdout
    # a pattern matches the reason too: the same test skipping for another reason is still unexpected
    proc = _session(tmp_path, ci="true", allow="*::test_plain_skip: something else*\n*empty*\n", select="plain_skip")
    assert proc.returncode == 1 and "1 skip(s) not allowed" in proc.stdout, proc.stdout
