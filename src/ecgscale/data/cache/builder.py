"""Building a cache: ``build_cache`` (records found under paths) and ``build_cache_from_records`` (records in memory).

Each step is its own function: the writer lock (``fileio.folder_lock``), the up-to-date check against an existing
cache, discovery, the label-space choice (``labels.choose_label_space``), the worker pool (``pool``), the writer
(``writer``) and the atomic swap into place (``fileio.staged_folder``).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ecgscale.data.cache.layout import CACHE_FORMAT_VERSION, INFO_FILE, params_hash
from ecgscale.data.cache.pool import iter_prepared, pool_size
from ecgscale.data.cache.rows import Prepared, fold_of, prepare_record
from ecgscale.data.cache.store import EcgCache
from ecgscale.data.cache.summary import CacheSummary, SkippedRecord, summary_from_info
from ecgscale.data.cache.writer import CacheSpec, write_cache
from ecgscale.data.labels import LabelSpace, choose_label_space, label_spec
from ecgscale.data.readers.label_table import LabelTable
from ecgscale.data.records import EcgRecord
from ecgscale.data.splits import SplitConfig
from ecgscale.data.transforms import PreprocessConfig
from ecgscale.errors import ConfigError
from ecgscale.fileio import folder_lock, read_json, remove_stale_temps, staged_folder
from ecgscale.progress import Progress, as_progress

if TYPE_CHECKING:
    from ecgscale.data.readers import Discovery

__all__ = ["build_cache", "build_cache_from_records", "build_params"]

log = logging.getLogger(__name__)


def build_cache(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    config: PreprocessConfig | None = None,
    labels: str | LabelSpace | LabelTable = "auto",
    split: SplitConfig | None = None,
    workers: int | None = None,
    progress: bool | Progress = True,
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
        spec = label_spec(labels)
        if ptbxl_fs not in (100, 500):
            why = "is not allowed (PTB-XL has 100 and 500 Hz records)"
            raise ConfigError(f"ptbxl_fs {ptbxl_fs!r} {why}", key="ptbxl_fs")
        sources = sorted(str(p.resolve()) for p in src)
        params = build_params(config, spec, sources, ptbxl_fs, drop_unlabelled=drop_unlabelled)

        if out.parent.is_dir():
            remove_stale_temps(out, action="prepare", marker=INFO_FILE)
        existing = _existing_info(out, rebuild=rebuild)
        if existing is not None and not rebuild:
            return _reuse(out, existing, params, config, split, t0)

        discovery, refs, skips = _find_records(src, labels, ptbxl_fs=ptbxl_fs, progress=progress)
        n_found = len(refs) + len(skips)
        space = choose_label_space(labels, discovery)
        if drop_unlabelled:
            refs = _drop_unlabelled(refs, space, skips)
            if not refs:
                raise ConfigError(
                    f"no record under {', '.join(map(str, src))} has a class of {space.name}; "
                    "drop_unlabelled (--drop-unlabelled) left nothing",
                    key="labels",
                )
        _check_fold_roles(refs, split)
        workers, chunksize = pool_size(workers, chunksize, len(refs))

        cache_spec = CacheSpec(config, space, split, params, tuple(map(str, src)))
        with staged_folder(out) as tmp:
            results = iter_prepared(refs, config, workers, chunksize, tmp)
            info = write_cache(tmp, cache_spec, results, skips, total=len(refs), n_found=n_found, progress=progress)
        status = "rebuilt" if existing is not None else "built"
        return summary_from_info(out, info, status, time.perf_counter() - t0, tuple(skips))


def build_cache_from_records(
    records: Iterable[EcgRecord],
    out: str | os.PathLike[str],
    *,
    labels: LabelSpace,
    config: PreprocessConfig | None = None,
    split: SplitConfig | None = None,
    progress: bool | Progress = True,
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
        params = build_params(config, label_spec(labels), [f"<{source}>"], None)
        if out.parent.is_dir():
            remove_stale_temps(out, action="prepare", marker=INFO_FILE)
        existing = out.exists() and (out.is_file() or any(out.iterdir()))
        if existing and not rebuild:
            raise ConfigError(
                f"{out} already exists; records in memory cannot be checked against it: pass rebuild=True to "
                "replace it, or choose another out",
                key="out",
            )
        if existing and not (out / INFO_FILE).is_file():
            raise ConfigError(f"{out} exists and is not an ecgscale cache (no cache.json); choose another out")

        def prepared() -> Iterator[Prepared]:
            for i, record in enumerate(records):
                if not isinstance(record, EcgRecord):
                    what = type(record).__name__
                    raise ConfigError(f"item {i} of records is a {what}, not an EcgRecord", key="records")
                ok, item = prepare_record(record, config)
                if ok and not record.source:
                    item["source"] = source
                yield ok, item

        skips: list[SkippedRecord] = []
        cache_spec = CacheSpec(config, labels, split, params, (f"<{source}>",))
        with staged_folder(out) as tmp:
            info = write_cache(tmp, cache_spec, prepared(), skips, total=total, n_found=None, progress=progress)
        status = "rebuilt" if existing else "built"
        return summary_from_info(out, info, status, time.perf_counter() - t0, tuple(skips))


def build_params(
    config: PreprocessConfig,
    labels: str,
    sources: Sequence[str],
    ptbxl_fs: int | None,
    *,
    drop_unlabelled: bool = False,
) -> dict[str, Any]:
    """What identifies a cache's content: a change here means the cache must be rebuilt (not the split).
    ``labels`` is the label choice's ``labels.label_spec``; ``sources`` the resolved source paths."""
    params: dict[str, Any] = {
        "format_version": CACHE_FORMAT_VERSION,
        "preprocess_hash": config.hash(),
        "labels": labels,
        "sources": list(sources),
        "ptbxl_fs": ptbxl_fs,
    }
    if drop_unlabelled:  # only when set, so caches built before the option keep their hash
        params["drop_unlabelled"] = True
    return params


