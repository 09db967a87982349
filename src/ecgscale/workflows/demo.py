"""The end-to-end demo: synthetic data → cache → scale sweep (+ GAP ablation) → wide-vs-narrow search →
recommended model trained and evaluated → the study report; on a 2-core CPU, from nothing.

Every stage checks for its finished output before doing anything, so re-running the demo resumes where it
stopped and a second run of a finished demo only re-checks (seconds). A stage's parameters are stamped in
``<out>/.demo/<stage>.json``; a folder made with other parameters (another preset in the same ``--out``) is
refused with a clear error instead of being silently mixed or deleted.

Sizes are chosen in :data:`PRESETS` so the ``full`` demo shows the scaling trends yet finishes in under
20 minutes on 2 cores, ``quick`` in under 3 minutes; ``tiny`` exists for the end-to-end test only.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecgscale.commands import command_line, prepare_options, train_command
from ecgscale.errors import ConfigError
from ecgscale.fileio import read_json, write_json_atomic, write_text_atomic

__all__ = ["PRESETS", "DemoPreset", "DemoSummary", "StageResult", "run_demo"]

if TYPE_CHECKING:  # pragma: no cover
    from ecgscale.data.transforms import PreprocessConfig
    from ecgscale.study.grids import Grid

log = logging.getLogger(__name__)

STUDY_NAME = "demo"


@dataclass(frozen=True, slots=True)
class DemoPreset:
    """The sizes of one demo run; every field is stamped into the stage files (changing one re-runs a stage)."""

    name: str
    n_records: int
    fs: int
    window_s: float
    max_store_s: float
    grid_base: tuple[int, int, int]  # (depth, channels, kernel_size) the axes grid varies around
    depths: tuple[int, ...]
    channels: tuple[int, ...]
    kernels: tuple[int, ...]
    repeats: int
    sweep_epochs: int
    search_trials: int
    search_seeds: int
    search_epochs: int
    final_epochs: int
    search_max_minutes: float = 0.5  # per search trial: the wide space's big nets must not eat the budget
    batch_size: int = 64
    lr: float = 3e-3
    n_bootstrap: int = 200
    seed: int = 0
    bandpass: tuple[float, float] = (0.5, 45.0)

    def __post_init__(self) -> None:
        for key in (
            "n_records",
            "fs",
            "repeats",
            "sweep_epochs",
            "search_trials",
            "search_seeds",
            "search_epochs",
            "final_epochs",
            "batch_size",
        ):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"got {value!r}; allowed: an integer >= 1", key=f"preset {self.name}.{key}")
        if not self.window_s > 0 or self.max_store_s < self.window_s:
            raise ConfigError(
                f"got window_s={self.window_s}, max_store_s={self.max_store_s}; allowed: 0 < window_s <= max_store_s",
                key=f"preset {self.name}.window_s",
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def grid(self) -> Grid:
        """The sweep's axes grid around ``grid_base``, every architecture with and without GAP."""
        from ecgscale.study.grids import axes_grid

        d, c, k = self.grid_base
        return axes_grid(
            {"depth": d, "channels": c, "kernel_size": k},
            depths=self.depths,
            channels=self.channels,
            kernels=self.kernels,
            seeds=range(self.repeats),
            name=f"demo-{self.name}",
        )

    def grid_toml(self) -> str:
        """The sweep's grid as a file for ``ecgscale sweep --grid FILE`` (so the reproduce commands are exact)."""
        return self.grid().to_toml(
            comment=f'axes grid of the ecgscale demo (preset "{self.name}"): one factor at a time around the base,\n'
            "each architecture with and without global average pooling (GAP ablation)."
        )

    def preprocess(self) -> PreprocessConfig:
        """How the demo's cache is prepared."""
        from ecgscale.data.transforms import PreprocessConfig

        return PreprocessConfig(
            fs=self.fs, window_s=self.window_s, max_store_s=self.max_store_s, bandpass=self.bandpass
        )


