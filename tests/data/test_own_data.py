"""A user's own data: a labelled WFDB folder (any gain/baseline/units, lead names in any case) with a labels
table, and the arrays API. Both end in the same cache format as ``prepare`` on a named corpus."""

from __future__ import annotations

import numpy as np
import pytest
import wfdb
from typer.testing import CliRunner

from ecgscale.cli import app
from ecgscale.data.arrays import build_cache_from_arrays, build_cache_from_records, records_from_arrays
from ecgscale.data.cache import build_cache, open_cache
from ecgscale.data.labels import cinc2021_scored
from ecgscale.data.readers import discover, read
from ecgscale.data.readers.label_table import read_label_table, user_label_space
from ecgscale.data.records import STANDARD_LEADS
from ecgscale.data.transforms import PreprocessConfig
from ecgscale.errors import ConfigError

CONFIG = PreprocessConfig(fs=100, window_s=5.0, max_store_s=10.0)
LOWER = [lead.lower() for lead in STANDARD_LEADS]  # i, ii, iii, avr, avl, avf, v1..v6
ORDER = [6, 0, 7, 1, 8, 2, 9, 3, 10, 4, 11, 5]  # the file's rows are not in the standard order
runner = CliRunner()


def _trace(seed: int, n: int, fs: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fs
    return rng.uniform(0.2, 1.5, (12, 1)) * np.sin(2 * np.pi * 1.3 * t + rng.uniform(0, 6, (12, 1)))


@pytest.fixture(scope="module")
def wfdb_folder(tmp_path_factory: pytest.TempPathFactory):
    """Four ``.hea + .dat`` records in µV with odd gains and baselines, lead names in lower case and shuffled."""
    root = tmp_path_factory.mktemp("mine")
    truth = {}
    for i in range(4):
        name = f"rec{i}"
        mv = _trace(i, 2500, 250.0)
        wfdb.wrsamp(
            name,
            fs=250,
            units=["uV"] * 12,
            sig_name=[LOWER[k] for k in ORDER],
            p_signal=(mv[ORDER] * 1000.0).T,
            fmt=["16"] * 12,
            adc_gain=[0.5 + 0.25 * k for k in range(12)],
            baseline=[-300 + 50 * k for k in range(12)],
            write_dir=str(root),
        )
        truth[name] = mv
    return root, truth


def test_any_wfdb_folder_reads_in_mv_standard_order(wfdb_folder):
    root, truth = wfdb_folder
    d = discover(root)
    assert sorted(r.record_id for r in d.refs) == sorted(truth) and d.skipped == []
    for ref in d.refs:
        rec = read(ref)
        order = [rec.lead_names.index(lead) for lead in STANDARD_LEADS]
        # µV with gains down to 0.5 unit/µV: quantisation is at most 1 µV = 1e-3 mV
        np.testing.assert_allclose(rec.signal[order], truth[ref.record_id], atol=1.1e-3)


def test_labels_csv_columns_give_the_users_space_and_skip_unlisted(wfdb_folder, tmp_path):
    root, _ = wfdb_folder
    csv = tmp_path / "labels.csv"
    csv.write_text(
        "filename,patient_id,AF,block,normal\nrec0.hea,p1,1,0,0\nrec1,p1,0,yes,0\nrec2,p2,0,0,1\nghost,p3,1,0,0\n"
    )
    table = read_label_table(csv)
    assert table.classes == ("AF", "block", "normal") and table.rows["rec1"].patient_id == "p1"
    summary = build_cache(root, tmp_path / "c", config=CONFIG, labels=table, workers=1, progress=False)
    assert summary.n_records == 3 and summary.skipped_by_reason == {"no_labels": 1}  # rec3 has no row
    cache = open_cache(tmp_path / "c")
    assert cache.label_space.keys == ["AF", "block", "normal"] and cache.label_space.name == "user:labels"
    by_id = dict(zip(cache.manifest["record_id"], cache.labels.tolist(), strict=True))
    assert by_id == {"rec0": [1, 0, 0], "rec1": [0, 1, 0], "rec2": [0, 0, 1]}
    assert dict(zip(cache.manifest["record_id"], cache.manifest["patient_id"], strict=True))["rec1"] == "p1"
    # an edited table changes the cache's parameters: refused without rebuild, never silently reused
    csv.write_text(csv.read_text().replace("rec2,p2,0,0,1", "rec2,p2,1,0,0"))
    with pytest.raises(ConfigError, match="other parameters"):
        build_cache(root, tmp_path / "c", config=CONFIG, labels=read_label_table(csv), workers=1, progress=False)


def test_code_list_table_maps_to_cinc_only_when_asked(tmp_path):
    csv = tmp_path / "dx.csv"
    csv.write_text("record;dx\nrec0;af|iavb\nrec1;164889003\nrec2;\nrec3;weird\n")
    table = read_label_table(csv)
    assert table.layout == "codes" and table.classes == ("164889003", "af", "iavb", "weird")
    assert table.space().keys == ["164889003", "af", "iavb", "weird"]  # the user's vocabulary by default
    cinc = table.space(map_to="cinc2021")
    scored = cinc2021_scored()
    af, iavb = scored.abbreviations.index("AF"), scored.abbreviations.index("IAVB")
    assert np.flatnonzero(cinc.encode(table.rows["rec0"].codes)).tolist() == sorted([af, iavb])
    assert np.flatnonzero(cinc.encode(table.rows["rec1"].codes)).tolist() == [af]
    assert cinc.encode(["weird"]).sum() == 0 and cinc.keys == scored.keys


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("record,AF\nrec0,2\n", r"labels.csv: AF: line 2: '2' is not a 0/1 label"),
        ("record,AF\nrec0,1\nrec0.hea,0\n", r"record: line 3: record 'rec0' appears twice"),
        ("who,AF\nrec0,1\n", r"no record column"),
        ("record\n", r"needs a header line and at least one record row"),
        ("record,dx\nrec0,\n", r"names no class"),
    ],
)
def test_bad_tables_name_file_line_and_column(tmp_path, text, match):
    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        read_label_table(path)


