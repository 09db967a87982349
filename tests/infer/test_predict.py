"""``Predictor`` / ``ecgscale predict``: same preprocessing as training, window aggregation, formats, bad input."""

from __future__ import annotations

import itertools
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from ecgscale.cli import app, main
from ecgscale.data.readers import read_record
from ecgscale.data.records import STANDARD_LEADS, EcgRecord
from ecgscale.data.transforms import preprocess, window
from ecgscale.data.writers import TIANCHI_LEADS, cinc2021_header_text, write_cinc2021, write_mat_v4, write_tianchi
from ecgscale.errors import CheckpointError, ConfigError, RecordError
from ecgscale.infer import PredictionResult, Predictor, errors_path_for, predict_paths, window_starts
from ecgscale.metrics.challenge_io import load_challenge_dirs, read_challenge_output
from ecgscale.train import load_run

WINDOW = 500  # tiny cache: 100 Hz x 5 s


@pytest.fixture(scope="module")
def predictor(tiny_run: Path) -> Predictor:
    return Predictor(tiny_run, device="cpu", batch_size=16)


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory, ecg_like) -> dict[str, Path]:
    """Good records at other rates/lengths and formats, and bad ones, each in its own folder."""
    root = tmp_path_factory.mktemp("inputs")
    good, tianchi, bad = root / "good", root / "tianchi", root / "bad"
    paths = {
        "fs257_60s": write_cinc2021(good, "R257", ecg_like(257, 60, seed=1), 257, codes=["426783006"]),
        "fs1000_6s": write_cinc2021(good, "R1000", ecg_like(1000, 6, seed=2), 1000),
        "fs500_3s": write_cinc2021(good, "R500", ecg_like(500, 3, seed=3), 500),
        "tianchi": write_tianchi(tianchi, "T0001", ecg_like(500, 10, seed=4)),
        "eight_leads": write_cinc2021(bad, "B8", ecg_like(500, 10, n_leads=8, seed=5), 500, lead_names=TIANCHI_LEADS),
        "low_fs": write_cinc2021(bad, "BLOW", ecg_like(50, 10, seed=6), 50),
    }
    # NaN: WFDB format 16 stores a missing sample as -32768.
    digital = np.rint(ecg_like(500, 10, seed=7) * 1000).astype(np.int16)
    digital[3, 100:120] = -32768
    write_mat_v4(bad / "BNAN.mat", digital)
    (bad / "BNAN.hea").write_text(
        cinc2021_header_text(
            "BNAN",
            digital,
            500,
            lead_names=STANDARD_LEADS,
            gain=1000,
            comments=["Age: 50", "Sex: Male", "Dx: 426783006"],
        )
    )
    paths["nan"] = bad / "BNAN.hea"
    (bad / "JUNK.hea").write_text("this is not a WFDB header\n\x00\x01 binary garbage\n")
    paths["junk"] = bad / "JUNK.hea"
    (root / "notes.txt").write_text("Meeting notes: nothing here is an ECG.\n")
    paths["notes"] = root / "notes.txt"
    return paths


def _model_probs(run_dir: Path, windows: np.ndarray) -> np.ndarray:
    model = load_run(run_dir).model.eval()
    with torch.no_grad():
        return torch.sigmoid(model(torch.from_numpy(np.ascontiguousarray(windows)))).numpy()


def test_window_starts_cover_the_record_and_end_at_its_end():
    assert window_starts(300, 500) == [0]
    assert window_starts(500, 500) == [0]
    assert window_starts(1000, 500) == [0, 500]
    assert window_starts(1001, 500) == [0, 500, 501]
    assert window_starts(600, 500) == [0, 100]
    for n in (501, 777, 2500, 2999):
        s = window_starts(n, 500)
        assert s[-1] + 500 == n and all(b - a <= 500 for a, b in itertools.pairwise(s))
    with pytest.raises(ConfigError):
        window_starts(10, 0)


