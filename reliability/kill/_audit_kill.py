"""Run the ecgscale CLI and SIGKILL it just before its N-th rename or tree removal: a kill inside an atomic write.

``python -m reliability.kill._audit_kill N LOG -- ARGS...`` runs ``ecgscale ARGS...`` with a Python audit hook
(``sys.addaudithook``) that sees every ``os.rename``/``os.replace`` and ``shutil.rmtree`` of the process. Every
atomic write of ecgscale ends with a rename (``ecgscale.fileio.atomic_path``, the cache's swap into place) and a
replaced cache is removed with ``rmtree``, so "just before operation N" is the instant a temporary file is
complete but not yet under its final name, or a new cache is in place and the old one not yet deleted: windows
of microseconds that a kill from outside lands in only by luck. ``N = 0`` kills nothing and appends each
operation to LOG, which is how the harness counts them.
Only the process that started counts, and the worker it supervises: ``ecgscale train``, ``sweep`` and ``search``
run their training in a forked child (``ecgscale.study.isolation``, which sets ``ECGSCALE_SUPERVISED`` to the
command's pid there); other processes forked from it (``prepare``'s pool) inherit the hook but ignore it. A kill in
the supervised worker SIGKILLs the command first, then the worker: what ``kill -9`` of the command does.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys


def main() -> None:
    n_kill, log_path = int(sys.argv[1]), sys.argv[2]
    sys.argv = ["ecgscale", *sys.argv[4:]]  # argv[3] is "--"
    owner = os.getpid()
    seen = [0]

    def counts() -> bool:
        return os.getpid() == owner or os.environ.get("ECGSCALE_SUPERVISED") == str(owner)

    def hook(event: str, args: tuple) -> None:
        if event not in ("os.rename", "shutil.rmtree") or not counts():
            return
        seen[0] += 1
        if n_kill == 0:
            with open(log_path, "a", encoding="utf-8") as fh:
                fh.write(f"{event} {args[1] if event == 'os.rename' else args[0]}\n")
        elif seen[0] == n_kill:
            with open(log_path, "w", encoding="utf-8") as fh:
                fh.write(f"{event} {args}\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.kill(owner, signal.SIGKILL)
            os.kill(os.getpid(), signal.SIGKILL)  # the supervised worker (the line above was the command itself)

    sys.addaudithook(hook)
    runpy.run_module("ecgscale", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
