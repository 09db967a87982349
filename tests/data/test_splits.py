"""Splits: patient grouping, stratification, reproducibility, official folds, leave-one-source-out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ecgscale.data.splits import SplitConfig, assign_splits, official_split_of_fold
from ecgscale.errors import ConfigError

PREVALENCE = np.array([0.4, 0.2, 0.1, 0.05, 0.02])
N_RARE = 10  # patients with the planted rare class 5: 1 expected in each 10 % split


def _data(n_patients: int = 600, seed: int = 0, sources=("a", "b", "c")):
    """Patients with 1-3 records each (same labels), 5 classes of known prevalence plus a rare class planted on
    exactly ``N_RARE`` patients; every 7th patient has no id (its records are independent groups)."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    rare = set(rng.choice([p for p in range(n_patients) if p % 7], size=N_RARE, replace=False).tolist())
    for p in range(n_patients):
        source = sources[p % len(sources)]
        y_patient = np.append(rng.random(len(PREVALENCE)) < PREVALENCE, p in rare).astype(np.uint8)
        for _ in range(int(rng.integers(1, 4))):
            rows.append({"source": source, "patient_id": f"p{p}" if p % 7 else ""})
            labels.append(y_patient)
    return pd.DataFrame(rows), np.array(labels)


def _groups(manifest: pd.DataFrame) -> np.ndarray:
    """The stratification unit: a patient within its source, or the record itself when it has no patient id."""
    pid = manifest.patient_id.to_numpy()
    own = np.array([f"record{i}" for i in range(len(manifest))], dtype=object)
    return np.where(pid != "", manifest.source.to_numpy() + "/" + pid, own)


def _assert_stratified(manifest: pd.DataFrame, labels: np.ndarray, splits: np.ndarray, fractions: dict[str, float]):
    """What iterative stratification guarantees, with tolerances relative to each class's prevalence.

    * no patient (group) in two splits;
    * per class and split, the number of positive patients is its share of the class's positive patients within
      5 % of that expectation plus 2 patients for rounding (a random, unstratified split misses this: for a class
      with 240 positive patients a 10 % split has a standard deviation of 4.6 patients);
    * every class is in every split whose expected count of its positive patients is at least 1;
    * per class and split, the prevalence among records stays within a relative tolerance of the global one that
      widens for small counts: ``|p_split / p - 1| <= 0.1 + 2.5 / sqrt(expected positive records)`` (patients
      bring 1-3 records each, so record counts are noisier than patient counts);
    * every source is in every split, its patients' share within 5 % + 2 patients of the expectation.
    """
    groups = _groups(manifest)
    frame = pd.DataFrame(labels).assign(group=groups, split=splits, source=manifest.source.to_numpy())
    per_group = frame.groupby("group").agg(
        {**{c: "max" for c in range(labels.shape[1])}, "split": "nunique", "source": "first"}
    )
    assert (per_group["split"] == 1).all(), "a patient has records in two splits"
    group_split = frame.groupby("group")["split"].first()
    per_group["split"] = group_split
    pos_total = per_group[list(range(labels.shape[1]))].sum().to_numpy()
    n_groups = len(per_group)
    for name, f in fractions.items():
        in_split = per_group[per_group.split == name]
        expected = f * pos_total
        got = in_split[list(range(labels.shape[1]))].sum().to_numpy()
        np.testing.assert_array_less(np.abs(got - expected), 0.05 * expected + 2.0 + 1e-9, err_msg=f"{name} patients")
        must_have = expected >= 1.0
        assert (got[must_have] >= 1).all(), f"{name}: classes {np.flatnonzero(must_have & (got == 0))} missing"
        rec = splits == name
        exp_records = labels.sum(axis=0) * rec.mean()
        rel = np.abs(labels[rec].sum(axis=0) / exp_records - 1.0)
        np.testing.assert_array_less(rel, 0.1 + 2.5 / np.sqrt(exp_records), err_msg=f"{name} record prevalence")
        src_expected = f * per_group.source.value_counts()
        src_got = in_split.source.value_counts().reindex(src_expected.index, fill_value=0)
        assert (src_got >= 1).all()
        assert (np.abs(src_got - src_expected) <= 0.05 * src_expected + 2.0).all(), f"{name} sources"
        assert len(in_split) == pytest.approx(f * n_groups, abs=2.0 + 0.01 * n_groups)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_patient_in_two_splits_and_every_class_stratified(seed: int):
    manifest, labels = _data(seed=seed)
    splits = assign_splits(manifest, labels, SplitConfig(method="stratified", seed=seed))
    _assert_stratified(manifest, labels, splits, {"train": 0.8, "val": 0.1, "test": 0.1})
    # The rare class (10 patients) is in every split.
    assert all(labels[splits == name, 5].any() for name in ("train", "val", "test"))


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
    rest = ~is_b
    _assert_stratified(
        manifest[rest].reset_index(drop=True), labels[rest], splits[rest], {"train": 0.8 / 0.9, "val": 0.1 / 0.9}
    )
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
