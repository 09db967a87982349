"""Scale grids: which (depth, channels, kernel size, GAP) configurations a sweep trains, and with which seeds.

Three shapes:

* ``axes`` — one factor at a time around a base configuration (the shape of the paper's figures: performance
  vs D, vs C, vs K). Base D=4, C=64, K=9; D ∈ {1, 2, 4, 8, 16}, C ∈ {16, 32, 64, 128, 256},
  K ∈ {3, 5, 9, 17, 33}; every architecture with and without global average pooling (GAP ablation):
  13 architectures × 2 = 26 points.
* ``paper`` — the full factorial of the same ranges × GAP on/off = 5 × 5 × 5 × 2 = 250 points. This is OUR
  reconstruction of the grid of Lee, Jo & Kwon (2023) from its abstract, not the authors' exact grid.
* a TOML/YAML file — ``depth``/``channels``/``kernel_size``/``gap`` lists (factorial), a ``base`` + ``vary``
  table (axes), or an explicit ``points`` list; optional ``seeds``/``repeats``, and ``leads`` (a list of lead
  sets such as ``["12", "6", "3", "2"]`` or ``"I,II,V2"``, ``ecgscale.data.leads``): every architecture is then
  trained on each lead set. A 12-lead point keeps its key (``D2-C64-K9-gap``), so studies made before lead
  sets existed resume unchanged; other lead sets append ``-L<tag>`` (``D2-C64-K9-gap-L6``, ``...-LI+II+V1``).

A grid is plain data (``to_dict``/``from_dict``) so the study can store it and refuse to resume a different one;
``to_toml`` writes it as a file ``load_grid`` reads back equal.
"""

from __future__ import annotations

import itertools
import json
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecgscale.config import reject_unknown_keys
from ecgscale.data.leads import parse_leads
from ecgscale.errors import ConfigError

__all__ = [
    "AXES",
    "AXES_BASE",
    "PAPER_CHANNELS",
    "PAPER_DEPTHS",
    "PAPER_KERNELS",
    "ArchPoint",
    "Grid",
    "axes_grid",
    "factorial_grid",
    "load_grid",
    "paper_grid",
    "resolve_grid",
    "with_lead_sets",
]

PAPER_DEPTHS: tuple[int, ...] = (1, 2, 4, 8, 16)
PAPER_CHANNELS: tuple[int, ...] = (16, 32, 64, 128, 256)
PAPER_KERNELS: tuple[int, ...] = (3, 5, 9, 17, 33)
#: Factor names in the order used everywhere (tables, keys, figures).
AXES: tuple[str, ...] = ("depth", "channels", "kernel_size")
#: Base configuration the ``axes`` grid varies one factor at a time around.
AXES_BASE: Mapping[str, int] = {"depth": 4, "channels": 64, "kernel_size": 9}

_LIMITS = {"depth": (1, 128), "channels": (1, 4096), "kernel_size": (1, 1025)}


def _check_int(value: Any, key: str, *, file: str | None) -> int:
    lo, hi = _LIMITS[key]
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"got {value!r}; allowed: an integer in [{lo}, {hi}]", file=file, key=key)
    if key == "kernel_size" and value % 2 == 0:
        raise ConfigError(
            f"got {value!r}; allowed: an odd integer (same padding needs an odd kernel)", file=file, key=key
        )
    return value


def _check_gap(value: Any, *, file: str | None, key: str = "gap") -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"got {value!r}; allowed: true or false", file=file, key=key)
    return value


