"""The writers produce files in the real formats: checked against scipy.io.loadmat and wfdb.rdrecord."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
import wfdb

from ecgscale.data.records import STANDARD_LEADS
from ecgscale.data.writers import (
    TIANCHI_LEADS,
    wfdb_checksum,
    write_cinc2021,
    write_tianchi,
    write_tianchi_classes,
    write_tianchi_labels,
)


def _signal(seed: int, n_leads: int = 12, n: int = 1000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 0.8, (n_leads, n)).astype(np.float32)


def test_cinc2021_round_trip_is_exact_against_loadmat_and_wfdb(tmp_path):
    sig = _signal(0)
    hea = write_cinc2021(tmp_path, "A0001", sig, 500, age=74, sex="M", codes=["59118001", "164889003"])
    assert hea == tmp_path / "A0001.hea"
    expected = np.rint(sig.astype(np.float64) * 1000).astype(np.int16)

    raw = (tmp_path / "A0001.mat").read_bytes()
    # MATLAB v4 header: type 30 (LE int16 full matrix), rows=leads, cols=samples, imagf 0, namlen 4, "val\0"
    assert np.frombuffer(raw[:20], "<i4").tolist() == [30, 12, 1000, 0, 4]
    assert raw[20:24] == b"val\x00"
    assert len(raw) == 24 + 2 * 12 * 1000
    assert np.array_equal(np.frombuffer(raw[24:], "<i2").reshape(1000, 12).T, expected)  # column-major

    val = scipy.io.loadmat(tmp_path / "A0001.mat")["val"]
    assert val.dtype == np.int16 and np.array_equal(val, expected)

    rec = wfdb.rdrecord(str(tmp_path / "A0001"), physical=False)
    assert np.array_equal(rec.d_signal.T, expected)
    assert rec.fs == 500 and rec.sig_len == 1000 and tuple(rec.sig_name) == STANDARD_LEADS
    assert rec.fmt == ["16"] * 12 and rec.byte_offset == [24] * 12 and rec.adc_gain == [1000.0] * 12
    assert rec.init_value == expected[:, 0].tolist()
    assert rec.checksum == wfdb_checksum(expected).tolist()
    assert rec.comments[:3] == ["Age: 74", "Sex: Male", "Dx: 59118001,164889003"]
    phys = wfdb.rdrecord(str(tmp_path / "A0001")).p_signal
    assert np.allclose(phys.T, expected / 1000.0, atol=1e-12)

    lines = hea.read_text().splitlines()
    assert lines[0] == "A0001 12 500 1000 01-Jan-2020 00:00:00"
    assert lines[1].startswith("A0001.mat 16+24 1000/mV 16 0 ") and lines[1].endswith(" 0 I")
    assert lines[-3:] == ["#Rx: Unknown", "#Hx: Unknown", "#Sx: Unknown"]


def test_checksum_is_signed_16_bit_sum():
    d = np.array([[32767, 1], [-32767, -2], [100, 200]], dtype=np.int16)
    assert wfdb_checksum(d).tolist() == [-32768, 32767, 300]


def test_cinc2021_clips_and_handles_unknowns(tmp_path, caplog):
    sig = np.zeros((2, 10), dtype=np.float32)
    sig[0, 3] = 40.0  # 40 mV at gain 1000 -> 40000 units: clipped to 32767
    sig[1, 4] = -40.0
    write_cinc2021(tmp_path, "X1", sig, 257, lead_names=("I", "II"), extra_comments={"Source": "test"})
    val = scipy.io.loadmat(tmp_path / "X1.mat")["val"]
    assert val[0, 3] == 32767 and val[1, 4] == -32767
    assert "clipped" in caplog.text
    text = (tmp_path / "X1.hea").read_text()
    assert "#Age: Unknown\n#Sex: Unknown\n#Dx: \n" in text and text.endswith("#Source: test\n")
    with pytest.raises(ValueError, match="NaN"):
        write_cinc2021(tmp_path, "X2", np.full((12, 5), np.nan), 500)
    with pytest.raises(ValueError, match="lead names"):
        write_cinc2021(tmp_path, "X3", np.zeros((3, 5)), 500)


def test_tianchi_text_labels_and_classes(tmp_path):
    sig = _signal(1, n=5000)
    path = write_tianchi(tmp_path, "100", sig)
    lines = path.read_text().splitlines()
    assert lines[0] == "I II V1 V2 V3 V4 V5 V6" and len(lines) == 5001
    units = np.loadtxt(path, skiprows=1, dtype=np.int64).T
    stored = sig[[STANDARD_LEADS.index(lead) for lead in TIANCHI_LEADS]].astype(np.float64)
    assert np.array_equal(units, np.rint(stored / 0.00488).astype(np.int64))
    # eight leads in, same file out
    assert write_tianchi(tmp_path / "b", "100", sig[[0, 1, 6, 7, 8, 9, 10, 11]]).read_text() == path.read_text()

    labels = write_tianchi_labels(
        tmp_path / "hf_round2_train.txt",
        [("100", 56, "F", ["窦性心律", "电轴左偏"]), ("101.txt", None, None, ["T波改变"])],
    )
    assert labels.read_text(encoding="utf-8").splitlines() == [
        "100.txt\t56\tFEMALE\t窦性心律\t电轴左偏",
        "101.txt\t\t\tT波改变",
    ]
    classes = write_tianchi_classes(tmp_path / "hf_round2_arrythmia.txt", ["窦性心律", "电轴左偏"])
    assert classes.read_bytes() == "窦性心律\n电轴左偏\n".encode()
