"""Crash isolation: run a worker loop (a sweep, a search, one training) in a forked child and learn how it died.

Why: a native crash inside training (SIGSEGV or an abort in a oneDNN kernel) or the kernel's OOM killer ends the
process that trains, without a Python exception. When that process is the ``ecgscale`` command itself, a sweep
stops, nothing says why, and the trial is later failed by the heartbeat and re-queued, to crash again. Under
:func:`call_in_child` the command's own process only supervises: it forks a child that runs the work (the
training code runs exactly as before, in one process, so the same seeds give the same numbers), and reads the
child's exit status. :func:`supervise_trials` records a trial whose child died FAIL with the reason in its
``error`` user attribute and starts the worker loop again in a new child, which goes on with the next trial.

The child dies with its supervisor (``prctl(PR_SET_PDEATHSIG, SIGKILL)`` on Linux, a thread watching the parent
elsewhere), so ``kill -9`` of the command still ends everything at once, as before: the trial it was running
stays RUNNING until the heartbeat fails it and re-queues it.

Fork, not spawn: the child starts in microseconds with torch, the cache and the runner already set up by the
parent (which must not have initialised CUDA or run a torch parallel region first; the CLI does neither before
forking). ``ECGSCALE_ISOLATE=0`` turns isolation off (everything runs in the command's process, as before),
e.g. to use a debugger.

Fault injection for tests: ``ECGSCALE_TEST_DIE=SIGNAL:KEY`` makes the training of configuration ``KEY`` (an
:class:`ecgscale.study.grids.ArchPoint` key such as ``D2-C16-K5-gap``, or ``*`` for any) kill its own process
with ``SIGNAL`` (``SIGSEGV``, ``SIGKILL``, ...) after its first epoch (:func:`die_if_asked`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ProcessDied",
    "TrialDeath",
    "available",
    "call_in_child",
    "call_in_children",
    "die_if_asked",
    "supervise_trials",
    "supervisor_pid",
    "trial_ended",
    "trial_started",
]

log = logging.getLogger(__name__)

TEST_DIE_ENV = "ECGSCALE_TEST_DIE"
#: Set in a supervised child to its supervisor's pid (fault-injection harnesses use it to find the worker).
SUPERVISED_ENV = "ECGSCALE_SUPERVISED"

_channel: Any = None  # in a supervised child: the pipe to the supervisor
_supervisor: int | None = None


def available() -> bool:
    """Whether work can run in a forked child here (POSIX with fork, and not turned off by ``ECGSCALE_ISOLATE=0``)."""
    if os.environ.get("ECGSCALE_ISOLATE", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    import multiprocessing

    return hasattr(os, "fork") and "fork" in multiprocessing.get_all_start_methods()


def supervisor_pid() -> int:
    """The pid of the ``ecgscale`` command: the supervisor's in a supervised child, else this process's."""
    return _supervisor if _supervisor is not None else os.getpid()


def _send(kind: str, payload: Any) -> None:
    if _channel is not None:
        _channel.send((kind, payload))


def trial_started(*, storage: str, trial_id: int, number: int, config: str) -> None:
    """Tell the supervisor (if any) which trial now trains, so it can fail that trial if the process dies."""
    _send("trial_start", {"storage": storage, "trial_id": trial_id, "number": number, "config": config})


def trial_ended(number: int, status: str) -> None:
    """Tell the supervisor (if any) the trial ended: ``ran``, ``failed`` or ``pruned``."""
    _send("trial_end", {"number": number, "status": status})


def die_if_asked(key: str) -> None:
    """Fault injection: kill this process with the signal named in ``ECGSCALE_TEST_DIE`` if ``key`` matches."""
    spec = os.environ.get(TEST_DIE_ENV)
    if not spec:
        return
    name, _, want = spec.partition(":")
    if want not in ("", "*", key):
        return
    sig = signal.Signals[name if name.startswith("SIG") else f"SIG{name}"]
    log.debug("%s: killing this process with %s", TEST_DIE_ENV, sig.name)
    import faulthandler

    faulthandler.disable()  # a test runner's handler would print every thread's stack for the injected fault
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os.kill(os.getpid(), sig)
    time.sleep(5)  # a signal whose default action is not to terminate (never asked for) ends up here
    os._exit(99)


def describe_death(exitcode: int | None) -> tuple[str, str | None]:
    """How a child ended without a result, in words, and the signal's name (``None`` for an exit status)."""
    if exitcode is None or exitcode >= 0:
        return f"exited with status {exitcode} without a result", None
    sig = -exitcode
    try:
        name = signal.Signals(sig).name
    except ValueError:
        name = f"signal {sig}"
    if sig == signal.SIGKILL:
        return f"was killed by SIGKILL (signal {sig}; out of memory?)", name
    return f"died: {name} (signal {sig})", name


