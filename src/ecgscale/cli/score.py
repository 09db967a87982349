"""CLI command ``ecgscale score``: the PhysioNet/CinC 2021 evaluation of a folder of challenge output files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer

from ecgscale.cli._app import app, console

__all__ = ["score"]


def _fmt(x: float) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


@app.command("score")
def score(
    labels_dir: Path = typer.Argument(
        ..., help="Folder of WFDB headers (*.hea, searched recursively); their '#Dx:' lines are the truth."
    ),
    outputs_dir: Path = typer.Argument(
        ..., help="Folder of challenge output files, one <record>.csv per header (searched recursively)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the scores as JSON instead of tables."),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Also write the scores to FILE: JSON, or the official two-line CSV when FILE ends in .csv.",
    ),
    strict: bool = typer.Option(
        False,
        "--strict",
        help="Fail when an output file is missing (as the official evaluate_model.py does); "
        "by default a missing file counts as all-negative outputs and is reported.",
    ),
    per_class: bool = typer.Option(True, "--per-class/--no-per-class", help="Show the per-class table."),
    per_lead_set: bool = typer.Option(
        False,
        "--per-lead-set",
        help="OUTPUTS_DIR holds one folder per lead set (12, 6, 4, 3, 2 or 12_leads, ...): score each and print "
        "the challenge summary, the mean of the 12-, 3- and 2-lead challenge metrics (docs/leads.md).",
    ),
) -> None:
    """Score challenge output files against header labels, exactly as the official CinC 2021 evaluate_model.py.

    LABELS_DIR holds the WFDB headers (*.hea, searched recursively; only their '#Dx:' comment lines are read).
    OUTPUTS_DIR holds one <record>.csv per header in the official output format (#record id, class codes,
    binary outputs, probabilities).

    Prints AUROC, AUPRC, accuracy, F-measure and the challenge metric over the 26 scored classes of
    weights.csv (equivalent codes merged), the per-class AUROC/AUPRC/F-measure, and how many output files
    were missing. Example: ecgscale score data/test_headers predictions/ --out scores.json
    """
    from rich.table import Table

    if per_lead_set:
        _score_lead_sets(labels_dir, outputs_dir, strict=strict, as_json=as_json, out=out)
        return

    from ecgscale.data.labels import cinc2021_scored
    from ecgscale.fileio import write_json_atomic, write_text_atomic
    from ecgscale.metrics import load_challenge_dirs, metrics_to_jsonable, score_challenge

    data = load_challenge_dirs(labels_dir, outputs_dir, strict=strict)
    scores = score_challenge(data.labels, data.binary, data.scalar, data.class_keys)
    report = {
        "labels_dir": str(labels_dir),
        "outputs_dir": str(outputs_dir),
        "n_records": len(data.record_ids),
        "n_missing_outputs": len(data.missing),
        "missing_outputs": list(data.missing),
        "n_extra_outputs": len(data.extra),
        "n_nonfinite_probabilities": data.n_nonfinite,
        "n_positive_labels": data.labels.sum(axis=0).tolist(),
        **scores.to_dict(),
    }
    report = metrics_to_jsonable(report)

    if out is not None:
        if out.suffix.lower() == ".csv":
            # The official evaluate_model.py output: one header line, one line of values.
            write_text_atomic(
                out,
                "AUROC,AUPRC,Accuracy,F-measure,Challenge metric\n"
                + ",".join(
                    f"{v:.3f}"
                    for v in (scores.auroc, scores.auprc, scores.accuracy, scores.f_measure, scores.challenge_metric)
                )
                + "\n",
            )
        else:
            write_json_atomic(out, report)

    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return

    summary = Table(title=f"CinC 2021 evaluation of {len(data.record_ids)} records", show_lines=False)
    for col in ("AUROC", "AUPRC", "Accuracy", "F-measure", "Challenge metric"):
        summary.add_column(col, justify="right")
    summary.add_row(
        *(_fmt(v) for v in (scores.auroc, scores.auprc, scores.accuracy, scores.f_measure, scores.challenge_metric))
    )
    console.print(summary)
    if per_class:
        table = Table(title="Per class")
        table.add_column("class")
        table.add_column("abbr.")
        for col in ("positives", "AUROC", "AUPRC", "F-measure"):
            table.add_column(col, justify="right")
        positives = data.labels.sum(axis=0)
        abbreviation = {c.key: c.abbreviation for c in cinc2021_scored().classes}
        for j, key in enumerate(scores.class_keys):
            table.add_row(
                key,
                abbreviation.get(key, ""),
                str(int(positives[j])),
                _fmt(float(scores.auroc_classes[j])),
                _fmt(float(scores.auprc_classes[j])),
                _fmt(float(scores.f_measure_classes[j])),
            )
        console.print(table)
    if data.missing:
        shown = ", ".join(data.missing[:10]) + (" ..." if len(data.missing) > 10 else "")
        console.print(
            f"[yellow]{len(data.missing)} output file(s) missing, scored as all-negative (probability 0):[/] {shown}"
        )
    else:
        console.print("0 output files missing.")
    if data.extra:
        console.print(f"{len(data.extra)} output file(s) without a header were ignored.")
    if data.n_nonfinite:
        console.print(f"{data.n_nonfinite} NaN/infinite probabilities were read as 0 (as the official scorer does).")
    if out is not None:
        console.print(f"Scores written to {out}")


def _score_lead_sets(labels_dir: Path, outputs_dir: Path, *, strict: bool, as_json: bool, out: Path | None) -> None:
    """``score --per-lead-set``: one row per lead set and the challenge summary."""
    from rich.table import Table

    from ecgscale.fileio import write_json_atomic
    from ecgscale.metrics import metrics_to_jsonable
    from ecgscale.metrics.lead_sets import SUMMARY_LEAD_SETS, score_lead_sets

    result = score_lead_sets(labels_dir, outputs_dir, strict=strict)
    report = metrics_to_jsonable({"labels_dir": str(labels_dir), "outputs_dir": str(outputs_dir), **result.to_dict()})
    if out is not None:
        write_json_atomic(out, report)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    table = Table(title=f"CinC 2021 evaluation per lead set ({outputs_dir})")
    for col in ("leads", "records", "missing", "AUROC", "AUPRC", "Accuracy", "F-measure", "Challenge metric"):
        table.add_column(col, justify="right")
    for tag, s in result.scores.items():
        d = result.data[tag]
        values = (s.auroc, s.auprc, s.accuracy, s.f_measure, s.challenge_metric)
        table.add_row(tag, str(len(d.record_ids)), str(len(d.missing)), *(_fmt(v) for v in values))
    console.print(table)
    summary = result.summary
    sets = ", ".join(SUMMARY_LEAD_SETS)
    if summary is None:
        absent = [t for t in SUMMARY_LEAD_SETS if t not in result.scores]
        console.print(f"challenge summary (mean over the {sets}-lead sets): not computed; missing {', '.join(absent)}")
    else:
        console.print(f"challenge summary (mean of the {sets}-lead challenge metrics): {_fmt(summary)}")
    if out is not None:
        console.print(f"Scores written to {out}")
