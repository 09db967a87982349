"""CinC 2021 reader: exact values against wfdb and scipy on every rate and header quirk of the real files."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import wfdb

from ecgscale.data.readers import discover, parse_cinc_header, read, read_cinc2021, read_record, read_wfdb_record
from ecgscale.data.records import STANDARD_LEADS
from ecgscale.data.writers import write_cinc2021
from ecgscale.errors import RecordError


@pytest.mark.parametrize("rid", ["A0001", "A0002", "I0001", "S0001", "E0001"])
def test_values_match_wfdb_rdrecord(cinc_specimens, rid):
    hea = cinc_specimens.records[rid]
    rec = read_record(hea)
    ref = wfdb.rdrecord(str(hea.with_suffix("")))
    assert rec.fs == ref.fs and rec.n_samples == ref.sig_len and rec.n_leads == ref.n_sig
    assert rec.signal.dtype == np.float32 and rec.signal.shape == (12, ref.sig_len)
    np.testing.assert_array_equal(rec.signal, ref.p_signal.T.astype(np.float32))
    assert rec.lead_names == STANDARD_LEADS


def test_values_are_the_written_millivolts(cinc_specimens):
    for rid in ("A0001", "I0001", "E0001"):
        rec = read_record(cinc_specimens.records[rid])
        np.testing.assert_allclose(rec.signal, cinc_specimens.signals[rid], atol=1e-6)
    # S0001: gain 500 and baseline 12 on lead I only
    rec = read_record(cinc_specimens.records["S0001"])
    written = cinc_specimens.signals["S0001"].astype(np.float64)
    np.testing.assert_allclose(rec.signal[1:], written[1:], atol=1e-3 + 1e-6)
    np.testing.assert_allclose(rec.signal[0], (np.rint(written[0] * 500) - 12) / 500, atol=1e-6)


def test_header_fields_and_quirks(cinc_specimens):
    a1 = read_record(cinc_specimens.records["A0001"])
    assert (a1.record_id, a1.fs, a1.n_samples, a1.age, a1.sex) == ("A0001", 500.0, 5000, 74.0, "M")
    assert a1.codes == ("59118001", "164889003") and a1.source == "cpsc_2018"
    assert a1.duration_s == 10.0 and a1.meta["format"] == "cinc2021" and "flat_leads" not in a1.meta

    a2 = read_record(cinc_specimens.records["A0002"])  # "# Age: NaN", "# Sex: F", "426783006,,164934002,426783006,"
    assert a2.age is None and a2.sex == "F"
    assert a2.codes == ("426783006", "164934002")
    assert a2.lead_names[3] == "aVR"  # written as AVR

    i1 = read_record(cinc_specimens.records["I0001"])
    assert (i1.fs, i1.n_samples, i1.age, i1.sex, i1.source) == (257.0, 257 * 60, None, None, "st_petersburg_incart")
    assert i1.codes == ("164884008", "999999999")  # unknown codes are kept
    e1 = read_record(cinc_specimens.records["E0001"])
    assert e1.source == "georgia_like" and e1.age == 51.5 and e1.sex == "F"


def test_parse_header_grammar(tmp_path):
    hea = tmp_path / "X.hea"
    hea.write_text(
        "X 2 500/1000 4 05-Feb-2020 11:39:16\n"
        "X.mat 16+24 1000.0(0)/mV 16 0 28 -1716 0 I   # trailing comment\n"
        "X.mat 16+24 0(3)/uV 16 5 7 2029 0 v1\n"
        "#Age:  65 \n# sex: male\n#Dx: 1, 2 ,\n"
    )
    h = parse_cinc_header(hea)
    assert (h.record_id, h.fs, h.n_samples, h.n_leads) == ("X", 500.0, 4, 2)
    assert h.gains == (1000.0, 200.0)  # zero gain means WFDB's default 200
    assert h.baselines == (0.0, 3.0) and h.units == ("mV", "uV") and h.byte_offsets == (24, 24)
    assert h.lead_names == ("I", "v1") and h.age == 65.0 and h.sex == "M" and h.codes == ("1", "2")
    hea.write_bytes(hea.read_bytes().replace(b"\n", b"\r\n"))  # Windows line ends
    assert parse_cinc_header(hea).lead_names == ("I", "v1") and parse_cinc_header(hea).codes == ("1", "2")


def test_units_and_baseline_conversion(tmp_path):
    hea = write_cinc2021(tmp_path, "U", np.array([[0.1, 0.2], [0.3, -0.4]]), 500, lead_names=("I", "II"))
    text = hea.read_text().replace(" 1000/mV ", " 1000(5)/uV ", 1)
    hea.write_text(text)
    rec = read_record(hea)
    np.testing.assert_allclose(rec.signal[0], [(100 - 5) / 1e6, (200 - 5) / 1e6], rtol=1e-6)
    np.testing.assert_allclose(rec.signal[1], [0.3, -0.4], rtol=1e-6)
    ref = wfdb.rdrecord(str(hea.with_suffix("")))
    np.testing.assert_allclose(rec.signal[0], ref.p_signal[:, 0] / 1000, rtol=1e-6)


def test_flat_lead_is_valid_and_flagged(tmp_path):
    sig = np.ones((12, 500), dtype=np.float32)
    sig[4] = 0.0
    sig[9] = 0.0
    rec = read_record(write_cinc2021(tmp_path, "F1", sig, 500))
    assert rec.meta["flat_leads"] == "aVL,V4"


def test_thirty_minute_incart_record(tmp_path):
    n = 257 * 1800
    sig = np.tile(np.linspace(-1, 1, 257, dtype=np.float32), (12, 1800))
    hea = write_cinc2021(tmp_path / "training" / "st_petersburg_incart" / "g", "I0075", sig, 257)
    rec = read_record(hea.with_suffix(".mat"))  # the .mat path works too
    assert rec.signal.shape == (12, n) and rec.duration_s == 1800.0
    np.testing.assert_allclose(rec.signal[:, -257:], np.rint(sig[:, :257] * 1000) / 1000, atol=1e-6)


def test_reader_and_wfdb_agree_on_wfdb_written_header(tmp_path):
    """wfdb writes comments as "# Age: 61"; the plain-WFDB route (.dat) parses them like the CinC route."""
    sig = np.random.default_rng(0).normal(0, 1, (1000, 12))
    wfdb.wrsamp(
        "W1",
        fs=500,
        units=["mV"] * 12,
        sig_name=list(STANDARD_LEADS),
        p_signal=sig,
        fmt=["16"] * 12,
        adc_gain=[1000.0] * 12,
        baseline=[0] * 12,
        comments=["Age: 61", "Sex: Female", "Dx: 164889003"],
        write_dir=str(tmp_path),
    )
    assert "# Age: 61" in (tmp_path / "W1.hea").read_text()
    rec = read_record(tmp_path / "W1.hea")
    assert rec.meta["format"] == "wfdb" and (rec.age, rec.sex, rec.codes) == (61.0, "F", ("164889003",))
    np.testing.assert_allclose(rec.signal, np.rint(sig.T * 1000) / 1000, atol=1e-6)
    assert read_wfdb_record(tmp_path / "W1.dat").record_id == "W1"
    assert discover(tmp_path).refs[0].format == "wfdb"


def test_discover_tree_sources_and_refs(cinc_specimens):
    d = discover(cinc_specimens.root)
    assert d.skipped == []
    by_id = {r.record_id: r for r in d.refs}
    assert sorted(by_id) == sorted(cinc_specimens.records)
    assert {r.format for r in d.refs} == {"cinc2021"}
    assert by_id["I0001"].source == "st_petersburg_incart" and by_id["S0001"].source == "ptb"
    assert by_id["A0002"].extra["codes"] == ["426783006", "164934002"]
    assert by_id["I0001"].extra["fs"] == 257.0 and by_id["I0001"].extra["n_samples"] == 257 * 60
    clone = pickle.loads(pickle.dumps(d.refs))
    assert clone == d.refs
    rec = read(clone[0])
    assert rec.record_id == clone[0].record_id and rec.source == clone[0].source
    # overlapping inputs give each record once
    assert len(discover([cinc_specimens.root, cinc_specimens.records["A0001"]]).refs) == len(d.refs)


def test_read_cinc2021_rejects_dat_records(tmp_path):
    wfdb.wrsamp(
        "D1",
        fs=500,
        units=["mV"],
        sig_name=["I"],
        p_signal=np.zeros((10, 1)),
        fmt=["16"],
        adc_gain=[1000.0],
        baseline=[0],
        write_dir=str(tmp_path),
    )
    with pytest.raises(RecordError, match=r"one \.mat file") as exc:
        read_cinc2021(tmp_path / "D1.hea")
    assert exc.value.reason == "bad_header"
