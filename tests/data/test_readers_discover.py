"""Discovery over a folder mixing every format, and the summary ``ecgscale inspect`` prints."""

from __future__ import annotations

import shutil
from collections import Counter

import pytest

from ecgscale.data import labels
from ecgscale.data.readers import default_label_space, discover, read, summarize
from ecgscale.errors import RecordError


@pytest.fixture(scope="module")
def mixed(tmp_path_factory, cinc_specimens, tianchi_specimens, ptbxl_specimens):
    root = tmp_path_factory.mktemp("mixed")
    shutil.copytree(cinc_specimens.root, root / "cinc")
    shutil.copytree(tianchi_specimens.root, root / "tianchi")
    shutil.copytree(ptbxl_specimens.root, root / "ptbxl")
    (root / "README.txt").write_text("not a record\n")
    (root / "orphan.mat").write_bytes(b"\x00" * 30)
    return root


def test_mixed_tree(mixed):
    d = discover(mixed)
    assert Counter(r.format for r in d.refs) == {"cinc2021": 5, "tianchi": 3, "ptbxl": 5}
    assert d.formats == ["cinc2021", "tianchi", "ptbxl"]
    assert d.skipped_by_reason() == {"missing_header": 1, "no_labels": 2}
    assert [r.path.name for r in d.refs] == [r.path.name for r in discover(mixed).refs]  # deterministic order
    for ref in d.refs:
        rec = read(ref)
        assert rec.record_id == ref.record_id and rec.n_leads == 12
    with pytest.raises(RecordError, match="several formats") as exc:
        default_label_space(d)
    assert exc.value.reason == "mixed_formats"


def test_summary_counts(mixed, cinc_specimens):
    s = summarize(discover(mixed))
    assert s["n_records"] == 13 and s["label_space"] is None and "several formats" in s["label_space_error"]
    assert s["sources"] == {
        "cpsc_2018": 2,
        "georgia_like": 1,
        "ptb": 1,
        "st_petersburg_incart": 1,
        "ptb-xl": 5,
        "tianchi": 3,
    }
    assert s["skipped_by_reason"] == {"missing_header": 1, "no_labels": 2}

    cinc = summarize(discover(cinc_specimens.root))
    assert cinc["label_space"] == {"name": "cinc2021", "n_classes": 26}
    prev = {row["abbreviation"]: row["count"] for row in cinc["prevalence"]}
    assert prev["AF"] == 2 and prev["RBBB"] == 1 and prev["NSR"] == 1 and prev["TAb"] == 1 and sum(prev.values()) == 5
    assert cinc["unknown_codes"] == {"164884008": 1, "999999999": 1, "164865005": 1}
    assert cinc["sampling_rates"] == {"257": 1, "500": 3, "1000": 1}
    assert cinc["duration_s"]["max"] == 60.0

    space = labels.cinc2021_scored(aliases=labels.tianchi_to_snomed())
    both = summarize(discover([cinc_specimens.root, mixed / "tianchi"]), label_space=space)
    prev = {row["abbreviation"]: row["count"] for row in both["prevalence"]}
    assert prev["AF"] == 3 and prev["RBBB"] == 2 and prev["LAD"] == 1


def test_reads_the_synthetic_benchmark_tree(synth_cinc_tree):
    """The synthetic generator writes with ecgscale.data.writers; every record reads back like wfdb reads it."""
    import numpy as np
    import wfdb

    d = discover(synth_cinc_tree)
    assert d.skipped == [] and len(d.refs) == 120 and d.formats == ["cinc2021"]
    for ref in d.refs[::20]:
        rec = read(ref)
        ref_rec = wfdb.rdrecord(str(ref.path.with_suffix("")))
        np.testing.assert_array_equal(rec.signal, ref_rec.p_signal.T.astype(np.float32))
        assert list(rec.codes) == ref.extra["codes"] and rec.fs == ref.extra["fs"]
