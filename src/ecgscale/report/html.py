"""The study report as ONE self-contained HTML page (plus the same content as Markdown).

The page must open offline, years later, from an e-mail attachment: every figure is embedded as a
``data:`` URI, the stylesheet is inline, there is no JavaScript, no web font and no external reference.
Sections are plain data (:class:`Section`, :class:`Table`, :class:`Figure`), so the renderer can be tested
on hand-made inputs and the study layer stays free of HTML.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ecgscale.fileio import write_bytes_atomic, write_text_atomic
from ecgscale.report.tables import html_table, markdown_table

__all__ = ["Figure", "ReportFiles", "Section", "Table", "render_html", "render_markdown", "slugify", "write_report"]

_MEDIA_TYPES = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def slugify(text: str) -> str:
    """A file/anchor-safe name: lower case ASCII letters, digits and dashes."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or "item"


@dataclass(frozen=True, slots=True)
class Figure:
    """An image to embed: the bytes and their media type (PNG or SVG), a title and a caption."""

    title: str
    data: bytes
    media_type: str = "image/png"
    caption: str = ""
    name: str = ""  # file name used in the Markdown copy; derived from the title when empty

    def __post_init__(self) -> None:
        if self.media_type not in _MEDIA_TYPES.values():
            raise ValueError(f"figure {self.title!r}: media_type {self.media_type!r} not in {sorted(_MEDIA_TYPES)}")
        if not self.data:
            raise ValueError(f"figure {self.title!r}: no image data")

    @classmethod
    def from_file(cls, path: str | Path, *, title: str | None = None, caption: str = "") -> Figure:
        p = Path(path)
        media = _MEDIA_TYPES.get(p.suffix.lower())
        if media is None:
            raise ValueError(f"{p}: cannot embed a {p.suffix!r} file; allowed: {sorted(_MEDIA_TYPES)}")
        return cls(
            title=title or p.stem.replace("_", " "), data=p.read_bytes(), media_type=media, caption=caption, name=p.name
        )

    @property
    def file_name(self) -> str:
        if self.name:
            return self.name
        ext = next(k for k, v in _MEDIA_TYPES.items() if v == self.media_type)
        return slugify(self.title) + ext

    def data_uri(self) -> str:
        return f"data:{self.media_type};base64,{base64.b64encode(self.data).decode('ascii')}"


@dataclass(frozen=True, slots=True)
class Table:
    """A DataFrame with a title; ``highlight_rows`` (positions) are shown in bold (e.g. the recommendation)."""

    title: str
    frame: pd.DataFrame
    note: str = ""
    floatfmt: str = ".3f"
    floatfmts: dict[str, str] = field(default_factory=dict)
    highlight_rows: tuple[int, ...] = ()
    max_rows: int | None = 40
    name: str = ""  # file stem of the Markdown/CSV copy; derived from the title when empty

    @property
    def file_stem(self) -> str:
        return self.name or slugify(self.title)


@dataclass(frozen=True, slots=True)
class Section:
    """One heading of the report: paragraphs (backticks become ``<code>``), tables, figures, a code block."""

    title: str
    paragraphs: tuple[str, ...] = ()
    tables: tuple[Table, ...] = ()
    figures: tuple[Figure, ...] = ()
    code: str | None = None
    anchor: str = ""
    callout: str = ""  # one highlighted sentence shown first (the verdict / the recommendation)
    bullets: tuple[str, ...] = ()

    @property
    def anchor_id(self) -> str:
        return self.anchor or slugify(self.title)


_CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Liberation Sans", sans-serif;
       color: #1a1a1a; background: #fff; margin: 0 auto; max-width: 1120px; padding: 24px 32px 64px;
       line-height: 1.45; font-size: 15px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 2px solid #d0d7de; }
