"""The PhysioNet/CinC 2021 challenge's own files: labels from ``#Dx`` header comments, one output CSV per record.

Output file (the official ``helper_code.save_outputs`` layout)::

    #A0001
    164889003,270492004,164909002,...   class codes; an equivalent class may be given by either code or "a|b"
    1,0,0,...                           binary predictions
    0.92,0.03,0.11,...                  probabilities

Reading follows the official loader where it is well defined and fails loudly where it would silently guess:

* like the official scorer: classes may come in any order, unscored classes are ignored, several entries of one
  scored class are merged (binary: any; probability: mean), a positive binary is ``1``/``True``/``true``/``T``/``t``,
  a non-finite probability (``nan``, ``inf``) counts as 0 (counted in ``n_nonfinite``);
* stricter than it (:class:`~ecgscale.errors.RecordError` naming the file and line): a wrong number of lines,
  rows of different lengths, an empty class code, a binary value that is not one of
  ``1/0/True/False/true/false/T/F/t/f`` (the official code would read ``1.0`` as *negative*), a probability that
  is not a number;
* labels: every ``#Dx:`` comment line (also ``# Dx:``), codes split on commas, blanks from trailing or double
  commas dropped, duplicates merged; only comment lines are read, never the signal. A header without a ``#Dx``
  line is an error (the official loader would give it no labels).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ecgscale.data.labels import cinc2021_weights
from ecgscale.errors import RecordError
from ecgscale.fileio import write_text_atomic

__all__ = [
    "ChallengeData",
    "ChallengeOutput",
    "labels_matrix",
    "load_challenge_dirs",
    "outputs_matrix",
    "read_challenge_output",
    "read_header_labels",
    "write_challenge_output",
]

log = logging.getLogger(__name__)

_DX_LINE = re.compile(r"^#\s*Dx\s*:(.*)$", re.IGNORECASE)
_TRUE = frozenset({"1", "True", "true", "T", "t"})  # exactly the official set of positive spellings
_FALSE = frozenset({"0", "False", "false", "F", "f"})


@dataclass(frozen=True, slots=True)
class ChallengeOutput:
    """One parsed output file."""

    path: str
    record_id: str | None
    classes: tuple[str, ...]
    binary: np.ndarray  # bool (n_entries,)
    scalar: np.ndarray  # float64 (n_entries,), non-finite values already replaced by 0
    n_nonfinite: int = 0


@dataclass(frozen=True, slots=True)
class ChallengeData:
    """Labels and outputs of a label folder and an output folder, aligned record by record."""

    record_ids: tuple[str, ...]
    class_keys: tuple[str, ...]
    labels: np.ndarray  # bool (N, K)
    binary: np.ndarray  # bool (N, K); all False for a missing output file
    scalar: np.ndarray  # float64 (N, K); all 0 for a missing output file
    missing: tuple[str, ...] = ()  # record ids without an output file
    extra: tuple[str, ...] = ()  # output files without a header
    n_nonfinite: int = 0  # probabilities that were NaN/inf and read as 0
    header_paths: tuple[str, ...] = field(default=(), repr=False)


# --------------------------------------------------------------------------------------------------------------
# Labels


def read_header_labels(path: str | os.PathLike[str]) -> list[str]:
    """The diagnosis codes of a WFDB header's ``#Dx:`` comment lines, in order, without blanks or duplicates."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise RecordError(p, f"cannot read header: {exc.strerror or exc}", reason="unreadable") from exc
    found = False
    codes: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("#"):
            continue
        m = _DX_LINE.match(stripped)
        if m is None:
            continue
        found = True
        for code in m.group(1).split(","):
            code = code.strip()
            if code and code not in codes:
                codes.append(code)
    if not found:
        raise RecordError(p, "no '#Dx:' comment line with the diagnosis codes", reason="no_labels", field="Dx")
    return codes


def _code_index(class_keys: Sequence[str]) -> dict[str, int]:
    index: dict[str, int] = {}
    for j, key in enumerate(class_keys):
        for code in str(key).split("|"):
            index.setdefault(code.strip(), j)
    return index


def labels_matrix(code_lists: Iterable[Sequence[str]], class_keys: Sequence[str]) -> np.ndarray:
    """``(N, K)`` booleans: record ``i`` has class ``j`` when one of its codes is one of the class's codes."""
    index = _code_index(class_keys)
    rows = list(code_lists)
    out = np.zeros((len(rows), len(class_keys)), dtype=bool)
    for i, codes in enumerate(rows):
        for code in codes:
            j = index.get(code.strip())
            if j is not None:
                out[i, j] = True
    return out


# --------------------------------------------------------------------------------------------------------------
# Output files


def _fields(line: str) -> list[str]:
    return [f.strip() for f in line.split(",")]


