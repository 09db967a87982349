"""The cardiac dipole: beats as sums of 3-D Gaussians in time, projected to the 12 leads.

Coordinates are Frank's vectorcardiographic axes as the Dower transform expects them: **X** to the patient's
left, **Y** towards the feet (inferior), **Z** towards the back (posterior). A wave is a Gaussian bump in time
whose amplitude is a 3-vector (mV); a beat is a handful of waves (P, Q, R, S, T, ...), and a record's dipole is
the sum of every wave of every beat, evaluated on the sample grid in one vectorised pass (``render_dipole``).

The eight independent leads (I, II, V1–V6) are the Dower projection of the dipole; the four other limb leads
are derived from electrode potentials (RA, LA, LL) so Einthoven's and Goldberger's relations hold exactly,
and electrode-level noise or a LA/RA reversal (see ``noise.py``) stays physically consistent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DOWER",
    "ELECTRODES",
    "GROUP_P",
    "GROUP_QRS",
    "GROUP_SPIKE",
    "GROUP_T",
    "LEADS_FROM_ELECTRODES",
    "Waves",
    "chest_transform",
    "electrodes_from_dipole",
    "leads_from_dipole",
    "leads_from_electrodes",
    "render_dipole",
]

#: Dower et al. (1980), "On deriving the electrocardiogram from vectorcardiographic leads", Clin. Cardiol.
#: 3:87–95: the transform from Frank X, Y, Z to the eight independent standard leads (the inverse of the
#: Frank-to-12-lead "inverse Dower" transform). Rows I, II, V1..V6; columns X, Y, Z. Coefficients checked
#: against two public implementations (BRAVEHEART's dowermatrix.m inverse and ecg-vcg code) via the
#: project's search tool.
DOWER = np.array(
    [
        [0.632, -0.235, 0.059],  # I
        [0.235, 1.066, -0.132],  # II
        [-0.515, 0.157, -0.917],  # V1
        [0.044, 0.164, -1.387],  # V2
        [0.882, 0.098, -1.277],  # V3
        [1.213, 0.127, -0.601],  # V4
        [1.125, 0.127, -0.086],  # V5
        [0.831, 0.076, 0.230],  # V6
    ],
    dtype=np.float64,
)

#: Electrode order used by the noise and lead-reversal model.
ELECTRODES: tuple[str, ...] = ("RA", "LA", "LL", "V1", "V2", "V3", "V4", "V5", "V6")

# Electrode potentials from the 8 independent leads, with RA as the (arbitrary) zero: LA = I, LL = II and
# every chest electrode = its lead + Wilson's central terminal (RA + LA + LL) / 3.
_E_FROM_8 = np.zeros((9, 8))
_E_FROM_8[1, 0] = 1.0
_E_FROM_8[2, 1] = 1.0
for _k in range(6):
    _E_FROM_8[3 + _k, 2 + _k] = 1.0
    _E_FROM_8[3 + _k, 0] = 1.0 / 3.0
    _E_FROM_8[3 + _k, 1] = 1.0 / 3.0

#: The 12 standard leads (I II III aVR aVL aVF V1..V6) from the 9 electrode potentials.
LEADS_FROM_ELECTRODES = np.zeros((12, 9))
_RA, _LA, _LL = 0, 1, 2
LEADS_FROM_ELECTRODES[0, [_RA, _LA]] = (-1.0, 1.0)  # I = LA - RA
LEADS_FROM_ELECTRODES[1, [_RA, _LL]] = (-1.0, 1.0)  # II = LL - RA
LEADS_FROM_ELECTRODES[2, [_LA, _LL]] = (-1.0, 1.0)  # III = LL - LA
LEADS_FROM_ELECTRODES[3, [_RA, _LA, _LL]] = (1.0, -0.5, -0.5)  # aVR = RA - (LA + LL)/2
LEADS_FROM_ELECTRODES[4, [_RA, _LA, _LL]] = (-0.5, 1.0, -0.5)  # aVL
LEADS_FROM_ELECTRODES[5, [_RA, _LA, _LL]] = (-0.5, -0.5, 1.0)  # aVF
for _k in range(6):
    LEADS_FROM_ELECTRODES[6 + _k, [_RA, _LA, _LL]] = -1.0 / 3.0  # minus Wilson's central terminal
    LEADS_FROM_ELECTRODES[6 + _k, 3 + _k] = 1.0

#: Electrodes straight from the dipole (9 x 3).
_E_FROM_DIPOLE = _E_FROM_8 @ DOWER

GROUP_P, GROUP_QRS, GROUP_T, GROUP_SPIKE = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class Waves:
    """A set of Gaussian waves: centre (s), width sigma (s), 3-D amplitude (mV) and group (P/QRS/T/spike)."""

    center: np.ndarray  # (N,)
    sigma: np.ndarray  # (N,)
    amp: np.ndarray  # (N, 3)
    group: np.ndarray  # (N,) int8

    @staticmethod
    def concat(parts: list[Waves]) -> Waves:
        parts = [p for p in parts if p.center.size]
        if not parts:
            return Waves(np.zeros(0), np.zeros(0), np.zeros((0, 3)), np.zeros(0, dtype=np.int8))
        return Waves(
            np.concatenate([p.center for p in parts]),
            np.concatenate([p.sigma for p in parts]),
            np.concatenate([p.amp for p in parts]),
            np.concatenate([p.group for p in parts]),
        )

    def select(self, mask: np.ndarray) -> Waves:
        return Waves(self.center[mask], self.sigma[mask], self.amp[mask], self.group[mask])


def render_dipole(waves: Waves, n_samples: int, fs: float, *, t0: float = 0.0) -> np.ndarray:
    """Evaluate the sum of ``waves`` on the grid ``t0 + k / fs`` (k < n_samples): a ``(3, n)`` dipole.

    Each Gaussian is evaluated only within ±4 sigma of its centre (relative error < 4e-4) and the windows are
    summed with ``np.bincount``: one vectorised pass per width class instead of a Python loop over beats.
    scipy has no sum-of-windowed-Gaussians primitive, hence this hand-written evaluator.
    """
    out = np.zeros(3 * n_samples)
    if waves.center.size == 0 or n_samples == 0:
        return out.reshape(3, n_samples)
    half = np.ceil(4.0 * waves.sigma * fs).astype(np.int64)
    # Two width classes (QRS/P/spikes vs. T and ectopic waves) keep the padded windows short.
    narrow = waves.sigma < 0.016
    for mask in (narrow, ~narrow):
        if not mask.any():
            continue
        c = waves.center[mask]
        s = waves.sigma[mask]
        a = waves.amp[mask]
        h = int(half[mask].max())
        offsets = np.arange(-h, h + 1)
        idx = np.rint((c - t0) * fs).astype(np.int64)[:, None] + offsets[None, :]
        # z = (t0 + idx / fs - c) / s, in place (same operations in the same order: same bits).
        z = idx / fs
        z += t0
        z -= c[:, None]
        z /= s[:, None]
        g = z * -0.5
        g *= z
        np.exp(g, out=g)
        # Samples outside the grid get weight 0 on bin 0 instead of being masked out: adding zeros leaves every
        # bin's sum bit-identical and skips the boolean gathers, the slowest part of a masked version.
        if idx[:, 0].min() < 0 or idx[:, -1].max() >= n_samples:  # rows are increasing: check the ends only
            outside = (idx < 0) | (idx >= n_samples)
            g[outside] = 0.0
            idx[outside] = 0
        # One bincount for the three components: component d of sample k goes to bin d * n + k; the (wave,
        # component, offset) layout keeps each bin's contributions in wave order, as a masked gather would.
        weights = g[:, None, :] * a[:, :, None]
        bins = idx[:, None, :] + (np.arange(3) * n_samples)[None, :, None]
        out += np.bincount(bins.ravel(), weights=weights.ravel(), minlength=3 * n_samples)
    return out.reshape(3, n_samples)


def _apply(matrix: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``matrix @ x`` for a tiny matrix as explicit row sums.

    A (12 x 9) @ (9 x n) product is big enough for OpenBLAS to start threads, which costs milliseconds on a
    busy machine (and oversubscribes cores under ``workers``); a few vector updates cost microseconds.
    """
    out = np.zeros((matrix.shape[0], x.shape[1]))
    for k in range(matrix.shape[1]):
        col = matrix[:, k]
        for i in np.flatnonzero(col):
            if col[i] == 1.0:
                out[i] += x[k]
            elif col[i] == -1.0:
                out[i] -= x[k]
            else:
                out[i] += col[i] * x[k]
    return out


