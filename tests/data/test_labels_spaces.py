"""Label vocabularies: the CinC 2021 scored space stays stable; Tianchi and PTB-XL spaces and translations."""

from __future__ import annotations

import numpy as np
import pytest

from ecgscale.data import labels


def test_cinc2021_scored_is_stable():
    space = labels.cinc2021_scored()
    keys, weights = labels.cinc2021_weights()
    assert len(space) == 26 and space.keys == keys and weights.shape == (26, 26)
    assert space.abbreviations[:6] == ["AF", "AFL", "BBB", "Brady", "LBBB", "RBBB"]
    assert space.encode(["164909002", "733534002"]).sum() == 1  # equivalents merged
    assert labels.LabelSpace.from_dict(space.to_dict()).keys == space.keys


def test_aliases_keep_keys_and_add_codes():
    plain = labels.cinc2021_scored()
    aliased = labels.cinc2021_scored(aliases={"房颤": "164889003", "x": "164909002", "ignored": "999"})
    assert aliased.keys == plain.keys and aliased.name == plain.name
    assert aliased.classes[0].codes == ("164889003", "房颤")
    assert aliased.classes[plain.index_of("733534002")].codes[-1] == "x"
    assert aliased.unknown(["ignored"]) == ["ignored"]
    assert plain.index_of("房颤") is None  # the cached base space is not modified


def test_tianchi_maps_point_at_scored_classes():
    table = labels.tianchi_to_snomed()
    scored = labels.cinc2021_scored()
    assert set(table) == {k for k, v in labels.TIANCHI_NAME_MAP.items() if v is not None}
    for name, code in table.items():
        i = scored.index_of(code)
        assert i is not None and scored.abbreviations[i] == labels.TIANCHI_NAME_MAP[name], name
    for scp, code in labels.ptbxl_to_snomed().items():
        assert scored.abbreviations[scored.index_of(code)] == labels.PTBXL_SCP_MAP[scp], scp


def test_tianchi_space_groups_and_order():
    space = labels.tianchi_space(["心房颤动", "ST段改变", "心房颤动", "", "QRS低电压", "新名字"])
    assert space.keys == ["心房颤动", "ST段改变", "QRS低电压", "新名字"]
    assert space.abbreviations == ["AF", "ST段改变", "LQRSV", "新名字"]
    assert [c.group for c in space.classes] == ["rhythm", None, "morphology", None]
    assert space.groups == {"rhythm": [0], "morphology": [2]}
    assert space.encode(["新名字", "未知"]).tolist() == [0, 0, 0, 1] and space.unknown(["未知"]) == ["未知"]
    assert labels.LabelSpace.from_dict(space.to_dict()).keys == space.keys


def test_translate_codes_keeps_unknowns_in_order():
    mapping = {"心房颤动": "164889003", "房颤": "164889003"}
    out = labels.translate_codes(["心房颤动", "ST段改变", "房颤", "心房颤动"], mapping)
    assert out == ("164889003", "ST段改变")


@pytest.mark.parametrize("task", labels.PTBXL_TASKS)
def test_ptbxl_spaces_from_a_table(task):
    table = {
        "NORM": {
            "description": "normal ECG",
            "diagnostic": "1.0",
            "form": "",
            "rhythm": "",
            "diagnostic_class": "NORM",
            "diagnostic_subclass": "NORM",
        },
        "IMI": {
            "description": "inferior MI",
            "diagnostic": "1.0",
            "form": "",
            "rhythm": "",
            "diagnostic_class": "MI",
            "diagnostic_subclass": "IMI",
        },
        "SR": {
            "description": "sinus rhythm",
            "diagnostic": "",
            "form": "",
            "rhythm": "1.0",
            "diagnostic_class": "",
            "diagnostic_subclass": "",
        },
        "PVC": {
            "description": "ventricular premature complex",
            "diagnostic": "",
            "form": "1.0",
            "rhythm": "",
            "diagnostic_class": "",
            "diagnostic_subclass": "",
        },
    }
    space = labels.ptbxl_space(task, table)
    expected = {
        "all": ["IMI", "NORM", "PVC", "SR"],
        "diagnostic": ["IMI", "NORM"],
        "form": ["PVC"],
        "rhythm": ["SR"],
        "subdiagnostic": ["IMI", "NORM"],
        "superdiagnostic": ["MI", "NORM"],
    }[task]
    assert space.keys == expected and space.name == f"ptbxl-{task}"
    hot = space.encode(["IMI", "SR", "PVC"])
    assert (
        hot.dtype == np.uint8
        and hot.sum()
        == {"all": 3, "diagnostic": 1, "form": 1, "rhythm": 1, "subdiagnostic": 1, "superdiagnostic": 1}[task]
    )


def _doc_table(marker: str) -> list[list[str]]:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "labels.md").read_text(encoding="utf-8")
    block = text.split(f"<!-- {marker} -->", 1)[1].strip().split("\n\n", 1)[0]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in block.splitlines()[2:]]


def test_docs_tables_match_the_code():
    """docs/labels.md documents exactly the groups and mappings the code uses."""
    scored = labels.cinc2021_scored()
    groups = {row[1]: row[0] for row in _doc_table("groups-table")}
    assert groups == {c.abbreviation: c.group for c in scored.classes}
    tianchi = {row[0]: (None if row[1] == "—" else row[1]) for row in _doc_table("tianchi-table")}
    assert tianchi == dict(labels.TIANCHI_NAME_MAP)
    ptbxl = {row[0]: row[1] for row in _doc_table("ptbxl-table")}
    assert ptbxl == dict(labels.PTBXL_SCP_MAP)
