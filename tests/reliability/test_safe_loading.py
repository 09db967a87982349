"""No pickle, no code from files: a static scan of src/, and crafted payloads handed to every loader."""

from __future__ import annotations

from pathlib import Path

import pytest
from reliability.faults import safe_loading


def test_no_unsafe_deserialisation_in_src() -> None:
    findings, n_files = safe_loading.dangerous_calls()
    assert n_files > 50
    assert findings == []


def test_scanner_finds_what_it_looks_for(tmp_path: Path) -> None:
    """The scan can fail: planted unsafe calls (aliased imports included) are each reported."""
    (tmp_path / "bad.py").write_text(
        "import pickle as pk\nimport numpy as np\nimport torch, yaml\nfrom joblib import load\n"
        "def f(p):\n"
        "    torch.load(p)\n    pk.loads(p)\n    np.load(p, allow_pickle=True)\n    yaml.load(p)\n"
        "    eval(p)\n    load(p)\n    torch.jit.load(p)\n"
        "    torch.load(p, weights_only=True)\n    np.load(p, allow_pickle=False)\n"
        "    yaml.load(p, Loader=yaml.SafeLoader)\n"
    )
    findings, _ = safe_loading.dangerous_calls(tmp_path)
    assert sorted(int(f.split(": ", 1)[0].rsplit(":", 1)[1]) for f in findings) == list(range(6, 13))


@pytest.mark.slow
def test_malicious_files_in_run_dir_are_refused(tmp_path: Path) -> None:
    result = safe_loading.malicious_files_in_run_dir(tmp_path, iterations=1, seed=0)
    assert result.passed, result.summary()


def test_torchscript_metadata_runs_nothing(tmp_path: Path) -> None:
    result = safe_loading.torchscript_metadata_inert(tmp_path, iterations=2, seed=0)
    assert result.passed, result.summary()
