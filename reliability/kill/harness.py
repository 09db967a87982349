"""Start a real ``ecgscale`` command as a child process and SIGKILL it at a chosen point.

Two ways to choose the point, both seeded by the scenario:

* a time: uniform over the run's measured duration (``KillPoint.at_seconds``);
* an event: the first moment a predicate on the output folder holds (``KillPoint.when``), polled every
  millisecond, e.g. the instant a ``.tmp-`` folder or a checkpoint temp file appears. Polling the folder lands
  kills inside atomic writes far more often than uniform times do;
* a file operation: the child kills itself just before its k-th ``os.replace``/``shutil.rmtree``
  (``KillPoint.rename``, through the audit hook of ``reliability.kill._audit_kill``). Windows of microseconds,
  such as the moment between moving an old cache aside and moving the new one in, are hit every time this way,
  and never reliably by polling from outside.

What is killed: the parent process only (``kill -9 PID``, what an OOM-kill or a user's ``kill -9`` does), or
the whole process group (what a job scheduler or ``systemd`` stopping a unit does). A parent killed alone
leaves its worker processes (``prepare --workers 2``) as orphans; :func:`kill_run` records them and reports
those still alive after ``orphan_grace`` seconds, then kills them so they cannot disturb the next iteration.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "KillOutcome",
    "KillPoint",
    "audited",
    "children_of",
    "count_renames",
    "debris",
    "kill_run",
    "pid_running",
    "timed_run",
]

POLL_SECONDS = 0.001


@dataclass(frozen=True, slots=True)
class KillPoint:
    """When to kill: ``at_seconds`` after the start, or the first moment ``when()`` returns true.

    ``anchor``: a predicate that starts the clock instead of the process start (e.g. "the run directory's
    config.json exists": training has begun, after seconds of imports that are not worth killing in).
    ``label`` names the point in failure lines (e.g. ``"t=1.23s"`` or ``"checkpoint temp file"``);
    ``group=True`` kills the whole process group instead of the parent alone.
    """

    label: str
    at_seconds: float | None = None
    when: Callable[[], bool] | None = None
    anchor: Callable[[], bool] | None = None
    group: bool = False
    rename: int | None = None  # the process kills itself just before its N-th rename (``_audit_kill``)


@dataclass(slots=True)
class KillOutcome:
    """What happened to one run: killed or finished first, its exit code, and the orphans it left."""

    killed: bool
    returncode: int | None
    seconds: float
    children: list[int] = field(default_factory=list)
    orphans_alive: list[int] = field(default_factory=list)  # still running ``orphan_grace`` s after the kill
    log: str = ""


def pid_running(pid: int) -> bool:
    """True for a live process (a zombie, dead but not yet reaped, counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def children_of(pid: int) -> list[int]:
    """Every descendant of ``pid`` now (from /proc; Linux only, like the machines this runs on)."""
    parent_of: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        parent_of[int(entry.name)] = int(fields[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent_of.items() if pp == p]
        found.extend(kids)
        frontier.extend(kids)
    return sorted(found)


REPO_ROOT = Path(__file__).resolve().parents[2]


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    # One thread: the same float arithmetic in every run (reference and resumed), and a 2-core CI box stays usable.
    # The repository root on the path: ``_audit_kill`` is imported from this checkout whatever the cwd.
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": path, **(extra or {})}


def audited(cmd: Sequence[str], n: int, log: Path) -> list[str]:
    """``cmd`` (an ``ecgscale_cmd``) under the rename audit hook: killed before rename ``n``, or counting (0)."""
    cmd = [str(c) for c in cmd]
    if cmd[1:3] != ["-m", "ecgscale"]:
        raise ValueError(f"not an ecgscale command: {cmd[:3]}")
    return [cmd[0], "-m", "reliability.kill._audit_kill", str(n), str(log), "--", *cmd[3:]]


def count_renames(cmd: Sequence[str], *, log_path: Path, timeout: float = 600) -> tuple[int, float, list[str]]:
    """Run ``cmd`` to the end under the audit hook: ``(returncode, seconds, targets of its renames in order)``."""
    renames = log_path.with_suffix(".renames")
    renames.unlink(missing_ok=True)
    rc, seconds = timed_run(audited(cmd, 0, renames), log_path=log_path, timeout=timeout)
    names = renames.read_text(encoding="utf-8").splitlines() if renames.exists() else []
    return rc, seconds, names


def timed_run(cmd: Sequence[str], *, log_path: Path, timeout: float = 600, env: dict[str, str] | None = None):
    """Run ``cmd`` to completion: ``(returncode, seconds)``; output goes to ``log_path``."""
    t0 = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as fh:
        proc = subprocess.run(
            list(cmd), stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=timeout, env=_env(env)
        )
    return proc.returncode, time.monotonic() - t0


def kill_run(
    cmd: Sequence[str],
    point: KillPoint,
    *,
    log_path: Path,
    timeout: float = 300,
    orphan_grace: float = 15.0,
    env: dict[str, str] | None = None,
) -> KillOutcome:
    """Start ``cmd``, kill it at ``point`` (unless it ends first), and account for its worker processes."""
    if point.rename is not None:
        cmd = audited(cmd, point.rename, log_path.with_suffix(".rename"))
    fh = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed below, after the child ends
    t0 = time.monotonic()
    proc = subprocess.Popen(
        list(cmd),
        stdout=fh,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=_env(env),
        start_new_session=True,  # its own process group, so a group kill reaches exactly its processes
    )
    killed = False
    children: list[int] = []
    t_anchor = t0 if point.anchor is None else None
    try:
        while proc.poll() is None:
            now = time.monotonic()
            elapsed = now - t0
            if t_anchor is None and point.anchor is not None and point.anchor():
                t_anchor = now
            if elapsed > timeout:
                raise TimeoutError(f"{' '.join(map(str, cmd))}: neither finished nor reached {point.label}")
            if point.rename is not None:  # it kills itself; its children are noted for the orphan check
                children = sorted(set(children) | set(children_of(proc.pid)))
                time.sleep(POLL_SECONDS * 20)
                continue
            due = t_anchor is not None and (
                (point.at_seconds is not None and now - t_anchor >= point.at_seconds)
                or (point.when is not None and point.when())
            )
            if due:
                children = children_of(proc.pid)
                try:
                    if point.group:
                        os.killpg(proc.pid, signal.SIGKILL)
                    else:
                        os.kill(proc.pid, signal.SIGKILL)
                    killed = True
                except ProcessLookupError:
                    pass
                break
            time.sleep(POLL_SECONDS)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    seconds = time.monotonic() - t0
    killed = (killed or point.rename is not None) and proc.returncode == -signal.SIGKILL
    # Orphans of a parent-only kill: they must notice their parent is gone and exit by themselves.
    end = time.monotonic() + orphan_grace
    alive = [c for c in children if pid_running(c)]
    while alive and time.monotonic() < end:
        time.sleep(0.05)
        alive = [c for c in alive if pid_running(c)]
    for c in alive:  # do not let a stuck orphan write into the next iteration's files
        with contextlib.suppress(ProcessLookupError):
            os.kill(c, signal.SIGKILL)
    fh.close()
    return KillOutcome(
        killed=killed,
        returncode=proc.returncode,
        seconds=seconds,
        children=children,
        orphans_alive=alive,
        log=log_path.read_text(encoding="utf-8", errors="replace")[-2000:],
    )


def debris(folder: Path, *, patterns: Sequence[str] = (".tmp", ".old-")) -> list[str]:
    """Names under ``folder`` (recursively) that look like leftovers of an interrupted atomic write."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if any(pat in p.name for pat in patterns))
