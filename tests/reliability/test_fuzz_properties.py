"""Property tests of the readers: valid inputs round-trip through the writers, invalid ones raise RecordError.

Structured strategies (headers with one field mutated, Tianchi rows with random columns, ``scp_codes`` dict
literals, label rows) complement the byte-level atheris targets: they reach deep into the grammar at once and
state what the value must be, not only that nothing escapes. Derandomized (the same examples every run) with a
deadline, so a hang or a slow path fails instead of stalling CI.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from reliability.fuzz.targets import check_header, check_record, mat_header_text

from ecgscale.data.readers.cinc2021 import parse_cinc_header_text, read_cinc2021
from ecgscale.data.readers.ptbxl import parse_scp_codes
from ecgscale.data.readers.tianchi import read_tianchi, read_tianchi_labels
from ecgscale.data.records import STANDARD_LEADS
from ecgscale.data.writers import TIANCHI_LEADS, TIANCHI_UNIT_MV, write_cinc2021, write_tianchi, write_tianchi_labels
from ecgscale.errors import RecordError
from ecgscale.fileio import path_within

SETTINGS = settings(
    derandomize=True,
    max_examples=200,
    deadline=2000,  # ms per example: far above the ~1 ms a parse takes, so only a hang or a blow-up trips it
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)

# Numbers that break naive parsers: zero, negatives, NaN/inf spellings, 10**12, overflow, unicode digits, junk.
NASTY_NUMBERS = (
    st.sampled_from(
        [
            "0",
            "-1",
            "-0",
            "nan",
            "NaN",
            "inf",
            "-inf",
            "1e12",
            "1000000000000",
            "1e400",
            "1_000",
            "١٢",
            "",
            "abc",
            "0x10",
        ]
    )
    | st.integers(-(10**15), 10**15).map(str)
    | st.floats(allow_nan=True, allow_infinity=True).map(repr)
)

FS = st.sampled_from([100.0, 250.0, 257.0, 360.0, 500.0, 1000.0, 128.5])


@st.composite
def leads(draw: st.DrawFn) -> tuple[str, ...]:
    n = draw(st.integers(1, 12))
    return tuple(draw(st.permutations(STANDARD_LEADS))[:n])


@st.composite
def cinc_records(draw: st.DrawFn) -> dict:
    names = draw(leads())
    n = draw(st.integers(1, 40))
    gain = draw(st.sampled_from([200.0, 1000.0, 4.88, 1.0]))
    digital = draw(
        st.lists(st.integers(-32767, 32767), min_size=len(names) * n, max_size=len(names) * n).map(
            lambda v: np.asarray(v, dtype=np.int16).reshape(len(names), n)
        )
    )
    return {
        "leads": names,
        "fs": draw(FS),
        "gain": gain,
        "digital": digital,
        "age": draw(st.none() | st.integers(0, 120).map(float)),
        "sex": draw(st.sampled_from([None, "M", "F"])),
        "codes": draw(st.lists(st.sampled_from(["426783006", "59118001", "164889003", "270492004"]), unique=True)),
    }


@SETTINGS
@given(cinc_records())
def test_cinc_round_trip(rec):
    """A record written by write_cinc2021 reads back with the same samples, rate, leads and labels."""
    with tempfile.TemporaryDirectory() as td:
        mv = rec["digital"].astype(np.float64) / rec["gain"]
        hea = write_cinc2021(
            td, "R1", mv, rec["fs"], lead_names=rec["leads"], gain=rec["gain"], age=rec["age"], sex=rec["sex"],
            codes=rec["codes"],
        )  # fmt: skip
        got = check_record(read_cinc2021(hea), n_leads=len(rec["leads"]), n_samples=rec["digital"].shape[1])
    assert got.fs == rec["fs"]
    assert got.lead_names == rec["leads"]
    np.testing.assert_array_equal(got.signal, (rec["digital"].astype(np.float64) / rec["gain"]).astype(np.float32))
    assert (got.age, got.sex, got.codes) == (rec["age"], rec["sex"], tuple(rec["codes"]))


VALID_HEADER = mat_header_text(3, 25, mat_name="R1.mat")
RECORD_FIELDS = {"signal count": 1, "sampling frequency": 2, "sample count": 3}


@SETTINGS
@given(st.sampled_from(sorted(RECORD_FIELDS)), NASTY_NUMBERS)
@example("sample count", "1000000000000")
@example("sampling frequency", "nan")
@example("sampling frequency", "-500")
@example("signal count", "0")
def test_cinc_header_record_line_mutations(field, token):
    """A mutated record-line field parses to a consistent header or raises RecordError naming that field."""
    assume(token.strip() == token and token)  # an empty token would shift the other fields, not mutate this one
    lines = VALID_HEADER.splitlines()
    rec = lines[0].split()
    rec[RECORD_FIELDS[field]] = token
    text = "\n".join([" ".join(rec), *lines[1:]])
    try:
        header = check_header(parse_cinc_header_text(text, "R1.hea"))
    except RecordError as exc:
        assert exc.path == "R1.hea" and exc.reason == "bad_header", str(exc)
        return
    if field == "sampling frequency":
        value = float(token)  # accepted: must be a positive finite number, as read
        assert math.isfinite(value) and value > 0 and header.fs == value
    elif field == "sample count":
        assert header.n_samples == int(float(token)) >= 0
    else:
        assert header.n_leads == 3 and int(float(token)) == 3


SIGNAL_FIELDS = {"format": 1, "gain": 2, "adc zero": 4}


@SETTINGS
@given(st.sampled_from(sorted(SIGNAL_FIELDS)), NASTY_NUMBERS | st.sampled_from(["1000/uV", "0(5)/V", "7/furlong", "("]))
def test_cinc_header_signal_line_mutations(field, token):
    """A mutated signal-line field parses to a consistent header (finite non-zero gain) or raises RecordError."""
    lines = VALID_HEADER.splitlines()
    sig = lines[2].split()
    sig[SIGNAL_FIELDS[field]] = token or "x"
    text = "\n".join([lines[0], lines[1], " ".join(sig), *lines[3:]])
    try:
        check_header(parse_cinc_header_text(text, "R1.hea"))
    except RecordError as exc:
        assert exc.reason == "bad_header" and str(exc).startswith("R1.hea"), str(exc)


@SETTINGS
@given(st.integers(1, 12), st.integers(0, 2**64 - 1), st.integers(1, 12), st.integers(1, 30))
@example(3, 10**12, 3, 25)
def test_mat_header_disagreement_raises(claimed_leads, claimed_samples, leads_in_file, samples_in_file):
    """A header whose lead or sample count disagrees with the .mat raises shape_mismatch (never allocates)."""
    with tempfile.TemporaryDirectory() as td:
        hea = Path(td) / "m.hea"
        hea.write_text(mat_header_text(claimed_leads, claimed_samples), encoding="ascii")
        digital = np.arange(leads_in_file * samples_in_file, dtype=np.int16).reshape(leads_in_file, samples_in_file)
        write_cinc2021(td, "tmp", digital / 1000.0, 500, lead_names=STANDARD_LEADS[:leads_in_file])
        (Path(td) / "tmp.mat").rename(Path(td) / "m.mat")
        if (claimed_leads, claimed_samples) == (leads_in_file, samples_in_file):
            check_record(read_cinc2021(hea), n_leads=claimed_leads, n_samples=claimed_samples)
            return
        with pytest.raises(RecordError) as info:
            read_cinc2021(hea)
    assert info.value.reason == "shape_mismatch"


TIANCHI_VALUES = st.integers(-6000, 6000)


@SETTINGS
@given(st.lists(st.lists(TIANCHI_VALUES, min_size=8, max_size=8), min_size=1, max_size=30))
def test_tianchi_round_trip(rows):
    """Integer rows written by write_tianchi read back exactly, with the four limb leads derived."""
    stored = np.asarray(rows, dtype=np.float64).T * TIANCHI_UNIT_MV
    with tempfile.TemporaryDirectory() as td:
        rec = check_record(read_tianchi(write_tianchi(td, "T1", stored), find_labels=False), n_leads=12)
    np.testing.assert_array_equal(rec.signal[[0, 1, *range(6, 12)]], stored.astype(np.float32))
    assert rec.lead_names == STANDARD_LEADS and rec.fs == 500.0


CELLS = st.integers(-(10**6), 10**6).map(str) | st.sampled_from(["nan", "inf", "1.5", "x", "", "1e400", "--1", "0x1F"])


@SETTINGS
@given(st.lists(st.lists(CELLS, min_size=1, max_size=10), min_size=1, max_size=20))
def test_tianchi_random_rows(rows):
    """Rows with random columns and cells: a valid 12-lead record (8 integer columns) or RecordError."""
    body = "\n".join(" ".join(r) for r in rows) + "\n"
    with tempfile.TemporaryDirectory() as td:
        path = Path(td) / "T1.txt"
        path.write_text(" ".join(TIANCHI_LEADS) + "\n" + body, encoding="ascii")
        try:
            rec = check_record(read_tianchi(path, find_labels=False), n_leads=12)
        except RecordError as exc:
            assert exc.reason in {"bad_row", "non_finite", "empty"} and exc.path == str(path), str(exc)
            return
    assert all(len(r) == 8 for r in rows if any(c.strip() for c in r))
    assert rec.n_samples == sum(1 for r in rows if "".join(r).strip())


NAME = st.text(
    st.characters(blacklist_categories=["Cc", "Cs", "Zl", "Zp", "Zs"], blacklist_characters="\t"), min_size=1
)


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.from_regex(r"[A-Za-z0-9_]{1,12}", fullmatch=True),
            st.none() | st.integers(0, 120).map(float),
            st.sampled_from([None, "M", "F"]),
            st.lists(NAME, max_size=4, unique=True),
        ),
        max_size=10,
        unique_by=lambda r: r[0],
    )
)
def test_tianchi_labels_round_trip(rows):
    """Label rows written by write_tianchi_labels read back with the same age, sex and names."""
    with tempfile.TemporaryDirectory() as td:
        table = read_tianchi_labels(write_tianchi_labels(Path(td) / "hf_round2_train.txt", rows))
    assert sorted(table) == sorted(r[0] for r in rows)
    for rid, age, sex, names in rows:
        assert (table[rid].age, table[rid].sex, table[rid].names) == (age, sex, tuple(n.strip() for n in names))


SCP = st.dictionaries(
    st.from_regex(r"[A-Z][A-Z0-9_]{0,6}", fullmatch=True),
    st.floats(0, 100, allow_nan=False) | st.integers(0, 100),
    max_size=6,
)


@SETTINGS
@given(SCP)
def test_scp_codes_round_trip(codes):
    """A dict of statements written as Python literal text (as PTB-XL does) parses back to equal floats."""
    assert parse_scp_codes(repr(codes)) == {k: float(v) for k, v in codes.items()}


NASTY_SCP = st.sampled_from(
    [
        "[" * 5000 + "]" * 5000,
        "{'A': " + "-" * 100_000 + "1}",
        "{'A': (" * 300 + ")" * 300 + "}",
        "{'A': " + "9" * 5000 + "}",
        "{'A': 1" + "0" * 400 + "}",
        "{'A': 1e999}",
        "{'A': [1]}",
        "{'A': 'x'}",
        "{'A': True}",
        "{1: 2}",
        "{(1, 2): 3}",
        "{'A': 1j}",
        "[('A', 1)]",
        "set()",
        "{'A': 1, 'A': 2}",
        "{'': 1}",
        "__import__('os').system('true')",
    ]
) | st.text(max_size=80)


@SETTINGS
@given(NASTY_SCP)
def test_scp_codes_hostile_text(text):
    """Deep nesting, huge numbers, non-dict literals, code: a dict of finite floats or RecordError, nothing else."""
    try:
        codes = parse_scp_codes(text, path="ptbxl_database.csv", row=7)
    except RecordError as exc:
        assert exc.reason == "bad_labels" and exc.field == "scp_codes" and "row 7" in str(exc)
        return
    assert all(isinstance(k, str) and k and math.isfinite(v) for k, v in codes.items())


@SETTINGS
@given(st.lists(st.sampled_from(["a", "b", ".", "..", "/", "\x00", " "]), max_size=12).map("".join))
@example("sub/../rec")
@example("../../etc/passwd")
def test_path_within_never_escapes(rel):
    """Whatever the name, path_within returns a path lexically inside the root, or refuses it as unsafe_path."""
    root = "/data/root"
    try:
        got = path_within(root, rel, source="labels.txt")
    except RecordError as exc:
        assert exc.reason == "unsafe_path" and exc.path == "labels.txt"
        return
    assert str(got).startswith(root + "/") and ".." not in got.relative_to(root).parts
