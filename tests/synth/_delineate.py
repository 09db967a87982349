"""A small 12-lead delineator written for the tests, independent of the generator's own measurements.

It sees only a written, noisy signal (mV, ``(12, n)`` in the standard lead order) and its sampling rate:

1. band-pass 0.5–40 Hz (zero phase) against baseline wander, mains and muscle noise;
2. R peaks: energy of the 5–25 Hz derivative summed over the leads, smoothed over 80 ms,
   ``scipy.signal.find_peaks`` with a refractory distance and an adaptive height;
3. a median beat over the beats that look like the dominant one (correlation with a first median > 0.9,
   which drops PVCs), beats re-aligned by cross-correlation;
4. on the median beat, the spatial magnitude of the eight independent leads (I, II, V1–V6): QRS onset and
   offset where it falls below a fraction of the QRS peak, walking out from the peak; the P wave searched in
   a window before the QRS onset and the T wave after the QRS offset, each bounded where the magnitude falls
   below a fraction of that wave's own peak above the isoelectric level;
5. frontal axis from the net QRS areas in I and aVF; QTc by Bazett with the mean RR.

Nothing here imports ``ecgscale.synth``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, find_peaks, sosfiltfilt

LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
_INDEPENDENT = [0, 1, 6, 7, 8, 9, 10, 11]  # I, II, V1-V6

#: Boundary levels as fractions of each wave's peak spatial magnitude, and the smallest measurable P / T (mV).
QRS_LEVEL, P_LEVEL, T_LEVEL = 0.05, 0.1, 0.05
P_MIN_MV, T_MIN_MV = 0.04, 0.1


@dataclass(frozen=True)
class Delineation:
    rate_bpm: float
    rr_s: float
    n_beats: int
    r_peaks: np.ndarray  # sample indices
    template: np.ndarray  # (12, m) median dominant beat, R at index ``r_index``
    r_index: int
    q_on: int  # QRS onset and offset, indices into ``template``
    q_off: int
    qrs_ms: float
    axis_deg: float
    pr_ms: float | None  # None when no P wave is found
    qt_ms: float | None
    qtc_ms: float | None


def bandpass(x: np.ndarray, fs: float, lo: float = 0.5, hi: float = 40.0) -> np.ndarray:
    sos = butter(2, [lo, min(hi, 0.45 * fs)], btype="bandpass", fs=fs, output="sos")
    return sosfiltfilt(sos, x, axis=-1)


def r_peaks(x: np.ndarray, fs: float) -> np.ndarray:
    """R-peak sample indices of a ``(12, n)`` signal (Pan–Tompkins-like energy detector)."""
    d = np.diff(bandpass(x, fs, 5.0, 25.0), axis=-1, prepend=0.0)
    energy = (d * d).sum(axis=0)
    w = max(int(0.08 * fs), 1)
    smooth = np.convolve(energy, np.ones(w) / w, mode="same")
    height = 0.25 * np.percentile(smooth, 99)
    peaks, _ = find_peaks(smooth, height=height, distance=max(int(0.25 * fs), 1))
    # Move each peak to the largest absolute deflection of the summed independent leads nearby.
    y = np.abs(bandpass(x, fs)[_INDEPENDENT]).sum(axis=0)
    r = max(int(0.06 * fs), 1)
    out = [p - r + int(np.argmax(y[max(p - r, 0) : p + r])) if p >= r else int(np.argmax(y[: p + r])) for p in peaks]
    return np.unique(np.asarray(out, dtype=np.int64))


def _crossing(mag: np.ndarray, start: int, stop: int, level: float) -> int | None:
    """First index from ``start`` towards ``stop`` (exclusive) where ``mag`` is below ``level``, or None."""
    step = 1 if stop > start else -1
    for i in range(start, stop, step):
        if mag[i] < level:
            return i
    return None


def delineate(x: np.ndarray, fs: float) -> Delineation | None:
    """Measure rate, QRS, axis, PR and QT on a noisy 12-lead signal; ``None`` if fewer than 3 beats."""
    xf = bandpass(np.asarray(x, dtype=np.float64), fs)
    peaks = r_peaks(x, fs)
    if peaks.size < 3:
        return None
    rr = np.diff(peaks) / fs
    rr_mean = float(rr.mean())
    pre, post = int(0.45 * fs), int(0.65 * fs)
    ok = peaks[(peaks >= pre) & (peaks + post < xf.shape[1])]
    if ok.size < 2:
        return None
    beats = np.stack([xf[:, p - pre : p + post] for p in ok])  # (b, 12, m)
    first = np.median(beats, axis=0)
    # Re-align each beat on the first median (±20 ms) over the QRS region, then keep the dominant ones.
    shift = int(0.02 * fs)
    core = slice(pre - int(0.06 * fs), pre + int(0.08 * fs))
    ref = first[_INDEPENDENT, core].ravel()
    ind = xf[_INDEPENDENT]
    offsets = np.arange(core.start, core.stop)
    best = np.full(ok.size, -np.inf)
    best_s = np.zeros(ok.size, dtype=np.int64)
    r0 = ref - ref.mean()
    for s in range(-shift, shift + 1):
        idx = (ok - pre + s)[:, None] + offsets[None, :]
        valid = (ok - pre + s >= 0) & (ok + post + s <= xf.shape[1])
        seg = ind[:, np.clip(idx, 0, xf.shape[1] - 1)].transpose(1, 0, 2).reshape(ok.size, -1)
        seg = seg - seg.mean(axis=1, keepdims=True)
        c = (seg @ r0) / (np.linalg.norm(seg, axis=1) * np.linalg.norm(r0) + 1e-12)
        c[~valid] = -np.inf
        better = c > best
        best[better], best_s[better] = c[better], s
    aligned = [xf[:, p - pre + s : p + post + s] for p, s in zip(ok, best_s, strict=True)]
    corr = best
    corr_a = np.asarray(corr)
    keep = corr_a > 0.9
    if keep.sum() < 2:
        keep = corr_a >= np.median(corr_a)
    tpl = np.median(np.stack(aligned)[keep], axis=0)

    # Isoelectric level per lead: the flattest 20 ms stretch in the 120 ms before the R peak's QRS region.
    mag_raw = np.sqrt((tpl[_INDEPENDENT] ** 2).sum(axis=0))
    r_idx = pre - int(0.04 * fs) + int(np.argmax(mag_raw[pre - int(0.04 * fs) : pre + int(0.04 * fs)]))
    win = max(int(0.02 * fs), 2)
    lo_search = max(r_idx - int(0.14 * fs), 0)
    hi_search = max(r_idx - int(0.03 * fs), lo_search + win + 1)
    dv = np.abs(np.diff(tpl[_INDEPENDENT], axis=1)).sum(axis=0)
    flat = [dv[i : i + win].sum() for i in range(lo_search, hi_search - win)]
    i0 = lo_search + int(np.argmin(flat))
    base = tpl[:, i0 : i0 + win].mean(axis=1, keepdims=True)
    tpl = tpl - base
    mag = np.sqrt((tpl[_INDEPENDENT] ** 2).sum(axis=0))

    peak = float(mag[r_idx])
    q_on_stop = max(r_idx - int(0.12 * fs), 0)
    q_on = _crossing(mag, r_idx, q_on_stop, QRS_LEVEL * peak) or q_on_stop
    # The QRS may have several lobes (notched, RSR'): its offset is the last point above the level within
    # 160 ms of the peak that is followed by a sub-threshold stretch, found by walking out.
    q_off_stop = min(r_idx + int(0.16 * fs), mag.size - 1)
    q_off = _crossing(mag, r_idx, q_off_stop, QRS_LEVEL * peak) or q_off_stop
    qrs_ms = (q_off - q_on) / fs * 1000.0

    seg = tpl[:, q_on : q_off + 1]
    axis = math.degrees(math.atan2(float(seg[5].sum()), float(seg[0].sum())))

    # P wave: the largest magnitude 30-300 ms before the QRS onset (and after the previous beat's T wave,
    # 60 % of an RR before the R peak), if clearly above the noise floor.
    pr_ms = None
    p_lo = max(q_on - int(0.30 * fs), r_idx - int(0.6 * rr_mean * fs), 0)
    p_hi = q_on - int(0.03 * fs)
    noise = float(np.median(mag[i0 : i0 + win]))
    if p_hi > p_lo:
        p_peak = p_lo + int(np.argmax(mag[p_lo:p_hi]))
        p_amp = float(mag[p_peak])
        if p_amp > max(P_MIN_MV, 3 * noise):
            p_on = _crossing(mag, p_peak, max(p_peak - int(0.12 * fs), 0), P_LEVEL * p_amp)
            if p_on is not None:
                pr_ms = (q_on - p_on) / fs * 1000.0

    # T wave: the largest magnitude from 40 ms after the QRS offset to 70 % of the RR interval; QT only when
    # the T wave stands out of the noise (a flat T has no measurable end, as on paper).
    qt_ms = qtc_ms = None
    t_lo = q_off + int(0.04 * fs)
    t_hi = min(r_idx + int(0.7 * rr_mean * fs), mag.size - 1)
    if t_hi > t_lo:
        t_peak = t_lo + int(np.argmax(mag[t_lo:t_hi]))
        t_amp = float(mag[t_peak])
        if t_amp > max(T_MIN_MV, 5 * noise):
            t_end = _crossing(mag, t_peak, mag.size, T_LEVEL * t_amp)
            if t_end is not None:
                qt_ms = (t_end - q_on) / fs * 1000.0
                qtc_ms = qt_ms / math.sqrt(rr_mean)
    return Delineation(
        rate_bpm=60.0 / rr_mean,
        rr_s=rr_mean,
        n_beats=int(peaks.size),
        r_peaks=peaks,
        template=tpl,
        r_index=r_idx,
        q_on=q_on,
        q_off=q_off,
        qrs_ms=qrs_ms,
        axis_deg=axis,
        pr_ms=pr_ms,
        qt_ms=qt_ms,
        qtc_ms=qtc_ms,
    )
