"""A throw-away PostgreSQL server on loopback, for the study tests and the concurrency scenarios.

Why here and not in a conftest: the standalone ``python -m reliability.run`` needs the same server as the
pytest fixture ``postgres_url`` (``tests/study/conftest.py``), and a context manager serves both.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["PostgresUnavailable", "pg_bin", "postgres_server"]


class PostgresUnavailable(RuntimeError):
    """No server can be started here (no binaries, or root without a ``postgres`` user); the text says why."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin() -> Path | None:
    """The folder of ``initdb``/``pg_ctl`` (Debian's newest ``/usr/lib/postgresql/*/bin``, else ``PATH``)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("initdb")
    return Path(which).parent if which else None


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Start a server (trust auth, loopback only, fsync off) in a temporary folder; yield its URL; stop it.

    Raises ``PostgresUnavailable`` when it cannot be started here, ``RuntimeError`` when ``pg_ctl start`` fails.
    """
    bindir = pg_bin()
    if bindir is None:
        raise PostgresUnavailable(
            "no PostgreSQL binaries (/usr/lib/postgresql/*/bin/initdb); install Debian's 'postgresql'"
        )
    prefix: list[str] = []
    owner: pwd.struct_passwd | None = None
    if os.geteuid() == 0:  # initdb refuses to run as root
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable("running as root and there is no 'postgres' user to run initdb as") from None
        prefix = ["runuser", "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="ecgscale-pg-"))
    if owner is not None:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    data, log, port = root / "data", root / "server.log", _free_port()
    env = {**os.environ, "LC_ALL": "C"}
    try:
        subprocess.run(
            [
                *prefix,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            env=env,
        )
        opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        started = subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(log), "-w", "-t", "60", "start"],
            capture_output=True,
            text=True,
            env=env,
        )
        if started.returncode != 0:
            text = log.read_text() if log.exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {started.stderr}\n{text}")
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            env=env,
        )
        shutil.rmtree(root, ignore_errors=True)
