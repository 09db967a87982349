"""The format-16 fast path of ``read_wfdb``: wfdb's values bit for bit, and wfdb itself for everything else."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb

from ecgscale.data.readers import wfdb_io
from ecgscale.data.readers.wfdb_io import read_wfdb
from ecgscale.errors import RecordError

LEADS = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def _write(folder: Path, name: str, fmt: str, seed: int = 0, n: int = 1000, gain: float = 1000.0) -> Path:
    rng = np.random.default_rng(seed)
    top = {"80": 100, "212": 2000}.get(fmt, 3000)  # inside the format's range, baseline included
    digital = rng.integers(-top, top, (n, 12)).astype(np.int64)
    wfdb.wrsamp(
        name,
        fs=100,
        units=["mV"] * 12,
        sig_name=LEADS,
        d_signal=digital,
        fmt=[fmt] * 12,
        adc_gain=[gain] * 12,
        baseline=[int(b) for b in rng.integers(-20, 20, 12)],
        write_dir=str(folder),
    )
    return folder / f"{name}.hea"


def _wfdb_values(hea: Path) -> np.ndarray:
    return wfdb.rdrecord(str(hea.with_suffix("")), physical=True, return_res=64).p_signal.T.astype(np.float32)


def test_format16_is_read_without_wfdb_and_equals_it(tmp_path, monkeypatch):
    hea = _write(tmp_path, "r16", "16", gain=1000.0)
    expected = _wfdb_values(hea)
    odd = _write(tmp_path, "odd", "16", seed=1, gain=409.6)  # a gain that makes the float32 argument matter
    expected_odd = _wfdb_values(odd)

    def no_wfdb(*args, **kwargs):
        raise AssertionError("wfdb was called for a format-16 record")

    monkeypatch.setattr(wfdb, "rdrecord", no_wfdb)
    monkeypatch.setattr(wfdb, "rdheader", no_wfdb)
    rec = read_wfdb(hea)
    assert rec.signal.dtype == np.float32 and rec.signal.flags.c_contiguous
    np.testing.assert_array_equal(rec.signal, expected)
    assert rec.fs == 100.0 and rec.lead_names == tuple(LEADS)
    np.testing.assert_array_equal(read_wfdb(odd).signal, expected_odd)


@pytest.mark.parametrize("fmt", ["212", "80", "24"])
def test_other_formats_go_through_wfdb(tmp_path, fmt):
    hea = _write(tmp_path, f"r{fmt}", fmt)
    assert wfdb_io._read_format16(hea.with_suffix(""), str(hea)) is None
    np.testing.assert_array_equal(read_wfdb(hea).signal, _wfdb_values(hea))


def test_fallbacks_keep_wfdb_verdicts(tmp_path):
    hea = _write(tmp_path, "r", "16")
    dat = tmp_path / "r.dat"
    base = hea.with_suffix("")
    # a "no sample" value: wfdb reads NaN (the readers then reject the record as non_finite)
    raw = bytearray(dat.read_bytes())
    raw[0:2] = np.int16(-32768).tobytes()
    dat.write_bytes(bytes(raw))
    assert wfdb_io._read_format16(base, str(hea)) is None
    assert np.isnan(read_wfdb(hea).signal[0, 0])
    # a truncated file: wfdb's path names it
    dat.write_bytes(bytes(raw[:-10]))
    assert wfdb_io._read_format16(base, str(hea)) is None
    with pytest.raises(RecordError) as exc:
        read_wfdb(hea)
    assert exc.value.reason == "truncated"
    # frames of two samples ("16x2") and skew are wfdb's business
    _write(tmp_path, "s", "16")
    text = (tmp_path / "s.hea").read_text()
    (tmp_path / "s.hea").write_text(text.replace(" 16 1000", " 16:1 1000", 1))
    assert wfdb_io._read_format16(tmp_path / "s", str(tmp_path / "s.hea")) is None
