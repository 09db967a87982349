"""ecgscale's readers on every real file shipped, against ``wfdb`` and ``pandas`` reading the same files.

Tolerance: **exact equality with wfdb's physical values rounded to float32.** ecgscale returns float32 mV;
``wfdb.rdrecord(physical=True)`` computes ``(digital - baseline) / gain`` in float64. For int16 samples, an
integer baseline and a float32-exact gain, the float32 subtraction is exact and the float32 division is the
correctly rounded quotient, which equals the float64 quotient rounded to float32 (53 ≥ 2·24 + 2 bits). So
``ours == float32(wfdb)`` bit for bit, and ``|ours − wfdb| ≤ 2⁻²⁴·|wfdb|`` (half a float32 ulp) is asserted too.
"""

from __future__ import annotations

import ast
import csv
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb

from ecgscale.data.readers import ptbxl_refs, read, read_record
from ecgscale.data.readers.base import parse_age, parse_sex
from ecgscale.data.readers.cinc2021 import parse_cinc_header, parse_comments
from ecgscale.data.records import STANDARD_LEADS

CINC_SOURCES = {"A": 10, "Q": 10, "JS": 20, "E": 10, "HR": 10, "S": 10}


def _assert_same_values(ours: np.ndarray, physical: np.ndarray, where: object) -> None:
    expected = physical.T
    assert ours.dtype == np.float32 and ours.shape == expected.shape, where
    np.testing.assert_array_equal(ours, expected.astype(np.float32), err_msg=str(where))
    assert np.all(np.abs(ours.astype(np.float64) - expected) <= 2.0**-24 * np.abs(expected)), where


def test_all_70_cinc_records_equal_wfdb(cinc_dir: Path):
    headers = sorted(cinc_dir.glob("*.hea"))
    prefixes = {}
    for hea in headers:
        p = hea.stem.rstrip("0123456789")
        prefixes[p] = prefixes.get(p, 0) + 1
    assert len(headers) == 70 and prefixes == CINC_SOURCES
    rates = set()
    for hea in headers:
        rec = read_record(hea)
        w = wfdb.rdrecord(str(hea.with_suffix("")), physical=True, return_res=64)
        _assert_same_values(rec.signal, w.p_signal, hea.name)
        assert rec.fs == w.fs and rec.n_samples == w.sig_len, hea.name
        assert rec.lead_names == tuple(w.sig_name) == STANDARD_LEADS, hea.name
        comments = parse_comments(w.comments)
        dx = [c.strip() for c in comments["dx"].split(",") if c.strip()]
        assert rec.codes == tuple(dict.fromkeys(dx)), hea.name
        assert rec.age == parse_age(comments.get("age")) and rec.sex == parse_sex(comments.get("sex")), hea.name
        assert rec.meta["format"] == "cinc2021"
        rates.add(rec.fs)
    assert rates == {500.0, 1000.0}


def test_cinc_header_quirks_are_read(cinc_dir: Path):
    """The real spellings: ``# Age: NaN`` (Georgia), lower-case ``mv`` units (PTB, PTB-XL), 115,200-sample PTB."""
    e1 = read_record(cinc_dir / "E00001.hea")
    assert e1.age is None and e1.sex == "F"
    s2 = parse_cinc_header(cinc_dir / "S0002.hea")
    assert s2.units[0] == "mv" and s2.fs == 1000 and s2.n_samples == 115_200
    assert read_record(cinc_dir / "S0002.hea").signal.shape == (12, 115_200)


