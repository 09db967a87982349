"""Replay every committed seed and crasher through its fuzz target, and check each reader against lying headers.

Fast (no fuzzing): a crasher found once stays fixed, because its bytes run through the same target on every CI
run. The 10**12-sample tests check what the fuzzer cannot see directly: the reader refuses the claim before it
allocates, so the Python heap peak stays small (``tracemalloc``).
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from reliability.fuzz.runner import corpus_files, crasher_files
from reliability.fuzz.targets import TARGETS, mat_header_text, run_target, wfdb_header_text

from ecgscale.data.readers import read_record
from ecgscale.data.readers.cinc2021 import parse_cinc_header_text, read_cinc2021, read_wfdb_record
from ecgscale.data.writers import write_cinc2021, write_mat_v4
from ecgscale.errors import RecordError

CRASHERS = [(t, p) for t in TARGETS for p in crasher_files(t)]
HUGE = 10**12
HEAP_LIMIT = 50 * 2**20  # bytes of Python heap a refused 10**12-sample claim may cost (a real record: ~0.5 MB)


def test_every_target_has_seeds_and_every_crasher_a_note():
    assert all(len(corpus_files(t)) >= 4 for t in TARGETS)
    missing = [p for _, p in CRASHERS if not p.with_name(p.name + ".txt").is_file()]
    assert not missing, f"crashers without their one-line .txt note: {missing}"


@pytest.mark.parametrize("target", list(TARGETS))
def test_replay_corpus(target):
    """Every seed (and fuzzer-found corpus entry) parses to a valid result or raises the target's allowed error."""
    failures = []
    for path in corpus_files(target):
        try:
            run_target(target, path.read_bytes())
        except Exception as exc:
            failures.append(f"{path.name}: {type(exc).__name__}: {exc}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(("target", "path"), CRASHERS, ids=[f"{t}/{p.name}" for t, p in CRASHERS])
def test_replay_crasher(target, path):
    """An input that once broke a reader now parses or raises the allowed error (anything else fails here)."""
    run_target(target, path.read_bytes())


def _peak_heap(fn) -> tuple[BaseException | None, int]:
    tracemalloc.start()
    try:
        fn()
    except Exception as exc:
        err = exc
    else:
        err = None
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return err, peak


def test_cinc_header_claiming_1e12_samples_is_refused_by_the_mat(tmp_path):
    write_cinc2021(tmp_path, "m", np.zeros((3, 25)), 500, lead_names=("I", "II", "III"))
    (tmp_path / "m.hea").write_text(mat_header_text(3, HUGE), encoding="ascii")
    err, peak = _peak_heap(lambda: read_cinc2021(tmp_path / "m.hea"))
    assert isinstance(err, RecordError) and err.reason == "shape_mismatch", err
    assert str(HUGE) in str(err) and peak < HEAP_LIMIT, peak


@pytest.mark.parametrize("endian", ["<", ">"])
def test_mat_v4_dims_claiming_1e12_samples(tmp_path, endian):
    """The .mat's own header claims 12 x (2**31 - 1) int16 samples (little- and big-endian type codes)."""
    (tmp_path / "m.hea").write_text(mat_header_text(12, None), encoding="ascii")
    mopt = 30 if endian == "<" else 1030
    # int32 columns: the most a v4 header can claim is 2**31 - 1 samples per lead (12 leads: 48 GiB of int16)
    head = np.array([mopt, 12, 2**31 - 1, 0, 4], dtype=f"{endian}i4")
    (tmp_path / "m.mat").write_bytes(head.tobytes() + b"val\x00" + bytes(480))
    err, peak = _peak_heap(lambda: read_cinc2021(tmp_path / "m.hea"))
    assert isinstance(err, RecordError) and err.reason in {"truncated", "unreadable"}, err
    assert peak < HEAP_LIMIT, peak


def test_mat_v4_name_length_claiming_2gib(tmp_path):
    """A v4 variable whose name claims 2**31 - 1 bytes: scipy would read that many bytes at once from a file."""
    (tmp_path / "m.hea").write_text(mat_header_text(1, None), encoding="ascii")
    head = np.array([1030, 1, 10, 0, 2**31 - 1], dtype=">i4")  # big-endian: past the fast path, into loadmat
    (tmp_path / "m.mat").write_bytes(head.tobytes() + b"val\x00" + bytes(20))
    err, peak = _peak_heap(lambda: read_cinc2021(tmp_path / "m.hea"))
    assert isinstance(err, RecordError) and err.reason in {"truncated", "unreadable"}, err
    assert peak < HEAP_LIMIT, peak


def _wfdb_record(tmp_path: Path, header: str) -> Path:
    rng = np.random.default_rng(0)
    (tmp_path / "w.dat").write_bytes(rng.integers(-2000, 2000, (50, 12), dtype="<i2").tobytes())
    hea = tmp_path / "w.hea"
    hea.write_text(header, encoding="ascii")
    return hea


@pytest.mark.parametrize("fmt", ["16", "212", "8", "32"])
def test_wfdb_header_claiming_1e12_samples(tmp_path, fmt):
    """wfdb would allocate n_samples x n_signals before reading; the size check refuses the claim first."""
    hea = _wfdb_record(tmp_path, wfdb_header_text(HUGE, fmt=fmt))
    err, peak = _peak_heap(lambda: read_wfdb_record(hea))
    assert isinstance(err, RecordError) and err.reason == "truncated", err
    assert str(HUGE) in str(err) and peak < HEAP_LIMIT, peak


def test_wfdb_samples_per_frame_claim(tmp_path):
    """``16x1000000`` multiplies the samples wfdb reads per frame: counted in the size check."""
    hea = _wfdb_record(tmp_path, wfdb_header_text(50).replace("w.dat 16 ", "w.dat 16x1000000 "))
    err, peak = _peak_heap(lambda: read_wfdb_record(hea))
    assert isinstance(err, RecordError) and err.reason == "truncated", err
    assert peak < HEAP_LIMIT, peak


def test_wfdb_unsupported_or_compressed_format_is_refused(tmp_path):
    hea = _wfdb_record(tmp_path, wfdb_header_text(50, fmt="516"))  # FLAC: size unknowable before decoding
    with pytest.raises(RecordError) as info:
        read_wfdb_record(hea)
    assert info.value.reason == "unsupported" and "516" in str(info.value)


def test_wfdb_valid_record_still_reads(tmp_path):
    rec = read_wfdb_record(_wfdb_record(tmp_path, wfdb_header_text(50)))
    assert rec.signal.shape == (12, 50) and rec.signal.dtype == np.float32


def test_cinc_header_parser_heap_is_bounded_by_the_text():
    """Parsing a header that claims 10**12 samples stores the number, never an array of that size."""
    err, peak = _peak_heap(lambda: parse_cinc_header_text(mat_header_text(12, HUGE), "x.hea"))
    assert err is None and peak < 1 * 2**20, (err, peak)


def test_tianchi_text_reader_heap_scales_with_the_file(tmp_path):
    """Tianchi files declare no length: the reader's memory follows the file (5000 rows: a few MB at most)."""
    rows = "\n".join(" ".join(["1"] * 8) for _ in range(5000))
    path = tmp_path / "T1.txt"
    path.write_text("I II V1 V2 V3 V4 V5 V6\n" + rows + "\n", encoding="ascii")
    err, peak = _peak_heap(lambda: read_record(path))
    assert err is None and peak < HEAP_LIMIT, (err, peak)


def test_mat_v4_writer_file_round_trips_under_a_generated_header(tmp_path):
    """The mat_v4 target's generated header is a valid CinC header (so its seeds reach the .mat reader)."""
    write_mat_v4(tmp_path / "m.mat", np.arange(36, dtype=np.int16).reshape(3, 12))
    (tmp_path / "m.hea").write_text(mat_header_text(3, 12), encoding="ascii")
    rec = read_cinc2021(tmp_path / "m.hea")
    np.testing.assert_array_equal(rec.signal, np.arange(36, dtype=np.float32).reshape(3, 12) / 1000)


def test_compressed_mat_v5_is_refused_before_decoding(tmp_path):
    """A 47 kB zlib-compressed v5 ``val`` decodes to 48 MB (1000x): v5 is refused before scipy touches it."""
    import io

    import scipy.io

    buf = io.BytesIO()
    scipy.io.savemat(buf, {"val": np.zeros((12, 2_000_000), np.int16)}, do_compression=True)
    (tmp_path / "m.mat").write_bytes(buf.getvalue())
    (tmp_path / "m.hea").write_text(mat_header_text(12, None), encoding="ascii")
    err, peak = _peak_heap(lambda: read_cinc2021(tmp_path / "m.hea"))
    assert isinstance(err, RecordError) and err.reason == "unsupported" and "v4" in str(err), err
    assert peak < 5 * 2**20, peak
