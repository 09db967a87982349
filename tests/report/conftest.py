"""Report test fixtures: hand-made study results and a headless-Chromium page checker."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecgscale.report import Figure, Section, Table

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Injected at the top of <head> of a COPY of the page (the report itself has no script): records every error
# event (script errors and resources that failed to load, caught in the capture phase) and, once the page has
# loaded, writes each image's load state into the DOM, which --dump-dom then prints.
_PROBE = """<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  window.__errors.push(String(e.message || (e.target && (e.target.alt || e.target.tagName)) || 'error'));
}, true);
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var r = {n: imgs.length, widths: imgs.map(function (i) { return i.complete ? i.naturalWidth : 0; }),
           alts: imgs.map(function (i) { return i.alt; }), errors: window.__errors};
  var p = document.createElement('pre'); p.id = '__probe'; p.textContent = JSON.stringify(r);
  document.body.appendChild(p);
});
</script>"""


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="session")
def chromium_check(require_or_skip) -> Callable[[Path], dict]:
    """``check(html_path) -> {"n", "widths", "alts", "errors", "console_errors"}`` from a headless render."""
    exe = _chromium()
    if exe is None:
        require_or_skip("headless Chromium not installed (Debian package `chromium`; .ci/run installs it)")

    def check(html_path: Path) -> dict:
        text = html_path.read_text(encoding="utf-8")
        probed = text.replace("<head>", "<head>" + _PROBE, 1)
        with tempfile.TemporaryDirectory(prefix="ecgscale-chromium-") as tmp:
            page = Path(tmp) / "probe.html"
            page.write_text(probed, encoding="utf-8")
            cmd = [
                exe,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={tmp}/profile",
                "--enable-logging=stderr",
                "--v=0",
                "--virtual-time-budget=10000",
                "--dump-dom",
                page.as_uri(),
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        match = re.search(r'<pre id="__probe">(.*?)</pre>', proc.stdout, re.S)
        assert match, f"probe output missing; chromium rc={proc.returncode} stderr tail: {proc.stderr[-2000:]}"
        result = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
        result["console_errors"] = [
            line for line in proc.stderr.splitlines() if "CONSOLE" in line and ("rror" in line or "Uncaught" in line)
        ]
        return result

    return check


@pytest.fixture(scope="session")
def screenshot(require_or_skip) -> Callable[[Path, Path], None]:
    exe = _chromium()
    if exe is None:
        require_or_skip("headless Chromium not installed (Debian package `chromium`; .ci/run installs it)")

    def shot(html_path: Path, png: Path, width: int = 1280, height: int = 4000) -> None:
        with tempfile.TemporaryDirectory(prefix="ecgscale-chromium-") as tmp:
            subprocess.run(
                [
                    exe,
                    *CHROMIUM_FLAGS,
                    f"--user-data-dir={tmp}/profile",
                    "--hide-scrollbars",
                    f"--screenshot={png}",
                    f"--window-size={width},{height}",
                    html_path.as_uri(),
                ],
                capture_output=True,
                timeout=120,
                check=True,
            )

    return shot


def make_results(seed: int = 0, repeats: int = 3) -> pd.DataFrame:
    """Hand-made study results with the documented columns: an axes grid around D=2, C=32, K=9, ± GAP.

    The planted truth: performance rises with C, falls for large K, and is best at D=2; GAP adds 0.02.
    """
    rng = np.random.default_rng(seed)
    rows = []
    configs = (
        {(d, 32, 9) for d in (1, 2, 4, 8)}
        | {(2, c, 9) for c in (8, 16, 32, 64)}
        | {(2, 32, k) for k in (3, 5, 9, 17, 33)}
    )
    for depth, channels, kernel in sorted(configs):
        for gap in (True, False):
            params = 12 * channels * 15 + depth * 2 * channels * channels * kernel + channels * 26
            flops = 2 * params * 2500
            score = 0.80 + 0.03 * np.log2(channels / 8) - 0.02 * abs(np.log2(depth / 2)) - 0.004 * kernel
            score += 0.02 if gap else 0.0
            rf = 1 + depth * 2 * (kernel - 1) * 2
            for seed_ in range(repeats):
                val = score + rng.normal(0, 0.005)
                rows.append(
                    {
                        "trial": len(rows),
                        "depth": depth,
                        "channels": channels,
                        "kernel_size": kernel,
                        "gap": gap,
                        "seed": seed_,
                        "params": params,
                        "flops": flops,
                        "receptive_field": rf,
                        "receptive_field_s": rf / 250,
                        "train_seconds": 10.0 + params / 1e4,
                        "val_macro_auroc": val,
                        "test_macro_auroc": val - 0.01 + rng.normal(0, 0.005),
                        "test_macro_f1": val - 0.3,
                        "test_group_rhythm": val + 0.05,
                        "test_group_axis": val - 0.1,
                    }
                )
    return pd.DataFrame(rows)


@pytest.fixture()
def results() -> pd.DataFrame:
    return make_results()


def _figure(kind: str) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 2.5), dpi=80)
    ax.plot([1, 2, 4, 8], [0.8, 0.85, 0.84, 0.82], marker="o")
    ax.set_xlabel("depth D")
    buf = io.BytesIO()
    fig.savefig(buf, format=kind)
    plt.close(fig)
    media = "image/png" if kind == "png" else "image/svg+xml"
    return Figure(title=f"AUROC vs depth ({kind})", data=buf.getvalue(), media_type=media, caption="mean ± std")


@pytest.fixture()
def sections() -> list[Section]:
    """Three hand-made sections: a table with a highlighted row, a PNG and an SVG figure, a code block."""
    df = pd.DataFrame(
        {
            "config": ["D=2 C=32 K=9", "D=1 C=8 K=3 | odd"],
            "params": [123456, 789],
            "auroc": [0.91234, np.nan],
            "gap": [True, False],
        }
    )
    return [
        Section(
            "Data",
            paragraphs=("Synthetic benchmark, `ecgscale synth`.",),
            tables=(Table("Records <per> source", df, highlight_rows=(0,)),),
        ),
        Section("Scale", figures=(_figure("png"), _figure("svg")), callout="Best: D=2, C=32, K=9."),
        Section("Reproduce", code="ecgscale sweep --grid axes --study demo\necgscale report --study demo"),
    ]


@pytest.fixture(scope="session")
def surrogate_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A real (optuna, SQLite) axes study filled by the study layer's analytic surrogate runner: no training."""
    from ecgscale.study import SurrogateRunner, SweepSettings, axes_grid, run_sweep

    studies = tmp_path_factory.mktemp("studies")
    grid = axes_grid(
        {"depth": 2, "channels": 16, "kernel_size": 5},
        depths=(1, 2, 4),
        channels=(8, 16, 32),
        kernels=(3, 5, 9),
        seeds=(0, 1),
    )
    settings = SweepSettings(name="surr", grid=grid, studies_dir=studies, train={"epochs": 2})
    data = {"preprocess_hash": "test", "labels": [], "n_records": 0, "splits": {}}
    summary = run_sweep(settings, runner=SurrogateRunner(), data=data, progress=False)
    assert summary.done
    return "surr", studies
