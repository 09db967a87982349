"""Fixtures that write small specimens of every real format (and a corpus of malformed files) at test time.

Nothing binary is committed: each specimen is generated here, seeded, with the ecgscale writers (CinC 2021,
Tianchi) or ``wfdb.wrsamp`` (PTB-XL), then edited by hand where a quirk of the real files is needed.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from ecgscale.data.records import STANDARD_LEADS
from ecgscale.data.writers import write_cinc2021, write_tianchi, write_tianchi_classes, write_tianchi_labels


def ecg_like(seed: int, n_leads: int, n: int, fs: float) -> np.ndarray:
    """A smooth, seeded multi-lead trace in mV (values are exact after int16 quantisation at gain 1000)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fs
    phase = rng.uniform(0, 2 * np.pi, (n_leads, 1))
    amp = rng.uniform(0.2, 1.5, (n_leads, 1))
    sig = amp * np.sin(2 * np.pi * 1.2 * t + phase) + 0.05 * rng.standard_normal((n_leads, n))
    return (np.rint(sig * 1000) / 1000).astype(np.float32)


def edit_header(hea: Path, old: str, new: str, count: int = -1) -> None:
    text = hea.read_text()
    assert old in text, f"{old!r} not in {hea}"
    hea.write_text(text.replace(old, new, count))


@dataclass
class CincSpecimens:
    root: Path
    records: dict[str, Path] = field(default_factory=dict)  # record id -> .hea
    signals: dict[str, np.ndarray] = field(default_factory=dict)  # record id -> mV written


@pytest.fixture(scope="session")
def cinc_specimens(tmp_path_factory: pytest.TempPathFactory) -> CincSpecimens:
    """A multi-source CinC 2021 tree with the rates (500/257/1000 Hz) and header quirks of the real files."""
    root = tmp_path_factory.mktemp("cinc")
    spec = CincSpecimens(root)

    def add(rel: str, rid: str, fs: float, seconds: float, seed: int, **kw) -> Path:
        sig = ecg_like(seed, 12, int(fs * seconds), fs)
        hea = write_cinc2021(root / rel, rid, sig, fs, **kw)
        spec.records[rid] = hea
        spec.signals[rid] = sig
        return hea

    add("training/cpsc_2018/g1", "A0001", 500, 10, 1, age=74, sex="M", codes=["59118001", "164889003"])
    hea = add("training/cpsc_2018/g1", "A0002", 500, 12, 2, age=None, sex="F", codes=["426783006"])
    # wfdb-style spaced comments, NaN age, one-letter sex, duplicate/trailing/double commas, "1000.0(0)/mV"
    edit_header(hea, "#Age: Unknown", "# Age: NaN")
    edit_header(hea, "#Sex: Female", "# Sex: F")
    edit_header(hea, "#Dx: 426783006", "# Dx: 426783006,,164934002,426783006,")
    edit_header(hea, " 1000/mV ", " 1000.0(0)/mV ")
    edit_header(hea, " 0 aVR\n", " 0 AVR\n")  # upper-case lead names occur; normalised to aVR
    add(
        "training/st_petersburg_incart/g1", "I0001", 257, 60, 3, age=None, sex=None, codes=["164884008", "999999999"]
    )  # a known unscored code and an unknown one
    hea = add("training/ptb/g1", "S0001", 1000, 15, 4, age=63, sex="M", codes=["164865005"], gain=500.0)
    edit_header(hea, " 500/mV ", " 500(12)/mV ", 1)  # a non-zero baseline on lead I only
    add("elsewhere/georgia_like", "E0001", 500, 10, 5, age=51.5, sex="Female", codes=["164889003"])
    return spec


@dataclass
class TianchiSpecimens:
    root: Path
    label_file: Path
    classes_file: Path
    records: dict[str, Path] = field(default_factory=dict)
    units: dict[str, np.ndarray] = field(default_factory=dict)  # id -> (8, n) integer units
    labels: dict[str, tuple] = field(default_factory=dict)


