"""Beat shapes from record parameters, and measurements on the generated (noise-free) dominant beat.

A shape is a small set of Gaussian waves relative to the beat's reference time (0 = peak of the main QRS
force). Pathologies change the shape the way they change cardiac activation:

* RBBB: normal initial forces plus a slow terminal rightward-anterior force → rsR' in V1, broad S in I/V6;
  IRBBB: the same, smaller and shorter (QRS < 120 ms);
* LBBB: no septal q; two slow left-posterior forces → broad notched R in I/V6, QS in V1; discordant T;
* NSIVCB: every QRS force slowed (wide QRS, normal directions);
* LAnFB: small inferior-rightward initial force (q in aVL, r in II/III/aVF), main force superior-left;
* PVC / paced beats: two broad forces from an ectopic origin, discordant T (pacing adds a spike);
* QAb: a 40 ms initial force away from the infarcted wall (inferior, anterior or lateral);
* PRWP: no early anterior force and a clockwise horizontal rotation (small R in V1–V3).
"""

from __future__ import annotations

import math

import numpy as np

from ecgscale.synth.dipole import GROUP_P, GROUP_QRS, GROUP_SPIKE, GROUP_T, Waves, leads_from_dipole, render_dipole
from ecgscale.synth.pathologies import RecordParams

__all__ = ["BeatShapes", "beat_shapes", "measure_shape"]

_MEASURE_FS = 1000.0
_MEASURE_T0 = -0.6
_BOUNDS_SPAN = 1.6  # s of template analysed, from _MEASURE_T0


def _rot(axis_deg: float, horizontal_deg: float, elevation_deg: float = 0.0) -> np.ndarray:
    """Rotation: frontal plane (X towards Y = inferior) by ``axis_deg``, then horizontal (X towards Z), then
    a tilt about X (Y towards Z)."""
    a = math.radians(axis_deg)
    h = math.radians(horizontal_deg)
    e = math.radians(elevation_deg)
    rz = np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[math.cos(h), 0.0, -math.sin(h)], [0.0, 1.0, 0.0], [math.sin(h), 0.0, math.cos(h)]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, math.cos(e), -math.sin(e)], [0.0, math.sin(e), math.cos(e)]])
    return rx @ ry @ rz


def _dipole_angle(lead_axis_deg: float) -> float:
    """Frontal dipole direction whose projection on leads I and aVF has the angle ``lead_axis_deg``.

    Through the Dower rows, I = 0.632 X - 0.235 Y and aVF = -0.081 X + 1.184 Y (Z ignored), so the hexaxial
    angle is not the dipole angle; inverting this 2 x 2 map lets the parameter mean the clinical axis.
    """
    a = math.radians(lead_axis_deg)
    i, f = math.cos(a), math.sin(a)
    det = 0.632 * 1.184 - 0.235 * 0.081
    x = (1.184 * i + 0.235 * f) / det
    y = (0.081 * i + 0.632 * f) / det
    return math.degrees(math.atan2(y, x))


def _waves(rows: list[tuple[float, float, float, float, float, int]]) -> Waves:
    arr = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
    return Waves(arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2:5].copy(), arr[:, 5].astype(np.int8))


class BeatShapes:
    """Templates of one record: dominant beat ``N``, PAC ``A``, PVC ``V``; T timing adapts to RR per beat."""

    __slots__ = ("A", "N", "V", "qt_s", "qtc_s", "rr_s")

    def __init__(self, N: Waves, A: Waves, V: Waves, qt_s: float, rr_s: float, qtc_s: float):
        self.N, self.A, self.V = N, A, V
        self.qt_s, self.rr_s, self.qtc_s = qt_s, rr_s, qtc_s


#: Direction of an inverted T vector per territory: anterior (V1–V4 negative), lateral (I, aVL, V5–V6),
#: inferior (II, III, aVF).
_T_AWAY = {
    "anterior": np.array([0.35, 0.15, 0.92]),
    "lateral": np.array([-0.85, 0.45, 0.2]),
    "inferior": np.array([0.45, -0.88, 0.1]),
}


