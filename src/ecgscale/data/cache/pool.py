"""The worker pool of a build: records read and preprocessed in worker processes, results handed back in input order.

Workers write each signal into a slot of a shared scratch file (:class:`_Slots`) and return only its metadata; a
semaphore caps the records in flight, so memory stays bounded whatever the data set size (:func:`iter_prepared`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ecgscale.data.cache.layout import N_LEADS
from ecgscale.data.cache.rows import Prepared, prepare_ref
from ecgscale.data.transforms import PreprocessConfig
from ecgscale.errors import ConfigError

__all__ = ["available_cores", "iter_prepared", "pool_size"]

log = logging.getLogger(__name__)

_WORKER_CONFIG: PreprocessConfig | None = None
_WORKER_SLOTS: _Slots | None = None
_SLOTS_MAX_BYTES = 256 * 2**20  # records that do not fit a slot of the scratch file travel through the pipe
_POOL_DRAIN_S = 30.0


class _Slots:
    """A scratch file of fixed-size slots, memory-mapped by the parent and every worker.

    Why: a preprocessed 10 s record is 60 kB, and sending it back through ``Pool.imap``'s pipe (pickle, 64 kB
    pipe buffer, unpickle) costs about 0.2 ms of CPU per record, half of what reading and preprocessing it
    costs. A worker writes the signal of input ``i`` into slot ``i % n`` and returns only its metadata; the
    parent appends the slot to ``signals.bin``. Slot ``i % n`` is free again when task ``i + n`` is handed
    out, because the semaphore of ``iter_prepared`` releases a permit only after the parent has written
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


def _prepare_one(ref: Any) -> Prepared:
    """``rows.prepare_ref`` with this worker's config; never raises, so one bad file cannot stop the build."""
    config = _WORKER_CONFIG
    if config is None:  # _init_worker runs first in every worker; this guards direct calls
        raise RuntimeError("_prepare_one called before _init_worker")
    return prepare_ref(ref, config)


def _prepare_to_slot(item: tuple[int, Any]) -> Prepared:
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


def iter_prepared(
    refs: Sequence[Any], config: PreprocessConfig, workers: int, chunksize: int, scratch: Path | None = None
) -> Iterator[Prepared]:
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


def pool_size(workers: int | None, chunksize: int | None, n_refs: int) -> tuple[int, int]:
    """Worker processes (default: every core this process may use; never more than records) and imap chunk size."""
    workers = available_cores() if workers is None else int(workers)
    if workers < 1:
        raise ConfigError(f"workers {workers} must be at least 1", key="workers")
    workers = max(1, min(workers, n_refs))
    if chunksize is None:
        chunksize = max(1, min(16, n_refs // (workers * 8) if workers > 1 else 1))
    return workers, chunksize


def available_cores() -> int:
    """Cores this process may run on (a container or ``taskset`` can allow fewer than ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1
