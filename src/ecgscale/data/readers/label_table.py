"""A user's labels table (``--labels-csv FILE``): one row per record, the vocabulary is the user's own.

Two layouts, detected from the header:

- **label columns**: ``record,AF,LBBB,normal`` with 0/1 (also ``true/false``, ``yes/no``, empty = 0) per row;
  the classes are the columns, in file order;
- **a code list**: ``record,codes`` (or ``labels``/``dx``/``diagnosis``) holding ``AF;LBBB`` (separated by
  ``;``, ``,`` or ``|``); the classes are every code seen, sorted.

The record column is ``record`` (or ``record_id``/``recording``/``id``/``filename``/``file``/``ecg_id``/
``exam_id``/``name``), matched against each record's id (its file name without extension; a path or an
extension in the table is ignored). Optional ``patient_id``, ``age`` and ``sex`` columns replace what the
records say, so splits keep a user's patients together. The table's labels replace any labels the record
files carry; a record without a row is skipped (``no_labels``), never trained on as "no class".

The label space is the user's classes (:meth:`LabelTable.space`); ``space(map_to="cinc2021")`` instead
encodes them into the 26 scored CinC 2021 classes, a class matching when its name is a SNOMED CT code, a
CinC abbreviation (``AF``, ``IAVB``, ``RBBB`` …, any case) or a CODE-15% class name.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from ecgscale.data import labels as _labels
from ecgscale.data.readers.base import RecordRef, Skip, parse_age, parse_sex
from ecgscale.errors import ConfigError

__all__ = ["LabelRow", "LabelTable", "read_label_table", "record_key", "user_label_space"]

log = logging.getLogger(__name__)

_RECORD_COLUMNS = ("record", "record_id", "recording", "id", "filename", "file", "ecg_id", "exam_id", "name")
_CODE_COLUMNS = ("codes", "labels", "label", "dx", "diagnosis", "diagnoses", "classes")
_META_COLUMNS = {"patient_id": "patient_id", "patient": "patient_id", "age": "age", "sex": "sex", "gender": "sex"}
_TRUE = {"1", "1.0", "true", "yes", "y", "t"}
_FALSE = {"0", "0.0", "false", "no", "n", "f", ""}
_SUFFIXES = (".hea", ".mat", ".dat", ".h5", ".hdf5", ".txt", ".csv", ".npy")
_SPLIT_CODES = re.compile(r"[;,|]")
_MAX_BYTES = 256 * 2**20
#: Key of ``RecordRef.extra`` that marks labels taken from a table (``read`` then uses them over the file's).
TABLE_KEY = "labels_csv"


def record_key(text: str) -> str:
    """The record id a table cell names: its base name without a record-file extension (``a/A0001.hea`` → ``A0001``)."""
    name = PureWindowsPath(PurePosixPath(text.strip()).name).name
    lower = name.lower()
    for suffix in _SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


@dataclass(frozen=True, slots=True)
class LabelRow:
    """One record's row: its codes (class names) and the demographics the table gives (``None`` = not given)."""

    codes: tuple[str, ...]
    patient_id: str | None = None
    age: float | None = None
    sex: str | None = None


