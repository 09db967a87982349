"""End-to-end: a small mixed tree (CinC 2021 WFDB, Tianchi, PTB-XL, malformed files) → cache → datasets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ecgscale.data.cache import build_cache, open_cache
from ecgscale.data.cache import pool as cache_pool
from ecgscale.data.cache import writer as cache_writer
from ecgscale.data.labels import cinc2021_scored
from ecgscale.data.records import STANDARD_LEADS
from ecgscale.data.splits import SplitConfig
from ecgscale.data.transforms import PreprocessConfig, preprocess
from ecgscale.data.writers import write_cinc2021, write_tianchi, write_tianchi_classes, write_tianchi_labels
from ecgscale.errors import ConfigError

CFG = PreprocessConfig(fs=100, window_s=5.0, max_store_s=20.0, bandpass=(0.5, 40.0))
SCORED = cinc2021_scored()
CODES = [c.codes[0] for c in SCORED.classes]  # one SNOMED code per scored class
TIANCHI_NAMES = ["窦性心律", "心房颤动", "T波改变", "ST段改变"]


def _ecg(rng: np.random.Generator, fs: float, seconds: float) -> np.ndarray:
    t = np.arange(round(fs * seconds)) / fs
    base = np.sin(2 * np.pi * 1.2 * t)[None, :] * rng.uniform(0.2, 1.5, (12, 1))
    return (base + 0.05 * rng.standard_normal((12, len(t)))).astype(np.float32)


def _write_ptbxl(root: Path, rng: np.random.Generator, n: int = 20) -> None:
    import wfdb

    rows = []
    scp = ["{'NORM': 100.0, 'SR': 0.0}", "{'IMI': 50.0, 'SR': 0.0}", "{'AFIB': 100.0}"]
    for k in range(1, n + 1):
        rel = f"records500/00000/{k:05d}_hr"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        sig = _ecg(rng, 500, 10).T.astype(np.float64)
        wfdb.wrsamp(
            Path(rel).name,
            fs=500,
            units=["mV"] * 12,
            sig_name=list(STANDARD_LEADS),
            p_signal=sig,
            fmt=["16"] * 12,
            adc_gain=[1000.0] * 12,
            baseline=[0] * 12,
            write_dir=str((root / rel).parent),
        )
        rows.append(
            {
                "ecg_id": k,
                "patient_id": float(100 + (k - 1) // 2),
                "age": 60,
                "sex": k % 2,
                "scp_codes": scp[k % 3],
                "strat_fold": (k - 1) % 10 + 1,
                "filename_lr": rel.replace("500", "100").replace("_hr", "_lr"),
                "filename_hr": rel,
            }
        )
    pd.DataFrame(rows).to_csv(root / "ptbxl_database.csv", index=False)
    statements = pd.DataFrame(
        {
            "description": ["normal", "inferior MI", "atrial fibrillation", "sinus rhythm"],
            "diagnostic": [1.0, 1.0, None, None],
            "form": [None, None, None, None],
            "rhythm": [None, None, 1.0, 1.0],
            "diagnostic_class": ["NORM", "MI", "", ""],
            "diagnostic_subclass": ["NORM", "IMI", "", ""],
        },
        index=["NORM", "IMI", "AFIB", "SR"],
    )
    statements.to_csv(root / "scp_statements.csv")


def make_tree(root: Path, *, seed: int = 0, n_georgia: int = 24, bad: bool = True) -> dict[str, object]:
    """Good records of three formats and rates, plus malformed files next to them."""
    rng = np.random.default_rng(seed)
    expected: dict[str, tuple[str, ...]] = {}
    for i in range(n_georgia):
        codes = tuple(str(c) for c in rng.choice(CODES, size=int(rng.integers(1, 3)), replace=False))
        if i % 5 == 0:
            codes = (*codes, "999999")  # a code outside every label space
        write_cinc2021(root / "training/georgia/g1", f"E{i:05d}", _ecg(rng, 500, 10), 500, age=50, sex="M", codes=codes)
        expected[f"E{i:05d}"] = codes
    for i in range(3):
        write_cinc2021(root / "training/incart/g1", f"I{i:04d}", _ecg(rng, 257, 45), 257, codes=(CODES[0],))
        expected[f"I{i:04d}"] = (CODES[0],)
        write_cinc2021(root / "training/ptb/g1", f"S{i:04d}", _ecg(rng, 1000, 3), 1000, codes=(CODES[1],))
        expected[f"S{i:04d}"] = (CODES[1],)
    tianchi = root / "tianchi"
    label_rows = []
    for i in range(8):
        names = (TIANCHI_NAMES[i % 4],) + ((TIANCHI_NAMES[2],) if i % 3 == 0 else ())
        write_tianchi(tianchi, f"{1000 + i}", _ecg(rng, 500, 10))
        label_rows.append((f"{1000 + i}.txt", 40 + i, "MALE", tuple(dict.fromkeys(names))))
        expected[f"{1000 + i}"] = tuple(dict.fromkeys(names))
    write_tianchi_classes(tianchi / "hf_round2_arrythmia.txt", TIANCHI_NAMES)
    _write_ptbxl(root / "ptbxl", rng)
    n_bad = 0
    if bad:
        badd = root / "training/georgia/g2"
        hea = write_cinc2021(badd, "EBAD1", _ecg(rng, 500, 10), 500, codes=(CODES[0],))
        mat = hea.with_suffix(".mat")
        mat.write_bytes(mat.read_bytes()[: 24 + 1000])  # truncated .mat
        hea = write_cinc2021(badd, "EBAD2", _ecg(rng, 500, 10), 500, codes=(CODES[0],))
        hea.with_suffix(".mat").unlink()  # missing .mat
        (badd / "EBAD3.hea").write_bytes(bytes(rng.integers(0, 256, 300, dtype=np.uint8)))  # garbage header
        write_tianchi(tianchi, "1999", _ecg(rng, 500, 10))
        text = (tianchi / "1999.txt").read_text().splitlines()
        text[10] = " ".join(["nan"] * 8)  # NaN samples
        (tianchi / "1999.txt").write_text("\n".join(text) + "\n")
        label_rows.append(("1999.txt", 30, "FEMALE", (TIANCHI_NAMES[0],)))
        n_bad = 4
    write_tianchi_labels(tianchi / "hf_round2_train.txt", label_rows)
    return {"codes": expected, "n_bad": n_bad}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("tree")
    return root, make_tree(root)


@pytest.fixture(scope="module")
def built(tree, tmp_path_factory):
    root, facts = tree
    out = tmp_path_factory.mktemp("caches") / "mixed"
    summary = build_cache([root], out, config=CFG, workers=2, progress=False)
    return out, summary, facts


# ------------------------------------------------------------------------------------------------ build
def test_summary_counts_and_skips(built):
    out, summary, facts = built
    n_good = len(facts["codes"]) + 20  # + PTB-XL
    assert summary.status == "built"
    assert summary.n_records == n_good
    assert summary.n_skipped >= facts["n_bad"]
    assert summary.n_found == summary.n_records + summary.n_skipped
    assert sum(summary.skipped_by_reason.values()) == summary.n_skipped
    assert "non_finite" in summary.skipped_by_reason
    skipped_paths = {Path(s.path).name for s in summary.skipped}
    assert {"EBAD1.mat", "EBAD1.hea"} & skipped_paths and "1999.txt" in skipped_paths
    assert any("EBAD2" in p for p in skipped_paths) and any("EBAD3" in p for p in skipped_paths)
    skipped_csv = pd.read_csv(out / "skipped.csv")
    assert len(skipped_csv) == summary.n_skipped and set(skipped_csv.columns) == {"path", "reason", "message"}
    assert set(summary.records_per_source) == {"georgia", "incart", "ptb", "tianchi", "ptb-xl"}
    assert summary.label_counts["georgia"] and summary.n_unknown_codes >= 5  # the 999999 codes at least
    assert summary.label_space == "cinc2021"


def test_layout_and_manifest(built):
    out, summary, _ = built
    info = json.loads((out / "cache.json").read_text())
    assert info["preprocess_hash"] == CFG.hash() and info["dtype"] == "float16" and info["window"] == 500
    assert not list(out.parent.glob(".mixed.tmp-*"))
    cache = open_cache(out)
    m = cache.manifest
    assert len(cache) == summary.n_records == len(m)
    assert list(m["index"]) == list(range(len(m)))
    offsets = np.load(out / "offsets.npy")
    assert (out / "signals.bin").stat().st_size == offsets[-1] * 12 * 2
    for col in (
        "record_id",
        "source",
        "patient_id",
        "age",
        "sex",
        "fs",
        "n_samples",
        "duration_s",
        "codes",
        "unknown_codes",
        "split",
        "path",
    ):
        assert col in m.columns
    row = m[m.record_id == "I0000"].iloc[0]
    assert row.fs == 257 and row.n_samples == 257 * 45 and row.n_stored == 20 * 100  # capped to max_store_s
    assert m[m.record_id == "S0000"].iloc[0].n_stored == 300  # 3 s at 100 Hz, kept whole
    assert set(m.loc[m.source == "ptb-xl", "patient_id"]) == {str(100 + k) for k in range(10)}
    assert m.loc[m.record_id == "E00000", "unknown_codes"].iloc[0] == "999999"


def test_labels_match_record_codes(built):
    out, _, facts = built
    cache = open_cache(out)
    space = cache.label_space
    m = cache.manifest
    for i, row in m.iterrows():
        codes = facts["codes"].get(row.record_id)
        if row.source == "ptb-xl" or codes is None:
            continue
        expected = space.encode(codes)
        np.testing.assert_array_equal(cache.labels[i], expected, err_msg=row.record_id)
        assert tuple(row.codes.split(",")) == codes
    # Tianchi names reach the CinC space through the aliases (窦性心律 → NSR, 心房颤动 → AF)
    nsr = space.abbreviations.index("NSR")
    af = space.abbreviations.index("AF")
    t = m[m.record_id == "1000"].index[0]
    assert cache.labels[t, nsr] == 1
    assert cache.labels[m[m.record_id == "1001"].index[0], af] == 1
    p = m[(m.source == "ptb-xl")]
    afib_rows = p[p.codes.str.contains("AFIB")].index
    assert len(afib_rows) and cache.labels[afib_rows, af].all()


def test_signals_match_preprocess(built):
    out, _, _ = built
    from ecgscale.data.readers import read_record

    cache = open_cache(out)
    m = cache.manifest
    for rid in ("E00003", "I0001", "S0002", "1003"):
        i = int(m.index[m.record_id == rid][0])
        rec = read_record(m.path[i])
        expected = preprocess(rec, CFG)
        got = cache.signal(i)
        assert got.dtype == np.float32 and got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=2e-2, rtol=1e-2)  # float16 storage
        w = cache.window(i)
        assert w.shape == (12, 500)


def test_dataset_items_and_batches(built):
    out, _, _ = built
    cache = open_cache(out)
    ds = cache.dataset("train", train=True, seed=3)
    assert len(ds) == len(cache.indices("train")) > 0
    x, y = ds[0]
    assert x.dtype == torch.float32 and x.shape == (12, 500) and y.shape == (len(cache.label_space),)
    x2, _ = ds[0]
    assert torch.equal(x, x2)  # same (seed, epoch, record) → same crop
    ds.set_epoch(1)
    xs = torch.stack([ds[k][0] for k in range(len(ds))])
    ds.set_epoch(0)
    assert not torch.equal(xs, torch.stack([ds[k][0] for k in range(len(ds))]))
    xb, yb = ds.get_batch(np.arange(len(ds)))
    assert torch.equal(xb, torch.stack([ds[k][0] for k in range(len(ds))]))
    assert torch.equal(yb, torch.stack([ds[k][1] for k in range(len(ds))]))
    # vectorised path with one generator: right shape, deterministic
    a, _ = ds.get_batch([0, 1, 2], rng=np.random.default_rng(0))
    b, _ = ds.get_batch([0, 1, 2], rng=np.random.default_rng(0))
    assert a.shape == (3, 12, 500) and torch.equal(a, b)
    # eval: centre windows, as_tensors fast path
    ev = cache.dataset("test")
    xe, ye = ev.as_tensors()
    assert xe.dtype == torch.float16 and xe.shape == (len(ev), 12, 500)
    torch.testing.assert_close(xe.float(), torch.stack([ev[k][0] for k in range(len(ev))]), atol=1e-3, rtol=1e-3)
    assert torch.equal(ye, torch.from_numpy(cache.labels[cache.indices("test")].astype(np.float32)))
    # augmentation changes the signal but keeps it deterministic
    aug = cache.dataset("train", train=True, seed=3, augment=True)
    assert not torch.equal(aug[0][0], ds[0][0]) and torch.equal(aug[0][0], aug[0][0])
    # DataLoader with workers
    loader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=2)
    batches = list(loader)
    assert sum(len(b[0]) for b in batches) == len(ds)
    assert torch.equal(batches[0][0], torch.stack([ds[k][0] for k in range(8)]))


def test_short_records_zero_padded(built):
    out, _, _ = built
    cache = open_cache(out)
    i = int(cache.manifest.index[cache.manifest.record_id == "S0001"][0])
    w = cache.window(i, rng=np.random.default_rng(0))
    assert w.shape == (12, 500) and np.all(w[:, 300:] == 0) and np.any(w[:, :300] != 0)


def test_split_in_manifest_groups_patients(built):
    out, _, _ = built
    cache = open_cache(out)
    m = cache.manifest
    assert set(m.split) <= {"train", "val", "test"} and (m.split == "train").sum() > len(m) / 2
    ptb = m[m.source == "ptb-xl"]
    assert (ptb.groupby("patient_id")["split"].nunique() == 1).all()
    idx = np.concatenate([cache.indices(s) for s in ("train", "val", "test")])
    assert sorted(idx.tolist()) == list(range(len(cache)))
    with pytest.raises(ConfigError):
        cache.indices("training")


def test_resplit_without_rereading(built, tmp_path):
    out, _, _ = built
    cache = open_cache(out)
    loso = cache.with_split(SplitConfig(method="source", test_sources=("tianchi",)))
    m = loso.manifest
    assert set(m.loc[m.source == "tianchi", "split"]) == {"test"}
    assert set(m.loc[m.source != "tianchi", "split"]) <= {"train", "val"}
    assert (cache.manifest.split != m.split).any()  # the original is untouched
    again = cache.with_split(SplitConfig(method="source", test_sources=("tianchi",)))
    assert (again.manifest.split == m.split).all()
    assert loso.window(0).shape == (12, 500)


# ------------------------------------------------------------------------------------------------ reuse / rebuild
@pytest.fixture()
def small(tmp_path):
    """Twelve CinC records only: fast enough to build several caches per test."""
    root = tmp_path / "src"
    rng = np.random.default_rng(1)
    for i in range(12):
        write_cinc2021(root, f"A{i:04d}", _ecg(rng, 500, 10), 500, codes=(CODES[i % 4],))
    return root


def test_reuse_refuse_rebuild_resplit(small, tmp_path):
    out = tmp_path / "c"
    first = build_cache(small, out, config=CFG, workers=1, progress=False)
    assert first.status == "built"
    stamp = (out / "signals.bin").stat().st_mtime_ns
    again = build_cache(small, out, config=CFG, workers=1, progress=False)
    assert again.status == "up_to_date" and again.n_records == 12
    assert (out / "signals.bin").stat().st_mtime_ns == stamp
    other = PreprocessConfig(fs=50, window_s=5.0, max_store_s=20.0, bandpass=(0.5, 20.0))
    with pytest.raises(ConfigError, match="rebuild") as err:
        build_cache(small, out, config=other, workers=1, progress=False)
    assert "fs 100.0 → 50.0" in str(err.value)
    assert open_cache(out).config == CFG  # refused: untouched
    rebuilt = build_cache(small, out, config=other, workers=1, progress=False, rebuild=True)
    assert rebuilt.status == "rebuilt" and open_cache(out).config == other
    assert open_cache(out).window(0).shape == (12, 250)
    resplit = build_cache(
        small, out, config=other, workers=1, progress=False, split=SplitConfig(method="stratified", seed=9)
    )
    assert resplit.status == "resplit"
    assert open_cache(out).split_config.seed == 9
    assert (out / "signals.bin").stat().st_mtime_ns != stamp
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".c.")]


def test_interrupted_build_keeps_old_cache(small, tmp_path, monkeypatch):
    out = tmp_path / "c"
    build_cache(small, out, config=CFG, workers=1, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    calls = {"n": 0}
    real = cache_pool._prepare_one

    def exploding(ref):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt  # the user pressing Ctrl-C mid-stream
        return real(ref)

    monkeypatch.setattr(cache_pool, "_prepare_one", exploding)
    other = PreprocessConfig(fs=50, window_s=5.0, max_store_s=20.0, bandpass=(0.5, 20.0))
    with pytest.raises(KeyboardInterrupt):
        build_cache(small, out, config=other, workers=1, progress=False, rebuild=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".c.")]
    # an interrupted first build leaves nothing at all
    fresh = tmp_path / "fresh"
    calls["n"] = 0
    with pytest.raises(KeyboardInterrupt):
        build_cache(small, fresh, config=CFG, workers=1, progress=False)
    assert not fresh.exists()


def test_interrupt_with_worker_processes_does_not_hang(small, tmp_path, monkeypatch):
    out = tmp_path / "c"
    build_cache(small, out, config=CFG, workers=1, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real = cache_writer._append_block
    calls = {"n": 0}

    def failing_disk(fh, x):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        real(fh, x)

    monkeypatch.setattr(cache_writer, "_append_block", failing_disk)
    with pytest.raises(OSError, match="No space"):
        build_cache(small, out, config=CFG, workers=2, chunksize=1, progress=False, rebuild=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".c.")]


def test_leftovers_of_a_killed_prepare(small, tmp_path):
    out = tmp_path / "c"
    build_cache(small, out, config=CFG, workers=1, progress=False)
    dead = 2**22 + 12345  # above Linux's pid_max: no such process
    half = tmp_path / f".c.tmp-{dead}-0000"
    half.mkdir()
    (half / "signals.bin").write_bytes(b"partial")
    # killed between moving the good cache aside and renaming the new one in: the good one comes back
    os.replace(out, tmp_path / f".c.old-{dead}-0000")
    again = build_cache(small, out, config=CFG, workers=1, progress=False)
    assert again.status == "up_to_date" and len(open_cache(out)) == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "src"]
    # A leftover naming a live pid is removed too: pids get reused, and the writer lock that build_cache holds
    # proves no running prepare owns it (a second prepare on the same out is refused, tests/reliability).
    reused = tmp_path / f".c.tmp-{os.getpid()}-0000"
    reused.mkdir()
    build_cache(small, out, config=CFG, workers=1, progress=False)
    assert not reused.exists()


def test_float32_storage_and_equivalence(small, tmp_path):
    c16 = tmp_path / "c16"
    c32 = tmp_path / "c32"
    build_cache(small, c16, config=CFG, workers=1, progress=False)
    cfg32 = PreprocessConfig(fs=100, window_s=5.0, max_store_s=20.0, bandpass=(0.5, 40.0), dtype="float32")
    build_cache(small, c32, config=cfg32, workers=1, progress=False)
    a, b = open_cache(c16), open_cache(c32)
    assert a.signals.dtype == np.float16 and b.signals.dtype == np.float32
    assert (c32 / "signals.bin").stat().st_size == 2 * (c16 / "signals.bin").stat().st_size
    np.testing.assert_allclose(a.signal(3), b.signal(3), atol=1e-2, rtol=1e-2)
    xa, _ = a.get_batch([0, 1])
    xb, _ = b.get_batch([0, 1])
    assert xa.dtype == xb.dtype == np.float32


def test_bad_inputs(tmp_path, small):
    with pytest.raises(ConfigError, match="do not exist"):
        build_cache([tmp_path / "nope"], tmp_path / "c", config=CFG, progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "junk.hea").write_bytes(b"\x00\xff garbage")
    with pytest.raises(ConfigError, match="no ECG record"):
        build_cache([empty], tmp_path / "c", config=CFG, progress=False)
    assert not (tmp_path / "c").exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.docx").write_text("precious")
    with pytest.raises(ConfigError, match="not an ecgscale cache"):
        build_cache(small, foreign, config=CFG, progress=False)
    assert (foreign / "thesis.docx").read_text() == "precious"
    with pytest.raises(ConfigError, match="labels"):
        build_cache(small, tmp_path / "c", config=CFG, labels="snomed", progress=False)
    with pytest.raises(ConfigError, match="not an ecgscale cache"):
        open_cache(tmp_path)
    with pytest.raises(ConfigError, match="no PTB-XL"):
        build_cache(small, tmp_path / "c", config=CFG, labels="ptbxl:superdiagnostic", progress=False)


def test_corrupt_cache_is_reported(small, tmp_path):
    out = tmp_path / "c"
    build_cache(small, out, config=CFG, workers=1, progress=False)
    with open(out / "signals.bin", "r+b") as fh:
        fh.truncate(1000)
    with pytest.raises(ConfigError, match=r"signals\.bin: 1000 bytes"):
        open_cache(out)
    os.remove(out / "labels.npy")
    with pytest.raises(ConfigError, match="incomplete or corrupt"):
        open_cache(out)


def test_ptbxl_alone_uses_official_folds_and_task_space(tree, tmp_path):
    root, _ = tree
    out = tmp_path / "ptb"
    summary = build_cache(root / "ptbxl", out, config=CFG, workers=1, progress=False)
    assert summary.label_space == "ptbxl-superdiagnostic"
    cache = open_cache(out)
    assert cache.label_space.keys == ["MI", "NORM"]
    m = cache.manifest
    folds = (m.record_id.astype(int) - 1) % 10 + 1
    expected = np.where(folds <= 8, "train", np.where(folds == 9, "val", "test"))
    assert (m.split.to_numpy() == expected).all()
    np.testing.assert_array_equal(cache.labels[:, 1], m.codes.str.contains("NORM").astype(np.uint8))
    sub = build_cache(root / "ptbxl", tmp_path / "ptb2", config=CFG, workers=1, progress=False, labels="ptbxl:rhythm")
    assert sub.label_space == "ptbxl-rhythm"


def test_tianchi_space(tree, tmp_path):
    root, _ = tree
    summary = build_cache(root / "tianchi", tmp_path / "t", config=CFG, workers=1, progress=False)
    cache = open_cache(tmp_path / "t")
    assert summary.label_space == "tianchi" and cache.label_space.keys == TIANCHI_NAMES
    assert summary.skipped_by_reason.get("non_finite") == 1


def test_shared_tiny_cache_fixture(tiny_cache):
    """The session fixture other packages train on: synthetic CinC tree → 100 Hz × 5 s cache."""
    assert len(tiny_cache) == 120
    assert tiny_cache.label_space.name == "cinc2021" and tiny_cache.labels.sum() > 0
    assert {len(tiny_cache.indices(s)) > 0 for s in ("train", "val", "test")} == {True}
    x, y = tiny_cache.dataset("train", train=True)[0]
    assert x.shape == (12, 500) and y.shape == (26,)
    assert np.isfinite(tiny_cache.get_batch(tiny_cache.indices("val"))[0]).all()


def test_label_counts_keep_classes_with_shared_abbreviations():
    from ecgscale.data.labels import tianchi_space

    space = tianchi_space(["右束支传导阻滞", "完全性右束支传导阻滞", "窦性心律"])
    counts = cache_writer._label_counts(
        pd.DataFrame({"source": ["a", "a"]}), np.array([[1, 1, 0], [0, 1, 1]], np.uint8), space
    )
    assert counts == {"a": {"RBBB (右束支传导阻滞)": 1, "RBBB (完全性右束支传导阻滞)": 2, "NSR": 1}}
