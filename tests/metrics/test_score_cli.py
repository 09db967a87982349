"""``ecgscale score`` end to end on a small folder of headers and challenge output files written here."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ecgscale.cli import app, main
from ecgscale.data.labels import cinc2021_weights
from ecgscale.metrics import write_challenge_output

KEYS, _ = cinc2021_weights()
N_RECORDS = 40
#: What the files say, as SNOMED code sets per record: the header's #Dx codes and the codes of positive outputs.
CodeSets = list[set[str]]


def _write_folder(
    root: Path, seed: int = 0
) -> tuple[Path, Path, np.ndarray, np.ndarray, np.ndarray, CodeSets, CodeSets]:
    """Headers with awkward #Dx lines and outputs with shuffled/equivalent class codes; returns the true matrices
    and the code sets written (label codes, positive output codes)."""
    rng = np.random.default_rng(seed)
    labels_dir, outputs_dir = root / "labels" / "g1", root / "outputs"
    labels_dir.mkdir(parents=True)
    outputs_dir.mkdir()
    labels = np.zeros((N_RECORDS, 26), dtype=bool)
    binary = np.zeros((N_RECORDS, 26), dtype=bool)
    scalar = np.zeros((N_RECORDS, 26))
    label_codes: CodeSets = []
    output_codes: CodeSets = []
    for i in range(N_RECORDS):
        rid = f"E{i:03d}"
        cls = rng.choice(26, size=int(rng.integers(1, 4)), replace=False)
        labels[i, cls] = True
        # The second code of an equivalent pair, a duplicate, an unscored code, blanks and "# Dx" spellings.
        codes = [KEYS[j].split("|")[-1] for j in cls] + [KEYS[cls[0]].split("|")[0], "251170000"]
        dx = ("#Dx: " if i % 2 else "# Dx: ") + ",".join(codes) + (",," if i % 3 == 0 else "")
        (labels_dir / f"{rid}.hea").write_text(f"{rid} 12 500 5000\n{rid}.mat 16+24 1000/mV 16 0 1 2 0 I\n{dx}\n")
        label_codes.append(set(codes))
        output_codes.append(set())
        if i == 7:
            continue  # missing output: scored as all-negative, probability 0
        probs = np.clip(labels[i] * 0.5 + rng.random(26) * 0.6, 0, 1).round(3)
        binary[i] = probs >= 0.5
        scalar[i] = probs
        perm = rng.permutation(26)
        out_codes = [KEYS[j].split("|")[0] if rng.random() < 0.5 else KEYS[j] for j in perm]
        write_challenge_output(outputs_dir / f"{rid}.csv", rid, out_codes, binary[i, perm], probs[perm])
        positive = [code for code, on in zip(out_codes, binary[i, perm], strict=True) if on]
        output_codes[-1] = {c for code in positive for c in code.split("|")}
    return root / "labels", outputs_dir, labels, binary, scalar, label_codes, output_codes


def test_score_cli_matches_the_official_computation(tmp_path: Path, official):
    labels_dir, outputs_dir, labels, binary, scalar, label_codes, output_codes = _write_folder(tmp_path)
    out_json = tmp_path / "scores.json"
    result = CliRunner().invoke(app, ["score", str(labels_dir), str(outputs_dir), "--json", "--out", str(out_json)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report == json.loads(out_json.read_text())
    assert report["n_records"] == N_RECORDS
    assert report["n_missing_outputs"] == 1 and report["missing_outputs"] == ["E007"]
    auroc, auprc, _, _ = official.auc(labels, scalar)
    assert report["auroc"] == pytest.approx(auroc, abs=1e-9)
    assert report["auprc"] == pytest.approx(auprc, abs=1e-9)
    assert report["accuracy"] == pytest.approx(official.accuracy(labels, binary), abs=1e-12)
    assert report["f_measure"] == pytest.approx(official.f_measure(labels, binary)[0], abs=1e-9)
    # The challenge metric straight from the codes in the files and the official weights.csv.
    expected = official.challenge_metric_of_codes(label_codes, output_codes)
    assert report["challenge_metric"] == pytest.approx(expected, abs=1e-9)
    assert [c["key"] for c in report["classes"]] == KEYS


def test_score_cli_tables_and_official_csv(tmp_path: Path, official):
    labels_dir, outputs_dir, _, _, _, label_codes, output_codes = _write_folder(tmp_path, seed=1)
    out_csv = tmp_path / "scores.csv"
    result = CliRunner().invoke(app, ["score", str(labels_dir), str(outputs_dir), "--out", str(out_csv)])
    assert result.exit_code == 0, result.output
    assert "Challenge metric" in result.stdout and "RBBB" in result.stdout
    assert "1 output file(s) missing" in result.stdout and "E007" in result.stdout
    header, values = out_csv.read_text().splitlines()
    assert header == "AUROC,AUPRC,Accuracy,F-measure,Challenge metric"
    expected = official.challenge_metric_of_codes(label_codes, output_codes)
    assert float(values.split(",")[4]) == pytest.approx(expected, abs=1e-3)


def _run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["ecgscale", "score", *args])
    with pytest.raises(SystemExit) as info:
        main()
    return int(info.value.code or 0), capsys.readouterr().err


def test_score_cli_malformed_file_is_one_clear_error(tmp_path: Path, monkeypatch, capsys):
    labels_dir, outputs_dir, *_ = _write_folder(tmp_path, seed=2)
    bad = outputs_dir / "E003.csv"
    bad.write_text("#E003\n164889003,426783006\n1,0\n")
    code, err = _run_main(monkeypatch, capsys, str(labels_dir), str(outputs_dir))
    assert code == 2
    assert "E003.csv" in err and "expected 3 lines" in err and "Traceback" not in err


def test_score_cli_strict_fails_on_missing_output(tmp_path: Path, monkeypatch, capsys):
    labels_dir, outputs_dir, *_ = _write_folder(tmp_path, seed=3)
    code, err = _run_main(monkeypatch, capsys, str(labels_dir), str(outputs_dir), "--strict")
    assert code == 2 and "E007" in err