@dataclass(frozen=True, slots=True)
class LabelTable:
    """A parsed labels table: ``classes`` in the user's order and one :class:`LabelRow` per record id."""

    path: Path
    classes: tuple[str, ...]
    rows: Mapping[str, LabelRow] = field(default_factory=dict)
    layout: str = "columns"  # "columns" (0/1 per class) or "codes" (a code-list column)
    map_to: str | None = None  # None: the user's classes; "cinc2021": encoded into the CinC 2021 scored classes

    def digest(self) -> str:
        """Identifies the table's content (classes and rows), so a cache built from it is rebuilt when it changes."""
        payload = json.dumps(
            [list(self.classes), sorted((k, list(dataclasses.astuple(r))) for k, r in self.rows.items())],
            default=str,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    def space(self, *, map_to: str | None = None) -> _labels.LabelSpace:
        """The table's label space: :func:`user_label_space` of its classes (``map_to`` defaults to the table's)."""
        return user_label_space(self.classes, name=f"user:{self.path.stem}", map_to=map_to or self.map_to)

    def apply(self, refs: Sequence[RecordRef]) -> tuple[list[RecordRef], list[Skip], list[str]]:
        """Refs with the table's labels in ``extra`` (``read`` uses them), skips for records without a row,
        and the table's record ids that matched no record (a typo or a missing file: reported, not fatal)."""
        kept: list[RecordRef] = []
        skipped: list[Skip] = []
        used: set[str] = set()
        for ref in refs:
            key = ref.record_id if ref.record_id in self.rows else record_key(str(ref.path))
            row = self.rows.get(key)
            if row is None:
                why = f"{ref.path}: record {ref.record_id} has no row in {self.path}"
                skipped.append(Skip(ref.path, "no_labels", why))
                continue
            used.add(key)
            extra: dict[str, Any] = {**ref.extra, "codes": list(row.codes), TABLE_KEY: str(self.path)}
            for name in ("patient_id", "age", "sex"):
                value = getattr(row, name)
                if value is not None:
                    extra[name] = value
            kept.append(dataclasses.replace(ref, extra=extra))
        unmatched = sorted(set(self.rows) - used)
        if unmatched:
            shown = ", ".join(unmatched[:10]) + (" …" if len(unmatched) > 10 else "")
            log.warning("%s: %d row(s) match no record found: %s", self.path, len(unmatched), shown)
        return kept, skipped, unmatched


def user_label_space(classes: Sequence[str], *, name: str = "user", map_to: str | None = None) -> _labels.LabelSpace:
    """The user's classes as a label space (key = abbreviation = the class name, no label group), or with
    ``map_to="cinc2021"`` the CinC 2021 scored space with the user's names added as aliases of the classes they
    name (a SNOMED CT code, a CinC abbreviation in any case, or a CODE-15% class name); names that match no
    scored class are logged and their labels left out."""
    if map_to is None:
        return _labels.LabelSpace(name, [_labels.LabelClass(c, (c,), c, c, None, True) for c in classes])
    if map_to != "cinc2021":
        raise ConfigError(f"map_to {map_to!r} is not allowed; use None or 'cinc2021'", key="map_to")
    scored = _labels.cinc2021_scored()
    known = {code for cls in scored.classes for code in cls.codes}
    by_name = {cls.abbreviation.lower(): cls.codes[0] for cls in scored.classes}
    from ecgscale.data.readers.hdf5 import code15_to_snomed

    by_name.update({k.lower(): v for k, v in code15_to_snomed().items()})
    aliases: dict[str, str] = {}
    unmatched = []
    for cls in classes:
        if cls in known:
            continue
        target = by_name.get(cls.lower())
        if target is None:
            unmatched.append(cls)
        else:
            aliases[cls] = target
    if unmatched:
        log.warning(
            "%s: class(es) %s name no scored CinC 2021 class (use a SNOMED CT code or an abbreviation "
            "such as AF, IAVB, RBBB); their labels are left out",
            name,
            unmatched,
        )
    return _labels.cinc2021_scored(aliases=aliases or None)


def _find_column(
    header: Sequence[str], wanted: str | None, candidates: Sequence[str], what: str, path: Path
) -> str | None:
    lower = {h.lower(): h for h in header}
    if wanted is not None:
        if wanted in header:
            return wanted
        if wanted.lower() in lower:
            return lower[wanted.lower()]
        raise ConfigError(f"no {what} column {wanted!r}; columns are {list(header)}", file=path, key=what)
    return next((lower[c] for c in candidates if c in lower), None)


def _flag(value: str, path: Path, line: int, column: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(
        f"line {line}: {value!r} is not a 0/1 label (allowed 0, 1, true, false, yes, no, empty); "
        "pass label_columns (--label-columns) if this column is not a label",
        file=path,
        key=column,
    )


def read_label_table(
    path: str | os.PathLike[str],
    *,
    record_column: str | None = None,
    codes_column: str | None = None,
    label_columns: Sequence[str] | None = None,
) -> LabelTable:
    """Parse a labels CSV (layouts in the module docstring); errors name the file, line and column."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > _MAX_BYTES:
            raise ConfigError(f"{size} bytes; a labels table above {_MAX_BYTES} bytes is refused", file=path)
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ConfigError("labels table not found", file=path) from None
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", file=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc}", file=path) from None
    if "\x00" in text:
        raise ConfigError("holds binary data (NUL bytes), not CSV text", file=path)
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    try:
        table = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error as exc:
        raise ConfigError(f"not a readable CSV table: {exc}", file=path) from None
    table = [row for row in table if any(cell.strip() for cell in row)]
    if len(table) < 2:
        raise ConfigError("needs a header line and at least one record row", file=path)
    header = [h.strip() for h in table[0]]
    rec_col = _find_column(header, record_column, _RECORD_COLUMNS, "record", path)
    if rec_col is None:
        raise ConfigError(
            f"no record column (one of {list(_RECORD_COLUMNS)}); columns are {header}: pass record_column "
            "(--record-column)",
            file=path,
            key="record",
        )
    code_col = _find_column(header, codes_column, _CODE_COLUMNS, "codes", path)
    meta_cols = {h: _META_COLUMNS[h.lower()] for h in header if h.lower() in _META_COLUMNS and h != rec_col}
    if label_columns is not None:
        missing = [c for c in label_columns if c not in header]
        if missing:
            raise ConfigError(f"label column(s) {missing} not in the header {header}", file=path, key="label_columns")
        flag_cols = list(label_columns)
    elif code_col is None:
        flag_cols = [h for h in header if h != rec_col and h not in meta_cols]
    else:
        flag_cols = []
    if code_col is None and not flag_cols:
        raise ConfigError(f"no label columns and no code-list column ({list(_CODE_COLUMNS)})", file=path)
    index = {h: i for i, h in enumerate(header)}
    rows: dict[str, LabelRow] = {}
    seen_codes: set[str] = set()
    for line, cells in enumerate(table[1:], start=2):
        cells = cells + [""] * (len(header) - len(cells))

        def cell(column: str, cells: list[str] = cells) -> str:
            return cells[index[column]].strip()

        key = record_key(cell(rec_col))
        if not key:
            raise ConfigError(f"line {line}: empty record name", file=path, key=rec_col)
        if key in rows:
            raise ConfigError(f"line {line}: record {key!r} appears twice", file=path, key=rec_col)
        if code_col is not None and label_columns is None:
            codes = tuple(dict.fromkeys(c.strip() for c in _SPLIT_CODES.split(cell(code_col)) if c.strip()))
            seen_codes.update(codes)
        else:
            codes = tuple(c for c in flag_cols if _flag(cell(c), path, line, c))
        meta: dict[str, Any] = {}
        for column, name in meta_cols.items():
            value = cell(column)
            if name == "patient_id":
                meta[name] = value or None
            elif name == "age":
                age = parse_age(value)
                meta[name] = age if age is None or math.isfinite(age) else None
            else:
                meta[name] = parse_sex(value)
        rows[key] = LabelRow(codes, **meta)
    classes = tuple(flag_cols) if flag_cols else tuple(sorted(seen_codes))
    if not classes:
        raise ConfigError(f"the code-list column {code_col!r} names no class in any row", file=path, key=code_col)
    return LabelTable(path, classes, rows, "columns" if flag_cols else "codes")