def test_prediction_uses_exactly_the_training_preprocessing(predictor, tiny_cache, tiny_run):
    """A cached record read from its file again: same stored signal, and every window's output is the model's."""
    m = tiny_cache.manifest
    picks = [int(m.index[m["fs"] == fs][0]) for fs in sorted(m["fs"].unique())]  # one record per source rate
    assert len(picks) >= 3
    for i in picks:
        x = predictor.prepare(read_record(m["path"][i]))
        np.testing.assert_array_equal(x, tiny_cache.signal(i))
        row = predictor.predict_record(m["path"][i])
        cached = tiny_cache.signal(i)
        wins = np.stack([cached[:, s : s + WINDOW] for s in window_starts(cached.shape[1], WINDOW)])
        want = _model_probs(tiny_run, wins)
        np.testing.assert_allclose(row.window_probabilities, want, atol=1e-6)
        np.testing.assert_allclose(row.probabilities, want.mean(axis=0), atol=1e-6)
        assert row.labels.tolist() == (row.probabilities >= predictor.thresholds).tolist()
    # The centre window the trainer validated on gives the same output through the predictor's model call.
    i = picks[0]
    np.testing.assert_allclose(
        predictor.predict_windows(tiny_cache.window(i)[None]),
        _model_probs(tiny_run, tiny_cache.window(i)[None]),
        atol=1e-6,
    )


def test_other_rates_and_lengths_are_windowed_and_aggregated(predictor, records, tiny_run):
    # 257 Hz x 60 s: preprocessing keeps the centre max_store_s (10 s) -> 1000 samples -> 2 windows.
    long = predictor.predict_record(records["fs257_60s"])
    assert long.n_windows == 2 and long.fs == 257 and long.duration_s == pytest.approx(60.0)
    # 1000 Hz x 6 s: 600 samples -> windows at 0 and 100 (the last one ends at the end).
    rec = read_record(records["fs1000_6s"])
    x = predictor.prepare(rec)
    assert x.shape == (12, 600)
    row = predictor.predict_record(rec)
    want = _model_probs(tiny_run, np.stack([x[:, :WINDOW], x[:, 100:600]]))
    np.testing.assert_allclose(row.window_probabilities, want, atol=1e-6)
    np.testing.assert_allclose(row.probabilities, want.mean(axis=0), atol=1e-6)
    maxed = Predictor(tiny_run, device="cpu", aggregate="max").predict_record(rec)
    np.testing.assert_allclose(maxed.probabilities, want.max(axis=0), atol=1e-6)
    assert not np.allclose(want[0], want[1])  # the two windows differ, so mean and max are really tested
    # 500 Hz x 3 s: shorter than a window -> one zero-padded window, as in training.
    short = read_record(records["fs500_3s"])
    xs = predictor.prepare(short)
    assert xs.shape == (12, 300)
    padded = window(xs, WINDOW)
    assert np.all(padded[:, 300:] == 0)
    np.testing.assert_allclose(
        predictor.predict_record(short).probabilities, _model_probs(tiny_run, padded[None])[0], atol=1e-6
    )


def test_batched_equals_one_by_one(predictor, records, tiny_run):
    paths = [records["fs257_60s"], records["fs1000_6s"], records["fs500_3s"], records["tianchi"]]
    single = [predictor.predict_record(p) for p in paths]
    batched = predictor.predict_records([read_record(p) for p in paths])
    for a, b in zip(single, batched, strict=True):
        np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-6)
    result = predictor.predict_paths(paths)
    assert isinstance(result, PredictionResult) and result.n_failed == 0
    want = np.stack([r.probabilities for r in single])
    np.testing.assert_allclose(result.table.filter(like="p_").to_numpy(), want, atol=1e-6)
    # Inline reading, several reading threads, a progress bar and batches smaller than a record's windows.
    for options in ({"workers": 0}, {"workers": 3, "batch_size": 1}):
        other = Predictor(tiny_run, device="cpu", **options).predict_paths(paths, progress=True)
        assert list(other.table["record_id"]) == list(result.table["record_id"])
        np.testing.assert_allclose(other.table.filter(like="p_").to_numpy(), want, atol=1e-6)


def test_tianchi_file_and_directory(predictor, records):
    row = predictor.predict_record(records["tianchi"])
    assert row.record_id == "T0001" and row.fs == 500 and row.n_windows == 2
    table, errors = predictor.predict_paths([records["tianchi"].parent])  # unlabelled Tianchi records are predicted
    assert list(table["record_id"]) == ["T0001"] and errors.empty
    np.testing.assert_allclose(table.filter(like="p_").to_numpy()[0], row.probabilities, atol=1e-6)


def test_directory_table_columns(tiny_run, records, predictor):
    table, errors = predict_paths(tiny_run, records["fs257_60s"].parent, device="cpu")
    assert errors.empty
    assert sorted(table["record_id"]) == ["R1000", "R257", "R500"]
    abbr = predictor.label_space.abbreviations
    assert list(table.columns) == [
        "record_id",
        "path",
        *[f"p_{a}" for a in abbr],
        "labels",
        "codes",
        "n_windows",
        "fs",
        "duration_s",
    ]
    for _, r in table.iterrows():
        probs = r[[f"p_{a}" for a in abbr]].to_numpy(dtype=float)
        on = probs >= predictor.thresholds
        assert r["labels"] == ";".join(a for a, o in zip(abbr, on, strict=True) if o)
        assert r["codes"] == ";".join(k for k, o in zip(predictor.label_space.keys, on, strict=True) if o)


