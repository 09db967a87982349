"""Lead sets: official sets, explicit lists, aliases, selection by name, preprocessing of a subset."""

from __future__ import annotations

import numpy as np
import pytest

from ecgscale.data.leads import LEAD_SETS, LeadSet, canonical_lead, parse_leads
from ecgscale.data.readers.base import normalize_leads
from ecgscale.data.records import STANDARD_LEADS, EcgRecord
from ecgscale.data.transforms import PreprocessConfig, preprocess
from ecgscale.errors import ConfigError, RecordError


def test_official_sets_are_the_challenge_sets():
    assert parse_leads("12").names == STANDARD_LEADS and parse_leads(None).is_full
    assert parse_leads("6").names == ("I", "II", "III", "aVR", "aVL", "aVF")
    assert parse_leads(4).names == ("I", "II", "III", "V2")
    assert parse_leads("3").names == ("I", "II", "V2")
    assert parse_leads("2").names == ("I", "II")
    for tag in LEAD_SETS:
        lead_set = parse_leads(tag)
        assert lead_set.tag == tag and len(lead_set) == int(tag)
        assert parse_leads(lead_set.tag) == lead_set


def test_explicit_lists_are_canonical_case_insensitive_with_aliases():
    assert parse_leads("v2, dii ,I").names == ("I", "II", "V2")
    assert parse_leads("V2,DII,I").tag == "3"  # the same leads as the official 3-lead set
    assert parse_leads(["AVR", "avl", "DIII"]).names == ("III", "aVR", "aVL")
    odd = parse_leads("V1,I")
    assert odd.tag == "I+V1" and odd.indices == (0, 6)
    assert parse_leads(odd.tag) == odd  # the tag round-trips (grid keys use it)
    assert parse_leads(odd.to_config()) == odd and parse_leads("12").to_config() is None
    assert canonical_lead("avF") == "aVF" and canonical_lead("MLII") is None


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("I,II,V7", "'V7'"),
        ("I,MLII", "MLII is modified lead II"),
        ("5", "official lead sets are 12, 6, 4, 3 and 2"),
        ("I,,II", "empty"),
        ("I,DI", "appears twice"),
    ],
)
def test_bad_lead_specs_name_the_bad_lead(spec, needle):
    with pytest.raises(ConfigError, match="leads") as err:
        parse_leads(spec)
    assert needle in str(err.value)


def test_lead_set_rejects_unsorted_or_unknown_names():
    with pytest.raises(ConfigError):
        LeadSet(("II", "I"))
    with pytest.raises(ConfigError):
        LeadSet(("I", "X"))


def test_select_reorders_by_name_and_names_missing_leads():
    sig = np.arange(4 * 5, dtype=np.float32).reshape(4, 5)
    names = ("V2", "avr", "DII", "I")
    got = parse_leads("I,II,V2").select(sig, names, path="rec.hea")
    np.testing.assert_array_equal(got, sig[[3, 2, 0]])
    with pytest.raises(RecordError) as err:
        parse_leads("6").select(sig, names, path="rec.hea")
    assert err.value.reason == "missing_leads"
    text = str(err.value)
    assert text.startswith("rec.hea") and "missing leads III, aVL, aVF" in text and "V2, avr, DII, I" in text


def test_readers_accept_aliases_but_not_mlii():
    assert normalize_leads(["DI", "dii", "AVR"], "x.hea") == ("I", "II", "aVR")
    with pytest.raises(RecordError, match="MLII"):
        normalize_leads(["MLII", "V1"], "x.hea")


def test_preprocessing_a_subset_gives_the_same_rows_as_the_full_record():
    """Why one 12-lead cache serves every lead set: the pipeline never mixes leads."""
    rng = np.random.default_rng(0)
    sig = rng.standard_normal((12, 5000)).astype(np.float32)
    cfg = PreprocessConfig(fs=100, window_s=5.0, max_store_s=10.0)
    full = preprocess(EcgRecord("r", sig, 500.0, STANDARD_LEADS), cfg)
    order = [7, 1, 0]  # V2, II, I: another order in the file
    sub = EcgRecord("r", sig[order], 500.0, tuple(STANDARD_LEADS[i] for i in order))
    got = preprocess(sub, cfg, leads="3")
    assert got.shape == (3, full.shape[1])
    np.testing.assert_allclose(got, full[[0, 1, 7]], rtol=0, atol=1e-5)
    with pytest.raises(RecordError, match="missing leads"):
        preprocess(sub, cfg)  # all 12 needed by default
