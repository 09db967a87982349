"""Atomic file writes, atomic folder replacement, disk errors that name the file, and writer locks.

A crash or kill never leaves a half-written cache, checkpoint or report behind (:func:`atomic_path` for a file,
:func:`staged_folder` for a whole folder); a full or read-only disk becomes an ``OSError`` that names the file
being written; two processes never write the same cache or run directory at once (:func:`writer_lock`,
:func:`folder_lock`).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import logging
import os
import re
import secrets
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ecgscale.errors import ConfigError, RecordError

log = logging.getLogger(__name__)

__all__ = [
    "DISK_ERRNOS",
    "as_disk_error",
    "atomic_path",
    "csv_text",
    "folder_lock",
    "path_within",
    "read_json",
    "remove_stale_temps",
    "staged_folder",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_text_atomic",
    "writer_lock",
]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed onto ``path``.

    The temporary file lives in the same directory so the final ``os.replace`` is atomic on POSIX.
    On any exception the temporary file is removed and ``path`` is untouched.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=target.parent)
    except OSError as exc:  # name the file the caller asked for, not mkstemp's random one
        raise (as_disk_error(exc, target) or exc) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        disk = as_disk_error(exc, target) if isinstance(exc, Exception) else None
        if disk is not None and disk is not exc:
            raise disk from exc
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike[str], obj: Any, *, indent: int = 2) -> None:
    write_text_atomic(path, json.dumps(obj, indent=indent, sort_keys=False, default=_json_default) + "\n")


def csv_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """CSV of dict rows whose keys may differ: columns in order of first appearance, missing/None cells empty."""
    cols: list[str] = []
    for row in rows:
        cols.extend(k for k in row if k not in cols)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k) for k in cols})  # csv writes None as an empty cell
    return buf.getvalue()


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _json_default(obj: Any) -> Any:
    # numpy scalars/arrays and paths appear in metrics and configs; serialise them plainly.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serialisable")


def path_within(
    root: str | os.PathLike[str],
    relative: str | os.PathLike[str],
    *,
    source: str | os.PathLike[str],
    field: str = "path",
) -> Path:
    """``root / relative`` for a path read from a file's contents (a manifest, a label file), refused if it escapes.

    Why: label files and manifests come from other sites; a row naming ``../../etc/passwd`` or ``/etc/passwd``
    must never make ecgscale read (or overwrite) a file outside the data root. The check is lexical on the
    normalised path: absolute paths, NUL bytes, ``..`` components that climb above ``root`` and names of the
    root itself (``""``, ``.``) are refused; ``sub/../rec`` stays inside and is allowed (as ``root/rec``).
    Symlinks are not resolved: a link the user created inside the data root is trusted (data trees are often
    assembled from links to other disks). Raises ``RecordError`` naming ``source`` (the file the path was read
    from) with ``reason="unsafe_path"``.
    """
    text = os.fspath(relative)
    problem = None
    if "\x00" in text:
        problem = "holds a NUL byte"
    elif os.path.isabs(text):
        problem = "is absolute; paths in this file must be relative to the data root"
    else:
        norm = os.path.normpath(text) if text else os.curdir
        if norm == os.pardir or norm.startswith(os.pardir + os.sep):
            problem = f"leaves the data root {os.fspath(root)!r}"
        elif norm == os.curdir:  # "", ".", "sub/..": the root itself (whose name + ".hea" is a sibling of it)
            problem = "names the data root itself, not a file in it"
    if problem is not None:
        raise RecordError(source, f"path {text!r} {problem}", reason="unsafe_path", field=field)
    return Path(root) / norm


# --------------------------------------------------------------------------------------------------- disk errors
#: errno values that mean "this disk cannot take the write" (the CLI prints them as one line, no traceback).
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EFBIG})
_OS_ERROR_IN_TEXT = re.compile(r"os error (\d+)|\[Errno (\d+)\]")


def as_disk_error(exc: BaseException, path: str | os.PathLike[str]) -> OSError | None:
    """``exc`` (raised while writing ``path``) as an ``OSError`` whose ``filename`` is ``path``, or ``None``.

    Why: a full disk surfaces differently in every writer: ``file.write`` raises ``OSError(ENOSPC)`` without a
    file name, ``numpy.save`` an ``OSError("N requested and M written")`` without an errno, safetensors a
    ``SafetensorError("... (os error 28)")``. The user needs one answer: which file, and the OS reason. A short
    write with no errno is attributed to ENOSPC when the file's filesystem has no free block left. Returns
    ``exc`` itself when it already names a file with a disk errno, ``None`` when it is not a disk error.
    """
    code: int | None = None
    if isinstance(exc, OSError) and exc.errno is not None:
        if exc.errno not in DISK_ERRNOS:
            return None
        if exc.filename is not None and os.fspath(exc.filename) == os.fspath(path):
            return exc
        code = exc.errno
    else:
        found = _OS_ERROR_IN_TEXT.search(str(exc))
        if found:
            code = int(found.group(1) or found.group(2))
            if code not in DISK_ERRNOS:
                return None
        elif isinstance(exc, OSError) and "written" in str(exc) and _filesystem_full(path):
            code = errno.ENOSPC  # numpy's short write: the disk filled up under it
    if code is None:
        return None
    return OSError(code, os.strerror(code), os.fspath(path))


def _filesystem_full(path: str | os.PathLike[str]) -> bool:
    folder = Path(path).parent
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024


# --------------------------------------------------------------------------------------------------- locks
_HELD_LOCKS: dict[str, tuple[int, Any, int]] = {}  # realpath -> (pid, FileLock, depth): re-entrant per process
_HELD_GUARD = threading.Lock()


def _lock_info_path(lock_file: Path) -> Path:
    return lock_file.with_name(lock_file.name + ".json")


@contextlib.contextmanager
def writer_lock(
    lock_file: str | os.PathLike[str], *, guards: str | os.PathLike[str], action: str, hint: str
) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` while writing ``guards``; refuse at once if another process holds it.

    Why: two ``ecgscale prepare`` runs on one ``--out`` (or two ``train`` runs into one run directory) would
    interleave their writes; the second must stop immediately with a message saying who is writing, not wait
    or corrupt. The lock is an ``flock`` (``filelock``), so the kernel releases it when the holder dies, even by
    ``kill -9``: a lock is never stale, and a holder's forked children (pool workers) do not inherit it
    (filelock closes the descriptor in a forked child). Beside
    the lock a small JSON file records the holder (pid, host, ``action``, command line, start time) for the
    refusal message, which reads ``another `<action>` (pid P on host H, since T) is writing <guards>; <hint>``.
    Re-entrant within one process (``build_cache`` holds it around ``resplit``).

    Raises ``ConfigError`` when the lock is held elsewhere, ``OSError`` when the lock file cannot be created
    (a read-only or full folder).
    """
    from filelock import FileLock, Timeout

    lock_path = Path(lock_file)
    key = os.path.realpath(lock_path)
    with _HELD_GUARD:
        held = _HELD_LOCKS.get(key)
        if held is not None and held[0] == os.getpid():  # a forked child's copy does not count
            _HELD_LOCKS[key] = (held[0], held[1], held[2] + 1)
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _HELD_GUARD:
                pid, lock, depth = _HELD_LOCKS[key]
                _HELD_LOCKS[key] = (pid, lock, depth - 1)
        return

    lock = FileLock(str(lock_path), blocking=False)
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except Timeout:
        raise ConfigError(f"{_holder_text(lock_path)} is writing {os.fspath(guards)}; {hint}") from None
    except OSError as exc:
        raise (as_disk_error(exc, lock_path) or exc) from exc
    info = _lock_info_path(lock_path)
    try:
        with _HELD_GUARD:
            _HELD_LOCKS[key] = (os.getpid(), lock, 1)
        with contextlib.suppress(OSError):  # a full disk must fail at the real write, with its file named, not here
            write_json_atomic(info, _holder_info(action))
        yield
    finally:
        with _HELD_GUARD:
            _HELD_LOCKS.pop(key, None)
        with contextlib.suppress(OSError):
            info.unlink()
        # Unlinked while still held, then released: a contender that opened the old file and wins its flock
        # sees it unlinked and retries on the path (filelock checks st_nlink), so exclusion holds, and a clean
        # run leaves no lock file behind (only a killed one does; the next run reuses it).
        with contextlib.suppress(OSError):
            lock_path.unlink()
        lock.release()


