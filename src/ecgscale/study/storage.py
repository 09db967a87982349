"""Where a study lives: an SQLite file under ``<studies_dir>/<name>/study.db`` or any SQLAlchemy URL.

Workers on several machines share one study through a server database (``postgresql://user@host/db``);
optuna's RDB storage plus a heartbeat make a killed worker's trial FAILED after ``grace_period`` seconds,
and :class:`optuna.storages.RetryFailedTrialCallback` puts it back in the queue for another worker.
"""

from __future__ import annotations

import errno
import os
import re
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from ecgscale.errors import StudyError

if TYPE_CHECKING:  # pragma: no cover
    import optuna

__all__ = [
    "check_name",
    "create_or_load_study",
    "default_storage_url",
    "open_storage",
    "quiet_optuna",
    "redact_url",
    "set_user_attrs",
    "storage_disk_error",
    "study_dir",
]

_CREATE_ATTEMPTS = 5
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_name(name: str) -> str:
    """Study names become folder names: letters, digits, ``.``, ``_`` and ``-`` only."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise StudyError(f"study name {name!r} is not allowed; use letters, digits, '.', '_' and '-' (max 128)")
    return name


def study_dir(studies_dir: str | Path, name: str) -> Path:
    """The local folder of a study (trial run directories, analysis output); not created here."""
    return Path(studies_dir) / check_name(name)


def default_storage_url(studies_dir: str | Path, name: str) -> str:
    """``sqlite:///<abs studies_dir>/<name>/study.db``."""
    return f"sqlite:///{(study_dir(studies_dir, name) / 'study.db').resolve()}"


def redact_url(url: str) -> str:
    """The URL with any password replaced, for messages and logs."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def quiet_optuna() -> None:
    """Silence optuna's per-trial INFO lines (warnings still show), so the CLI need not import optuna itself."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def open_storage(
    url: str,
    *,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    max_retry: int | None = 2,
    read_only: bool = False,
) -> optuna.storages.RDBStorage:
    """Connect (and create the tables) now, so a bad URL fails before any trial starts.

    An SQLite study whose folder cannot be written (a read-only disk) is opened immutable when ``read_only``
    (the caller only reads: SQLite cannot open a WAL-mode file there otherwise), and refused with an ``OSError``
    naming the file when not (a writer would fail at its first write, after the set-up).

    With ``heartbeat_interval`` each running trial writes a heartbeat; a trial silent for ``grace_period``
    seconds (default 2 × interval) is marked FAILED by the next worker that starts a trial, and re-queued
    (at most ``max_retry`` times) with the same grid point.
    """
    import optuna
    import sqlalchemy.exc

    if heartbeat_interval is not None and (not isinstance(heartbeat_interval, int) or heartbeat_interval < 1):
        raise StudyError(f"heartbeat interval {heartbeat_interval!r} is not allowed; give whole seconds >= 1")
    if grace_period is not None and heartbeat_interval is not None and grace_period <= heartbeat_interval:
        raise StudyError(
            f"grace period {grace_period}s must be longer than the heartbeat interval "
            f"{heartbeat_interval}s, or live trials are failed"
        )
    shown = redact_url(url)
    engine_kwargs: dict = {}
    if url.startswith("sqlite"):
        # Several local worker processes may share one file: wait for the lock instead of failing at once.
        engine_kwargs["connect_args"] = {"timeout": 60}
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:" and Path(path).is_file() and not os.access(Path(path).parent, os.W_OK):
            if read_only:
                url = f"sqlite:///file:{path}?mode=ro&immutable=1&uri=true"
            else:
                code = errno.EROFS if os.statvfs(Path(path).parent).f_flag & os.ST_RDONLY else errno.EACCES
                raise OSError(code, os.strerror(code), path)
        elif path and path != ":memory:":
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StudyError(f"cannot create the folder of study storage {shown}: {exc}") from None
    elif url.startswith("postgresql"):
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
        engine_kwargs["pool_pre_ping"] = True
    with warnings.catch_warnings():  # the heartbeat API is "experimental" in optuna; we rely on it on purpose
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        callback = (
            optuna.storages.RetryFailedTrialCallback(max_retry=max_retry) if heartbeat_interval is not None else None
        )
    try:
        for attempt in range(_CREATE_ATTEMPTS):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    storage = optuna.storages.RDBStorage(
                        url,
                        engine_kwargs=engine_kwargs,
                        heartbeat_interval=heartbeat_interval,
                        grace_period=grace_period,
                        failed_trial_callback=callback,
                    )
                break
            except (
                sqlalchemy.exc.IntegrityError,
                sqlalchemy.exc.ProgrammingError,
                sqlalchemy.exc.OperationalError,
            ) as exc:
                # Workers started together on a new database race to create optuna's tables (duplicate
                # alembic_version row / table; SQLite says "table ... already exists"); the loser finds them
                # created on the next attempt. Any other OperationalError (unreachable server) is final.
                racing = not isinstance(exc, sqlalchemy.exc.OperationalError) or "already exists" in str(exc)
                if not racing or attempt == _CREATE_ATTEMPTS - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))
        if url.startswith("sqlite"):
            _fast_sqlite(storage.engine)
        return storage
    except sqlalchemy.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc).splitlines()[0]
        raise StudyError(f"cannot reach study storage {shown}: {reason}") from None
    except sqlalchemy.exc.ArgumentError as exc:
        raise StudyError(f"study storage URL {shown} is not valid: {exc}") from None
    except sqlalchemy.exc.NoSuchModuleError as exc:
        raise StudyError(f"study storage URL {shown} names an unknown database dialect: {exc}") from None
    except ModuleNotFoundError as exc:
        hint = " (pip install 'ecgscale[postgres]')" if "psycopg" in str(exc) else ""
        raise StudyError(f"the driver for {shown} is not installed: {exc}{hint}") from None
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise StudyError(f"study storage {shown} failed: {str(exc).splitlines()[0]}") from None


