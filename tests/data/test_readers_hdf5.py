"""SPH and CODE-15% HDF5 readers: values, padding, labels, laziness, and the malformed-file contract.

The files are written here in the documented layouts (SPH: ``ecg`` (12, n) + ``metadata.csv``; CODE-15%:
``tracings`` (N, 4096, 12) + ``exam_id`` (N,) + ``exams.csv``), seeded and tiny.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest

from ecgscale.data.cache import build_cache, open_cache
from ecgscale.data.readers import discover, read, read_record
from ecgscale.data.readers import hdf5 as h5r
from ecgscale.data.readers.discover import default_label_space
from ecgscale.data.records import STANDARD_LEADS
from ecgscale.data.transforms import PreprocessConfig
from ecgscale.errors import RecordError

SPH_HEADER = "ECG_ID,AHA_Code,Patient_ID,Age,Sex,N,Date,fs,SNOMEDCTCode,SR\n"


def _trace(seed: int, n: int, fs: float = 500.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fs
    x = rng.uniform(0.2, 1.5, (12, 1)) * np.sin(2 * np.pi * 1.1 * t + rng.uniform(0, 6, (12, 1)))
    return (x + 0.3).astype(np.float32)  # offset: no sample is exactly zero, so padding is unambiguous


# --------------------------------------------------------------------------------------------------- CODE-15%
def write_code15(root: Path, seed: int = 0) -> dict[int, np.ndarray]:
    """Two parts: 10 s and 7 s exams zero-padded (centred) to 4096, a padding row (exam_id 0), one unlisted exam."""
    root.mkdir(parents=True, exist_ok=True)
    truth: dict[int, np.ndarray] = {}
    rows = []
    exam = 100
    for part, n_exams in ((0, 3), (1, 2)):
        tracings = np.zeros((n_exams + 1, 4096, 12), dtype=np.float32)
        ids = np.zeros(n_exams + 1, dtype=np.int64)
        for i in range(n_exams):
            n = 4000 if (exam % 2 == 0) else 2800
            start = (4096 - n) // 2
            x = _trace(seed + exam, n, 400.0)
            tracings[i, start : start + n] = x.T
            ids[i] = exam
            truth[exam] = x
            rows.append((exam, exam // 2, 40 + i, "True" if i % 2 else "False", f"part{part}"))
            exam += 1
        with h5py.File(root / f"exams_part{part}.hdf5", "w") as fh:
            fh.create_dataset("tracings", data=tracings, chunks=(1, 4096, 12))
            fh.create_dataset("exam_id", data=ids)
    columns = "exam_id,age,is_male,nn_predicted_age,1dAVb,RBBB,LBBB,SB,ST,AF,patient_id,death,timey,normal_ecg"
    lines = [columns + ",trace_file"]
    for k, (exam_id, patient, age, male, part) in enumerate(rows[:-1]):  # the last exam has no row: skipped
        af = "True" if k % 2 == 0 else "False"
        rbbb = "True" if k == 1 else "False"
        lines.append(f"{exam_id},{age},{male},{age},False,{rbbb},False,False,False,{af},{patient},,,False,{part}")
    (root / "exams.csv").write_text("\n".join(lines) + "\n")
    return truth


def test_code15_discovery_labels_and_padding_stripped(tmp_path):
    truth = write_code15(tmp_path / "code15")
    d = discover(tmp_path / "code15")
    assert [r.record_id for r in d.refs] == ["100", "101", "102", "103"]
    assert [(s.path.name, s.reason) for s in d.skipped] == [("exams_part1.hdf5", "no_labels")]
    assert "exam_id 104" in d.skipped[0].message
    space = default_label_space(d)
    assert space.name == "code15" and space.keys == list(h5r.CODE15_CLASSES)
    assert space.abbreviations == ["IAVB", "RBBB", "LBBB", "SB", "STach", "AF"]
    for ref in d.refs:
        rec = read(ref)
        exam = int(ref.record_id)
        np.testing.assert_array_equal(rec.signal, truth[exam])  # exactly the unpadded samples
        assert rec.n_samples == (4000 if exam % 2 == 0 else 2800) and rec.fs == 400.0
        assert rec.lead_names == STANDARD_LEADS and rec.patient_id == str(exam // 2)
    first, second = (read(r) for r in d.refs[:2])
    assert first.codes == ("AF",) and second.codes == ("RBBB",)
    assert (first.sex, second.sex) == ("F", "M")


def test_code15_reads_one_row_per_record(tmp_path, monkeypatch):
    write_code15(tmp_path / "c")
    d = discover(tmp_path / "c")
    seen = []
    original = h5r._read_slice

    def spy(ds, index, path, name):
        seen.append((name, index))
        return original(ds, index, path, name)

    monkeypatch.setattr(h5r, "_read_slice", spy)
    read(d.refs[2])
    assert seen == [("tracings[2]", 2)]  # one row of (N, 4096, 12), never the whole part


def test_code15_refuses_what_cannot_be_read_lazily(tmp_path, monkeypatch):
    root = tmp_path / "c"
    write_code15(root)
    with h5py.File(root / "exams_part0.hdf5", "r+") as fh:  # one chunk spanning every record, compressed
        data = fh["tracings"][()]
        del fh["tracings"]
        fh.create_dataset("tracings", data=data, chunks=data.shape, compression="gzip")
    monkeypatch.setattr(h5r, "MAX_READ_BYTES", 4096 * 12 * 4 * 2)
    d = discover(root)
    bad = [s for s in d.skipped if s.path.name == "exams_part0.hdf5"]
    assert [s.reason for s in bad] == ["unsupported"] and "chunks" in bad[0].message
    assert all(r.path.name == "exams_part1.hdf5" for r in d.refs)  # the other part is still read


def test_code15_huge_declared_shape_is_refused_before_reading(tmp_path):
    root = tmp_path / "c"
    root.mkdir()
    with h5py.File(root / "exams_part0.hdf5", "w") as fh:  # 1e9 samples declared, nothing written (tiny file)
        fh.create_dataset("tracings", shape=(1, 10**9, 12), dtype="f4", chunks=(1, 1024, 12))
        fh.create_dataset("exam_id", data=np.array([5]))
    (root / "exams.csv").write_text("exam_id,AF\n5,True\n")
    assert (root / "exams_part0.hdf5").stat().st_size < 100_000
    d = discover(root)
    assert d.refs == [] and [s.reason for s in d.skipped] == ["too_large"]


# --------------------------------------------------------------------------------------------------- SPH
def write_sph(root: Path) -> dict[str, np.ndarray]:
    root.mkdir(parents=True, exist_ok=True)
    truth = {}
    meta = [SPH_HEADER]
    for i, n in enumerate((5000, 6000), start=1):
        rid = f"SPH{i:05d}"
        x = _trace(i, n).astype(np.float16)
        with h5py.File(root / f"{rid}.h5", "w") as fh:
            fh.create_dataset("ecg", data=x)
        truth[rid] = x.astype(np.float32)
        meta.append(f'{rid}.h5,1,S{i:05d},{50 + i},{"MF"[i % 2]},{n},2020-01-01,500,"426783006,164889003",1\n')
    (root / "metadata.csv").write_text("".join(meta))
    return truth


def test_sph_records_and_metadata(tmp_path):
    truth = write_sph(tmp_path / "sph")
    d = discover(tmp_path / "sph")
    assert [r.record_id for r in d.refs] == ["SPH00001", "SPH00002"] and d.skipped == []
    assert default_label_space(d).name == "cinc2021"  # SPH labels are SNOMED CT codes
    for ref in d.refs:
        rec = read(ref)
        np.testing.assert_array_equal(rec.signal, truth[ref.record_id])
        assert rec.fs == 500.0 and rec.codes == ("426783006", "164889003") and rec.lead_names == STANDARD_LEADS
    rec = read_record(tmp_path / "sph" / "SPH00002.h5")  # one file: its metadata row is still found
    assert (rec.patient_id, rec.age, rec.sex) == ("S00002", 52.0, "M")


def _bad_sph(root: Path) -> dict[str, str]:
    """File name → expected reason, for every malformed SPH input."""
    write_sph(root)
    meta = (root / "metadata.csv").read_text()
    cases = {}

    def add(name: str, reason: str, n: int = 5000, write=None) -> None:
        path = root / f"{name}.h5"
        if write is not None:
            write(path)
        nonlocal meta
        meta += f'{name}.h5,1,P{name},60,F,{n},2020-01-01,500,"426783006",1\n'
        cases[path.name] = reason

    add("garbage", "unreadable", write=lambda p: p.write_bytes(b"not hdf5 at all" * 100))
    add("empty", "empty", write=lambda p: p.write_bytes(b""))
    add("missing", "missing_signal")
    add("truncated", "unreadable", write=lambda p: p.write_bytes((root / "SPH00001.h5").read_bytes()[:3000]))

    def dataset(data: np.ndarray, name: str = "ecg"):
        def write(p: Path) -> None:
            with h5py.File(p, "w") as fh:
                fh.create_dataset(name, data=data)

        return write

    add("wrongname", "unreadable", write=dataset(np.zeros((12, 5000), "f4"), "signal"))
    add("eightleads", "shape_mismatch", write=dataset(np.ones((8, 5000), "f4")))
    add("threed", "shape_mismatch", write=dataset(np.ones((12, 50, 100), "f4")))
    add("text", "shape_mismatch", write=dataset(np.array([b"a"] * 12)))
    nan = np.ones((12, 5000), "f4")
    nan[3, 10] = np.nan
    add("nan", "non_finite", write=dataset(nan))
    add("shortn", "shape_mismatch", n=4000, write=dataset(np.ones((12, 5000), "f4")))
    (root / "metadata.csv").write_text(meta)
    (root / "unlisted.h5").write_bytes((root / "SPH00001.h5").read_bytes())
    cases["unlisted.h5"] = "no_labels"
    return cases


def test_malformed_sph_files_name_the_file_and_are_counted_skips(tmp_path):
    root = tmp_path / "sph"
    cases = _bad_sph(root)
    d = discover(root)
    reasons = {s.path.name: s.reason for s in d.skipped}
    for ref in d.refs:
        try:
            read(ref)
        except RecordError as exc:
            assert str(exc).startswith(str(ref.path)), str(exc)  # the message names the file first
            clone = pickle.loads(pickle.dumps(exc))  # crosses worker processes intact
            assert (clone.reason, str(clone)) == (exc.reason, str(exc))
            reasons[ref.path.name] = exc.reason
    assert {k: v for k, v in reasons.items() if k in cases} == cases
    summary = build_cache(root, tmp_path / "cache", config=PreprocessConfig(fs=100), workers=1, progress=False)
    assert summary.n_records == 2  # SPH00001, SPH00002
    expected: dict[str, int] = {}
    for reason in cases.values():
        expected[reason] = expected.get(reason, 0) + 1
    assert summary.skipped_by_reason == expected
    cache = open_cache(tmp_path / "cache")
    assert cache.label_space.name == "cinc2021" and cache.labels.sum() == 4  # SR + AF per record


def test_stray_hdf5_files_are_skipped_not_ignored(tmp_path):
    (tmp_path / "lone.h5").write_bytes(b"x")
    (tmp_path / "lone.hdf5").write_bytes(b"x")
    d = discover(tmp_path)
    assert sorted((s.path.name, s.reason) for s in d.skipped) == [("lone.h5", "no_labels"), ("lone.hdf5", "no_labels")]
    with pytest.raises(RecordError, match="part file holds many records") as info:
        read_record(tmp_path / "lone.hdf5")
    assert info.value.reason == "unsupported"


def test_code15_cache_in_its_own_space_or_cinc_when_asked(tmp_path):
    write_code15(tmp_path / "c")
    config = PreprocessConfig(fs=100, window_s=5.0)
    own = build_cache(tmp_path / "c", tmp_path / "own", config=config, workers=1, progress=False)
    assert own.label_space == "code15" and own.n_records == 4 and own.skipped_by_reason == {"no_labels": 1}
    cinc = build_cache(tmp_path / "c", tmp_path / "cinc", config=config, labels="cinc2021", workers=1, progress=False)
    cache, mine = open_cache(tmp_path / "cinc"), open_cache(tmp_path / "own")
    af, rbbb = cache.label_space.abbreviations.index("AF"), cache.label_space.abbreviations.index("RBBB")
    np.testing.assert_array_equal(cache.labels[:, [af, rbbb]], mine.labels[:, [5, 1]])
    assert cinc.label_space == "cinc2021" and cache.labels.sum() == mine.labels.sum() == 3


def test_mutated_hdf5_files_raise_record_errors_only(tmp_path):
    """Byte-level fuzzing (seeded): flipped bytes and truncations of a valid SPH file and of a CODE-15% part
    give a valid record or a RecordError naming the file, never another exception."""
    write_sph(tmp_path / "sph")
    write_code15(tmp_path / "c15")
    sph_raw = (tmp_path / "sph" / "SPH00001.h5").read_bytes()
    part_raw = (tmp_path / "c15" / "exams_part1.hdf5").read_bytes()
    sph_ref = discover(tmp_path / "sph").refs[0]
    part_refs = [r for r in discover(tmp_path / "c15").refs if r.path.name == "exams_part1.hdf5"]
    rng = np.random.default_rng(0)
    outcomes = {"ok": 0, "error": 0}
    for i in range(int(os.environ.get("ECGSCALE_FUZZ_N", "120"))):
        raw = sph_raw if i % 2 == 0 else part_raw
        data = bytearray(raw)
        if rng.random() < 0.3:
            data = data[: int(rng.integers(0, len(data)))]
        else:
            for pos in rng.integers(0, min(len(data), 4096), int(rng.integers(1, 16))):  # the metadata blocks
                data[pos] = int(rng.integers(0, 256))
        target = tmp_path / "sph" / "SPH00001.h5" if i % 2 == 0 else tmp_path / "c15" / "exams_part1.hdf5"
        target.write_bytes(bytes(data))
        try:
            if i % 2 == 0:
                rec = read(sph_ref)
                assert rec.signal.shape[0] == 12 and np.isfinite(rec.signal).all()
            else:
                h5r.code15_refs(tmp_path / "c15")
                for ref in part_refs:
                    rec = read(ref)
                    assert rec.signal.shape[0] == 12 and np.isfinite(rec.signal).all()
            outcomes["ok"] += 1
        except RecordError as exc:
            assert str(exc).startswith(str(target)), str(exc)
            outcomes["error"] += 1
    assert outcomes["error"] > 10  # the mutations did reach the parser