h3 { font-size: 16px; margin: 18px 0 6px; }
p { margin: 6px 0 10px; }
ul { margin: 6px 0 10px; padding-left: 22px; }
li { margin: 3px 0; }
.subtitle { color: #555; margin: 0 0 14px; }
nav.toc { background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px; padding: 8px 16px; }
nav.toc ol { margin: 4px 0; padding-left: 20px; columns: 2; }
nav.toc a { color: #0b5cad; text-decoration: none; }
code, pre { font-family: "DejaVu Sans Mono", Menlo, Consolas, "Liberation Mono", monospace; font-size: 13px; }
code { background: #f3f4f6; padding: 0 3px; border-radius: 3px; }
pre { background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px; padding: 10px 12px;
      white-space: pre-wrap; word-break: break-word; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 13px; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { border: 1px solid #d0d7de; padding: 3px 8px; vertical-align: top; }
th { background: #f0f3f6; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafbfc; }
tr.best td { font-weight: 700; background: #e8f5e9; }
figure { margin: 12px 0 20px; }
figure img { max-width: 100%; height: auto; border: 1px solid #e1e4e8; }
figcaption { color: #444; font-size: 13px; margin-top: 4px; }
.note { color: #555; font-size: 13px; }
.callout { border-left: 4px solid #2e7d32; background: #f1f8f2; padding: 8px 14px; margin: 10px 0; }
footer { margin-top: 40px; color: #666; font-size: 12px; border-top: 1px solid #d0d7de; padding-top: 8px; }
@media print {
  body { max-width: none; padding: 0; font-size: 11pt; }
  nav.toc { display: none; }
  h2 { break-after: avoid; }
  figure, table, pre { break-inside: avoid; }
  a { color: inherit; text-decoration: none; }
}
"""


def _inline(text: str) -> str:
    """Escape text and turn `backtick` spans into <code>; nothing else is interpreted."""
    parts = text.split("`")
    out = []
    for i, part in enumerate(parts):
        escaped = html.escape(part)
        out.append(f"<code>{escaped}</code>" if i % 2 == 1 and i < len(parts) - 1 else escaped)
    if len(parts) % 2 == 0:  # an unmatched backtick: keep it literally
        out[-1] = "`" + out[-1]
    return "".join(out)


def _render_section(sec: Section) -> str:
    parts = [f'<section id="{html.escape(sec.anchor_id)}"><h2>{html.escape(sec.title)}</h2>']
    if sec.callout:
        parts.append(f'<p class="callout">{_inline(sec.callout)}</p>')
    for para in sec.paragraphs:
        parts.append(f"<p>{_inline(para)}</p>")
    if sec.bullets:
        parts.append("<ul>" + "".join(f"<li>{_inline(b)}</li>" for b in sec.bullets) + "</ul>")
    for fig in sec.figures:
        parts.append(
            f'<figure><img src="{fig.data_uri()}" alt="{html.escape(fig.title)}">'
            f"<figcaption><b>{html.escape(fig.title)}.</b> {_inline(fig.caption)}</figcaption></figure>"
        )
    for tab in sec.tables:
        parts.append(f"<h3>{html.escape(tab.title)}</h3>")
        parts.append(
            html_table(
                tab.frame,
                floatfmt=tab.floatfmt,
                floatfmts=tab.floatfmts,
                highlight_rows=tab.highlight_rows,
                max_rows=tab.max_rows,
            )
        )
        if tab.note:
            parts.append(f'<p class="note">{_inline(tab.note)}</p>')
    if sec.code:
        parts.append(f"<pre>{html.escape(sec.code)}</pre>")
    parts.append("</section>")
    return "\n".join(parts)


def render_html(title: str, sections: Sequence[Section], *, subtitle: str = "", footer: str = "") -> str:
    """The whole page as a string: inline CSS, a table of contents, the sections; no script, no external URL."""
    toc = "".join(f'<li><a href="#{html.escape(s.anchor_id)}">{html.escape(s.title)}</a></li>' for s in sections)
    body = "\n".join(_render_section(s) for s in sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n"
        f"<body><header><h1>{html.escape(title)}</h1>"
        + (f'<p class="subtitle">{_inline(subtitle)}</p>' if subtitle else "")
        + f'</header><nav class="toc"><b>Contents</b><ol>{toc}</ol></nav>\n{body}\n'
        + (f"<footer>{_inline(footer)}</footer>" if footer else "")
        + "</body></html>\n"
    )


def render_markdown(title: str, sections: Sequence[Section], *, subtitle: str = "", figure_dir: str = "figures") -> str:
    """The same report as Markdown; figures are referenced as files under ``figure_dir``."""
    lines = [f"# {title}", ""]
    if subtitle:
        lines += [subtitle, ""]
    for sec in sections:
        lines += [f"## {sec.title}", ""]
        if sec.callout:
            lines += [f"> {sec.callout}", ""]
        for para in sec.paragraphs:
            lines += [para, ""]
        if sec.bullets:
            lines += [f"- {b}" for b in sec.bullets] + [""]
        for fig in sec.figures:
            lines += [f"![{fig.title}]({figure_dir}/{fig.file_name})", "", f"*{fig.title}.* {fig.caption}".rstrip(), ""]
        for tab in sec.tables:
            lines += [f"### {tab.title}", "", markdown_table(tab.frame, floatfmt=tab.floatfmt, floatfmts=tab.floatfmts)]
            if tab.note:
                lines += [tab.note, ""]
        if sec.code:
            lines += ["```bash", sec.code.rstrip(), "```", ""]
    return "\n".join(lines).rstrip() + "\n"


@dataclass(frozen=True, slots=True)
class ReportFiles:
    """What :func:`write_report` wrote."""

    html: Path
    markdown: Path
    tables: tuple[Path, ...]
    figures: tuple[Path, ...]


def write_report(
    out_dir: str | Path,
    title: str,
    sections: Sequence[Section],
    *,
    subtitle: str = "",
    footer: str = "",
) -> ReportFiles:
    """Write ``report.html`` (self-contained), ``report.md`` + ``figures/``, and ``tables/<name>.md|.csv``.

    Every file is written atomically, so an interrupted report never leaves a half page behind.
    """
    out = Path(out_dir)
    tables_dir, figures_dir = out / "tables", out / "figures"
    tables_dir.mkdir(parents=True, exist_ok=True)
    figures_dir.mkdir(parents=True, exist_ok=True)
    table_paths: list[Path] = []
    seen: set[str] = set()
    for sec in sections:
        for tab in sec.tables:
            stem = tab.file_stem
            if stem in seen:
                raise ValueError(f"two report tables share the file name {stem!r}; give one a distinct name")
            seen.add(stem)
            md, csv = tables_dir / f"{stem}.md", tables_dir / f"{stem}.csv"
            write_text_atomic(
                md, f"**{tab.title}**\n\n" + markdown_table(tab.frame, floatfmt=tab.floatfmt, floatfmts=tab.floatfmts)
            )
            write_text_atomic(csv, tab.frame.to_csv(index=False))
            table_paths += [md, csv]
    figure_paths: list[Path] = []
    for sec in sections:
        for fig in sec.figures:
            dest = figures_dir / fig.file_name
            write_bytes_atomic(dest, fig.data)
            figure_paths.append(dest)
    html_path, md_path = out / "report.html", out / "report.md"
    write_text_atomic(html_path, render_html(title, sections, subtitle=subtitle, footer=footer))
    write_text_atomic(md_path, render_markdown(title, sections, subtitle=subtitle))
    return ReportFiles(html_path, md_path, tuple(table_paths), tuple(figure_paths))
