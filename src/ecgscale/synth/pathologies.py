"""Generating parameters of a record (with clinical co-occurrence rules) and the labels they imply.

Two steps keep labels honest: ``sample_params`` draws *generating* parameters (rhythm, conduction, axis,
intervals, T-wave mode, ...) from a source profile, and ``derive_labels`` turns the parameters **plus what
was measured on the generated beat** (rate from the generated RR intervals, frontal QRS axis from leads I
and aVF, PR/QT from the wave boundaries, QRS voltages) into CinC 2021 classes. Threshold labels (SB/STach,
LAD/RAD, IAVB/LPR, LQT, LQRSV, PRWP) therefore follow the clinical definitions applied to the signal, and
borderline parameters land on either side of a threshold.

Clinical rules (documented in ``docs/synth.md``):

* rhythm is exactly one of sinus, AF, AFL, paced; NSR/SB/STach/SA only with sinus rhythm (rate 60/100 bpm,
  SA = sinus PP range > 120 ms); Brady = rate < 60 bpm in a non-sinus rhythm, or sinus bradycardia in a
  source that codes it as Brady;
* RBBB, LBBB, IRBBB, NSIVCB are mutually exclusive; LAnFB may accompany RBBB (bifascicular block), never LBBB;
* IAVB and LPR both mean a measured PR > 200 ms in a conducted sinus rhythm; which code a record gets is the
  source's coding habit (most write IAVB, the PTB-XL-like source writes LPR and sometimes both), as in CinC;
* LAD/RAD come from the measured axis (LAD < -30°, RAD > +90°), never with a paced rhythm;
* LQT: Bazett QTc > 450 ms (men) / 460 ms (women);
* QAb, PRWP and primary T-wave findings are not generated on top of LBBB or pacing (not assessable there).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np

from ecgscale.data.labels import cinc2021_scored, snomed_info
from ecgscale.synth.sources import SourceProfile

__all__ = [
    "FINDING_LABELS",
    "OMITTABLE",
    "RecordParams",
    "codes_for_labels",
    "derive_labels",
    "sample_params",
]

#: Which labels a generative finding can produce (used to switch findings off for ``classes=``).
FINDING_LABELS: Mapping[str, tuple[str, ...]] = {
    "af": ("AF",), "afl": ("AFL",), "paced": ("PR",), "brady": ("SB", "Brady"), "tachy": ("STach",),
    "sa": ("SA",), "pac": ("PAC",), "pvc": ("PVC",), "long_pr": ("IAVB", "LPR"), "rbbb": ("RBBB", "BBB"),
    "lbbb": ("LBBB", "BBB"), "irbbb": ("IRBBB",), "nsivcb": ("NSIVCB",), "lanfb": ("LAnFB",), "lad": ("LAD",),
    "rad": ("RAD",), "long_qt": ("LQT",), "tinv": ("TInv",), "tab": ("TAb",), "qab": ("QAb",),
    "low_voltage": ("LQRSV",), "prwp": ("PRWP",),
}  # fmt: skip


#: Labels a source may leave uncoded although the finding is there (rhythm labels are always coded).
OMITTABLE: tuple[str, ...] = (
    "PAC",
    "PVC",
    "RBBB",
    "LBBB",
    "BBB",
    "IRBBB",
    "NSIVCB",
    "LAnFB",
    "IAVB",
    "LPR",
    "LAD",
    "RAD",
    "LQT",
    "TInv",
    "TAb",
    "QAb",
    "LQRSV",
    "PRWP",
)


@dataclass(frozen=True, slots=True)
class RecordParams:
    """Every parameter a record is generated from (written to ``synth_params.jsonl``)."""

    source: str
    fs: int
    duration_s: float
    age: int
    sex: str
    rhythm: str  # sinus | af | afl | paced
    rate_bpm: float  # target mean rate (ventricular for AF/AFL)
    hrv: float  # low-frequency RR fluctuation, fraction of RR
    resp_amp: float  # respiratory RR modulation, fraction of RR
    resp_hz: float
    af_rr_cv: float
    f_wave_hz: float
    f_wave_mv: float
    flutter_cycle_s: float
    flutter_ratio: int  # 2, 3, 4, or 0 = variable
    flutter_mv: float
    paced_atrial: bool
    n_pac: int
    n_pvc: int
    pvc_origin: str  # lv | rv
    pr_ms: float  # target PR (P onset to QRS onset)
    qtc_ms: float  # target Bazett QTc
    conduction: str  # none | rbbb | lbbb | irbbb | nsivcb
    lanfb: bool
    axis_deg: float  # frontal direction of the main QRS force (generating; the label uses the measured axis)
    horizontal_deg: float  # rotation in the horizontal plane (+ = clockwise, later transition)
    elevation_deg: float  # tilt of the heart about the left-right axis
    qrs_mv: float  # magnitude of the main QRS force before body gain
    body_gain: float
    p_mv: float
    t_mode: str  # normal | inverted | flat | biphasic
    t_territory: str  # global | anterior | lateral | inferior (where an inverted T is)
    t_rel: float  # T magnitude relative to the main QRS force
    qab: str  # none | inferior | anterior | lateral
    prwp: bool
    low_voltage: bool
    pr_code: str  # IAVB | LPR | both: the source's habit for a long PR
    omit: tuple[str, ...]  # findings present but left uncoded (the source's coding noise)
    bbb_unspecified: bool
    brady_for_sb: bool
    equivalent_code: bool
    chest_gain: float  # chest-wall attenuation of the precordial leads
    chest_gains: tuple[float, ...]  # per chest electrode
    chest_shifts: tuple[float, ...]  # placement shift towards the next electrode (fraction of spacing)
    noise: float
    mains_hz: float
    lead_swap: bool
    flat_lead: str | None

    def to_dict(self) -> dict:
        # Flat fields only, so a comprehension is exact and ~10x faster than dataclasses.asdict.
        return {name: getattr(self, name) for name in _PARAM_FIELDS}


_PARAM_FIELDS = tuple(f.name for f in fields(RecordParams))


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(lo + (hi - lo) * rng.random())


def _clip(x: float, lo: float, hi: float) -> float:
    return min(max(x, lo), hi)


def sample_params(
    rng: np.random.Generator,
    profile: SourceProfile,
    *,
    fs: int,
    duration_s: float,
    allowed: frozenset[str] | None = None,
) -> RecordParams:
    """Draw one record's generating parameters from ``profile`` (clinical exclusions applied here).

    ``allowed`` (class abbreviations) switches off every finding none of whose labels is allowed; the caller
    still checks the derived labels, since threshold labels can appear on borderline parameters.
    """

    def p(finding: str) -> float:
        if allowed is not None and not any(lab in allowed for lab in FINDING_LABELS[finding]):
            return 0.0
        return profile.p(finding)

    u = rng.random()
    if u < p("af"):
        rhythm = "af"
    elif u < p("af") + p("afl"):
        rhythm = "afl"
    elif u < p("af") + p("afl") + p("paced"):
        rhythm = "paced"
    else:
        rhythm = "sinus"

    # Rate: a mixture so that rates near 60 and 100 bpm occur in every class (borderline cases).
    r = rng.random()
    if rhythm == "paced":
        rate = _u(rng, 60.0, 80.0)
    elif r < p("brady"):
        rate = _u(rng, 36.0, 63.0)
    elif r < p("brady") + p("tachy"):
        rate = _u(rng, 97.0, 150.0)
    elif rhythm == "af":
        rate = _clip(float(rng.normal(92.0, 18.0)), 62.0, 150.0)
    else:
        rate = _clip(float(rng.normal(75.0, 10.0)), 58.0, 104.0)
    sa = rhythm == "sinus" and rng.random() < p("sa")
    resp_amp = _u(rng, 0.07, 0.16) if sa else _u(rng, 0.003, 0.03)
    hrv = _u(rng, 0.005, 0.02) if rhythm == "sinus" else 0.0

    flutter_cycle = _u(rng, 0.18, 0.25)
    flutter_ratio = int(rng.choice([2, 3, 4, 0], p=[0.45, 0.1, 0.3, 0.15]))
    if rhythm == "afl":
        mean_ratio = 3.0 if flutter_ratio == 0 else float(flutter_ratio)
        rate = 60.0 / (mean_ratio * flutter_cycle)

    ectopy_scale = max(duration_s / 10.0, 1.0) ** 0.5
    n_pac = 1 + int(rng.poisson(0.8 * ectopy_scale)) if rhythm == "sinus" and rng.random() < p("pac") else 0
    n_pvc = 1 + int(rng.poisson(0.8 * ectopy_scale)) if rhythm in ("sinus", "af") and rng.random() < p("pvc") else 0

    long_pr = rhythm == "sinus" and rng.random() < p("long_pr")
    pr_ms = _u(rng, 192.0, 330.0) if long_pr else _clip(float(rng.normal(158.0, 19.0)), 112.0, 212.0)
    if rhythm == "paced":
        pr_ms = _u(rng, 140.0, 190.0)

    conduction = "none"
    if rhythm != "paced":
        c = rng.random()
        for name in ("rbbb", "lbbb", "irbbb", "nsivcb"):
            if c < p(name):
                conduction = name
                break
            c -= p(name)
    lanfb = rhythm != "paced" and conduction != "lbbb" and rng.random() < p("lanfb")

    a = rng.random()
    if rhythm == "paced":
        axis = _u(rng, -85.0, -40.0)  # right-ventricular apical pacing: superior axis
    elif lanfb:
        axis = _u(rng, -75.0, -40.0)
    elif a < p("lad"):
        axis = _u(rng, -78.0, -18.0)
    elif a < p("lad") + p("rad"):
        axis = _u(rng, 80.0, 150.0)
    elif conduction == "lbbb":
        axis = _clip(float(rng.normal(40.0, 25.0)), -40.0, 100.0)
    elif conduction in ("rbbb", "irbbb"):
        axis = _clip(float(rng.normal(30.0, 22.0)), -40.0, 100.0)
    else:
        axis = _clip(float(rng.normal(55.0, 22.0)), -35.0, 115.0)

    long_qt = rng.random() < p("long_qt")
    qtc = _u(rng, 440.0, 540.0) if long_qt else _clip(float(rng.normal(408.0, 16.0)), 360.0, 465.0)

    wide = conduction in ("rbbb", "lbbb") or rhythm == "paced"
    t_mode = "normal"
    if not wide:
        if rng.random() < p("tinv"):
            t_mode = "inverted"
        elif rng.random() < p("tab"):
            t_mode = "flat" if rng.random() < 0.7 else "biphasic"
    qab = "none"
    if conduction != "lbbb" and rhythm != "paced" and rng.random() < p("qab"):
        qab = str(rng.choice(["inferior", "anterior", "lateral"], p=[0.5, 0.35, 0.15]))
    prwp = conduction == "none" and rhythm != "paced" and qab != "anterior" and rng.random() < p("prwp")
    low_voltage = rng.random() < p("low_voltage")

    pr_code = "IAVB"
    v = rng.random()
    if v < profile.c("lpr"):
        pr_code = "LPR"
    elif v < profile.c("lpr") + profile.c("lpr_and_iavb"):
        pr_code = "both"
    if allowed is not None:  # keep a long PR expressible when only one of the two codes is allowed
        if "IAVB" not in allowed and "LPR" in allowed:
            pr_code = "LPR"
        elif "LPR" not in allowed and "IAVB" in allowed:
            pr_code = "IAVB"

    sex = "F" if rng.random() < profile.female else "M"
    age = int(_clip(round(float(rng.normal(*profile.age))), 18.0, 95.0))
    noise = profile.noise * _u(rng, 0.5, 1.5)
    flat_lead = None
    if rng.random() < profile.flat_lead:
        flat_lead = str(rng.choice(["I", "II", "III", "V1", "V2", "V3", "V4", "V5", "V6"]))

    return RecordParams(
        source=profile.name,
        fs=int(fs),
        duration_s=float(duration_s),
        age=age,
        sex=sex,
        rhythm=rhythm,
        rate_bpm=round(rate, 3),
        hrv=hrv,
        resp_amp=resp_amp,
        resp_hz=_u(rng, 0.15, 0.35),
        af_rr_cv=_u(rng, 0.12, 0.30),
        f_wave_hz=_u(rng, 4.5, 8.5),
        f_wave_mv=_u(rng, 0.03, 0.14),
        flutter_cycle_s=flutter_cycle,
        flutter_ratio=flutter_ratio,
        flutter_mv=_u(rng, 0.12, 0.3),
        paced_atrial=rhythm == "paced" and rng.random() < 0.4,
        n_pac=n_pac,
        n_pvc=n_pvc,
        pvc_origin="lv" if rng.random() < 0.5 else "rv",
        pr_ms=pr_ms,
        qtc_ms=qtc,
        conduction=conduction,
        lanfb=bool(lanfb),
        axis_deg=axis,
        horizontal_deg=float(rng.normal(0.0, 10.0)) + (_u(rng, 25.0, 45.0) if prwp else 0.0),
        elevation_deg=float(rng.normal(0.0, 12.0)),
        qrs_mv=float(np.exp(rng.normal(np.log(1.45), 0.25))),
        body_gain=float(np.exp(rng.normal(0.0, 0.15))),
        p_mv=_u(rng, 0.8, 1.3),
        t_mode=t_mode,
        t_territory=str(rng.choice(["global", "anterior", "lateral", "inferior"], p=[0.25, 0.3, 0.3, 0.15])),
        t_rel=_u(rng, 0.12, 0.38),
        qab=qab,
        prwp=bool(prwp),
        low_voltage=bool(low_voltage),
        pr_code=pr_code,
        omit=tuple(lab for lab in OMITTABLE if rng.random() < profile.c("omit")),
        bbb_unspecified=rng.random() < profile.c("bbb_unspecified"),
        brady_for_sb=rng.random() < profile.c("brady_for_sb"),
        equivalent_code=rng.random() < profile.c("equivalent_code"),
        chest_gain=float(np.exp(rng.normal(0.0, 0.15))),
        chest_gains=tuple(float(g) for g in rng.uniform(0.85, 1.15, 6)),
        chest_shifts=tuple(float(s) for s in rng.normal(0.0, 0.15, 6)),
        noise=noise,
        mains_hz=profile.mains_hz,
        lead_swap=rng.random() < profile.lead_swap,
        flat_lead=flat_lead,
    )


def derive_labels(params: RecordParams, measured: Mapping[str, float | None], *, coded: bool = True) -> list[str]:
    """CinC 2021 class abbreviations implied by the parameters and the measurements of the generated record.

    ``coded=True`` applies the source's coding noise (``params.omit``: findings present but not written, as in
    the real data); ``coded=False`` gives every finding the record shows.
    """
    labels: list[str] = []
    rate = float(measured["rate_bpm"])  # type: ignore[arg-type]
    if params.rhythm == "sinus":
        if rate < 60.0:
            labels.append("Brady" if params.brady_for_sb else "SB")
        elif rate > 100.0:
            labels.append("STach")
        else:
            labels.append("NSR")
        rr_range = measured.get("sinus_rr_range_ms")
        if rr_range is not None and rr_range > 120.0:
            labels.append("SA")
    else:
        labels.append({"af": "AF", "afl": "AFL", "paced": "PR"}[params.rhythm])
        if rate < 60.0:
            labels.append("Brady")
    if int(measured.get("n_pac", 0) or 0) > 0:
        labels.append("PAC")
    if int(measured.get("n_pvc", 0) or 0) > 0:
        labels.append("PVC")

    if params.conduction in ("rbbb", "lbbb"):
        labels.append("BBB" if params.bbb_unspecified else params.conduction.upper())
    elif params.conduction == "irbbb":
        labels.append("IRBBB")
    elif params.conduction == "nsivcb":
        labels.append("NSIVCB")
    if params.lanfb:
        labels.append("LAnFB")

    pr = measured.get("pr_ms")
    if params.rhythm == "sinus" and pr is not None and pr > 200.0:
        if params.pr_code in ("IAVB", "both"):
            labels.append("IAVB")
        if params.pr_code in ("LPR", "both"):
            labels.append("LPR")

    axis = measured.get("axis_deg")
    if params.rhythm != "paced" and axis is not None:
        if -90.0 <= axis < -30.0:
            labels.append("LAD")
        elif 90.0 < axis <= 180.0:
            labels.append("RAD")

    qtc = measured.get("qtc_ms")
    if qtc is not None and qtc > (460.0 if params.sex == "F" else 450.0):
        labels.append("LQT")
    if params.t_mode == "inverted":
        labels.append("TInv")
    elif params.t_mode in ("flat", "biphasic"):
        labels.append("TAb")
    if params.qab != "none":
        labels.append("QAb")
    if measured.get("low_qrs_voltage"):
        labels.append("LQRSV")
    if (
        measured.get("r_v3_mv") is not None
        and float(measured["r_v3_mv"]) < 0.3  # type: ignore[arg-type]
        and params.conduction == "none"
        and params.rhythm != "paced"
        and params.qab == "none"
    ):
        labels.append("PRWP")
    if coded and params.omit:
        labels = [lab for lab in labels if lab not in params.omit]
    return labels


@functools.cache
def _code_table() -> dict[str, tuple[str, ...]]:
    """Abbreviation → codes, the code whose own abbreviation matches first (e.g. RBBB → 59118001, 713427006)."""
    table: dict[str, tuple[str, ...]] = {}
    for cls in cinc2021_scored().classes:
        own = [c for c in cls.codes if (snomed_info(c) or ("",))[0] == cls.abbreviation]
        table[cls.abbreviation] = tuple(own + [c for c in cls.codes if c not in own])
    return table


def codes_for_labels(labels: list[str], *, equivalent: bool) -> list[str]:
    """SNOMED-CT codes for class abbreviations: one code per class, the equivalent code when ``equivalent``."""
    out = []
    for lab in labels:
        codes = _code_table()[lab]
        out.append(codes[1] if equivalent and len(codes) > 1 else codes[0])
    return out
