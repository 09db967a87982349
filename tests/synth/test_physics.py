"""The dipole model: lead relations, the Dower projection, the renderer, and characteristic morphologies."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.signal import find_peaks

import ecgscale.synth.record as record_module
from ecgscale.data.records import STANDARD_LEADS
from ecgscale.synth import DEFAULT_SOURCES, sample_params, synth_record
from ecgscale.synth.dipole import DOWER, GROUP_QRS, GROUP_T, Waves, leads_from_dipole, render_dipole
from ecgscale.synth.morphology import beat_shapes, measure_shape
from ecgscale.synth.noise import add_electrode_noise, electrodes_to_leads

L = {name: i for i, name in enumerate(STANDARD_LEADS)}


def _params(**changes):
    rng = np.random.default_rng(0)
    base = sample_params(rng, DEFAULT_SOURCES[1], fs=500, duration_s=10.0)
    defaults = dict(
        rhythm="sinus",
        conduction="none",
        lanfb=False,
        qab="none",
        prwp=False,
        low_voltage=False,
        t_mode="normal",
        n_pac=0,
        n_pvc=0,
        axis_deg=50.0,
        horizontal_deg=0.0,
        qrs_mv=1.5,
        body_gain=1.0,
        rate_bpm=70.0,
        pr_ms=160.0,
        qtc_ms=410.0,
        lead_swap=False,
        flat_lead=None,
    )
    defaults.update(changes)
    return dataclasses.replace(base, **defaults)


def _template_leads(p, rr=60 / 70):
    shape = beat_shapes(p, np.random.default_rng(1), rr).N
    n, fs, t0 = 1200, 1000.0, -0.4
    leads = leads_from_dipole(render_dipole(shape.select(shape.group == GROUP_QRS), n, fs, t0=t0))
    return t0 + np.arange(n) / fs, leads, measure_shape(shape, rr)


def test_dower_matrix_is_the_published_one():
    # Dower et al. 1980: lead I = 0.632 X - 0.235 Y + 0.059 Z; V2 = 0.044 X + 0.164 Y - 1.387 Z.
    assert DOWER.shape == (8, 3)
    np.testing.assert_allclose(DOWER[0], [0.632, -0.235, 0.059])
    np.testing.assert_allclose(DOWER[3], [0.044, 0.164, -1.387])
    np.testing.assert_allclose(DOWER[7], [0.831, 0.076, 0.230])


@pytest.mark.parametrize("source", DEFAULT_SOURCES, ids=lambda s: s.name)
def test_limb_lead_relations_hold_to_precision_before_noise(source):
    rec = synth_record(np.random.default_rng(3), source, duration_s=6.0, keep_clean=True)
    x = rec.clean
    i, ii, iii, avr, avl, avf = (x[L[k]] for k in ("I", "II", "III", "aVR", "aVL", "aVF"))
    scale = np.abs(x).max()
    assert scale > 0.2  # a real ECG, not zeros
    for got, want in ((iii, ii - i), (avr, -(i + ii) / 2), (avl, i - ii / 2), (avf, ii - i / 2)):
        np.testing.assert_allclose(got, want, atol=1e-12 * scale)
    assert np.abs(x[L["V2"]]).max() > 0.3


def test_electrode_noise_keeps_einthoven_and_lead_reversal_is_physical():
    p = _params(noise=1.5, mains_hz=50.0, lead_swap=False)
    rng = np.random.default_rng(5)
    dip = rng.normal(size=(3, 2000))
    from ecgscale.synth.dipole import electrodes_from_dipole

    e = add_electrode_noise(rng, electrodes_from_dipole(dip), p)
    leads = electrodes_to_leads(e.copy(), p)
    np.testing.assert_allclose(leads[L["III"]], leads[L["II"]] - leads[L["I"]], atol=1e-12)
    swapped = electrodes_to_leads(e.copy(), dataclasses.replace(p, lead_swap=True))
    # LA/RA reversal: I inverted, II and III exchanged, aVR and aVL exchanged, aVF and chest leads unchanged.
    np.testing.assert_allclose(swapped[L["I"]], -leads[L["I"]], atol=1e-12)
    np.testing.assert_allclose(swapped[L["II"]], leads[L["III"]], atol=1e-12)
    np.testing.assert_allclose(swapped[L["aVR"]], leads[L["aVL"]], atol=1e-12)
    np.testing.assert_allclose(swapped[L["aVF"]], leads[L["aVF"]], atol=1e-12)
    np.testing.assert_allclose(swapped[6:], leads[6:], atol=1e-12)


def test_render_matches_a_direct_sum_of_gaussians():
    rng = np.random.default_rng(2)
    w = Waves(
        rng.uniform(0.1, 1.9, 30), rng.uniform(0.005, 0.07, 30), rng.normal(size=(30, 3)), np.zeros(30, dtype=np.int8)
    )
    fs, n = 500.0, 1000
    t = np.arange(n) / fs
    naive = np.einsum("kn,kd->dn", np.exp(-0.5 * ((t[None] - w.center[:, None]) / w.sigma[:, None]) ** 2), w.amp)
    np.testing.assert_allclose(render_dipole(w, n, fs), naive, atol=1e-3 * np.abs(naive).max())


def test_normal_beat_has_physiological_amplitudes_and_intervals():
    _, _, m = _template_leads(_params())
    assert 0.5 < m["r_ii_mv"] < 2.5  # ~1 mV R in II
    assert 70 <= m["qrs_ms"] <= 110
    assert abs(m["pr_ms"] - 160) < 3
    assert abs(m["qtc_ms"] - 410) < 5
    assert -30 < m["axis_deg"] < 90


def test_rbbb_rsr_prime_in_v1_and_wide_s_in_i_and_v6():
    t, leads, m = _template_leads(_params(conduction="rbbb"))
    assert m["qrs_ms"] >= 120
    late = (t > 0.04) & (t < 0.08)  # the terminal force
    assert leads[L["V1"], late].max() > 0.3  # R'
    assert leads[L["I"], late].min() < -0.1  # broad S in I
    assert leads[L["V6"], late].min() < -0.1
    # rS before the R': the V1 trace goes negative, then positive again.
    v1 = leads[L["V1"]]
    assert v1[(t > 0.0) & (t < 0.035)].min() < 0


def test_lbbb_broad_notched_r_in_i_v6_and_qs_in_v1():
    t, leads, m = _template_leads(_params(conduction="lbbb"))
    assert m["qrs_ms"] >= 120
    qrs = (t > -0.08) & (t < 0.12)
    assert leads[L["V1"], qrs].max() < 0.1 * -leads[L["V1"], qrs].min()  # QS: (almost) no R
    assert leads[L["V6"], qrs].min() > -0.05  # no septal q in V6
    assert leads[L["I"], qrs].max() > 0.5
    # The notch itself is checked on rendered, noisy records in test_lbbb_notch_is_rendered.


def test_lanfb_left_axis_with_qr_in_avl():
    t, leads, m = _template_leads(_params(lanfb=True, axis_deg=-60.0))
    assert m["axis_deg"] < -30
    avl = leads[L["aVL"]]
    q_idx = int(np.argmin(np.where(t < -0.005, avl, np.inf)))
    assert avl[q_idx] < -0.05  # q in aVL
    assert avl[(t > -0.01) & (t < 0.03)].max() > 0.5  # then a tall R
    assert leads[L["II"], (t > -0.05) & (t < 0.0)].max() > 0.02  # small r in II (rS)


def test_pvc_beats_are_wide_and_af_has_no_p_waves():
    p = _params(rhythm="af")
    shapes = beat_shapes(p, np.random.default_rng(4), 0.7)
    assert not (shapes.N.group == 0).any()  # no P wave group in AF beats
    m = measure_shape(shapes.V, 0.8)
    assert m["qrs_ms"] >= 120
    assert m["pr_ms"] is None


def test_t_wave_modes():
    _, _, normal = _template_leads(_params())
    _, _, inverted = _template_leads(_params(t_mode="inverted"))
    _, _, flat = _template_leads(_params(t_mode="flat"))
    assert normal["t_amp_v5_mv"] > 0.1
    assert inverted["t_amp_v5_mv"] < -0.05
    assert abs(flat["t_amp_v5_mv"]) < 0.5 * normal["t_amp_v5_mv"]
    assert GROUP_T == 2


# --- The rendered record: what synth_record writes, checked on its samples, not on its parameters. ---

#: Dower et al. (1980), Frank X, Y, Z → I, II, V1–V6, restated here so the test does not trust the module.
DOWER_1980 = np.array(
    [
        [0.632, -0.235, 0.059],
        [0.235, 1.066, -0.132],
        [-0.515, 0.157, -0.917],
        [0.044, 0.164, -1.387],
        [0.882, 0.098, -1.277],
        [1.213, 0.127, -0.601],
        [1.125, 0.127, -0.086],
        [0.831, 0.076, 0.230],
    ]
)
EIGHT = [L[k] for k in ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")]


def _force_params(monkeypatch, **changes):
    """Make synth_record draw its parameters as usual, then apply ``changes`` (a chosen finding)."""
    real = record_module.sample_params

    def sample(*args, **kwargs):
        return dataclasses.replace(real(*args, **kwargs), **changes)

    monkeypatch.setattr(record_module, "sample_params", sample)


def _spy_dipole(monkeypatch) -> dict:
    """Capture the (3, n) dipole synth_record projects onto the electrodes."""
    seen: dict = {}
    real = record_module.electrodes_from_dipole

    def spy(dipole, transform=None):
        seen["dipole"] = np.array(dipole, copy=True)
        return real(dipole, transform)

    monkeypatch.setattr(record_module, "electrodes_from_dipole", spy)
    return seen


def _chest_rows(p) -> np.ndarray:
    """docs/synth.md: chest rows scaled by the chest-wall and electrode gains, each electrode moved by a
    fraction of the spacing towards its neighbour (V6 towards V5)."""
    out = DOWER_1980.copy()
    for k in range(6):
        row = 2 + k
        nb, shift = (row + 1, p.chest_shifts[k]) if k < 5 else (row - 1, -p.chest_shifts[k])
        out[row] = p.chest_gain * p.chest_gains[k] * (DOWER_1980[row] + shift * (DOWER_1980[nb] - DOWER_1980[row]))
    return out


@pytest.mark.parametrize("source", DEFAULT_SOURCES, ids=lambda s: s.name)
def test_independent_leads_are_the_dower_projection_of_the_dipole(monkeypatch, source):
    seen = _spy_dipole(monkeypatch)
    # Electrodes exactly in place: the eight leads are the published matrix times the dipole.
    _force_params(monkeypatch, chest_gain=1.0, chest_gains=(1.0,) * 6, chest_shifts=(0.0,) * 6)
    rec = synth_record(np.random.default_rng(21), source, duration_s=5.0, keep_clean=True)
    dipole = seen["dipole"]
    assert dipole.shape == (3, rec.clean.shape[1])
    assert (np.abs(dipole).max(axis=1) > 0.1).all()  # a 3-D dipole, not a planar or empty one
    scale = np.abs(rec.clean).max()
    np.testing.assert_allclose(rec.clean[EIGHT], DOWER_1980 @ dipole, rtol=0, atol=1e-9 * scale)


@pytest.mark.parametrize("seed", [3, 4])
def test_chest_leads_follow_the_documented_electrode_perturbation(monkeypatch, seed):
    seen = _spy_dipole(monkeypatch)
    rec = synth_record(np.random.default_rng(seed), DEFAULT_SOURCES[1], duration_s=5.0, keep_clean=True)
    p = rec.params
    assert p.chest_gain != 1.0 and any(s != 0.0 for s in p.chest_shifts)
    np.testing.assert_allclose(rec.clean[EIGHT], _chest_rows(p) @ seen["dipole"], rtol=0, atol=1e-9)


def _notch(qrs: np.ndarray, fs: float) -> float | None:
    """Depth (mV) of the deepest dip between two positive R maxima >= 20 ms apart in a QRS, else None."""
    peaks, _ = find_peaks(qrs, height=0.15)
    best = None
    for a in range(len(peaks)):
        for b in range(a + 1, len(peaks)):
            i, j = peaks[a], peaks[b]
            if (j - i) / fs >= 0.02:
                depth = min(qrs[i], qrs[j]) - qrs[i : j + 1].min()
                best = depth if best is None else max(best, depth)
    return best


LBBB_BASE = dict(
    rhythm="sinus", lanfb=False, qab="none", prwp=False, t_mode="normal", n_pac=0, n_pvc=0,
    lead_swap=False, flat_lead=None, low_voltage=False,
)  # fmt: skip


def _notches(monkeypatch, delineator, conduction: str) -> list[dict[str, float | None]]:
    _force_params(monkeypatch, conduction=conduction, **LBBB_BASE)
    delineate = delineator.delineate
    out = []
    for seed in range(8):
        fs = 500
        rec = synth_record(np.random.default_rng(seed), DEFAULT_SOURCES[1], fs=fs, duration_s=10.0)
        d = delineate(rec.signal, fs)  # median beat of the noisy rendered signal
        out.append({k: _notch(d.template[L[k], d.q_on : d.q_off + 1], fs) for k in ("I", "aVL", "V5", "V6")})
    return out


def test_lbbb_notch_is_rendered(monkeypatch, delineator):
    lbbb = _notches(monkeypatch, delineator, "lbbb")
    normal = _notches(monkeypatch, delineator, "none")
    # Every LBBB record shows a notched (M-shaped) R in at least one of I, aVL, V5, V6 ...
    assert all(any(v is not None for v in r.values()) for r in lbbb), lbbb
    # ... most of them a clear one (>= 20 uV below the smaller R peak, well above the residual noise) ...
    assert sum(max((v or 0.0) for v in r.values()) >= 0.02 for r in lbbb) >= 6, lbbb
    # ... and records with normal conduction (same seeds, same noise) show none.
    assert not any(v is not None for r in normal for v in r.values()), normal


def _spikes(x: np.ndarray, fs: float, level: float = 0.5) -> np.ndarray:
    """Pacing-spike samples: a second difference above ``level`` mV (in any lead) that is at most 3 samples
    wide and at least 4x the second difference 3 samples either side (a QRS bends over many samples)."""
    h = np.zeros(x.shape[1])
    h[1:-1] = np.abs(x[:, 1:-1] - 0.5 * (x[:, :-2] + x[:, 2:])).max(axis=0)
    idx = np.flatnonzero(h > level)
    out = []
    for run in np.split(idx, np.flatnonzero(np.diff(idx) > 0.01 * fs) + 1) if idx.size else []:
        peak = int(run[np.argmax(h[run])])
        side = max(h[max(peak - 3, 0)], h[min(peak + 3, h.size - 1)])
        if run[-1] - run[0] <= 2 and h[peak] > 4 * side:
            out.append(peak)
    return np.asarray(out, dtype=np.int64)


def _qrs_peaks(x: np.ndarray, fs: float, spikes: np.ndarray, delineator) -> np.ndarray:
    """QRS complexes of a paced record: spikes interpolated away, band-passed spatial activity peaks."""
    clean = x.copy()
    for s in spikes:
        lo, hi = max(s - 3, 0), min(s + 3, x.shape[1] - 1)
        for k in range(x.shape[0]):
            clean[k, lo : hi + 1] = np.linspace(clean[k, lo], clean[k, hi], hi - lo + 1)
    m = np.abs(delineator.bandpass(clean[EIGHT], fs)).sum(axis=0)
    peaks, _ = find_peaks(m, height=0.5 * np.percentile(m, 99.5), distance=int(0.3 * fs))
    return peaks[(peaks > 0.3 * fs) & (peaks < x.shape[1] - 0.05 * fs)]


@pytest.mark.parametrize("fs", [257, 500])
@pytest.mark.parametrize("atrial", [False, True], ids=["VVI", "DDD"])
def test_pacing_spikes_are_rendered_before_each_qrs(monkeypatch, fs, atrial, delineator):
    _force_params(monkeypatch, rhythm="paced", paced_atrial=atrial, conduction="none", lanfb=False, n_pac=0,
                  n_pvc=0, lead_swap=False, flat_lead=None)  # fmt: skip
    for seed in range(3):
        rec = synth_record(np.random.default_rng(seed), DEFAULT_SOURCES[2], fs=fs, duration_s=10.0)
        x = rec.signal.astype(np.float64)
        spikes = _spikes(x, fs)
        beats = _qrs_peaks(x, fs, spikes, delineator)
        assert beats.size >= 6, (seed, beats)
        for r in beats:
            before = spikes[(spikes < r) & (spikes >= r - 0.12 * fs)]
            assert before.size == 1, (seed, r, spikes)  # one ventricular spike just before every QRS
            av = spikes[(spikes < before[0] - 0.1 * fs) & (spikes >= before[0] - 0.25 * fs)]
            assert av.size == (1 if atrial else 0), (seed, r, spikes)  # and an atrial one, one AV delay earlier
        assert len(spikes) <= (2 if atrial else 1) * (beats.size + 2), (seed, spikes)  # nothing else spikes
    # Without pacing, nothing in the rendered signal looks like a spike.
    _force_params(monkeypatch, rhythm="sinus", conduction="none", n_pac=0, n_pvc=0, lead_swap=False, flat_lead=None)
    for seed in range(3):
        rec = synth_record(np.random.default_rng(seed), DEFAULT_SOURCES[2], fs=fs, duration_s=10.0)
        assert _spikes(rec.signal.astype(np.float64), fs).size == 0