class ProcessDied(Exception):
    """The child ended (a signal, or a non-zero exit) without sending a result or an exception."""

    def __init__(self, exitcode: int | None):
        self.exitcode = exitcode
        self.what, self.signal_name = describe_death(exitcode)
        super().__init__(f"the process {self.what}")

    @property
    def shell_status(self) -> int:
        """What a shell reports for such a process: 128 + signal, or the exit status (1 if there is none)."""
        if self.exitcode is not None and self.exitcode < 0:
            return 128 - self.exitcode
        return self.exitcode or 1


def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when ``parent`` dies (prctl on Linux; a watching thread elsewhere)."""
    armed = False
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(1, int(signal.SIGKILL), 0, 0, 0) == 0  # PR_SET_PDEATHSIG
    if not armed:

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(0.5)
            os.kill(os.getpid(), signal.SIGKILL)

        threading.Thread(target=watch, name="ecgscale-parent-watch", daemon=True).start()
    if os.getppid() != parent:  # the parent died before the line above armed anything
        os.kill(os.getpid(), signal.SIGKILL)


def _child_main(work: Callable[[], Any], conn: Any, parent: int, supervised: bool = True) -> None:
    global _channel, _supervisor
    _die_with_parent(parent)
    if supervised:
        _channel, _supervisor = conn, parent
        os.environ[SUPERVISED_ENV] = str(parent)
    else:  # a worker of its own (call_in_children): it supervises its trials itself, under its own pid
        _channel, _supervisor = None, None
    try:
        result = work()
        kind, payload = "result", result
    except BaseException as exc:  # KeyboardInterrupt and the CLI's one-line errors travel back to the parent
        kind, payload = "error", (exc, traceback.format_exc())
    try:
        conn.send((kind, payload))
    except Exception as exc:  # not picklable: send what it said
        if kind == "result":
            payload = (RuntimeError(f"the result could not be sent back: {exc}"), "")
        else:
            err, tb = payload
            payload = (RuntimeError(f"{type(err).__name__}: {err}"), tb)
        conn.send(("error", payload))
    conn.close()


@dataclass
class _Child:
    """A forked child, the read end of its pipe, and what it sent back (``("result"|"error", payload)``)."""

    proc: Any
    receiver: Any
    outcome: tuple[str, Any] | None = None
    done: bool = False


def _start_children(works: list[Callable[[], Any]], *, supervised: bool) -> list[_Child]:
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    children = []
    for work in works:
        receiver, sender = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child_main, args=(work, sender, os.getpid(), supervised), name="ecgscale-worker")
        proc.start()
        sender.close()
        children.append(_Child(proc, receiver))
    return children


def _wait_children(children: list[_Child], on_message: Callable[[str, Any], None] | None) -> bool:
    """Read the children's messages until every one has ended; returns whether Ctrl-C was seen here."""
    from multiprocessing.connection import wait

    interrupted_at: float | None = None
    try:
        while not all(c.done for c in children):
            try:
                live = [c for c in children if not c.done]
                ready = wait([c.receiver for c in live], timeout=0.2)
                for c in live:
                    if c.receiver in ready:
                        try:
                            kind, payload = c.receiver.recv()
                        except EOFError:  # the child is gone (or closed the pipe): its exit status says how
                            c.done = True
                            continue
                        if kind in ("result", "error"):
                            c.outcome = (kind, payload)
                        elif on_message is not None:
                            on_message(kind, payload)
                    elif not c.proc.is_alive() and not c.receiver.poll(0):
                        c.done = True
                if not ready and interrupted_at is not None and time.monotonic() - interrupted_at > 60:
                    for c in live:
                        c.proc.terminate()  # it did not finish its Ctrl-C handling in a minute
                    interrupted_at = time.monotonic() + 3600
            except KeyboardInterrupt:
                # The terminal sent SIGINT to the children too; if it was sent to this process alone, pass it on.
                if interrupted_at is None:
                    interrupted_at = time.monotonic()
                    time.sleep(0.5)
                    for c in children:
                        if c.outcome is None and c.proc.is_alive() and not c.receiver.poll(0):
                            with contextlib.suppress(ProcessLookupError):
                                os.kill(c.proc.pid, signal.SIGINT)
        for c in children:
            c.proc.join()
    finally:
        for c in children:
            if c.proc.is_alive():  # this process is leaving by an exception of its own: take the child along
                c.proc.kill()
                c.proc.join()
            c.receiver.close()
    return interrupted_at is not None


def _outcome(child: _Child, interrupted: bool) -> Any:
    """The child's result, or its exception raised here (``ProcessDied`` when it sent neither)."""
    if child.outcome is None:
        if interrupted:
            raise KeyboardInterrupt
        raise ProcessDied(child.proc.exitcode)
    kind, payload = child.outcome
    if kind == "result":
        return payload
    exc, tb = payload
    if tb and not isinstance(exc, KeyboardInterrupt):
        with contextlib.suppress(Exception):
            exc.add_note(f"in the worker process (pid {child.proc.pid}):\n{tb.rstrip()}")
    raise exc