PRESETS: dict[str, DemoPreset] = {
    # measured wall times per stage are in docs/report.md
    "full": DemoPreset(
        name="full",
        n_records=2000,
        fs=100,
        window_s=5.0,
        max_store_s=10.0,
        grid_base=(2, 16, 9),
        depths=(1, 2, 4, 8),
        channels=(8, 16, 32, 64),
        kernels=(3, 5, 9, 17, 33),
        repeats=3,
        sweep_epochs=8,
        search_trials=6,
        search_seeds=2,
        search_epochs=4,
        search_max_minutes=0.5,
        final_epochs=20,
        n_bootstrap=200,
    ),
    "quick": DemoPreset(
        name="quick",
        n_records=800,
        fs=100,
        window_s=5.0,
        max_store_s=10.0,
        grid_base=(2, 16, 9),
        depths=(1, 2, 4),
        channels=(8, 16, 32),
        kernels=(3, 9, 17),
        repeats=1,
        sweep_epochs=4,
        search_trials=4,
        search_seeds=1,
        search_epochs=2,
        search_max_minutes=0.25,
        final_epochs=10,
        n_bootstrap=100,
    ),
    "tiny": DemoPreset(
        name="tiny",
        n_records=120,
        fs=50,
        window_s=4.0,
        max_store_s=8.0,
        grid_base=(1, 8, 5),
        depths=(1, 2),
        channels=(8,),
        kernels=(5,),
        repeats=1,
        sweep_epochs=1,
        search_trials=2,
        search_seeds=1,
        search_epochs=1,
        search_max_minutes=0.2,
        final_epochs=1,
        batch_size=32,
        n_bootstrap=20,
        bandpass=(0.5, 20.0),
    ),
}


@dataclass(frozen=True, slots=True)
class StageResult:
    """One stage of a demo run: ``status`` is ``done`` (ran now) or ``reused`` (its output was already there)."""

    name: str
    status: str
    seconds: float
    detail: str = ""
    cpu_seconds: float = 0.0  # CPU time of this process and its workers: an upper bound of the wall time on an
    #                           idle machine (measured wall time is inflated when the CPU is shared)


@dataclass(frozen=True, slots=True)
class DemoSummary:
    """What a demo run produced: where the report is, the recommended architecture and its test metrics."""

    out: Path
    preset: str
    device: str
    stages: tuple[StageResult, ...]
    report_html: Path
    recommended: Mapping[str, Any]
    test_metrics: Mapping[str, Any] = field(default_factory=dict)

    @property
    def total_seconds(self) -> float:
        return sum(s.seconds for s in self.stages)

    @property
    def total_cpu_seconds(self) -> float:
        return sum(s.cpu_seconds for s in self.stages)

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "preset": self.preset,
            "device": self.device,
            "total_seconds": self.total_seconds,
            "total_cpu_seconds": self.total_cpu_seconds,
            "stages": [dataclasses.asdict(s) for s in self.stages],
            "report_html": str(self.report_html),
            "recommended": dict(self.recommended),
            "test_metrics": dict(self.test_metrics),
        }


class _Stages:
    """Runs named stages, each skipped when its stamp (parameters + declared outputs) says it is finished."""

    def __init__(self, out: Path):
        self.out = out
        self.stamp_dir = out / ".demo"
        self.results: list[StageResult] = []

    def stamp_path(self, name: str) -> Path:
        return self.stamp_dir / f"{name}.json"

    def finished(self, name: str, params: Mapping[str, Any], outputs: list[Path]) -> dict[str, Any] | None:
        path = self.stamp_path(name)
        if not path.exists():
            return None
        stamp = read_json(path)
        if stamp.get("params") != _jsonable(params):
            raise ConfigError(
                f"{self.out} holds a demo made with other settings (stage {name!r}, {path}); use another --out or "
                "delete that folder",
                key="--out",
            )
        if not all(p.exists() for p in outputs):
            return None
        return dict(stamp.get("result", {}))

    def run(
        self,
        name: str,
        params: Mapping[str, Any],
        outputs: list[Path],
        fn: Callable[[], Mapping[str, Any]],
        describe: Callable[[Mapping[str, Any]], str] = lambda r: "",
    ) -> dict:
        t0, c0 = time.perf_counter(), _cpu_seconds()
        done = self.finished(name, params, outputs)
        if done is not None:
            seconds = time.perf_counter() - t0
            log.info("demo: %s already done (%s) — reused", name, describe(done) or "ok")
            self.results.append(StageResult(name, "reused", seconds, describe(done), _cpu_seconds() - c0))
            return done
        log.info("demo: %s …", name)
        result = dict(fn())
        seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
        write_json_atomic(
            self.stamp_path(name),
            {"params": _jsonable(params), "result": _jsonable(result), "seconds": seconds, "cpu_seconds": cpu},
        )
        log.info("demo: %s done in %.1f s (CPU %.1f s) %s", name, seconds, cpu, describe(result))
        self.results.append(StageResult(name, "done", seconds, describe(result), cpu))
        return result


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished child processes (synth/cache workers)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def _refuse_foreign(path: Path, stage: str, stamps: _Stages) -> None:
    if path.exists() and not stamps.stamp_path(stage).exists():
        raise ConfigError(
            f"{path} exists but was not finished by this demo (no {stamps.stamp_path(stage)}); "
            "use another --out or delete it",
            key="--out",
        )


