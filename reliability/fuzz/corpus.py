"""Write the seed corpus of every fuzz target: small real-format specimens, in each target's input layout.

``python -m reliability.fuzz.corpus`` rewrites ``reliability/fuzz/corpus/<target>/seed_*`` (deterministic; the
committed seeds are its output). The specimens come from the ecgscale writers (the same bytes as the CinC 2021
and Tianchi files, see ``/work/shared/reference/FORMATS.md``) plus the quirks seen in the wild, so the fuzzer
starts from inputs that reach deep into each parser instead of rediscovering the grammar from random bytes.

The ``fz_<sha1>`` files beside them are inputs the fuzzer found to reach new coverage during the long runs, kept
so a 60 s CI run starts where those ended; ``tests/reliability/test_fuzz_regressions.py`` replays every one.
"""

from __future__ import annotations

import io
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np
import scipy.io

from ecgscale.data.records import STANDARD_LEADS
from ecgscale.data.writers import write_cinc2021, write_tianchi, write_tianchi_classes, write_tianchi_labels
from reliability.fuzz.targets import _PTBXL_COLUMNS, MAT_PREFIX, WFDB_LEADS, WFDB_SAMPLES, wfdb_header_text

__all__ = ["CORPUS_DIR", "CRASHERS_DIR", "seeds", "write_corpus"]

CORPUS_DIR = Path(__file__).parent / "corpus"
CRASHERS_DIR = Path(__file__).parent / "crashers"


def _signal(seed: int, n_leads: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 500.0
    return np.sin(2 * np.pi * 1.1 * t + rng.uniform(0, 6, (n_leads, 1))) * rng.uniform(0.2, 1.5, (n_leads, 1))


def _cinc(tmp: Path, rid: str, n_leads: int, n: int, **kw) -> tuple[bytes, bytes]:
    hea = write_cinc2021(tmp, rid, _signal(len(rid) + n, n_leads, n), 500, lead_names=STANDARD_LEADS[:n_leads], **kw)
    return hea.read_bytes(), hea.with_suffix(".mat").read_bytes()


def _mat_v4_big_endian(values: np.ndarray) -> bytes:
    """A big-endian MATLAB v4 int16 ``val`` (type 1030), which the fast path leaves to scipy."""
    rows, cols = values.shape
    head = struct.pack(">5i", 1030, rows, cols, 0, 4) + b"val\x00"
    return head + values.astype(">i2").T.tobytes()


def _mat_v5(values: np.ndarray) -> bytes:
    """A MATLAB v5 file (refused by the reader); its 116-byte text header holds a timestamp, fixed here."""
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"val": values})
    return b"MATLAB 5.0 MAT-file, ecgscale fuzz seed".ljust(116, b" ") + buf.getvalue()[116:]