def _find_records(
    src: Sequence[Path], labels: str | LabelSpace | LabelTable, *, ptbxl_fs: int, progress: bool | Progress
) -> tuple[Discovery, list[Any], list[SkippedRecord]]:
    """The discovery under ``src``, its usable refs (a label table's rows applied) and the files skipped so far;
    a ``ConfigError`` when no record is found."""
    from ecgscale.data.readers import discover

    with as_progress(progress).status(f"finding records in {', '.join(map(str, src))}"):
        discovery = discover(src, ptbxl_fs=ptbxl_fs)
    refs = list(discovery.refs)
    skips: list[SkippedRecord] = []
    for s in discovery.skipped:
        skips.append(SkippedRecord(str(s.path), str(s.reason), str(s.message)))
        log.warning("skipped %s (%s): %s", s.path, s.reason, s.message)
    if isinstance(labels, LabelTable):  # the table's labels replace the files'; records without a row skip
        refs, no_row, _ = labels.apply(refs)
        skips.extend(SkippedRecord(str(s.path), s.reason, s.message) for s in no_row)
    if not refs:
        by_reason = Counter(sk.reason for sk in skips)
        raise ConfigError(
            f"no ECG record found under {', '.join(map(str, src))}"
            + (f" ({len(skips)} file(s) skipped: {dict(by_reason)})" if skips else ""),
            key="paths",
        )
    return discovery, refs, skips


def _existing_info(out: Path, *, rebuild: bool) -> dict[str, Any] | None:
    """The ``cache.json`` of the cache at ``out`` (``None`` if there is none, or an unreadable one to rebuild)."""
    if not out.exists():
        return None
    info_path = out / INFO_FILE
    if info_path.is_file():
        try:
            return read_json(info_path)
        except (OSError, ValueError) as exc:
            if not rebuild:
                raise ConfigError(f"{info_path} is unreadable ({exc}); pass --rebuild to replace the cache") from exc
            return None
    if out.is_file() or any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not an ecgscale cache (no cache.json); choose another --out")
    return None


def _reuse(
    out: Path,
    existing: Mapping[str, Any],
    params: Mapping[str, Any],
    config: PreprocessConfig,
    split: SplitConfig,
    t0: float,
) -> CacheSummary:
    """The summary of an existing cache built with ``params``, its split recomputed if ``split`` differs;
    a ``ConfigError`` if it was built with other parameters."""
    if existing.get("params_hash") != params_hash(params):
        why = _describe_mismatch(existing, params, config)
        raise ConfigError(
            f"{out}: the existing cache was built with other parameters ({why});"
            " pass --rebuild (rebuild=True) to replace it, or choose another --out",
            key="cache",
        )
    if existing.get("split") != split.to_dict():
        EcgCache(out).resplit(split)
        info = read_json(out / INFO_FILE)
        log.info("%s: cache up to date; split recomputed (%s)", out, split.method)
        return summary_from_info(out, info, "resplit", time.perf_counter() - t0)
    EcgCache(out)  # a damaged cache is an error (asking for --rebuild), never "up to date"
    log.debug("%s: cache up to date", out)
    return summary_from_info(out, existing, "up_to_date", time.perf_counter() - t0)


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


@contextlib.contextmanager
def _cache_lock(out: Path, *, rebuild: bool) -> Iterator[None]:
    """The writer lock of cache ``out`` for one build (see ``build_cache``)."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(
                folder_lock(out, action="ecgscale prepare", hint="wait for it to finish or choose another --out")
            )
        except OSError as exc:
            # A folder nobody can write (read-only disk, no permission) cannot be written by another prepare
            # either: checking an existing cache there needs no lock, and any write still fails, naming the file.
            if rebuild or exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM) or not (out / INFO_FILE).is_file():
                raise
        yield


def _as_paths(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    out = [Path(p) for p in items]
    if not out:
        raise ConfigError("no source paths given", key="paths")
    missing = [str(p) for p in out if not p.exists()]
    if missing:
        raise ConfigError(f"source path(s) do not exist: {', '.join(missing)}", key="paths")
    return out


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
    folds = np.array([int(fold_of((r.extra or {}).get("strat_fold")) or 0) for r in refs], dtype=np.int64)
    if (folds > 0).any():
        from ecgscale.data.splits import _roles_of_folds

        _roles_of_folds(folds[folds > 0], split, strict=split.method == "official", warn_unused=False)