def test_ptbxl_database_equals_pandas(ptbxl_root: Path):
    """Every row of the reconstructed ptbxl_database.csv: ids, patients, folds, scp_codes, age (300 = 90+), sex."""
    refs, skips = ptbxl_refs(ptbxl_root, fs=100)
    df = pd.read_csv(ptbxl_root / "ptbxl_database.csv")
    assert skips == [] and len(refs) == len(df) == 19_601
    assert sorted(df.strat_fold.unique().tolist()) == list(range(1, 10))  # fold 10 is withheld
    by_id = {r.extra["ecg_id"]: r for r in refs}
    assert len(by_id) == len(df)
    n_over_89 = 0
    for row in df.itertuples(index=False):
        e = by_id[row.ecg_id].extra
        scp = ast.literal_eval(row.scp_codes)
        assert e["patient_id"] == str(int(row.patient_id)), row.ecg_id
        assert e["strat_fold"] == row.strat_fold and e["split"] == ("val" if row.strat_fold == 9 else "train")
        assert e["scp_likelihood"] == scp and e["codes"] == list(scp), row.ecg_id
        if row.age == 300:  # PTB-XL's code for "90 or older": unknown exact age
            n_over_89 += 1
            assert e["age"] is None
        else:
            assert e["age"] == (None if math.isnan(row.age) else float(row.age)), row.ecg_id
        assert e["sex"] == {0: "M", 1: "F"}[row.sex], row.ecg_id
        assert str(by_id[row.ecg_id].path) == str(ptbxl_root / f"{row.filename_lr}.hea")
    assert n_over_89 == 259


def test_every_ptbxl_header(ptbxl_root: Path):
    """All 19,601 headers parse to 12 leads × 1000 samples at 100 Hz, gain 1000/mV, baseline 0, and every
    ``.dat`` has exactly those bytes, so every record takes the wfdb-free format-16 path; a sample of 200 headers
    is compared field by field with ``wfdb.rdheader``."""
    with open(ptbxl_root / "ptbxl_database.csv", encoding="utf-8", newline="") as fh:
        names = [row["filename_lr"] for row in csv.DictReader(fh)]
    assert len(names) == 19_601
    lead_spellings = set()
    for name in names:
        h = parse_cinc_header(ptbxl_root / f"{name}.hea")
        assert (h.fs, h.n_samples, h.n_leads) == (100.0, 1000, 12), name
        assert set(h.gains) == {1000.0} and set(h.baselines) == {0.0} and set(h.formats) == {"16"}, name
        assert h.units == ("mV",) * 12 and len(set(h.signal_files)) == 1, name
        assert (ptbxl_root / name).with_name(h.signal_files[0]).stat().st_size == 12 * 1000 * 2, name
        lead_spellings.add(h.lead_names)
    # PTB-XL writes AVR/AVL/AVF; the readers return the standard spelling (names matched case-insensitively)
    assert lead_spellings == {("I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6")}
    rng = np.random.default_rng(1)
    for i in rng.choice(len(names), 200, replace=False):
        base = ptbxl_root / names[i]
        ours, theirs = parse_cinc_header(f"{base}.hea"), wfdb.rdheader(str(base))
        assert (ours.fs, ours.n_samples) == (theirs.fs, theirs.sig_len)
        assert list(ours.gains) == list(theirs.adc_gain) and list(ours.baselines) == list(theirs.baseline)
        assert list(ours.lead_names) == list(theirs.sig_name) and list(ours.formats) == list(theirs.fmt)


@pytest.mark.parametrize("seed", [0])
def test_ptbxl_signals_equal_wfdb(ptbxl_root: Path, seed: int):
    """200 records (the first, the last and a seeded sample) read by ecgscale and by ``wfdb.rdrecord``."""
    refs, _ = ptbxl_refs(ptbxl_root, fs=100)
    rng = np.random.default_rng(seed)
    pick = sorted({0, len(refs) - 1, *rng.choice(len(refs), 198, replace=False).tolist()})
    for i in pick:
        ref = refs[i]
        rec = read(ref)
        w = wfdb.rdrecord(str(ref.path.with_suffix("")), physical=True, return_res=64)
        _assert_same_values(rec.signal, w.p_signal, ref.path.name)
        assert rec.fs == w.fs == 100 and rec.n_samples == w.sig_len == 1000
        assert [n.lower() for n in rec.lead_names] == [n.lower() for n in w.sig_name]
        assert rec.lead_names == STANDARD_LEADS
        assert rec.codes == tuple(ref.extra["codes"]) and rec.patient_id == ref.extra["patient_id"]
