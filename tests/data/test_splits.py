"""Splits: patient grouping, stratification, reproducibility, official folds, leave-one-source-out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ecgscale.data.splits import SplitConfig, assign_splits, official_split_of_fold
from ecgscale.errors import ConfigError


def _data(n_patients: int = 300, seed: int = 0, sources=("a", "b", "c")):
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    prevalence = np.array([0.4, 0.2, 0.1, 0.05, 0.3])
    for p in range(n_patients):
        source = sources[p % len(sources)]
        y_patient = (rng.random(5) < prevalence).astype(np.uint8)
        for _ in range(int(rng.integers(1, 4))):
            rows.append({"source": source, "patient_id": f"p{p}" if p % 7 else ""})
            labels.append(y_patient)
    return pd.DataFrame(rows), np.array(labels)


def test_no_patient_in_two_splits_and_fractions():
    manifest, labels = _data()
    splits = assign_splits(manifest, labels, SplitConfig(method="stratified", seed=1))
    frame = manifest.assign(split=splits)
    with_pid = frame[frame.patient_id != ""]
    assert (with_pid.groupby(["source", "patient_id"])["split"].nunique() == 1).all()
    shares = pd.Series(splits).value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.8, abs=0.05)
    assert shares["val"] == pytest.approx(0.1, abs=0.04)
    assert shares["test"] == pytest.approx(0.1, abs=0.04)
    # stratified: every class keeps roughly its prevalence in every split
    for name in ("train", "val", "test"):
        prev = labels[splits == name].mean(axis=0)
        np.testing.assert_allclose(prev, labels.mean(axis=0), atol=0.07)
    # every source is represented in every split
    assert (frame.groupby("split")["source"].nunique() == 3).all()


def test_same_patient_id_in_two_sources_is_two_patients():
    manifest = pd.DataFrame({"source": ["a"] * 50 + ["b"] * 50, "patient_id": ["1"] * 50 + ["1"] * 50})
    labels = np.zeros((100, 2), np.uint8)
    labels[:50, 0] = 1
    labels[50:, 1] = 1
    splits = assign_splits(manifest, labels, SplitConfig(method="stratified"))
    assert splits[:50].tolist() == [splits[0]] * 50 and splits[50:].tolist() == [splits[50]] * 50


def test_reproducible_with_seed():
    manifest, labels = _data()
    a = assign_splits(manifest, labels, SplitConfig(method="stratified", seed=3))
    b = assign_splits(manifest, labels, SplitConfig(method="stratified", seed=3))
    c = assign_splits(manifest, labels, SplitConfig(method="stratified", seed=4))
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()


def test_without_patient_grouping_records_split_freely():
    manifest = pd.DataFrame({"source": ["a"] * 200, "patient_id": ["same"] * 200})
    labels = (np.random.default_rng(0).random((200, 3)) < 0.3).astype(np.uint8)
    grouped = assign_splits(manifest, labels, SplitConfig(method="stratified"))
    assert set(grouped) == {"train"}  # one patient: cannot be split
    free = assign_splits(manifest, labels, SplitConfig(method="stratified", group_by_patient=False))
    assert set(free) == {"train", "val", "test"}


def test_official_folds_and_auto():
    manifest = pd.DataFrame(
        {
            "source": ["ptbxl"] * 10,
            "patient_id": [str(i) for i in range(10)],
            "official_split": [official_split_of_fold(f) for f in range(1, 11)],
        }
    )
    labels = np.ones((10, 2), np.uint8)
    for method in ("official", "auto"):
        splits = assign_splits(manifest, labels, SplitConfig(method=method))
        assert splits.tolist() == ["train"] * 8 + ["val", "test"]
    assert official_split_of_fold("9") == "val" and official_split_of_fold(None) == ""
    with pytest.raises(ConfigError):
        assign_splits(manifest.assign(official_split=""), labels, SplitConfig(method="official"))


def test_leave_one_source_out():
    manifest, labels = _data()
    splits = assign_splits(manifest, labels, SplitConfig(method="source", test_sources=("b",)))
    is_b = (manifest.source == "b").to_numpy()
    assert (splits[is_b] == "test").all()
    assert set(splits[~is_b]) == {"train", "val"}
    val_share = (splits[~is_b] == "val").mean()
    assert val_share == pytest.approx(0.1 / 0.9, abs=0.05)
    with pytest.raises(ConfigError, match="not in the cache"):
        assign_splits(manifest, labels, SplitConfig(method="source", test_sources=("zzz",)))
    with pytest.raises(ConfigError, match="nothing is left"):
        assign_splits(manifest, labels, SplitConfig(method="source", test_sources=("a", "b", "c")))


def test_zero_fractions_and_tiny_inputs():
    manifest, labels = _data(60)
    splits = assign_splits(manifest, labels, SplitConfig(method="stratified", fractions=(0.9, 0.1, 0.0)))
    assert set(splits) == {"train", "val"}
    tiny = pd.DataFrame({"source": ["a", "a"], "patient_id": ["1", "2"]})
    assert assign_splits(tiny, np.ones((2, 1), np.uint8), SplitConfig()).tolist() == ["train", "train"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"method": "random"},
        {"fractions": (0.5, 0.5, 0.5)},
        {"fractions": (0.0, 0.5, 0.5)},
        {"fractions": (0.8, 0.2)},
        {"method": "source"},
        {"method": "stratified", "test_sources": ("a",)},
        {"seed": 1.5},
    ],
)
def test_split_config_validation(kwargs):
    with pytest.raises(ConfigError):
        SplitConfig(**kwargs)


def test_split_config_roundtrip():
    cfg = SplitConfig(method="source", test_sources="b", seed=5)
    assert cfg.test_sources == ("b",)
    assert SplitConfig.from_dict(cfg.to_dict()) == cfg