@dataclass(frozen=True, slots=True)
class ArchPoint:
    """One architecture of a grid and the lead set it takes; ``key`` is its stable name in the study
    (``D4-C64-K9-gap``; ``D4-C64-K9-gap-L6`` for the 6-lead set). ``leads`` is a lead-set tag (``12``, ``6``,
    ``4``, ``3``, ``2`` or ``I+II+V1``); any spelling ``parse_leads`` takes is normalised to it."""

    depth: int
    channels: int
    kernel_size: int
    gap: bool = True
    leads: str = "12"

    def __post_init__(self) -> None:
        for name in AXES:
            _check_int(getattr(self, name), name, file=None)
        _check_gap(self.gap, file=None)
        object.__setattr__(self, "leads", parse_leads(self.leads).tag)

    @property
    def key(self) -> str:
        arch = f"D{self.depth}-C{self.channels}-K{self.kernel_size}-{'gap' if self.gap else 'nogap'}"
        return arch if self.leads == "12" else f"{arch}-L{self.leads}"

    @classmethod
    def from_key(cls, key: str) -> ArchPoint:
        try:
            d, c, k, g, *rest = key.split("-")
            if d[0] != "D" or c[0] != "C" or k[0] != "K" or g not in ("gap", "nogap") or len(rest) > 1:
                raise ValueError(key)
            leads = "12"
            if rest:
                if not rest[0].startswith("L"):
                    raise ValueError(key)
                leads = rest[0][1:]
            return cls(int(d[1:]), int(c[1:]), int(k[1:]), g == "gap", leads)
        except (ValueError, IndexError):
            raise ConfigError(
                f"got {key!r}; allowed: a key like 'D4-C64-K9-gap' or 'D4-C64-K9-gap-L6'", key="config"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """D, C, K and GAP; ``leads`` too when the set is not all 12 leads (12-lead rows look as they always did)."""
        out: dict[str, Any] = {
            "depth": self.depth,
            "channels": self.channels,
            "kernel_size": self.kernel_size,
            "gap": self.gap,
        }
        if self.leads != "12":
            out["leads"] = self.leads
        return out


@dataclass(frozen=True, slots=True)
class Grid:
    """An ordered, duplicate-free set of architectures and the seeds each one is trained with.

    ``kind`` (``axes``/``factorial``/``points``) and ``base`` only steer the analysis (which slice is "vs D");
    the sweep itself runs ``points × seeds``.
    """

    name: str
    points: tuple[ArchPoint, ...]
    seeds: tuple[int, ...] = (0,)
    kind: str = "points"
    base: Mapping[str, int] | None = None
    source: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.points:
            raise ConfigError("the grid has no configuration", file=self.source, key="points")
        keys = [p.key for p in self.points]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            raise ConfigError(f"duplicate configuration(s) {dup}", file=self.source, key="points")
        if not self.seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in self.seeds):
            raise ConfigError(
                f"got {list(self.seeds)!r}; allowed: a non-empty list of integers >= 0", file=self.source, key="seeds"
            )
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"duplicate seed in {list(self.seeds)!r}", file=self.source, key="seeds")
        if self.kind not in ("axes", "factorial", "points"):
            raise ConfigError(f"got {self.kind!r}; allowed: axes | factorial | points", file=self.source, key="kind")

    def __len__(self) -> int:
        return len(self.points) * len(self.seeds)

    @property
    def keys(self) -> list[str]:
        return [p.key for p in self.points]

    def point(self, key: str) -> ArchPoint:
        for p in self.points:
            if p.key == key:
                return p
        raise ConfigError(f"got {key!r}; not a configuration of grid {self.name!r}", key="config")

    @property
    def lead_sets(self) -> list[str]:
        """The lead-set tags of the grid, in first-appearance order (``["12"]`` for a grid without a leads axis)."""
        return list(dict.fromkeys(p.leads for p in self.points))

    def values(self, axis: str) -> list[int]:
        """Sorted distinct values of one factor (the grid steps used to pad a derived search space)."""
        return sorted({getattr(p, axis) for p in self.points})

    def with_seeds(self, seeds: Iterable[int]) -> Grid:
        return Grid(self.name, self.points, tuple(seeds), self.kind, self.base, self.source)

    def search_space(self) -> dict[str, list[Any]]:
        """The ``GridSampler`` space: each (configuration, seed) pair is one trial."""
        return {"config": self.keys, "seed": list(self.seeds)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "base": None if self.base is None else dict(self.base),
            "seeds": list(self.seeds),
            "points": [p.key for p in self.points],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Grid:
        return cls(
            name=str(data["name"]),
            points=tuple(ArchPoint.from_key(k) for k in data["points"]),
            seeds=tuple(int(s) for s in data["seeds"]),
            kind=str(data.get("kind", "points")),
            base=None if data.get("base") is None else {k: int(v) for k, v in data["base"].items()},
        )

    def to_toml(self, *, comment: str | None = None) -> str:
        """The grid as a TOML file that :func:`load_grid` reads back equal: an axes grid as ``base`` + ``vary``,
        a factorial one as value lists, a ``points`` grid as its list; a lead-set axis as ``leads``, seeds
        ``0..n-1`` as ``repeats``. ``comment`` opens the file as ``#`` lines.

        Raises ``ConfigError`` for a grid built by hand whose points no file states (a ``kind`` its points do
        not follow, lead sets that differ between architectures).
        """
        n = len(self.seeds)
        seeds = f"repeats = {n}" if self.seeds == tuple(range(n)) else f"seeds = {_toml(list(self.seeds))}"
        head = [*(f"# {line}".rstrip() for line in (comment or "").splitlines()), f"name = {_toml(self.name)}", seeds]
        if self.lead_sets != ["12"]:
            head.append(f"leads = {_toml(self.lead_sets)}")
        archs = list(dict.fromkeys(ArchPoint(p.depth, p.channels, p.kernel_size, p.gap) for p in self.points))
        for body in _toml_shapes(self.kind, self.base, archs):
            text = "\n".join([*head, "", *body]) + "\n"
            try:
                if _grid_from_mapping(tomllib.loads(text), name=self.name, file=None, seeds=None) == self:
                    return text
            except ConfigError:  # e.g. an axis left empty: not a shape a file can state
                continue
        raise ConfigError(
            f"grid {self.name!r} ({self.kind}, {len(self.points)} points) cannot be written as a grid file that "
            "loads back the same",
            key="points",
        )


def _toml(value: Any) -> str:
    """One TOML value: a boolean, integer, float (exactly), string, list or inline table."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML value for {value!r} ({type(value).__name__})")


def _toml_shapes(kind: str, base: Mapping[str, int] | None, archs: list[ArchPoint]) -> Iterable[list[str]]:
    """Candidate bodies of a grid file for ``archs`` (12-lead points): :meth:`Grid.to_toml` keeps the first that
    loads back equal. An axes grid's ``vary`` lists are not stored, only the points they made: tried sorted
    (how grids are written by hand), then as the points' order shows them."""
    values = {a: list(dict.fromkeys(getattr(p, a) for p in archs)) for a in AXES}
    gaps = [f"gap = {_toml(list(dict.fromkeys(p.gap for p in archs)))}"]
    if kind == "factorial":
        yield [f"{a} = {_toml(values[a])}" for a in AXES] + gaps
    elif kind == "axes" and base is not None:
        on_axis = {a: list(dict.fromkeys(getattr(p, a) for p in archs if _on_axis(p, a, base))) for a in AXES}
        for vary in ({a: sorted(on_axis[a]) for a in AXES}, _axis_runs(archs, base)):
            lists = [f"{a} = {_toml(vary[a])}" for a in AXES]
            yield ["[base]", *(f"{a} = {base[a]}" for a in AXES), "", "[vary]", *lists, *gaps]
    elif kind == "points":
        points = [f"  {_toml({a: getattr(p, a) for a in (*AXES, 'gap')})}," for p in archs]
        tail = [] if base is None else ["", "[base]", *(f"{a} = {base[a]}" for a in AXES)]
        yield ["points = [", *points, "]", *tail]


def _axis_runs(archs: list[ArchPoint], base: Mapping[str, int]) -> dict[str, list[int]]:
    """Each factor's values as :func:`axes_grid` laid the points out: the depth line first, then the new points
    of the channel line, then those of the kernel line (the base point goes with the first line through it)."""
    seq = list(dict.fromkeys(ArchPoint(p.depth, p.channels, p.kernel_size) for p in archs))
    runs: dict[str, list[int]] = {a: [] for a in AXES}
    i = 0
    for axis in AXES:
        while i < len(seq) and _on_axis(seq[i], axis, base):
            runs[axis].append(getattr(seq[i], axis))
            i += 1
    return {a: runs[a] or [base[a]] for a in AXES}  # a line that added no new point: its base value alone


def _on_axis(point: ArchPoint, axis: str, base: Mapping[str, int]) -> bool:
    """Whether ``point`` lies on the line through ``base`` along ``axis`` (the other two factors at the base)."""
    return all(getattr(point, a) == base[a] for a in AXES if a != axis)


def with_lead_sets(grid: Grid, leads: Sequence[Any] | None, *, file: str | None = None) -> Grid:
    """``grid`` with every architecture trained on each lead set of ``leads`` (None or empty: unchanged).

    Points are ordered architecture by architecture, each with its lead sets in the given order.
    """
    if not leads:
        return grid
    if isinstance(leads, str | int):
        leads = [leads]
    tags = list(dict.fromkeys(parse_leads(spec, key="leads", file=file).tag for spec in leads))
    points = tuple(ArchPoint(p.depth, p.channels, p.kernel_size, p.gap, tag) for p in grid.points for tag in tags)
    return Grid(grid.name, points, grid.seeds, grid.kind, grid.base, grid.source)


def factorial_grid(
    depths: Sequence[int],
    channels: Sequence[int],
    kernels: Sequence[int],
    gaps: Sequence[bool] = (True, False),
    *,
    seeds: Sequence[int] = (0,),
    name: str = "factorial",
    source: str | None = None,
) -> Grid:
    """Every combination of the given factor values."""
    points = tuple(ArchPoint(d, c, k, g) for d, c, k, g in itertools.product(depths, channels, kernels, gaps))
    return Grid(name, points, tuple(seeds), "factorial", None, source)


def axes_grid(
    base: Mapping[str, int] = AXES_BASE,
    *,
    depths: Sequence[int] = PAPER_DEPTHS,
    channels: Sequence[int] = PAPER_CHANNELS,
    kernels: Sequence[int] = PAPER_KERNELS,
    gaps: Sequence[bool] = (True, False),
    seeds: Sequence[int] = (0,),
    name: str = "axes",
    source: str | None = None,
) -> Grid:
    """The base configuration plus one factor varied at a time, each with every GAP setting."""
    base = {k: int(base[k]) for k in AXES}
    archs: list[tuple[int, int, int]] = []
    for axis, values in zip(AXES, (depths, channels, kernels), strict=True):
        for v in values:
            cfg = dict(base, **{axis: v})
            arch = (cfg["depth"], cfg["channels"], cfg["kernel_size"])
            if arch not in archs:
                archs.append(arch)
    points = tuple(ArchPoint(d, c, k, g) for d, c, k in archs for g in gaps)
    return Grid(name, points, tuple(seeds), "axes", base, source)


def paper_grid(*, seeds: Sequence[int] = (0,)) -> Grid:
    """Our reconstruction of the paper's full grid: 5 depths × 5 widths × 5 kernels × GAP on/off = 250."""
    return factorial_grid(PAPER_DEPTHS, PAPER_CHANNELS, PAPER_KERNELS, (True, False), seeds=seeds, name="paper")


def _int_list(data: Mapping[str, Any], key: str, *, file: str | None, prefix: str = "") -> list[int]:
    value = data[key]
    if not isinstance(value, list) or not value:
        raise ConfigError(f"got {value!r}; allowed: a non-empty list of integers", file=file, key=prefix + key)
    return [_check_int(v, key, file=file) for v in value]


def _gap_list(data: Mapping[str, Any], *, file: str | None, prefix: str = "") -> list[bool]:
    value = data.get("gap", [True, False])
    if isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ConfigError(f"got {value!r}; allowed: true, false or a list of them", file=file, key=prefix + "gap")
    return [_check_gap(v, file=file, key=prefix + "gap") for v in value]


def _read_mapping(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError("file not found", file=path)
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            raise ConfigError(f"unknown extension {suffix!r}; allowed: .toml, .yaml, .yml", file=path)
    except (tomllib.TOMLDecodeError, ValueError) as exc:  # yaml.YAMLError is handled below
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"not valid TOML: {exc}", file=path) from None
    except Exception as exc:
        import yaml

        if isinstance(exc, yaml.YAMLError):
            raise ConfigError(f"not valid YAML: {exc}", file=path) from None
        raise
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"expected a table of keys at the top level, got {type(data).__name__}", file=path)
    if isinstance(data.get("grid"), dict):  # a [grid] table may hold everything
        data = {**{k: v for k, v in data.items() if k != "grid"}, **data["grid"]}
    return data


