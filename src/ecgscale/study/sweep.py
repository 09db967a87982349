"""Grid sweeps on optuna: every (configuration, seed) pair of a grid is one trial, run exactly once.

Any number of ``ecgscale sweep`` workers, on any number of machines, may share one study through a server
database. The pieces:

* ``GridSampler`` assigns each new trial an unvisited grid point; a worker starts a trial only while some
  point has never been started (or a retry is queued), so finished points are never re-run and re-running
  the command resumes a stopped sweep.
* Two workers can still draw the same point at the same instant (a known ``GridSampler`` race); each trial
  checks its grid id against the study's complete and running trials first and, if an older trial holds
  the point, ends as PRUNED with ``duplicate_of`` set instead of training.
* A heartbeat marks a killed worker's trial FAILED after the grace period; ``RetryFailedTrialCallback``
  queues the same point again and the next worker runs it. A worker with nothing left to start waits while
  other workers' trials are running, so it can pick up such a retry (``wait=False`` exits instead).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import socket
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecgscale.errors import StudyError
from ecgscale.progress import Progress, as_progress
from ecgscale.study.grids import Grid
from ecgscale.study.objective import RunTrial, TrialConfig
from ecgscale.study.storage import (
    create_or_load_study,
    default_storage_url,
    open_storage,
    redact_url,
    set_user_attrs,
    storage_disk_error,
    study_dir,
)

__all__ = ["SweepSettings", "SweepSummary", "run_sweep"]

log = logging.getLogger(__name__)

#: Consecutive failures in one worker after which it stops (a broken setup should not burn the whole grid).
MAX_CONSECUTIVE_FAILURES = 3


@dataclass(frozen=True, slots=True)
class SweepSettings:
    """How to run a sweep. ``train``/``model`` are overrides shared by every trial (``epochs`` lives in train).

    ``heartbeat_interval``/``grace_period`` are seconds; a worker killed mid-trial has its trial re-run by
    another worker ``grace_period`` seconds after its last heartbeat.
    """

    name: str
    grid: Grid
    train: Mapping[str, Any] = field(default_factory=dict)
    model: Mapping[str, Any] = field(default_factory=dict)
    studies_dir: Path = Path("studies")
    storage: str | None = None
    heartbeat_interval: int = 60
    grace_period: int | None = None
    max_retry: int = 2
    timeout: float | None = None
    wait: bool = True
    poll_seconds: float = 2.0
    retry_failed: bool = False

    def __post_init__(self) -> None:
        if self.timeout is not None and self.timeout <= 0:
            raise StudyError(f"timeout {self.timeout!r} s is not allowed; give a positive number of seconds")
        if self.max_retry < 0:
            raise StudyError(f"max_retry {self.max_retry!r} is not allowed; give an integer >= 0")

    @property
    def storage_url(self) -> str:
        return self.storage or default_storage_url(self.studies_dir, self.name)


@dataclass(frozen=True, slots=True)
class SweepSummary:
    name: str
    storage: str
    n_points: int
    n_complete: int
    ran: tuple[int, ...]
    failed: tuple[int, ...]
    duplicates: tuple[int, ...]
    seconds: float
    stopped_by_timeout: bool = False
    died: tuple[tuple[int, str], ...] = ()  # (trial, reason) of trials whose training process died (isolate=True)

    @property
    def done(self) -> bool:
        return self.n_complete == self.n_points


def _grid_state(study: Any, space: dict[str, list[Any]]) -> tuple[set[int], set[int], set[int], int]:
    """Grid ids that were ever started, complete, running; plus the number of queued (WAITING) trials."""
    from optuna.trial import TrialState

    started: set[int] = set()
    complete: set[int] = set()
    running: set[int] = set()
    waiting = 0
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.WAITING:
            waiting += 1
        sa = t.system_attrs
        if "grid_id" not in sa or sa.get("search_space") != space:
            continue
        gid = int(sa["grid_id"])
        started.add(gid)
        if t.state == TrialState.COMPLETE:
            complete.add(gid)
        elif t.state == TrialState.RUNNING:
            running.add(gid)
    return started, complete, running, waiting


def _retry_failed_points(
    study: Any, space: dict[str, list[Any]], *, only_interrupted: bool, skip: set[int] | None = None
) -> set[int]:
    """Queue again grid points whose trials all FAILED (grid ids in ``skip`` excepted); returns their grid ids.

    Interrupted trials (Ctrl-C) and killed ones (FAILED by the heartbeat, so with no ``error``: kill -9, OOM, a
    lost machine) are always queued again, so re-running the command resumes them even after the storage's
    retry callback has given up on them (``max_retry`` kills of the same point); trials that raised are queued
    again only on request (``retry_failed``), after the cause was fixed.
    """
    import optuna
    from optuna.trial import TrialState

    by_gid: dict[int, list[Any]] = {}
    for t in study.get_trials(deepcopy=False):
        sa = t.system_attrs
        if "grid_id" in sa and sa.get("search_space") == space:
            by_gid.setdefault(int(sa["grid_id"]), []).append(t)
    queued: set[int] = set()
    for gid, trials in by_gid.items():
        if gid in (skip or ()):
            continue
        if all(t.state == TrialState.FAIL for t in trials) and (
            not only_interrupted or any(t.user_attrs.get("interrupted") or "error" not in t.user_attrs for t in trials)
        ):
            last = max(trials, key=lambda t: t.number)
            system_attrs = {k: v for k, v in last.system_attrs.items() if k in ("grid_id", "search_space")}
            system_attrs["failed_trial"] = last.system_attrs.get("failed_trial", last.number)
            study.add_trial(
                optuna.trial.create_trial(
                    state=TrialState.WAITING,
                    params=last.params,
                    distributions=last.distributions,
                    system_attrs=system_attrs,
                )
            )
            queued.add(gid)
    return queued


def _duplicate_of(study: Any, number: int, trials: list[Any] | None = None) -> int | None:
    """The number of an older trial holding the same grid point (complete, or running with a lower number).

    ``trials``: the study's trials if the caller just read them (one storage read serves several checks).
    """
    from optuna.trial import TrialState

    if trials is None:
        trials = study.get_trials(deepcopy=False)
    me = next((t for t in trials if t.number == number), None)
    if me is None or "grid_id" not in me.system_attrs:
        return None
    gid, space = me.system_attrs["grid_id"], me.system_attrs.get("search_space")
    for t in trials:
        if t.number == number or t.system_attrs.get("grid_id") != gid or t.system_attrs.get("search_space") != space:
            continue
        if t.user_attrs.get("duplicate_of") is not None:
            continue
        if t.state == TrialState.COMPLETE or (t.state == TrialState.RUNNING and t.number < number):
            return t.number
    return None


def _fail_silent_trials(study: Any, grace_period: float) -> None:
    """FAIL (and re-queue) RUNNING trials that never recorded a heartbeat, ``grace_period`` s after they started.

    Why: optuna's ``fail_stale_trials`` skips trials without a heartbeat row, so a worker that died, or whose
    disk filled, between creating a trial and its first heartbeat left it RUNNING forever, and a resumed sweep
    waited for it forever.
    """
    import copy
    import datetime

    import optuna
    import sqlalchemy
    from optuna.trial import TrialState

    storage = study._storage
    backend = getattr(storage, "_backend", storage)
    if not isinstance(backend, optuna.storages.RDBStorage):
        return
    cutoff = datetime.datetime.now() - datetime.timedelta(seconds=grace_period)
    old = {
        t._trial_id
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if t.datetime_start is not None and t.datetime_start < cutoff
    }
    if not old:
        return
    with backend.engine.connect() as conn:
        beating = {row[0] for row in conn.execute(sqlalchemy.text("SELECT trial_id FROM trial_heartbeats"))}
    callback = storage.get_failed_trial_callback()
    for trial_id in sorted(old - beating):
        try:
            if storage.set_trial_state_values(trial_id, state=TrialState.FAIL) and callback is not None:
                callback(study, copy.deepcopy(storage.get_trial(trial_id)))
        except optuna.exceptions.UpdateFinishedTrialError:  # another worker failed it first
            pass


def _trial_dir(study: Any, number: int, root: Path, trials: list[Any] | None = None) -> Path:
    """``trials/<number>``; a retry of a killed or interrupted trial whose folder is on this machine reuses it,
    so a runner that can resume (``TrainRunner``) continues from the last checkpoint instead of epoch 1."""
    if trials is None:
        trials = study.get_trials(deepcopy=False)
    me = next((t for t in trials if t.number == number), None)
    first = None if me is None else me.system_attrs.get("failed_trial")
    if first is not None and (root / "trials" / str(first)).is_dir():
        log.info("trial %d retries trial %d: continuing in %s", number, first, root / "trials" / str(first))
        return root / "trials" / str(first)
    path = root / "trials" / str(number)
    if path.exists():  # left over from a deleted study of the same name: keep it, out of the way
        aside = path.with_name(f"{number}.old-{int(time.time())}")
        log.warning("%s exists from an earlier study; moved to %s", path, aside)
        path.rename(aside)
    return path


def run_sweep(
    settings: SweepSettings,
    *,
    runner: RunTrial,
    data: Mapping[str, Any],
    progress: bool | Progress = False,
    isolate: bool = False,
    workers: int = 1,
) -> SweepSummary:
    """Run this worker's share of the sweep; returns when every grid point is done (or on timeout).

    ``data`` identifies the data set (:func:`ecgscale.study.objective.cache_identity`); a study created with
    another grid, data or training protocol is refused before any trial starts.

    ``isolate=True`` (what ``ecgscale sweep`` uses) runs the worker loop in a forked child process
    (:mod:`ecgscale.study.isolation`): a trial whose process dies (a native crash, the OOM killer) is recorded
    FAIL with the reason in ``error`` (and the signal in ``died``), it is not re-queued (only ``retry_failed``
    runs it again), and the sweep goes on in a new child. Results are those of an in-process run.

    ``workers=N`` (> 1) forks N local workers that share the study, each what ``workers=1`` runs (with
    ``isolate``, each supervises its own trials). They start from this process after everything is imported and
    the runner is built, so that start-up is paid once. Torch threads are this process's: give each worker its
    share of the cores before (``ecgscale sweep --workers N`` uses cores / N). The summary adds up what they ran.
    """
    from ecgscale.study import isolation

    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise StudyError(f"workers {workers!r} is not allowed; give an integer >= 1")
    if workers > 1:
        return _run_workers(settings, runner=runner, data=data, progress=progress, isolate=isolate, n=workers)
    if not (isolate and isolation.available()):
        return _run_sweep(settings, runner=runner, data=data, progress=progress)
    t0 = time.monotonic()

    def work(first: bool) -> SweepSummary:
        # After a death, the new child must not queue again what --retry-failed queued (or just died) once more.
        again = settings if first else dataclasses.replace(settings, retry_failed=False)
        return _run_sweep(again, runner=runner, data=data, progress=progress)

    sup = isolation.supervise_trials(work, what="sweep", max_consecutive=MAX_CONSECUTIVE_FAILURES)
    last: SweepSummary = sup.result
    return dataclasses.replace(
        last,
        ran=(*sup.ran, *last.ran),
        failed=(*sup.failed, *(d.number for d in sup.deaths), *last.failed),
        seconds=time.monotonic() - t0,
        died=tuple((d.number, d.reason) for d in sup.deaths),
    )


def _run_workers(
    settings: SweepSettings, *, runner: RunTrial, data: Mapping[str, Any], progress: bool, isolate: bool, n: int
) -> SweepSummary:
    """``n`` forked workers on one study (see :func:`run_sweep`); their summaries merged into one."""
    import multiprocessing

    from ecgscale.study import isolation

    if "fork" not in multiprocessing.get_all_start_methods():
        raise StudyError(f"{n} workers in one command need fork (POSIX); start {n} sweep commands instead")
    t0 = time.monotonic()

    # A worker with nothing left to start waits for its siblings' last trials (it would pick up their retries):
    # polled every 0.5 s at most, so the command ends soon after the last of them, not up to 2 s later.
    polled = dataclasses.replace(settings, poll_seconds=min(settings.poll_seconds, 0.5))

    def worker(i: int) -> Any:
        # Only the first worker queues failed points again (--retry-failed): two would queue each point twice.
        own = polled if i == 0 else dataclasses.replace(polled, retry_failed=False)
        return lambda: run_sweep(own, runner=runner, data=data, progress=progress and i == 0, isolate=isolate)

    try:
        summaries: list[SweepSummary] = isolation.call_in_children([worker(i) for i in range(n)])
    except isolation.ProcessDied as died:
        raise StudyError(f"a sweep worker process {died.what} outside any trial; run the same command again") from None
    first = summaries[0]
    return dataclasses.replace(
        first,
        n_complete=max(s.n_complete for s in summaries),
        ran=tuple(t for s in summaries for t in s.ran),
        failed=tuple(t for s in summaries for t in s.failed),
        duplicates=tuple(t for s in summaries for t in s.duplicates),
        seconds=time.monotonic() - t0,
        stopped_by_timeout=any(s.stopped_by_timeout for s in summaries),
        died=tuple(d for s in summaries for d in s.died),
    )


def describe_config(config: TrialConfig) -> str:
    """One line naming a trial's configuration, for error messages (``D2-C16-K5-gap seed 0, epochs 2, ...``)."""
    extra = [f"{k} {v}" for k, v in {**dict(config.train), **dict(config.model)}.items()]
    return ", ".join([f"{config.arch.key} seed {config.seed}", *extra])


