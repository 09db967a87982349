"""Recording artefacts, applied to the nine electrode potentials before the leads are formed.

Working on electrodes (RA, LA, LL, V1–V6) rather than leads keeps artefacts physically consistent: noise on the
left-arm electrode shows in I, III, aVL and (a third of it) in every chest lead, exactly as on a real
recorder, and an LA/RA reversal is a swap of two electrode rows. Components: baseline wander (respiration and
slow drift), mains interference (50 or 60 Hz), band-limited muscle noise (EMG) with bursts, electrode-motion
artefacts (steps with exponential recovery), and afterwards, at lead level, an occasional flat lead.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy.signal import butter, sosfilt

from ecgscale.synth.dipole import leads_from_electrodes
from ecgscale.synth.pathologies import RecordParams

__all__ = ["add_electrode_noise", "electrodes_to_leads"]

_LEAD_INDEX = {
    name: i for i, name in enumerate(("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"))
}


@lru_cache(maxsize=16)
def _emg_sos(fs: int) -> np.ndarray:
    high = min(150.0, 0.45 * fs)
    return butter(2, [20.0, high], btype="bandpass", fs=fs, output="sos")


def add_electrode_noise(rng: np.random.Generator, electrodes: np.ndarray, p: RecordParams) -> np.ndarray:
    """Add artefacts to ``(9, n)`` electrode potentials in place (scaled by ``p.noise``) and return them."""
    n = electrodes.shape[1]
    fs = p.fs
    level = p.noise
    if level <= 0 or n == 0:
        return electrodes
    dur = n / fs
    t = np.arange(n) / fs
    # Baseline wander: respiration, slow drift and a faster sway, each a sinusoid with electrode-specific
    # amplitude and phase, written as a*sin(wt + phi) = a*cos(phi)*sin(wt) + a*sin(phi)*cos(wt) so only six
    # basis signals are evaluated on the full grid.
    resp_f = rng.uniform(0.15, 0.35)
    basis = []
    coef = []
    for freq, amp in ((resp_f, 0.05), (rng.uniform(0.03, 0.12), 0.12), (rng.uniform(0.3, 0.7), 0.03)):
        phases = rng.uniform(0.0, 2 * math.pi, 9)
        amps = rng.uniform(0.0, amp * level, 9)
        w = 2 * math.pi * freq * t
        basis += [np.sin(w), np.cos(w)]
        coef += [amps * np.cos(phases), amps * np.sin(phases)]
    # Mains: one phase, electrode-specific coupling (so it does not cancel in the leads).
    if p.mains_hz < 0.5 * fs and rng.random() < 0.6:
        basis.append(np.sin(2 * math.pi * p.mains_hz * t + rng.uniform(0.0, 2 * math.pi)))
        coef.append(rng.uniform(0.0, 0.03 * level, 9))
    electrodes += np.einsum("ke,kn->en", np.asarray(coef), np.asarray(basis))

    # Muscle noise: band-passed white noise, louder on the limb electrodes, with a slow burst envelope.
    # One filtered sequence read at nine offsets (far beyond its ~10 ms correlation) stands in for nine
    # independent ones at a ninth of the cost.
    emg_level = rng.uniform(0.002, 0.02) * level
    if emg_level > 0.003:
        hop = max(int(0.05 * fs), 1)
        white = rng.standard_normal(n + 9 * hop + int(0.2 * fs))
        seq = sosfilt(_emg_sos(fs), white)[int(0.2 * fs) :]  # drop the filter's start-up transient
        emg = np.lib.stride_tricks.sliding_window_view(seq, n)[::hop][:9]
        gains = emg_level * np.concatenate([rng.uniform(1.0, 2.0, 3), rng.uniform(0.3, 1.0, 6)])
        knots = np.arange(0.0, dur + 1.0, 0.5)
        envelope = np.clip(np.interp(t, knots, rng.gamma(1.5, 0.7, knots.size)), 0.05, None)
        electrodes += (gains[:, None] * envelope[None, :]) * emg

    # Electrode motion: a few steps with exponential recovery on single electrodes.
    n_events = rng.poisson(0.25 * level * dur / 10.0)
    for _ in range(int(n_events)):
        e = int(rng.integers(0, 9))
        start = int(rng.integers(0, n))
        tau = rng.uniform(0.2, 0.8) * fs
        k = np.arange(n - start)
        electrodes[e, start:] += rng.uniform(-1.2, 1.2) * np.exp(-k / tau)
    return electrodes


def electrodes_to_leads(electrodes: np.ndarray, p: RecordParams) -> np.ndarray:
    """The 12 leads from the electrodes; LA/RA reversal is a physical swap of the two electrode rows."""
    if p.lead_swap:
        electrodes = electrodes[[1, 0, 2, 3, 4, 5, 6, 7, 8]]
    leads = leads_from_electrodes(electrodes)
    if p.flat_lead is not None:
        leads[_LEAD_INDEX[p.flat_lead]] = 0.0
    return leads