def seeds() -> dict[str, dict[str, bytes]]:
    """Target → {seed file name → bytes}."""
    out: dict[str, dict[str, bytes]] = {}
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        hea12, mat12 = _cinc(tmp, "A0001", 12, 40, age=74, sex="M", codes=["59118001", "164889003"])
        hea3, mat3 = _cinc(tmp, "Q0002", 3, 25, age=None, sex="F", codes=["426783006"])
        quirks = (
            hea3.decode()
            .replace("#Age: Unknown", "# Age: NaN")
            .replace("#Sex: Female", "# Sex: F")
            .replace("1000/mV", "1000.0(0)/mV")
            .replace("#Dx: 426783006", "#Dx: 426783006,,426783006,")
        )
        no_len = hea3.decode().splitlines()
        no_len[0] = "Q0002 3 257/1(0)"
        units = hea3.decode().replace("1000/mV", "1000000/uV").replace(" 16 0 ", " 16 0 ", 1)
        out["cinc_header"] = {
            "seed_cinc_12lead.hea": hea12,
            "seed_cinc_3lead_quirks.hea": quirks.encode(),
            "seed_cinc_no_length.hea": ("\n".join(no_len) + "\n").encode(),
            "seed_cinc_uv_trailing_comment.hea": units.replace("\n", " # note\n", 1).encode(),
            "seed_cinc_zero_gain.hea": hea3.decode().replace("1000/mV", "0").encode(),
        }

        def mat_input(flags: int, leads_field: int, samples: int, mat: bytes) -> bytes:
            return MAT_PREFIX.pack(flags, leads_field, samples) + mat

        digital3 = np.rint(_signal(3, 3, 25) * 1000).astype(np.int16)
        out["mat_v4"] = {
            "seed_mat_12x40.bin": mat_input(1, 11, 40, mat12),
            "seed_mat_3x25_no_length.bin": mat_input(0, 2, 0, mat3),
            "seed_mat_claims_1e12_samples.bin": mat_input(1, 2, 10**12, mat3),
            "seed_mat_leads_disagree.bin": mat_input(1, 5, 25, mat3),
            "seed_mat_truncated.bin": mat_input(1, 2, 25, mat3[:-7]),
            "seed_mat_big_endian.bin": mat_input(1, 2, 25, _mat_v4_big_endian(digital3)),
            "seed_mat_v5.bin": mat_input(1, 2, 25, _mat_v5(digital3)),
        }

        rng = np.random.default_rng(1)
        dat = rng.integers(-3000, 3000, (WFDB_SAMPLES, WFDB_LEADS), dtype="<i2")
        out["wfdb_record"] = {
            "seed_wfdb_header.bin": b"\x00" + wfdb_header_text().encode(),
            "seed_wfdb_header_no_length.bin": b"\x00" + wfdb_header_text().replace(" 500 50\n", " 500\n").encode(),
            "seed_wfdb_header_claims_1e12.bin": b"\x00" + wfdb_header_text(10**12).encode(),
            "seed_wfdb_header_fmt212.bin": b"\x00" + wfdb_header_text(fmt="212").encode(),
            "seed_wfdb_dat.bin": b"\x01" + dat.tobytes(),
            "seed_wfdb_dat_short.bin": b"\x01" + dat.tobytes()[:333],
        }

        t8 = _signal(8, 8, 30)
        rec = write_tianchi(tmp, "T0001", t8).read_bytes()
        lines = rec.decode().splitlines()
        out["tianchi_signal"] = {
            "seed_tianchi_8x30.txt": rec,
            "seed_tianchi_crlf.txt": rec.replace(b"\n", b"\r\n"),
            "seed_tianchi_nan.txt": ("\n".join([*lines[:5], "nan 1 2 3 4 5 6 7", *lines[5:]]) + "\n").encode(),
            "seed_tianchi_header_only.txt": (lines[0] + "\n").encode(),
        }

        names = ["窦性心律", "QRS低电压", "T波改变", "电轴左偏"]
        labels = write_tianchi_labels(
            tmp / "hf_round2_train.txt",
            [("T0001", 56, "MALE", names[:2]), ("T0002", None, "FEMALE", names[2:]), ("T0003", 300, None, [])],
        ).read_bytes()
        classes = write_tianchi_classes(tmp / "hf_round2_arrythmia.txt", names).read_bytes()
        out["tianchi_labels"] = {
            "seed_labels_utf8.txt": b"\x00" + labels,
            "seed_labels_gb18030.txt": b"\x00" + labels.decode().encode("gb18030"),
            "seed_labels_bom.txt": b"\x00" + "\ufeff".encode() + labels,
            "seed_classes_utf8.txt": b"\x01" + classes,
            "seed_classes_gb18030.txt": b"\x01" + classes.decode().encode("gb18030"),
        }

    rows = [
        "1,15709.0,56.0,1,\"{'NORM': 100.0, 'LVOLT': 0.0, 'SR': 0.0}\",3,records100/00000/00001_lr,"
        "records500/00000/00001_hr",
        "2,13243.0,19.0,0,\"{'NORM': 80.0, 'SBRAD': 0.0}\",9,records100/00000/00002_lr,records500/00000/00002_hr",
        "3,20372.0,300,1,{},10,records100/00000/00003_lr,records500/00000/../00000/00001_hr",
    ]
    out["ptbxl_scp_codes"] = {
        "seed_scp_norm.txt": b"\x00{'NORM': 100.0, 'LVOLT': 0.0, 'SR': 0.0}",
        "seed_scp_ints.txt": b"\x00{'IMI': 15, 'ASMI': 15.0, 'ABQRS': 0}",
        "seed_scp_empty.txt": b"\x00{}",
        "seed_db_rows.csv": b"\x01" + ("\n".join(rows) + "\n").encode(),
        "seed_db_header_only.csv": b"\x01" + _PTBXL_COLUMNS.encode(),
    }
    return out


def write_corpus(root: Path = CORPUS_DIR) -> int:
    """Write every seed under ``root/<target>/``; returns the number of bytes written."""
    total = 0
    for target, files in seeds().items():
        folder = root / target
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (folder / name).write_bytes(data)
            total += len(data)
    return total


if __name__ == "__main__":
    n = write_corpus(Path(sys.argv[1]) if len(sys.argv) > 1 else CORPUS_DIR)
    sys.stdout.write(f"{n} bytes of seeds written\n")