def _run_sweep(
    settings: SweepSettings,
    *,
    runner: RunTrial,
    data: Mapping[str, Any],
    progress: bool | Progress = False,
) -> SweepSummary:
    import optuna

    from ecgscale.study import isolation

    t_start = time.monotonic()
    grid = settings.grid
    space = grid.search_space()
    url = settings.storage_url
    shown = redact_url(url)
    root = study_dir(settings.studies_dir, settings.name)
    storage = open_storage(
        url,
        heartbeat_interval=settings.heartbeat_interval,
        grace_period=settings.grace_period,
        max_retry=settings.max_retry,
    )
    attrs = {
        "ecgscale_kind": "sweep",
        "grid": grid.to_dict(),
        "data": dict(data),
        "protocol": {"train": dict(settings.train), "model": dict(settings.model)},
    }
    # Every worker must shuffle the grid identically (seed 0: a grid id means the same point everywhere), but
    # draws among the unvisited points with its own random state, so concurrent workers rarely collide.
    sampler = optuna.samplers.GridSampler(space, seed=0)
    sampler.reseed_rng()
    study = create_or_load_study(
        settings.name, storage, attrs=attrs, sampler=sampler, pruner=optuna.pruners.NopPruner(), shown_url=shown
    )
    requeued = _retry_failed_points(study, space, only_interrupted=not settings.retry_failed)
    if requeued:
        log.info("queued %d failed or interrupted grid point(s) again", len(requeued))

    worker = f"{socket.gethostname()}:{isolation.supervisor_pid()}"  # the command's pid, isolated or not
    ran: list[int] = []
    failed: list[int] = []
    duplicates: list[int] = []
    consecutive = {"n": 0, "last": ""}

    def objective(trial: optuna.Trial) -> float:
        key = trial.suggest_categorical("config", space["config"])
        seed = trial.suggest_categorical("seed", space["seed"])
        trials = study.get_trials(deepcopy=False)
        dup = _duplicate_of(study, trial.number, trials)
        if dup is not None:
            trial.set_user_attr("duplicate_of", dup)
            duplicates.append(trial.number)
            log.info("trial %d: grid point %s seed %s is held by trial %d; skipped", trial.number, key, seed, dup)
            raise optuna.TrialPruned(f"duplicate of trial {dup}")
        config = TrialConfig(grid.point(str(key)), int(seed), train=settings.train, model=settings.model)
        trial_dir = _trial_dir(study, trial.number, root, trials)
        set_user_attrs(storage, trial._trial_id, {"worker": worker, "trial_dir": str(trial_dir)})
        log.info("trial %d: %s seed %s (%s)", trial.number, key, seed, worker)

        def report(epoch: int, value: float) -> None:
            isolation.die_if_asked(config.arch.key)  # fault injection for tests (ECGSCALE_TEST_DIE), else nothing
            trial.report(value, epoch)

        isolation.trial_started(
            storage=url, trial_id=trial._trial_id, number=trial.number, config=describe_config(config)
        )
        try:
            outcome = runner(config, trial_dir, report)
        except optuna.TrialPruned:
            isolation.trial_ended(trial.number, "pruned")
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)
            raise
        except Exception as exc:
            if storage_disk_error(exc, url) is not None:  # not this point's fault: no `error`, see guarded()
                raise
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:2000])
            failed.append(trial.number)
            isolation.trial_ended(trial.number, "failed")
            consecutive["n"] += 1
            consecutive["last"] = f"{type(exc).__name__}: {exc}"
            raise
        isolation.trial_ended(trial.number, "ran")
        consecutive["n"] = 0
        set_user_attrs(storage, trial._trial_id, outcome.user_attrs())  # one transaction, not one per key
        ran.append(trial.number)
        return float(outcome.value)

    def guarded(trial: optuna.Trial) -> float:
        try:
            return objective(trial)
        except Exception as exc:
            disk = storage_disk_error(exc, url)
            if disk is None:
                raise
            raise _StopWorker(disk, trial) from exc

    deadline = None if settings.timeout is None else t_start + settings.timeout
    stopped_by_timeout = False
    bar = as_progress(progress).task("sweep", total=len(grid), description=f"sweep {settings.name}")
    try:
        while True:
            started, complete, running, waiting = _grid_state(study, space)
            bar.update(completed=len(complete))
            if deadline is not None and time.monotonic() >= deadline:
                stopped_by_timeout = len(complete) < len(grid)
                break
            if len(started) < len(grid) or waiting:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    try:
                        study.optimize(guarded, n_trials=1, catch=(Exception,), gc_after_trial=False)
                    except _StopWorker as stop:
                        stop.record(study)
                        raise stop.error from None
                if consecutive["n"] >= MAX_CONSECUTIVE_FAILURES:
                    raise StudyError(
                        f"{consecutive['n']} trials in a row failed in this worker; last error: {consecutive['last']}"
                    )
                continue
            if running and settings.wait:
                # Nothing left to start: wait for the other workers' trials, failing stale ones (their
                # retries are queued by the storage's callback and picked up above).
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    optuna.storages.fail_stale_trials(study)
                _fail_silent_trials(study, settings.grace_period or 2 * settings.heartbeat_interval)
                time.sleep(settings.poll_seconds)
                continue
            # Points whose killed trials the retry callback gave up on while this worker ran: once more each.
            # (A worker killed before its trial drew a point leaves a RUNNING trial outside the grid: failed here.)
            _fail_silent_trials(study, settings.grace_period or 2 * settings.heartbeat_interval)
            again = _retry_failed_points(study, space, only_interrupted=True, skip=requeued)
            if again:
                log.info("queued %d killed grid point(s) again", len(again))
                requeued |= again
                continue
            break
    finally:
        bar.close()
    _, complete, _, _ = _grid_state(study, space)
    return SweepSummary(
        settings.name,
        shown,
        len(grid),
        len(complete),
        tuple(ran),
        tuple(failed),
        tuple(duplicates),
        time.monotonic() - t_start,
        stopped_by_timeout,
    )


class _StopWorker(BaseException):  # a control-flow signal, like KeyboardInterrupt
    """A full or read-only disk under a trial (its run directory or the study's storage): stop this worker.

    Why a ``BaseException``: it passes optuna's ``catch=(Exception,)`` and its failure log (a traceback per
    trial), and every next trial would fail the same way. The CLI prints ``error`` as one line; the trial is
    recorded FAILED and ``interrupted`` when the storage still takes writes, so re-running the command after
    freeing space runs its grid point again (if it cannot be recorded, it stays RUNNING until the heartbeat's
    grace period marks it failed and re-queues it).
    """

    def __init__(self, error: OSError, trial: Any):
        super().__init__(str(error))
        self.error = error
        self.trial = trial

    def record(self, study: Any) -> None:
        from optuna.trial import TrialState

        with contextlib.suppress(Exception):  # the storage may sit on the same full disk
            self.trial.set_user_attr("interrupted", True)
            study.tell(self.trial, state=TrialState.FAIL)
