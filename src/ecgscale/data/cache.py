"""The on-disk cache: every record read once, preprocessed once, stored as one memory-mapped signal file.

Layout (``docs/cache.md``)::

    CACHE/
      cache.json     format version, preprocessing config + hash, label space, dtype, fs, window, counts,
                     per-source label counts, skip summary, split config, build parameters hash
      signals.bin    flat float16 (or float32) array; record i is a C-ordered (12, n_i) block
      offsets.npy    int64 (N + 1,): record i spans samples offsets[i]:offsets[i+1] (× 12 values)
      labels.npy     uint8 (N, K) multi-hot over the cache's label space
      manifest.csv   one row per record (index, record_id, source, patient_id, age, sex, fs, n_samples, ...)
      skipped.csv    path, reason, message of every file that could not be used

``build_cache`` streams: worker processes read and preprocess records (``multiprocessing.Pool.imap`` keeps
the input order) and write each signal into a slot of a shared scratch file (``_Slots``), the parent appends
each slot to ``signals.bin`` as the record's metadata arrives, and a semaphore caps the records in flight, so
memory stays bounded whatever the data set size. The cache is built in a temporary
directory beside ``out`` and renamed into place only when complete.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import logging
import os
import secrets
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ecgscale import __version__
from ecgscale.data import labels as _labels
from ecgscale.data.labels import LabelSpace
from ecgscale.data.readers.label_table import LabelTable
from ecgscale.data.records import STANDARD_LEADS, EcgRecord
from ecgscale.data.splits import SPLIT_NAMES, SplitConfig, assign_splits, official_split_of_fold
from ecgscale.data.transforms import PreprocessConfig, preprocess, window
from ecgscale.errors import ConfigError, EcgscaleError, RecordError
from ecgscale.fileio import as_disk_error, read_json, write_json_atomic, write_text_atomic, writer_lock

if TYPE_CHECKING:
    from ecgscale.data.datasets import CacheDataset

__all__ = [
    "CACHE_FORMAT_VERSION",
    "CacheSummary",
    "EcgCache",
    "SkippedRecord",
    "build_cache",
    "build_cache_from_records",
    "open_cache",
]

log = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1
N_LEADS = len(STANDARD_LEADS)
_MANIFEST_COLUMNS = [
    "index",
    "record_id",
    "source",
    "patient_id",
    "age",
    "sex",
    "fs",
    "n_samples",
    "duration_s",
    "n_stored",
    "codes",
    "unknown_codes",
    "flat_leads",
    "official_split",
    "fold",
    "split",
    "path",
]
_OPTIONAL_COLUMNS = {"fold"}  # absent from manifests written before fold roles existed: read as ""
_STR_COLUMNS = [
    "record_id",
    "source",
    "patient_id",
    "sex",
    "codes",
    "unknown_codes",
    "flat_leads",
    "official_split",
    "fold",
    "split",
    "path",
]
_FLOAT16_MAX = float(np.finfo(np.float16).max)


# --------------------------------------------------------------------------------------------------- summary
@dataclass(frozen=True, slots=True)
class SkippedRecord:
    path: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class CacheSummary:
    """What a ``build_cache`` call did; ``status`` is ``built``, ``rebuilt``, ``up_to_date`` or ``resplit``."""

    out: Path
    status: str
    n_records: int
    n_found: int
    n_skipped: int
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    skipped: tuple[SkippedRecord, ...] = ()
    label_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    records_per_source: dict[str, int] = field(default_factory=dict)
    n_unknown_codes: int = 0
    unknown_codes: dict[str, int] = field(default_factory=dict)
    split_counts: dict[str, int] = field(default_factory=dict)
    label_space: str = ""
    preprocess_hash: str = ""
    seconds: float = 0.0

    @property
    def records_per_s(self) -> float:
        return self.n_found / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "status": self.status,
            "n_records": self.n_records,
            "n_found": self.n_found,
            "n_skipped": self.n_skipped,
            "skipped_by_reason": dict(self.skipped_by_reason),
            "label_counts": {k: dict(v) for k, v in self.label_counts.items()},
            "records_per_source": dict(self.records_per_source),
            "n_unknown_codes": self.n_unknown_codes,
            "unknown_codes": dict(self.unknown_codes),
            "split_counts": dict(self.split_counts),
            "label_space": self.label_space,
            "preprocess_hash": self.preprocess_hash,
            "seconds": self.seconds,
        }


# --------------------------------------------------------------------------------------------------- labels
_PTBXL_PREFIX = "ptbxl:"


def _label_spec(labels: str | LabelSpace | LabelTable) -> str:
    """A string that identifies the label choice in the build parameters."""
    if isinstance(labels, LabelTable):  # its content, not only its path: an edited table means a rebuild
        return f"table:{labels.path.resolve()}:{labels.digest()}:{labels.map_to or 'user'}"
    if isinstance(labels, LabelSpace):
        digest = hashlib.sha256(json.dumps(labels.to_dict(), sort_keys=True).encode()).hexdigest()[:12]
        return f"space:{labels.name}:{digest}"
    if not isinstance(labels, str):
        raise ConfigError(
            f"labels {labels!r} must be a LabelSpace or one of auto, cinc2021, tianchi, ptbxl:<task>", key="labels"
        )
    if labels in ("auto", "cinc2021", "cinc2021-all", "tianchi") or labels.startswith(_PTBXL_PREFIX):
        return labels
    raise ConfigError(
        f"labels {labels!r} is not allowed (auto, cinc2021, cinc2021-all, tianchi, ptbxl:<task>, or a LabelSpace)",
        key="labels",
    )


def _resolve_space(spec: str | LabelSpace | LabelTable, discovery: Any) -> LabelSpace:
    """The label space of a build, chosen before any signal is read (so a bad choice fails fast).

    ``auto``: one format → its own space (``readers.default_label_space``: CinC 2021 scored classes, the
    Tianchi class list, PTB-XL superdiagnostic); several formats → the CinC 2021 scored classes with Tianchi
    names and PTB-XL statements added as aliases of the matching classes (``labels.cinc2021_scored(aliases=)``).
    """
    from ecgscale.data.readers import Discovery, default_label_space
    from ecgscale.data.readers.ptbxl import PTBXL_STATEMENTS

    if isinstance(spec, LabelSpace):
        return spec
    if isinstance(spec, LabelTable):
        return spec.space(map_to=spec.map_to)
    formats = {"cinc2021" if f == "wfdb" else f for f in discovery.formats}
    if spec == "auto":
        if len(formats) == 1:
            return default_label_space(discovery)
        spec = "cinc2021"
    if spec == "cinc2021":
        aliases: dict[str, str] = {}
        if "tianchi" in formats:
            aliases.update(_labels.tianchi_to_snomed())
        if "ptbxl" in formats:
            aliases.update(_labels.ptbxl_to_snomed())
        if "code15" in formats:
            from ecgscale.data.readers.hdf5 import code15_to_snomed

            aliases.update(code15_to_snomed())
        return _labels.cinc2021_scored(aliases=aliases or None)
    if spec == "cinc2021-all":
        return _labels.cinc2021_all()
    if spec == "tianchi":
        tianchi = [r for r in discovery.refs if r.format == "tianchi"]
        if not tianchi:
            raise ConfigError("labels 'tianchi' but no Tianchi records were found", key="labels")
        return default_label_space(Discovery(tianchi, []))
    task = spec[len(_PTBXL_PREFIX) :]
    roots = sorted({str(r.extra["root"]) for r in discovery.refs if r.format == "ptbxl" and r.extra.get("root")})
    if not roots:
        raise ConfigError(f"labels {spec!r} but no PTB-XL folder (ptbxl_database.csv) was found", key="labels")
    try:
        return _labels.ptbxl_space(task, Path(roots[0]) / PTBXL_STATEMENTS)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"labels {spec!r}: {exc}", key="labels") from exc


# --------------------------------------------------------------------------------------------------- workers
_WORKER_CONFIG: PreprocessConfig | None = None
_WORKER_SLOTS: _Slots | None = None
_SLOTS_MAX_BYTES = 256 * 2**20  # records that do not fit a slot of the scratch file travel through the pipe


class _Slots:
    """A scratch file of fixed-size slots, memory-mapped by the parent and every worker.

    Why: a preprocessed 10 s record is 60 kB, and sending it back through ``Pool.imap``'s pipe (pickle, 64 kB
    pipe buffer, unpickle) costs about 0.2 ms of CPU per record, half of what reading and preprocessing it
    costs. A worker writes the signal of input ``i`` into slot ``i % n`` and returns only its metadata; the
    parent appends the slot to ``signals.bin``. Slot ``i % n`` is free again when task ``i + n`` is handed
    out, because the semaphore of ``_iter_prepared`` releases a permit only after the parent has written
    result ``i``. A file rather than ``multiprocessing.shared_memory`` works under every start method without
    the resource tracker of Python < 3.13 unlinking segments of workers; it lives in the build's temporary
    folder, so a killed prepare leaves nothing behind that the next one does not remove.
    """

    __slots__ = ("buffer", "n_slots", "path", "slot_bytes")

    def __init__(self, path: str, slot_bytes: int, n_slots: int):
        self.path = path
        self.slot_bytes = slot_bytes
        self.n_slots = n_slots
        self.buffer: Any = None

    def __reduce__(self) -> tuple[Any, ...]:  # the mapping itself is per process
        return _Slots, (self.path, self.slot_bytes, self.n_slots)

    @classmethod
    def create(cls, folder: Path, n_slots: int, slot_bytes: int) -> _Slots | None:
        """The scratch file, its blocks allocated now; ``None`` (signals go through the pipe) if the disk refuses.

        Why allocate: a store into a memory-mapped page that the filesystem cannot back (a full disk) is not
        an ``OSError`` but a SIGBUS that kills the worker, and ``Pool.imap`` then waits forever for its result.
        """
        path = folder / "slots.scratch"
        try:
            with open(path, "w+b") as fh:
                os.posix_fallocate(fh.fileno(), 0, n_slots * slot_bytes)
        except OSError as exc:
            log.debug("cannot allocate %s (%s); sending signals through the pipe", path, exc)
            with contextlib.suppress(OSError):
                os.unlink(path)
            return None
        return cls(str(path), slot_bytes, n_slots).attach()

    def attach(self) -> _Slots:
        import mmap

        with open(self.path, "r+b") as fh:
            self.buffer = mmap.mmap(fh.fileno(), self.n_slots * self.slot_bytes)
        return self

    def view(self, slot: int, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return np.ndarray(shape, dtype=dtype, buffer=self.buffer, offset=slot * self.slot_bytes)

    def close(self) -> None:
        with contextlib.suppress(BufferError):  # a caller still holds a view: the mapping goes with the view
            self.buffer.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def _init_worker(config: PreprocessConfig, slots: _Slots | None = None) -> None:
    global _WORKER_CONFIG, _WORKER_SLOTS
    _WORKER_CONFIG = config
    _WORKER_SLOTS = None
    if slots is not None:
        try:
            _WORKER_SLOTS = slots.attach()
        except (OSError, ValueError) as exc:  # no shared mapping here: signals go through the pipe
            log.debug("worker cannot map %s (%s); sending signals through the pipe", slots.path, exc)


def _prepare_one(ref: Any) -> tuple[bool, dict[str, Any]]:
    """Read + preprocess one record in a worker; never raises, so one bad file cannot stop the build."""
    from ecgscale.data.readers import read

    config = _WORKER_CONFIG
    if config is None:  # _init_worker runs first in every worker; this guards direct calls
        raise RuntimeError("_prepare_one called before _init_worker")
    try:
        record = read(ref)
        x = preprocess(record, config)
    except RecordError as exc:
        return False, {"path": exc.path, "reason": exc.reason, "message": str(exc)}
    except Exception as exc:  # a reader bug on a strange file must not kill a 90k-record build
        return False, {
            "path": str(ref.path),
            "reason": "unexpected_error",
            "message": f"{ref.path}: {type(exc).__name__}: {exc}",
        }
    extra = ref.extra or {}
    return True, _prepared_item(record, x, config, fmt=ref.format, source=ref.source, extra=extra, ref_path=ref.path)


def _prepare_record(record: EcgRecord, config: PreprocessConfig) -> tuple[bool, dict[str, Any]]:
    """``_prepare_one`` for a record already in memory (``build_cache_from_records``); never raises."""
    where = str(record.path) if record.path is not None else f"<record {record.record_id}>"
    try:
        x = preprocess(record, config)
    except RecordError as exc:
        return False, {"path": where, "reason": exc.reason, "message": str(exc)}
    extra = {"split": str((record.meta or {}).get("split", ""))}  # a split the user fixed (method="official")
    return True, _prepared_item(record, x, config, fmt="memory", source="memory", extra=extra, ref_path=where)


def _prepared_item(
    record: EcgRecord,
    x: np.ndarray,
    config: PreprocessConfig,
    *,
    fmt: str,
    source: str,
    extra: Mapping[str, Any],
    ref_path: object,
) -> dict[str, Any]:
    """The manifest fields and stored signal of one preprocessed record."""
    if config.dtype == "float16":
        x = np.clip(x, -_FLOAT16_MAX, _FLOAT16_MAX, out=x).astype(np.float16)
    official = str(extra.get("split", "") or "")
    if official not in SPLIT_NAMES:
        official = official_split_of_fold(extra.get("strat_fold"))
    meta = record.meta or {}
    return {
        "record_id": record.record_id,
        "source": record.source or source,
        "format": fmt,
        "patient_id": "" if record.patient_id is None else str(record.patient_id),
        "age": np.nan if record.age is None else float(record.age),
        "sex": record.sex or "",
        "fs": float(record.fs),
        "n_samples": record.n_samples,
        "duration_s": round(record.duration_s, 4),
        "n_stored": int(x.shape[1]),
        "codes": tuple(record.codes),
        "flat_leads": str(meta.get("flat_leads", "")),
        "official_split": official,
        "fold": _fold_of(extra.get("strat_fold")),
        "path": str(record.path if record.path is not None else ref_path),
        "signal": x,
    }


def _fold_of(value: object) -> str:
    """A PTB-XL ``strat_fold`` as text for the manifest (``""`` when the record has none)."""
    try:
        fold = int(float(str(value)))
    except (TypeError, ValueError, OverflowError):
        return ""
    return str(fold) if fold >= 1 else ""


def _prepare_to_slot(item: tuple[int, Any]) -> tuple[bool, dict[str, Any]]:
    """``_prepare_one`` in a pool worker, its signal written to slot ``index % n_slots`` when it fits."""
    index, ref = item
    ok, result = _prepare_one(ref)
    slots = _WORKER_SLOTS
    if ok and slots is not None and result["signal"].nbytes <= slots.slot_bytes:
        x = result.pop("signal")
        slot = index % slots.n_slots
        slots.view(slot, x.shape, x.dtype)[...] = x
        result["slot"] = (slot, x.shape)
    return ok, result


def _bounded(items: Iterable[Any], sem: threading.Semaphore, stop: threading.Event) -> Iterator[Any]:
    for item in items:
        sem.acquire()
        if stop.is_set():  # the consumer went away: let the pool's task thread finish instead of blocking
            return
        yield item


def _iter_prepared(
    refs: Sequence[Any], config: PreprocessConfig, workers: int, chunksize: int, scratch: Path | None = None
) -> Iterator[tuple[bool, dict[str, Any]]]:
    """Results in input order. At most ``limit`` records are in flight, so a slow disk writer never lets
    finished signals pile up in memory (``Pool.imap`` alone would queue every result).

    With worker processes and a ``scratch`` folder, a result's ``signal`` may be a view of a shared slot
    (``_Slots``): valid until the next result is requested.
    """
    if workers <= 1 or len(refs) <= 1:
        _init_worker(config)
        for ref in refs:
            yield _prepare_one(ref)
        return
    import multiprocessing as mp

    limit = max(chunksize * (workers + 2), 8)  # must be >= chunksize, or imap could wait on a half chunk
    dtype = np.dtype(config.dtype)
    slot_bytes = N_LEADS * config.max_store_samples * dtype.itemsize  # preprocess never stores more
    slot_bytes = min(slot_bytes, _SLOTS_MAX_BYTES // limit // 64 * 64)
    slots = _Slots.create(scratch, limit, slot_bytes) if scratch is not None else None
    sem = threading.Semaphore(limit)
    stop = threading.Event()
    try:
        with mp.get_context().Pool(workers, initializer=_init_worker, initargs=(config, slots)) as pool:
            try:
                for ok, result in pool.imap(_prepare_to_slot, _bounded(enumerate(refs), sem, stop), chunksize):
                    if ok and "slot" in result:
                        slot, shape = result.pop("slot")
                        result["signal"] = slots.view(slot, shape, dtype)  # type: ignore[union-attr]
                    yield ok, result
                    del result
                    sem.release()  # only now may a worker reuse this result's slot
            except KeyboardInterrupt:
                stop.set()
                sem.release(limit + 1)
                raise  # Ctrl-C reached the workers too: Pool.__exit__ terminates them at once
            except BaseException:
                # The consumer stopped early (a full disk, an error, an abandoned iterator): let the task thread
                # finish and the workers drain their few queued records before Pool.__exit__ terminates them.
                stop.set()
                sem.release(limit + 1)
                _close_and_join(pool, timeout=_POOL_DRAIN_S)
                raise
            stop.set()
            sem.release(limit + 1)
    finally:
        if slots is not None:
            slots.close()


_POOL_DRAIN_S = 30.0


def _close_and_join(pool: Any, *, timeout: float) -> None:
    """``pool.close(); pool.join()`` bounded by ``timeout`` (a stuck worker is then left to ``terminate``).

    Why: ``Pool.terminate`` SIGTERMs workers; one killed while sending a result holds the result queue's write
    lock forever, and the pool's task thread, if still running, then blocks on that lock and ``terminate``
    waits for it forever (seen as a hung ``prepare`` on a full disk). Once the task thread has finished and the
    workers have exited, ``terminate`` has nothing left to kill.
    """
    pool.close()
    joiner = threading.Thread(target=pool.join, name="ecgscale-pool-join", daemon=True)
    joiner.start()
    joiner.join(timeout)
    if joiner.is_alive():
        log.warning("worker processes did not finish within %.0f s; terminating them", timeout)


def _append_block(fh: Any, x: np.ndarray) -> None:
    fh.write(np.ascontiguousarray(x).data)  # the buffer itself: no bytes copy


# --------------------------------------------------------------------------------------------------- build
def _build_params(
    config: PreprocessConfig, label_spec: str, paths: Sequence[Path], ptbxl_fs: int, *, drop_unlabelled: bool = False
) -> dict[str, Any]:
    """What identifies a cache's content: a change here means the cache must be rebuilt (not the split)."""
    params: dict[str, Any] = {
        "format_version": CACHE_FORMAT_VERSION,
        "preprocess_hash": config.hash(),
        "labels": label_spec,
        "sources": sorted(str(p.resolve()) for p in paths),
        "ptbxl_fs": ptbxl_fs,
    }
    if drop_unlabelled:  # only when set, so caches built before the option keep their hash
        params["drop_unlabelled"] = True
    return params