TIANCHI_CLASSES = ["窦性心律", "窦性心动过缓", "心房颤动", "T波改变", "电轴左偏", "完全性右束支传导阻滞", "ST段改变"]


@pytest.fixture(scope="session")
def tianchi_specimens(tmp_path_factory: pytest.TempPathFactory) -> TianchiSpecimens:
    """A Tianchi round-2-like folder: label file and class list beside a folder of record text files."""
    root = tmp_path_factory.mktemp("tianchi")
    rec_dir = root / "hf_round2_train"
    rng = np.random.default_rng(11)
    rows = [
        ("100", 56, "F", ["窦性心律", "电轴左偏"]),
        ("101", None, None, ["心房颤动", "完全性右束支传导阻滞", "心房颤动"]),
        ("102", 70, "M", ["T波改变", "ST段改变", "未知的诊断"]),  # the last name is in no class list
    ]
    units: dict[str, np.ndarray] = {}
    records: dict[str, Path] = {}
    for rid, *_ in rows:
        u = rng.integers(-600, 600, size=(8, 5000))
        units[rid] = u
        records[rid] = write_tianchi(
            rec_dir, rid, u * 0.00488, lead_names=("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
        )
    label_file = write_tianchi_labels(root / "hf_round2_train.txt", rows)
    classes_file = write_tianchi_classes(root / "hf_round2_arrythmia.txt", TIANCHI_CLASSES)
    # test-set records: no label row anywhere, and a row without names in a subject file
    write_tianchi(rec_dir, "900", rng.integers(-600, 600, size=(8, 5000)) * 0.00488)
    write_tianchi(rec_dir, "901", rng.integers(-600, 600, size=(8, 5000)) * 0.00488)
    write_tianchi_labels(root / "hf_round1_subA.txt", [("901", 40, "M", [])])
    return TianchiSpecimens(root, label_file, classes_file, records, units, {r[0]: r[1:] for r in rows})


SCP_STATEMENTS = [
    # statement, description, diagnostic, form, rhythm, diagnostic_class, diagnostic_subclass
    ("NORM", "normal ECG", 1, "", "", "NORM", "NORM"),
    ("IMI", "inferior myocardial infarction", 1, "", "", "MI", "IMI"),
    ("ASMI", "anteroseptal myocardial infarction", 1, "", "", "MI", "AMI"),
    ("CRBBB", "complete right bundle branch block", 1, "", "", "CD", "CRBBB"),
    ("LAFB", "left anterior fascicular block", 1, "", "", "CD", "LAFB/LPFB"),
    ("NDT", "non-diagnostic T abnormalities", 1, 1, "", "STTC", "STTC"),
    ("LVH", "left ventricular hypertrophy", 1, "", "", "HYP", "LVH"),
    ("PVC", "ventricular premature complex", "", 1, "", "", ""),
    ("LVOLT", "low QRS voltages in the frontal and horizontal leads", "", 1, "", "", ""),
    ("SR", "sinus rhythm", "", "", 1, "", ""),
    ("AFIB", "atrial fibrillation", "", "", 1, "", ""),
]

PTBXL_ROWS = [
    # ecg_id, patient_id, age, sex, scp_codes, strat_fold
    (1, 15709.0, 56.0, 1, "{'NORM': 100.0, 'LVOLT': 0.0, 'SR': 0.0}", 3),
    (2, 13243.0, 19.0, 0, "{'NORM': 80.0, 'SBRAD': 0.0}", 9),
    (3, 15709.0, 57.0, 1, "{'IMI': 35.0, 'ASMI': 100.0, 'PVC': 100.0, 'SR': 0.0}", 10),
    (4, 17014.0, 300.0, 0, "{'CRBBB': 100.0, 'LAFB': 100.0, 'AFIB': 0.0}", 1),
    (5, 17448.0, 24.0, 1, "{'NDT': 100.0, 'LVH': 50.0}", 8),
]


@dataclass
class PtbxlSpecimens:
    root: Path
    signals: dict[tuple[int, int], np.ndarray]  # (ecg_id, fs) -> (n, 12) physical values written


@pytest.fixture(scope="session")
def ptbxl_specimens(tmp_path_factory: pytest.TempPathFactory) -> PtbxlSpecimens:
    """A five-record PTB-XL folder: both CSVs and WFDB format-16 records at 100 and 500 Hz (wfdb.wrsamp)."""
    import wfdb

    root = tmp_path_factory.mktemp("ptbxl")
    signals = {}
    with open(root / "ptbxl_database.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "ecg_id",
                "patient_id",
                "age",
                "sex",
                "height",
                "weight",
                "scp_codes",
                "strat_fold",
                "filename_lr",
                "filename_hr",
            ]
        )
        for ecg_id, patient, age, sex, scp, fold in PTBXL_ROWS:
            names = {}
            for fs, folder, suffix in ((100, "records100", "lr"), (500, "records500", "hr")):
                name = f"{ecg_id:05d}_{suffix}"
                out = root / folder / "00000"
                out.mkdir(parents=True, exist_ok=True)
                sig = ecg_like(100 * ecg_id + fs, 12, 10 * fs, fs).T.astype(np.float64)
                wfdb.wrsamp(
                    name,
                    fs=fs,
                    units=["mV"] * 12,
                    sig_name=list(STANDARD_LEADS),
                    p_signal=sig,
                    fmt=["16"] * 12,
                    adc_gain=[1000.0] * 12,
                    baseline=[0] * 12,
                    write_dir=str(out),
                )
                signals[(ecg_id, fs)] = sig
                names[fs] = f"{folder}/00000/{name}"
            w.writerow([ecg_id, patient, age, sex, "", "", scp, fold, names[100], names[500]])
    with open(root / "scp_statements.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["", "description", "diagnostic", "form", "rhythm", "diagnostic_class", "diagnostic_subclass"])
        for row in SCP_STATEMENTS:
            w.writerow([("" if v == "" else f"{float(v):.1f}") if i in (2, 3, 4) else v for i, v in enumerate(row)])
    return PtbxlSpecimens(root, signals)


@dataclass(frozen=True)
class Bad:
    path: Path  # the file to read
    reason: str  # the expected RecordError.reason
    says: str  # a fragment the message must contain


def write_malformed(root: Path) -> dict[str, Bad]:
    """The corpus of broken inputs, one per subfolder; returns name -> what reading it must report."""
    rng = np.random.default_rng(3)
    bad: dict[str, Bad] = {}

    def good(name: str, rid: str, n: int = 1000, leads: int = 12) -> Path:
        return write_cinc2021(
            root / name, rid, ecg_like(7, leads, n, 500), 500, codes=["426783006"], lead_names=STANDARD_LEADS[:leads]
        )

    hea = good("truncated_mat", "T1")
    mat = hea.with_suffix(".mat")
    mat.write_bytes(mat.read_bytes()[: 24 + 5000])
    bad["truncated_mat"] = Bad(hea, "truncated", "truncated")

    hea = good("samples_mismatch", "T2", n=1000)
    edit_header(hea, "T2 12 500 1000", "T2 12 500 1200")
    bad["samples_mismatch"] = Bad(hea, "shape_mismatch", "header declares 1200")

    hea = good("leads_mismatch", "T3")
    from ecgscale.data.writers import write_mat_v4

    write_mat_v4(hea.with_suffix(".mat"), np.zeros((8, 1000), dtype=np.int16))
    bad["leads_mismatch"] = Bad(hea, "shape_mismatch", "8 rows but the header declares 12 leads")

    hea = good("signal_count", "T4")
    lines = hea.read_text().splitlines(keepends=True)
    hea.write_text("".join(lines[:5] + lines[6:]))  # 11 signal lines for "12" on the record line
    bad["signal_count"] = Bad(hea, "bad_header", "declares 12 signals but 11 signal lines")

    hea = good("nonnumeric_gain", "T5")
    edit_header(hea, " 1000/mV 16 0", " abc/mV 16 0", 1)
    bad["nonnumeric_gain"] = Bad(hea, "bad_header", "gain 'abc' is not a number")

    hea = good("missing_mat", "T6")
    hea.with_suffix(".mat").unlink()
    bad["missing_mat"] = Bad(hea, "missing_signal", "not found")

    (root / "empty_header").mkdir()
    empty = root / "empty_header" / "T7.hea"
    empty.write_bytes(b"")
    bad["empty_header"] = Bad(empty, "empty", "empty")

    (root / "garbage_header").mkdir()
    garbage = root / "garbage_header" / "T8.hea"
    garbage.write_bytes(rng.integers(0, 256, 300, dtype=np.uint8).tobytes() + b"\x00")
    bad["garbage_header"] = Bad(garbage, "bad_header", "binary data")

    hea = good("wrong_leads", "T9")
    edit_header(hea, " 0 V3\n", " 0 X7\n")
    bad["wrong_leads"] = Bad(hea, "bad_leads", "'X7'")

    hea = good("wfdb_nan", "T10")
    val = np.zeros((12, 1000), dtype=np.int16)
    val[4, 10:20] = -32768
    write_mat_v4(hea.with_suffix(".mat"), val)
    bad["wfdb_nan"] = Bad(hea, "non_finite", "-32768")

    hea = good("float_nan_mat", "T11")
    fval = np.zeros((12, 1000))
    fval[2, 5] = np.nan
    import scipy.io

    scipy.io.savemat(hea.with_suffix(".mat"), {"val": fval}, format="4")
    bad["float_nan_mat"] = Bad(hea, "non_finite", "NaN/infinite samples in lead(s) ['III']")

    hea = good("empty_mat", "T12")
    hea.with_suffix(".mat").write_bytes(b"")
    bad["empty_mat"] = Bad(hea, "empty", "empty")

    hea = good("garbage_mat", "T13")
    hea.with_suffix(".mat").write_bytes(rng.integers(0, 256, 24 + 24000, dtype=np.uint8).tobytes())
    bad["garbage_mat"] = Bad(hea, "unreadable", "not a readable MATLAB file")

    t = root / "tianchi_bad"
    t.mkdir()
    rows = "\n".join(" ".join(str(v) for v in rng.integers(-100, 100, 8)) for _ in range(50))
    header = "I II V1 V2 V3 V4 V5 V6\n"
    cases = {
        "nan": (header + rows + "\n1 2 3 nan 5 6 7 8\n", "non_finite", "NaN/infinite"),
        "inf": (header + rows + "\n1 2 3 4 5 6 7 -inf\n", "non_finite", "lead(s) ['V6']"),
        "columns": (header + rows + "\n1 2 3 4 5 6 7\n", "bad_row", "file line 52"),
        "text": (header + rows + "\n1 2 3 x4 5 6 7 8\n", "bad_row", "x4"),
        "fraction": (header + rows + "\n1 2 3 4.5 5 6 7 8\n", "bad_row", "non-integer value 4.5"),
        "leads": ("I II V1 V2 V3 V4 V5 X9\n" + rows + "\n", "bad_leads", "'X9'"),
        "empty": ("", "empty", "empty"),
        "header_only": (header, "empty", "no sample rows"),
    }
    for name, (text, reason, says) in cases.items():
        p = t / f"{name}.txt"
        p.write_text(text)
        bad[f"tianchi_{name}"] = Bad(p, reason, says)
    write_tianchi_labels(t / "labels.txt", [(name, 40, "M", ["窦性心律"]) for name in cases])
    return bad


@pytest.fixture(scope="session")
def malformed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Bad]]:
    root = tmp_path_factory.mktemp("malformed")
    return root, write_malformed(root)