def _holder_info(action: str) -> dict[str, Any]:
    now = time.time()
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "action": action,
        "command": " ".join(sys.argv),
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)),
        "started_unix": now,
    }


def _holder_text(lock_file: Path) -> str:
    """``another `ecgscale prepare` (pid 123 on host h, since 20:01:05)``, from the holder's info file if readable."""
    try:
        info = read_json(_lock_info_path(lock_file))
        day, _, clock = str(info["started"]).partition(" ")
        since = clock if day == time.strftime("%Y-%m-%d") else info["started"]
        return f"another `{info['action']}` (pid {int(info['pid'])} on host {info['host']}, since {since})"
    except (OSError, ValueError, KeyError, TypeError):  # the holder has not written it yet, or it is foreign
        return f"another process (it holds the lock {lock_file})"


def folder_lock(folder: str | os.PathLike[str], *, action: str, hint: str) -> contextlib.AbstractContextManager[None]:
    """:func:`writer_lock` of ``folder``, on ``.<name>.lock`` beside it (not inside: the folder itself is replaced
    by :func:`staged_folder`'s rename). Creates the parent folder first; an ``OSError`` doing so is raised as is."""
    folder = Path(folder)
    if not folder.parent.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
    return writer_lock(folder.parent / f".{folder.name}.lock", guards=folder, action=action, hint=hint)


