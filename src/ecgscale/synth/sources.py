"""Source profiles: each synthetic "hospital" has its own sampling rate, durations, noise and label mix.

Four default profiles are loosely modelled on the CinC 2021 sources (prevalences of
``dx_mapping_scored.csv``), so that a leave-one-source-out split shows a real domain shift: different rates,
durations, noise, mains frequency, label prevalences **and coding habits** (e.g. one source codes a long PR
interval as LPR, another as IAVB; one codes some bundle branch blocks as unspecified BBB). The rates are
chosen to exercise resampling (257, 500 and 1000 Hz), not copied from the real source of the same style.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ecgscale.errors import ConfigError

__all__ = [
    "CINC2021_GROUPS",
    "DEFAULT_SOURCES",
    "FINDINGS",
    "MAX_DURATION_S",
    "MAX_FS",
    "MIN_FS",
    "PROFILES",
    "SourceProfile",
    "cinc2021_sources",
    "profile_records",
    "profile_sources",
    "resolve_sources",
]

MIN_FS, MAX_FS = 100, 2000
#: The longest record a profile may ask for: the CinC 2021 INCART records last 30 minutes.
MAX_DURATION_S = 1800.0

#: Generative findings a profile gives a probability for (not labels: labels are derived from the
#: generated record, see ``pathologies.derive_labels``).
FINDINGS: tuple[str, ...] = (
    "af", "afl", "paced",  # rhythm (exclusive; the rest is sinus)
    "brady", "tachy", "sa",  # sinus rate / variability shifts
    "pac", "pvc",  # ectopic beats
    "long_pr",
    "rbbb", "lbbb", "irbbb", "nsivcb",  # exclusive QRS conduction
    "lanfb",
    "lad", "rad",
    "long_qt",
    "tinv", "tab", "qab", "low_voltage", "prwp",
)  # fmt: skip

#: Coding habits: probability that a finding is written with a given code convention.
CODINGS: tuple[str, ...] = ("lpr", "lpr_and_iavb", "bbb_unspecified", "brady_for_sb", "equivalent_code", "omit")


def _check_prob(name: str, key: str, value: float) -> None:
    if not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"probability must be in [0, 1], got {value!r}", key=f"sources.{name}.{key}")


@dataclass(frozen=True, slots=True)
class SourceProfile:
    """One synthetic source: where its records go, how they are recorded and what they show."""

    name: str
    prefix: str
    fs: int
    duration_s: tuple[float, float, float]  # (min, median, max) of a log-normal clipped to [min, max]
    weight: float
    mains_hz: float
    noise: float  # 1 = typical clinical 12-lead; scales every noise component
    findings: Mapping[str, float] = field(default_factory=dict)
    coding: Mapping[str, float] = field(default_factory=dict)
    lead_swap: float = 0.005
    flat_lead: float = 0.005
    age: tuple[float, float] = (60.0, 16.0)
    female: float = 0.45

    def __post_init__(self) -> None:
        key = f"sources.{self.name}"
        if not self.name or "/" in self.name:
            raise ConfigError(f"invalid source name {self.name!r}", key=key)
        if not self.prefix.isalnum():
            raise ConfigError(f"record-id prefix must be alphanumeric, got {self.prefix!r}", key=f"{key}.prefix")
        if not MIN_FS <= self.fs <= MAX_FS:
            raise ConfigError(f"fs must be in [{MIN_FS}, {MAX_FS}] Hz, got {self.fs!r}", key=f"{key}.fs")
        lo, med, hi = self.duration_s
        if not 1.0 <= lo <= med <= hi <= MAX_DURATION_S:
            raise ConfigError(
                f"duration_s must be 1 <= min <= median <= max <= {MAX_DURATION_S:g}, got {self.duration_s}",
                key=f"{key}.duration_s",
            )
        if self.weight <= 0:
            raise ConfigError(f"weight must be positive, got {self.weight!r}", key=f"{key}.weight")
        if self.mains_hz not in (50.0, 60.0):
            raise ConfigError(f"mains_hz must be 50 or 60, got {self.mains_hz!r}", key=f"{key}.mains_hz")
        if self.noise < 0:
            raise ConfigError(f"noise must be >= 0, got {self.noise!r}", key=f"{key}.noise")
        for k, v in self.findings.items():
            if k not in FINDINGS:
                raise ConfigError(f"unknown finding {k!r}; allowed: {', '.join(FINDINGS)}", key=f"{key}.findings")
            _check_prob(self.name, k, v)
        for k, v in self.coding.items():
            if k not in CODINGS:
                raise ConfigError(f"unknown coding {k!r}; allowed: {', '.join(CODINGS)}", key=f"{key}.coding")
            _check_prob(self.name, k, v)
        if sum(self.findings.get(k, 0.0) for k in ("af", "afl", "paced")) > 1.0:
            raise ConfigError("af + afl + paced probabilities exceed 1", key=f"{key}.findings")
        if sum(self.findings.get(k, 0.0) for k in ("rbbb", "lbbb", "irbbb", "nsivcb")) > 1.0:
            raise ConfigError("rbbb + lbbb + irbbb + nsivcb probabilities exceed 1", key=f"{key}.findings")
        _check_prob(self.name, "lead_swap", self.lead_swap)
        _check_prob(self.name, "flat_lead", self.flat_lead)
        _check_prob(self.name, "female", self.female)

    def p(self, finding: str) -> float:
        return float(self.findings.get(finding, 0.0))

    def c(self, coding: str) -> float:
        return float(self.coding.get(coding, 0.0))


DEFAULT_SOURCES: tuple[SourceProfile, ...] = (
    SourceProfile(
        # CPSC 2018 style: long variable-length records, arrhythmia-rich, RBBB/IAVB/AF/PAC/PVC.
        name="cpsc_like", prefix="XA", fs=500, duration_s=(6.0, 13.0, 60.0), weight=0.22, mains_hz=50.0,
        noise=1.0,
        findings={"af": 0.17, "afl": 0.01, "paced": 0.0, "brady": 0.04, "tachy": 0.05, "sa": 0.02,
                  "pac": 0.10, "pvc": 0.11, "long_pr": 0.10, "rbbb": 0.22, "lbbb": 0.04, "irbbb": 0.02,
                  "nsivcb": 0.01, "lanfb": 0.01, "lad": 0.02, "rad": 0.01, "long_qt": 0.01, "tinv": 0.01,
                  "tab": 0.03, "qab": 0.01, "low_voltage": 0.01, "prwp": 0.0},
        coding={"brady_for_sb": 0.5, "equivalent_code": 0.1, "omit": 0.05},
        age=(61.0, 18.0), female=0.46,
    ),
    SourceProfile(
        # PTB-XL / Georgia style: 10 s, clean, sinus-heavy; axis, fascicular and T-wave findings; codes LPR.
        name="ptbxl_like", prefix="XH", fs=500, duration_s=(10.0, 10.0, 10.0), weight=0.38, mains_hz=50.0,
        noise=0.6,
        findings={"af": 0.07, "afl": 0.01, "paced": 0.015, "brady": 0.04, "tachy": 0.05, "sa": 0.04,
                  "pac": 0.03, "pvc": 0.03, "long_pr": 0.06, "rbbb": 0.04, "lbbb": 0.03, "irbbb": 0.06,
                  "nsivcb": 0.04, "lanfb": 0.08, "lad": 0.14, "rad": 0.02, "long_qt": 0.03, "tinv": 0.03,
                  "tab": 0.12, "qab": 0.04, "low_voltage": 0.02, "prwp": 0.0},
        coding={"lpr": 0.3, "lpr_and_iavb": 0.1, "equivalent_code": 0.3, "omit": 0.03},
        age=(60.0, 17.0), female=0.48,
    ),
    SourceProfile(
        # Ningbo / Chapman-Shaoxing style: sinus brady/tachy, flutter, T-wave changes, pacing, PRWP,
        # some bundle branch blocks coded unspecified (BBB). Deliberately 1000 Hz.
        name="ningbo_like", prefix="XJ", fs=1000, duration_s=(10.0, 10.0, 10.0), weight=0.28, mains_hz=50.0,
        noise=0.9,
        findings={"af": 0.03, "afl": 0.12, "paced": 0.03, "brady": 0.30, "tachy": 0.13, "sa": 0.07,
                  "pac": 0.04, "pvc": 0.04, "long_pr": 0.04, "rbbb": 0.05, "lbbb": 0.01, "irbbb": 0.01,
                  "nsivcb": 0.02, "lanfb": 0.01, "lad": 0.03, "rad": 0.02, "long_qt": 0.02, "tinv": 0.09,
                  "tab": 0.15, "qab": 0.03, "low_voltage": 0.03, "prwp": 0.03},
        coding={"bbb_unspecified": 0.3, "equivalent_code": 0.2, "omit": 0.06},
        age=(57.0, 18.0), female=0.44, flat_lead=0.01,
    ),
    SourceProfile(
        # St Petersburg INCART style: Holter-like, 257 Hz, 30 s, noisy, 60 Hz mains, ectopy-rich.
        name="incart_like", prefix="XI", fs=257, duration_s=(30.0, 30.0, 30.0), weight=0.12, mains_hz=60.0,
        noise=1.8,
        findings={"af": 0.06, "afl": 0.01, "paced": 0.0, "brady": 0.08, "tachy": 0.08, "sa": 0.05,
                  "pac": 0.25, "pvc": 0.35, "long_pr": 0.03, "rbbb": 0.04, "lbbb": 0.02, "irbbb": 0.02,
                  "nsivcb": 0.02, "lanfb": 0.02, "lad": 0.04, "rad": 0.02, "long_qt": 0.03, "tinv": 0.03,
                  "tab": 0.05, "qab": 0.05, "low_voltage": 0.03, "prwp": 0.01},
        coding={"brady_for_sb": 0.2, "equivalent_code": 0.5, "omit": 0.08},
        lead_swap=0.02, flat_lead=0.02, age=(56.0, 14.0), female=0.4,
    ),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Group:
    """One source group of the CinC 2021 training set as published, and how its records are synthesised."""

    name: str
    prefix: str
    columns: tuple[str, ...]  # its columns in dx_mapping_scored.csv
    records: int
    fs: int
    duration_s: tuple[float, float, float]
    mains_hz: float
    noise: float
    age: tuple[float, float]
    female: float


#: The seven source groups of the CinC 2021 training set (88,253 records; Reyna et al., Computing in Cardiology
#: 2021): records (CPSC = CPSC 2018 6,877 + CPSC-Extra 3,453), sampling rate and duration range as published. The
#: duration medians, noise levels, ages and sex ratios are this benchmark's choices, not published figures.
CINC2021_GROUPS: tuple[_Group, ...] = (
    _Group("cinc_cpsc", "XA", ("CPSC", "CPSC_Extra"), 10330, 500, (6.0, 13.0, 60.0), 50.0, 1.0, (61.0, 18.0), 0.46),
    _Group("cinc_incart", "XI", ("StPetersburg",), 74, 257, (1800.0, 1800.0, 1800.0), 50.0, 1.8, (56.0, 14.0), 0.4),
    _Group("cinc_ptb", "XS", ("PTB",), 516, 1000, (32.0, 110.0, 120.0), 50.0, 0.8, (57.0, 14.0), 0.27),
    _Group("cinc_ptbxl", "XH", ("PTB_XL",), 21837, 500, (10.0, 10.0, 10.0), 50.0, 0.6, (60.0, 17.0), 0.48),
    _Group("cinc_georgia", "XE", ("Georgia",), 10344, 500, (10.0, 10.0, 10.0), 60.0, 1.0, (61.0, 16.0), 0.46),
    _Group("cinc_chapman", "XC", ("Chapman_Shaoxing",), 10247, 500, (10.0, 10.0, 10.0), 50.0, 0.8, (59.0, 18.0), 0.44),
    _Group("cinc_ningbo", "XJ", ("Ningbo",), 34905, 500, (10.0, 10.0, 10.0), 50.0, 0.9, (57.0, 18.0), 0.44),
)  # fmt: skip

#: Generative finding -> the scored classes (abbreviations in dx_mapping_scored.csv) whose records it stands for.
_FINDING_CLASSES: Mapping[str, tuple[str, ...]] = {
    "af": ("AF",), "afl": ("AFL",), "paced": ("PR",), "brady": ("SB", "Brady"), "tachy": ("STach",),
    "sa": ("SA",), "pac": ("PAC", "SVPB"), "pvc": ("PVC", "VPB"), "long_pr": ("IAVB", "LPR"),
    "rbbb": ("RBBB", "CRBBB"), "lbbb": ("LBBB", "CLBBB"), "irbbb": ("IRBBB",), "nsivcb": ("NSIVCB",),
    "lanfb": ("LAnFB",), "lad": ("LAD",), "rad": ("RAD",), "long_qt": ("LQT",), "tinv": ("TInv",), "tab": ("TAb",),
    "qab": ("QAb",), "low_voltage": ("LQRSV",), "prwp": ("PRWP",),
}  # fmt: skip


def _scored_counts() -> dict[str, dict[str, int]]:
    """Abbreviation -> {column: records} from the bundled dx_mapping_scored.csv (the challenge's table)."""
    import csv
    from importlib import resources

    text = resources.files("ecgscale.data").joinpath("resources", "cinc2021", "dx_mapping_scored.csv")
    out: dict[str, dict[str, int]] = {}
    for row in csv.DictReader(text.read_text(encoding="utf-8").splitlines()):
        out[row["Abbreviation"].strip()] = {k: int(v) for k, v in row.items() if k and v and v.strip().isdigit()}
    return out


def cinc2021_sources() -> tuple[SourceProfile, ...]:
    """The ``cinc2021`` profile: one :class:`SourceProfile` per CinC 2021 source group, weighted by its records.

    Each finding's probability is the group's published prevalence of the classes it stands for (records with
    the label / records of the group, from ``dx_mapping_scored.csv``), capped so that exclusive findings sum to
    at most 1. Labels are derived from the generated signal, so a class's synthetic prevalence approximates the
    published one where the model covers the class (a finding can also produce other labels, e.g. LAnFB → LAD).
    Coding habits follow the table too: LPR vs IAVB, unspecified BBB, "Brady" vs SB.
    """
    counts = _scored_counts()
    out = []
    for g in CINC2021_GROUPS:

        def n(*classes: str, g: _Group = g) -> int:
            return sum(counts.get(c, {}).get(col, 0) for c in classes for col in g.columns)

        findings = {f: round(min(n(*classes) / g.records, 1.0), 4) for f, classes in _FINDING_CLASSES.items()}
        for exclusive in (("af", "afl", "paced"), ("rbbb", "lbbb", "irbbb", "nsivcb"), ("brady", "tachy")):
            total = sum(findings[f] for f in exclusive)
            if total > 1.0:
                for f in exclusive:
                    findings[f] = findings[f] / total
        long_pr, brady = n("IAVB", "LPR"), n("SB", "Brady")
        bbb = n("BBB") + n("RBBB", "CRBBB", "LBBB", "CLBBB")
        coding = {
            "lpr": round(n("LPR") / long_pr, 4) if long_pr else 0.0,
            "bbb_unspecified": round(n("BBB") / bbb, 4) if bbb else 0.0,
            "brady_for_sb": round(n("Brady") / brady, 4) if brady else 0.0,
            "equivalent_code": 0.2,
            "omit": 0.03,
        }
        out.append(
            SourceProfile(
                name=g.name,
                prefix=g.prefix,
                fs=g.fs,
                duration_s=g.duration_s,
                weight=float(g.records),
                mains_hz=g.mains_hz,
                noise=g.noise,
                findings=findings,
                coding=coding,
                age=g.age,
                female=g.female,
            )
        )
    return tuple(out)


#: Named whole-benchmark profiles (``ecgscale synth --profile NAME``): the sources and the full record count.
PROFILES: Mapping[str, tuple[str, int]] = {
    "cinc2021": ("the CinC 2021 training set's seven source groups", sum(g.records for g in CINC2021_GROUPS)),
}


def profile_records(name: str, fraction: float = 1.0) -> int:
    """Records of a named profile at ``fraction`` of its full size (at least 1); per-source counts then follow
    the published shares by largest remainder (``generate``), so ``fraction=1`` gives the published counts."""
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}; allowed: {', '.join(PROFILES)}", key="profile")
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"must be in (0, 1], got {fraction!r}", key="fraction")
    return max(1, round(PROFILES[name][1] * fraction))