def _qrs_rows(p: RecordParams, rng: np.random.Generator, amp: float) -> list[tuple]:
    """QRS waves of the dominant (conducted or paced) beat, in absolute Frank coordinates."""
    theta = _dipole_angle(p.axis_deg)
    rot = _rot(theta, p.horizontal_deg, p.elevation_deg)
    rows: list[tuple] = []

    def add(dt: float, sigma: float, vec, *, rotate: bool = True, group: int = GROUP_QRS) -> None:
        v = np.asarray(vec, dtype=np.float64) * amp
        if rotate:
            v = rot @ v
        rows.append((dt, sigma, v[0], v[1], v[2], group))

    if p.rhythm == "paced":
        k = rng.uniform(0.9, 1.1)
        add(0.0, 0.026 * k, (0.55, -0.75, 0.5), rotate=False)
        add(0.052 * k, 0.026 * k, (0.75, -0.35, 0.35), rotate=False)
        return rows
    if p.conduction == "lbbb":
        k = rng.uniform(0.9, 1.1)
        lb = _rot(theta - 20.0, 0.0)
        for dt, vec in ((-0.004, (0.55, 0.0, 0.85)), (0.044 * k, (0.85, 0.1, 0.45))):
            v = lb @ (np.asarray(vec) * amp * 1.15)
            rows.append((dt, 0.019 * k, v[0], v[1], v[2], GROUP_QRS))
        return rows

    # QRS duration factor: normal variation, complete RBBB kept >= 120 ms, NSIVCB slowed.
    widths = {"nsivcb": rng.uniform(1.35, 1.6), "rbbb": rng.uniform(1.03, 1.15)}
    wide = widths.get(p.conduction, rng.uniform(0.85, 1.18))
    if p.lanfb:
        wide *= 1.08
    # Individual variation of the septal, early anterior and terminal forces.
    k_q, k_r0, k_s = rng.uniform(0.3, 1.7), rng.uniform(0.4, 1.6), rng.uniform(0.4, 1.7)
    # Septal q (rightward-anterior), early anterior r, main R, terminal S (rightward-posterior).
    initial_amp = 0.0 if p.qab != "none" else 1.0
    if p.lanfb:
        add(-0.028 * wide, 0.009 * wide, (-0.18, 0.32, -0.12), rotate=False)
    else:
        add(-0.030 * wide, 0.008 * wide, (-0.10 * initial_amp * k_q, 0.02, -0.16 * initial_amp * k_q))
    if not p.prwp and p.qab != "anterior":
        add(-0.014 * wide, 0.009 * wide, (0.20 * k_r0, 0.05, -0.35 * k_r0))
    add(0.0, 0.011 * wide, (1.0, 0.0, 0.25))
    s_scale = 0.4 if p.lanfb else 1.0
    add(0.022 * wide, 0.010 * wide, (-0.30 * s_scale * k_s, -0.12 * k_s, 0.45 * k_s))
    if p.qab == "inferior":
        add(-0.026, 0.012, (0.05, -0.55, 0.0), rotate=False)
    elif p.qab == "anterior":
        add(-0.026, 0.012, (0.1, 0.0, 0.65), rotate=False)
    elif p.qab == "lateral":
        add(-0.026, 0.012, (-0.55, 0.05, 0.1), rotate=False)
    if p.conduction == "rbbb":
        add(
            rng.uniform(0.044, 0.056),
            rng.uniform(0.016, 0.021),
            np.array((-0.35, 0.05, -0.7)) * rng.uniform(0.5, 0.8),
            rotate=False,
        )
    elif p.conduction == "irbbb":
        add(
            rng.uniform(0.030, 0.036),
            rng.uniform(0.010, 0.012),
            np.array((-0.35, 0.05, -0.7)) * rng.uniform(0.3, 0.5),
            rotate=False,
        )
    return rows


def _bounds(rows: list[tuple]) -> tuple[float, float]:
    """Onset and offset of a wave group exactly as ``measure_shape`` defines them (5 % of peak magnitude)."""
    w = _waves(rows)
    n = int(_BOUNDS_SPAN * _MEASURE_FS)
    d = render_dipole(w, n, _MEASURE_FS, t0=_MEASURE_T0)
    mag = np.sqrt((d * d).sum(axis=0))
    above = np.flatnonzero(mag > 0.05 * mag.max())
    return _MEASURE_T0 + above[0] / _MEASURE_FS, _MEASURE_T0 + above[-1] / _MEASURE_FS


def _shift(rows: list[tuple], dt: float) -> list[tuple]:
    return [(r[0] + dt, *r[1:]) for r in rows]


