"""Reduced-lead copies of CinC 2021 records, in the form of the challenge's own reduced-lead files.

The challenge's reduced-lead data keeps each record's name and header, with only the kept leads' signal lines
(and the signal count on the record line) and a ``.mat`` whose ``val`` holds only those rows. This module
writes such copies from full records without going through physical units: the kept header lines are copied
verbatim (gain, baseline, initial value and checksum stay valid because the rows are unchanged) and the
int16 rows are copied as stored, so a copy reads back exactly as the matching rows of the full record.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io

from ecgscale.data.leads import LeadSet, canonical_lead, parse_leads
from ecgscale.data.writers import write_mat_v4
from ecgscale.errors import ConfigError, RecordError

__all__ = ["ReduceSummary", "reduce_leads", "write_reduced_record"]


@dataclass(frozen=True, slots=True)
class ReduceSummary:
    """What :func:`reduce_leads` did: headers written, files it could not reduce (``(path, message)``)."""

    leads: LeadSet
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def _header_lines(hea: Path) -> tuple[list[str], int, list[int]]:
    """The header's lines, the index of the record line and the indices of its signal lines (file order)."""
    lines = hea.read_text(encoding="utf-8", errors="strict").splitlines()
    content = [i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")]
    if not content:
        raise RecordError(hea, "no record line", reason="bad_header")
    rec = content[0]
    try:
        n_sig = int(lines[rec].split()[1])
    except (IndexError, ValueError):
        raise RecordError(hea, f"record line {lines[rec]!r} has no signal count", reason="bad_header") from None
    sig = content[1 : 1 + n_sig]
    if len(sig) != n_sig:
        raise RecordError(hea, f"declares {n_sig} signals but has {len(sig)} signal lines", reason="bad_header")
    return lines, rec, sig


def write_reduced_record(
    hea: str | os.PathLike[str],
    dest_dir: str | os.PathLike[str],
    leads: Any,
    *,
    order: Sequence[str] | None = None,
) -> Path:
    """Write ``<dest_dir>/<record>.hea`` + ``.mat`` holding only the leads of ``leads`` (``12|6|4|3|2|I,II,V2``).

    Rows are written in the lead set's standard order, or in ``order`` (the same leads in another order, for
    testing readers that must not assume one). A record lacking a lead of the set raises ``RecordError``
    (``missing_leads``) naming it; ``dest_dir`` must not be the record's own folder.
    """
    from ecgscale.data.readers.cinc2021 import parse_cinc_header

    hea = Path(hea)
    lead_set = parse_leads(leads)
    out_names = list(lead_set.names)
    if order is not None:
        got = [canonical_lead(n) for n in order]
        if sorted(map(str, got)) != sorted(out_names):
            raise ConfigError(f"got {list(order)!r}; allowed: an ordering of {', '.join(out_names)}", key="order")
        out_names = [str(n) for n in got]
    header = parse_cinc_header(hea)
    names = [canonical_lead(n) for n in header.lead_names]
    missing = [n for n in out_names if n not in names]
    if missing:
        raise RecordError(
            hea,
            f"missing leads {', '.join(missing)} (has {', '.join(header.lead_names)}); cannot write the "
            f"{lead_set.tag}-lead copy",
            reason="missing_leads",
            field="leads",
        )
    if len(set(header.signal_files)) != 1:
        raise RecordError(hea, "signals in several files; a CinC record has one .mat", reason="bad_header")
    rows = [names.index(n) for n in out_names]
    dest = Path(dest_dir)
    if dest.resolve() == hea.parent.resolve():
        raise ConfigError(f"{dest} is the folder of {hea}; write reduced copies elsewhere", key="dest")
    mat = hea.parent / header.signal_files[0]
    try:
        val = np.asarray(scipy.io.loadmat(str(mat))["val"])
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise RecordError(mat, f"cannot read 'val' ({exc})", reason="unreadable") from None
    if val.ndim != 2 or val.shape[0] != len(names) or val.dtype != np.int16:
        raise RecordError(
            mat,
            f"'val' is {val.dtype} {val.shape}; expected int16 with {len(names)} rows",
            reason="shape_mismatch",
            field="val",
        )
    lines, rec, sig = _header_lines(hea)
    fields = lines[rec].split()
    fields[1] = str(len(rows))
    kept = [lines[sig[r]] for r in rows]
    rest = [line for i, line in enumerate(lines) if i != rec and i not in sig]
    dest.mkdir(parents=True, exist_ok=True)
    write_mat_v4(dest / mat.name, np.ascontiguousarray(val[rows]))
    out = dest / hea.name
    out.write_text("\n".join([" ".join(fields), *kept, *rest]) + "\n", encoding="utf-8")
    return out


def reduce_leads(src: str | os.PathLike[str], dest: str | os.PathLike[str], leads: Any) -> ReduceSummary:
    """Reduced-lead copies of every CinC 2021 record under ``src`` (a folder or one ``.hea``) into ``dest``,
    keeping the folder layout below ``src``. A record that cannot be reduced is listed in ``failed``, not fatal.
    """
    from ecgscale.data.readers import discover

    src, dest = Path(src), Path(dest)
    lead_set = parse_leads(leads)
    if not src.exists():
        raise ConfigError(f"{src}: no such file or folder", key="src")
    root = src.parent if src.is_file() else src
    found = discover(src)
    summary = ReduceSummary(lead_set)
    summary.failed.extend((Path(s.path), s.message) for s in found.skipped)
    for ref in found.refs:
        path = Path(ref.path)
        if ref.format != "cinc2021":
            summary.failed.append((path, f"{path}: {ref.format} records are not reduced (CinC 2021 .hea/.mat only)"))
            continue
        try:
            summary.written.append(write_reduced_record(path, dest / path.parent.relative_to(root), lead_set))
        except RecordError as exc:
            summary.failed.append((path, str(exc)))
    return summary
