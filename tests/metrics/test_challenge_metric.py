"""The CinC 2021 challenge scores: the bundled weights are the official file, hand-computed values, equivalent
codes, and the vectorised scores equal an independent loop statement of the official ones (``_official.py``)."""

from __future__ import annotations

import hashlib
from importlib import resources

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from ecgscale.data.labels import cinc2021_all, cinc2021_scored, cinc2021_weights
from ecgscale.metrics import (
    challenge_metric,
    challenge_record_scores,
    modified_confusion_matrix,
    official_accuracy,
    official_auc,
    official_f_measure,
    resolve_challenge_classes,
    score_challenge,
)

KEYS, WEIGHTS = cinc2021_weights()
NSR = KEYS.index("426783006")

# A three-class toy problem small enough to score by hand (see test_hand_computed_intermediate_value).
TOY_KEYS = ["a", "n", "b"]
TOY_W = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.25], [0.0, 0.25, 1.0]])
TOY_LABELS = np.array([[1, 0, 0], [1, 0, 1], [0, 1, 0]], dtype=bool)
TOY_OUTPUTS = np.array([[1, 0, 0], [0, 0, 1], [1, 1, 0]], dtype=bool)


def _random_labels(rng: np.random.Generator, n: int, k: int = 26, p: float = 0.12) -> np.ndarray:
    labels = rng.random((n, k)) < p
    labels[rng.random(n) < 0.3, NSR if k == 26 else 0] = True
    return labels


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_bundled_weights_are_the_official_file(official):
    bundled = resources.files("ecgscale.data").joinpath("resources", "cinc2021", "weights.csv").read_bytes()
    # Pinned: the SHA-256 of the challenge's own weights.csv (final 2021 version), computed from the official copy.
    assert _sha256(bundled) == "668cb04555a97e8977488cb4bb6088d0d2bf9e59557945deedf29d5065c14d2b"
    assert _sha256(bundled) == official.OFFICIAL_WEIGHTS_SHA256
    official_csv = official.OFFICIAL_DIR / "weights.csv"
    if official_csv.is_file():  # the official copy next to the checkout (../shared), where there is one
        assert _sha256(official_csv.read_bytes()) == official.OFFICIAL_WEIGHTS_SHA256
        assert official_csv.read_bytes() == bundled


def test_weights_as_loaded_equal_the_official_table(official):
    classes, names, w = official.read_weights_csv(
        resources.files("ecgscale.data").joinpath("resources", "cinc2021", "weights.csv")
    )
    assert names == KEYS and len(names) == 26
    np.testing.assert_array_equal(WEIGHTS, w)
    assert [frozenset(c.split("|")) for c in cinc2021_scored().keys] == classes
    assert {c for c in classes if len(c) == 2} == {
        frozenset({"713427006", "59118001"}),
        frozenset({"733534002", "164909002"}),
        frozenset({"284470004", "63593006"}),
        frozenset({"427172004", "17338001"}),
    }
    assert np.all(np.diag(w) == 1.0) and np.array_equal(w, w.T)


def test_hand_computed_intermediate_value(official):
    # observed: r1 A[a,a]=1; r2 (|{a,b}|=2) A[a,b]=A[b,b]=.5; r3 (|{a,n}|=2) A[n,a]=A[n,n]=.5  -> 1+0+.5+.25+.5
    # correct: 1 + (.5+0+0+.5) + 1 = 3;  inactive ("n" only): .5*.5 + (.5+.25)/3 + 1 = 1.5  -> (2.25-1.5)/(3-1.5)
    a = modified_confusion_matrix(TOY_LABELS, TOY_OUTPUTS)
    expected_a = np.array([[1.0, 0.0, 0.5], [0.5, 0.5, 0.0], [0.0, 0.0, 0.5]])
    np.testing.assert_allclose(a, expected_a, rtol=0, atol=1e-15)
    score = challenge_metric(TOY_LABELS, TOY_OUTPUTS, TOY_KEYS, weights=TOY_W, normal_class="n")
    assert score == pytest.approx(0.5, abs=1e-12)
    np.testing.assert_allclose(official.modified_confusion_matrix(TOY_LABELS, TOY_OUTPUTS), expected_a, atol=1e-15)
    assert official.challenge_metric(TOY_W, TOY_LABELS, TOY_OUTPUTS, 1) == pytest.approx(0.5, abs=1e-12)