def _t_rows(
    p: RecordParams, rng: np.random.Generator, amp: float, qrs_rows: list[tuple], t_center: float, sigma_t: float
) -> list[tuple]:
    if p.rhythm == "paced" or p.conduction in ("rbbb", "lbbb"):
        # Secondary (discordant) T: opposite to the late QRS forces.
        late = np.asarray([r[2:5] for r in qrs_rows[-2:]]).sum(axis=0)
        vec = -late / (np.linalg.norm(late) + 1e-9) * amp * rng.uniform(0.2, 0.3)
    else:
        t_axis = 0.5 * _dipole_angle(p.axis_deg) + 22.0 + rng.normal(0.0, 14.0)
        # The anterior T component varies: a negative T in V1 (posterior T) is a normal variant.
        vec = _rot(t_axis, 0.5 * p.horizontal_deg) @ (np.array([1.0, 0.0, rng.uniform(-0.6, 0.15)]) * amp * p.t_rel)
        if p.t_mode == "inverted":
            # Inversion in one territory (T vector pointing away from it) or everywhere.
            away = _T_AWAY.get(p.t_territory)
            size = float(np.linalg.norm(vec)) * rng.uniform(0.6, 1.2)
            vec = -vec * rng.uniform(0.5, 1.0) if away is None else away * size
        elif p.t_mode == "flat":
            vec = vec * rng.uniform(0.03, 0.12)
    if p.t_mode == "biphasic":
        a, b = 0.55 * vec, -0.65 * vec
        return [
            (t_center - 0.6 * sigma_t, 0.75 * sigma_t, *a, GROUP_T),
            (t_center + 0.6 * sigma_t, 0.75 * sigma_t, *b, GROUP_T),
        ]
    return [
        (t_center - 0.55 * sigma_t, 1.2 * sigma_t, *(0.45 * vec), GROUP_T),
        (t_center, 0.8 * sigma_t, *(0.8 * vec), GROUP_T),
    ]


def _p_rows(p: RecordParams, onset: float, scale: float, vec_ra, vec_la) -> list[tuple]:
    sp = 0.0135
    center = onset + 0.012 + 2.0 * sp
    a = np.asarray(vec_ra) * scale * p.p_mv * p.body_gain
    b = np.asarray(vec_la) * scale * p.p_mv * p.body_gain
    return [(center - 0.012, sp, *a, GROUP_P), (center + 0.012, sp, *b, GROUP_P)]


def beat_shapes(p: RecordParams, rng: np.random.Generator, rr_s: float) -> BeatShapes:
    """The record's beat templates at its mean RR ``rr_s``."""
    amp = p.qrs_mv * p.body_gain * (rng.uniform(0.25, 0.42) if p.low_voltage else 1.0)
    qrs = _qrs_rows(p, rng, amp)
    q_on, q_off = _bounds(qrs)
    # Place T and P, then correct their position once so that the *measured* QT and PR hit the targets.
    qt = p.qtc_ms / 1000.0 * math.sqrt(rr_s)
    sigma_t = rng.uniform(0.045, 0.06) * (0.85 if p.rhythm == "paced" or p.conduction != "none" else 1.0)
    sigma_t *= min(max(math.sqrt(rr_s / 0.85), 0.6), 1.2)  # the T wave narrows at fast rates
    t_center = q_on + qt - 1.9 * sigma_t
    t_rows = _t_rows(p, rng, amp, qrs, t_center, sigma_t)
    t_end = _bounds(t_rows)[1]
    t_rows = _shift(t_rows, max(q_on + qt - t_end, q_off - _bounds(t_rows)[0]))  # T starts after the QRS
    qt_eff = _bounds(t_rows)[1] - q_on

    rows_n = list(qrs) + t_rows
    if p.rhythm == "sinus" or (p.rhythm == "paced" and p.paced_atrial):
        p_rows = _p_rows(p, q_on - p.pr_ms / 1000.0, 1.0, (0.03, 0.11, -0.07), (0.11, 0.06, 0.07))
        rows_n += _shift(p_rows, q_on - p.pr_ms / 1000.0 - _bounds(p_rows)[0])
    if p.rhythm == "paced":
        spike = rng.uniform(1.5, 5.0) * np.array([0.3, 0.5, -0.8])
        rows_n.append((q_on - 0.002, 0.0005, *spike, GROUP_SPIKE))
        if p.paced_atrial:
            a_spike = rng.uniform(0.8, 2.5) * np.array([0.5, 0.7, -0.3])
            rows_n.append((q_on - p.pr_ms / 1000.0 - 0.002, 0.0005, *a_spike, GROUP_SPIKE))
    n_shape = _waves(rows_n)

    # PAC: ectopic (often low-atrial, inverted inferior) P, same QRS/T, slightly shorter PR.
    inv = rng.random() < 0.5
    vec_a = (0.05, -0.07, 0.0) if inv else (0.09, 0.05, 0.04)
    a_rows = (
        list(qrs) + t_rows + _p_rows(p, q_on - p.pr_ms / 1000.0 * rng.uniform(0.75, 0.95), 1.0, vec_a, (0.0, 0.0, 0.0))
    )
    a_shape = _waves(a_rows)

    # PVC: two broad forces from the ventricle of origin, no P, discordant T.
    sgn_y = 1.0 if rng.random() < 0.6 else -1.0
    base = np.array((-0.6, 0.5 * sgn_y, -0.6)) if p.pvc_origin == "lv" else np.array((0.6, 0.6 * sgn_y, 0.6))
    pvc_amp = p.qrs_mv * p.body_gain * rng.uniform(1.1, 1.8)
    sv = rng.uniform(0.022, 0.03)
    v1 = base * pvc_amp
    v2 = (base + rng.normal(0.0, 0.25, 3)) * pvc_amp * 0.7
    dt2 = rng.uniform(0.035, 0.05)
    tv = -(v1 + v2) / (np.linalg.norm(v1 + v2) + 1e-9) * pvc_amp * 0.3
    v_rows = [
        (0.0, sv, *v1, GROUP_QRS),
        (dt2, sv, *v2, GROUP_QRS),
        (dt2 + 0.2, 0.06, *tv, GROUP_T),
    ]
    v_shape = _waves(v_rows)
    return BeatShapes(n_shape, a_shape, v_shape, qt_s=qt_eff, rr_s=rr_s, qtc_s=p.qtc_ms / 1000.0)