def profile_sources(name: str) -> tuple[SourceProfile, ...]:
    """The sources of a named profile (``cinc2021``); unknown names are a ConfigError."""
    if name == "cinc2021":
        return cinc2021_sources()
    raise ConfigError(f"unknown profile {name!r}; allowed: {', '.join(PROFILES)}", key="profile")


def resolve_sources(sources: object) -> tuple[SourceProfile, ...]:
    """Turn ``None`` / names / profiles into a tuple of profiles; unknown names are a ConfigError."""
    if sources is None:
        return DEFAULT_SOURCES
    if isinstance(sources, (str, SourceProfile)):
        sources = [sources]
    by_name = {s.name: s for s in DEFAULT_SOURCES}
    out: list[SourceProfile] = []
    for s in sources:  # type: ignore[attr-defined]
        if isinstance(s, SourceProfile):
            out.append(s)
        elif isinstance(s, str) and s.strip() in by_name:
            out.append(by_name[s.strip()])
        else:
            raise ConfigError(
                f"unknown source {s!r}; allowed: {', '.join(by_name)} (or SourceProfile objects)", key="sources"
            )
    if not out:
        raise ConfigError("no sources given", key="sources")
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"duplicate source names: {names}", key="sources")
    prefixes = [s.prefix for s in out]
    if len(set(prefixes)) != len(prefixes):
        raise ConfigError(f"duplicate record-id prefixes: {prefixes}", key="sources")
    return tuple(out)
