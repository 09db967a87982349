"""Training on crops shorter than the stored window and sliding-window evaluation (``ecgscale.train.windows``).

Every expected value is computed independently of the code under test: windows are cut by hand and sent through
the model one at a time, crops are checked against the ramp they were cut from.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.special import expit, logit

from ecgscale.errors import ConfigError
from ecgscale.train import TrainConfig, Trainer, evaluate_run, load_run, train_run
from ecgscale.train.data import ArraySource, CacheSource, crop_positions
from ecgscale.train.trainer import predict_logits
from ecgscale.train.windows import WindowSpec, window_starts

FS = 100


def _model(k: int, seed: int = 0):
    from ecgscale.models import build_resnet1d

    return build_resnet1d(1, 16, 3, n_classes=k, generator=seed)


# ---------------------------------------------------------------------------------------------- window starts


def test_window_starts_cover_the_signal_with_the_last_window_at_the_end():
    assert window_starts(1000, 250, 125) == [0, 125, 250, 375, 500, 625, 750]  # the PTB-XL benchmark's windows
    assert window_starts(1000, 300, 300) == [0, 300, 600, 700]  # last one aligned to the end
    assert window_starts(1000, 300) == [0, 300, 600, 700]  # stride defaults to the length
    assert window_starts(200, 250, 125) == [0]  # shorter than one window: one zero-padded window
    for n, length, stride in [(1000, 250, 125), (997, 250, 100), (1000, 1000, 7), (513, 64, 50)]:
        starts = window_starts(n, length, stride)
        covered = np.zeros(n, bool)
        for s in starts:
            assert 0 <= s <= n - length
            covered[s : s + length] = True
        assert covered.all()
        assert np.all(np.diff(starts) <= stride) and np.all(np.diff(starts) > 0)
    with pytest.raises(ConfigError):
        window_starts(100, 10, 0)


def test_window_spec_from_seconds_checks_the_crop_against_the_window():
    spec = WindowSpec.from_seconds(100.0, crop_s=2.5, stride_s=1.25, aggregate="max", window=1000)
    assert spec == WindowSpec(250, 125, "max")
    assert WindowSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ConfigError, match="longer than the stored"):
        WindowSpec.from_seconds(100.0, crop_s=12.0, stride_s=None, aggregate="mean", window=1000)
    with pytest.raises(ConfigError):
        WindowSpec(250, 125, "median")
    with pytest.raises(ConfigError):
        TrainConfig(eval_aggregate="median")
    with pytest.raises(ConfigError):
        TrainConfig(crop_s=0.0)


# ---------------------------------------------------------------------------------------------- aggregation


@pytest.mark.parametrize("how", ["max", "mean"])
def test_windowed_prediction_equals_explicit_per_window_outputs(how):
    rng = np.random.default_rng(0)
    n, length, stride, k = 7, 600, 150, 3
    x = rng.normal(size=(n, 12, length)).astype(np.float32)
    source = ArraySource(x, np.zeros((n, k), np.float32))
    model = _model(k).eval()
    spec = WindowSpec(200, stride, how)
    got = predict_logits(model, source, batch_size=3, device=torch.device("cpu"), windows=spec)

    starts = [0, 150, 300, 400]
    assert window_starts(length, 200, stride) == starts
    with torch.no_grad():
        per_window = np.stack(
            [[model(torch.from_numpy(x[i : i + 1, :, s : s + 200])).numpy()[0] for s in starts] for i in range(n)]
        ).astype(np.float64)  # (n, windows, k), one window per forward pass
    if how == "max":
        want = per_window.max(axis=1)
        np.testing.assert_allclose(expit(got), expit(per_window).max(axis=1), rtol=1e-5, atol=1e-6)
    else:
        want = logit(expit(per_window).mean(axis=1))
        np.testing.assert_allclose(expit(got), expit(per_window).mean(axis=1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # Not the centre window's output, nor the other aggregation: the windows really were combined.
    centre = predict_logits(model, source, batch_size=3, device=torch.device("cpu"))
    assert not np.allclose(got, centre, atol=1e-3)


# ---------------------------------------------------------------------------------------------- crops


def test_training_crops_stay_inside_the_record_and_follow_the_seeded_positions():
    # Records of different lengths whose samples are their own index: a crop's content says where it came from.
    lengths = [1000, 640, 250, 180]
    signals = [np.tile(np.arange(n, dtype=np.float32), (12, 1)) + 1 for n in lengths]
    source = ArraySource(signals, np.zeros((len(lengths), 2), np.float32), window=1000)
    length = 250
    seen_starts = {i: set() for i in range(len(lengths))}
    for step in range(200):
        pos = crop_positions(len(lengths), seed=3, epoch=0, step=step)
        x, _ = source.batch(np.arange(len(lengths)), pos, length)
        assert x.shape == (len(lengths), 12, length)
        for i, n in enumerate(lengths):
            row = x[i, 0].numpy()
            if n >= length:
                start = int(row[0]) - 1
                assert 0 <= start <= n - length  # inside the record
                np.testing.assert_array_equal(row, np.arange(start, start + length) + 1)  # contiguous
                assert start == int(pos[i] * (n - length + 1))
                seen_starts[i].add(start)
            else:  # a short record: all of it, zero padded at the end
                np.testing.assert_array_equal(row[:n], np.arange(n) + 1)
                assert not row[n:].any()
    assert min(seen_starts[0]) < 50 and max(seen_starts[0]) > 700  # positions spread over the record
    assert seen_starts[2] == {0}


@pytest.mark.slow
def test_cache_crops_equal_explicit_slices_of_the_stored_signal(tiny_cache):
    source = CacheSource(tiny_cache, "train", load_limit_mb=0)
    idx = np.arange(min(16, len(source)))
    pos = crop_positions(len(idx), seed=0, epoch=1, step=2)
    x, _ = source.batch(idx, pos, 200)
    for j, i in enumerate(idx):
        stored = tiny_cache.signal(int(source.rows[i]))
        n = stored.shape[-1]
        start = int(pos[j] * (max(n - 200, 0) + 1))
        assert start >= 0 and start + 200 <= max(n, 200)
        want = np.zeros((12, 200), np.float32)
        take = min(200, n)
        want[:, :take] = stored[:, start : start + take]
        np.testing.assert_array_equal(x[j].numpy(), want)


def _fit(planted, planted_data, seed, **cfg):
    (xt, yt), (xv, yv) = planted_data
    config = TrainConfig(
        epochs=2, batch_size=32, lr=3e-3, precision="fp32", patience=None, seed=seed, checkpoint_every=0, **cfg
    )
    trainer = Trainer(
        _model(planted.K, seed),
        planted.space(),
        config,
        train_data=(xt, yt),
        val_data=(xv, yv),
        progress=False,
        fs=FS,
    )
    result = trainer.fit()
    return trainer, result


def test_crop_training_is_deterministic_given_the_seed(planted, planted_data):
    kw = {"crop_s": 2.0, "eval_stride_s": 1.0, "eval_aggregate": "max"}
    t1, r1 = _fit(planted, planted_data, 0, **kw)
    t2, r2 = _fit(planted, planted_data, 0, **kw)
    _, r3 = _fit(planted, planted_data, 1, **kw)
    assert t1.crop == 200 and t1.eval_windows == WindowSpec(200, 100, "max")
    assert [h["train_loss"] for h in r1.history] == [h["train_loss"] for h in r2.history]
    for a, b in zip(t1.model.state_dict().values(), t2.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert r1.history[-1]["train_loss"] != r3.history[-1]["train_loss"]
    assert r1.best_score > 0.6  # planted sines are found from 2 s crops


def test_crop_needs_the_sampling_rate(planted, planted_data):
    (xt, yt), (xv, yv) = planted_data
    with pytest.raises(ConfigError, match="sampling rate"):
        Trainer(
            _model(planted.K),
            planted.space(),
            TrainConfig(crop_s=2.0),
            train_data=(xt, yt),
            val_data=(xv, yv),
        )


# ---------------------------------------------------------------------------------------------- runs


CROP = TrainConfig(
    epochs=1,
    batch_size=32,
    lr=3e-3,
    precision="fp32",
    patience=None,
    checkpoint_every=0,
    crop_s=2.0,
    eval_stride_s=1.0,
    eval_aggregate="max",
)


@pytest.fixture(scope="module")
def crop_run(tiny_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("windows") / "run"
    model = {"depth": 1, "channels": 16, "kernel_size": 3, "n_classes": len(tiny_cache.label_space)}
    train_run(tiny_cache, model, CROP, out, progress=False)
    return out


@pytest.mark.slow
def test_run_records_its_windows_and_evaluate_reproduces_them(tiny_cache, crop_run):
    cfg = json.loads((crop_run / "config.json").read_text())
    assert cfg["crop"] == 200 and cfg["window"] == 500
    assert cfg["eval_windows"] == {"length": 200, "stride": 100, "aggregate": "max"}

    result = evaluate_run(crop_run, split="test", n_bootstrap=0, save_predictions=True)
    assert result["eval_windows"] == cfg["eval_windows"] and result["window"] == "sliding"
    saved = np.load(crop_run / "predictions_test.npz")

    loaded = load_run(crop_run)
    model = loaded.model.eval()
    x, _ = tiny_cache.get_batch(saved["index"])  # the centre 5 s evaluation windows
    with torch.no_grad():
        probs = np.stack(
            [torch.sigmoid(model(torch.from_numpy(x[:, :, s : s + 200]))).numpy() for s in (0, 100, 200, 300)]
        )
    np.testing.assert_allclose(saved["prob"], probs.max(axis=0), rtol=1e-4, atol=1e-5)

    mean = evaluate_run(crop_run, split="test", n_bootstrap=0, aggregate="mean", write=False)
    assert mean["eval_windows"]["aggregate"] == "mean"

    # the CLI's re-scoring under the other rule goes beside the run's own evaluation, never over it
    from typer.testing import CliRunner

    from ecgscale.cli import app

    own = (crop_run / "eval_test.json").read_bytes()
    res = CliRunner().invoke(app, ["evaluate", str(crop_run), "--aggregate", "mean", "--n-bootstrap", "0", "--json"])
    assert res.exit_code == 0, res.output
    assert (crop_run / "eval_test.json").read_bytes() == own
    written = json.loads((crop_run / "eval_test_mean.json").read_text())
    assert written["eval_windows"]["aggregate"] == "mean"
    assert written["metrics"]["macro_auroc"] == pytest.approx(mean["metrics"]["macro_auroc"])
    assert (crop_run / "eval_test_mean_per_label.csv").is_file()
    res = CliRunner().invoke(app, ["evaluate", str(crop_run), "--aggregate", "median"])
    assert res.exit_code != 0


@pytest.mark.slow
def test_predictor_uses_the_runs_windows(crop_run, synth_cinc_tree):
    from ecgscale.infer import Predictor

    pred = Predictor(crop_run, workers=0)
    assert (pred.window_length, pred.window_stride, pred.aggregate) == (200, 100, "max")
    assert Predictor(crop_run, workers=0, aggregate="mean").aggregate == "mean"
    record = next(p for p in sorted(synth_cinc_tree.rglob("*.hea")))
    row = pred.predict_record(record)
    assert row.n_windows >= 4
    np.testing.assert_allclose(row.probabilities, row.window_probabilities.max(axis=0))


# ---------------------------------------------------------------------------------------------- recipes


def test_builtin_recipe_is_valid_and_bad_recipes_are_refused(tmp_path):
    from ecgscale.train.recipes import load_recipe

    recipe = load_recipe("ptbxl")
    cfg = TrainConfig.from_dict(recipe["train"])
    assert cfg.crop_s == 2.5 and cfg.eval_stride_s == 1.25 and cfg.eval_aggregate in ("mean", "max")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\ncrop_s = 2.5\nepoch = 3\n")
    with pytest.raises(ConfigError, match="epoch"):
        load_recipe(bad)
    with pytest.raises(ConfigError, match="built-in recipe"):
        load_recipe("no-such-recipe")


@pytest.mark.slow
def test_cli_recipe_fills_defaults_and_explicit_options_win(tiny_cache, tmp_path):
    from typer.testing import CliRunner

    from ecgscale.cli import app

    recipe = tmp_path / "r.toml"
    recipe.write_text(
        'description = "test"\n[train]\nepochs = 3\ncrop_s = 2.0\neval_aggregate = "max"\nbatch_size = 32\n'
        "precision = 'fp32'\n[model]\ndepth = 1\nchannels = 16\nkernel_size = 3\n"
        "[preprocess]\nstandardize = false\n"
    )
    out = tmp_path / "run"
    res = CliRunner().invoke(
        app,
        [
            *("train", "--cache", str(tiny_cache.path), "--recipe", str(recipe), "--epochs", "1"),
            *("--out", str(out), "--no-progress", "--checkpoint-every", "0"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "standardize" in res.output  # the cache was standardised, the recipe was not: warned
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["train"]["epochs"] == 1  # typed on the command line
    assert cfg["train"]["crop_s"] == 2.0 and cfg["train"]["eval_aggregate"] == "max"  # from the recipe
    assert (cfg["model"]["depth"], cfg["model"]["channels"], cfg["model"]["kernel_size"]) == (1, 16, 3)


@pytest.mark.slow
def test_export_of_a_crop_trained_run_describes_and_takes_its_crops(tiny_cache, crop_run, tmp_path):
    """A crop-trained model sees 2-s windows (200 samples here), not the cache's 5-s window: the export's input
    contract says so, and a no-GAP head (fixed length) is exported for the crop length and runs."""
    import onnx

    from ecgscale.infer import export_model, read_export_metadata

    out = tmp_path / "gap.onnx"
    export_model(crop_run, "onnx", out)
    meta = read_export_metadata(out)["input"]
    assert (meta["window_samples"], meta["stride_samples"], meta["aggregate"]) == (200, 100, "max")

    nogap = tmp_path / "nogap_run"
    model = {"depth": 1, "channels": 8, "kernel_size": 3, "gap": False, "input_length": 200}
    model["n_classes"] = len(tiny_cache.label_space)
    train_run(tiny_cache, model, CROP, nogap, progress=False)
    result = export_model(nogap, "onnx", tmp_path / "nogap.onnx")  # verified against PyTorch on 200-sample input
    assert not result.dynamic_time
    dims = onnx.load(str(tmp_path / "nogap.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert dims[2].dim_value == 200


def test_export_windows_of_a_run_without_an_evaluation_stride():
    """A run trained on crops with no eval_stride_s stores stride null (adjacent windows): the export describes
    it as stride = length instead of failing on int(None)."""
    from types import SimpleNamespace

    from ecgscale.data.transforms import PreprocessConfig
    from ecgscale.infer.export import model_windows

    loaded = SimpleNamespace(config=SimpleNamespace(parse_eval_windows=lambda: WindowSpec(200, None, "max")))
    assert model_windows(loaded, PreprocessConfig(fs=100.0)) == {"length": 200, "stride": 200, "aggregate": "max"}
