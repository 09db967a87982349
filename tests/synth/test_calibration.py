"""Difficulty calibration (fast form of ``benchmarks/calibrate_synth.py``): the trivial summary-statistics
baseline must find the amplitude-defined labels but not the timing-defined ones, which need beat structure."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from ecgscale.synth import DEFAULT_SOURCES, synth_record
from ecgscale.synth.baseline import fit_predict_summary_logistic, summary_features


def test_summary_features_shape():
    x = np.random.default_rng(0).normal(size=(3, 12, 1000))
    assert summary_features(x, 100.0).shape == (3, 12 * 12)
    assert summary_features(x, 100.0, band_powers=True).shape == (3, 12 * 15)


def test_trivial_baseline_learns_axis_but_not_timing_labels():
    rng = np.random.default_rng(123)
    weights = np.array([s.weight for s in DEFAULT_SOURCES])
    x, labels = [], []
    for _ in range(700):
        profile = DEFAULT_SOURCES[int(rng.choice(len(DEFAULT_SOURCES), p=weights / weights.sum()))]
        rec = synth_record(rng, profile, fs=100, duration_s=10.0)
        sig = rec.signal - rec.signal.mean(axis=1, keepdims=True)
        x.append(sig / (sig.std(axis=1, keepdims=True) + 1e-6))  # like the cache's per-lead standardisation
        labels.append(set(rec.labels))
    x = np.stack(x)
    targets = {
        "LAD": lambda s: "LAD" in s,
        "long PR": lambda s: bool(s & {"IAVB", "LPR"}),
        "PAC": lambda s: "PAC" in s,
    }
    y = np.array([[f(s) for f in targets.values()] for s in labels], dtype=np.uint8)
    train, test = slice(0, 450), slice(450, None)
    prob = fit_predict_summary_logistic(x[train], y[train], x[test], 100.0)
    auc = {name: roc_auc_score(y[test, k], prob[:, k]) for k, name in enumerate(targets)}
    assert all(y[test, k].sum() >= 5 for k in range(len(targets))), y[test].sum(axis=0)
    assert auc["LAD"] > 0.85, auc  # learnable from amplitudes: the features do work
    assert auc["long PR"] < 0.8, auc  # a PR interval is timing, invisible to per-lead statistics
    assert auc["PAC"] < 0.8, auc  # one premature beat in ten seconds barely moves the statistics
