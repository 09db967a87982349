"""The HTML/Markdown renderer on hand-made inputs: self-contained, every figure embedded, tables right."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecgscale.report import Figure, Section, Table, markdown_table, render_html, write_report
from ecgscale.report.tables import format_value, label_prevalence_table, records_per_source_table


def test_html_is_self_contained_and_embeds_every_figure(sections: list[Section]) -> None:
    page = render_html("ecgscale study <demo>", sections, subtitle="our reconstruction")
    # no script, no external stylesheet/font/image, no network URL anywhere
    assert "<script" not in page.lower()
    assert "<link" not in page.lower()
    assert "http://" not in page and "https://" not in page
    assert "@import" not in page and "url(" not in page
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert len(srcs) == 2
    assert srcs[0].startswith("data:image/png;base64,") and srcs[1].startswith("data:image/svg+xml;base64,")
    # the embedded bytes are the figure bytes
    assert base64.b64decode(srcs[0].split(",", 1)[1]) == sections[1].figures[0].data
    # text is escaped, backticks become code, the highlighted row is marked, NaN shows as a dash
    assert "ecgscale study &lt;demo&gt;" in page and "<code>ecgscale synth</code>" in page
    assert '<tr class="best">' in page and "123,456" in page and "–" in page
    assert '<p class="callout">Best: D=2, C=32, K=9.</p>' in page
    assert 'href="#data"' in page and 'id="data"' in page


def test_write_report_writes_page_markdown_tables_and_figures(tmp_path: Path, sections: list[Section]) -> None:
    files = write_report(tmp_path / "rep", "Study", sections)
    assert files.html.read_text().startswith("<!DOCTYPE html>")
    md = files.markdown.read_text()
    assert "## Scale" in md and "![AUROC vs depth (png)](figures/auroc-vs-depth-png.png)" in md
    assert "```bash\necgscale sweep" in md
    assert sorted(p.name for p in files.tables) == ["records-per-source.csv", "records-per-source.md"]
    written = {p.name: p.read_bytes() for p in files.figures}  # the figure files are the figures' bytes
    assert written == {
        "auroc-vs-depth-png.png": sections[1].figures[0].data,
        "auroc-vs-depth-svg.svg": sections[1].figures[1].data,
    }
    csv = pd.read_csv(tmp_path / "rep" / "tables" / "records-per-source.csv")
    assert list(csv["params"]) == [123456, 789]
    assert not list((tmp_path / "rep").glob(".*tmp"))  # atomic writes leave no temporary files


def test_duplicate_table_names_are_refused(tmp_path: Path) -> None:
    df = pd.DataFrame({"a": [1]})
    with pytest.raises(ValueError, match="share the file name 'x'"):
        write_report(tmp_path, "T", [Section("A", tables=(Table("x", df), Table("x", df)))])


def test_figure_validation(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="media_type"):
        Figure("f", b"abc", media_type="image/gif")
    with pytest.raises(ValueError, match="no image data"):
        Figure("f", b"")
    bad = tmp_path / "f.pdf"
    bad.write_bytes(b"%PDF")
    with pytest.raises(ValueError, match=r"f\.pdf: cannot embed"):
        Figure.from_file(bad)


def test_markdown_table_format() -> None:
    df = pd.DataFrame({"name": ["a|b", "c"], "n": [1000, 2], "x": [0.12345, float("nan")]})
    md = markdown_table(df, floatfmts={"x": ".2f"})
    assert md.splitlines() == [
        "| name | n | x |",
        "| :--- | ---: | ---: |",
        "| a\\|b | 1,000 | 0.12 |",
        "| c | 2 | – |",
    ]
    assert format_value(True) == "yes" and format_value(float("inf")) == "∞" and format_value(2.5e6) == "2,500,000"


def test_data_summary_tables() -> None:
    from ecgscale.data.labels import cinc2021_scored

    space = cinc2021_scored()
    manifest = pd.DataFrame({"source": ["a", "a", "b", "b", "b"], "split": ["train", "test", "train", "val", "train"]})
    counts = records_per_source_table(manifest)
    assert list(counts.columns) == ["source", "train", "val", "test", "total"]
    assert counts.set_index("source").loc["all", "total"] == 5
    assert counts.set_index("source").loc["b", "train"] == 2
    y = np.zeros((5, len(space)), dtype=np.uint8)
    y[:2, 0] = 1
    prev = label_prevalence_table(y, space, manifest["split"])
    assert prev.loc[0, "positives"] == 2 and prev.loc[0, "prevalence_%"] == pytest.approx(40.0)
    assert prev.loc[0, "train_%"] == pytest.approx(100 / 3) and prev.loc[0, "test_%"] == pytest.approx(100.0)
    assert set(prev["group"]) >= {"rhythm", "conduction"}
    with pytest.raises(ValueError, match="shape"):
        label_prevalence_table(y[:, :3], space)
