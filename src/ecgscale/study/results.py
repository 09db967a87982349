"""A finished study as one flat table: one row per complete trial, every score a column.

Columns: ``trial``, ``config``, ``depth``, ``channels``, ``kernel_size``, ``gap``, ``leads`` (only for a sweep
with a lead-set axis: ``12``, ``6``, ...), ``seed`` (plus the search's
``lr``, ``weight_decay``, ``dropout``, ``batch_size`` when sampled), ``params``, ``flops``,
``receptive_field`` (samples), ``receptive_field_s``, ``train_seconds``, ``trial_seconds``, ``value`` (the
objective), ``val_<metric>``/``test_<metric>`` (``macro_auroc``, ``macro_auprc``, ...),
``val_label_<abbr>``/``test_label_<abbr>`` and ``val_group_<group>``/``test_group_<group>`` (AUROC), and
``test_source_<source>_<metric>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecgscale.errors import StudyError
from ecgscale.study.grids import ArchPoint
from ecgscale.study.storage import default_storage_url, open_storage, redact_url

if TYPE_CHECKING:  # pragma: no cover
    import optuna
    import pandas as pd

__all__ = ["load_study", "study_results", "trials_frame"]


def load_study(name: str, storage: str | None = None, *, studies_dir: str | Path = "studies") -> optuna.Study:
    """Open an existing study read-only-ish (nothing is written); a missing study is a :class:`StudyError`."""
    import optuna

    url = storage or default_storage_url(studies_dir, name)
    if storage is None and not Path(url.split(":///", 1)[1]).is_file():
        raise StudyError(
            f"no study {name!r}: {url.split(':///', 1)[1]} does not exist (check --studies-dir or pass --storage)"
        )
    rdb = open_storage(url, read_only=True)
    try:
        return optuna.load_study(study_name=name, storage=rdb)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(rdb)]
        raise StudyError(f"no study {name!r} in {redact_url(url)}; studies there: {names or 'none'}") from None


def _row(t: Any) -> dict[str, Any]:
    ua = t.user_attrs
    row: dict[str, Any] = {"trial": t.number}
    params = dict(t.params)
    if "config" in params:
        arch = ArchPoint.from_key(str(params.pop("config")))
        row.update(config=arch.key, **arch.to_dict())
    else:
        row["config"] = ArchPoint(
            int(params["depth"]), int(params["channels"]), int(params["kernel_size"]), bool(params.get("gap", True))
        ).key
        row.update({k: params.pop(k) for k in ("depth", "channels", "kernel_size", "gap") if k in params})
    row.update(params)  # seed (grid) or lr, weight_decay, ... (search)
    for key in (
        "params",
        "flops",
        "receptive_field",
        "receptive_field_s",
        "train_seconds",
        "train_cpu_seconds",
        "best_epoch",
    ):
        row[key] = ua.get(key)
    row["trial_seconds"] = (
        (t.datetime_complete - t.datetime_start).total_seconds()
        if t.datetime_complete is not None and t.datetime_start is not None
        else None
    )
    row["value"] = t.value
    for split in ("val", "test"):
        for k, v in (ua.get(f"{split}_metrics") or {}).items():
            row[f"{split}_{k}"] = v
        for k, v in ((ua.get("per_label") or {}).get(split) or {}).items():
            row[f"{split}_label_{k}"] = v
        for k, v in ((ua.get("per_group") or {}).get(split) or {}).items():
            row[f"{split}_group_{k}"] = v
    for src, metrics in (ua.get("per_source") or {}).items():
        for k, v in (metrics or {}).items():
            row[f"test_source_{src}_{k}"] = v
    row["run_dir"] = ua.get("run_dir")
    row["worker"] = ua.get("worker")
    return row


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """The flat results table of complete trials (duplicates and failures left out), ordered by trial number."""
    import pandas as pd
    from optuna.trial import TrialState

    rows = [_row(t) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    for col in ("depth", "channels", "kernel_size", "seed", "params", "flops", "receptive_field"):
        if col in df.columns and df[col].notna().all():
            df[col] = df[col].astype("int64")
    if "gap" in df.columns:
        df["gap"] = df["gap"].astype(bool)
    if "leads" in df.columns:  # only points of a lead-set axis carry it; the others are 12-lead trials
        df["leads"] = df["leads"].fillna("12").astype(str)
    return df.sort_values("trial").reset_index(drop=True)


def study_results(name: str, storage: str | None = None, *, studies_dir: str | Path = "studies") -> pd.DataFrame:
    """One row per finished trial of study ``name`` (see the module docstring for the columns)."""
    return trials_frame(load_study(name, storage, studies_dir=studies_dir))
