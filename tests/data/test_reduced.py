"""Reduced-lead copies of CinC 2021 records: exact rows, the challenge's file form, errors naming the problem."""

from __future__ import annotations

import numpy as np
import pytest

from ecgscale.data.readers import read_record
from ecgscale.data.reduced import reduce_leads, write_reduced_record
from ecgscale.data.writers import TIANCHI_LEADS, write_cinc2021
from ecgscale.errors import ConfigError


@pytest.fixture
def tree(tmp_path):
    rng = np.random.default_rng(1)
    src = tmp_path / "src"
    write_cinc2021(src / "g1", "R1", rng.normal(0, 1, (12, 700)), 500, codes=["164889003"], age=61, sex="F")
    write_cinc2021(src / "g2", "R2", rng.normal(0, 1, (12, 300)), 257)
    write_cinc2021(src / "g2", "B8", rng.normal(0, 1, (8, 300)), 500, lead_names=TIANCHI_LEADS)  # no III, aVR ...
    return src


def test_reduced_tree_keeps_layout_and_rows(tree, tmp_path):
    summary = reduce_leads(tree, tmp_path / "out", "I,II,V2")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in summary.written) == [
        "g1/R1.hea",
        "g2/B8.hea",
        "g2/R2.hea",
    ]
    for hea in summary.written:
        full, red = read_record(tree / hea.parent.name / hea.name), read_record(hea)
        rows = [full.lead_names.index(n) for n in ("I", "II", "V2")]
        np.testing.assert_array_equal(red.signal, full.signal[rows])
        assert (red.fs, red.codes, red.age, red.sex, red.n_samples) == (
            full.fs,
            full.codes,
            full.age,
            full.sex,
            full.n_samples,
        )
    six = reduce_leads(tree, tmp_path / "six", "6")
    assert len(six.written) == 2 and len(six.failed) == 1
    path, message = six.failed[0]
    assert path.name == "B8.hea" and "missing leads III, aVR, aVL, aVF" in message


def test_order_and_bad_arguments(tree, tmp_path):
    hea = tree / "g1" / "R1.hea"
    out = write_reduced_record(hea, tmp_path / "o", "2", order=["dii", "I"])
    assert read_record(out).lead_names == ("II", "I")
    with pytest.raises(ConfigError, match="an ordering of I, II"):
        write_reduced_record(hea, tmp_path / "o", "2", order=["I", "V1"])
    with pytest.raises(ConfigError, match="write reduced copies elsewhere"):
        write_reduced_record(hea, tree / "g1", "2")
    with pytest.raises(ConfigError, match="V9"):
        reduce_leads(tree, tmp_path / "x", "I,V9")
