"""Assemble the study report from what the study layer computed: results, analysis tables and figures, the
search comparison, the recommendation and (optionally) the evaluated run of the recommended model.

Nothing here trains or analyses; it reads, arranges and renders (see :mod:`ecgscale.report.html`).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ecgscale.commands import command_line
from ecgscale.errors import CheckpointError, StudyError
from ecgscale.fileio import read_json
from ecgscale.report.html import Figure, ReportFiles, Section, Table, write_report
from ecgscale.report.recommend import Recommendation, aggregate_configs, pareto_configs, recommend
from ecgscale.report.tables import label_prevalence_table, records_per_source_table
from ecgscale.train.rundir import RunDir

__all__ = ["StudyContext", "build_report", "build_sections", "headline_metrics", "load_study", "run_metrics_tables"]

log = logging.getLogger(__name__)

_RECORD_SECONDS = 10.0  # "one 10-s record": the latency budget's unit


@dataclass(frozen=True, slots=True, eq=False)
class StudyContext:
    """A finished study as the report sees it: its results table, folder, storage and data description."""

    name: str
    results: pd.DataFrame
    folder: Path
    storage_url: str
    attrs: Mapping[str, Any] = field(default_factory=dict)
    fs: float | None = None
    window_s: float | None = None
    cache_path: Path | None = None

    @property
    def window_samples(self) -> int:
        """The models' input length in samples (10 s at 250 Hz when the study does not say)."""
        return round((self.window_s or _RECORD_SECONDS) * (self.fs or 250.0))

    @property
    def record_windows(self) -> int:
        """Windows needed to cover one 10-s record (the unit of the latency budget)."""
        return max(1, math.ceil(_RECORD_SECONDS / (self.window_s or _RECORD_SECONDS) - 1e-9))


def _run_config(results: pd.DataFrame) -> Mapping[str, Any]:
    """``config.json`` of the first trial run directory that still exists (it names the cache and fs)."""
    for run_dir in results.get("run_dir", pd.Series(dtype=object)).dropna():
        run = RunDir(str(run_dir))
        if run.config_file.is_file():
            try:
                return run.read_config()
            except CheckpointError:
                continue
    return {}


def load_study(name: str, *, storage: str | None = None, studies_dir: str | Path = "studies") -> StudyContext:
    """Open study ``name`` and its results; ``StudyError`` when it is missing or has no finished trial."""
    from ecgscale.study.results import load_study as _load
    from ecgscale.study.results import trials_frame
    from ecgscale.study.storage import default_storage_url, redact_url, study_dir

    study = _load(name, storage, studies_dir=studies_dir)
    results = trials_frame(study)
    url = storage or default_storage_url(studies_dir, name)
    if results.empty:
        raise StudyError(f"study {name!r} in {redact_url(url)} has no finished trial yet")
    cfg = _run_config(results)
    pre = cfg.get("preprocess") or {}
    fs, window_s = pre.get("fs"), pre.get("window_s")
    cache = cfg.get("cache")
    return StudyContext(
        name=name,
        results=results,
        folder=study_dir(studies_dir, name),
        storage_url=redact_url(url),
        attrs=dict(study.user_attrs),
        fs=float(fs) if fs else None,
        window_s=float(window_s) if window_s else None,
        cache_path=Path(cache) if cache else None,
    )


# ----------------------------------------------------------------------------------------------------------
# pieces


def _fmt_pm(mean: float, std: float) -> str:
    return "–" if mean is None or math.isnan(mean) else f"{mean:.3f} ± {0.0 if math.isnan(std) else std:.3f}"


def _configs_table(df: pd.DataFrame, *, cost_cols: Sequence[str] = ("params", "flops")) -> pd.DataFrame:
    cols = {"depth": "D", "channels": "C", "kernel_size": "K", "gap": "GAP"}
    out = df[list(cols)].rename(columns=cols)
    for c in cost_cols:
        if c in df.columns:
            out[c if c != "flops" else "MFLOPs"] = df[c] / 1e6 if c == "flops" else df[c]
    if "receptive_field_s" in df.columns:
        out["RF (s)"] = df["receptive_field_s"]
    sel, rep = df.attrs.get("select_column", "val"), df.attrs.get("report_column", "test")
    out[f"{sel} (mean ± std)"] = [_fmt_pm(m, s) for m, s in zip(df["mean"], df["std"], strict=True)]
    if rep != sel:
        out[f"{rep} (mean ± std)"] = [_fmt_pm(m, s) for m, s in zip(df["test_mean"], df["test_std"], strict=True)]
    out["repeats"] = df["n_repeats"]
    return out.reset_index(drop=True)


