"""A real small filesystem for disk-full and read-only faults: a size-limited tmpfs, remountable read-only.

Why a tmpfs and not a mocked ``open``: the writers under test are numpy, safetensors (Rust), SQLite (C) and
memory maps; only a real filesystem makes each of them fail the way it fails for a user.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

__all__ = ["TmpfsUnavailable", "fill", "mount_unavailable_reason", "remount", "tmpfs"]


class TmpfsUnavailable(RuntimeError):
    """Mounting is not permitted here (not root, no CAP_SYS_ADMIN); the text says why (tests skip with it)."""


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=False)


def mount_unavailable_reason(probe_dir: Path) -> str | None:
    """``None`` if a tmpfs can be mounted under ``probe_dir``, else why not (for ``pytest.skip``)."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root (the disk-full / read-only tests run as root in CI)"
    probe = probe_dir / ".tmpfs-probe"
    probe.mkdir(parents=True, exist_ok=True)
    done = _run("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe))
    if done.returncode != 0:
        probe.rmdir()
        return f"cannot mount a tmpfs here (no CAP_SYS_ADMIN?): {done.stderr.strip()}"
    _run("umount", str(probe))
    probe.rmdir()
    return None


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` (``"256k"``, ``"4m"``) on ``path`` (created), unmount it afterwards (lazily
    if a killed child still holds a file open). Raises ``TmpfsUnavailable`` when mounting is refused."""
    path.mkdir(parents=True, exist_ok=True)
    done = _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0777", "tmpfs", str(path))
    if done.returncode != 0:
        raise TmpfsUnavailable(f"mount -t tmpfs on {path} failed: {done.stderr.strip()}")
    try:
        yield path
    finally:
        if _run("umount", str(path)).returncode != 0:
            _run("umount", "-l", str(path))


def remount(path: Path, *options: str) -> None:
    """``mount -o remount,<options>`` (``"ro"``, ``"rw"``, ``"size=8m"``); raises if the kernel refuses."""
    done = _run("mount", "-o", ",".join(("remount", *options)), str(path))
    if done.returncode != 0:
        raise RuntimeError(f"remount {options} of {path} failed: {done.stderr.strip()}")


def fill(folder: Path, name: str = "filler.bin") -> Path:
    """Write zeros into ``folder/name`` until the filesystem is full; return the file (delete it to free space).

    Stands for another user's job filling a shared disk while ecgscale runs.
    """
    target = folder / name
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for size in (1 << 16, 4096, 512, 1):  # down to the last partial page
            block = b"\0" * size
            while True:
                try:
                    if os.write(fd, block) == 0:
                        break
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return target