def test_perfect_is_one_and_inactive_is_zero():
    rng = np.random.default_rng(0)
    labels = _random_labels(rng, 300)
    assert challenge_metric(labels, labels, KEYS) == pytest.approx(1.0, abs=1e-12)
    inactive = np.zeros_like(labels)
    inactive[:, NSR] = True
    assert challenge_metric(labels, inactive, KEYS) == pytest.approx(0.0, abs=1e-12)
    # Outputting nothing at all is worse than the inactive classifier on data with abnormal records.
    assert challenge_metric(labels, np.zeros_like(labels), KEYS) < 0


def test_degenerate_equal_scores_give_zero_like_the_official_code(official):
    labels = np.zeros((5, 26), dtype=bool)
    labels[:, NSR] = True  # every record is sinus rhythm only: correct == inactive
    outputs = np.ones_like(labels)
    assert challenge_metric(labels, outputs, KEYS) == 0.0
    assert official.challenge_metric(WEIGHTS, labels, outputs, NSR) == 0.0


def test_equivalent_codes_name_the_same_class():
    rng = np.random.default_rng(1)
    labels = _random_labels(rng, 200)
    outputs = _random_labels(rng, 200)
    merged = challenge_metric(labels, outputs, KEYS)
    # Either code of an equivalent pair (RBBB 59118001 ~ 713427006, LBBB, PAC, PVC) names the merged class.
    second = [k.split("|")[-1] for k in KEYS]
    first = [k.split("|")[0] for k in KEYS]
    assert challenge_metric(labels, outputs, second) == pytest.approx(merged, abs=1e-12)
    assert challenge_metric(labels, outputs, first) == pytest.approx(merged, abs=1e-12)
    # Column order does not matter, and columns of unscored classes are ignored.
    perm = rng.permutation(26)
    assert challenge_metric(labels[:, perm], outputs[:, perm], [KEYS[p] for p in perm]) == pytest.approx(merged)
    space = cinc2021_all()
    extra = np.zeros((200, len(space) - 26), dtype=bool)
    wide_l = np.hstack([labels, extra | (rng.random(extra.shape) < 0.2)])
    wide_o = np.hstack([outputs, rng.random(extra.shape) < 0.2])
    assert challenge_metric(wide_l, wide_o, space.keys) == pytest.approx(merged, abs=1e-12)


def test_missing_scored_class_or_normal_class_is_an_error():
    labels = np.zeros((3, 25), dtype=bool)
    with pytest.raises(ValueError, match="no column"):
        challenge_metric(labels, labels, KEYS[:25])
    with pytest.raises(ValueError, match="normal class"):
        challenge_metric(TOY_LABELS, TOY_OUTPUTS, TOY_KEYS, weights=TOY_W)  # no "426783006" among a/n/b
    with pytest.raises(ValueError, match="shape"):
        challenge_metric(TOY_LABELS, TOY_OUTPUTS, TOY_KEYS, weights=np.eye(2), normal_class="n")
    with pytest.raises(ValueError, match="0/1"):
        challenge_metric(TOY_LABELS * 2, TOY_OUTPUTS, TOY_KEYS, weights=TOY_W, normal_class="n")