def _fast_sqlite(engine: object) -> None:
    """WAL journal + ``synchronous=NORMAL``: a commit no longer waits for an fsync (22 ms here, ~30 per trial).

    Still durable across a process kill (only an OS crash can lose the last commits), and WAL lets the local
    workers read while one writes. Pooled connections are dropped so every new one gets the pragmas.
    """
    import sqlalchemy

    def _pragmas(dbapi_connection: object, _record: object) -> None:
        cur = dbapi_connection.cursor()  # type: ignore[attr-defined]
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    sqlalchemy.event.listen(engine, "connect", _pragmas)
    engine.dispose()  # type: ignore[attr-defined]


def create_or_load_study(
    name: str,
    storage: optuna.storages.BaseStorage,
    *,
    attrs: dict,
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    shown_url: str = "",
) -> optuna.Study:
    """Open study ``name`` (creating it if absent) after checking it describes the same experiment.

    ``attrs`` (kind, grid or space, data identity, training protocol) are written once, when the study is new;
    an existing study whose stored values differ is refused with a :class:`StudyError` naming the first
    differing key, and nothing in it is overwritten.
    """
    import optuna

    check_name(name)
    study = optuna.create_study(
        study_name=name, storage=storage, sampler=sampler, pruner=pruner, direction="maximize", load_if_exists=True
    )
    stored = study.user_attrs
    for key, value in attrs.items():
        if key not in stored:
            continue
        if _jsonish(stored[key]) != _jsonish(value):
            raise StudyError(
                f"study {name!r} in {shown_url or 'storage'} already exists with a different {key!r}: "
                f"stored {_short(stored[key])}, asked {_short(value)}; use another --study name or the same settings"
            )
    for key, value in attrs.items():
        if key not in stored:
            study.set_user_attr(key, value)
    return study


def set_user_attrs(storage: optuna.storages.BaseStorage, trial_id: int, attrs: dict, *, failed: bool = False) -> None:
    """Write a trial's user attributes in one transaction (what ``trial.set_user_attr`` per key stores).

    Why: optuna writes each attribute in its own transaction, with a lookup of the trial and of the key, 3-6 ms
    each on SQLite; a sweep trial stores about 15, so they cost as much as the test evaluation. Here one
    statement replaces them all (rows for the same keys are deleted first, as optuna's upsert would overwrite
    them). Storages other than optuna's RDB storage get one ``set_trial_user_attr`` call per key.

    Raises ``optuna.exceptions.UpdateFinishedTrialError`` when the trial is already finished, as optuna does;
    ``failed=True`` also writes to a FAILED trial (a dead trial's reason, when another worker's heartbeat check
    failed it first; RDB storage only). A trial object read earlier (``optuna.Trial.user_attrs``) does not see
    the new values; the storage does.
    """
    import json

    import optuna
    import sqlalchemy
    from optuna.storages._rdb import models

    backend = getattr(storage, "_backend", storage)
    if not isinstance(backend, optuna.storages.RDBStorage):
        for key, value in attrs.items():
            storage.set_trial_user_attr(trial_id, key, value)
        return
    if not attrs:
        return
    table = models.TrialUserAttributeModel.__table__
    rows = [{"trial_id": trial_id, "key": key, "value_json": json.dumps(value)} for key, value in attrs.items()]
    trials = models.TrialModel.__table__
    with backend.engine.begin() as conn:
        # The write comes first: an SQLite transaction that read before writing cannot wait for another worker's
        # write lock (SQLITE_BUSY at once); one that starts by writing waits up to the connection's timeout.
        conn.execute(table.delete().where(table.c.trial_id == trial_id, table.c.key.in_(list(attrs))))
        state = conn.execute(sqlalchemy.select(trials.c.state).where(trials.c.trial_id == trial_id)).scalar_one()
        if not (failed and state == optuna.trial.TrialState.FAIL):
            backend.check_trial_is_updatable(trial_id, state)
        conn.execute(table.insert(), rows)


def _jsonish(value: object) -> object:
    import json

    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _short(value: object, limit: int = 160) -> str:
    import json

    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def storage_disk_error(exc: BaseException, url: str) -> OSError | None:
    """``exc`` as an ``OSError`` naming the study's file when the storage write failed for lack of disk, else ``None``.

    Why: a full or read-only disk under an SQLite study surfaces as ``sqlalchemy.exc.OperationalError``
    ("database or disk is full", "attempt to write a readonly database"), often wrapped by optuna in a
    ``StorageInternalError`` or hidden behind a later ``AssertionError``; none is an ``OSError``, so the CLI would
    print a traceback. The whole exception chain (``__cause__``/``__context__``) is searched; an ``OSError`` with
    a disk errno found there is returned as is. The file named is the ``.db`` file (``url`` redacted otherwise).
    """
    import errno
    import os
    import sqlite3

    from ecgscale.fileio import DISK_ERRNOS

    where = url.split(":///", 1)[1] if url.startswith("sqlite:///") else redact_url(url)
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in DISK_ERRNOS:
            return e
        text = str(e).lower()
        if isinstance(e, sqlite3.OperationalError) or type(e).__name__ in ("OperationalError", "StorageInternalError"):
            code = (
                errno.ENOSPC
                if "database or disk is full" in text
                else errno.EROFS
                if "readonly database" in text
                else None
            )
            if code is not None:
                return OSError(code, os.strerror(code), where)
        stack.extend((e.__cause__, e.__context__))
    return None