def load_grid(path: str | Path, *, seeds: Sequence[int] | None = None) -> Grid:
    """Read a grid file (TOML or YAML); every key and value is checked and errors name file, key and value.

    ``seeds`` (from the command line) wins over the file's ``seeds``/``repeats``.
    """
    path = Path(path)
    return _grid_from_mapping(_read_mapping(path), name=path.stem, file=str(path), seeds=seeds)


def _grid_from_mapping(data: Mapping[str, Any], *, name: str, file: str | None, seeds: Sequence[int] | None) -> Grid:
    """The grid a file's keys describe (``name`` when the file names none); every key and value checked."""
    allowed = {
        "name",
        "depth",
        "channels",
        "kernel_size",
        "gap",
        "base",
        "vary",
        "points",
        "seeds",
        "repeats",
        "leads",
    }
    reject_unknown_keys(data, allowed, what="grid", file=file)
    leads = data.get("leads")
    if leads is not None and not isinstance(leads, str | int | list):
        raise ConfigError(
            f"got {leads!r}; allowed: a list of lead sets such as ['12', '6', '3', '2']", file=file, key="leads"
        )
    return with_lead_sets(_load_shape(data, name, file, seeds), leads, file=file)


def _load_shape(data: Mapping[str, Any], name: str, file: str | None, seeds: Sequence[int] | None) -> Grid:
    """The architectures of a grid file (factorial, axes or points), before the lead-set axis."""
    name = str(data.get("name", name))
    if seeds is None:
        if "seeds" in data:
            raw = data["seeds"]
            if not isinstance(raw, list) or any(isinstance(s, bool) or not isinstance(s, int) for s in raw):
                raise ConfigError(f"got {raw!r}; allowed: a list of integers >= 0", file=file, key="seeds")
            seeds = raw
        else:
            repeats = data.get("repeats", 1)
            if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
                raise ConfigError(f"got {repeats!r}; allowed: an integer >= 1", file=file, key="repeats")
            seeds = list(range(repeats))
    shapes = [s for s in ("points", "vary", "depth") if s in data]
    if len(shapes) != 1:
        raise ConfigError(
            "give exactly one grid shape: 'depth'/'channels'/'kernel_size' lists (factorial), "
            "'base' + 'vary' tables (axes), or a 'points' list",
            file=file,
        )
    if "points" in data:
        raw_points = data["points"]
        if not isinstance(raw_points, list) or not raw_points:
            raise ConfigError(f"got {raw_points!r}; allowed: a non-empty list of tables", file=file, key="points")
        points = []
        for i, p in enumerate(raw_points):
            prefix = f"points[{i}]."
            if not isinstance(p, dict):
                raise ConfigError(
                    f"got {p!r}; allowed: a table with depth, channels, kernel_size, gap", file=file, key=f"points[{i}]"
                )
            extra = sorted(set(p) - {"depth", "channels", "kernel_size", "gap"})
            missing = sorted({"depth", "channels", "kernel_size"} - set(p))
            if extra or missing:
                raise ConfigError(
                    f"unknown {extra} / missing {missing}; allowed: depth, channels, kernel_size, gap",
                    file=file,
                    key=f"points[{i}]",
                )
            vals = [
                _check_int(p[a], a, file=file)
                if isinstance(p[a], int) and not isinstance(p[a], bool)
                else _raise_int(p[a], prefix + a, file)
                for a in AXES
            ]
            points.append(ArchPoint(*vals, _check_gap(p.get("gap", True), file=file, key=prefix + "gap")))
        # an optional base makes a hand-picked one-factor-at-a-time design (e.g. GAP off on some axes only)
        # analysable as an axes grid: "vs D" is then the slice through the base
        base = _check_base(data["base"], file) if "base" in data else None
        return Grid(name, tuple(points), tuple(seeds), "points", base, file)
    if "vary" in data:
        base, vary = _check_base(data.get("base"), file), data["vary"]
        if not isinstance(vary, dict) or not set(vary) <= {*AXES, "gap"}:
            raise ConfigError(
                f"got {vary!r}; allowed: a table with lists for depth, channels, kernel_size, gap",
                file=file,
                key="vary",
            )
        lists = {a: _int_list(vary, a, file=file, prefix="vary.") if a in vary else [base[a]] for a in AXES}
        return axes_grid(
            base,
            depths=lists["depth"],
            channels=lists["channels"],
            kernels=lists["kernel_size"],
            gaps=_gap_list(vary, file=file, prefix="vary."),
            seeds=seeds,
            name=name,
            source=file,
        )
    for a in AXES:
        if a not in data:
            raise ConfigError("missing; a factorial grid lists depth, channels and kernel_size", file=file, key=a)
    if "base" in data:
        raise ConfigError("'base' goes with a 'vary' table (axes grid) or a 'points' list", file=file, key="base")
    return factorial_grid(
        _int_list(data, "depth", file=file),
        _int_list(data, "channels", file=file),
        _int_list(data, "kernel_size", file=file),
        _gap_list(data, file=file),
        seeds=seeds,
        name=name,
        source=file,
    )