# --------------------------------------------------------------------------------------------------- folders
@contextlib.contextmanager
def staged_folder(out: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a new empty folder beside ``out``; on success it replaces ``out`` (:func:`_swap_into_place`).

    On any exception the staged folder is removed and ``out`` is untouched; a disk error is re-raised naming
    ``out`` (e.g. a write's ENOSPC, which names no file). A process killed meanwhile leaves a ``.<name>.tmp-``
    (or ``.old-``) folder that :func:`remove_stale_temps` cleans up; call that under ``out``'s lock first.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        tmp.mkdir()
    except OSError as exc:  # a read-only or full disk: name the folder, not the temporary one
        raise (as_disk_error(exc, out) or exc) from exc
    try:
        yield tmp
        _swap_into_place(tmp, out)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        disk = as_disk_error(exc, out) if isinstance(exc, Exception) else None
        if disk is not None and disk is not exc:
            raise disk from exc
        raise


def remove_stale_temps(out: str | os.PathLike[str], *, action: str, marker: str) -> None:
    """Clean up after a killed ``action`` (e.g. ``prepare``) that was writing ``out`` with :func:`staged_folder`.
    Call it with ``out``'s writer lock held, so no live process owns any ``.tmp-``/``.old-`` folder of ``out``
    (a pid check would be fooled by pid reuse).

    ``.tmp-`` folders are unfinished builds and are removed. An ``.old-`` folder is a complete previous folder
    moved aside just before the swap (it holds ``marker``, the file a complete folder is written with last): it is
    put back if ``out`` is missing, else removed.
    """
    out = Path(out)
    for leftover in sorted(out.parent.glob(f".{out.name}.*-*")):
        kind = leftover.name[len(out.name) + 2 :].partition("-")[0]
        if kind not in ("tmp", "old"):
            continue
        if kind == "old" and not out.exists() and (leftover / marker).is_file():
            log.warning("restoring %s from %s (a %s was killed while replacing it)", out, leftover, action)
            os.replace(leftover, out)
        else:
            log.info("removing %s left by an interrupted %s", leftover, action)
            shutil.rmtree(leftover, ignore_errors=True)


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished build onto ``out``; an old folder is replaced in one step, deleted only afterwards.

    Why one step: moving the old folder aside and then the new one in leaves a moment with nothing at ``out``
    (a kill -9 there left "neither", until the next prepare restored the old one). On Linux ``renameat2``
    exchanges the two folders atomically, so ``out`` is always the old or the new one; the old one, now under
    the ``.tmp-`` name, is removed afterwards (or by the next :func:`remove_stale_temps` if this process is killed
    first). Elsewhere, or on a file system without the exchange, the two renames remain, with
    :func:`remove_stale_temps` as the net.
    """
    if out.exists() and _exchange(tmp, out):
        shutil.rmtree(tmp, ignore_errors=True)
    elif out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
        os.replace(out, old)
        try:
            os.replace(tmp, out)
        except BaseException:
            os.replace(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where the OS or file system cannot."""
    import ctypes

    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2  # glibc >= 2.28
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):  # old kernel, or a file system without exchange
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))
