"""Calibration of the synthetic benchmark, end to end (issue #3): a small ResNet trained for about 20 s
on CPU learns it (macro AUROC far above chance) without saturating it, and the trivial summary-statistics
baseline scores clearly lower on the same split, most of all on the timing-defined interval labels.

Real path: ``synth.generate`` (CinC files) → ``data.cache.build_cache`` (100 Hz × 10 s) → ``train.train_run``
(bf16 autocast on CPU) vs. ``synth.baseline.fit_predict_summary_logistic``. Thresholds were calibrated over
several seeds of this setup (see the comments) and leave margin both ways.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ecgscale.data.labels import LABEL_GROUPS, cinc2021_scored
from ecgscale.synth.baseline import fit_predict_summary_logistic

N_RECORDS = 2500
SEED = 0


def _group_aurocs(y: np.ndarray, p: np.ndarray, abbreviations: list[str]) -> dict[str, float]:
    """Macro AUROC per label group over the classes with both values in ``y`` (plus ``"macro"``)."""
    per_label = {
        a: float(roc_auc_score(y[:, k], p[:, k])) for k, a in enumerate(abbreviations) if 0 < y[:, k].sum() < len(y)
    }
    groups = {
        g: float(np.mean([per_label[m] for m in ms if m in per_label]))
        for g, ms in LABEL_GROUPS.items()
        if any(m in per_label for m in ms)
    }
    groups["macro"] = float(np.mean(list(per_label.values())))
    return groups


def run_calibration(tmp_path, seed: int = SEED, n: int = N_RECORDS) -> tuple[dict[str, float], dict[str, float]]:
    import torch

    from ecgscale.data.cache import build_cache, open_cache
    from ecgscale.data.splits import SplitConfig
    from ecgscale.data.transforms import PreprocessConfig
    from ecgscale.models import ResNet1dConfig
    from ecgscale.synth import generate
    from ecgscale.train import TrainConfig, load_run, train_run

    space = cinc2021_scored()
    generate(tmp_path / "data", n=n, seed=seed, fs=100, progress=False, workers=1)
    config = PreprocessConfig(fs=100, window_s=10.0, max_store_s=10.0)
    split = SplitConfig(method="stratified", fractions=(0.7, 0.1, 0.2), seed=seed)
    build_cache(
        [tmp_path / "data"], tmp_path / "cache", config=config, labels=space, split=split, workers=1, progress=False
    )
    cache = open_cache(tmp_path / "cache").load()

    model_cfg = ResNet1dConfig(depth=4, channels=16, kernel_size=9, n_classes=len(space))
    train_cfg = TrainConfig(
        epochs=30,
        batch_size=64,
        lr=3e-3,
        max_minutes=0.75,
        patience=None,
        seed=seed,
        device="cpu",
        precision="bf16",
        pos_weight=True,
        warmup_epochs=0.5,
    )
    train_run(cache, model_cfg, train_cfg, tmp_path / "run", progress=False)
    model = load_run(tmp_path / "run").model.eval()

    test = cache.indices("test")
    x_test, y_test = cache.get_batch(test)
    with torch.no_grad():
        p_resnet = torch.sigmoid(model(torch.from_numpy(x_test)).float()).numpy()
    x_train, y_train = cache.get_batch(cache.indices("train"))
    p_logistic = fit_predict_summary_logistic(x_train, y_train, x_test, config.fs)
    abbr = [c.abbreviation for c in space.classes]
    return _group_aurocs(y_test, p_resnet, abbr), _group_aurocs(y_test, p_logistic, abbr)


@pytest.mark.slow
def test_small_resnet_learns_the_benchmark_and_beats_the_trivial_baseline(tmp_path):
    # Calibration (setup seeds 0 / 1 / 2, 2,500 records, 500 test records, ~23 s wall on 2 cores):
    #   ResNet macro 0.915 / 0.923 / 0.931, lowest group (rhythm) 0.871 / 0.869 / 0.877;
    #   ResNet - logistic: macro +0.052 / +0.065 / +0.049, intervals +0.226 / +0.230 / +0.110.
    # A model that learned nothing scores ~0.5 and fails every assertion but the saturation one.
    resnet, logistic = run_calibration(tmp_path)
    msg = f"ResNet {resnet}\nlogistic {logistic}"
    assert resnet["macro"] >= 0.85, msg  # learns it
    assert min(v for g, v in resnet.items() if g != "macro") < 0.99, msg  # does not saturate every group
    assert resnet["macro"] - logistic["macro"] >= 0.03, msg  # beats per-lead statistics
    assert resnet["intervals"] - logistic["intervals"] >= 0.07, msg  # PR / QT need beat timing
