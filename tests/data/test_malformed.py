"""Every malformed input gives a RecordError naming the file, the problem and a reason tag; discovery goes on."""

from __future__ import annotations

import pickle

import pytest

from ecgscale.data.readers import discover, read, read_record
from ecgscale.errors import RecordError

CASES = [
    "truncated_mat",
    "samples_mismatch",
    "leads_mismatch",
    "signal_count",
    "nonnumeric_gain",
    "missing_mat",
    "empty_header",
    "garbage_header",
    "wrong_leads",
    "wfdb_nan",
    "float_nan_mat",
    "empty_mat",
    "garbage_mat",
    "tianchi_nan",
    "tianchi_inf",
    "tianchi_columns",
    "tianchi_text",
    "tianchi_fraction",
    "tianchi_leads",
    "tianchi_empty",
    "tianchi_header_only",
]


def test_corpus_is_complete(malformed):
    _, bad = malformed
    assert sorted(bad) == sorted(CASES)


@pytest.mark.parametrize("name", CASES)
def test_read_alone_gives_a_clear_error(malformed, name):
    _, bad = malformed
    case = bad[name]
    with pytest.raises(RecordError) as info:
        read_record(case.path)
    exc = info.value
    assert exc.reason == case.reason, str(exc)
    assert case.says in str(exc)
    # the message starts with the file at fault (the .hea, or the .mat it names)
    assert str(exc).startswith(str(case.path.parent)), str(exc)
    assert case.path.stem in str(exc)
    clone = pickle.loads(pickle.dumps(exc))  # crosses worker processes intact
    assert (clone.reason, str(clone)) == (exc.reason, str(exc))


def test_discover_never_raises_and_reads_report_the_rest(malformed):
    root, bad = malformed
    d = discover(root)
    skipped = {s.path.name: s.reason for s in d.skipped}
    # header-level problems are found while discovering, without reading any signal
    assert skipped == {
        "T4.hea": "bad_header",
        "T5.hea": "bad_header",
        "T6.mat": "missing_signal",
        "T7.hea": "empty",
        "T8.hea": "bad_header",
        "T9.hea": "bad_leads",
        "leads.txt": "bad_leads",
        "empty.txt": "empty",
    }
    reasons = {}
    for ref in d.refs:
        try:
            read(ref)
        except RecordError as exc:
            reasons[ref.path.stem] = exc.reason
        else:
            reasons[ref.path.stem] = "ok"
    expected = {
        case.path.stem: case.reason
        for case in bad.values()
        if case.path.name not in skipped and case.path.with_suffix(".mat").name not in skipped
    }
    assert reasons == expected


def test_flat_and_missing_inputs(tmp_path):
    with pytest.raises(RecordError) as info:
        read_record(tmp_path / "nothing.hea")
    assert info.value.reason == "missing_header"
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(RecordError, match="unsupported file type") as info:
        read_record(tmp_path / "x.csv")
    assert info.value.reason == "unsupported"
    with pytest.raises(RecordError, match="is a folder"):
        read_record(tmp_path)
    d = discover([tmp_path / "absent"])
    assert d.refs == [] and d.skipped[0].reason == "not_found"
