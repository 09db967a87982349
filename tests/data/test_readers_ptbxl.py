"""PTB-XL reader: database CSV, standard split, both rates, task label spaces like the benchmark code."""

from __future__ import annotations

import numpy as np
import pytest

from ecgscale.data import labels
from ecgscale.data.readers import default_label_space, discover, ptbxl_refs, ptbxl_split, read, read_record
from ecgscale.data.readers.ptbxl import parse_scp_codes
from ecgscale.data.records import STANDARD_LEADS
from ecgscale.errors import RecordError


def test_refs_split_and_demographics(ptbxl_specimens):
    refs, skips = ptbxl_refs(ptbxl_specimens.root)
    assert skips == [] and [r.record_id for r in refs] == ["1", "2", "3", "4", "5"]
    by_id = {r.record_id: r.extra for r in refs}
    assert [by_id[k]["split"] for k in "12345"] == ["train", "val", "test", "train", "train"]
    assert by_id["1"]["sex"] == "F" and by_id["2"]["sex"] == "M" and by_id["1"]["age"] == 56.0
    assert by_id["4"]["age"] is None  # 300 = "over 89" in PTB-XL
    assert by_id["1"]["patient_id"] == by_id["3"]["patient_id"] == "15709"
    assert by_id["3"]["codes"] == ["IMI", "ASMI", "PVC", "SR"]  # every statement, whatever its likelihood
    assert by_id["3"]["scp_likelihood"]["IMI"] == 35.0
    assert [ptbxl_split(f) for f in (1, 8, 9, 10)] == ["train", "train", "val", "test"]
    with pytest.raises(ValueError):
        ptbxl_split(11)


@pytest.mark.parametrize("fs", [500, 100])
def test_read_both_rates(ptbxl_specimens, fs):
    d = discover(ptbxl_specimens.root, ptbxl_fs=fs)
    assert d.skipped == [] and len(d.refs) == 5 and d.formats == ["ptbxl"]  # records* trees not re-walked
    ref = next(r for r in d.refs if r.record_id == "3")
    rec = read(ref)
    assert rec.fs == fs and rec.signal.shape == (12, 10 * fs) and rec.lead_names == STANDARD_LEADS
    np.testing.assert_allclose(rec.signal, ptbxl_specimens.signals[(3, fs)].T, atol=1e-6)
    assert rec.patient_id == "15709" and rec.sex == "F" and rec.codes == ("IMI", "ASMI", "PVC", "SR")
    assert rec.meta["split"] == "test" and rec.source == "ptb-xl"


def test_read_record_inside_the_tree_finds_labels(ptbxl_specimens):
    rec = read_record(ptbxl_specimens.root / "records500" / "00000" / "00004_hr.hea")
    assert rec.meta["format"] == "ptbxl" and rec.codes == ("CRBBB", "LAFB", "AFIB") and rec.record_id == "4"
    rec100 = read_record(ptbxl_specimens.root / "records100" / "00000" / "00004_lr.dat")
    assert rec100.fs == 100 and rec100.codes == rec.codes


def test_task_spaces_like_the_benchmark(ptbxl_specimens):
    stmts = ptbxl_specimens.root / "scp_statements.csv"
    sup = labels.ptbxl_space("superdiagnostic", stmts)
    assert sup.keys == ["CD", "HYP", "MI", "NORM", "STTC"]
    assert sup.classes[2].codes == ("IMI", "ASMI")
    sub = labels.ptbxl_space("subdiagnostic", ptbxl_specimens.root)  # the folder works too
    assert sub.keys == ["AMI", "CRBBB", "IMI", "LAFB/LPFB", "LVH", "NORM", "STTC"]
    diag = labels.ptbxl_space("diagnostic", stmts)
    assert diag.keys == ["ASMI", "CRBBB", "IMI", "LAFB", "LVH", "NDT", "NORM"]
    assert labels.ptbxl_space("form", stmts).keys == ["LVOLT", "NDT", "PVC"]
    assert labels.ptbxl_space("rhythm", stmts).keys == ["AFIB", "SR"]
    everything = labels.ptbxl_space("all", stmts)
    assert len(everything) == 11 and everything.name == "ptbxl-all"
    crbbb = everything.classes[everything.index_of("CRBBB")]
    assert crbbb.group == "conduction" and crbbb.name == "complete right bundle branch block"

    rec = read(next(r for r in discover(ptbxl_specimens.root).refs if r.record_id == "3"))
    assert sup.encode(rec.codes).tolist() == [0, 0, 1, 0, 0]
    assert everything.unknown(rec.codes) == []
    assert labels.ptbxl_space("rhythm", stmts).encode(rec.codes).tolist() == [0, 1]
    assert default_label_space(discover(ptbxl_specimens.root)).keys == sup.keys
    with pytest.raises(ValueError, match="task must be one of"):
        labels.ptbxl_space("diagnosis", stmts)
    with pytest.raises(ValueError, match=r"scp_statements\.csv"):
        labels.ptbxl_space("all")


def test_ptbxl_into_cinc2021():
    space = labels.cinc2021_scored(aliases=labels.ptbxl_to_snomed())
    hot = space.encode(["CRBBB", "LAFB", "AFIB", "ISC_"])
    assert sorted(space.abbreviations[i] for i in np.flatnonzero(hot)) == ["AF", "LAnFB", "RBBB"]
    # As the CinC 2020 labelling of PTB-XL does (docs/labels.md): a normal ECG is sinus rhythm, SVARR is SVPB
    # (the PAC class), non-diagnostic and low T waves are TAb
    hot = space.encode(["NORM", "SVARR", "NDT", "LOWT"])
    assert sorted(space.abbreviations[i] for i in np.flatnonzero(hot)) == ["NSR", "PAC", "TAb"]


def test_scp_codes_are_literals_never_code():
    assert parse_scp_codes("{'NORM': 100.0, 'SR': 0}") == {"NORM": 100.0, "SR": 0.0}
    with pytest.raises(RecordError) as exc:
        parse_scp_codes("__import__('os').system('true')", row=7)
    assert exc.value.reason == "bad_labels" and "row 7" in str(exc.value)


def test_rows_with_missing_files_are_skipped(ptbxl_specimens, tmp_path):
    import shutil

    root = tmp_path / "ptbxl"
    shutil.copytree(ptbxl_specimens.root, root)
    (root / "records500" / "00000" / "00002_hr.dat").unlink()
    (root / "records500" / "00000" / "00005_hr.hea").unlink()
    d = discover(root)
    assert [s.reason for s in d.skipped] == ["missing_signal"] and "ecg_id 5" in d.skipped[0].message
    bad = next(r for r in d.refs if r.record_id == "2")
    with pytest.raises(RecordError) as exc:
        read(bad)
    assert exc.value.reason == "missing_signal" and "00002_hr" in str(exc.value)