@pytest.mark.parametrize("seed", range(60))
def test_vectorised_equals_official_loops_on_varied_shapes(official, seed: int):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 70))
    k = int(rng.integers(1, 12))
    labels = rng.random((n, k)) < rng.uniform(0.0, 0.6)
    outputs = rng.random((n, k)) < rng.uniform(0.0, 0.6)
    weights = rng.random((k, k))
    weights[rng.random((k, k)) < 0.1] = np.nan  # nansum semantics
    normal = int(rng.integers(0, k))
    keys = [f"c{j}" for j in range(k)]
    vec = challenge_metric(labels, outputs, keys, weights=weights, normal_class=f"c{normal}")
    ref = official.challenge_metric(weights, labels, outputs, normal)
    assert abs(vec - ref) <= 1e-9
    np.testing.assert_allclose(
        modified_confusion_matrix(labels, outputs), official.modified_confusion_matrix(labels, outputs), atol=1e-12
    )
    # Per-record decomposition used by the bootstrap sums to the same three scores.
    obs, cor, ina = challenge_record_scores(labels, outputs, weights, normal)
    if cor.sum() != ina.sum():
        assert (obs.sum() - ina.sum()) / (cor.sum() - ina.sum()) == pytest.approx(ref, abs=1e-9)
    assert official_accuracy(labels, outputs) == official.accuracy(labels, outputs)
    f_vec, fk_vec = official_f_measure(labels, outputs)
    f_ref, fk_ref = official.f_measure(labels, outputs)
    np.testing.assert_allclose(fk_vec, fk_ref, atol=1e-12, equal_nan=True)
    assert (np.isnan(f_vec) and np.isnan(f_ref)) or abs(f_vec - f_ref) <= 1e-12
    scores = rng.random((n, k)).round(int(rng.integers(1, 4)))  # rounding makes ties
    a_vec = official_auc(labels, scores)
    a_ref = official.auc(labels, scores)
    for x, y in zip(a_vec[:2], a_ref[:2], strict=True):
        assert (np.isnan(x) and np.isnan(y)) or abs(x - y) <= 1e-9
    np.testing.assert_allclose(a_vec[2], a_ref[2], atol=1e-9, equal_nan=True)
    np.testing.assert_allclose(a_vec[3], a_ref[3], atol=1e-9, equal_nan=True)


UNSCORED = ["251170000", "164861001", "10370003x"]  # codes of no scored class (the last is no code at all)


@pytest.mark.parametrize("seed", range(5))
def test_challenge_metric_equals_official_on_code_sets(official, seed: int):
    """Records as SNOMED code sets (either code of an equivalent pair, unscored codes), scored by the independent
    statement with the official weights.csv, vs ``challenge_metric`` on a matrix whose columns are spelled and
    ordered at random."""
    rng = np.random.default_rng(100 + seed)
    classes = [k.split("|") for k in KEYS]

    def code_sets(p: float) -> list[set[str]]:
        rows = []
        for _ in range(150):
            on = np.flatnonzero(rng.random(26) < p)
            codes = {str(rng.choice(classes[j])) for j in on} | {str(c) for c in UNSCORED if rng.random() < 0.2}
            if rng.random() < 0.4:
                codes.add("426783006")
            rows.append(codes)
        return rows

    label_codes, output_codes = code_sets(0.1), code_sets(0.12)
    expected = official.challenge_metric_of_codes(label_codes, output_codes)
    # ecgscale side: one column per scored class (random spelling: first code, second code or "a|b"), plus
    # unscored columns, in random order.
    # A column is on when the record has any code of its class, whichever code names the column.
    spelled = [str(rng.choice([c[0], c[-1], "|".join(c)])) for c in classes]
    columns = [(s, set(c)) for s, c in zip(spelled, classes, strict=True)] + [(u, {u}) for u in UNSCORED]
    order = rng.permutation(len(columns))
    keys = [columns[o][0] for o in order]
    lab = np.array([[bool(codes & columns[o][1]) for o in order] for codes in label_codes])
    out = np.array([[bool(codes & columns[o][1]) for o in order] for codes in output_codes])
    assert challenge_metric(lab, out, keys) == pytest.approx(expected, abs=1e-12)
    # The same records in weights.csv order: the plain-matrix statement agrees too.
    reference_classes, _, w = official.official_weights()
    ref_lab = official.encode(label_codes, reference_classes)
    ref_out = official.encode(output_codes, reference_classes)
    assert official.challenge_metric(w, ref_lab, ref_out, NSR) == expected
    assert challenge_metric(ref_lab, ref_out, KEYS) == pytest.approx(expected, abs=1e-12)
    assert -1.0 < expected < 0.9  # a noisy classifier: neither perfect nor degenerate


