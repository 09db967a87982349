"""Tables of the study report as Markdown (for a README or a paper draft) and as plain HTML (for the page).

Both renderers are hand-written on purpose: pandas' ``DataFrame.to_markdown`` needs the optional ``tabulate``
package, and ``to_html`` emits inline styles and attributes that fight the printable stylesheet. Formatting of
numbers lives in one place (:func:`format_value`) so the page and the Markdown files always agree.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "data_summary_tables",
    "format_value",
    "html_table",
    "label_prevalence_table",
    "markdown_table",
    "records_per_source_table",
]

_INT_COLUMNS_HINT = ("params", "flops", "macs", "n_", "count", "records", "depth", "channels", "kernel", "seed")


def format_value(value: Any, *, floatfmt: str = ".3f") -> str:
    """One cell as text: ints with thousands separators, floats with ``floatfmt``, NaN/None as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v):
            return "–"
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        if v.is_integer() and abs(v) >= 1e4:
            return f"{int(v):,}"
        return format(v, floatfmt)
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)


def _cells(df: pd.DataFrame, floatfmts: Mapping[str, str] | None, floatfmt: str) -> list[list[str]]:
    fmts = dict(floatfmts or {})
    return [
        [format_value(v, floatfmt=fmts.get(str(col), floatfmt)) for col, v in zip(df.columns, row, strict=True)]
        for row in df.itertuples(index=False, name=None)
    ]


def _numeric_columns(df: pd.DataFrame) -> list[bool]:
    return [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in df.columns]


def markdown_table(
    df: pd.DataFrame,
    *,
    floatfmt: str = ".3f",
    floatfmts: Mapping[str, str] | None = None,
    max_rows: int | None = None,
) -> str:
    """GitHub-flavoured Markdown; numeric columns right-aligned; ``|`` in cells escaped."""
    if max_rows is not None and len(df) > max_rows:
        df = df.head(max_rows)
    header = [str(c).replace("|", "\\|") for c in df.columns]
    align = ["---:" if numeric else ":---" for numeric in _numeric_columns(df)]
    rows = [[cell.replace("|", "\\|").replace("\n", " ") for cell in row] for row in _cells(df, floatfmts, floatfmt)]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def html_table(
    df: pd.DataFrame,
    *,
    caption: str | None = None,
    floatfmt: str = ".3f",
    floatfmts: Mapping[str, str] | None = None,
    highlight_rows: Sequence[int] = (),
    max_rows: int | None = None,
) -> str:
    """A ``<table>`` with escaped cells; numeric columns get class ``num`` (right-aligned by the stylesheet)."""
    truncated = 0
    if max_rows is not None and len(df) > max_rows:
        truncated = len(df) - max_rows
        df = df.head(max_rows)
    numeric = _numeric_columns(df)
    highlight = set(highlight_rows)
    parts = ["<table>"]
    if caption:
        parts.append(f"<caption>{html.escape(caption)}</caption>")
    head = "".join(
        f'<th class="num">{html.escape(str(c))}</th>' if n else f"<th>{html.escape(str(c))}</th>"
        for c, n in zip(df.columns, numeric, strict=True)
    )
    parts.append(f"<thead><tr>{head}</tr></thead><tbody>")
    for i, row in enumerate(_cells(df, floatfmts, floatfmt)):
        cls = ' class="best"' if i in highlight else ""
        tds = "".join(
            f'<td class="num">{html.escape(v)}</td>' if n else f"<td>{html.escape(v)}</td>"
            for v, n in zip(row, numeric, strict=True)
        )
        parts.append(f"<tr{cls}>{tds}</tr>")
    parts.append("</tbody></table>")
    if truncated:
        parts.append(f'<p class="note">… {truncated} more rows in the Markdown/CSV tables.</p>')
    return "".join(parts)


def records_per_source_table(manifest: pd.DataFrame) -> pd.DataFrame:
    """Records per source (rows) and split (columns), with totals; the manifest needs ``source`` and ``split``."""
    for col in ("source", "split"):
        if col not in manifest.columns:
            raise KeyError(f"manifest has no {col!r} column (columns: {list(manifest.columns)})")
    counts = pd.crosstab(manifest["source"].astype(str), manifest["split"].astype(str))
    order = [s for s in ("train", "val", "test") if s in counts.columns]
    order += [s for s in counts.columns if s not in order]
    counts = counts[order]
    counts["total"] = counts.sum(axis=1)
    counts.loc["all"] = counts.sum(axis=0)
    out = counts.reset_index().rename(columns={"source": "source"})
    out.columns.name = None
    return out


def label_prevalence_table(labels: np.ndarray, label_space: Any, splits: Sequence[str] | None = None) -> pd.DataFrame:
    """Per class: abbreviation, group, positives and prevalence (%) overall and per split.

    ``labels`` is the (N, K) multi-hot matrix and ``label_space`` anything with ``classes`` carrying
    ``abbreviation``, ``name`` and ``group`` (an :class:`ecgscale.data.labels.LabelSpace`).
    """
    y = np.asarray(labels)
    if y.ndim != 2 or y.shape[1] != len(label_space.classes):
        raise ValueError(f"labels must have shape (N, {len(label_space.classes)}), got {y.shape}")
    n = max(int(y.shape[0]), 1)
    out = pd.DataFrame(
        {
            "class": [c.abbreviation for c in label_space.classes],
            "name": [c.name for c in label_space.classes],
            "group": [c.group or "–" for c in label_space.classes],
            "positives": y.sum(axis=0).astype(int),
            "prevalence_%": 100.0 * y.sum(axis=0) / n,
        }
    )
    if splits is not None:
        split_arr = np.asarray(list(splits)).astype(str)
        for name in ("train", "val", "test"):
            mask = split_arr == name
            if mask.any():
                out[f"{name}_%"] = 100.0 * y[mask].sum(axis=0) / mask.sum()
    return out


def data_summary_tables(cache: Any) -> dict[str, pd.DataFrame]:
    """The two data-summary tables of a prepared cache (an :class:`ecgscale.data.cache.EcgCache`)."""
    manifest = cache.manifest
    return {
        "records_per_source": records_per_source_table(manifest),
        "label_prevalence": label_prevalence_table(np.asarray(cache.labels), cache.label_space, manifest.get("split")),
    }
