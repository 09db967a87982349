"""compute_metrics / tune_thresholds / bootstrap: against scikit-learn, undefined classes, determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, fbeta_score, roc_auc_score

from ecgscale.data.labels import LabelClass, LabelSpace, cinc2021_scored, cinc2021_weights
from ecgscale.metrics import (
    bootstrap_counts,
    challenge_metric,
    compute_metrics,
    metrics_to_jsonable,
    tune_thresholds,
    weighted_auroc_ap,
)


def _data(seed: int, n: int = 400, k: int = 26, signal: float = 0.35) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random((n, k)) < rng.uniform(0.03, 0.3, size=k)).astype(np.uint8)
    p = np.clip(y * signal + rng.random((n, k)) * 0.75, 0, 1)
    return y, p


def test_point_estimates_match_sklearn():
    y, p = _data(0)
    m = compute_metrics(y, p)
    assert m["macro_auroc"] == pytest.approx(roc_auc_score(y, p, average="macro"), abs=1e-12)
    assert m["micro_auroc"] == pytest.approx(roc_auc_score(y, p, average="micro"), abs=1e-12)
    assert m["macro_auprc"] == pytest.approx(average_precision_score(y, p, average="macro"), abs=1e-12)
    pred = p >= 0.5
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro", zero_division=0), abs=1e-12)
    assert m["macro_fbeta"] == pytest.approx(fbeta_score(y, pred, beta=2.0, average="macro", zero_division=0))
    assert m["n_classes_scored"] == 26 and m["classes_undefined"] == []
    row = m["per_label"][3]
    assert row["support"] == int(y[:, 3].sum())
    assert row["auroc"] == pytest.approx(roc_auc_score(y[:, 3], p[:, 3]))
    assert row["threshold"] == 0.5
    assert m["challenge_metric"] is None  # no label space given


def test_point_estimates_match_sklearn_per_class_with_ties():
    """compute_metrics scores classes from one sort (not sklearn); every class must still equal sklearn's number."""
    rng = np.random.default_rng(11)
    for trial in range(8):
        n, k = int(rng.integers(3, 300)), int(rng.integers(1, 9))
        y = (rng.random((n, k)) < rng.uniform(0.02, 0.6, size=k)).astype(np.uint8)
        p = rng.random((n, k)).round(int(rng.integers(1, 4)))  # many tied scores
        if trial % 2:
            p = p.astype(np.float32)
        m = compute_metrics(y, p)
        for j, row in enumerate(m["per_label"]):
            if 0 < y[:, j].sum() < n:
                assert row["auroc"] == pytest.approx(roc_auc_score(y[:, j], p[:, j]), abs=1e-12), (trial, j)
            else:
                assert np.isnan(row["auroc"])
            if y[:, j].any():
                assert row["auprc"] == pytest.approx(average_precision_score(y[:, j], p[:, j]), abs=1e-12), (trial, j)
            else:
                assert np.isnan(row["auprc"])
        if 0 < y.sum() < y.size:
            assert m["micro_auroc"] == pytest.approx(roc_auc_score(y.ravel(), p.ravel()), abs=1e-12), trial


def test_undefined_classes_are_nan_counted_and_excluded_never_a_crash():
    y, p = _data(1, k=5)
    y[:, 1] = 0  # no positives
    y[:, 3] = 1  # no negatives
    m = compute_metrics(y, p, n_bootstrap=20)
    rows = m["per_label"]
    assert np.isnan(rows[1]["auroc"]) and np.isnan(rows[1]["auprc"])
    assert np.isnan(rows[3]["auroc"]) and rows[3]["auprc"] == pytest.approx(1.0)
    assert m["n_classes_scored"] == 3 and m["classes_undefined"] == ["class_1", "class_3"]
    defined = [0, 2, 4]
    assert m["macro_auroc"] == pytest.approx(np.mean([roc_auc_score(y[:, j], p[:, j]) for j in defined]))
    assert np.isfinite(m["ci"]["macro_auroc"]).all()
    assert np.isnan(rows[1]["auroc_ci"]).all()


