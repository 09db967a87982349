"""Beat timing (sinus with HRV and respiration, PAC/PVC, AF, flutter, pacing) and atrial activity waves.

Times are seconds from the start of the record. Beats are scheduled from one second before the record to one
second after it, so the record starts and ends mid-cycle like a real recording.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from ecgscale.synth.pathologies import RecordParams

__all__ = ["KIND_N", "KIND_PAC", "KIND_PVC", "BeatTrain", "atrial_wave", "beat_train"]

KIND_N, KIND_PAC, KIND_PVC = 0, 1, 2
_MARGIN_S = 1.0


@dataclass(frozen=True, slots=True)
class BeatTrain:
    t: np.ndarray  # reference time of each beat (s)
    kind: np.ndarray  # KIND_N / KIND_PAC / KIND_PVC
    rr_prev: np.ndarray  # interval since the previous beat (s), drives QT adaptation

    def inside(self, duration_s: float) -> np.ndarray:
        return (self.t >= 0.0) & (self.t < duration_s)


def _place_ectopics(
    rng: np.random.Generator,
    intervals: np.ndarray,
    kind: np.ndarray,
    times: np.ndarray,
    duration_s: float,
    n: int,
    which: int,
    coupling: tuple[float, float],
) -> None:
    """Turn ``n`` dominant beats inside the record into premature beats (in place)."""
    if n <= 0:
        return
    candidates = np.flatnonzero((times > 0.3) & (times < duration_s - 0.3) & (kind == KIND_N))
    # Never two ectopic beats in a row (keeps the coupling/pauses readable).
    candidates = [
        i for i in candidates if i >= 2 and kind[i - 1] == KIND_N and (i + 1 >= len(kind) or kind[i + 1] == KIND_N)
    ]
    if not candidates:
        return
    chosen = rng.choice(candidates, size=min(n, len(candidates)), replace=False)
    for i in sorted(int(c) for c in chosen):
        if kind[i - 1] != KIND_N or (i + 1 < len(kind) and kind[i + 1] != KIND_N):
            continue
        rr = intervals[i]
        c = rng.uniform(*coupling)
        intervals[i] = c * rr
        kind[i] = which
        if which == KIND_PVC and i + 1 < len(intervals):
            intervals[i + 1] = (2.0 - c) * rr  # full compensatory pause (sinus node not reset)


def beat_train(rng: np.random.Generator, p: RecordParams) -> BeatTrain:
    duration = p.duration_s
    rr0 = 60.0 / p.rate_bpm
    span = duration + 2 * _MARGIN_S
    n_est = int(span / rr0 * 1.6) + 6
    if p.rhythm == "af":
        sd = math.sqrt(math.log(1.0 + p.af_rr_cv**2))
        intervals = rr0 * np.exp(rng.normal(-0.5 * sd * sd, sd, n_est))
        intervals = np.maximum(intervals, 0.28)
    elif p.rhythm == "afl":
        if p.flutter_ratio == 0:
            ratios = rng.choice([2, 3, 4], size=n_est, p=[0.4, 0.2, 0.4])
        else:
            ratios = np.full(n_est, p.flutter_ratio)
        intervals = ratios * p.flutter_cycle_s
    elif p.rhythm == "paced":
        intervals = np.full(n_est, rr0)
    else:
        k = np.arange(n_est)
        phase = rng.uniform(0.0, 2 * math.pi)
        resp = p.resp_amp * np.sin(2 * math.pi * p.resp_hz * k * rr0 + phase)
        a = 0.8  # AR(1) low-frequency fluctuation
        lf = lfilter([math.sqrt(1 - a * a)], [1.0, -a], rng.normal(0.0, 1.0, n_est)) * p.hrv
        intervals = rr0 * (1.0 + resp + lf)
    if p.rhythm == "afl":
        # QRS locked to flutter waves: the first beat one AV delay after a flutter wave.
        start = -_MARGIN_S + (p.flutter_cycle_s * rng.integers(0, 4)) + 0.25
    else:
        start = -_MARGIN_S + rng.uniform(0.0, rr0)
    times = start + np.concatenate([[0.0], np.cumsum(intervals[1:])])
    kind = np.zeros(n_est, dtype=np.int8)
    rr_prev = intervals.copy()
    if p.n_pac:
        _place_ectopics(rng, rr_prev, kind, times, duration, p.n_pac, KIND_PAC, (0.58, 0.8))
    if p.n_pvc:
        times_now = start + np.concatenate([[0.0], np.cumsum(rr_prev[1:])])
        _place_ectopics(rng, rr_prev, kind, times_now, duration, p.n_pvc, KIND_PVC, (0.5, 0.75))
    times = start + np.concatenate([[0.0], np.cumsum(rr_prev[1:])])
    keep = times < duration + _MARGIN_S
    return BeatTrain(times[keep], kind[keep], rr_prev[keep])


def _smooth_noise(rng: np.random.Generator, n_knots: int, t_knots: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.interp(t, t_knots, rng.normal(0.0, 1.0, n_knots))


def atrial_wave(rng: np.random.Generator, p: RecordParams, t: np.ndarray) -> np.ndarray | None:
    """Fibrillatory (AF) or flutter (AFL) atrial activity as a ``(3, n)`` dipole, else ``None``."""
    if p.rhythm == "af":
        # f waves: 4.5-8.5 Hz with wandering frequency and amplitude, largest in V1 (right-anterior vector).
        knots_t = np.arange(-1.0, p.duration_s + 1.5, 0.4)
        coarse_t = np.arange(0.0, p.duration_s + 0.02, 0.01)
        f_inst = p.f_wave_hz * (1.0 + 0.12 * _smooth_noise(rng, knots_t.size, knots_t, coarse_t))
        phase_coarse = 2 * math.pi * np.cumsum(f_inst) * 0.01 + rng.uniform(0, 2 * math.pi)
        phase = np.interp(t, coarse_t, phase_coarse)
        env = np.clip(1.0 + 0.35 * _smooth_noise(rng, knots_t.size, knots_t, t), 0.2, None)
        wave = env * (np.sin(phase) + 0.35 * np.sin(2 * phase + rng.uniform(0, 2 * math.pi)))
        vec = np.array([-0.3, 0.35, -0.85]) * p.f_wave_mv
        return vec[:, None] * wave[None, :]
    if p.rhythm == "afl":
        # Typical (counter-clockwise) flutter: sawtooth negative in II/III/aVF; a few Fourier harmonics.
        phase = 2 * math.pi * (t / p.flutter_cycle_s)
        wave = sum(np.sin(k * phase) / k for k in range(1, 5)) * (2.0 / math.pi)
        vec = np.array([0.1, -0.95, 0.25]) * p.flutter_mv
        return vec[:, None] * wave[None, :]
    return None