def _scalar_metrics(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Headline metrics of an evaluation with their bootstrap 95% intervals (``ci`` of compute_metrics)."""
    ci = metrics.get("ci") or {}
    rows = []
    for key, label in (
        ("macro_auroc", "macro AUROC"),
        ("micro_auroc", "micro AUROC"),
        ("macro_auprc", "macro AUPRC"),
        ("macro_f1", "macro F1"),
        ("macro_fbeta", "macro F2"),
        ("challenge_metric", "challenge metric (CinC 2021)"),
    ):
        value = metrics.get(key)
        if not isinstance(value, int | float):
            continue
        lo_hi = ci.get(key) or [None, None]
        rows.append(
            {
                "metric": label,
                "value": float(value),
                "95% CI low": None if lo_hi[0] is None else float(lo_hi[0]),
                "95% CI high": None if lo_hi[1] is None else float(lo_hi[1]),
            }
        )
    return pd.DataFrame(rows, columns=["metric", "value", "95% CI low", "95% CI high"])


def headline_metrics(evaluation: Mapping[str, Any]) -> dict[str, Any]:
    """The scalar metrics (and ``ci``) of an ``eval_<split>.json``: nested under ``metrics`` there, flat in a
    plain ``compute_metrics`` result."""
    inner = evaluation.get("metrics")
    return dict(inner) if isinstance(inner, Mapping) else dict(evaluation)


def run_metrics_tables(metrics: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    """Headline, per-group and per-label tables of an ``eval_<split>.json`` (or a ``compute_metrics`` result)."""
    tables = {"headline": _scalar_metrics(headline_metrics(metrics))}
    groups = metrics.get("per_group") or {}
    if isinstance(groups, Mapping) and groups:
        rows = []
        for g, m in groups.items():
            ci = m.get("auroc_ci") or [None, None]
            rows.append(
                {
                    "group": g,
                    "classes": m.get("n_classes"),
                    "AUROC": m.get("auroc"),
                    "AUROC 95% CI": None if ci[0] is None else f"{ci[0]:.3f}–{ci[1]:.3f}",
                    "AUPRC": m.get("auprc"),
                    "F1": m.get("f1"),
                }
            )
        tables["per_group"] = pd.DataFrame(rows)
    labels = metrics.get("per_label") or []
    if isinstance(labels, Sequence) and labels:
        frame = pd.DataFrame(list(labels))
        keep = [c for c in ("abbreviation", "group", "support", "auroc", "auprc", "f1", "threshold") if c in frame]
        tables["per_label"] = frame[keep]
    return tables


# ----------------------------------------------------------------------------------------------------------
# sections


def _overview(ctx: StudyContext, rec: Recommendation | None) -> Section:
    from ecgscale import __version__

    grid = ctx.attrs.get("grid") or {}
    data = ctx.attrs.get("data") or {}
    protocol = (ctx.attrs.get("protocol") or {}).get("train") or {}
    facts = pd.DataFrame(
        [
            {"item": "study", "value": ctx.name},
            {"item": "storage", "value": ctx.storage_url},
            {"item": "finished trials", "value": str(len(ctx.results))},
            {
                "item": "architectures",
                "value": str(ctx.results.groupby(["depth", "channels", "kernel_size", "gap"]).ngroups),
            },
            {"item": "grid", "value": f"{grid.get('name', '?')} ({grid.get('kind', '?')}), seeds {grid.get('seeds')}"},
            {
                "item": "data",
                "value": f"{data.get('n_records', '?')} records ("
                + ", ".join(f"{k} {v}" for k, v in (data.get("splits") or {}).items())
                + f"), preprocessing hash {str(data.get('preprocess_hash', '?'))[:12]}",
            },
            {"item": "training protocol", "value": ", ".join(f"{k}={v}" for k, v in protocol.items()) or "defaults"},
            {
                "item": "generated",
                "value": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC") + f" by ecgscale {__version__}",
            },
        ]
    )
    callout = f"Recommended: {rec.summary()}." if rec is not None else ""
    return Section(
        "Overview",
        paragraphs=(
            "A scale study of 1-D ResNets for multi-label 12-lead ECG classification along depth D (residual "
            "blocks), width C (channels) and kernel size K, with and without global average pooling (GAP). "
            "The grids and analyses are ecgscale's reconstruction of the questions of Lee, Jo & Kwon (2023) "
            "from the paper's abstract; no number here is the authors'.",
            "Architectures are ranked on the validation split and reported on the test split; spreads are "
            "standard deviations over repeats (different seeds).",
        ),
        tables=(Table("Study facts", facts, name="overview"),),
        callout=callout,
    )


def _data_section(cache: Any | None) -> Section:
    if cache is None:
        return Section(
            "Data", paragraphs=("The study's cache was not found (pass `--cache`), so the data summary is left out.",)
        )
    manifest = cache.manifest
    per_source = records_per_source_table(manifest)
    prev = label_prevalence_table(cache.labels, cache.label_space, manifest.get("split"))
    cfg = cache.config
    text = (
        f"{len(cache)} records prepared at {cfg.fs} Hz, windows of {cfg.window_s:g} s "
        f"(stored up to {cfg.max_store_s:g} s), band-pass {cfg.bandpass}, label space "
        f"`{cache.label_space.name}` with {len(cache.label_space)} classes."
    )
    return Section(
        "Data",
        paragraphs=(text,),
        tables=(
            Table("Records per source and split", per_source, name="data_records_per_source"),
            Table("Label prevalence", prev, floatfmt=".1f", name="data_label_prevalence", max_rows=None),
        ),
    )


def _pareto_section(
    ctx: StudyContext,
    agg: pd.DataFrame,
    rec: Recommendation | None,
    figures: list[Figure],
    tables: list[Table],
    notes: Sequence[str] = (),
) -> Section:
    front = pareto_configs(agg, "params")
    highlight = ()
    if rec is not None:
        hits = [
            i
            for i, r in enumerate(front.to_dict("records"))
            if (r["depth"], r["channels"], r["kernel_size"], bool(r["gap"])) == tuple(rec.config.values())
        ]
        highlight = tuple(hits)
    return Section(
        "Cost vs performance: the Pareto front",
        paragraphs=(
            "Configurations that no other configuration beats at lower or equal parameter count "
            "(validation means over repeats). The recommended configuration is in bold.",
            *notes,
        ),
        tables=(
            Table(
                "Pareto front (parameters vs validation metric)",
                _configs_table(front),
                highlight_rows=highlight,
                name="pareto_front",
            ),
            *tables,
        ),
        figures=tuple(figures),
    )


def _recommendation_section(
    rec: Recommendation, run_dir: Path | None, cache_path: Path | None, train: Mapping[str, Any] | None = None
) -> Section:
    tables: list[Table] = [
        Table(
            "Recommended configuration",
            pd.DataFrame(
                [
                    {
                        "D": rec.config["depth"],
                        "C": rec.config["channels"],
                        "K": rec.config["kernel_size"],
                        "GAP": rec.config["gap"],
                        "params": int(rec.cost["params"]),
                        "MFLOPs": rec.cost["flops"] / 1e6,
                        f"{rec.select_column}": _fmt_pm(rec.mean, rec.std),
                        f"{rec.report_column}": _fmt_pm(rec.test_mean, rec.test_std),
                        "repeats": rec.n_repeats,
                    }
                ]
            ),
            name="recommended",
        ),
    ]
    if len(rec.beaten):
        beaten = rec.beaten.copy()
        beaten.attrs.update(select_column=rec.select_column, report_column=rec.report_column)
        tables.append(
            Table(
                "Runners-up it beat (validation mean, best first)",
                _configs_table(beaten.head(10)),
                name="recommended_beaten",
            )
        )
    paras = [
        f"Chosen as the best validation {rec.metric} on the Pareto front"
        + ("" if rec.budget_kind is None else f" within {rec.budget_kind} ≤ {rec.budget:,.6g}")
        + ".",
        f"Train it: `{rec.train_command(cache=str(cache_path or 'CACHE'), train=train)}`",
    ]
    eval_file = None if run_dir is None else RunDir(run_dir).eval_file("test")
    if eval_file is not None and eval_file.is_file():
        metrics = read_json(eval_file)
        t = run_metrics_tables(metrics)
        n_boot = metrics.get("n_bootstrap", headline_metrics(metrics).get("n_bootstrap"))
        paras.append(
            f"The recommended model retrained in `{run_dir}` and evaluated on the test split "
            f"({metrics.get('n_records', '?')} records; thresholds tuned on validation; 95% bootstrap "
            f"intervals over {n_boot} resamples of records)."
        )
        tables.append(Table("Test metrics of the trained recommended model", t["headline"], name="recommended_test"))
        if "per_group" in t:
            tables.append(Table("Test AUROC per label group", t["per_group"], name="recommended_test_groups"))
        if "per_label" in t:
            tables.append(
                Table("Test metrics per label", t["per_label"], name="recommended_test_labels", max_rows=None)
            )
    elif run_dir is not None:
        paras.append(f"`{run_dir}` has no `eval_test.json` yet: run `{command_line('evaluate', run_dir)}`.")
    return Section(
        "Recommended configuration", paragraphs=tuple(paras), tables=tuple(tables), callout=rec.summary() + "."
    )


def _commands_for(ctx: StudyContext, out: Path, run_dir: Path | None) -> str:
    grid_attrs = ctx.attrs.get("grid") or {}
    grid = grid_attrs.get("name", "axes")
    built_in = grid in ("axes", "paper")
    protocol = (ctx.attrs.get("protocol") or {}).get("train") or {}
    sweep_train = {k: v for k, v in protocol.items() if k in ("epochs", "batch_size", "lr", "max_minutes")}
    study = {"study": ctx.name, "studies_dir": ctx.folder.parent}
    sweep = command_line(
        "sweep",
        cache=ctx.cache_path or "CACHE",
        study=ctx.name,
        **sweep_train,
        repeats=len(grid_attrs.get("seeds") or [0]),
        studies_dir=ctx.folder.parent,
        grid=grid if built_in else "GRID_FILE",
    )
    lines = [
        sweep if built_in else f"{sweep}  # the study's grid {grid!r}",
        command_line("analyze", **study, out=f"{out}/analysis"),
        command_line("recommend", **study),
    ]
    if run_dir is not None:
        lines.append(command_line("evaluate", run_dir, split="test"))
    lines.append(command_line("report", **study, out=out))
    return "\n".join(lines)


def _read_csv(folder: Path | None, name: str) -> pd.DataFrame | None:
    if folder is None or not (folder / f"{name}.csv").is_file():
        return None
    try:
        return pd.read_csv(folder / f"{name}.csv")
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        log.warning("%s/%s.csv: left out of the report (%s)", folder, name, exc)
        return None


def _figure(folder: Path | None, stem: str, title: str, caption: str) -> list[Figure]:
    if folder is None:
        return []
    for ext in (".png", ".svg"):
        path = folder / f"{stem}{ext}"
        if path.is_file():
            return [Figure.from_file(path, title=title, caption=caption)]
    return []


def _keep_targets(df: pd.DataFrame) -> pd.DataFrame:
    """Rows for all labels and each label group (per-label and per-source rows stay in the CSV files)."""
    target = df["target"].astype(str)
    return df[(target == "all") | target.str.startswith("group:")]


def _axis_pivot(df: pd.DataFrame, axis: str) -> pd.DataFrame:
    """Value × GAP rows, one "mean ± std" column per target (all, then the label groups)."""
    d = _keep_targets(df).copy()
    d["cell"] = [_fmt_pm(m, s) for m, s in zip(d["mean"], d["std"], strict=True)]
    d["target"] = d["target"].astype(str).str.removeprefix("group:")
    order = list(dict.fromkeys(d["target"]))
    wide = d.pivot_table(index=["value", "gap"], columns="target", values="cell", aggfunc="first")
    wide = wide[[t for t in order if t in wide.columns]].reset_index()
    wide.columns.name = None
    wide = wide.rename(columns={"value": _AXIS_LABEL[axis], "gap": "GAP"})
    return wide.sort_values([_AXIS_LABEL[axis], "GAP"], ascending=[True, False]).reset_index(drop=True)


def _target_name(t: Any) -> str:
    return str(t).removeprefix("group:")


def _rf_pivot(rc: pd.DataFrame) -> pd.DataFrame:
    """One row per target; columns all/GAP/no-GAP architectures with "rho (p)"."""
    d = _keep_targets(rc).copy()
    d["cell"] = [
        f"{r:+.2f} (p={p:.2g}, n={n})" if pd.notna(r) else "–" for r, p, n in zip(d["rho"], d["p"], d["n"], strict=True)
    ]
    d["target"] = d["target"].map(_target_name)
    order = list(dict.fromkeys(d["target"]))
    wide = d.pivot_table(index="target", columns="gap", values="cell", aggfunc="first").reindex(order)
    wide = wide[[c for c in ("all", "gap", "nogap") if c in wide.columns]]
    wide.columns = [{"all": "all architectures", "gap": "GAP only", "nogap": "no-GAP only"}[c] for c in wide.columns]
    return wide.reset_index()


def _gap_pivot(ge: pd.DataFrame) -> pd.DataFrame:
    """One row per target; a "diff [low, high] (pairs)" column per receptive-field bin."""
    d = _keep_targets(ge).copy()
    d["cell"] = [
        f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}] ({n})" if pd.notna(m) else "–"
        for m, lo, hi, n in zip(d["mean_diff"], d["ci_low"], d["ci_high"], d["n_pairs"], strict=True)
    ]
    d["target"] = d["target"].map(_target_name)
    order = list(dict.fromkeys(d["target"]))
    bins = list(dict.fromkeys(d["rf_bin"]))
    wide = d.pivot_table(index="target", columns="rf_bin", values="cell", aggfunc="first").reindex(order)
    return wide[[b for b in bins if b in wide.columns]].reset_index().rename_axis(columns=None)


_AXIS_LABEL = {"depth": "D (blocks)", "channels": "C (channels)", "kernel_size": "K (kernel)"}


def _findings(folder: Path | None) -> list[str]:
    if folder is None or not (folder / "findings.md").is_file():
        return []
    lines = (folder / "findings.md").read_text(encoding="utf-8").splitlines()
    return [ln[2:].strip() for ln in lines if ln.startswith("- ")]


def _pick(findings: Sequence[str], *starts: str) -> list[str]:
    return [f for f in findings if f.startswith(starts)]


def build_sections(
    ctx: StudyContext,
    *,
    cache: Any | None = None,
    analysis_dir: Path | None = None,
    search_compare_dir: Path | None = None,
    run_dir: Path | None = None,
    commands: str | None = None,
    out: Path = Path("report"),
    metric: str = "macro_auroc",
) -> tuple[list[Section], Recommendation | None]:
    """The report's sections in order; missing inputs give a section that says what is missing.

    ``analysis_dir`` holds the output of :func:`ecgscale.study.analysis.analyze_study` (``perf_vs_<axis>``,
    ``rf_correlation``, ``gap_effect``, ``cost``, ``best_per_label`` tables, their figures, ``findings.md``).
    """
    results = ctx.results
    if "leads" in results.columns and results["leads"].nunique() > 1:
        # A lead-set axis: the scale sections and the recommendation are of the 12-lead trials (the largest set);
        # the "Lead sets" section compares the sets.
        from ecgscale.study.lead_sets import lead_sets_of

        results = results[results["leads"] == lead_sets_of(results)[0]]
    agg = aggregate_configs(results, metric)
    rec = recommend(results, metric=metric)
    a = analysis_dir if analysis_dir is not None and analysis_dir.is_dir() else None
    missing = () if a else ("No analysis output was found (run `ecgscale analyze`), so this section is empty.",)
    findings = _findings(a)

    overview = _overview(ctx, rec)
    if findings:
        overview = dataclasses.replace(
            overview, paragraphs=(*overview.paragraphs, "Findings computed from the study:"), bullets=tuple(findings)
        )
    sections = [overview, _data_section(cache)]

    scale_tables, scale_figs = [], []
    for axis in ("depth", "channels", "kernel_size"):
        t = _read_csv(a, f"perf_vs_{axis}")
        if t is not None and not t.empty:
            scale_tables.append(
                Table(
                    f"Test {metric} vs {_AXIS_LABEL[axis]} (mean ± std over repeats)",
                    _axis_pivot(t, axis),
                    name=f"scale_{axis}",
                )
            )
        scale_figs += _figure(
            a,
            f"perf_vs_{axis}",
            f"Performance vs {_AXIS_LABEL[axis]}",
            "Left: label groups; right: data sources. Solid: GAP; dashed: no GAP. Error bars: "
            "standard deviation over repeats.",
        )
    sections.append(
        Section(
            "Scale: depth, width and kernel size",
            paragraphs=(
                "Test performance against one factor at a time (the other two at the grid's base "
                "configuration), overall and per label group.",
                *_pick(findings, "Performance vs"),
                *missing,
            ),
            figures=tuple(scale_figs),
            tables=tuple(scale_tables),
        )
    )

    rf_tables = []
    rc = _read_csv(a, "rf_correlation")
    if rc is not None and not rc.empty:
        rf_tables.append(
            Table(
                "Receptive field vs performance: Spearman rho (p) over architectures",
                _rf_pivot(rc),
                name="rf_correlation",
            )
        )
    ge = _read_csv(a, "gap_effect")
    if ge is not None and not ge.empty:
        rf_tables.append(
            Table(
                "GAP − no GAP by receptive field: mean difference [t 95% CI] (pairs)", _gap_pivot(ge), name="gap_effect"
            )
        )
    sections.append(
        Section(
            "Receptive field and global average pooling",
            paragraphs=(
                "Does a small receptive field win, and does GAP help only when the field is local? The "
                "receptive field is that of one position of the last feature map.",
                *missing,
            ),
            callout=" ".join(_pick(findings, "Receptive field", "GAP")),
            figures=tuple(
                _figure(
                    a,
                    "rf_vs_perf",
                    "Receptive field vs performance",
                    "Each point is one architecture (mean over repeats); GAP and no-GAP marked.",
                )
            ),
            tables=tuple(rf_tables),
        )
    )

    cost_figs = _figure(
        a,
        "cost_vs_perf",
        "Cost vs performance",
        "Parameters, FLOPs and training time against the test metric, with the Pareto front.",
    )
    sections.append(_pareto_section(ctx, agg, rec, cost_figs, [], _pick(findings, "Best test")))

    bl = _read_csv(a, "best_per_label")
    best_tables = []
    if bl is not None and not bl.empty:
        bl = bl.drop(columns=[c for c in ("depth", "channels", "kernel_size", "gap") if c in bl.columns])
        best_tables.append(
            Table(
                "Best architecture per label group and label (validation-selected, test-reported)",
                bl,
                name="best_per_label",
                max_rows=None,
            )
        )
    sections.append(
        Section(
            "Per-label best architectures",
            paragraphs=(
                "Which (D, C, K) is best for each label and label group, and what a per-group choice gains over "
                "one global model (`gain` = test of the per-target choice − test of the global choice).",
                *_pick(findings, "Choosing"),
                *missing,
            ),
            tables=tuple(best_tables),
        )
    )
    lead_section = _lead_set_section(a, findings, metric)
    if lead_section is not None:
        sections.append(lead_section)
    sections.append(_search_section(search_compare_dir))
    if rec is not None:
        protocol = (ctx.attrs.get("protocol") or {}).get("train") or {}
        sections.append(_recommendation_section(rec, run_dir, ctx.cache_path, protocol))
    sections.append(
        Section(
            "Reproduce",
            paragraphs=("The exact commands that produced this report (each resumes where it stopped):",),
            code=commands or _commands_for(ctx, out, run_dir),
        )
    )
    return sections, rec


def _search_section(folder: Path | None) -> Section:
    """The wide-vs-narrow comparison written by :func:`ecgscale.study.search.compare_spaces`."""
    title = "Search: wide vs narrow space"
    if folder is None or not (folder / "compare.csv").is_file():
        return Section(title, paragraphs=("No search comparison was run for this study (`ecgscale search-compare`).",))
    verdict = ""
    md = folder / "compare.md"
    if md.is_file():
        verdict = next(
            (ln.strip() for ln in md.read_text(encoding="utf-8").splitlines() if ln.startswith("Verdict:")), ""
        )
    tables = []
    compare = _read_csv(folder, "compare")
    if compare is not None:
        tables.append(
            Table(
                "Final test metric of each search's best-validation trial (mean and t 95% CI over "
                "seeds) and mean best-so-far validation at several budgets",
                compare,
                name="search_compare",
            )
        )
    runs = _read_csv(folder, "compare_runs")
    if runs is not None:
        tables.append(Table("Every search run", runs, name="search_runs"))
    return Section(
        title,
        paragraphs=(
            "Optuna TPE over a generic (wide) and a findings-based (narrow) space with equal trial budgets "
            "and the same seeds, with pruning of hopeless trials; the best trial of each search is chosen "
            "on validation and reported on test.",
        ),
        callout=verdict,
        figures=tuple(
            _figure(
                folder,
                "best_so_far",
                "Best-so-far validation score vs trials",
                "Mean over seeds; pruned and failed trials use up budget.",
            )
        ),
        tables=tuple(tables),
    )


def _lead_set_section(a: Path | None, findings: list[str], metric: str) -> Section | None:
    """The study per lead set (a sweep with a ``leads`` axis): best configuration per set and the drop vs 12 leads
    per label group; None for a study without a lead-set axis."""
    best = _read_csv(a, "best_per_lead_set")
    if best is None or best.empty:
        return None
    tables = [
        Table(
            f"Best configuration per lead set (validation-selected; test {metric})",
            best.astype({"leads": str}),
            name="best_per_lead_set",
            max_rows=None,
        )
    ]
    drop = _read_csv(a, "lead_set_drop")
    if drop is not None and not drop.empty:
        cell = drop.apply(lambda r: f"{r.mean_diff:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}]", axis=1)
        pivot = drop.assign(cell=cell, leads=drop["leads"].astype(str)).pivot(
            index="target", columns="leads", values="cell"
        )
        tables.append(
            Table(
                f"Test {metric} of each lead set − 12 leads, paired over architecture and seed: mean [t 95% CI]",
                pivot.reset_index(),
                name="lead_set_drop",
                max_rows=None,
            )
        )
    return Section(
        "Lead sets",
        paragraphs=(
            "The scale study per lead set, as in the PhysioNet/CinC Challenge 2021: which configuration is best "
            "with fewer leads, and what each lead set loses per label group (docs/leads.md).",
        ),
        bullets=tuple(_pick(findings, "Best configuration per lead set", "Challenge summary"))
        + tuple(f for f in findings if " leads vs 12:" in f),
        tables=tuple(tables),
    )


def build_report(
    study: str,
    *,
    storage: str | None = None,
    studies_dir: str | Path = "studies",
    out: str | Path = "report",
    cache: Any | None = None,
    analysis_dir: str | Path | None = None,
    search_compare_dir: str | Path | None = None,
    run_dir: str | Path | None = None,
    commands: str | None = None,
    metric: str = "macro_auroc",
    title: str | None = None,
) -> ReportFiles:
    """Write the report of study ``study`` into ``out`` (``report.html`` + ``report.md`` + ``tables/``).

    ``cache`` (an ``EcgCache`` or its path) defaults to the cache the trials were trained on; ``analysis_dir``
    defaults to ``<out>/analysis``, produced with the study layer's analysis when missing.
    """
    ctx = load_study(study, storage=storage, studies_dir=studies_dir)
    out = Path(out)
    cache_obj = _open_cache(cache if cache is not None else ctx.cache_path)
    a_dir = Path(analysis_dir) if analysis_dir is not None else out / "analysis"
    if analysis_dir is None:
        _run_analysis(ctx, a_dir, metric)
    sections, _ = build_sections(
        ctx,
        cache=cache_obj,
        analysis_dir=a_dir,
        search_compare_dir=None if search_compare_dir is None else Path(search_compare_dir),
        run_dir=None if run_dir is None else Path(run_dir),
        commands=commands,
        out=out,
        metric=metric,
    )
    return write_report(
        out,
        title or f"ecgscale study report: {study}",
        sections,
        subtitle=f"Study `{study}` · {len(ctx.results)} finished trials",
        footer="Generated by ecgscale. Self-contained page: no scripts, no external resources.",
    )


def _open_cache(cache: Any) -> Any:
    if cache is None:
        return None
    if isinstance(cache, str | Path):
        path = Path(cache)
        if not (path / "cache.json").is_file():
            log.warning("%s is not a cache folder; the data summary is left out", path)
            return None
        from ecgscale.data.cache import open_cache

        return open_cache(path)
    return cache


def _run_analysis(ctx: StudyContext, out: Path, metric: str) -> None:
    """Tables and figures of the study layer's analysis into ``out`` (skipped with a note when unavailable)."""
    from ecgscale.study.analysis import analyze_study

    try:
        analyze_study(ctx.results, out, metric=metric, grid=ctx.attrs.get("grid"))
    except StudyError as exc:  # e.g. a study whose trials have no test metric: the rest of the report stands
        log.warning("analysis of study %r failed (%s); its sections are left empty", ctx.name, exc)
