"""The study report: one self-contained HTML page + Markdown tables, and the budgeted recommendation.

``report`` reads what ``study`` computed (results, analysis tables and figures) and never trains anything;
the end-to-end pipeline that does is :mod:`ecgscale.workflows.demo`.
"""

from __future__ import annotations

from ecgscale.report.html import Figure, ReportFiles, Section, Table, render_html, render_markdown, write_report
from ecgscale.report.recommend import (
    LatencyCache,
    Recommendation,
    aggregate_configs,
    measure_latency_ms,
    pareto_configs,
    recommend,
)
from ecgscale.report.tables import data_summary_tables, html_table, markdown_table

__all__ = [
    "Figure",
    "LatencyCache",
    "Recommendation",
    "ReportFiles",
    "Section",
    "Table",
    "aggregate_configs",
    "data_summary_tables",
    "html_table",
    "markdown_table",
    "measure_latency_ms",
    "pareto_configs",
    "recommend",
    "render_html",
    "render_markdown",
    "write_report",
]
