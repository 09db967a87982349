"""Fixtures for the tests on real ECG files (``../shared/realdata`` beside the clone; never copied into the repo).

The tests skip, with the path in the reason, only when that folder is absent (a user's clone without it); CI
and the development machines have it, so they run in ``make test``. PTB-XL is shipped packed: ``ptbxl_root``
unpacks it once into pytest's cache folder (``.pytest_cache/d/realdata``, gitignored, about 530 MB, ~25 s) and
reuses it across runs while its stamp matches the packed copy; ``ECGSCALE_REALDATA_CACHE`` chooses another
folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
REALDATA = REPO_ROOT.parent / "shared" / "realdata"
_STAMP = "ecgscale-unpacked.json"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The shared real-data folder, or a skip naming where it was looked for."""
    if not REALDATA.is_dir():
        pytest.skip(f"real ECG data not found at {REALDATA} (../shared/realdata beside the clone)")
    return REALDATA


@pytest.fixture(scope="session")
def cinc_dir(realdata: Path) -> Path:
    path = realdata / "cinc2021"
    if not path.is_dir():
        pytest.fail(f"{realdata} exists but has no cinc2021/ folder")
    return path


def _fingerprint(pack: Path) -> dict[str, object]:
    """What identifies the packed copy: size and mtime of its index and database files."""
    out: dict[str, object] = {}
    for name in ("index.tsv", "ptbxl_database.csv", "headers.tar.xz"):
        st = (pack / name).stat()
        out[name] = [st.st_size, st.st_mtime_ns]
    return out


def _cache_folder(config: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    env = os.environ.get("ECGSCALE_REALDATA_CACHE")
    if env:
        return Path(env)
    cache = getattr(config, "cache", None)  # None under -p no:cacheprovider
    if cache is not None:
        return Path(cache.mkdir("realdata"))
    return tmp_path_factory.mktemp("realdata")


@pytest.fixture(scope="session")
def ptbxl_root(realdata: Path, pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PTB-XL root (``records100/``, ``ptbxl_database.csv``, ``scp_statements.csv``) unpacked once and reused.

    A stamp written after a complete unpack records the packed copy's fingerprint; a missing or different stamp
    (an interrupted unpack, a new shipment) means the folder is removed and unpacked again. A file lock keeps two
    test runs in the same checkout from unpacking into one folder at once.
    """
    from filelock import FileLock

    pack = realdata / "ptbxl"
    folder = _cache_folder(pytestconfig, tmp_path_factory)
    folder.mkdir(parents=True, exist_ok=True)
    root = folder / "ptbxl"
    want = _fingerprint(pack)
    with FileLock(str(folder / ".unpack.lock")):
        stamp = root / _STAMP
        try:
            done = json.loads(stamp.read_text()) == want
        except (OSError, ValueError):
            done = False
        if not done:
            shutil.rmtree(root, ignore_errors=True)
            proc = subprocess.run(
                [sys.executable, str(realdata / "unpack.py"), str(folder)], capture_output=True, text=True, check=False
            )
            if proc.returncode != 0:
                pytest.fail(f"unpack.py failed ({proc.returncode}): {proc.stderr[-2000:]}")
            stamp.write_text(json.dumps(want))
    return root


def make_ptbxl_subset(ptbxl_root: Path, out: Path, per_fold: int) -> Path:
    """A PTB-XL root at ``out``: the first ``per_fold`` records of each shipped fold, records symlinked."""
    import csv

    with open(ptbxl_root / "ptbxl_database.csv", encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or ())
        by_fold: dict[str, list[dict[str, str]]] = {}
        for row in reader:
            rows = by_fold.setdefault(row["strat_fold"], [])
            if len(rows) < per_fold:
                rows.append(row)
    keep = [row for fold in sorted(by_fold, key=int) for row in by_fold[fold]]
    with open(out / "ptbxl_database.csv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(keep)
    shutil.copy(ptbxl_root / "scp_statements.csv", out / "scp_statements.csv")
    for row in keep:
        for ext in (".hea", ".dat"):
            target = out / (row["filename_lr"] + ext)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(ptbxl_root / (row["filename_lr"] + ext))
    return out


@pytest.fixture(scope="session")
def ptbxl_subset_of(ptbxl_root: Path, tmp_path_factory: pytest.TempPathFactory):
    """``ptbxl_subset_of(per_fold, name)``: a fresh PTB-XL root with the first ``per_fold`` records of each fold."""
    return lambda per_fold, name: make_ptbxl_subset(ptbxl_root, tmp_path_factory.mktemp(name), per_fold)


@pytest.fixture(scope="session")
def ptbxl_subset(ptbxl_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small PTB-XL root: the first 12 records of each shipped fold (1–9), records linked, database filtered."""
    return make_ptbxl_subset(ptbxl_root, tmp_path_factory.mktemp("ptbxl_subset"), 12)
