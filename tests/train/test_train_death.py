"""``ecgscale train`` whose training process dies by a signal: one error line naming the configuration, the signal
and the cache, no traceback, and the shell's exit status for that signal (128 + N).

The death is real: ``ECGSCALE_TEST_DIE=SIGNAL:KEY`` makes the training kill its own process after its first epoch
(``ecgscale.study.isolation.die_if_asked``), inside ``train_run``'s epoch callback.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize(("sig", "words"), [("SIGSEGV", "died: SIGSEGV (signal 11)"), ("SIGKILL", "SIGKILL")])
def test_train_process_death_is_one_error_line_and_a_nonzero_exit(tiny_cache, tmp_path, sig, words) -> None:
    run = tmp_path / "run"
    args = ["train", "--cache", tiny_cache.path, "--depth", "1", "--channels", "8", "--kernel", "3", "--out", run]
    args += ["--epochs", "2", "--batch-size", "16", "--precision", "fp32", "--no-progress"]
    env = {**os.environ, "ECGSCALE_TEST_DIE": f"{sig}:D1-C8-K3-gap", "COLUMNS": "400", "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [sys.executable, "-m", "ecgscale", *map(str, args)], capture_output=True, text=True, timeout=300, env=env
    )
    assert res.returncode == 128 + int(getattr(__import__("signal"), sig)), res.stdout + res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, res.stderr
    line = lines[0]
    assert words in line and "D1-C8-K3 GAP" in line and "batch 16" in line and "precision fp32" in line
    assert f"cache {tiny_cache.path}" in line and str(run) in line
    assert "--resume" in line  # the first epoch's checkpoint is there to continue from
    assert "Traceback" not in res.stderr
    # the run directory is not locked by the dead process: resuming without the fault finishes the run
    env.pop("ECGSCALE_TEST_DIE")
    res = subprocess.run(
        [sys.executable, "-m", "ecgscale", *map(str, args), "--resume"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert res.returncode == 0, res.stdout + res.stderr