def test_prepare_cli_with_labels_csv(wfdb_folder, tmp_path):
    root, _ = wfdb_folder
    csv = tmp_path / "labels.csv"
    csv.write_text("record,AF,LBBB\nrec0,1,0\nrec1,0,1\nrec2,1,1\nrec3,0,0\n")
    args = [
        "prepare",
        str(root),
        "--out",
        str(tmp_path / "c"),
        "--fs",
        "100",
        "--window",
        "5",
        "--no-progress",
        "-j",
        "1",
    ]
    res = runner.invoke(app, [*args, "--labels-csv", str(csv), "--json"])
    assert res.exit_code == 0, res.output
    assert open_cache(tmp_path / "c").label_space.keys == ["AF", "LBBB"]
    res = runner.invoke(
        app, [*args[:3], str(tmp_path / "c2"), *args[4:], "--labels-csv", str(csv), "--labels", "cinc2021"]
    )
    assert res.exit_code == 0, res.output
    cache = open_cache(tmp_path / "c2")
    assert cache.label_space.name == "cinc2021" and cache.labels.sum() == 4
    res = runner.invoke(app, [*args, "--labels-csv", str(csv), "--labels", "tianchi"])
    assert isinstance(res.exception, ConfigError) and "--labels-csv takes" in str(res.exception)


