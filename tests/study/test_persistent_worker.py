"""One sweep worker process runs trial after trial (the cache opened and torch set up once), yet every trial's
numbers are bit-for-bit those of the same trial run alone in a fresh process: each trial builds its own model,
optimiser and seeded RNG, and nothing a trial leaves behind (global RNG state, the cache's signals read into RAM,
cached costs) changes the next one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

HELPER = Path(__file__).with_name("_persistent_check.py")


def test_trials_in_one_persistent_worker_equal_each_trial_run_alone(tiny_cache, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("ECGSCALE_TEST_DIE", None)
    env.pop("ECGSCALE_ISOLATE", None)
    done = subprocess.run(
        [sys.executable, str(HELPER), str(tiny_cache.path), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    persistent, fresh = got["persistent"], got["fresh"]
    assert len(persistent) == 4 and set(persistent) == set(fresh)
    # one worker process, not the supervising command, trained every trial of the sweep ...
    pids = {p["pid"] for p in persistent.values()}
    assert len(pids) == 1 and got["supervisor"] not in pids
    # ... and the fresh runs each had a process of their own
    assert len({f["pid"] for f in fresh.values()}) == 4 and not pids & {f["pid"] for f in fresh.values()}
    for key, p in persistent.items():
        f = fresh[key]
        assert p["value"] == f["value"], key
        assert p["weights"] == f["weights"], f"{key}: trained weights differ (trial {p['number']} of the worker)"
        assert p["attrs"] == f["attrs"], key  # every stored metric, per label, group and source
    # the trials really differ from each other (a constant outcome would pass the comparison trivially)
    assert len({p["weights"] for p in persistent.values()}) == 4
