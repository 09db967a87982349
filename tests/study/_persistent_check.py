"""Run one grid twice in a fresh interpreter and print both as JSON (used by test_persistent_worker.py).

* ``persistent``: ``run_sweep(isolate=True)``: one supervised worker process runs every trial in turn;
* ``fresh``: each trial alone in its own forked child (``call_in_child``), as if no trial had run before it.

Why a separate interpreter: forking after torch has run a parallel region (as earlier tests in a pytest session
may have) can hang the child; here nothing has trained before the forks.

    python tests/study/_persistent_check.py CACHE OUT_DIR
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import torch

torch.set_num_threads(1)

from ecgscale.data.cache import open_cache  # noqa: E402
from ecgscale.study import isolation  # noqa: E402
from ecgscale.study.grids import ArchPoint, Grid  # noqa: E402
from ecgscale.study.objective import ReportFn, TrainRunner, TrialConfig, TrialOutcome, cache_identity  # noqa: E402
from ecgscale.study.results import load_study  # noqa: E402
from ecgscale.study.sweep import SweepSettings, run_sweep  # noqa: E402

GRID = Grid("g", (ArchPoint(1, 8, 3, True), ArchPoint(2, 8, 5, False)), seeds=(0, 1))
TRAIN = {"epochs": 2, "batch_size": 32}
#: What may differ between two runs of the same trial: timings, where it ran, and the attributes only a sweep sets.
VARIABLE = ("train_seconds", "train_cpu_seconds", "run_dir", "trial_dir", "worker")


class PidRunner:
    """The real runner, leaving the pid of the process that trained in the trial's folder."""

    def __init__(self, runner: TrainRunner):
        self.runner = runner

    def __call__(self, config: TrialConfig, trial_dir: Path, report: ReportFn) -> TrialOutcome:
        out = self.runner(config, trial_dir, report)
        (trial_dir / "pid").write_text(str(os.getpid()))
        return out


def weights_digest(run_dir: Path) -> str:
    from safetensors.torch import load_file

    tensors = load_file(str(run_dir / "model.safetensors"))
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def stable(attrs: dict) -> dict:
    return json.loads(json.dumps({k: v for k, v in attrs.items() if k not in VARIABLE}))


def main() -> None:
    cache, out = open_cache(sys.argv[1]), Path(sys.argv[2])
    assert isolation.available()
    settings = SweepSettings(name="p", grid=GRID, train=TRAIN, studies_dir=out, heartbeat_interval=5)
    runner = PidRunner(TrainRunner(cache, min_source_records=1))
    summary = run_sweep(settings, runner=runner, data=cache_identity(cache), isolate=True)
    assert summary.done and not summary.failed, summary
    persistent, fresh = {}, {}
    for t in load_study("p", studies_dir=out).get_trials(deepcopy=False):
        key = f"{t.params['config']} seed {t.params['seed']}"
        run_dir = Path(t.user_attrs["run_dir"])
        persistent[key] = {
            "number": t.number,
            "value": t.value,
            "attrs": stable(t.user_attrs),
            "weights": weights_digest(run_dir),
            "pid": int((run_dir / "pid").read_text()),
        }
        config = TrialConfig(GRID.point(t.params["config"]), int(t.params["seed"]), train=TRAIN)
        alone = out / "fresh" / str(t.number)
        outcome = isolation.call_in_child(lambda c=config, d=alone: runner(c, d, lambda e, v: None))
        fresh[key] = {
            "value": outcome.value,
            "attrs": stable(outcome.user_attrs()),
            "weights": weights_digest(alone),
            "pid": int((alone / "pid").read_text()),
        }
    print(json.dumps({"supervisor": os.getpid(), "persistent": persistent, "fresh": fresh}))


if __name__ == "__main__":
    main()
