"""Calibration of the synthetic benchmark, end to end (issue #3, made strict in issue #11).

Real path: ``synth.generate`` (CinC files) → ``data.cache.build_cache`` (100 Hz × 10 s) → ``train.train_run``
with the configuration docs/synth.md quotes (ResNet D6-C16-K9, AdamW 3e-3, cosine, pos-weighted BCE, fp32)
for a **fixed number of epochs** (no wall-clock budget, so the result does not depend on how busy the machine
is) vs. ``synth.baseline.fit_predict_summary_logistic`` on the same split. Everything is seeded.

What is asserted comes from docs/synth.md ("Difficulty (calibration)"); the figures this exact run gives
(seeds 0/1/2) are in "The calibration as a test" there. The documented 30-epoch, 4,000-record figures (macro
0.932 vs 0.878) need ~14 CPU-minutes and are not reached here: after 8 epochs the ResNet is ahead of the
baseline on the timing-defined labels, level with it on macro AUROC, and still behind on axis.

* the ResNet learns the benchmark (macro AUROC far above chance) and beats per-lead summary statistics where
  the docs say labels need beat timing (intervals; IAVB, NSR);
* the benchmark is not saturated: the classes the docs name as the hardest for the ResNet (PAC, SA, LQRSV,
  PRWP; LQRSV because per-record standardisation removes absolute voltage) stay below a ceiling;
* amplitude-defined labels (axis, pacing) are easy for the summary statistics, pacing for the network too.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ecgscale.data.labels import LABEL_GROUPS, cinc2021_scored
from ecgscale.synth.baseline import fit_predict_summary_logistic

N_RECORDS = 2500
SEED = 0
EPOCHS = 8
PRECISION = "fp32"

#: docs/synth.md names these as the hardest classes for the ResNet ("the benchmark is not saturated").
HARD_LABELS = ("PAC", "SA", "LQRSV", "PRWP")


def _aurocs(y: np.ndarray, p: np.ndarray, abbreviations: list[str]) -> tuple[dict[str, float], dict[str, float]]:
    """Macro AUROC per label group over the classes with both values in ``y`` (plus ``"macro"``), and per label."""
    per_label = {
        a: float(roc_auc_score(y[:, k], p[:, k])) for k, a in enumerate(abbreviations) if 0 < y[:, k].sum() < len(y)
    }
    groups = {
        g: float(np.mean([per_label[m] for m in ms if m in per_label]))
        for g, ms in LABEL_GROUPS.items()
        if any(m in per_label for m in ms)
    }
    groups["macro"] = float(np.mean(list(per_label.values())))
    return groups, per_label


def run_calibration(tmp_path, seed: int = SEED, n: int = N_RECORDS, epochs: int = EPOCHS) -> dict:
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

    model_cfg = ResNet1dConfig(depth=6, channels=16, kernel_size=9, n_classes=len(space))
    train_cfg = TrainConfig(
        epochs=epochs,
        batch_size=64,
        lr=3e-3,
        max_minutes=None,  # a fixed epoch budget, never a wall-clock one
        patience=None,
        seed=seed,
        device="cpu",
        precision=PRECISION,
        pos_weight=True,
        warmup_epochs=0.5,
        deterministic=True,
    )
    result = train_run(cache, model_cfg, train_cfg, tmp_path / "run", progress=False)
    model = load_run(tmp_path / "run").model.eval()

    test = cache.indices("test")
    x_test, y_test = cache.get_batch(test)
    with torch.no_grad():
        p_resnet = torch.sigmoid(model(torch.from_numpy(x_test)).float()).numpy()
    x_train, y_train = cache.get_batch(cache.indices("train"))
    p_logistic = fit_predict_summary_logistic(x_train, y_train, x_test, config.fs)
    abbr = [c.abbreviation for c in space.classes]
    resnet, resnet_labels = _aurocs(y_test, p_resnet, abbr)
    logistic, logistic_labels = _aurocs(y_test, p_logistic, abbr)
    positives = {a: int(y_test[:, k].sum()) for k, a in enumerate(abbr)}
    return {
        "resnet": resnet,
        "logistic": logistic,
        "resnet_labels": resnet_labels,
        "logistic_labels": logistic_labels,
        "positives": positives,
        "epochs_run": len(result.history),
        "stop_reason": result.stop_reason,
        "p_resnet": p_resnet,
    }


def _table(out: dict) -> str:
    lines = [f"{'':<12}{'ResNet':>8}{'logistic':>10}"]
    for g in [*LABEL_GROUPS, "macro"]:
        lines.append(f"{g:<12}{out['resnet'].get(g, float('nan')):>8.3f}{out['logistic'].get(g, float('nan')):>10.3f}")
    for a, v in sorted(out["resnet_labels"].items()):
        lines.append(f"  {a:<10}{v:>8.3f}{out['logistic_labels'][a]:>10.3f}  n+={out['positives'][a]}")
    return "\n".join(lines)


@pytest.mark.slow
def test_small_resnet_learns_the_benchmark_and_beats_the_trivial_baseline(tmp_path):
    out = run_calibration(tmp_path)
    resnet, logistic = out["resnet"], out["logistic"]
    rn, lr = out["resnet_labels"], out["logistic_labels"]
    msg = _table(out)
    print("\n" + msg)
    # A fixed budget: every epoch ran, nothing stopped it early.
    assert out["epochs_run"] == EPOCHS and out["stop_reason"] == "completed", out["stop_reason"]
    # It learns the benchmark: far above chance (0.5) on the 26 classes.
    assert resnet["macro"] >= 0.80, msg
    # Timing needs beat structure (docs/synth.md: intervals -0.24 for the baseline, IAVB 0.97 vs 0.64, NSR 1.00
    # vs 0.87 after 30 epochs). At this budget the interval-group margin is +0.03...+0.24 over seeds 0/1/2 and
    # LQT and conduction are not reliably ahead, so only the margins that hold on every seed are asserted.
    assert resnet["intervals"] > logistic["intervals"], msg
    for label in ("IAVB", "NSR"):
        assert rn[label] - lr[label] >= 0.05, f"{label}\n{msg}"
    # Not saturated: the classes docs/synth.md names the hardest for the ResNet (PAC 0.67, SA 0.72,
    # LQRSV 0.75 - absolute voltage is removed by the per-record standardisation -, PRWP 0.80 after 30
    # epochs) stay below 0.9, i.e. their documented value plus the test split's sampling error (13-33
    # positives: standard error about 0.05).
    for hard in HARD_LABELS:
        assert rn[hard] < 0.90, f"{hard}\n{msg}"
    # Amplitude-defined labels are easy for per-lead statistics (docs: axis 0.991, pacing 1.000), and
    # pacing spikes for the network too.
    assert logistic["axis"] >= 0.95 and logistic["pacing"] >= 0.95, msg
    assert resnet["pacing"] >= 0.95, msg
