"""Label vocabularies: the CinC 2021 SNOMED-CT space, the label groups of the scale study, and Tianchi names.

The CinC 2021 tables ship inside the package (``data/resources/cinc2021``, copied verbatim from the
challenge's ``weights.csv`` and ``dx_mapping_{scored,unscored}.csv``). Equivalent codes are merged exactly
as the challenge scores them: a class is one column of ``weights.csv``, and a column header such as
``733534002|164909002`` names every code that counts as that class.

Label groups are ecgscale's reconstruction of the per-group analysis of Lee, Jo & Kwon (2023); the paper's
abstract names the groups (arrhythmia, conduction disorders, axis deviations, prolonged intervals, ...), not
their exact membership, so the membership below is ours and documented in ``docs/labels.md``.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ecgscale.errors import ConfigError

if TYPE_CHECKING:
    from ecgscale.data.readers.base import Discovery
    from ecgscale.data.readers.label_table import LabelTable

__all__ = [
    "LABEL_GROUPS",
    "PTBXL_SCP_MAP",
    "PTBXL_TASKS",
    "TIANCHI_NAME_MAP",
    "LabelClass",
    "LabelSpace",
    "choose_label_space",
    "cinc2021_all",
    "cinc2021_scored",
    "cinc2021_weights",
    "group_of",
    "label_spec",
    "ptbxl_group",
    "ptbxl_space",
    "ptbxl_to_snomed",
    "read_scp_statements",
    "snomed_info",
    "tianchi_space",
    "tianchi_to_snomed",
    "translate_codes",
]

#: Label groups of the scale study, by class abbreviation (merged classes use the first abbreviation).
LABEL_GROUPS: Mapping[str, tuple[str, ...]] = {
    "rhythm": ("AF", "AFL", "Brady", "NSR", "PAC", "PVC", "SA", "SB", "STach"),
    "conduction": ("BBB", "LBBB", "RBBB", "IAVB", "IRBBB", "LAnFB", "NSIVCB"),
    "axis": ("LAD", "RAD"),
    "intervals": ("LPR", "LQT"),
    "morphology": ("LQRSV", "PRWP", "QAb", "TAb", "TInv"),
    "pacing": ("PR",),
}

# Equivalent classes take the abbreviation the study uses for the merged class.
_MERGED_ABBREVIATION = {
    "733534002|164909002": "LBBB",
    "713427006|59118001": "RBBB",
    "284470004|63593006": "PAC",
    "427172004|17338001": "PVC",
}

#: Tianchi (Hefei) arrhythmia names → CinC 2021 class abbreviation where the meaning matches, else ``None``.
#: Names absent from this table are still read and kept; they simply belong to no group.
TIANCHI_NAME_MAP: Mapping[str, str | None] = {
    "窦性心律": "NSR",
    "窦性心动过缓": "SB",
    "窦性心动过速": "STach",
    "窦性心律不齐": "SA",
    "心房颤动": "AF",
    "心房扑动": "AFL",
    "房性早搏": "PAC",
    "室上性早搏": "PAC",
    "室性早搏": "PVC",
    "右束支传导阻滞": "RBBB",
    "完全性右束支传导阻滞": "RBBB",
    "不完全性右束支传导阻滞": "IRBBB",
    "左束支传导阻滞": "LBBB",
    "完全性左束支传导阻滞": "LBBB",
    "左前分支传导阻滞": "LAnFB",
    "一度房室传导阻滞": "IAVB",
    "非特异性室内传导阻滞": "NSIVCB",
    "室内传导阻滞": "NSIVCB",
    "电轴左偏": "LAD",
    "电轴右偏": "RAD",
    "QRS低电压": "LQRSV",
    "肢体导联低电压": "LQRSV",
    "T波改变": "TAb",
    "T波倒置": "TInv",
    "异常Q波": "QAb",
    "下壁异常Q波": "QAb",
    "前间壁R波递增不良": "PRWP",
    "R波递增不良": "PRWP",
    "起搏心律": "PR",
    "QT间期延长": "LQT",
    "PR间期延长": "LPR",
    "ST段改变": None,
    "ST-T改变": None,
    "早期复极化": None,
    "左心室高电压": None,
    "右心房扩大": None,
    "顺钟向转位": None,
    "逆钟向转位": None,
    "短PR间期": None,
}


#: PTB-XL SCP statements → CinC 2021 class abbreviation where the meaning matches (used for label groups
#: and to translate PTB-XL into the CinC 2021 space). Statements absent here have no CinC counterpart.
#: Checked against the CinC 2020 labelling of every shipped PTB-XL record (``ecgscale.data.labels_check``,
#: table and every disagreement explained in ``docs/labels.md``): NORM, SVARR, NDT and LOWT are mapped as
#: the challenge maps them; PVC is kept on the scored PVC class although the challenge labelled PTB-XL's
#: PVC statement with the unscored "ventricular ectopics" (164884008).
PTBXL_SCP_MAP: Mapping[str, str] = {
    "SR": "NSR",
    "NORM": "NSR",
    "AFIB": "AF",
    "AFLT": "AFL",
    "SBRAD": "SB",
    "STACH": "STach",
    "SARRH": "SA",
    "PAC": "PAC",
    "SVPB": "PAC",
    "SVARR": "PAC",
    "PVC": "PVC",
    "PACE": "PR",
    "1AVB": "IAVB",
    "CLBBB": "LBBB",
    "CRBBB": "RBBB",
    "IRBBB": "IRBBB",
    "LAFB": "LAnFB",
    "IVCD": "NSIVCB",
    "LNGQT": "LQT",
    "LPR": "LPR",
    "LVOLT": "LQRSV",
    "QWAVE": "QAb",
    "INVT": "TInv",
    "NT_": "TAb",
    "TAB_": "TAb",
    "NDT": "TAb",
    "LOWT": "TAb",
}

#: Statements that translate into a CinC 2021 class but do not take its label group: ``NORM`` (a normal
#: ECG) implies sinus rhythm, yet it is a diagnosis of the whole ECG, not a rhythm statement.
_PTBXL_TRANSLATION_ONLY = frozenset({"NORM"})

#: The PTB-XL benchmark tasks (Strodthoff et al. 2021), each a label space built from ``scp_statements.csv``.
PTBXL_TASKS: tuple[str, ...] = ("all", "diagnostic", "subdiagnostic", "superdiagnostic", "form", "rhythm")


@dataclass(frozen=True, slots=True)
class LabelClass:
    """One output of a classifier: a set of equivalent codes with a name and a label group."""

    key: str  # canonical identifier, e.g. "733534002|164909002" (SNOMED) or a Tianchi name
    codes: tuple[str, ...]
    abbreviation: str
    name: str
    group: str | None
    scored: bool = True


def ptbxl_group(statement: str) -> str | None:
    """The study's label group of a PTB-XL statement (that of its CinC 2021 counterpart), or ``None``."""
    abbr = PTBXL_SCP_MAP.get(statement)
    if abbr is None or statement in _PTBXL_TRANSLATION_ONLY:
        return None
    return group_of(abbr)


