"""``ecgscale synth --profile cinc2021``: the CinC 2021 training set's shape (records per source group, sampling
rates, durations, label prevalences from the challenge's table), at full size in the plan and at a small fraction
on disk."""

from __future__ import annotations

import csv
import json
from collections import Counter
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ecgscale.cli import app
from ecgscale.errors import ConfigError
from ecgscale.synth.generate import PARAMS_FILE, _source_plan
from ecgscale.synth.record import sample_duration
from ecgscale.synth.sources import CINC2021_GROUPS, cinc2021_sources, profile_records, profile_sources

#: As published for the challenge's training set (CPSC = CPSC 2018 + CPSC-Extra).
PUBLISHED = {
    "cinc_cpsc": (6877 + 3453, 500, 6.0, 60.0),
    "cinc_incart": (74, 257, 1800.0, 1800.0),
    "cinc_ptb": (516, 1000, 32.0, 120.0),
    "cinc_ptbxl": (21837, 500, 10.0, 10.0),
    "cinc_georgia": (10344, 500, 10.0, 10.0),
    "cinc_chapman": (10247, 500, 10.0, 10.0),
    "cinc_ningbo": (34905, 500, 10.0, 10.0),
}


def test_full_size_plan_has_the_published_records_per_source() -> None:
    profiles = profile_sources("cinc2021")
    n = profile_records("cinc2021")
    assert n == 88253
    plan = _source_plan(0, n, profiles)
    got = {profiles[i].name: int(c) for i, c in zip(*np.unique(plan, return_counts=True), strict=True)}
    assert got == {k: v[0] for k, v in PUBLISHED.items()}
    for p in profiles:
        _, fs, lo, hi = PUBLISHED[p.name]
        assert p.fs == fs and (p.duration_s[0], p.duration_s[2]) == (lo, hi), p.name
        d = [sample_duration(np.random.default_rng(s), p) for s in range(200)]
        assert lo <= min(d) and max(d) <= hi, p.name


def test_finding_probabilities_are_the_published_prevalences() -> None:
    text = resources.files("ecgscale.data").joinpath("resources", "cinc2021", "dx_mapping_scored.csv")
    rows = {r["Abbreviation"]: r for r in csv.DictReader(text.read_text(encoding="utf-8").splitlines())}
    by_name = {p.name: p for p in cinc2021_sources()}
    groups = {g.name: g for g in CINC2021_GROUPS}
    for name, finding, classes in [
        ("cinc_ningbo", "afl", ("AFL",)),
        ("cinc_cpsc", "af", ("AF",)),
        ("cinc_cpsc", "rbbb", ("RBBB", "CRBBB")),
        ("cinc_ptbxl", "lad", ("LAD",)),
        ("cinc_georgia", "long_qt", ("LQT",)),
        ("cinc_chapman", "brady", ("SB", "Brady")),
    ]:
        g = groups[name]
        count = sum(int(rows[c][col]) for c in classes for col in g.columns)
        assert by_name[name].p(finding) == pytest.approx(count / g.records, abs=1e-4), (name, finding)
    assert by_name["cinc_ningbo"].p("af") == 0.0 and by_name["cinc_ptbxl"].p("af") > 0.05
    for p in by_name.values():  # exclusive findings never exceed certainty
        assert p.p("af") + p.p("afl") + p.p("paced") <= 1.0
        assert p.p("brady") + p.p("tachy") <= 1.0 + 1e-9


def test_a_small_fraction_on_disk_keeps_the_shares_rates_and_durations(tmp_path: Path) -> None:
    out = tmp_path / "c21"
    res = CliRunner().invoke(
        app,
        ["synth", "--out", str(out), "--profile", "cinc2021", "--fraction", "0.0015", "--seed", "1", "--no-progress"],
    )
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in (out / PARAMS_FILE).read_text().splitlines()]
    n = round(88253 * 0.0015)
    assert len(rows) == n
    counts = Counter(r["source"] for r in rows)
    for name, (records, fs, lo, hi) in PUBLISHED.items():
        assert abs(counts.get(name, 0) - n * records / 88253) < 1.0, (name, counts)
        for r in (r for r in rows if r["source"] == name):
            assert r["fs"] == fs
            assert lo - 1 / fs <= r["n_samples"] / fs <= hi + 1 / fs, (name, r["n_samples"])
            header = (out / (r["path"] + ".hea")).read_text().split("\n", 1)[0].split()
            assert int(header[2]) == fs and int(header[3]) == r["n_samples"]
    assert counts["cinc_ningbo"] > counts["cinc_ptbxl"] > counts["cinc_georgia"] > counts["cinc_ptb"]


def test_profile_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="fraction"):
        profile_records("cinc2021", 0.0)
    with pytest.raises(ConfigError, match="unknown profile"):
        profile_sources("cinc2020")
    runner = CliRunner()
    res = runner.invoke(app, ["synth", "--out", str(tmp_path / "a"), "--fraction", "0.1"])
    assert isinstance(res.exception, ConfigError) and "--profile" in str(res.exception)
    res = runner.invoke(
        app, ["synth", "--out", str(tmp_path / "b"), "--profile", "cinc2021", "--sources", "ptbxl_like"]
    )
    assert isinstance(res.exception, ConfigError) and "not both" in str(res.exception)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
