"""Labels agree with the generating parameters and the measurements, and follow the clinical rules."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from ecgscale.data.labels import LABEL_GROUPS, cinc2021_scored
from ecgscale.errors import ConfigError
from ecgscale.synth import DEFAULT_SOURCES, resolve_classes, synth_record


def _with(pool, label):
    return [r for r in pool if label in r.labels]


def _shown(r) -> set[str]:
    """Every finding the record shows: its coded labels plus those the source left uncoded (coding noise)."""
    return set(r.labels) | set(r.measured["uncoded"])


def test_pool_covers_every_label_group(record_pool):
    seen = Counter(lab for r in record_pool for lab in r.labels)
    for group, members in LABEL_GROUPS.items():
        assert any(seen[m] for m in members), f"no label of group {group} in the pool"
    assert len([a for a in cinc2021_scored().abbreviations if seen[a]]) >= 20


def test_codes_are_scored_cinc_codes_matching_labels(record_pool):
    space = cinc2021_scored()
    for r in record_pool:
        assert len(r.codes) == len(r.labels)
        for code, lab in zip(r.codes, r.labels, strict=True):
            i = space.index_of(code)
            assert i is not None and space.classes[i].abbreviation == lab


def test_af_has_no_p_waves_irregular_rr_and_no_sinus_labels(record_pool):
    af = _with(record_pool, "AF")
    assert af
    for r in af:
        assert r.params.rhythm == "af"
        assert r.measured["pr_ms"] is None
        assert r.measured["rr_cv"] > 0.06
        assert not {"NSR", "SB", "STach", "SA", "AFL", "PR", "PAC", "IAVB", "LPR"} & set(r.labels)
    sinus_cv = [
        r.measured["rr_cv"]
        for r in record_pool
        if r.labels[0] == "NSR" and "PAC" not in r.labels and "PVC" not in r.labels and "SA" not in r.labels
    ]
    assert np.median(sinus_cv) < 0.05


def test_rate_labels_follow_measured_rate(record_pool):
    for r in record_pool:
        rate = r.measured["rate_bpm"]
        labs = set(r.labels)
        if "SB" in labs:
            assert rate < 60 and r.params.rhythm == "sinus"
        if "STach" in labs:
            assert rate > 100 and r.params.rhythm == "sinus"
        if "NSR" in labs:
            assert 60 <= rate <= 100
        if "Brady" in labs:
            assert rate < 60
        if r.params.rhythm == "sinus":
            assert len(labs & {"NSR", "SB", "STach", "Brady"}) == 1


def test_axis_labels_follow_measured_axis(record_pool):
    n_lad = n_rad = 0
    for r in record_pool:
        axis = r.measured["axis_deg"]
        if "LAD" in r.labels:
            n_lad += 1
            assert -90 <= axis < -30
        if "RAD" in r.labels:
            n_rad += 1
            assert 90 < axis <= 180
        if r.params.rhythm != "paced" and -90 <= axis < -30:
            assert "LAD" in _shown(r)
    assert n_lad and n_rad
    # borderline cases exist on both sides of -30 degrees
    axes = np.array([r.measured["axis_deg"] for r in record_pool])
    assert ((axes > -40) & (axes < -30)).any() and ((axes >= -30) & (axes < -20)).any()


def test_interval_labels(record_pool):
    for r in record_pool:
        pr = r.measured["pr_ms"]
        if {"IAVB", "LPR"} & _shown(r):
            assert pr is not None and pr > 200
        elif r.params.rhythm == "sinus":
            assert pr is not None and pr <= 200
        limit = 460 if r.params.sex == "F" else 450
        assert ("LQT" in _shown(r)) == (r.measured["qtc_ms"] > limit)
        if "LQRSV" in r.labels:
            assert r.measured["limb_p2p_max_mv"] < 0.5 or r.measured["precordial_p2p_max_mv"] < 1.0


def test_exclusivity_rules(record_pool):
    for r in record_pool:
        labs = set(r.labels)
        assert not ({"RBBB", "LBBB"} <= labs)
        assert len(labs & {"RBBB", "LBBB", "IRBBB", "NSIVCB", "BBB"}) <= 1
        assert len(labs & {"AF", "AFL", "PR"}) <= 1
        if labs & {"AF", "AFL"}:
            assert "NSR" not in labs
        if "LAnFB" in labs:
            assert "LBBB" not in labs
        if "PR" in labs:
            assert not labs & {"LAD", "RAD", "QAb", "PRWP"}
        if "QAb" in labs or "PRWP" in labs:
            assert not labs & {"LBBB", "PR"}


def test_ectopic_beats_are_episodic_and_labelled(record_pool):
    pvc = _with(record_pool, "PVC")
    assert pvc
    assert all(r.measured["n_pvc"] >= 1 for r in pvc)
    assert any(r.measured["n_pvc"] == 1 for r in pvc)  # a single PVC in the record
    for r in record_pool:
        if "PVC" not in _shown(r):
            assert r.measured["n_pvc"] == 0


def test_coding_noise_only_drops_findings_never_adds_or_touches_rhythm(record_pool):
    n_uncoded = 0
    for r in record_pool:
        assert not set(r.measured["uncoded"]) & set(r.labels)
        assert set(r.measured["uncoded"]) <= set(r.params.omit)
        assert not set(r.measured["uncoded"]) & {"NSR", "SB", "STach", "Brady", "SA", "AF", "AFL", "PR"}
        n_uncoded += len(r.measured["uncoded"])
    assert 0 < n_uncoded < 0.2 * sum(len(r.labels) for r in record_pool)


def test_classes_restricts_records():
    allowed = resolve_classes(["NSR", "af", "164909002"])  # abbreviations (any case) or codes
    assert allowed == {"NSR", "AF", "LBBB"}
    rng = np.random.default_rng(8)
    for i in range(30):
        rec = synth_record(rng, DEFAULT_SOURCES[i % 4], fs=250, duration_s=6.0, allowed=allowed)
        assert rec.labels and set(rec.labels) | set(rec.measured["uncoded"]) <= allowed


def test_unknown_class_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown class 'XYZ'"):
        resolve_classes(["NSR", "XYZ"])
