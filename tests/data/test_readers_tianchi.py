"""Tianchi (Hefei) reader: exact units, derived limb leads, label and class files, discovery."""

from __future__ import annotations

import numpy as np
import pytest

from ecgscale.data import labels
from ecgscale.data.readers import (
    default_label_space,
    derive_limb_leads,
    discover,
    read,
    read_record,
    read_tianchi,
    read_tianchi_classes,
    read_tianchi_labels,
)
from ecgscale.data.records import STANDARD_LEADS
from ecgscale.errors import RecordError


def test_units_and_derived_leads_exact(tianchi_specimens):
    rec = read_record(tianchi_specimens.records["100"])
    u = tianchi_specimens.units["100"].astype(np.float64) * 0.00488
    assert rec.lead_names == STANDARD_LEADS and rec.fs == 500.0 and rec.signal.shape == (12, 5000)
    lead = {name: rec.signal[i].astype(np.float64) for i, name in enumerate(STANDARD_LEADS)}
    tol = dict(rtol=0, atol=1e-6)  # float32 storage of values up to ~3 mV
    np.testing.assert_allclose(lead["I"], u[0], **tol)
    np.testing.assert_allclose(lead["II"], u[1], **tol)
    np.testing.assert_allclose(np.stack([lead[f"V{i}"] for i in range(1, 7)]), u[2:], **tol)
    np.testing.assert_allclose(lead["III"], u[1] - u[0], **tol)
    np.testing.assert_allclose(lead["aVR"], -(u[0] + u[1]) / 2, **tol)
    np.testing.assert_allclose(lead["aVL"], u[0] - u[1] / 2, **tol)
    np.testing.assert_allclose(lead["aVF"], u[1] - u[0] / 2, **tol)
    # Einthoven and Goldberger identities hold on the returned record
    np.testing.assert_allclose(lead["I"] + lead["III"], lead["II"], **tol)
    np.testing.assert_allclose(lead["aVR"] + lead["aVL"] + lead["aVF"], 0.0, **tol)


def test_derive_limb_leads_in_float64_is_exact():
    rng = np.random.default_rng(0)
    eight = rng.integers(-1000, 1000, (8, 100)).astype(np.float64)
    twelve = derive_limb_leads(eight)
    i, ii = eight[0], eight[1]
    assert np.array_equal(twelve[[0, 1, 6, 7, 8, 9, 10, 11]], eight)
    assert np.array_equal(twelve[2], ii - i) and np.array_equal(twelve[3], -(i + ii) / 2)
    assert np.array_equal(twelve[4], i - ii / 2) and np.array_equal(twelve[5], ii - i / 2)


def test_labels_from_the_label_file(tianchi_specimens):
    r100 = read_record(tianchi_specimens.records["100"])  # label file found in the parent folder
    assert (r100.age, r100.sex, r100.codes) == (56.0, "F", ("窦性心律", "电轴左偏"))
    assert r100.meta["label_file"] == str(tianchi_specimens.label_file.resolve())
    r101 = read_record(tianchi_specimens.records["101"])
    assert (r101.age, r101.sex, r101.codes) == (None, None, ("心房颤动", "完全性右束支传导阻滞"))  # de-duplicated
    table = read_tianchi_labels(tianchi_specimens.label_file)
    assert set(table) == {"100", "101", "102"} and table["102"].names[-1] == "未知的诊断"
    assert read_tianchi_classes(tianchi_specimens.classes_file)[:2] == ["窦性心律", "窦性心动过缓"]
    unlabelled = read_record(tianchi_specimens.root / "hf_round2_train" / "900.txt")
    assert unlabelled.codes == () and unlabelled.signal.shape == (12, 5000)


def test_gb18030_label_file(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "7.txt").write_text("I II V1 V2 V3 V4 V5 V6\n" + "1 2 3 4 5 6 7 8\n" * 3)
    (tmp_path / "hf_round1_label.txt").write_bytes("7.txt\t33\tMALE\t窦性心动过缓\n".encode("gb18030"))
    rec = read_tianchi(tmp_path / "r" / "7.txt")
    assert rec.codes == ("窦性心动过缓",) and rec.sex == "M" and rec.age == 33.0
    np.testing.assert_allclose(rec.signal[:, 0], derive_limb_leads(np.arange(1, 9)[:, None] * 0.00488)[:, 0], rtol=1e-6)


def test_bad_label_file_rows(tmp_path):
    bad = tmp_path / "labels.txt"
    bad.write_text("1.txt\t30\tMALE\tA\n2.txt\t30\tX\tB\n", encoding="utf-8")
    with pytest.raises(RecordError, match="line 2: gender 'X'") as exc:
        read_tianchi_labels(bad)
    assert exc.value.reason == "bad_labels"


def test_discover_and_default_space(tianchi_specimens):
    d = discover(tianchi_specimens.root)
    assert sorted(r.record_id for r in d.refs) == ["100", "101", "102"]
    assert {r.format for r in d.refs} == {"tianchi"} and {r.source for r in d.refs} == {"tianchi"}
    assert [(s.path.name, s.reason) for s in d.skipped] == [("900.txt", "no_labels"), ("901.txt", "no_labels")]
    assert "hf_round1_subA.txt has no arrhythmia names" in d.skipped[1].message
    subject = read_record(tianchi_specimens.root / "hf_round2_train" / "901.txt")
    assert (subject.age, subject.sex, subject.codes) == (40.0, "M", ())
    by_id = {r.record_id: r for r in d.refs}
    rec = read(by_id["102"])
    assert rec.codes == ("T波改变", "ST段改变", "未知的诊断") and rec.age == 70.0
    np.testing.assert_allclose(rec.signal[6:], tianchi_specimens.units["102"][2:] * 0.00488, atol=1e-6)
    single = discover(tianchi_specimens.records["101"])
    assert single.skipped == [] and single.refs[0].extra["codes"] == ["心房颤动", "完全性右束支传导阻滞"]
    space = default_label_space(d)
    assert space.name == "tianchi" and space.keys == read_tianchi_classes(tianchi_specimens.classes_file)
    assert space.unknown(rec.codes) == ["未知的诊断"]
    assert space.encode(rec.codes).sum() == 2


def test_tianchi_into_the_cinc2021_space(tianchi_specimens):
    space = labels.cinc2021_scored(aliases=labels.tianchi_to_snomed())
    assert space.keys == labels.cinc2021_scored().keys and space.name == "cinc2021"
    rec = read_record(tianchi_specimens.records["101"])
    hot = space.encode(rec.codes)
    assert [space.abbreviations[i] for i in np.flatnonzero(hot)] == ["AF", "RBBB"]
    codes = labels.translate_codes(rec.codes, labels.tianchi_to_snomed())
    assert codes == ("164889003", "713427006")
    assert np.array_equal(labels.cinc2021_scored().encode(codes), hot)