def group_of(abbreviation: str) -> str | None:
    """The study's label group of a class abbreviation, or ``None``."""
    for group, members in LABEL_GROUPS.items():
        if abbreviation in members:
            return group
    return None


class LabelSpace:
    """An ordered vocabulary of classes that turns code lists into multi-hot vectors and back."""

    def __init__(self, name: str, classes: Sequence[LabelClass]):
        if not classes:
            raise ValueError(f"label space {name!r} has no classes")
        self.name = name
        self.classes: tuple[LabelClass, ...] = tuple(classes)
        index: dict[str, int] = {}
        for i, cls in enumerate(self.classes):
            for code in cls.codes:
                if code in index:
                    raise ValueError(f"label space {name!r}: code {code!r} belongs to two classes")
                index[code] = i
        self._index = index

    def __len__(self) -> int:
        return len(self.classes)

    def __repr__(self) -> str:
        return f"LabelSpace({self.name!r}, {len(self)} classes)"

    @property
    def keys(self) -> list[str]:
        return [c.key for c in self.classes]

    @property
    def abbreviations(self) -> list[str]:
        return [c.abbreviation for c in self.classes]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def groups(self) -> dict[str, list[int]]:
        """Group name → class indices, in the order of ``LABEL_GROUPS`` (empty groups left out)."""
        out: dict[str, list[int]] = {}
        for group in LABEL_GROUPS:
            idx = [i for i, c in enumerate(self.classes) if c.group == group]
            if idx:
                out[group] = idx
        return out

    def index_of(self, code: str) -> int | None:
        return self._index.get(code.strip())

    def encode(self, codes: Iterable[str]) -> np.ndarray:
        """Multi-hot ``uint8`` vector; codes outside the space are ignored (see :meth:`unknown`)."""
        vec = np.zeros(len(self), dtype=np.uint8)
        for code in codes:
            i = self._index.get(code.strip())
            if i is not None:
                vec[i] = 1
        return vec

    def unknown(self, codes: Iterable[str]) -> list[str]:
        """The codes of a record that this space does not contain (kept by readers as metadata)."""
        return [c for c in codes if c.strip() not in self._index]

    def decode(self, vector: Sequence[float] | np.ndarray, threshold: float = 0.5) -> list[LabelClass]:
        vec = np.asarray(vector)
        if vec.shape != (len(self),):
            raise ValueError(f"expected a vector of {len(self)} values for {self.name!r}, got shape {vec.shape}")
        return [c for c, v in zip(self.classes, vec, strict=True) if v >= threshold]

    def to_dict(self) -> dict:
        """JSON-ready description, stored in caches and checkpoints so a run carries its label list."""
        return {
            "name": self.name,
            "classes": [
                {
                    "key": c.key,
                    "codes": list(c.codes),
                    "abbreviation": c.abbreviation,
                    "name": c.name,
                    "group": c.group,
                    "scored": c.scored,
                }
                for c in self.classes
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> LabelSpace:
        classes = [
            LabelClass(
                key=str(c["key"]),
                codes=tuple(str(x) for x in c["codes"]),
                abbreviation=str(c["abbreviation"]),
                name=str(c["name"]),
                group=c.get("group"),
                scored=bool(c.get("scored", True)),
            )
            for c in data["classes"]
        ]
        return cls(str(data["name"]), classes)


def _resource_rows(name: str) -> list[dict[str, str]]:
    text = resources.files("ecgscale.data").joinpath("resources", "cinc2021", name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


@functools.cache
def _snomed_table() -> dict[str, tuple[str, str, bool]]:
    table: dict[str, tuple[str, str, bool]] = {}
    for fname, scored in (("dx_mapping_scored.csv", True), ("dx_mapping_unscored.csv", False)):
        for row in _resource_rows(fname):
            table[row["SNOMEDCTCode"].strip()] = (row["Abbreviation"].strip(), row["Dx"].strip(), scored)
    return table


def snomed_info(code: str) -> tuple[str, str, bool] | None:
    """``(abbreviation, name, scored)`` of a SNOMED-CT code known to CinC 2021, or ``None``."""
    return _snomed_table().get(code.strip())


@functools.cache
def _weights() -> tuple[tuple[str, ...], np.ndarray]:
    text = resources.files("ecgscale.data").joinpath("resources", "cinc2021", "weights.csv").read_text("utf-8")
    rows = list(csv.reader(text.splitlines()))
    header = tuple(h.strip() for h in rows[0][1:])
    mat = np.array([[float(x) for x in r[1:]] for r in rows[1:]], dtype=np.float64)
    if mat.shape != (len(header), len(header)):
        raise ValueError(f"weights.csv is not square: {mat.shape}")
    return header, mat


def cinc2021_weights() -> tuple[list[str], np.ndarray]:
    """The official challenge class keys (``|``-joined equivalents) and their 26 × 26 reward matrix."""
    keys, mat = _weights()
    return list(keys), mat.copy()


@functools.cache
def _scored_classes() -> tuple[LabelClass, ...]:
    keys, _ = _weights()
    table = _snomed_table()
    classes = []
    for key in keys:
        codes = tuple(key.split("|"))
        abbr = _MERGED_ABBREVIATION.get(key, table[codes[0]][0])
        # A merged class takes the name of the code whose abbreviation it keeps (LBBB, not CLBBB).
        name = next((table[c][1] for c in codes if table[c][0] == abbr), table[codes[0]][1])
        classes.append(LabelClass(key, codes, abbr, name, group_of(abbr), True))
    return tuple(classes)


def cinc2021_scored(*, aliases: Mapping[str, str] | None = None) -> LabelSpace:
    """The 26 scored classes of CinC 2021 in ``weights.csv`` order, equivalent codes merged.

    ``aliases`` maps foreign codes to a SNOMED code of a scored class (e.g. :func:`tianchi_to_snomed`);
    each alias is added to that class's codes, so Tianchi or PTB-XL records encode straight into the
    CinC 2021 space. Class keys, order and name stay those of the challenge. Aliases of unscored codes
    are ignored.
    """
    classes = _scored_classes()
    if not aliases:
        return LabelSpace("cinc2021", classes)
    index = {code: i for i, cls in enumerate(classes) for code in cls.codes}
    extra: dict[int, list[str]] = {}
    for alias, code in aliases.items():
        i = index.get(str(code).strip())
        if i is not None and alias not in classes[i].codes:
            extra.setdefault(i, []).append(alias)
    merged = [dataclasses.replace(c, codes=c.codes + tuple(extra.get(i, ()))) for i, c in enumerate(classes)]
    return LabelSpace("cinc2021", merged)


def cinc2021_all() -> LabelSpace:
    """The scored classes followed by every unscored code of ``dx_mapping_unscored.csv``."""
    classes = list(_scored_classes())
    seen = {c for cls in classes for c in cls.codes}
    for row in _resource_rows("dx_mapping_unscored.csv"):
        code = row["SNOMEDCTCode"].strip()
        if code in seen:
            continue
        seen.add(code)
        abbr = row["Abbreviation"].strip()
        classes.append(LabelClass(code, (code,), abbr, row["Dx"].strip(), group_of(abbr), False))
    return LabelSpace("cinc2021-all", classes)


def _snomed_of_abbreviation() -> dict[str, str]:
    return {c.abbreviation: c.codes[0] for c in _scored_classes()}


def tianchi_to_snomed() -> dict[str, str]:
    """Tianchi arrhythmia name → SNOMED-CT code of the matching scored CinC 2021 class (``TIANCHI_NAME_MAP``)."""
    by_abbr = _snomed_of_abbreviation()
    return {name: by_abbr[abbr] for name, abbr in TIANCHI_NAME_MAP.items() if abbr is not None}


def ptbxl_to_snomed() -> dict[str, str]:
    """PTB-XL SCP statement → SNOMED-CT code of the matching scored CinC 2021 class (``PTBXL_SCP_MAP``)."""
    by_abbr = _snomed_of_abbreviation()
    return {scp: by_abbr[abbr] for scp, abbr in PTBXL_SCP_MAP.items()}


def translate_codes(codes: Iterable[str], mapping: Mapping[str, str]) -> tuple[str, ...]:
    """Codes with each one found in ``mapping`` replaced by its target; unknown codes are kept as they are."""
    out: dict[str, None] = {}
    for code in codes:
        out.setdefault(mapping.get(code.strip(), code.strip()), None)
    return tuple(out)


def tianchi_space(class_names: Iterable[str]) -> LabelSpace:
    """A space keyed by Tianchi names (class-list order); abbreviation and group from ``TIANCHI_NAME_MAP``.

    Names without a CinC 2021 counterpart keep the Chinese name as abbreviation and belong to no group.
    """
    classes = []
    seen: set[str] = set()
    for raw in class_names:
        name = raw.strip()
        if not name or name in seen:
            continue
        seen.add(name)
        abbr = TIANCHI_NAME_MAP.get(name)
        classes.append(LabelClass(name, (name,), abbr or name, name, group_of(abbr) if abbr else None, True))
    return LabelSpace("tianchi", classes)


def read_scp_statements(path: str | os.PathLike[str]) -> dict[str, dict[str, str]]:
    """``scp_statements.csv`` of PTB-XL → ``{statement: {column: value}}`` (the unnamed first column is the key)."""
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise ValueError(f"{path}: empty scp_statements file")
    header = [h.strip() for h in rows[0]]
    out: dict[str, dict[str, str]] = {}
    for row in rows[1:]:
        if row and row[0].strip():
            out[row[0].strip()] = {h: v.strip() for h, v in zip(header[1:], row[1:], strict=False)}
    return out


def _flag(value: str | None) -> bool:
    try:
        return float(value or 0) == 1.0
    except ValueError:
        return False


def ptbxl_space(
    task: str, statements: str | os.PathLike[str] | Mapping[str, Mapping[str, str]] | None = None
) -> LabelSpace:
    """The label space of a PTB-XL benchmark task, built from ``scp_statements.csv`` as the benchmark code does.

    ``statements`` is the CSV, the PTB-XL folder holding it, or :func:`read_scp_statements`' table.

    ``all``: every statement; ``diagnostic``/``form``/``rhythm``: statements with that flag;
    ``subdiagnostic``/``superdiagnostic``: diagnostic statements aggregated to their ``diagnostic_subclass``
    / ``diagnostic_class`` (a class's codes are its member statements). Order: sorted keys, as the
    benchmark's ``MultiLabelBinarizer`` orders them.
    """
    if task not in PTBXL_TASKS:
        raise ValueError(f"PTB-XL task must be one of {PTBXL_TASKS}, got {task!r}")
    if statements is None:
        raise ValueError(
            "a PTB-XL label space is built from the data set's scp_statements.csv; pass its path, "
            "the PTB-XL folder, or the parsed table"
        )
    if isinstance(statements, str | os.PathLike):
        path = Path(statements)
        table = read_scp_statements(path / "scp_statements.csv" if path.is_dir() else path)
    else:
        table = statements
    if task in ("subdiagnostic", "superdiagnostic"):
        column = "diagnostic_subclass" if task == "subdiagnostic" else "diagnostic_class"
        members: dict[str, list[str]] = {}
        for stmt, row in table.items():
            target = (row.get(column) or "").strip()
            if _flag(row.get("diagnostic")) and target:
                members.setdefault(target, []).append(stmt)
        classes = [LabelClass(k, tuple(members[k]), k, k, None, True) for k in sorted(members)]
    else:
        keep = sorted(s for s, row in table.items() if task == "all" or _flag(row.get(task)))
        classes = []
        for stmt in keep:
            name = (table[stmt].get("description") or stmt).strip()
            classes.append(LabelClass(stmt, (stmt,), stmt, name, ptbxl_group(stmt), True))
    return LabelSpace(f"ptbxl-{task}", classes)


# --------------------------------------------------------------------------------------------------- choice
_PTBXL_PREFIX = "ptbxl:"


def label_spec(labels: str | LabelSpace | LabelTable) -> str:
    """A string that identifies a label choice (``auto``, ``cinc2021``, ``cinc2021-all``, ``tianchi``,
    ``ptbxl:<task>``, a ``LabelSpace`` or a user's ``LabelTable``): part of a cache's build parameters."""
    from ecgscale.data.readers.label_table import LabelTable

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


def choose_label_space(spec: str | LabelSpace | LabelTable, discovery: Discovery) -> LabelSpace:
    """The label space of a build, chosen before any signal is read (so a bad choice fails fast).

    ``auto``: one format → its own space (``readers.default_label_space``: CinC 2021 scored classes, the
    Tianchi class list, PTB-XL superdiagnostic); several formats → the CinC 2021 scored classes with Tianchi
    names and PTB-XL statements added as aliases of the matching classes (``cinc2021_scored(aliases=)``).
    """
    from ecgscale.data.readers import Discovery, default_label_space
    from ecgscale.data.readers.label_table import LabelTable
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
            aliases.update(tianchi_to_snomed())
        if "ptbxl" in formats:
            aliases.update(ptbxl_to_snomed())
        if "code15" in formats:
            from ecgscale.data.readers.hdf5 import code15_to_snomed

            aliases.update(code15_to_snomed())
        return cinc2021_scored(aliases=aliases or None)
    if spec == "cinc2021-all":
        return cinc2021_all()
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
        return ptbxl_space(task, Path(roots[0]) / PTBXL_STATEMENTS)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"labels {spec!r}: {exc}", key="labels") from exc