# --------------------------------------------------------------------------------------------------- arrays
def _arrays(n: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    x = np.stack([_trace(seed + i, 2000, 200.0) for i in range(n)]).astype(np.float32)
    y = np.zeros((n, 2), dtype=np.uint8)
    y[::2, 0] = 1
    y[1::3, 1] = 1
    return x, y


def test_arrays_build_the_same_cache_as_files_would(tmp_path):
    x, y = _arrays()
    summary = build_cache_from_arrays(
        x, 200.0, STANDARD_LEADS, y, class_names=["AF", "LBBB"], out=tmp_path / "a", config=CONFIG
    )
    assert summary.n_records == 6 and summary.status == "built"
    cache = open_cache(tmp_path / "a")
    np.testing.assert_array_equal(cache.labels, y)
    assert cache.label_space.keys == ["AF", "LBBB"] and cache.config.hash() == CONFIG.hash()
    # µV, lower-case shuffled leads and a generator of records give the same stored signals
    records = records_from_arrays(
        [s[ORDER] * 1000.0 for s in x], 200.0, [LOWER[k] for k in ORDER], [("AF",)] * 6, units="uV"
    )
    build_cache_from_records(records, tmp_path / "b", labels=user_label_space(["AF", "LBBB"]), config=CONFIG)
    other = open_cache(tmp_path / "b")
    for i in range(6):
        np.testing.assert_allclose(other.signal(i), cache.signal(i), atol=2e-3)
    assert other.labels[:, 0].all() and not other.labels[:, 1].any()


def test_arrays_bad_records_skip_and_bad_inputs_raise(tmp_path):
    x, y = _arrays()
    x[2, 4, 100] = np.nan
    summary = build_cache_from_arrays(x, 200.0, LOWER, y, class_names=["AF", "LBBB"], out=tmp_path / "a", config=CONFIG)
    assert summary.n_records == 5 and summary.skipped_by_reason == {"non_finite": 1}
    with pytest.raises(ConfigError, match=r"signal 0 \(arrays-000000\) must be numeric \(12 leads"):
        build_cache_from_arrays(x[:, :8], 200.0, LOWER, y, class_names=["a", "b"], out=tmp_path / "b", config=CONFIG)
    with pytest.raises(ConfigError, match="need as many class_names"):
        build_cache_from_arrays(x, 200.0, LOWER, y, class_names=["a"], out=tmp_path / "c", config=CONFIG)
    with pytest.raises(ConfigError, match="already exists"):
        build_cache_from_arrays(x, 200.0, LOWER, y, class_names=["a", "b"], out=tmp_path / "a", config=CONFIG)
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_records_can_carry_a_fixed_split(tmp_path):
    import dataclasses

    from ecgscale.data.splits import SplitConfig

    x, _ = _arrays(n=9)
    roles = ["train"] * 5 + ["val"] * 2 + ["test"] * 2
    records = [
        dataclasses.replace(r, meta={"split": role})
        for r, role in zip(records_from_arrays(x, 200.0, STANDARD_LEADS, [("AF",)] * 9), roles, strict=True)
    ]
    space = user_label_space(["AF"])
    build_cache_from_records(records, tmp_path / "c", labels=space, config=CONFIG, split=SplitConfig(method="official"))
    assert list(open_cache(tmp_path / "c").manifest["split"]) == roles


def test_any_labels_table_text_parses_or_raises_config_error(tmp_path):
    """Seeded fuzzing of the table parser: random cells, delimiters, quotes, BOMs and binary bytes give a
    LabelTable or a ConfigError naming the file, never another exception."""
    rng = np.random.default_rng(0)
    alphabet = [*"rec0123,;|\t\"'\n\r xyAFLB-_.", "record", "dx", "codes", "1", "0", "yes", "\ufeff", "\x00", "é"]
    path = tmp_path / "t.csv"
    parsed = 0
    for _ in range(400):
        text = "".join(rng.choice(alphabet, int(rng.integers(0, 60))))
        if rng.random() < 0.5:
            text = rng.choice(["record,AF,LBBB\n", "record;dx\n", "id,codes\n"]) + text
        path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
        try:
            table = read_label_table(path)
        except ConfigError as exc:
            assert str(path) in str(exc)
        else:
            parsed += 1
            assert table.classes and all(isinstance(k, str) and k for k in table.rows)
            table.space()
    assert parsed > 20
