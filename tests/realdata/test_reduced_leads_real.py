"""Reduced-lead copies of the 70 real CinC 2021 records, written by ecgscale like the challenge's reduced-lead files
(header listing only the kept leads, ``.mat`` holding only those rows): read back exactly, predicted by models
trained for that lead set (tiny models trained on the synthetic ``tiny_cache``), refused by others with the
missing leads named, and scored per lead set like the challenge."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
import wfdb

from ecgscale.data.leads import parse_leads
from ecgscale.data.readers import read_record
from ecgscale.data.reduced import reduce_leads, write_reduced_record
from ecgscale.infer import Predictor
from ecgscale.infer.predict import write_challenge_outputs
from ecgscale.metrics.lead_sets import score_lead_sets
from ecgscale.models import ResNet1dConfig
from ecgscale.train import TrainConfig, train_run

SETS = ("12", "6", "3", "2")


@pytest.fixture(scope="module")
def reduced(cinc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reduced")
    out = {"12": cinc_dir}
    for tag in SETS[1:]:
        summary = reduce_leads(cinc_dir, root / tag, tag)
        assert len(summary.written) == 70 and not summary.failed
        out[tag] = root / tag
    return out


@pytest.fixture(scope="module")
def runs(tiny_cache, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny model per lead set (one epoch on the synthetic cache: what is tested is the lead handling)."""
    root = tmp_path_factory.mktemp("lead_runs")
    out = {}
    for tag in SETS:
        cfg = ResNet1dConfig(depth=1, channels=8, kernel_size=5, n_classes=len(tiny_cache.label_space))
        train = TrainConfig(epochs=1, batch_size=32, device="cpu", precision="fp32", seed=0, leads=tag)
        train_run(tiny_cache, cfg, train, root / tag, progress=False)
        out[tag] = root / tag
    return out


def test_reduced_copies_read_back_exactly(cinc_dir, reduced):
    for tag in SETS[1:]:
        names = parse_leads(tag).names
        for hea in sorted(reduced[tag].glob("*.hea")):
            full = read_record(cinc_dir / hea.name)
            red = read_record(hea)
            rows = [full.lead_names.index(n) for n in names]
            assert red.lead_names == names, hea
            np.testing.assert_array_equal(red.signal, full.signal[rows], err_msg=str(hea))
            assert (red.fs, red.codes, red.age, red.sex) == (full.fs, full.codes, full.age, full.sex), hea
            # the challenge's form: a header of only the kept leads, and a .mat of only those rows
            assert scipy.io.loadmat(str(hea.with_suffix(".mat")))["val"].shape[0] == len(names)
            lines = [ln for ln in hea.read_text().splitlines() if ln and not ln.startswith("#")]
            assert lines[0].split()[1] == str(len(names)) and len(lines) == 1 + len(names)
    # wfdb reads a reduced copy as the same physical values
    hea = sorted(reduced["3"].glob("*.hea"))[0]
    w = wfdb.rdrecord(str(hea.with_suffix("")), physical=True, return_res=64)
    assert tuple(w.sig_name) == ("I", "II", "V2")
    np.testing.assert_array_equal(read_record(hea).signal, w.p_signal.T.astype(np.float32))


def test_matching_models_predict_and_others_refuse_naming_missing_leads(cinc_dir, reduced, runs, tmp_path):
    full6 = Predictor(runs["6"], device="cpu").predict_paths(cinc_dir)
    red6 = Predictor(runs["6"], device="cpu").predict_paths(reduced["6"])
    assert red6.n_predicted == 70 and red6.n_failed == 0
    # the 6-lead copy gives the 6-lead model exactly what it took from the 12-lead file
    a = red6.table.sort_values("record_id").filter(like="p_").to_numpy()
    b = full6.table.sort_values("record_id").filter(like="p_").to_numpy()
    np.testing.assert_allclose(a, b, atol=1e-6)
    # a 12-lead model on 6-lead records: one error per file, naming the missing leads
    refused = Predictor(runs["12"], device="cpu").predict_paths(reduced["6"])
    assert refused.n_predicted == 0 and refused.n_failed == 70
    assert set(refused.errors["reason"]) == {"missing_leads"}
    assert refused.errors["error"].str.contains("missing leads V1, V2, V3, V4, V5, V6").all()
    assert refused.summary() == "0 predicted, 70 failed (missing_leads: 70)"
    # a 6-lead model on 2-lead records, and on copies in another lead order
    msg = Predictor(runs["6"], device="cpu").predict_paths(reduced["2"]).errors["error"].iloc[0]
    assert "missing leads III, aVR, aVL, aVF" in msg and "the record has I, II" in msg
    shuffled = write_reduced_record(cinc_dir / "A0001.hea", tmp_path / "shuffled", "3", order=["V2", "II", "I"])
    p3 = Predictor(runs["3"], device="cpu")
    np.testing.assert_allclose(
        p3.predict_record(shuffled).probabilities,
        p3.predict_record(reduced["3"] / "A0001.hea").probabilities,
        atol=1e-6,
    )


def test_score_per_lead_set_on_real_records(cinc_dir, reduced, runs, tmp_path):
    for tag in SETS:
        predictor = Predictor(runs[tag], device="cpu")
        rows = list(predictor.iter_predict(reduced[tag]))
        assert not [r for r in rows if hasattr(r, "reason")]  # no PredictionError
        written, dups = write_challenge_outputs(predictor, rows, tmp_path / "outputs" / f"{tag}_leads")
        assert len(written) == 70 and not dups
    scores = score_lead_sets(cinc_dir, tmp_path / "outputs", strict=True)
    assert list(scores.scores) == list(SETS)
    assert all(len(d.record_ids) == 70 and not d.missing for d in scores.data.values())
    cm = {t: s.challenge_metric for t, s in scores.scores.items()}
    assert scores.summary == pytest.approx((cm["12"] + cm["3"] + cm["2"]) / 3)