def measure_shape(shape: Waves, rr_s: float, transform: np.ndarray | None = None) -> dict[str, float | None]:
    """Interval, axis and voltage measurements on a noise-free template beat (1 kHz grid).

    Wave boundaries are where the magnitude of that wave group's dipole crosses 5 % of its peak; the
    frontal axis is ``atan2`` of the net QRS areas in aVF and I; voltages are QRS peak-to-peak per lead.
    """
    n = int(_BOUNDS_SPAN * _MEASURE_FS)
    t = _MEASURE_T0 + np.arange(n) / _MEASURE_FS
    out: dict[str, float | None] = {}
    bounds: dict[int, tuple[float, float] | None] = {}
    total = np.zeros((3, n))
    for group in (GROUP_P, GROUP_QRS, GROUP_T):
        sel = shape.select(shape.group == group)
        if sel.center.size == 0:
            bounds[group] = None
            continue
        d = render_dipole(sel, n, _MEASURE_FS, t0=_MEASURE_T0)
        total += d
        mag = np.sqrt((d * d).sum(axis=0))
        above = np.flatnonzero(mag > 0.05 * mag.max())
        bounds[group] = (float(t[above[0]]), float(t[above[-1]]))
    qrs = bounds[GROUP_QRS]
    if qrs is None:
        raise ValueError("a beat shape without QRS waves cannot be measured")
    out["qrs_ms"] = round((qrs[1] - qrs[0]) * 1000.0, 1)
    p = bounds[GROUP_P]
    out["pr_ms"] = None if p is None else round((qrs[0] - p[0]) * 1000.0, 1)
    tb = bounds[GROUP_T]
    qt = None if tb is None else tb[1] - qrs[0]
    out["qt_ms"] = None if qt is None else round(qt * 1000.0, 1)
    out["qtc_ms"] = None if qt is None else round(qt / math.sqrt(rr_s) * 1000.0, 1)

    leads = leads_from_dipole(total, transform)  # pacing spikes left out: they are not part of the QRS
    win = (t >= qrs[0]) & (t <= qrs[1])
    seg = leads[:, win]
    area_i, area_avf = float(seg[0].sum()), float(seg[5].sum())
    out["axis_deg"] = round(math.degrees(math.atan2(area_avf, area_i)), 2)
    p2p = seg.max(axis=1) - seg.min(axis=1)
    out["limb_p2p_max_mv"] = round(float(p2p[:6].max()), 4)
    out["precordial_p2p_max_mv"] = round(float(p2p[6:].max()), 4)
    out["low_qrs_voltage"] = bool(p2p[:6].max() < 0.5 or p2p[6:].max() < 1.0)
    out["r_v3_mv"] = round(float(max(seg[8].max(), 0.0)), 4)
    out["r_ii_mv"] = round(float(max(seg[1].max(), 0.0)), 4)
    if tb is not None:
        twin = (t >= tb[0]) & (t <= tb[1])
        tseg = leads[:, twin]
        t_extreme = np.where(np.abs(tseg.max(axis=1)) >= np.abs(tseg.min(axis=1)), tseg.max(axis=1), tseg.min(axis=1))
        out["t_amp_ii_mv"] = round(float(t_extreme[1]), 4)
        out["t_amp_v5_mv"] = round(float(t_extreme[10]), 4)
    return out