def call_in_child(work: Callable[[], Any], *, on_message: Callable[[str, Any], None] | None = None) -> Any:
    """Run ``work()`` in a forked child; return its result or raise its exception here.

    Raises :class:`ProcessDied` when the child ends without either (a signal, ``os._exit``, a native abort).
    ``on_message(kind, payload)`` receives what the child sent with :func:`trial_started`/:func:`trial_ended`.
    Ctrl-C reaches both processes (one process group): the child records its interrupted trial and sends its
    ``KeyboardInterrupt`` back, which is raised here.
    """
    children = _start_children([work], supervised=True)
    interrupted = _wait_children(children, on_message)
    return _outcome(children[0], interrupted)


def call_in_children(works: list[Callable[[], Any]]) -> list[Any]:
    """Run each of ``works`` at once in a forked child of its own; wait for all; return their results in order.

    Each child is a worker of its own, not a supervised one: its :func:`supervisor_pid` is its own pid, and
    what it runs may supervise its trials itself (:func:`supervise_trials`). Every child dies with this process.
    When some child raised (or died: :class:`ProcessDied`), the first such exception is raised here once all
    children have ended, so the others finish their work.
    """
    if not works:
        return []
    children = _start_children(works, supervised=False)
    interrupted = _wait_children(children, None)
    results, first_error = [], None
    for child in children:
        try:
            results.append(_outcome(child, interrupted))
        except BaseException as exc:
            results.append(None)
            first_error = first_error or exc
    if first_error is not None:
        raise first_error
    return results


@dataclass
class TrialDeath:
    number: int
    reason: str
    signal_name: str | None


@dataclass
class Supervised:
    """What :func:`supervise_trials` returns: the last child's result and what earlier (dead) children did."""

    result: Any
    deaths: list[TrialDeath] = field(default_factory=list)
    ran: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    pruned: list[int] = field(default_factory=list)


def supervise_trials(work: Callable[[bool], Any], *, what: str, max_consecutive: int = 3) -> Supervised:
    """Run a worker loop ``work(first)`` in a forked child; when the child dies inside a trial, record that trial
    FAIL (``error``: the reason; ``died``: the signal) and start ``work(False)`` in a new child.

    A death outside any trial, or ``max_consecutive`` deaths in a row, raises ``StudyError``: a setup that kills
    every process would otherwise walk the whole grid.
    """
    from ecgscale.errors import StudyError

    out = Supervised(result=None)
    in_a_row = 0
    first = True
    while True:
        state: dict[str, Any] = {"trial": None, "ran": [], "failed": [], "pruned": []}

        def on_message(kind: str, payload: Any, state: dict[str, Any] = state) -> None:
            if kind == "trial_start":
                state["trial"] = payload
            elif kind == "trial_end":
                state["trial"] = None
                state.setdefault(payload["status"], []).append(payload["number"])

        try:
            out.result = call_in_child(lambda first=first: work(first), on_message=on_message)
            return out
        except ProcessDied as died:
            trial = state["trial"]
            out.ran += state["ran"]
            out.failed += state["failed"]
            out.pruned += state["pruned"]
            if trial is None:
                raise StudyError(
                    f"the {what} worker process {died.what} outside any trial; run the same command again"
                ) from None
            reason = f"training process {died.what} — {trial['config']}"
            _record_death(trial, reason, died.signal_name)
            out.deaths.append(TrialDeath(int(trial["number"]), reason, died.signal_name))
            log.warning("trial %d FAILED: %s; going on with the next trial", trial["number"], reason)
            in_a_row = 0 if state["ran"] else in_a_row + 1
            if in_a_row >= max_consecutive:
                raise StudyError(f"{in_a_row} trials in a row died in this {what}; last: {reason}") from None
            first = False


def _record_death(trial: dict[str, Any], reason: str, signal_name: str | None) -> None:
    """FAIL the dead child's trial with ``error`` set (so it is not re-queued as a killed worker's would be)."""
    import optuna
    from optuna.trial import TrialState

    from ecgscale.study.storage import open_storage, set_user_attrs

    storage = open_storage(trial["storage"])
    tid = int(trial["trial_id"])
    attrs = {"error": reason[:2000], **({} if signal_name is None else {"died": signal_name})}
    try:
        set_user_attrs(storage, tid, attrs)
        storage.set_trial_state_values(tid, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        # Another worker's heartbeat check failed it first (this supervisor took longer than the grace period to
        # get here, e.g. on a loaded machine): still say why, or the point would be re-queued as a killed worker's
        # is, and die again and again.
        log.info("trial %s was already failed by another worker's heartbeat check", trial["number"])
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            set_user_attrs(storage, tid, attrs, failed=True)
    finally:
        with contextlib.suppress(Exception):
            storage.engine.dispose()