def test_thresholds_scalar_and_per_class():
    y, p = _data(2, k=4)
    th = np.array([0.3, 0.5, 0.7, 0.9])
    m = compute_metrics(y, p, thresholds=th)
    expected = [f1_score(y[:, j], p[:, j] >= th[j], zero_division=0) for j in range(4)]
    assert m["macro_f1"] == pytest.approx(np.mean(expected))
    assert [r["threshold"] for r in m["per_label"]] == th.tolist()
    assert compute_metrics(y, p, thresholds=0.3)["thresholds"] == [0.3] * 4
    with pytest.raises(ValueError, match="thresholds"):
        compute_metrics(y, p, thresholds=[0.5, 0.5])


def test_input_validation_names_the_problem():
    y, p = _data(3, k=3)
    with pytest.raises(ValueError, match="shape"):
        compute_metrics(y, p[:, :2])
    with pytest.raises(ValueError, match="0/1"):
        compute_metrics(y * 3, p)
    bad = p.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        compute_metrics(y, bad)
    with pytest.raises(ValueError, match="label_space"):
        compute_metrics(y, p, label_space=cinc2021_scored())


def test_tuned_thresholds_improve_f_on_the_data_they_were_tuned_on():
    y, p = _data(4, n=600, k=8, signal=0.2)
    for beta in (1.0, 2.0):
        th = tune_thresholds(y, p, beta=beta)
        assert th.shape == (8,)
        for j in range(8):
            tuned = fbeta_score(y[:, j], p[:, j] >= th[j], beta=beta, zero_division=0)
            default = fbeta_score(y[:, j], p[:, j] >= 0.5, beta=beta, zero_division=0)
            assert tuned >= default - 1e-12
            # No other threshold on this data does better (exhaustive check over the distinct scores).
            pred = p[:, j][:, None] >= np.unique(p[:, j])[None, :]
            tp = (pred & (y[:, j][:, None] == 1)).sum(axis=0)
            f_all = (1 + beta**2) * tp / (beta**2 * y[:, j].sum() + pred.sum(axis=0))
            assert tuned == pytest.approx(f_all.max(), abs=1e-12)
        m_tuned = compute_metrics(y, p, thresholds=th, beta=beta)
        assert m_tuned["macro_fbeta"] >= compute_metrics(y, p, beta=beta)["macro_fbeta"]
    y0 = y.copy()
    y0[:, 2] = 0
    assert tune_thresholds(y0, p)[2] == 0.5  # nothing to tune on


def test_weighted_auroc_ap_equals_sklearn_on_resampled_records():
    rng = np.random.default_rng(5)
    for trial in range(10):
        n = int(rng.integers(2, 120))
        y = rng.random(n) < rng.uniform(0.05, 0.7)
        s = rng.random(n).round(int(rng.integers(1, 3)))  # ties
        w = bootstrap_counts(n, 6, rng)
        auroc, ap = weighted_auroc_ap(y, s, w)
        for b in range(6):
            idx = np.repeat(np.arange(n), w[b])
            yb, sb = y[idx], s[idx]
            if 0 < yb.sum() < len(yb):
                assert auroc[b] == pytest.approx(roc_auc_score(yb, sb), abs=1e-12), trial
            else:
                assert np.isnan(auroc[b])
            if yb.any():
                assert ap[b] == pytest.approx(average_precision_score(yb, sb), abs=1e-12), trial
            else:
                assert np.isnan(ap[b])
        unit, unit_ap = weighted_auroc_ap(y, s, np.ones((1, n)))
        if 0 < y.sum() < n:
            assert unit[0] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
            assert unit_ap[0] == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_bootstrap_counts_resample_every_record_slot():
    w = bootstrap_counts(50, 7, np.random.default_rng(0))
    assert w.shape == (7, 50) and (w.sum(axis=1) == 50).all()