def test_bad_inputs_are_reported_and_the_rest_predicted(predictor, records):
    inputs = [records["fs257_60s"].parent, records["eight_leads"].parent, records["notes"], records["tianchi"]]
    result = predictor.predict_paths(inputs)
    assert sorted(result.table["record_id"]) == ["R1000", "R257", "R500", "T0001"]
    reasons = dict(zip(result.errors["path"].map(lambda p: Path(p).stem), result.errors["reason"], strict=True))
    assert reasons["B8"] == "missing_leads"
    assert reasons["BNAN"] == "non_finite"
    assert reasons["BLOW"] == "low_fs"
    assert "JUNK" in reasons
    assert "notes" in reasons  # named explicitly, so reported rather than ignored
    assert result.summary().startswith("4 predicted, 5 failed")
    low = result.errors.loc[result.errors["reason"] == "low_fs", "error"].iloc[0]
    assert "50 Hz" in low and "100 Hz" in low
    with pytest.raises(RecordError, match="missing leads"):
        predictor.predict_record(records["eight_leads"])


def test_nan_record_object_and_low_fs_policy(tiny_run, predictor, ecg_like):
    sig = ecg_like(500, 10)
    sig[0, 10] = np.nan
    with pytest.raises(RecordError) as info:
        predictor.predict_record(EcgRecord("N", sig, 500.0, STANDARD_LEADS))
    assert info.value.reason == "non_finite"
    # 95 Hz: below the model's 100 Hz; with --allow-upsample its 47.5 Hz Nyquist covers the 45 Hz band-pass.
    rec = EcgRecord("U", ecg_like(95, 10), 95.0, STANDARD_LEADS)
    with pytest.raises(RecordError, match="too low") as info:
        predictor.predict_record(rec)
    assert info.value.reason == "low_fs"
    up = Predictor(tiny_run, device="cpu", allow_upsample=True)
    assert up.min_fs == pytest.approx(90.0)
    assert up.predict_record(rec).n_windows == 2
    with pytest.raises(RecordError, match="Nyquist"):
        up.predict_record(EcgRecord("V", ecg_like(80, 10), 80.0, STANDARD_LEADS))


def test_cli_csv_errors_and_exit_status(tiny_run, records, tmp_path):
    out = tmp_path / "preds.csv"
    inputs = [records["fs257_60s"].parent, records["eight_leads"].parent, records["tianchi"]]
    res = CliRunner().invoke(app, ["predict", str(tiny_run), *map(str, inputs), "--out", str(out), "--no-progress"])
    assert res.exit_code == 1, res.output
    assert "4 predicted, 4 failed" in res.output
    table = pd.read_csv(out)
    assert sorted(table["record_id"]) == ["R1000", "R257", "R500", "T0001"]
    errors = pd.read_csv(errors_path_for(out))
    assert list(errors.columns) == ["path", "record_id", "reason", "error"]
    by_file = dict(zip(errors["path"].map(lambda p: Path(p).stem), errors["reason"], strict=True))
    assert {k: by_file[k] for k in ("B8", "BNAN", "BLOW")} == {
        "B8": "missing_leads",
        "BNAN": "non_finite",
        "BLOW": "low_fs",
    }
    assert set(by_file) == {"B8", "BNAN", "BLOW", "JUNK"}
    assert errors["error"].str.len().min() > 20  # full messages naming the file
    # Good inputs only: exit 0 and the stale error list is gone.
    threads = torch.get_num_threads()
    try:
        res = CliRunner().invoke(
            app,
            [
                "predict",
                str(tiny_run),
                str(records["fs257_60s"].parent),
                "--out",
                str(out),
                "--no-progress",
                "--batch-size",
                "1",
                "--threads",
                "1",
            ],
        )
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)  # the option sets a process-wide value; keep it out of other tests
    assert res.exit_code == 0, res.output
    assert "3 predicted, 0 failed" in res.output and not errors_path_for(out).exists()
    again = pd.read_csv(out)
    np.testing.assert_allclose(
        again.filter(like="p_").to_numpy(),
        table.set_index("record_id").loc[again["record_id"]].filter(like="p_").to_numpy(),
        atol=2e-6,
    )


