"""The report page rendered by headless Chromium: every figure decodes, no script or resource error.

The only tests that need Chromium (the demo's end-to-end test checks its page without a browser); under CI a
missing Chromium fails them (``require_or_skip``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ecgscale.report import Section, write_report
from ecgscale.report.build import build_report

pytestmark = pytest.mark.browser


def test_chromium_renders_every_figure(tmp_path: Path, chromium_check, sections: list[Section]) -> None:
    files = write_report(tmp_path / "rep", "Study", sections)
    result = chromium_check(files.html)
    assert result["n"] == 2
    assert all(w > 0 for w in result["widths"]), result
    assert result["errors"] == [] and result["console_errors"] == []


def test_chromium_probe_detects_a_broken_figure(tmp_path: Path, chromium_check, sections: list[Section]) -> None:
    """The check itself can fail: a corrupt embedded PNG shows up with naturalWidth 0 and an error event."""
    files = write_report(tmp_path / "rep", "Study", sections)
    page = files.html.read_text()
    start = page.index("data:image/png;base64,") + len("data:image/png;base64,")
    broken = tmp_path / "broken.html"
    broken.write_text(page[:start] + "AAAA" + page[page.index('"', start) :])
    result = chromium_check(broken)
    assert result["widths"][0] == 0 and result["widths"][1] > 0
    assert result["errors"]


def test_chromium_renders_a_study_report(tmp_path: Path, chromium_check, surrogate_study) -> None:
    """The whole study page (``ecgscale report``, as the demo writes it) renders with every analysis figure."""
    name, studies = surrogate_study
    files = build_report(name, studies_dir=studies, out=tmp_path / "rep")
    result = chromium_check(files.html)
    assert result["n"] == 5 and all(w > 0 for w in result["widths"]), result
    assert result["errors"] == [] and result["console_errors"] == []