def electrodes_from_dipole(dipole: np.ndarray, transform: np.ndarray | None = None) -> np.ndarray:
    """The nine electrode potentials ``(9, n)`` (RA, LA, LL, V1–V6; RA = 0) seen from a ``(3, n)`` dipole.

    ``transform`` replaces ``DOWER`` (rows I, II, V1–V6), e.g. with a record's chest-electrode placement.
    """
    matrix = _E_FROM_DIPOLE if transform is None else _E_FROM_8 @ transform
    return _apply(matrix, dipole)


def leads_from_electrodes(electrodes: np.ndarray) -> np.ndarray:
    """The 12 standard leads from the nine electrode potentials (Einthoven, Goldberger, Wilson)."""
    e = electrodes
    ra, la, ll = e[0], e[1], e[2]
    wct = (ra + la + ll) / 3.0
    out = np.empty((12, e.shape[1]))
    out[0] = la - ra
    out[1] = ll - ra
    out[2] = ll - la
    out[3] = ra - 0.5 * (la + ll)
    out[4] = la - 0.5 * (ra + ll)
    out[5] = ll - 0.5 * (ra + la)
    out[6:] = e[3:] - wct
    return out


def leads_from_dipole(dipole: np.ndarray, transform: np.ndarray | None = None) -> np.ndarray:
    """The 12 standard leads ``(12, n)`` of a clean dipole (no electrode noise, no lead reversal)."""
    return leads_from_electrodes(electrodes_from_dipole(dipole, transform))


def chest_transform(gain: float, gains: Sequence[float], shifts: Sequence[float]) -> np.ndarray:
    """``DOWER`` with a record's chest electrodes: overall gain (chest wall), per-electrode gain and a shift
    towards the neighbouring electrode position (misplacement), as a fraction of the spacing."""
    out = DOWER.copy()
    for k in range(6):
        row = 2 + k
        neighbour = row + 1 if k < 5 else row - 1
        shift = shifts[k] if k < 5 else -shifts[k]
        out[row] = gain * gains[k] * (DOWER[row] + shift * (DOWER[neighbour] - DOWER[row]))
    return out