def _device_name(device: str) -> str:
    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"got {device!r}; allowed: auto, cpu, cuda", key="device")
    if device == "cpu":
        return device
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("got cuda (--gpu) but torch sees no CUDA device; use --cpu or leave it out", key="device")
    return "cuda" if torch.cuda.is_available() else "cpu"


def run_demo(
    out: str | Path = "demo-out",
    *,
    preset: str | DemoPreset = "full",
    device: str = "auto",
    progress: bool = True,
    workers: int | None = None,
) -> DemoSummary:
    """Run (or resume) the whole demo into ``out``; see the module docstring for the stages."""
    p = PRESETS.get(preset) if isinstance(preset, str) else preset
    if p is None:
        raise ConfigError(f"got {preset!r}; allowed: {', '.join(PRESETS)}", key="preset")
    dev = _device_name(device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stages = _Stages(out)
    synth_dir, cache_dir = out / "synth", out / "cache"
    studies_dir, run_dir, report_dir = out / "studies", out / "runs" / "recommended", out / "report"
    grid_file = out / "grid.toml"

    # 1. synthetic benchmark ---------------------------------------------------------------------------------
    synth_params = {"n": p.n_records, "seed": p.seed, "format": "cinc2021"}

    def do_synth() -> dict[str, Any]:
        from ecgscale.synth import generate

        _refuse_foreign(synth_dir, "synth", stages)
        summary = generate(
            synth_dir, n=p.n_records, seed=p.seed, format="cinc2021", progress=progress, workers=workers or 1
        )
        return {"n_records": int(getattr(summary, "n_records", p.n_records))}

    stages.run("synth", synth_params, [synth_dir], do_synth, lambda r: f"{r.get('n_records')} records")

    # 2. cache ---------------------------------------------------------------------------------------------
    from ecgscale.data.cache import build_cache, open_cache

    pre = p.preprocess()

    def do_cache() -> dict[str, Any]:
        summary = build_cache([synth_dir], cache_dir, config=pre, workers=workers, progress=progress)
        return {"n_records": summary.n_records, "status": summary.status, "hash": summary.preprocess_hash}

    # the hash carries the pipeline version: a cache made by another ecgscale preprocessing is not reused
    stages.run(
        "cache",
        {"preprocess": pre.to_dict(), "hash": pre.hash(), "synth": synth_params},
        [cache_dir / "cache.json"],
        do_cache,
        lambda r: f"{r.get('n_records')} records, hash {str(r.get('hash'))[:10]}",
    )
    cache = open_cache(cache_dir)

    # 3. axes sweep with the GAP ablation ------------------------------------------------------------------
    train_base = {"batch_size": p.batch_size, "lr": p.lr}  # not the device: a demo may resume on another one
    sweep_params = {"grid": p.grid_toml(), "epochs": p.sweep_epochs, "train": train_base, "cache": pre.hash()}

    def do_sweep() -> dict[str, Any]:
        write_text_atomic(grid_file, p.grid_toml())
        return _run_sweep(cache, grid_file, studies_dir, p, dev, progress)

    stages.run("sweep", sweep_params, [studies_dir / STUDY_NAME], do_sweep, lambda r: f"{r.get('n_trials')} trials")

    # 4. wide-vs-narrow search ------------------------------------------------------------------------------
    compare_dir = out / "search-compare"
    search_params = {
        "trials": p.search_trials,
        "seeds": p.search_seeds,
        "epochs": p.search_epochs,
        "max_minutes": p.search_max_minutes,
        "train": train_base,
        "cache": pre.hash(),
        "sweep": sweep_params,
    }

    def do_search() -> dict[str, Any]:
        return _run_search_compare(cache, compare_dir, studies_dir, p, dev, progress)

    stages.run(
        "search-compare",
        search_params,
        [compare_dir / "compare.csv"],
        do_search,
        lambda r: str(r.get("verdict", "")).removeprefix("Verdict: ").split(" on test")[0],
    )

    # 5. recommendation + training of the recommended model ---------------------------------------------------
    from ecgscale.report.recommend import recommend
    from ecgscale.study import study_results
    from ecgscale.study.storage import default_storage_url

    storage = default_storage_url(studies_dir, STUDY_NAME)
    rec = recommend(study_results(STUDY_NAME, storage), metric="macro_auroc")
    train_params = {"config": rec.config, "epochs": p.final_epochs, "train": train_base, "cache": pre.hash()}

    def do_train() -> dict[str, Any]:
        from ecgscale.models import ResNet1dConfig
        from ecgscale.train import train_run
        from ecgscale.train.rundir import RunDir

        model_cfg = ResNet1dConfig(
            n_classes=len(cache.label_space),
            n_leads=12,
            **rec.config,
            input_length=None if rec.config["gap"] else cache.window_length,
        )
        train_cfg = _train_base(p, dev, p.final_epochs)
        result = train_run(cache, model_cfg, train_cfg, run_dir, resume=RunDir(run_dir).holds_run(), progress=progress)
        return {"best_epoch": result.best_epoch, "best_score": result.best_score, "train_seconds": result.train_seconds}

    stages.run(
        "train",
        train_params,
        [run_dir / "model.safetensors"],
        do_train,
        lambda r: f"best epoch {r.get('best_epoch')}, val {float(r.get('best_score') or 0):.3f}",
    )

    # 6. evaluation on the test split (bootstrap CIs, challenge metric) --------------------------------------
    def do_eval() -> dict[str, Any]:
        from ecgscale.report.build import headline_metrics
        from ecgscale.train import evaluate_run

        metrics = headline_metrics(evaluate_run(run_dir, split="test", cache=cache, n_bootstrap=p.n_bootstrap))
        ci = metrics.get("ci") or {}
        keys = ("macro_auroc", "macro_auprc", "macro_f1", "challenge_metric")
        return {**{k: metrics.get(k) for k in keys}, **{f"{k}_ci": ci.get(k) for k in keys if k in ci}}

    test = stages.run(
        "evaluate",
        {**train_params, "n_bootstrap": p.n_bootstrap},
        [run_dir / "eval_test.json"],
        do_eval,
        lambda r: f"test macro AUROC {float(r.get('macro_auroc') or 0):.3f}",
    )

    # 7. the report ---------------------------------------------------------------------------------------
    n_trials = len(study_results(STUDY_NAME, storage))
    report_params = {**train_params, "n_trials": n_trials, "eval": test, "recommended": rec.config}

    def do_report() -> dict[str, Any]:
        from ecgscale.report.build import build_report

        files = build_report(
            STUDY_NAME,
            storage=storage,
            studies_dir=studies_dir,
            out=report_dir,
            cache=cache,
            search_compare_dir=compare_dir,
            run_dir=run_dir,
            commands=_commands(p, out, dev, rec.config),
            title=f"ecgscale demo ({p.name} preset)",
        )
        return {"html": str(files.html)}

    stages.run("report", report_params, [report_dir / "report.html"], do_report, lambda r: r.get("html", ""))

    summary = DemoSummary(
        out=out,
        preset=p.name,
        device=dev,
        stages=tuple(stages.results),
        report_html=report_dir / "report.html",
        recommended=rec.config,
        test_metrics=test,
    )
    write_json_atomic(out / "demo_summary.json", summary.to_dict())
    return summary


def _train_base(p: DemoPreset, dev: str, epochs: int) -> Any:
    from ecgscale.train import TrainConfig

    return TrainConfig(epochs=epochs, batch_size=p.batch_size, lr=p.lr, device=dev, seed=p.seed, patience=None)


def _run_sweep(
    cache: Any, grid_file: Path, studies_dir: Path, p: DemoPreset, dev: str, progress: bool
) -> dict[str, Any]:
    from ecgscale.study.grids import load_grid
    from ecgscale.study.objective import TrainRunner, cache_identity
    from ecgscale.study.sweep import SweepSettings, run_sweep

    # The protocol (epochs, batch size, lr) is part of the study's identity; the device is not, so a demo
    # started on a GPU can be finished on a CPU.
    settings = SweepSettings(
        name=STUDY_NAME,
        grid=load_grid(grid_file),
        studies_dir=studies_dir,
        train={"epochs": p.sweep_epochs, "batch_size": p.batch_size, "lr": p.lr},
    )
    runner = TrainRunner(cache, base=_train_base(p, dev, p.sweep_epochs), n_bootstrap=0, progress=False)
    summary = run_sweep(settings, runner=runner, data=cache_identity(cache), progress=progress)
    if not summary.done:
        from ecgscale.errors import StudyError

        raise StudyError(
            f"sweep {STUDY_NAME!r} finished {summary.n_complete} of {summary.n_points} grid points "
            f"(failed trials: {list(summary.failed)}); re-run the demo to retry"
        )
    return {"n_trials": summary.n_complete, "seconds": summary.seconds}


class _Counted:
    """Wraps a trial runner to log "search trial i/N" lines: the searches have no progress bar of their own."""

    def __init__(self, runner: Any, *, total: int, label: str):
        self.runner, self.total, self.label, self.n = runner, total, label, 0

    def __call__(self, config: Any, trial_dir: Path, report: Any) -> Any:
        self.n += 1
        a = config.arch
        log.info(
            "%s trial %d/%d: D=%d C=%d K=%d %s",
            self.label,
            self.n,
            self.total,
            a.depth,
            a.channels,
            a.kernel_size,
            "GAP" if a.gap else "no GAP",
        )
        return self.runner(config, trial_dir, report)


def demo_wide_space() -> Any:
    """The generic space scaled to a CPU demo (the library's ``wide`` reaches D=32, C=512, K=65)."""
    from ecgscale.study.spaces import IntRange, SearchSpace

    return SearchSpace(
        "wide", IntRange(1, 16, log=True), IntRange(8, 128, log=True), IntRange(3, 33, step=2), batch_size=(32, 64)
    )


def _run_search_compare(
    cache: Any, compare_dir: Path, studies_dir: Path, p: DemoPreset, dev: str, progress: bool
) -> dict[str, Any]:
    """Wide (generic, demo-sized) vs narrow (derived from the sweep's best configurations) TPE searches."""
    import dataclasses as dc

    from ecgscale.study import study_results
    from ecgscale.study.objective import TrainRunner, cache_identity
    from ecgscale.study.search import compare_spaces
    from ecgscale.study.spaces import space_from_results

    wide = demo_wide_space()
    narrow = dc.replace(
        space_from_results(study_results(STUDY_NAME, studies_dir=studies_dir), top_q=0.25, base=wide), name="narrow"
    )
    runner = _Counted(
        TrainRunner(cache, base=_train_base(p, dev, p.search_epochs), n_bootstrap=0, progress=False),
        total=2 * p.search_trials * p.search_seeds,
        label="search",
    )
    for sp in (wide, narrow):  # the exact spaces, for `ecgscale search-compare --narrow FILE` and the record
        write_text_atomic(compare_dir.parent / f"space_{sp.name}.toml", sp.to_toml())
    report = compare_spaces(
        [wide, narrow],
        compare_dir,
        runner=runner,
        data=cache_identity(cache),
        n_trials=p.search_trials,
        seeds=tuple(range(p.search_seeds)),
        prefix="compare",
        train={"epochs": p.search_epochs, "max_minutes": p.search_max_minutes},
        studies_dir=studies_dir,
    )
    return {"verdict": report.verdict, "narrow": narrow.to_dict()}


def _commands(p: DemoPreset, out: Path, dev: str, rec: Mapping[str, Any]) -> str:
    """The command lines that reproduce this demo step by step (same sizes, seeds and training settings)."""
    o = str(out)
    device = None if dev == "cpu" else dev
    hp = {"batch_size": p.batch_size, "lr": p.lr}
    studies = {"studies_dir": f"{o}/studies"}
    return "\n".join(
        [
            command_line("synth", out=f"{o}/synth", n=p.n_records, seed=p.seed),
            command_line("prepare", f"{o}/synth", out=f"{o}/cache", **prepare_options(p.preprocess())),
            command_line(
                "sweep",
                cache=f"{o}/cache",
                study=STUDY_NAME,
                grid=f"{o}/grid.toml",
                epochs=p.sweep_epochs,
                **hp,
                **studies,
                device=device,
            ),
            f"# wide vs narrow: the demo's wide space is CPU-sized ({o}/space_wide.toml), the narrow one derived",
            "# from the sweep's best quarter; both files are passed so this line reproduces the comparison exactly:",
            command_line(
                "search-compare",
                cache=f"{o}/cache",
                trials=p.search_trials,
                seeds=p.search_seeds,
                epochs=p.search_epochs,
                max_minutes=p.search_max_minutes,
                wide=f"{o}/space_wide.toml",
                narrow=f"{o}/space_narrow.toml",
                study="compare",
                **studies,
                out=f"{o}/search-compare",
                device=device,
            ),
            command_line("recommend", study=STUDY_NAME, **studies),
            train_command(
                cache=f"{o}/cache",
                architecture=rec,
                train={"epochs": p.final_epochs, **hp, "patience": None},
                seed=p.seed,
                device=device,
                out=f"{o}/runs/recommended",
            ),
            command_line("evaluate", f"{o}/runs/recommended", split="test", n_bootstrap=p.n_bootstrap),
            command_line(
                "report",
                study=STUDY_NAME,
                **studies,
                cache=f"{o}/cache",
                run=f"{o}/runs/recommended",
                search_compare=f"{o}/search-compare",
                out=f"{o}/report",
            ),
        ]
    )
