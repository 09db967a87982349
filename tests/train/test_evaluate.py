"""``evaluate_run`` predicts a split once and derives the overall and the per-source metrics from it, and refuses
a cache whose preprocessing or label space differs from the run's."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from ecgscale.cli import app
from ecgscale.errors import ConfigError
from ecgscale.metrics import compute_metrics
from ecgscale.train import TrainConfig, evaluate_run, load_run, train_run
from ecgscale.train import evaluate as evaluate_mod

pytestmark = pytest.mark.slow

TINY = TrainConfig(epochs=1, batch_size=32, lr=3e-3, precision="fp32", patience=None, checkpoint_every=0)
MODEL = {"depth": 1, "channels": 8, "kernel_size": 3, "n_classes": 26}


@pytest.fixture(scope="module")
def run_dir(tiny_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "run"
    train_run(tiny_cache, MODEL, TINY, out, progress=False)
    return out


def test_per_source_metrics_come_from_the_one_prediction(tiny_cache, run_dir, monkeypatch):
    calls = []
    real = evaluate_mod.predict_logits

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluate_mod, "predict_logits", counting)
    res = evaluate_run(
        run_dir, cache=tiny_cache, n_bootstrap=0, by_source=True, min_source_records=1, save_predictions=True
    )
    assert len(calls) == 1

    idx = tiny_cache.indices("test")
    with np.load(run_dir / "predictions_test.npz", allow_pickle=False) as npz:
        index, prob, source = npz["index"], npz["prob"], npz["source"]
    assert np.array_equal(index, idx) and prob.shape == (len(idx), 26) and prob.dtype == np.float32
    want_sources = tiny_cache.manifest["source"].to_numpy()[idx].astype(str)
    assert np.array_equal(source, want_sources)

    run = load_run(run_dir)
    y = tiny_cache.labels[idx]
    overall = compute_metrics(y, prob, thresholds=run.thresholds, label_space=run.label_space)
    assert res["metrics"]["macro_auroc"] == pytest.approx(overall["macro_auroc"], abs=1e-6)
    assert set(res["per_source"]) == set(want_sources.tolist())
    for src, got in res["per_source"].items():
        mask = source == src
        want = compute_metrics(y[mask], prob[mask], thresholds=run.thresholds, label_space=run.label_space)
        assert got["n_records"] == int(mask.sum())
        for key in ("macro_auroc", "macro_f1", "challenge_metric"):
            if want[key] is None or not np.isfinite(want[key]):
                assert got[key] is None
            else:
                assert got[key] == pytest.approx(want[key], abs=1e-6)
        assert "per_label" not in got and "thresholds" not in got
    # the per-source table is part of the written report too
    assert json.loads((run_dir / "eval_test.json").read_text())["per_source"] == res["per_source"]


def test_small_sources_are_left_out_and_defaults_are_unchanged(tiny_cache, run_dir, tmp_path):
    counts = tiny_cache.manifest["source"][tiny_cache.manifest["split"] == "test"].value_counts()
    cut = int(counts.max())
    res = evaluate_run(run_dir, cache=tiny_cache, n_bootstrap=0, write=False, by_source=True, min_source_records=cut)
    assert set(res["per_source"]) == set(counts[counts >= cut].index)
    plain = evaluate_run(run_dir, split="val", cache=tiny_cache, n_bootstrap=0, write=False)
    assert "per_source" not in plain and not (run_dir / "predictions_val.npz").exists()


def _cache_like(tiny_cache, synth_cinc_tree, out, **changes):
    """The tiny cache's records prepared again with some preprocessing or label choice changed."""
    from dataclasses import replace

    from ecgscale.data.cache import build_cache, open_cache

    labels = changes.pop("labels", "auto")
    build_cache(
        [synth_cinc_tree], out, config=replace(tiny_cache.config, **changes), labels=labels, workers=1, progress=False
    )
    return open_cache(out)


def test_a_cache_with_other_preprocessing_is_refused(tiny_cache, synth_cinc_tree, run_dir, tmp_path):
    """Same records, same windows, same labels; only the band-pass differs: evaluating would run, so the hash
    check is what stops it (through the API and the CLI), and nothing is written."""
    other = _cache_like(tiny_cache, synth_cinc_tree, tmp_path / "other", bandpass=(1.0, 30.0))
    assert other.preprocess_hash != tiny_cache.preprocess_hash
    assert other.label_space.keys == tiny_cache.label_space.keys and other.window_length == tiny_cache.window_length
    before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}
    with pytest.raises(ConfigError, match=r"preprocessed differently \(hash .*\) from the run's training cache"):
        evaluate_run(run_dir, cache=other, n_bootstrap=0)
    res = CliRunner().invoke(app, ["evaluate", str(run_dir), "--cache", str(other.path), "--n-bootstrap", "0"])
    assert isinstance(res.exception, ConfigError) and "preprocessed differently" in str(res.exception), res.output
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()} == before


def test_a_cache_with_another_label_space_is_refused(tiny_cache, synth_cinc_tree, run_dir, tmp_path):
    """Same preprocessing hash, other label space (every CinC code, not the 26 scored classes)."""
    other = _cache_like(tiny_cache, synth_cinc_tree, tmp_path / "all", labels="cinc2021-all")
    assert other.preprocess_hash == tiny_cache.preprocess_hash
    assert other.label_space.keys != tiny_cache.label_space.keys
    with pytest.raises(ConfigError, match=r"label space 'cinc2021-all' \(\d+ classes\) but the run predicts"):
        evaluate_run(run_dir, cache=other, n_bootstrap=0, write=False)
