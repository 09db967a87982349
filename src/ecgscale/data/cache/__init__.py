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

Modules, one job each:

- ``builder``: ``build_cache`` / ``build_cache_from_records``: lock, up-to-date check, discovery, label space,
  then the pool and the writer into a staged folder that is swapped into place (``ecgscale.fileio``);
- ``pool``: worker processes read and preprocess records (``multiprocessing.Pool.imap`` keeps the input order)
  and write each signal into a slot of a shared scratch file; a semaphore caps the records in flight, so memory
  stays bounded whatever the data set size;
- ``rows``: one record read, preprocessed, rounded to the storage dtype and described by its manifest row;
- ``writer``: the files of a cache from prepared records (``CacheSpec``: what it is built with);
- ``store``: ``EcgCache`` / ``open_cache``, the reader;
- ``layout``: format version, manifest columns, the parameters hash; ``summary``: ``CacheSummary``.

The build reports progress (finding records, then one step per record) through ``ecgscale.progress``.
"""

from __future__ import annotations

from ecgscale.data.cache.builder import build_cache, build_cache_from_records
from ecgscale.data.cache.layout import CACHE_FORMAT_VERSION
from ecgscale.data.cache.store import EcgCache, open_cache
from ecgscale.data.cache.summary import CacheSummary, SkippedRecord

__all__ = [
    "CACHE_FORMAT_VERSION",
    "CacheSummary",
    "EcgCache",
    "SkippedRecord",
    "build_cache",
    "build_cache_from_records",
    "open_cache",
]
