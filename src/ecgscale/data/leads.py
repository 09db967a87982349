"""Lead names and lead sets: the 12-lead order, the aliases of each lead, and the reduced sets of CinC 2021.

The PhysioNet/CinC Challenge 2021 ("Will Two Do?") scored every entry on 12, 6, 4, 3 and 2 leads. A
:class:`LeadSet` is one of those official sets or any explicit list of standard leads; it is always held in
``STANDARD_LEADS`` order, which is the row order a model trained on it expects.

Where the subset is taken: at training time, from the rows of a 12-lead cache (``ecgscale.train.data``), not
at ``prepare``. Preprocessing is per lead (resampling, band-pass and standardisation never mix leads), so the
rows of a 12-lead cache are exactly what a reduced-lead cache would hold: one cache then serves every lead
set, and a sweep can have a lead-set axis over it without preparing the data five times. Prediction takes the
model's leads from each record by name (``LeadSet.select``), in whatever order the file lists them.

Names are matched case-insensitively with the usual aliases (``AVR``/``avr`` → ``aVR``, ``DI``/``DII``/``DIII``
→ ``I``/``II``/``III``). ``MLII`` (modified lead II of Holter and MIT-BIH records, from torso electrodes) is
deliberately not an alias of ``II``: the waveforms differ.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ecgscale.data.records import STANDARD_LEADS
from ecgscale.errors import ConfigError, RecordError

__all__ = [
    "LEAD_ALIASES",
    "LEAD_SETS",
    "STANDARD_LEADS",
    "LeadSet",
    "canonical_lead",
    "parse_leads",
]

#: The official lead sets of the PhysioNet/CinC Challenge 2021, by their number of leads.
LEAD_SETS: Mapping[str, tuple[str, ...]] = {
    "12": STANDARD_LEADS,
    "6": ("I", "II", "III", "aVR", "aVL", "aVF"),
    "4": ("I", "II", "III", "V2"),
    "3": ("I", "II", "V2"),
    "2": ("I", "II"),
}

#: Other spellings (lower case) of the standard leads; the standard names match in any case too.
LEAD_ALIASES: Mapping[str, str] = {"di": "I", "dii": "II", "diii": "III"}

_LOOKUP: dict[str, str] = {**{n.lower(): n for n in STANDARD_LEADS}, **LEAD_ALIASES}
_INDEX: dict[str, int] = {n: i for i, n in enumerate(STANDARD_LEADS)}
_HELP = "12 | 6 | 4 | 3 | 2, or a comma list of leads such as I,II,V2"


def canonical_lead(name: object) -> str | None:
    """The standard spelling of a lead name (``"avr"`` → ``"aVR"``, ``"DII"`` → ``"II"``), None if unknown."""
    return _LOOKUP.get(str(name).strip().lower())


@dataclass(frozen=True, slots=True)
class LeadSet:
    """An ordered set of standard leads (``STANDARD_LEADS`` order, no repeats); build with :func:`parse_leads`."""

    names: tuple[str, ...]

    def __post_init__(self) -> None:
        names = tuple(self.names)
        bad = [n for n in names if n not in _INDEX]
        if bad or not names:
            raise ConfigError(f"got {list(names)!r}; allowed: standard lead names {list(STANDARD_LEADS)}", key="leads")
        if len(set(names)) != len(names) or list(names) != sorted(names, key=_INDEX.__getitem__):
            raise ConfigError(f"got {list(names)!r}; build lead sets with parse_leads()", key="leads")
        object.__setattr__(self, "names", names)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def is_full(self) -> bool:
        """All 12 leads (the default; runs without a lead set recorded are 12-lead runs)."""
        return self.names == STANDARD_LEADS

    @property
    def tag(self) -> str:
        """Short name: ``"12"``, ``"6"``, ``"4"``, ``"3"``, ``"2"`` for official sets, else ``"I+II+V1"``."""
        for tag, names in LEAD_SETS.items():
            if names == self.names:
                return tag
        return "+".join(self.names)

    @property
    def indices(self) -> tuple[int, ...]:
        """Rows of these leads in a 12-lead (``STANDARD_LEADS``) array."""
        return tuple(_INDEX[n] for n in self.names)

    def to_config(self) -> list[str] | None:
        """JSON form for configs: ``None`` for all 12 leads (so 12-lead configs equal those written before lead
        sets existed), else the list of names."""
        return None if self.is_full else list(self.names)

    def take(self, x: np.ndarray) -> np.ndarray:
        """The rows of this set from a 12-lead array ``(..., 12, n)`` (the array itself when the set is full)."""
        if self.is_full:
            return x
        return x[..., list(self.indices), :]

    def select(
        self, signal: np.ndarray, lead_names: Sequence[str], *, path: str | os.PathLike[str] = "<record>"
    ) -> np.ndarray:
        """Rows of ``signal`` (one per name in ``lead_names``, any order) for this set's leads, in its order.

        Leads the record has beyond the set are dropped; a lead of the set the record lacks is a
        ``RecordError`` (``reason="missing_leads"``) naming the missing leads and those the record has.
        """
        x = np.asarray(signal)
        if x.ndim != 2 or x.shape[0] != len(lead_names):
            raise RecordError(
                path,
                f"signal shape {x.shape} does not match {len(lead_names)} lead names",
                reason="shape_mismatch",
                field="leads",
            )
        rows: dict[str, int] = {}
        for row, name in enumerate(lead_names):
            std = canonical_lead(name)
            if std is not None:
                rows.setdefault(std, row)
        missing = [n for n in self.names if n not in rows]
        if missing:
            has = ", ".join(map(str, lead_names)) or "none"
            raise RecordError(
                path,
                f"missing leads {', '.join(missing)}: the {self.tag}-lead set is "
                f"{', '.join(self.names)}; the record has {has}",
                reason="missing_leads",
                field="leads",
            )
        order = [rows[n] for n in self.names]
        if order == list(range(x.shape[0])):
            return x
        return x[np.asarray(order, dtype=np.intp)]


def parse_leads(spec: Any, *, key: str = "leads", file: str | os.PathLike[str] | None = None) -> LeadSet:
    """A :class:`LeadSet` from ``12|6|4|3|2``, a comma list (``"I,II,V2"``, any case and order, aliases
    allowed), a sequence of names, a ``LeadSet``, or ``None`` (all 12 leads).

    Errors are ``ConfigError`` naming ``key`` (and ``file``), the bad lead and what is allowed.
    """
    if spec is None:
        return LeadSet(STANDARD_LEADS)
    if isinstance(spec, LeadSet):
        return spec
    if isinstance(spec, int) and not isinstance(spec, bool):
        spec = str(spec)
    if isinstance(spec, str):
        text = spec.strip()
        if text in LEAD_SETS:
            return LeadSet(LEAD_SETS[text])
        if text.isdigit():
            raise ConfigError(
                f"got {spec!r}; the official lead sets are 12, 6, 4, 3 and 2 ({_HELP})", file=file, key=key
            )
        items: list[Any] = text.replace("+", ",").split(",")
    elif isinstance(spec, Sequence):
        items = list(spec)
    else:
        raise ConfigError(f"got {spec!r}; allowed: {_HELP}", file=file, key=key)
    names: list[str] = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise ConfigError(
                f"got {spec!r}: empty or non-text lead name {item!r}; allowed: {_HELP}", file=file, key=key
            )
        std = canonical_lead(item)
        if std is None:
            mlii = item.strip().upper() == "MLII"
            hint = " (MLII is modified lead II of ambulatory records, not lead II)" if mlii else ""
            raise ConfigError(
                f"unknown lead {item.strip()!r} in {spec!r}{hint}; allowed (any case): "
                f"{', '.join(STANDARD_LEADS)} (aliases DI, DII, DIII)",
                file=file,
                key=key,
            )
        if std in names:
            raise ConfigError(f"lead {std} appears twice in {spec!r}", file=file, key=key)
        names.append(std)
    return LeadSet(tuple(sorted(names, key=_INDEX.__getitem__)))