def test_official_auc_hand_example_and_sklearn():
    y = np.array([[1], [0], [1], [0]], dtype=bool)
    s = np.array([[0.9], [0.8], [0.8], [0.1]])
    auroc, auprc, _, _ = official_auc(y, s)
    assert auroc == pytest.approx(3.5 / 4)  # 0.9 beats both negatives, 0.8 ties one (½) and beats one
    assert auprc == pytest.approx(0.5 * 1.0 + 0.5 * 2 / 3)
    rng = np.random.default_rng(3)
    labels = rng.random((500, 6)) < 0.2
    scores = (labels * 0.3 + rng.random((500, 6))).round(2)
    _, _, auroc_k, auprc_k = official_auc(labels, scores)
    for j in range(6):
        assert auroc_k[j] == pytest.approx(roc_auc_score(labels[:, j], scores[:, j]), abs=1e-12)
        assert auprc_k[j] == pytest.approx(average_precision_score(labels[:, j], scores[:, j]), abs=1e-12)


def test_official_auc_undefined_classes(official):
    labels = np.array([[0, 1], [0, 1], [0, 1]], dtype=bool)  # class 0: no positive; class 1: no negative
    scores = np.array([[0.1, 0.2], [0.5, 0.4], [0.9, 0.3]])
    macro_auroc, macro_auprc, auroc_k, auprc_k = official_auc(labels, scores)
    assert np.isnan(auroc_k).all()
    assert np.isnan(auprc_k[0]) and auprc_k[1] == pytest.approx(1.0)
    assert np.isnan(macro_auroc) and macro_auprc == pytest.approx(1.0)
    ref = official.auc(labels, scores)
    np.testing.assert_allclose(auroc_k, ref[2], equal_nan=True)
    np.testing.assert_allclose(auprc_k, ref[3], equal_nan=True)


def test_score_challenge_matches_parts_and_space_order(official):
    rng = np.random.default_rng(4)
    labels = _random_labels(rng, 250)
    probs = np.clip(labels * 0.4 + rng.random(labels.shape) * 0.7, 0, 1).round(2)
    binary = probs >= 0.5
    s = score_challenge(labels, binary, probs, KEYS)
    assert s.class_keys == tuple(KEYS) == tuple(cinc2021_scored().keys)
    assert s.challenge_metric == pytest.approx(official.challenge_metric(WEIGHTS, labels, binary, NSR), abs=1e-9)
    assert s.accuracy == official.accuracy(labels, binary)
    ref_auroc, ref_auprc, ref_auroc_k, ref_auprc_k = official.auc(labels, probs)
    assert s.auroc == pytest.approx(ref_auroc, abs=1e-9) and s.auprc == pytest.approx(ref_auprc, abs=1e-9)
    np.testing.assert_allclose(s.auroc_classes, ref_auroc_k, atol=1e-9, equal_nan=True)
    np.testing.assert_allclose(s.auprc_classes, ref_auprc_k, atol=1e-9, equal_nan=True)
    ref_f, ref_f_k = official.f_measure(labels, binary)
    assert s.f_measure == pytest.approx(ref_f, abs=1e-12)
    np.testing.assert_allclose(s.f_measure_classes, ref_f_k, atol=1e-12, equal_nan=True)
    d = s.to_dict()
    assert set(d) >= {"auroc", "auprc", "accuracy", "f_measure", "challenge_metric", "classes"}
    assert len(d["classes"]) == 26
    cols, w, keys, normal = resolve_challenge_classes(list(reversed(KEYS)))
    assert list(cols) == list(range(25, -1, -1)) and keys[normal] == "426783006" and w.shape == (26, 26)
