"""The MATLAB v4 fast path of the CinC reader gives loadmat's array, and leaves every other file to loadmat."""

from __future__ import annotations

import io

import numpy as np
import pytest
import scipy.io

from ecgscale.data.readers import read_cinc2021
from ecgscale.data.readers.cinc2021 import _mat_v4_val
from ecgscale.data.writers import write_cinc2021


def _v4(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    scipy.io.savemat(buf, arrays, format="4")
    return buf.getvalue()


@pytest.mark.parametrize("dtype", [np.int16, np.float64, np.float32, np.int32, np.uint16, np.uint8])
def test_fast_path_equals_loadmat(dtype):
    x = (np.random.default_rng(0).integers(0, 200, (12, 37))).astype(dtype)
    raw = _v4({"val": x})
    fast = _mat_v4_val(raw)
    ref = scipy.io.loadmat(io.BytesIO(raw))["val"]
    assert fast is not None
    assert fast.dtype == ref.dtype and fast.shape == ref.shape == (12, 37)
    np.testing.assert_array_equal(fast, ref)


@pytest.mark.parametrize(
    "arrays",
    [
        {"val": np.ones((2, 3)), "other": np.zeros((1, 1))},  # two variables
        {"sig": np.ones((2, 3), np.int16)},  # another name
        {"val": np.ones((2, 3)) * (1 + 1j)},  # complex
        {"val": np.zeros((0, 3))},  # empty
    ],
)
def test_other_files_are_left_to_loadmat(arrays):
    assert _mat_v4_val(_v4(arrays)) is None


def test_other_bytes_are_left_to_loadmat():
    good = _v4({"val": np.ones((12, 10), np.int16)})
    assert _mat_v4_val(good[:-2]) is None  # truncated (read_cinc2021 reports it before)
    assert _mat_v4_val(good + b"\x00") is None  # trailing bytes
    assert _mat_v4_val(b"MATLAB 5.0 MAT-file" + bytes(200)) is None
    assert _mat_v4_val(b"") is None
    assert _mat_v4_val((1000 + 30).to_bytes(4, "little") + good[4:]) is None  # big-endian type code


def test_record_read_through_the_fast_path_is_c_ordered_and_exact(tmp_path):
    sig = np.random.default_rng(1).normal(0, 1, (12, 500)).astype(np.float32)
    write_cinc2021(tmp_path, "R1", sig, 500, codes=("426783006",), age=50, sex="M")
    rec = read_cinc2021(tmp_path / "R1.hea")
    assert rec.signal.dtype == np.float32 and rec.signal.flags.c_contiguous
    raw = (tmp_path / "R1.mat").read_bytes()
    assert _mat_v4_val(raw) is not None  # the writer's files take the fast path
    val = scipy.io.loadmat(tmp_path / "R1.mat")["val"]
    header_gain = 1000.0  # write_cinc2021 stores 1000 units per mV with baseline 0
    np.testing.assert_array_equal(rec.signal, (val.astype(np.float64) / header_gain).astype(np.float32))