def test_cli_challenge_format_is_readable_by_the_scorer(tiny_run, records, predictor, tmp_path):
    out = tmp_path / "outputs"
    good = records["fs257_60s"].parent
    res = CliRunner().invoke(
        app, ["predict", str(tiny_run), str(good), "--format", "challenge", "--out", str(out), "--no-progress"]
    )
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["R1000.csv", "R257.csv", "R500.csv"]
    parsed = read_challenge_output(out / "R257.csv")
    row = predictor.predict_record(records["fs257_60s"])
    assert parsed.record_id == "R257" and list(parsed.classes) == predictor.label_space.keys
    np.testing.assert_allclose(parsed.scalar, row.probabilities, atol=1e-6)
    assert parsed.binary.tolist() == row.labels.tolist()
    data = load_challenge_dirs(good, out, strict=True)
    assert data.record_ids == ("R1000", "R257", "R500") and not data.missing


def test_cli_no_records_and_bad_options(tiny_run, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    res = CliRunner().invoke(app, ["predict", str(tiny_run), str(empty), "--no-progress"])
    assert isinstance(res.exception, ConfigError) and "no ECG records" in str(res.exception)
    with pytest.raises(ConfigError, match="aggregate"):
        Predictor(tiny_run, aggregate="median")
    with pytest.raises(ConfigError, match="batch_size"):
        Predictor(tiny_run, batch_size=0)


def test_preprocessing_hash_is_checked(tiny_run, tmp_path):
    bad = tmp_path / "edited"
    shutil.copytree(tiny_run, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["preprocess"]["bandpass"] = [1.0, 40.0]
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="preprocess_hash"):
        Predictor(bad)


BF16_EPS = 2.0**-8  # bfloat16 keeps 8 significant bits: relative spacing 2^-7, rounding error <= 2^-8


def test_bf16_precision_is_bf16_autocast_within_its_rounding(tiny_run, records, predictor):
    """bf16 gives exactly the model's output under bf16 autocast, and differs from fp32 by what bf16 rounding
    explains: every convolution/linear layer rounds its operands and its output to bf16 (relative error <= 2^-8
    each); the D=1 net has 4 such layers on the path to a logit (stem, two block convolutions, head) plus its
    BatchNorms, so |logit error| <= 8 * 2^-8 * (1 + |logit|), and the sigmoid's slope (<= 1/4) carries it to the
    probability."""
    path = records["fs1000_6s"]
    rec = read_record(path)
    x = predictor.prepare(rec)
    wins = np.stack([x[:, s : s + WINDOW] for s in window_starts(x.shape[1], WINDOW)])  # 6 s at 100 Hz: 2
    bf16_row = Predictor(tiny_run, device="cpu", precision="bf16").predict_record(path)
    fp32_row = predictor.predict_record(path)
    model = load_run(tiny_run).model.eval()
    with torch.no_grad():
        z32 = model(torch.from_numpy(wins)).numpy()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            z16 = model(torch.from_numpy(wins)).float().numpy()
    np.testing.assert_allclose(bf16_row.window_probabilities, 1 / (1 + np.exp(-z16)), rtol=0, atol=1e-6)
    np.testing.assert_allclose(fp32_row.window_probabilities, 1 / (1 + np.exp(-z32)), rtol=0, atol=1e-6)
    diff = np.abs(bf16_row.window_probabilities - fp32_row.window_probabilities)
    bound = 0.25 * 8 * BF16_EPS * (1 + np.abs(z32))
    assert (diff <= bound).all()  # observed: max 6.5e-4, 6 % of the bound
    assert diff.max() > 0  # bf16 really ran: fp32 would give identical numbers


def test_preprocess_matches_library_function(predictor, records):
    rec = read_record(records["fs1000_6s"])
    want = preprocess(rec, predictor.preprocess_config).astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(predictor.prepare(rec), want)


def test_entry_point_exit_status(tiny_run, records, tmp_path, monkeypatch, capsys):
    """Through the console-script entry point: 1 when some files failed, 2 for a bad argument."""

    def run(*args: str) -> int:
        monkeypatch.setattr(sys, "argv", ["ecgscale", "predict", str(tiny_run), *args, "--no-progress"])
        with pytest.raises(SystemExit) as info:
            main()
        return int(info.value.code or 0)

    out = tmp_path / "p.csv"
    assert run(str(records["fs500_3s"]), str(records["low_fs"]), "--out", str(out)) == 1
    assert "1 predicted, 1 failed" in capsys.readouterr().out
    assert run(str(records["fs500_3s"]), "--out", str(out), "--aggregate", "median") == 2
    assert "aggregate" in capsys.readouterr().err