def read_challenge_output(path: str | os.PathLike[str]) -> ChallengeOutput:
    """Parse one output CSV; raises :class:`~ecgscale.errors.RecordError` naming the file and line when malformed."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")  # tolerate a byte-order mark written by spreadsheet tools
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordError(p, f"cannot read output file: {exc}", reason="unreadable") from exc
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    record_id = None
    if lines and lines[0][1].startswith("#"):
        record_id = lines[0][1][1:].strip() or None
    data = [(n, line) for n, line in lines if not line.startswith("#")]
    if len(data) != 3:
        raise RecordError(
            p,
            f"expected 3 lines after the '#record' line (class codes, binary outputs, probabilities), "
            f"found {len(data)}",
            reason="malformed",
        )
    (n_cls, cls_line), (n_bin, bin_line), (n_prob, prob_line) = data
    rows = [_fields(cls_line), _fields(bin_line), _fields(prob_line)]
    if all(len(r) > 1 and r[-1] == "" for r in rows):  # a trailing comma on every line
        rows = [r[:-1] for r in rows]
    lengths = [len(r) for r in rows]
    if len(set(lengths)) != 1:
        raise RecordError(
            p,
            f"lines {n_cls}, {n_bin}, {n_prob} have {lengths[0]}, {lengths[1]}, {lengths[2]} comma-separated fields; "
            "class codes, binary outputs and probabilities must have one field per class",
            reason="malformed",
        )
    classes, bins, probs = rows
    for c, code in enumerate(classes, start=1):
        if not code:
            raise RecordError(p, f"line {n_cls}: class code in field {c} is empty", reason="malformed")
    binary = np.zeros(len(bins), dtype=bool)
    for c, v in enumerate(bins):
        if v in _TRUE:
            binary[c] = True
        elif v not in _FALSE:
            raise RecordError(
                p,
                f"line {n_bin}: binary output {v!r} for class {classes[c]} is not one of 1/0/True/False/T/F "
                "(the official scorer would silently read it as 0)",
                reason="malformed",
            )
    scalar = np.zeros(len(probs), dtype=np.float64)
    for c, v in enumerate(probs):
        try:
            scalar[c] = float(v)
        except ValueError:
            raise RecordError(
                p, f"line {n_prob}: probability {v!r} for class {classes[c]} is not a number", reason="malformed"
            ) from None
    nonfinite = ~np.isfinite(scalar)
    scalar[nonfinite] = 0.0  # as the official loader does
    return ChallengeOutput(str(p), record_id, tuple(classes), binary, scalar, int(nonfinite.sum()))


def _incidence(entry_classes: tuple[str, ...], class_sets: list[set[str]]) -> np.ndarray:
    """``M[e, j]`` = 1 when output entry ``e`` names scored class ``j`` (entries may be ``a|b``)."""
    m = np.zeros((len(entry_classes), len(class_sets)))
    for e, entry in enumerate(entry_classes):
        codes = {c.strip() for c in entry.split("|")}
        for j, cls in enumerate(class_sets):
            if codes & cls:
                m[e, j] = 1.0
    return m


def outputs_matrix(
    outputs: Sequence[ChallengeOutput | None], class_keys: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Binary ``(N, K)`` and probability ``(N, K)`` matrices in ``class_keys`` order.

    As the official loader: a class is positive when any of its entries is, its probability is the mean of its
    entries, and a class without an entry (or a ``None`` output, i.e. a missing file) is 0. Files sharing a class
    row (the usual case) are merged with one matrix product.
    """
    class_sets = [{c.strip() for c in str(key).split("|")} for key in class_keys]
    n, k = len(outputs), len(class_keys)
    binary = np.zeros((n, k), dtype=bool)
    scalar = np.zeros((n, k), dtype=np.float64)
    by_layout: dict[tuple[str, ...], list[int]] = {}
    for i, out in enumerate(outputs):
        if out is not None:
            by_layout.setdefault(out.classes, []).append(i)
    for layout, rows in by_layout.items():
        m = _incidence(layout, class_sets)
        count = m.sum(axis=0)
        b = np.stack([outputs[i].binary for i in rows]).astype(np.float64)  # type: ignore[union-attr]
        s = np.stack([outputs[i].scalar for i in rows])  # type: ignore[union-attr]
        binary[rows] = (b @ m) > 0
        mean = np.zeros((len(rows), k))
        np.divide(s @ m, count, out=mean, where=count > 0)
        scalar[rows] = mean
    return binary, scalar