def test_bootstrap_is_deterministic_and_contains_the_estimate():
    y, p = _data(6, n=300)
    space = cinc2021_scored()
    a = compute_metrics(y, p, label_space=space, n_bootstrap=150, seed=11)
    b = compute_metrics(y, p, label_space=space, n_bootstrap=150, seed=11)
    c = compute_metrics(y, p, label_space=space, n_bootstrap=150, seed=12)
    assert json.dumps(metrics_to_jsonable(a)) == json.dumps(metrics_to_jsonable(b))
    assert a["ci"] != c["ci"]
    for name in ("macro_auroc", "micro_auroc", "macro_auprc", "macro_f1", "macro_fbeta", "challenge_metric"):
        lo, hi = a["ci"][name]
        assert lo <= a[name] <= hi, name
        assert hi - lo < 0.2, name
    for g, entry in a["per_group"].items():
        lo, hi = entry["auroc_ci"]
        assert lo <= entry["auroc"] <= hi, g


def test_challenge_metric_and_groups_with_the_cinc_space():
    y, p = _data(7)
    space = cinc2021_scored()
    m = compute_metrics(y, p, label_space=space, thresholds=0.4)
    keys, _ = cinc2021_weights()
    assert m["challenge_metric"] == pytest.approx(challenge_metric(y, p >= 0.4, keys), abs=1e-12)
    assert [r["abbreviation"] for r in m["per_label"]] == space.abbreviations
    for group, idx in space.groups.items():
        entry = m["per_group"][group]
        assert entry["n_classes"] == len(idx)
        assert entry["auroc"] == pytest.approx(np.mean([m["per_label"][j]["auroc"] for j in idx]))
    # A space that is not the challenge's has no challenge metric.
    other = LabelSpace("toy", [LabelClass(str(j), (str(j),), f"C{j}", f"c{j}", None) for j in range(26)])
    assert compute_metrics(y, p, label_space=other)["challenge_metric"] is None


def test_metrics_to_jsonable_is_strict_json():
    y, p = _data(8, k=3)
    y[:, 0] = 0
    m = metrics_to_jsonable(compute_metrics(y, p, n_bootstrap=5))
    text = json.dumps(m, allow_nan=False)
    assert json.loads(text)["per_label"][0]["auroc"] is None


def test_micro_auroc_bootstrap_path_equals_sklearn_on_resampled_records():
    from ecgscale.metrics.classification import _RankedScores

    y, p = _data(9, n=80, k=5)
    p = p.round(2)
    ranked = _RankedScores.build(y.ravel(), p.ravel(), record_of=np.repeat(np.arange(80), 5))
    w = bootstrap_counts(80, 4, np.random.default_rng(0))
    auroc, _ = ranked.score(w.astype(np.float64))
    for b in range(4):
        idx = np.repeat(np.arange(80), w[b])
        assert auroc[b] == pytest.approx(roc_auc_score(y[idx], p[idx], average="micro"), abs=1e-12)


def test_bootstrap_intervals_are_the_percentiles_of_naively_resampled_metrics():
    """The CIs equal the 2.5/97.5 percentiles of the metrics recomputed with scikit-learn (and the challenge
    metric) on each resample, drawn with the same generator: the fast weighted path changes nothing."""
    y, p = _data(10, n=200)
    space = cinc2021_scored()
    keys, _ = cinc2021_weights()
    n_boot, seed = 40, 3
    m = compute_metrics(y, p, label_space=space, n_bootstrap=n_boot, seed=seed)
    w = bootstrap_counts(len(y), n_boot, np.random.default_rng(seed))
    macro_auroc, macro_f1, challenge = [], [], []
    for b in range(n_boot):
        idx = np.repeat(np.arange(len(y)), w[b])
        yb, pb = y[idx], p[idx]
        defined = [j for j in range(yb.shape[1]) if 0 < yb[:, j].sum() < len(yb)]
        macro_auroc.append(np.mean([roc_auc_score(yb[:, j], pb[:, j]) for j in defined]))
        f1 = [
            f1_score(yb[:, j], pb[:, j] >= 0.5, zero_division=0)
            for j in range(yb.shape[1])
            if yb[:, j].any() or (pb[:, j] >= 0.5).any()  # 0/0 is NaN, left out of the mean
        ]
        macro_f1.append(np.mean(f1))
        challenge.append(challenge_metric(yb, pb >= 0.5, keys))
    for name, samples in (("macro_auroc", macro_auroc), ("macro_f1", macro_f1), ("challenge_metric", challenge)):
        assert m["ci"][name] == pytest.approx(np.percentile(samples, [2.5, 97.5]), abs=1e-12), name