def _params_hash(params: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def _describe_mismatch(old: Mapping[str, Any], new_params: Mapping[str, Any], config: PreprocessConfig) -> str:
    diffs = []
    old_params = old.get("params", {})
    old_pre = old.get("preprocess", {})
    for key, value in config.to_dict().items():
        if old_pre.get(key) != value:
            diffs.append(f"{key} {old_pre.get(key)!r} → {value!r}")
    if old_params.get("format_version") != new_params["format_version"]:
        diffs.append(f"format version {old_params.get('format_version')} → {new_params['format_version']}")
    elif old_params.get("preprocess_hash") != new_params["preprocess_hash"] and not diffs:
        diffs.append("preprocessing pipeline version changed")
    if old_params.get("labels") != new_params["labels"]:
        diffs.append(f"labels {old_params.get('labels')!r} → {new_params['labels']!r}")
    if old_params.get("ptbxl_fs") != new_params["ptbxl_fs"]:
        diffs.append(f"ptbxl_fs {old_params.get('ptbxl_fs')} → {new_params['ptbxl_fs']}")
    if old_params.get("sources") != new_params["sources"]:
        diffs.append(f"sources {old_params.get('sources')} → {new_params['sources']}")
    if bool(old_params.get("drop_unlabelled")) != bool(new_params.get("drop_unlabelled")):
        diffs.append(
            f"drop_unlabelled {bool(old_params.get('drop_unlabelled'))} → {bool(new_params.get('drop_unlabelled'))}"
        )
    return "; ".join(diffs) or "parameters differ"


def _lock_file(out: Path) -> Path:
    """The writer lock of cache ``out``: beside it, because ``out`` itself is replaced by a rename."""
    return out.parent / f".{out.name}.lock"


def _remove_stale_temps(out: Path) -> None:
    """Clean up after a killed prepare. Called with the cache's writer lock held, so no live process owns
    any ``.tmp-``/``.old-`` folder of ``out`` (a pid check would be fooled by pid reuse).

    ``.tmp-`` folders are unfinished builds and are removed. An ``.old-`` folder is a complete previous cache
    moved aside just before the swap: it is put back if ``out`` is missing, else removed.
    """
    for leftover in sorted(out.parent.glob(f".{out.name}.*-*")):
        kind = leftover.name[len(out.name) + 2 :].partition("-")[0]
        if kind not in ("tmp", "old"):
            continue
        if kind == "old" and not out.exists() and (leftover / "cache.json").is_file():
            log.warning("restoring %s from %s (a prepare was killed while replacing it)", out, leftover)
            os.replace(leftover, out)
        else:
            log.info("removing %s left by an interrupted prepare", leftover)
            shutil.rmtree(leftover, ignore_errors=True)


def _available_cores() -> int:
    """Cores this process may run on (a container or ``taskset`` can allow fewer than ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def _as_paths(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    out = [Path(p) for p in items]
    if not out:
        raise ConfigError("no source paths given", key="paths")
    missing = [str(p) for p in out if not p.exists()]
    if missing:
        raise ConfigError(f"source path(s) do not exist: {', '.join(missing)}", key="paths")
    return out


def _summary_from_info(out: Path, info: Mapping[str, Any], status: str, seconds: float) -> CacheSummary:
    skipped = info.get("skipped", {})
    return CacheSummary(
        out=out,
        status=status,
        n_records=int(info["n_records"]),
        n_found=int(info.get("n_found", info["n_records"])),
        n_skipped=int(skipped.get("n_skipped", 0)),
        skipped_by_reason=dict(skipped.get("by_reason", {})),
        label_counts={k: dict(v) for k, v in info.get("label_counts", {}).items()},
        records_per_source=dict(info.get("records_per_source", {})),
        n_unknown_codes=int(info.get("unknown_codes", {}).get("n_occurrences", 0)),
        unknown_codes=dict(info.get("unknown_codes", {}).get("top", {})),
        split_counts=dict(info.get("split_counts", {})),
        label_space=str(info.get("label_space", {}).get("name", "")),
        preprocess_hash=str(info.get("preprocess_hash", "")),
        seconds=seconds,
    )


@contextlib.contextmanager
def _cache_lock(out: Path, *, rebuild: bool) -> Iterator[None]:
    """The writer lock of cache ``out`` for one ``build_cache`` (see there)."""
    with contextlib.ExitStack() as stack:
        try:
            if not out.parent.is_dir():
                out.parent.mkdir(parents=True, exist_ok=True)
            stack.enter_context(
                writer_lock(
                    _lock_file(out),
                    guards=out,
                    action="ecgscale prepare",
                    hint="wait for it to finish or choose another --out",
                )
            )
        except OSError as exc:
            # A folder nobody can write (read-only disk, no permission) cannot be written by another prepare
            # either: checking an existing cache there needs no lock, and any write still fails, naming the file.
            if (
                rebuild
                or exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM)
                or not (out / "cache.json").is_file()
            ):
                raise
        yield


def build_cache(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    config: PreprocessConfig | None = None,
    labels: str | LabelSpace | LabelTable = "auto",
    split: SplitConfig | None = None,
    workers: int | None = None,
    progress: bool = True,
    rebuild: bool = False,
    chunksize: int | None = None,
    ptbxl_fs: int = 500,
    drop_unlabelled: bool = False,
) -> CacheSummary:
    """Read every record under ``paths`` once, preprocess it, and store the result as a cache at ``out``.

    An existing cache with the same parameters (preprocessing hash, label choice, source paths) is reused
    (``status="up_to_date"``; a different ``split`` is recomputed without re-reading signals). One with other
    parameters is refused with a ``ConfigError`` unless ``rebuild=True``. Bad records are skipped, logged and
    counted by reason; the build fails only if no record at all is usable. ``workers=None`` uses every core;
    ``ptbxl_fs`` picks PTB-XL's 500 Hz or 100 Hz records. ``drop_unlabelled`` leaves out (as counted skips with
    reason ``no_class``) records with no class of the label space, as the PTB-XL benchmark does per task: its
    rhythm and form AUROCs are computed on the records that carry a statement of the task.

    The whole check/build/resplit/swap runs under the cache's writer lock (``.<out>.lock`` beside ``out``): a
    second prepare on the same ``out`` is refused at once with a ``ConfigError`` naming the running one. A
    cache in a folder this process cannot write (read-only disk) is still reported up to date when it is.
    """
    out = Path(out)
    with _cache_lock(out, rebuild=rebuild):
        t0 = time.perf_counter()
        config = config or PreprocessConfig()
        split = split or SplitConfig()
        src = _as_paths(paths)
        label_spec = _label_spec(labels)
        if ptbxl_fs not in (100, 500):
            why = "is not allowed (PTB-XL has 100 and 500 Hz records)"
            raise ConfigError(f"ptbxl_fs {ptbxl_fs!r} {why}", key="ptbxl_fs")
        params = _build_params(config, label_spec, src, ptbxl_fs, drop_unlabelled=drop_unlabelled)
        params_hash = _params_hash(params)

        if out.parent.is_dir():
            _remove_stale_temps(out)
        existing: dict[str, Any] | None = None
        if out.exists():
            info_path = out / "cache.json"
            if info_path.is_file():
                try:
                    existing = read_json(info_path)
                except (OSError, ValueError) as exc:
                    if not rebuild:
                        raise ConfigError(
                            f"{info_path} is unreadable ({exc}); pass --rebuild to replace the cache"
                        ) from exc
            elif out.is_file() or any(out.iterdir()):
                raise ConfigError(f"{out} exists and is not an ecgscale cache (no cache.json); choose another --out")
        if existing is not None and not rebuild:
            if existing.get("params_hash") != params_hash:
                why = _describe_mismatch(existing, params, config)
                raise ConfigError(
                    f"{out}: the existing cache was built with other parameters ({why});"
                    " pass --rebuild (rebuild=True) to replace it, or choose another --out",
                    key="cache",
                )
            if existing.get("split") != split.to_dict():
                EcgCache(out).resplit(split)
                info = read_json(out / "cache.json")
                log.info("%s: cache up to date; split recomputed (%s)", out, split.method)
                return _summary_from_info(out, info, "resplit", time.perf_counter() - t0)
            EcgCache(out)  # a damaged cache is an error (asking for --rebuild), never "up to date"
            log.debug("%s: cache up to date", out)
            return _summary_from_info(out, existing, "up_to_date", time.perf_counter() - t0)

        from ecgscale.data.readers import discover

        with _spinner(progress, f"finding records in {', '.join(map(str, src))}"):
            discovery = discover(src, ptbxl_fs=ptbxl_fs)
        refs = list(discovery.refs)
        skips: list[SkippedRecord] = []
        for s in discovery.skipped:
            skips.append(SkippedRecord(str(s.path), str(s.reason), str(s.message)))
            log.warning("skipped %s (%s): %s", s.path, s.reason, s.message)
        if isinstance(labels, LabelTable):  # the table's labels replace the files'; records without a row skip
            refs, no_row, _ = labels.apply(refs)
            skips.extend(SkippedRecord(str(s.path), s.reason, s.message) for s in no_row)
        n_found = len(refs) + len(skips)
        if not refs:
            by_reason = Counter(sk.reason for sk in skips)
            raise ConfigError(
                f"no ECG record found under {', '.join(map(str, src))}"
                + (f" ({len(skips)} file(s) skipped: {dict(by_reason)})" if skips else ""),
                key="paths",
            )
        space = _resolve_space(labels, discovery)
        if drop_unlabelled:
            refs = _drop_unlabelled(refs, space, skips)
            if not refs:
                raise ConfigError(
                    f"no record under {', '.join(map(str, src))} has a class of {space.name}; "
                    "drop_unlabelled (--drop-unlabelled) left nothing",
                    key="labels",
                )
        _check_fold_roles(refs, split)
        workers = _available_cores() if workers is None else int(workers)
        if workers < 1:
            raise ConfigError(f"workers {workers} must be at least 1", key="workers")
        workers = max(1, min(workers, len(refs)))
        if chunksize is None:
            chunksize = max(1, min(16, len(refs) // (workers * 8) if workers > 1 else 1))

        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            tmp.mkdir()
        except OSError as exc:  # a read-only or full disk: name the cache, not the temporary folder
            raise (as_disk_error(exc, out) or exc) from exc
        try:
            info = _write_cache(
                tmp,
                refs,
                skips,
                config=config,
                space=space,
                split=split,
                workers=workers,
                chunksize=chunksize,
                progress=progress,
                params=params,
                params_hash=params_hash,
                n_found=n_found,
                sources=src,
            )
            _swap_into_place(tmp, out)
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            disk = as_disk_error(exc, out) if isinstance(exc, Exception) else None
            if disk is not None and disk is not exc:  # e.g. signals.bin's write: ENOSPC without a file name
                raise disk from exc
            raise
        status = "rebuilt" if existing is not None else "built"
        summary = _summary_from_info(out, info, status, time.perf_counter() - t0)
        return dataclasses.replace(summary, skipped=tuple(skips))


def _drop_unlabelled(refs: Sequence[Any], space: LabelSpace, skips: list[SkippedRecord]) -> list[Any]:
    """Refs with at least one class of ``space``; the others become ``no_class`` skips (counted, never silent)."""
    kept = []
    for ref in refs:
        codes = ref.extra.get("codes", ())
        if space.encode(codes).any():
            kept.append(ref)
            continue
        shown = ", ".join(map(str, codes)) or "none"
        skips.append(SkippedRecord(str(ref.path), "no_class", f"no class of {space.name} among its codes ({shown})"))
    n = len(refs) - len(kept)
    if n:
        log.info("%d record(s) without a class of %s left out (drop_unlabelled)", n, space.name)
    return kept


def _check_fold_roles(refs: Sequence[Any], split: SplitConfig) -> None:
    """Fold roles that cannot work (a role whose folds hold no record) fail before any signal is read."""
    if split.method not in ("official", "auto"):
        return
    folds = np.array([int(_fold_of((r.extra or {}).get("strat_fold")) or 0) for r in refs], dtype=np.int64)
    if (folds > 0).any():
        from ecgscale.data.splits import _roles_of_folds

        _roles_of_folds(folds[folds > 0], split, strict=split.method == "official", warn_unused=False)


def build_cache_from_records(
    records: Iterable[EcgRecord],
    out: str | os.PathLike[str],
    *,
    labels: LabelSpace,
    config: PreprocessConfig | None = None,
    split: SplitConfig | None = None,
    progress: bool = True,
    rebuild: bool = False,
    total: int | None = None,
    source: str = "memory",
) -> CacheSummary:
    """Build a cache from records already in memory (a user's own loader), with the writer of ``build_cache``.

    ``records`` is consumed once, one record at a time, so a generator over a large corpus stays in bounded
    memory. Each record's ``codes`` are encoded in ``labels``; a record that cannot be preprocessed (NaN
    samples, missing leads, ...) is a counted skip, as a bad file is for ``build_cache``. There is no source
    path to compare, so an existing cache at ``out`` is never reported up to date: it is refused unless
    ``rebuild=True``. ``total`` (the number of records, when known) only sizes the progress bar; ``source``
    names the data in the build parameters and in ``manifest.source`` for records that give none. A record's
    ``meta["split"]`` (``train``/``val``/``test``) is its fixed split, used by ``SplitConfig(method="official")``.
    """
    if not isinstance(labels, LabelSpace):
        raise ConfigError(f"labels must be a LabelSpace, got {type(labels).__name__}", key="labels")
    out = Path(out)
    with _cache_lock(out, rebuild=rebuild):
        t0 = time.perf_counter()
        config = config or PreprocessConfig()
        split = split or SplitConfig()
        params = {
            "format_version": CACHE_FORMAT_VERSION,
            "preprocess_hash": config.hash(),
            "labels": _label_spec(labels),
            "sources": [f"<{source}>"],
            "ptbxl_fs": None,
        }
        if out.parent.is_dir():
            _remove_stale_temps(out)
        existing = out.exists() and (out.is_file() or any(out.iterdir()))
        if existing and not rebuild:
            raise ConfigError(
                f"{out} already exists; records in memory cannot be checked against it: pass rebuild=True to "
                "replace it, or choose another out",
                key="out",
            )
        if existing and not (out / "cache.json").is_file():
            raise ConfigError(f"{out} exists and is not an ecgscale cache (no cache.json); choose another out")

        def prepared() -> Iterator[tuple[bool, dict[str, Any]]]:
            for i, record in enumerate(records):
                if not isinstance(record, EcgRecord):
                    what = type(record).__name__
                    raise ConfigError(f"item {i} of records is a {what}, not an EcgRecord", key="records")
                ok, item = _prepare_record(record, config)
                if ok and not record.source:
                    item["source"] = source
                yield ok, item

        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            tmp.mkdir()
        except OSError as exc:
            raise (as_disk_error(exc, out) or exc) from exc
        skips: list[SkippedRecord] = []
        try:
            info = _write_cache(
                tmp,
                (),
                skips,
                config=config,
                space=labels,
                split=split,
                workers=1,
                chunksize=1,
                progress=progress,
                params=params,
                params_hash=_params_hash(params),
                n_found=None,
                sources=[f"<{source}>"],
                prepared=prepared(),
                total=total,
            )
            _swap_into_place(tmp, out)
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            disk = as_disk_error(exc, out) if isinstance(exc, Exception) else None
            if disk is not None and disk is not exc:
                raise disk from exc
            raise
        summary = _summary_from_info(out, info, "rebuilt" if existing else "built", time.perf_counter() - t0)
        return dataclasses.replace(summary, skipped=tuple(skips))


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished build onto ``out``; an old cache is replaced in one step, deleted only afterwards.

    Why one step: moving the old cache aside and then the new one in leaves a moment with no cache at ``out``
    (a kill -9 there left "neither", until the next prepare restored the old one). On Linux ``renameat2``
    exchanges the two folders atomically, so ``out`` is always the old or the new cache; the old one, now under
    the ``.tmp-`` name, is removed afterwards (or by the next prepare if this one is killed first). Elsewhere,
    or on a file system without the exchange, the two renames remain, with ``_remove_stale_temps`` as the net.
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
    import sys

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


def _spinner(enabled: bool, text: str):
    if not enabled:
        return contextlib.nullcontext(None)
    from rich.console import Console

    return Console(stderr=True).status(text)


def _progress_bar(enabled: bool, total: int | None):
    if not enabled:
        return contextlib.nullcontext(None)
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]prepare"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    )


def _write_cache(
    tmp: Path,
    refs: Sequence[Any],
    skips: list[SkippedRecord],
    *,
    config: PreprocessConfig,
    space: LabelSpace,
    split: SplitConfig,
    workers: int,
    chunksize: int,
    progress: bool,
    params: Mapping[str, Any],
    params_hash: str,
    n_found: int | None,
    sources: Sequence[Path | str],
    prepared: Iterator[tuple[bool, dict[str, Any]]] | None = None,
    total: int | None = None,
) -> dict[str, Any]:
    """Write a cache into ``tmp`` from ``refs`` read by workers, or from ``prepared`` results (records in memory)."""
    rows: list[dict[str, Any]] = []
    offsets = [0]
    dtype = np.dtype(config.dtype)
    t0 = time.perf_counter()
    if prepared is None:
        prepared = _iter_prepared(refs, config, workers, chunksize, tmp)
        total = len(refs)
    with (
        open(tmp / "signals.bin", "wb") as fh,
        _progress_bar(progress, total) as bar,
        contextlib.closing(prepared) as results,
    ):
        task = bar.add_task("prepare", total=total, rate="") if bar is not None else None
        for done, (ok, item) in enumerate(results, start=1):
            if ok:
                x = item.pop("signal")  # possibly a view of a worker's slot: written out before the next result
                if x.dtype != dtype:
                    x = x.astype(dtype)
                _append_block(fh, x)
                offsets.append(offsets[-1] + int(x.shape[1]))
                rows.append(item)
                del x
            else:
                skips.append(SkippedRecord(item["path"], item["reason"], item["message"]))
                log.warning("skipped %s (%s): %s", item["path"], item["reason"], item["message"])
            if bar is not None and task is not None:
                rate = done / max(time.perf_counter() - t0, 1e-9)
                bar.update(task, advance=1, rate=f"{rate:,.0f} rec/s")
        fh.flush()
        os.fsync(fh.fileno())
    if not rows:
        by_reason = Counter(s.reason for s in skips)
        raise ConfigError(
            f"no usable ECG record under {', '.join(map(str, sources))}"
            + (f" ({len(skips)} skipped: {dict(by_reason)})" if skips else " (no record files found)"),
            key="paths",
        )

    label_mat = np.zeros((len(rows), len(space)), dtype=np.uint8)
    unknown_counter: Counter[str] = Counter()
    for i, r in enumerate(rows):
        codes = r["codes"]
        label_mat[i] = space.encode(codes)
        unknown = space.unknown(codes)
        unknown_counter.update(unknown)
        r["unknown_codes"] = ",".join(unknown)
        r["codes"] = ",".join(r["codes"])

    manifest = pd.DataFrame(rows)
    manifest.insert(0, "index", np.arange(len(rows)))
    manifest["split"] = ""
    manifest = manifest[_MANIFEST_COLUMNS]
    manifest["split"] = assign_splits(manifest, label_mat, split)

    np.save(tmp / "offsets.npy", np.asarray(offsets, dtype=np.int64))
    np.save(tmp / "labels.npy", label_mat)
    write_text_atomic(tmp / "manifest.csv", manifest.to_csv(index=False))
    skipped_frame = pd.DataFrame(
        [{"path": s.path, "reason": s.reason, "message": s.message} for s in skips],
        columns=["path", "reason", "message"],
    )
    write_text_atomic(tmp / "skipped.csv", skipped_frame.to_csv(index=False))

    info = {
        "format_version": CACHE_FORMAT_VERSION,
        "ecgscale_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "params": dict(params),
        "params_hash": params_hash,
        "preprocess": config.to_dict(),
        "preprocess_hash": config.hash(),
        "label_space": space.to_dict(),
        "dtype": config.dtype,
        "fs": config.fs,
        "window_s": config.window_s,
        "window": config.window_samples,
        "n_leads": N_LEADS,
        "leads": list(STANDARD_LEADS),
        "n_records": len(rows),
        "n_found": n_found if n_found is not None else len(rows) + len(skips),
        "total_samples": int(offsets[-1]),
        "split": split.to_dict(),
        "split_counts": _split_counts(manifest["split"]),
        "records_per_source": {str(k): int(v) for k, v in manifest["source"].value_counts().sort_index().items()},
        "label_counts": _label_counts(manifest, label_mat, space),
        "unknown_codes": {
            "n_occurrences": int(sum(unknown_counter.values())),
            "n_distinct": len(unknown_counter),
            "top": dict(unknown_counter.most_common(50)),
        },
        "skipped": {"n_skipped": len(skips), "by_reason": dict(sorted(Counter(s.reason for s in skips).items()))},
        "build_seconds": round(time.perf_counter() - t0, 3),
    }
    write_json_atomic(tmp / "cache.json", info)  # written last: its presence marks a complete cache
    return info


def _split_counts(splits: pd.Series) -> dict[str, int]:
    counts = splits.value_counts()
    out = {name: int(counts.get(name, 0)) for name in SPLIT_NAMES}
    if counts.get("", 0):  # records of folds given no role (SplitConfig.folds)
        out["unassigned"] = int(counts[""])
    return out


def _label_counts(manifest: pd.DataFrame, label_mat: np.ndarray, space: LabelSpace) -> dict[str, dict[str, int]]:
    """Positive records per class (by abbreviation), per source; zero counts are left out.

    Two classes may share an abbreviation (Tianchi's RBBB and complete RBBB); those are told apart by key.
    """
    out: dict[str, dict[str, int]] = {}
    abbrs = space.abbreviations
    names = [a if abbrs.count(a) == 1 else f"{a} ({k})" for a, k in zip(abbrs, space.keys, strict=True)]
    for source in sorted(manifest["source"].unique()):
        mask = (manifest["source"] == source).to_numpy()
        sums = label_mat[mask].sum(axis=0)
        out[str(source)] = {names[k]: int(v) for k, v in enumerate(sums) if v > 0}
    return out


# --------------------------------------------------------------------------------------------------- reading
class EcgCache:
    """A prepared cache opened read-only; signals are memory-mapped and only paged in when used."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        info_path = self.path / "cache.json"
        if not info_path.is_file():
            raise ConfigError(f"{self.path} is not an ecgscale cache (no cache.json); run `ecgscale prepare` first")
        try:
            self.info: dict[str, Any] = read_json(info_path)
            if int(self.info.get("format_version", -1)) != CACHE_FORMAT_VERSION:
                raise ConfigError(
                    f"{info_path}: cache format {self.info.get('format_version')} is not supported"
                    f" (expected {CACHE_FORMAT_VERSION}); rebuild with `ecgscale prepare --rebuild`"
                )
            self.config = PreprocessConfig.from_dict(self.info["preprocess"])
            self.label_space = LabelSpace.from_dict(self.info["label_space"])
            self._offsets = np.load(self.path / "offsets.npy", allow_pickle=False)
            labels = np.load(self.path / "labels.npy", allow_pickle=False)
            manifest = _read_manifest(self.path / "manifest.csv")
        except EcgscaleError:
            raise
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(
                f"{self.path}: cache is incomplete or corrupt ({type(exc).__name__}: {exc});"
                " rebuild with `ecgscale prepare --rebuild`"
            ) from exc
        n = int(self.info["n_records"])
        if len(manifest) != n or labels.shape != (n, len(self.label_space)) or len(self._offsets) != n + 1:
            raise ConfigError(
                f"{self.path}: manifest ({len(manifest)}), labels {labels.shape} and offsets"
                f" ({len(self._offsets) - 1}) disagree with {n} records; rebuild the cache"
            )
        expected = int(self._offsets[-1]) * N_LEADS * np.dtype(self.config.dtype).itemsize
        signals = self.path / "signals.bin"
        size = signals.stat().st_size if signals.is_file() else -1
        if size != expected:
            raise ConfigError(
                f"{signals}: {'missing' if size < 0 else f'{size} bytes'}, expected {expected} bytes"
                " (incomplete or corrupt cache); rebuild with `ecgscale prepare --rebuild`"
            )
        labels.flags.writeable = False
        self._labels = labels
        self._manifest = manifest
        self._signals: np.ndarray | None = None

    # -- pickling (DataLoader workers with spawn): reopen the memmap lazily instead of copying it
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_signals"] = None if isinstance(self._signals, np.memmap) else self._signals
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __len__(self) -> int:
        return len(self._manifest)

    def __repr__(self) -> str:
        return (
            f"EcgCache({str(self.path)!r}, {len(self)} records, {self.label_space.name} ({len(self.label_space)}"
            f" classes), {self.config.fs:g} Hz, window {self.config.window_s:g} s)"
        )

    @property
    def signals(self) -> np.ndarray:
        """The flat signal array (memory-mapped unless :meth:`load` was called)."""
        if self._signals is None:
            total = int(self._offsets[-1]) * N_LEADS
            if total == 0:
                self._signals = np.zeros(0, dtype=self.config.dtype)
            else:
                self._signals = np.memmap(self.path / "signals.bin", dtype=self.config.dtype, mode="r", shape=(total,))
        return self._signals

    def load(self) -> EcgCache:
        """Read the whole signal file into RAM (for repeated epochs on small caches); returns ``self``."""
        self._signals = np.array(self.signals)
        return self

    @property
    def manifest(self) -> pd.DataFrame:
        return self._manifest.copy()

    @property
    def labels(self) -> np.ndarray:
        """uint8 ``(N, K)`` multi-hot matrix (read-only)."""
        return self._labels

    @property
    def offsets(self) -> np.ndarray:
        return self._offsets.copy()

    @property
    def window_length(self) -> int:
        return self.config.window_samples

    @property
    def preprocess_hash(self) -> str:
        return self.config.hash()

    @property
    def split_config(self) -> SplitConfig:
        return SplitConfig.from_dict(self.info["split"])

    def indices(self, split: str | None = None) -> np.ndarray:
        """Record indices of a split (``train``, ``val``, ``test``; ``None``/``"all"`` for every record)."""
        if split is None or split == "all":
            return np.arange(len(self), dtype=np.int64)
        if split not in SPLIT_NAMES:
            raise ConfigError(f"split {split!r} is not allowed (one of {', '.join(SPLIT_NAMES)}, all)", key="split")
        return np.flatnonzero(self._manifest["split"].to_numpy() == split).astype(np.int64)

    def _check_index(self, i: int) -> int:
        i = int(i)
        if not 0 <= i < len(self):
            raise IndexError(f"record index {i} out of range for a cache of {len(self)} records")
        return i

    def _block(self, i: int) -> np.ndarray:
        a, b = int(self._offsets[i]), int(self._offsets[i + 1])
        return self.signals[a * N_LEADS : b * N_LEADS].reshape(N_LEADS, b - a)

    def signal(self, i: int) -> np.ndarray:
        """The stored float32 ``(12, n_i)`` signal of record ``i``."""
        return np.array(self._block(self._check_index(i)), dtype=np.float32)

    def window(self, i: int, *, rng: np.random.Generator | None = None) -> np.ndarray:
        """Float32 ``(12, window)``: centre crop, or a random crop when ``rng`` is given; zero padded if short."""
        return window(self._block(self._check_index(i)), self.window_length, rng=rng)

    def window_starts(
        self, indices: Sequence[int] | np.ndarray, *, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """Crop starts for ``indices``: centre (``rng=None``) or uniform random (vectorised)."""
        idx = np.asarray(indices, dtype=np.int64)
        n = self._offsets[idx + 1] - self._offsets[idx]
        slack = np.maximum(n - self.window_length, 0)
        if rng is None:
            return slack // 2
        return rng.integers(0, slack + 1)

    def get_batch(
        self,
        indices: Sequence[int] | np.ndarray,
        *,
        rng: np.random.Generator | None = None,
        starts: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(x float32 (B, 12, window), y float32 (B, K))`` sliced straight from the memmap.

        The fast path for trainers: no per-item Python objects beyond one slice per record. Crops are centred
        unless ``rng`` (random crops) or explicit ``starts`` are given.
        """
        idx = np.asarray(indices, dtype=np.int64)
        if idx.ndim != 1:
            raise ConfigError(f"indices must be 1-D, got shape {idx.shape}", key="indices")
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"record indices out of range for a cache of {len(self)} records")
        length = self.window_length
        if starts is None:
            starts = self.window_starts(idx, rng=rng)
        x = np.zeros((len(idx), N_LEADS, length), dtype=np.float32)
        sig = self.signals
        for b, (i, s) in enumerate(zip(idx.tolist(), np.asarray(starts).tolist(), strict=True)):
            a, e = int(self._offsets[i]), int(self._offsets[i + 1])
            n = e - a
            block = sig[a * N_LEADS : e * N_LEADS].reshape(N_LEADS, n)
            take = min(length, n - s)
            x[b, :, :take] = block[:, s : s + take]
        return x, self._labels[idx].astype(np.float32)

    def dataset(
        self, split: str | None = None, *, train: bool = False, seed: int = 0, augment: bool = False
    ) -> CacheDataset:
        """A torch ``Dataset`` over one split (random crops when ``train``; centre crops otherwise)."""
        from ecgscale.data.datasets import CacheDataset

        return CacheDataset(self, self.indices(split), train=train, seed=seed, augment=augment)

    def with_split(self, config: SplitConfig) -> EcgCache:
        """A copy of this cache (sharing the signals) with the split recomputed in memory; nothing is written."""
        clone = object.__new__(EcgCache)
        clone.__dict__.update(self.__dict__)
        clone._manifest = self._manifest.copy()
        clone._manifest["split"] = assign_splits(clone._manifest, self._labels, config)
        clone.info = {**self.info, "split": config.to_dict(), "split_counts": _split_counts(clone._manifest["split"])}
        return clone

    def resplit(self, config: SplitConfig) -> EcgCache:
        """Recompute the split and store it in ``manifest.csv``/``cache.json`` (no signal is re-read)."""
        clone = self.with_split(config)
        write_text_atomic(self.path / "manifest.csv", clone._manifest.to_csv(index=False))
        write_json_atomic(self.path / "cache.json", clone.info)
        self._manifest = clone._manifest
        self.info = clone.info
        return self


def _read_manifest(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype={c: str for c in _STR_COLUMNS}, keep_default_na=False, na_values={"age": [""]})
    missing = [c for c in _MANIFEST_COLUMNS if c not in frame.columns and c not in _OPTIONAL_COLUMNS]
    if missing:
        raise ValueError(f"manifest.csv lacks columns {missing}")
    for col in _OPTIONAL_COLUMNS:
        if col not in frame.columns:
            frame[col] = ""
    frame = frame[_MANIFEST_COLUMNS]
    frame["age"] = pd.to_numeric(frame["age"], errors="coerce")
    for col in ("patient_id", "sex"):
        frame[col] = frame[col].where(frame[col] != "", None)
    return frame


def open_cache(path: str | os.PathLike[str]) -> EcgCache:
    """Open a cache written by :func:`build_cache` (``ConfigError`` if it is missing, foreign or incomplete)."""
    return EcgCache(path)
