"""Challenge I/O: #Dx header labels, output CSVs (read, write, malformed), and folder loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ecgscale.data.labels import cinc2021_weights
from ecgscale.errors import RecordError
from ecgscale.metrics import (
    labels_matrix,
    load_challenge_dirs,
    outputs_matrix,
    read_challenge_output,
    read_header_labels,
    write_challenge_output,
)

KEYS, _ = cinc2021_weights()
RBBB = KEYS.index("713427006|59118001")
AF = KEYS.index("164889003")
NSR = KEYS.index("426783006")

HEADER = """A0001 12 500 7500 05-Feb-2020 11:39:16
A0001.mat 16+24 1000/mV 16 0 28 -1716 0 I
A0001.mat 16+24 1000/mV 16 0 7 2029 0 II
#Age: 74
#Sex: Male
{dx}
#Rx: Unknown
"""


def _header(tmp_path: Path, dx_line: str, name: str = "A0001") -> Path:
    path = tmp_path / f"{name}.hea"
    path.write_text(HEADER.format(dx=dx_line))
    return path


@pytest.mark.parametrize(
    "dx_line",
    [
        "#Dx: 59118001,164889003",
        "# Dx: 59118001, 164889003",
        "#Dx: 59118001,,164889003,",
        "#Dx: 59118001,164889003,59118001",
        "#Dx:59118001,164889003",
    ],
)
def test_header_labels_variants(tmp_path: Path, dx_line: str):
    assert read_header_labels(_header(tmp_path, dx_line)) == ["59118001", "164889003"]


def test_header_without_dx_names_the_file(tmp_path: Path):
    path = _header(tmp_path, "#Hx: Unknown")
    with pytest.raises(RecordError, match=r"A0001\.hea.*Dx"):
        read_header_labels(path)


def test_labels_matrix_merges_equivalent_codes():
    m = labels_matrix([["59118001"], ["713427006", "426783006"], ["999999"], []], KEYS)
    assert m.shape == (4, 26)
    assert m[0, RBBB] and m[1, RBBB] and m[1, NSR]
    assert m.sum() == 3  # the unknown code and the empty record add nothing


def test_write_read_roundtrip_keeps_full_precision(tmp_path: Path):
    probs = np.array([0.1 + 0.2, 1e-17, 0.987654321987654321])
    path = write_challenge_output(
        tmp_path / "A0001.csv", "A0001", ["164889003", "59118001", "426783006"], [1, 0, True], probs
    )
    text = path.read_text().splitlines()
    assert text[0] == "#A0001" and text[1] == "164889003,59118001,426783006" and text[2] == "1,0,1"
    out = read_challenge_output(path)
    assert out.record_id == "A0001"
    assert out.classes == ("164889003", "59118001", "426783006")
    assert out.binary.tolist() == [True, False, True]
    assert np.array_equal(out.scalar, probs)
    fast = write_challenge_output(tmp_path / "sub" / "A0002.csv", "A0002", ["164889003"], [0], [0.25], atomic=False)
    assert read_challenge_output(fast).scalar.tolist() == [0.25]
    with pytest.raises(ValueError, match="probs"):
        write_challenge_output(tmp_path / "x.csv", "x", ["1", "2"], [1, 0], [0.5])
    with pytest.raises(ValueError, match="NaN"):
        write_challenge_output(tmp_path / "x.csv", "x", ["1"], [1], [float("nan")])


def test_reader_accepts_the_official_spellings(tmp_path: Path):
    path = tmp_path / "A1.csv"
    # A byte-order mark, CRLF line ends and a trailing comma on every line.
    path.write_bytes(b"\xef\xbb\xbf#A1\r\n164889003, 59118001 ,426783006,\r\nTrue,f,t,\r\n0.5,nan,0.25,\r\n")
    out = read_challenge_output(path)
    assert out.record_id == "A1"
    assert out.classes == ("164889003", "59118001", "426783006")
    assert out.binary.tolist() == [True, False, True]
    assert out.scalar.tolist() == [0.5, 0.0, 0.25] and out.n_nonfinite == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("#A1\n164889003,426783006\n1,0\n", "expected 3 lines"),
        ("#A1\n164889003,426783006\n1,0,1\n0.1,0.2\n", "fields"),
        ("#A1\n164889003,,426783006\n1,0,1\n0.1,0.2,0.3\n", "empty"),
        ("#A1\n164889003,426783006\n1.0,0\n0.1,0.2\n", "binary output '1.0'"),
        ("#A1\n164889003,426783006\n1,0\n0.1,high\n", "probability 'high'"),
    ],
)
def test_malformed_outputs_raise_naming_the_file(tmp_path: Path, content: str, message: str):
    path = tmp_path / "A1.csv"
    path.write_text(content)
    with pytest.raises(RecordError, match=message) as info:
        read_challenge_output(path)
    assert str(path) in str(info.value)


def test_outputs_matrix_equivalents_any_and_mean(tmp_path: Path):
    a = write_challenge_output(
        tmp_path / "a.csv", "a", ["59118001", "713427006", "164889003", "10000"], [0, 1, 0, 1], [0.2, 0.6, 0.3, 0.9]
    )
    b = write_challenge_output(tmp_path / "b.csv", "b", ["426783006", "713427006|59118001"], [1, 0], [0.8, 0.1])
    binary, scalar = outputs_matrix([read_challenge_output(a), read_challenge_output(b), None], KEYS)
    assert binary[0, RBBB] and not binary[0, AF] and binary[0].sum() == 1  # the unscored code is ignored
    assert scalar[0, RBBB] == pytest.approx(0.4) and scalar[0, AF] == pytest.approx(0.3)
    assert binary[1, NSR] and scalar[1, RBBB] == pytest.approx(0.1)
    assert not binary[2].any() and not scalar[2].any()  # missing file: all negative, probability 0


def test_load_dirs_counts_missing_and_extra(tmp_path: Path):
    labels, outputs = tmp_path / "labels" / "src", tmp_path / "out"
    labels.mkdir(parents=True)
    _header(labels, "#Dx: 164889003", "A1")
    _header(labels, "#Dx: 426783006", "A2")
    write_challenge_output(outputs / "A1.csv", "A1", ["164889003"], [1], [0.9])
    write_challenge_output(outputs / "Z9.csv", "Z9", ["164889003"], [1], [0.9])
    data = load_challenge_dirs(tmp_path / "labels", outputs)
    assert data.record_ids == ("A1", "A2") and data.missing == ("A2",) and data.extra == ("Z9",)
    assert data.labels[0, AF] and data.labels[1, NSR] and data.binary[0, AF] and not data.binary[1].any()
    with pytest.raises(RecordError, match="1 output file"):
        load_challenge_dirs(tmp_path / "labels", outputs, strict=True)
    with pytest.raises(RecordError, match="no WFDB header"):
        load_challenge_dirs(outputs, outputs)
    with pytest.raises(RecordError, match="does not exist"):
        load_challenge_dirs(tmp_path / "nope", outputs)
