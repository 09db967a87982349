"""`recommend` on hand-made study results: each budget kind, the no-fit error, the latency cache."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ecgscale.errors import ConfigError, StudyError
from ecgscale.report import aggregate_configs, pareto_configs, recommend


def _brute_force_best(results: pd.DataFrame, cost: str, budget: float | None) -> tuple:
    agg = aggregate_configs(results, "macro_auroc")
    if budget is not None:
        agg = agg[agg[cost] <= budget]
    best = agg.sort_values(["mean", cost], ascending=[False, True]).iloc[0]
    return int(best.depth), int(best.channels), int(best.kernel_size), bool(best.gap)


def _key(rec) -> tuple:
    c = rec.config
    return c["depth"], c["channels"], c["kernel_size"], c["gap"]


def test_aggregate_and_pareto(results: pd.DataFrame) -> None:
    agg = aggregate_configs(results, "macro_auroc")
    assert len(agg) == len(results) // 3 and set(agg["n_repeats"]) == {3}
    assert agg.attrs["select_column"] == "val_macro_auroc" and agg.attrs["report_column"] == "test_macro_auroc"
    one = agg.iloc[0]
    rows = results[
        (results.depth == one.depth)
        & (results.channels == one.channels)
        & (results.kernel_size == one.kernel_size)
        & (results.gap == one.gap)
    ]
    assert one["mean"] == pytest.approx(rows.val_macro_auroc.mean())
    assert one["std"] == pytest.approx(rows.val_macro_auroc.std())
    front = pareto_configs(agg, "params")
    assert front["params"].is_monotonic_increasing and front["mean"].is_monotonic_increasing
    # nothing off the front is both cheaper-or-equal and better than a front member
    for _, f in front.iterrows():
        assert not ((agg["params"] <= f["params"]) & (agg["mean"] > f["mean"])).any()


def test_no_budget_picks_the_best_overall(results: pd.DataFrame) -> None:
    rec = recommend(results)
    assert _key(rec) == _brute_force_best(results, "params", None)
    assert rec.config["channels"] == 64 and rec.config["gap"] is True  # the planted optimum
    assert rec.budget_kind is None and rec.n_repeats == 3
    assert len(rec.beaten) == rec.n_configs - 1
    assert rec.beaten["mean"].is_monotonic_decreasing


@pytest.mark.parametrize("kind", ["params", "flops"])
def test_param_and_flop_budgets(results: pd.DataFrame, kind: str) -> None:
    agg = aggregate_configs(results, "macro_auroc")
    budget = float(agg[kind].median())
    rec = recommend(results, **{f"budget_{kind}": budget})
    assert rec.cost[kind] <= budget
    assert _key(rec) == _brute_force_best(results, kind, budget)
    assert (rec.beaten[kind] <= budget).all() and (rec.beaten["mean"] < rec.mean).all()
    assert rec.budget_kind == kind and rec.budget == budget
    d = json.loads(json.dumps(rec.to_dict()))
    assert d["config"] == rec.config and d["budget"] == {"kind": kind, "value": budget}
    assert "ecgscale train" in d["train_command"] and f"--depth {rec.config['depth']}" in d["train_command"]


def test_train_command_reproduces_the_studys_training_protocol(results: pd.DataFrame) -> None:
    """A study trained with the ptbxl recipe: the recommended model must be trained with the same settings."""
    from ecgscale.commands import command_line, train_options
    from ecgscale.train import TrainConfig
    from ecgscale.train.recipes import RECIPES

    protocol = {**RECIPES["ptbxl"]["train"], "epochs": 2}
    flags = command_line("train", **train_options(protocol)).split()[2:]
    line = recommend(results).train_command(cache="CACHE", out="OUT", train=protocol)
    assert line.endswith(" ".join(flags) + " --out OUT")
    pairs = dict(zip(flags[::2], flags[1::2], strict=False))
    assert pairs["--crop-s"] == "2.5" and pairs["--eval-stride-s"] == "1.25" and pairs["--eval-aggregate"] == "mean"
    assert pairs["--epochs"] == "2" and pairs["--schedule"] == "onecycle" and pairs["--patience"] == "0"
    # every flag is one `ecgscale train` has (parsed by its own CLI without error)
    from typer.testing import CliRunner

    from ecgscale.cli import app

    res = CliRunner().invoke(app, ["train", "--help"], terminal_width=200)
    for flag in flags[::2]:
        assert flag in res.output, flag
    assert TrainConfig(**protocol).crop_s == 2.5


def test_latency_budget_measures_front_configs_once_and_caches(results: pd.DataFrame, tmp_path: Path) -> None:
    calls: list[dict] = []

    def fake_measure(kwargs, n_samples):  # latency proportional to FLOPs-ish: deterministic
        calls.append(dict(kwargs))
        assert n_samples == 2500 and kwargs["n_classes"] == 26
        if not kwargs["gap"]:
            assert kwargs["input_length"] == 2500
        return kwargs["channels"] * kwargs["channels"] * kwargs["depth"] * kwargs["kernel_size"] / 1e4

    cache = tmp_path / "study" / "latency.json"
    rec = recommend(results, budget_latency_ms=2.0, latency_cache=cache, measure=fake_measure, threads=2)
    assert rec.cost["latency_ms"] <= 2.0
    n_first = len(calls)
    # exactly the configurations on the params or FLOPs Pareto front are timed, each once
    agg = aggregate_configs(results, "macro_auroc")
    front = pd.concat([pareto_configs(agg, "params"), pareto_configs(agg, "flops")])
    front_keys = {(int(r.depth), int(r.channels), int(r.kernel_size), bool(r.gap)) for r in front.itertuples()}
    timed = [(c["depth"], c["channels"], c["kernel_size"], c["gap"]) for c in calls]
    assert sorted(timed) == sorted(front_keys) and len(front_keys) < len(agg)
    # and the recommendation is the best-scoring front configuration whose (fake) latency fits
    best = max(
        (r for r in front.itertuples() if r.channels**2 * r.depth * r.kernel_size / 1e4 <= 2.0), key=lambda r: r.mean
    )
    assert _key(rec) == (int(best.depth), int(best.channels), int(best.kernel_size), bool(best.gap))
    assert rec.cost["latency_ms"] == best.channels**2 * best.depth * best.kernel_size / 1e4
    stored = json.loads(cache.read_text())["entries"]
    assert len(stored) == n_first
    again = recommend(results, budget_latency_ms=2.0, latency_cache=cache, measure=fake_measure, threads=2)
    assert len(calls) == n_first and again.config == rec.config  # second call served from the cache


def test_nothing_fits_names_smallest_cost(results: pd.DataFrame) -> None:
    smallest = int(results["params"].min())
    with pytest.raises(ConfigError, match=rf"--budget-params.*smallest available is {smallest:,}"):
        recommend(results, budget_params=10)
    with pytest.raises(ConfigError, match=r"--budget-latency-ms.*smallest available is 5"):
        recommend(results, budget_latency_ms=0.001, measure=lambda kw, n: 5.0, threads=1)


def test_bad_arguments(results: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="at most one budget"):
        recommend(results, budget_params=1e6, budget_flops=1e9)
    with pytest.raises(ConfigError, match=r"--budget-flops.*positive"):
        recommend(results, budget_flops=-1)
    with pytest.raises(ConfigError, match=r"'nope' is not a column.*val_macro_auroc"):
        recommend(results, metric="nope")
    with pytest.raises(StudyError, match="no finished trials"):
        recommend(results.iloc[:0])
    with pytest.raises(StudyError, match="lack the columns"):
        recommend(results.drop(columns=["flops"]))


def test_single_split_study_uses_the_one_column(results: pd.DataFrame) -> None:
    only = results.drop(columns=["val_macro_auroc"])
    rec = recommend(only, metric="test_macro_auroc")
    assert rec.select_column == rec.report_column == "test_macro_auroc"
    assert "test" in rec.summary()


def test_latency_is_the_median_forward_time_in_ms(monkeypatch) -> None:
    """The real model is built and run on one record's windows; a scripted clock makes its forward passes take
    known times, so the result must be the median of the timed (non-warm-up) passes, in milliseconds."""
    import importlib
    import types

    import ecgscale.models as models
    from ecgscale.report import measure_latency_ms

    rmod = importlib.import_module("ecgscale.report.recommend")
    real_build = models.build_resnet1d
    clock = [1000.0]
    durations = iter([0.5, 0.4, 0.003, 0.001, 0.002, 0.010, 0.004])  # seconds; the first two are warm-up
    seen = []

    def build(**kwargs):
        model = real_build(**kwargs)

        def tick(module, args, output):
            seen.append((tuple(args[0].shape), tuple(output.shape), module.training))
            clock[0] += next(durations)

        model.register_forward_hook(tick)
        return model

    monkeypatch.setattr(models, "build_resnet1d", build)
    monkeypatch.setattr(rmod, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    kwargs = {"depth": 1, "channels": 8, "kernel_size": 3, "gap": False, "n_classes": 5, "input_length": 500}
    ms = measure_latency_ms(kwargs, 500, n_windows=2, repeats=5, warmup=2)
    assert ms == pytest.approx(3.0, rel=1e-9)  # median of 3, 1, 2, 10, 4 ms
    assert seen == [((2, 12, 500), (2, 5), False)] * 7


def test_latency_covers_a_whole_record_in_windows(results: pd.DataFrame, monkeypatch, tmp_path: Path) -> None:
    """A 10-s record with 5-s model windows is timed as a batch of 2 windows of the model's input length."""
    import importlib

    rmod = importlib.import_module("ecgscale.report.recommend")  # the package re-exports a function of that name

    seen = []

    def fake(kwargs, n_samples, *, n_windows=1):
        seen.append((n_samples, n_windows, kwargs.get("input_length")))
        return 1.0

    monkeypatch.setattr(rmod, "measure_latency_ms", fake)
    recommend(results, budget_latency_ms=5.0, n_samples=500, n_windows=2, latency_cache=tmp_path / "l.json", threads=1)
    assert seen and {(n, w) for n, w, _ in seen} == {(500, 2)}
    assert {length for *_, length in seen} <= {None, 500}
    assert "x2|" in next(iter(json.loads((tmp_path / "l.json").read_text())["entries"]))