def _check_base(base: Any, file: str | None) -> dict[str, int]:
    """The ``base`` table of a grid file: D, C and K of the configuration the axes pass through."""
    if not isinstance(base, dict) or sorted(base) != sorted(AXES):
        raise ConfigError(f"got {base!r}; allowed: a table with depth, channels, kernel_size", file=file, key="base")
    for a in AXES:
        if isinstance(base[a], bool) or not isinstance(base[a], int):
            _raise_int(base[a], f"base.{a}", file)
        _check_int(base[a], a, file=file)
    return dict(base)


def _raise_int(value: Any, key: str, file: str | None) -> int:
    raise ConfigError(f"got {value!r}; allowed: an integer", file=file, key=key)


def resolve_grid(spec: str, *, seeds: Sequence[int] | None = None, leads: Sequence[Any] | None = None) -> Grid:
    """``paper``, ``axes`` or the path of a TOML/YAML grid file; ``seeds=None`` keeps a file's own seeds.

    ``leads`` (from the command line, e.g. ``["12", "6"]``) makes or replaces the lead-set axis.
    """
    if spec == "paper":
        return with_lead_sets(paper_grid(seeds=seeds or (0,)), leads)
    if spec == "axes":
        return with_lead_sets(axes_grid(seeds=seeds or (0,)), leads)
    path = Path(spec)
    if path.suffix.lower() in (".toml", ".yaml", ".yml") or path.exists():
        grid = load_grid(path, seeds=seeds)
        if leads:
            archs = tuple(dict.fromkeys(ArchPoint(p.depth, p.channels, p.kernel_size, p.gap) for p in grid.points))
            grid = with_lead_sets(Grid(grid.name, archs, grid.seeds, grid.kind, grid.base, grid.source), leads)
        return grid
    raise ConfigError(f"got {spec!r}; allowed: paper | axes | a .toml/.yaml grid file", key="grid")
