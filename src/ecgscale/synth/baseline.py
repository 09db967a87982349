"""The trivial reference model of the benchmark: logistic regression on per-lead summary statistics.

It sees amplitudes and the dominant frequency of each lead but no beat morphology or timing, so a
classifier that scores no better than it has learned nothing about ECG structure. Used by
``benchmarks/calibrate_synth.py`` and the calibration test.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fit_predict_summary_logistic", "summary_features"]


def summary_features(x: np.ndarray, fs: float, *, band_powers: bool = False) -> np.ndarray:
    """Per-lead statistics of ``(B, leads, n)`` windows → ``(B, leads * 12)`` features (``+ leads * 3`` with bands).

    Mean, std, min, max, 7 percentiles and the dominant frequency (0.5–45 Hz) per lead. Relative band powers
    (0.5–3, 3–8, 8–15 Hz of 0.5–45 Hz) are optional: they turn the baseline into a crude QRS-width detector.
    """
    x = np.asarray(x, dtype=np.float64)
    pct = np.percentile(x, [1, 5, 25, 50, 75, 95, 99], axis=2)  # (7, B, leads)
    spec = np.abs(np.fft.rfft(x, axis=2)) ** 2
    freqs = np.fft.rfftfreq(x.shape[2], 1.0 / fs)
    band = (freqs >= 0.5) & (freqs <= 45.0)
    dom = freqs[band][np.argmax(spec[:, :, band], axis=2)]
    feats = [x.mean(axis=2), x.std(axis=2), x.min(axis=2), x.max(axis=2), *pct, dom]
    if band_powers:
        total = spec[:, :, band].sum(axis=2) + 1e-12
        for lo, hi in ((0.5, 3.0), (3.0, 8.0), (8.0, 15.0)):
            feats.append(spec[:, :, (freqs >= lo) & (freqs < hi)].sum(axis=2) / total)
    return np.concatenate(feats, axis=1)


def fit_predict_summary_logistic(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    fs: float,
    *,
    band_powers: bool = False,
    c: float = 0.5,
) -> np.ndarray:
    """Probabilities ``(B_test, K)`` of one standardised logistic regression per class (0.5 where a class has
    a single value in training)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    f_train = summary_features(x_train, fs, band_powers=band_powers)
    f_test = summary_features(x_test, fs, band_powers=band_powers)
    y_train = np.asarray(y_train)
    out = np.full((len(f_test), y_train.shape[1]), 0.5)
    for k in range(y_train.shape[1]):
        yk = y_train[:, k]
        if 0 < yk.sum() < len(yk):
            clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=c))
            clf.fit(f_train, yk)
            out[:, k] = clf.predict_proba(f_test)[:, 1]
    return out