def write_challenge_output(
    path: str | os.PathLike[str],
    record_id: str,
    class_codes: Sequence[str],
    labels: Sequence[int | bool] | np.ndarray,
    probs: Sequence[float] | np.ndarray,
    *,
    atomic: bool = True,
) -> Path:
    """Write one record's output file in the official layout; probabilities keep full precision (``repr``).

    ``atomic=True`` (default) writes a temporary file, fsyncs and renames it, so a crash never leaves half a file.
    The fsync costs ~10 ms per file on some disks: a bulk writer of tens of thousands of files may pass
    ``atomic=False`` (a truncated file is still caught by :func:`read_challenge_output` as malformed).
    """
    codes = [str(c).strip() for c in class_codes]
    lab = np.asarray(labels)
    pr = np.asarray(probs, dtype=np.float64)
    if lab.shape != (len(codes),) or pr.shape != (len(codes),):
        raise ValueError(
            f"{record_id}: {len(codes)} class codes but labels shape {lab.shape} and probs shape {pr.shape}"
        )
    for code in codes:
        if not code or any(ch in code for ch in ",\n\r#"):
            raise ValueError(f"{record_id}: class code {code!r} is empty or holds ',', '#' or a line break")
    if lab.dtype != np.bool_ and not np.isin(lab, (0, 1)).all():
        raise ValueError(f"{record_id}: labels must be 0/1 or booleans, got {lab.tolist()}")
    if not np.isfinite(pr).all():
        raise ValueError(f"{record_id}: probabilities contain NaN or infinite values")
    rid = str(record_id).strip()
    if not rid or "\n" in rid:
        raise ValueError(f"record_id {record_id!r} must be a non-empty single line")
    text = (
        f"#{rid}\n"
        + ",".join(codes)
        + "\n"
        + ",".join("1" if v else "0" for v in lab.astype(bool))
        + "\n"
        + ",".join(repr(float(v)) for v in pr)
        + "\n"
    )
    target = Path(path)
    if atomic:
        write_text_atomic(target, text)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return target


# --------------------------------------------------------------------------------------------------------------
# Folders


def _index_by_stem(files: Iterable[Path], what: str) -> dict[str, Path]:
    index: dict[str, Path] = {}
    for f in files:
        if f.name.startswith("."):
            continue
        if f.stem in index:
            raise RecordError(f, f"two {what} files for record {f.stem!r}: also {index[f.stem]}", reason="duplicate")
        index[f.stem] = f
    return index


def load_challenge_dirs(
    labels_dir: str | os.PathLike[str],
    outputs_dir: str | os.PathLike[str],
    *,
    class_keys: Sequence[str] | None = None,
    strict: bool = False,
) -> ChallengeData:
    """Read every header under ``labels_dir`` (recursively) and its ``<record>.csv`` under ``outputs_dir``.

    A header without an output file is counted in ``missing`` and scored as all-negative with probability 0
    (``strict=True`` raises instead, as the official ``evaluate_model.py`` does). Output files without a header
    are listed in ``extra`` and ignored. ``class_keys`` defaults to the 26 scored classes of ``weights.csv``.
    """
    ldir, odir = Path(labels_dir), Path(outputs_dir)
    for d, what in ((ldir, "labels"), (odir, "outputs")):
        if not d.is_dir():
            raise RecordError(d, f"{what} folder does not exist or is not a folder", reason="missing")
    keys = tuple(class_keys) if class_keys is not None else tuple(cinc2021_weights()[0])
    headers = _index_by_stem(sorted(ldir.rglob("*.hea")), "header")
    if not headers:
        raise RecordError(ldir, "no WFDB header files (*.hea) found", reason="missing")
    outputs = _index_by_stem(sorted(odir.rglob("*.csv")), "output")
    record_ids = tuple(sorted(headers))
    missing = tuple(r for r in record_ids if r not in outputs)
    extra = tuple(sorted(set(outputs) - set(headers)))
    if missing and strict:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise RecordError(odir, f"{len(missing)} output file(s) missing: {shown}", reason="missing")
    if missing:
        log.warning("%d of %d records have no output file; scored as all-negative", len(missing), len(record_ids))
    labels = labels_matrix((read_header_labels(headers[r]) for r in record_ids), keys)
    parsed: list[ChallengeOutput | None] = []
    for r in record_ids:
        if r not in outputs:
            parsed.append(None)
            continue
        out = read_challenge_output(outputs[r])
        if out.record_id is not None and out.record_id != r:
            log.warning("%s: names record %r but is the output file of %r", out.path, out.record_id, r)
        parsed.append(out)
    binary, scalar = outputs_matrix(parsed, keys)
    n_nonfinite = sum(o.n_nonfinite for o in parsed if o is not None)
    if n_nonfinite:
        log.warning("%d probabilities were NaN or infinite; read as 0, as the official scorer does", n_nonfinite)
    return ChallengeData(
        record_ids=record_ids,
        class_keys=keys,
        labels=labels,
        binary=binary,
        scalar=scalar,
        missing=missing,
        extra=extra,
        n_nonfinite=n_nonfinite,
        header_paths=tuple(str(headers[r]) for r in record_ids),
    )
