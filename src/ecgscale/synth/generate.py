"""``generate()``: write a synthetic benchmark in the real CinC 2021 or Tianchi formats, deterministically.

Record ``i`` is generated from ``numpy.random.SeedSequence(seed, spawn_key=(1, i))`` (the ``i``-th child of
the second child of ``SeedSequence(seed)``), and the assignment of records to sources from
``spawn_key=(0,)``; files are therefore byte-identical for a seed whatever ``workers`` is. Everything is
written into a temporary folder beside ``out`` that is renamed onto ``out`` at the end, so a failure or an
interrupt leaves nothing partial behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ecgscale.data.labels import TIANCHI_NAME_MAP, cinc2021_scored
from ecgscale.errors import ConfigError
from ecgscale.fileio import as_disk_error, write_json_atomic
from ecgscale.progress import Progress, as_progress
from ecgscale.synth.record import synth_record
from ecgscale.synth.sources import MAX_FS, MIN_FS, SourceProfile, resolve_sources

__all__ = [
    "FORMATS",
    "PARAMS_FILE",
    "SUMMARY_FILE",
    "TIANCHI_CLASS_FILE",
    "TIANCHI_DIR",
    "TIANCHI_LABEL_FILE",
    "SynthSummary",
    "generate",
    "resolve_classes",
    "tianchi_name",
]

log = logging.getLogger(__name__)

FORMATS = ("cinc2021", "tianchi")
PARAMS_FILE = "synth_params.jsonl"
SUMMARY_FILE = "synth_summary.json"
TIANCHI_DIR = "hf_round2_train"
TIANCHI_LABEL_FILE = "hf_round2_train.txt"
TIANCHI_CLASS_FILE = "hf_round2_arrythmia.txt"
_GROUP_SIZE = 1000  # records per CinC group folder (g1, g2, ...), as in the challenge tree


@dataclass(frozen=True, slots=True)
class SynthSummary:
    """What ``generate`` wrote: counts per source and per label, and how fast."""

    out: Path
    n: int
    seed: int
    format: str
    fs: int | None
    workers: int
    sources: dict[str, int] = field(default_factory=dict)
    label_counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    records_per_s: float = 0.0

    @property
    def n_records(self) -> int:
        return self.n

    def to_dict(self) -> dict:
        return {
            "out": str(self.out), "n": self.n, "seed": self.seed, "format": self.format, "fs": self.fs,
            "workers": self.workers, "sources": dict(self.sources), "label_counts": dict(self.label_counts),
            "seconds": round(self.seconds, 3), "records_per_s": round(self.records_per_s, 1),
        }  # fmt: skip


def _tianchi_names() -> dict[str, str]:
    """CinC abbreviation → the first Tianchi name that means it (the inverse of ``TIANCHI_NAME_MAP``)."""
    inv: dict[str, str] = {}
    for name, abbr in TIANCHI_NAME_MAP.items():
        if abbr is not None and abbr not in inv:
            inv[abbr] = name
    return inv


def tianchi_name(abbreviation: str) -> str | None:
    """The Tianchi (Chinese) class name written for a CinC class abbreviation, or ``None`` (e.g. BBB, Brady)."""
    return _tianchi_names().get(abbreviation)


def resolve_classes(classes: Iterable[str] | None) -> frozenset[str] | None:
    """Class abbreviations (case-insensitive) or SNOMED-CT codes of the CinC 2021 scored classes."""
    if classes is None:
        return None
    if isinstance(classes, str):
        classes = [c for c in classes.split(",") if c.strip()]
    space = cinc2021_scored()
    by_abbr = {a.lower(): a for a in space.abbreviations}
    out = set()
    for c in classes:
        key = str(c).strip()
        if key.lower() in by_abbr:
            out.add(by_abbr[key.lower()])
        elif space.index_of(key) is not None:
            out.add(space.classes[space.index_of(key)].abbreviation)  # type: ignore[index]
        else:
            raise ConfigError(
                f"unknown class {key!r}; allowed: {', '.join(space.abbreviations)} or their SNOMED-CT codes",
                key="classes",
            )
    if not out:
        raise ConfigError("classes is empty", key="classes")
    return frozenset(out)


def _validate(out: Path, n: int, fmt: str, fs: int | None, workers: int, overwrite: bool) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise ConfigError(f"must be a positive integer, got {n!r}", key="n")
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; allowed: {', '.join(FORMATS)}", key="format")
    if fs is not None:
        if isinstance(fs, bool) or not float(fs).is_integer() or not MIN_FS <= int(fs) <= MAX_FS:
            raise ConfigError(f"unsupported sampling rate {fs!r}; allowed: integers {MIN_FS}–{MAX_FS} Hz", key="fs")
        if fmt == "tianchi" and int(fs) != 500:
            raise ConfigError(f"the Tianchi format is always 500 Hz, got fs={fs!r}", key="fs")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"must be an integer >= 1, got {workers!r}", key="workers")
    if out.exists():
        if not out.is_dir():
            raise ConfigError(f"{out} exists and is not a directory", key="out")
        entries = list(out.iterdir())
        if entries and not (overwrite and (out / PARAMS_FILE).exists()):
            hint = (
                " (pass overwrite=True / --overwrite to replace a previous synth output)"
                if (out / PARAMS_FILE).exists()
                else ""
            )
            raise ConfigError(f"output directory {out} is not empty ({len(entries)} entries){hint}", key="out")


def _source_plan(seed: int, n: int, profiles: Sequence[SourceProfile]) -> np.ndarray:
    """Source index of every record: exact shares by largest remainder, in a seeded random order."""
    w = np.array([p.weight for p in profiles], dtype=np.float64)
    quota = n * w / w.sum()
    counts = np.floor(quota).astype(np.int64)
    rest = n - int(counts.sum())
    order = np.argsort(-(quota - counts), kind="stable")
    counts[order[:rest]] += 1
    plan = np.repeat(np.arange(len(profiles)), counts)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    rng.shuffle(plan)
    return plan


@dataclass(frozen=True, slots=True)
class _Job:
    index: int
    profile: SourceProfile
    record_id: str
    subdir: str


def _record_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, index)))


def _run_chunk(
    root: str, seed: int, fmt: str, fs: int | None, allowed: frozenset[str] | None, jobs: list[_Job]
) -> list[dict]:
    """Generate and write ``jobs`` (runs in a worker process); returns their ``synth_params.jsonl`` rows."""
    from ecgscale.data.writers import write_cinc2021, write_tianchi

    rows = []
    base = Path(root)
    made: set[str] = set()
    for job in jobs:
        rng = _record_rng(seed, job.index)
        if fmt == "tianchi":
            rec = synth_record(rng, job.profile, fs=500, duration_s=10.0, allowed=allowed)
        else:
            rec = synth_record(rng, job.profile, fs=fs, allowed=allowed)
        folder = base / job.subdir
        if job.subdir not in made:
            folder.mkdir(parents=True, exist_ok=True)
            made.add(job.subdir)
        p = rec.params
        if fmt == "tianchi":
            write_tianchi(folder, job.record_id, rec.signal)
        else:
            write_cinc2021(folder, job.record_id, rec.signal, p.fs, age=p.age, sex=p.sex, codes=rec.codes)
        rows.append({
            "index": job.index, "record_id": job.record_id, "source": p.source,
            "path": f"{job.subdir}/{job.record_id}", "fs": p.fs, "n_samples": int(rec.signal.shape[1]),
            "age": p.age, "sex": p.sex, "labels": list(rec.labels), "codes": list(rec.codes),
            "measured": rec.measured, "params": p.to_dict(),
        })  # fmt: skip
    return rows


def generate(
    out: str | os.PathLike[str],
    *,
    n: int,
    seed: int,
    format: str = "cinc2021",
    sources: Sequence[str | SourceProfile] | None = None,
    fs: int | None = None,
    classes: Iterable[str] | None = None,
    progress: bool | Progress = True,
    workers: int = 1,
    overwrite: bool = False,
) -> SynthSummary:
    """Write ``n`` synthetic 12-lead records to ``out`` and return a summary.

    ``format="cinc2021"``: ``out/training/<source>/g<k>/<id>.hea|.mat`` (WFDB header with ``#Age/#Sex/#Dx``,
    MATLAB v4 int16 at 1000/mV). ``format="tianchi"``: ``out/hf_round2_train/<id>.txt`` (8 leads, 4.88 µV
    units, 500 Hz, 10 s) with ``out/hf_round2_train.txt`` labels and ``out/hf_round2_arrythmia.txt`` classes.
    Both add ``synth_params.jsonl`` (per record: parameters, measurements, labels) and ``synth_summary.json``.
    ``sources``: names of ``DEFAULT_SOURCES`` or ``SourceProfile`` objects; ``fs`` overrides every source's
    rate; ``classes`` restricts records to those CinC classes (abbreviations or SNOMED codes).
    """
    out = Path(out)
    _validate(out, n, format, fs, workers, overwrite)
    profiles = resolve_sources(sources)
    allowed = resolve_classes(classes)
    fs = None if fs is None else int(fs)
    n = int(n)

    plan = _source_plan(seed, n, profiles)
    counters = [0] * len(profiles)
    jobs: list[_Job] = []
    for i, s in enumerate(plan.tolist()):
        counters[s] += 1
        prof = profiles[s]
        if format == "tianchi":
            jobs.append(_Job(i, prof, str(i + 1), TIANCHI_DIR))
        else:
            k = counters[s]
            group = (k - 1) // _GROUP_SIZE + 1
            jobs.append(_Job(i, prof, f"{prof.prefix}{k:05d}", f"training/{prof.name}/g{group}"))

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.synth-", dir=out.parent))
    start = time.perf_counter()
    try:
        rows = _generate_into(
            tmp, jobs, seed=seed, fmt=format, fs=fs, allowed=allowed, progress=progress, workers=workers
        )
        seconds = time.perf_counter() - start
        label_counts = Counter(lab for r in rows for lab in r["labels"])
        summary = SynthSummary(
            out=out, n=n, seed=int(seed), format=format, fs=fs, workers=workers,
            sources={p.name: int((plan == k).sum()) for k, p in enumerate(profiles)},
            label_counts={a: label_counts.get(a, 0) for a in cinc2021_scored().abbreviations},
            seconds=seconds, records_per_s=n / seconds if seconds > 0 else math.inf,
        )  # fmt: skip
        _write_index_files(tmp, rows, format, summary)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / "previous")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        disk = as_disk_error(exc, out) if isinstance(exc, Exception) else None
        if disk is not None and disk is not exc:  # a record file's ENOSPC names the temp tree, or nothing
            raise disk from exc
        raise
    log.debug("wrote %d synthetic records to %s in %.1f s (%.0f records/s)", n, out, seconds, n / seconds)
    return summary


def _generate_into(
    tmp: Path,
    jobs: list[_Job],
    *,
    seed: int,
    fmt: str,
    fs: int | None,
    allowed: frozenset[str] | None,
    progress: bool | Progress,
    workers: int,
) -> list[dict]:
    chunk = max(1, min(64, math.ceil(len(jobs) / (workers * 4))))
    chunks = [jobs[i : i + chunk] for i in range(0, len(jobs), chunk)]
    rows: list[dict] = []
    with contextlib.closing(as_progress(progress).task("synth", total=len(jobs))) as bar:
        if workers == 1:
            for c in chunks:
                rows.extend(_run_chunk(str(tmp), seed, fmt, fs, allowed, c))
                bar.advance(len(c))
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = {pool.submit(_run_chunk, str(tmp), seed, fmt, fs, allowed, c): len(c) for c in chunks}
                for fut in as_completed(futures):
                    rows.extend(fut.result())
                    bar.advance(futures[fut])
    rows.sort(key=lambda r: r["index"])
    return rows


def _write_index_files(root: Path, rows: list[dict], fmt: str, summary: SynthSummary) -> None:
    with open(root / PARAMS_FILE, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, separators=(",", ":"), default=_jsonable) + "\n")
    if fmt == "tianchi":
        from ecgscale.data.writers import write_tianchi_classes, write_tianchi_labels

        names = _tianchi_names()
        label_rows = [
            (r["record_id"], float(r["age"]), r["sex"], [names[lab] for lab in r["labels"] if lab in names])
            for r in rows
        ]
        write_tianchi_labels(root / TIANCHI_LABEL_FILE, label_rows)
        write_tianchi_classes(root / TIANCHI_CLASS_FILE, sorted(set(names.values())))
    # Timing, worker count and the output path stay out of the file so that it is byte-identical per seed.
    stable = {k: v for k, v in summary.to_dict().items() if k not in ("out", "seconds", "records_per_s", "workers")}
    write_json_atomic(root / SUMMARY_FILE, stable)


def _jsonable(obj: object) -> object:
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
