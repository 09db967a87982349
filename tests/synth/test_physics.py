"""The dipole model: lead relations, the Dower projection, the renderer, and characteristic morphologies."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

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
    # The eight independent leads are the Dower projection of the dipole (checked on the clean record).
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
    # notch: two local maxima in V6
    v6 = leads[L["V6"], qrs]
    peaks = np.flatnonzero((v6[1:-1] > v6[:-2]) & (v6[1:-1] >= v6[2:]) & (v6[1:-1] > 0.2))
    assert len(peaks) >= 2 or m["qrs_ms"] >= 130


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


def test_paced_records_show_spikes():
    p = _params(rhythm="paced", axis_deg=-60.0, rate_bpm=70.0)
    from ecgscale.synth.rhythm import beat_train

    rng = np.random.default_rng(6)
    train = beat_train(rng, p)
    shapes = beat_shapes(p, rng, 60 / 70)
    assert (shapes.N.group == 3).any()
    assert measure_shape(shapes.N, 60 / 70)["qrs_ms"] >= 120
    assert train.t.size > 5


def test_t_wave_modes():
    _, _, normal = _template_leads(_params())
    _, _, inverted = _template_leads(_params(t_mode="inverted"))
    _, _, flat = _template_leads(_params(t_mode="flat"))
    assert normal["t_amp_v5_mv"] > 0.1
    assert inverted["t_amp_v5_mv"] < -0.05
    assert abs(flat["t_amp_v5_mv"]) < 0.5 * normal["t_amp_v5_mv"]
    assert GROUP_T == 2
