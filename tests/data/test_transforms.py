"""Preprocessing: lead order, resampling, filtering, standardisation, capping, windows, config hashing."""

from __future__ import annotations

import numpy as np
import pytest

from ecgscale.data import transforms
from ecgscale.data.records import STANDARD_LEADS, EcgRecord
from ecgscale.data.transforms import PreprocessConfig, preprocess, resample_ratio, window
from ecgscale.errors import ConfigError, RecordError


def _sines(fs: float, seconds: float, freqs: list[float], *, offset: float = 0.0) -> np.ndarray:
    t = np.arange(round(fs * seconds)) / fs
    return np.stack([np.sin(2 * np.pi * f * t) + offset for f in freqs]).astype(np.float32)


def _dominant_hz(x: np.ndarray, fs: float) -> float:
    spec = np.abs(np.fft.rfft(x))
    return float(np.fft.rfftfreq(len(x), 1 / fs)[int(np.argmax(spec))])


def _record(signal: np.ndarray, fs: float, leads=STANDARD_LEADS, rid: str = "r1") -> EcgRecord:
    return EcgRecord(record_id=rid, signal=signal, fs=fs, lead_names=tuple(leads), path=None)


FREQS = [2.0 + 1.5 * i for i in range(12)]  # a distinct frequency per lead identifies it after reordering


# ------------------------------------------------------------------------------------------------ config
def test_config_roundtrip_and_hash_is_stable():
    cfg = PreprocessConfig(fs=100, window_s=5, max_store_s=10, bandpass=[0.5, 40], dtype="float32")
    assert cfg.bandpass == (0.5, 40.0)
    again = PreprocessConfig.from_dict(cfg.to_dict())
    assert again == cfg and again.hash() == cfg.hash()
    assert len(cfg.hash()) == 16
    assert (
        PreprocessConfig(fs=100.0, window_s=5.0, max_store_s=10.0, bandpass=(0.5, 40.0), dtype="float32").hash()
        == cfg.hash()
    )
    assert PreprocessConfig().hash() != PreprocessConfig(bandpass=None).hash()
    assert PreprocessConfig().hash() != PreprocessConfig(dtype="float32").hash()
    assert PreprocessConfig(bandpass=None).to_dict()["bandpass"] is None


def test_hash_changes_with_pipeline_version(monkeypatch):
    before = PreprocessConfig().hash()
    monkeypatch.setattr(transforms, "PIPELINE_VERSION", transforms.PIPELINE_VERSION + 1)
    assert PreprocessConfig().hash() != before


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"fs": 0}, "fs"),
        ({"window_s": -1}, "window_s"),
        ({"max_store_s": 5.0, "window_s": 10.0}, "max_store_s"),
        ({"fs": 80, "bandpass": (0.5, 45.0)}, "bandpass"),
        ({"bandpass": (40.0, 1.0)}, "bandpass"),
        ({"bandpass": "x"}, "bandpass"),
        ({"dtype": "int8"}, "dtype"),
        ({"filter_order": 0}, "filter_order"),
    ],
)
def test_config_rejects_bad_values(kwargs, key):
    with pytest.raises(ConfigError) as err:
        PreprocessConfig(**kwargs)
    assert err.value.key == key


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(ConfigError, match="unknown preprocessing key"):
        PreprocessConfig.from_dict({"fs": 250, "sampling": 3})


@pytest.mark.parametrize(
    ("fs_in", "fs_out", "expected"),
    [(500, 250, (1, 2)), (257, 250, (250, 257)), (1000, 250, (1, 4)), (100, 250, (5, 2))],
)
def test_resample_ratio(fs_in, fs_out, expected):
    assert resample_ratio(fs_in, fs_out) == expected


# ------------------------------------------------------------------------------------------------ pipeline
@pytest.mark.parametrize("fs_in", [500.0, 257.0, 1000.0])
def test_resampling_keeps_frequencies_and_length(fs_in):
    cfg = PreprocessConfig(fs=250, window_s=10, bandpass=None, standardize=False, dtype="float32")
    x = _sines(fs_in, 10.0, FREQS)
    out = preprocess(_record(x, fs_in), cfg)
    assert out.dtype == np.float32 and out.shape == (12, round(10.0 * fs_in * 250 / fs_in))
    for lead in range(12):
        assert _dominant_hz(out[lead], 250) == pytest.approx(FREQS[lead], abs=0.11)
    # amplitude preserved away from the edges
    assert np.abs(out[0, 250:-250]).max() == pytest.approx(1.0, abs=0.02)


def test_resampling_is_anti_aliased():
    # 200 Hz at 1000 Hz input would alias to 50 Hz at 250 Hz without the polyphase low-pass filter.
    cfg = PreprocessConfig(fs=250, bandpass=None, standardize=False, dtype="float32")
    x = _sines(1000.0, 10.0, [200.0] * 12)
    out = preprocess(_record(x, 1000.0), cfg)
    assert np.abs(out[:, 100:-100]).max() < 0.02


def test_leads_reordered_case_insensitively_and_extra_leads_dropped():
    cfg = PreprocessConfig(fs=250, bandpass=None, standardize=False, dtype="float32")
    order = np.random.default_rng(0).permutation(12)
    x = _sines(250.0, 10.0, [FREQS[i] for i in order] + [60.0])
    names = [STANDARD_LEADS[i].upper() for i in order] + ["X"]
    out = preprocess(_record(x, 250.0, names), cfg)
    assert out.shape == (12, 2500)
    for lead in range(12):
        assert _dominant_hz(out[lead], 250) == pytest.approx(FREQS[lead], abs=0.11)


def test_missing_leads_raise_naming_them():
    x = _sines(500.0, 10.0, FREQS[:8])
    rec = _record(x, 500.0, ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6"))
    with pytest.raises(RecordError) as err:
        preprocess(rec, PreprocessConfig())
    assert err.value.reason == "missing_leads"
    for lead in ("III", "aVR", "aVL", "aVF"):
        assert lead in str(err.value)


def test_non_finite_and_empty_records_raise():
    x = _sines(500.0, 10.0, FREQS)
    x[3, 100] = np.nan
    with pytest.raises(RecordError) as err:
        preprocess(_record(x, 500.0), PreprocessConfig())
    assert err.value.reason == "non_finite"
    with pytest.raises(RecordError) as err:
        preprocess(_record(np.zeros((12, 1), np.float32), 500.0), PreprocessConfig())
    assert err.value.reason == "empty"


def test_bandpass_removes_baseline_wander_and_offset():
    cfg = PreprocessConfig(fs=250, bandpass=(0.5, 45.0), standardize=False, dtype="float32")
    t = np.arange(5000) / 500.0
    wander = 3.0 * np.sin(2 * np.pi * 0.05 * t) + 5.0
    beat = 0.5 * np.sin(2 * np.pi * 10 * t)
    x = np.tile((wander + beat).astype(np.float32), (12, 1))
    out = preprocess(_record(x, 500.0), cfg)
    core = out[0, 250:-250]
    assert abs(core.mean()) < 0.05
    assert np.abs(core - 0.5 * np.sin(2 * np.pi * 10 * t[::2][250:-250])).max() < 0.1


def test_standardisation_and_flat_leads():
    cfg = PreprocessConfig(dtype="float32")
    x = 3.0 * _sines(500.0, 10.0, FREQS, offset=2.0)
    x[5] = 0.0  # flat lead (disconnected electrode)
    x[6] = 7.0  # constant lead
    out = preprocess(_record(x, 500.0), cfg)
    assert np.isfinite(out).all()
    assert np.all(out[5] == 0) and np.all(out[6] == 0)
    others = np.delete(out, [5, 6], axis=0)
    np.testing.assert_allclose(others.mean(axis=1), 0, atol=1e-4)
    np.testing.assert_allclose(others.std(axis=1), 1, atol=1e-3)


def test_long_record_capped_to_centre_before_resampling(monkeypatch):
    cfg = PreprocessConfig(fs=250, window_s=10, max_store_s=60, bandpass=None, standardize=False, dtype="float32")
    fs, n = 257.0, 257 * 1800  # 30-minute INCART-like record
    ramp = np.tile(np.linspace(0, 1800, n, dtype=np.float32), (12, 1))  # value = time in s
    # the cut happens before the expensive resampling: the resampler sees the centre minute plus a 1 s margin
    # each side, never the 30 minutes (checked by what it is given, not by how long it takes)
    seen: list[int] = []
    real = transforms._fft_resample_filter

    def spy(x, *args, **kwargs):
        seen.append(x.shape[1])
        return real(x, *args, **kwargs)

    monkeypatch.setattr(transforms, "_fft_resample_filter", spy)
    out = preprocess(_record(ramp, fs), cfg)
    assert seen == [60 * 257 + 2 * 257]
    assert out.shape == (12, 60 * 250)
    # the centre minute of the record: values run from ~870 s to ~930 s (resample_poly's DC gain is 1 ± 1e-4)
    assert out[0, 1000] == pytest.approx(870 + 1000 / 250, rel=2e-4)
    assert out[0, -1000] == pytest.approx(930 - 1000 / 250, rel=2e-4)


def test_short_record_kept_whole():
    cfg = PreprocessConfig(fs=250, window_s=10, dtype="float32")
    out = preprocess(_record(_sines(500.0, 3.0, FREQS), 500.0), cfg)
    assert out.shape == (12, 750)


# ------------------------------------------------------------------------------------------------ window
def test_window_centre_random_and_padding():
    x = np.arange(3 * 100, dtype=np.float32).reshape(3, 100)
    c = window(x, 40)
    np.testing.assert_array_equal(c, x[:, 30:70])
    starts = set()
    for seed in range(20):
        w = window(x, 40, rng=np.random.default_rng(seed))
        start = int(w[0, 0])
        starts.add(start)
        np.testing.assert_array_equal(w, x[:, start : start + 40])
    assert len(starts) > 5 and min(starts) >= 0 and max(starts) <= 60
    same = window(x, 40, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(same, window(x, 40, rng=np.random.default_rng(3)))
    p = window(x, 130, rng=np.random.default_rng(1))
    assert p.shape == (3, 130) and p.dtype == np.float32
    np.testing.assert_array_equal(p[:, :100], x)
    assert np.all(p[:, 100:] == 0)
    np.testing.assert_array_equal(window(x, 100), x)
    with pytest.raises(ConfigError):
        window(x, 0)


def test_one_crop_rule_for_scalars_and_arrays():
    """``crop_starts`` is the rule every crop follows (cache, training, prediction): centre, seeded positions
    ``floor(p * (slack + 1))``, or ``rng`` draws in ``[0, slack]``; a short record starts at 0 and is padded."""
    n = np.array([100, 40, 10, 73])
    np.testing.assert_array_equal(transforms.crop_starts(n, 40), [30, 0, 0, 16])
    p = np.array([0.0, 0.5, 0.999, 0.5])
    np.testing.assert_array_equal(transforms.crop_starts(n, 40, positions=p), [0, 0, 0, 17])
    scalar = [int(transforms.crop_starts(int(k), 40, positions=float(q))) for k, q in zip(n, p, strict=True)]
    assert scalar == [0, 0, 0, 17]
    drawn = transforms.crop_starts(np.full(200, 100), 40, rng=np.random.default_rng(0))
    assert drawn.min() == 0 and drawn.max() == 60
    x = np.arange(2 * 10, dtype=np.float16).reshape(2, 10)
    assert np.shares_memory(transforms.take_window(x, 4, 3), x)
    np.testing.assert_array_equal(transforms.take_window(x, 4, 3), x[:, 3:7])
    padded = transforms.take_window(x, 12)
    assert padded.dtype == np.float16 and np.all(padded[:, 10:] == 0)
    np.testing.assert_array_equal(padded[:, :10], x)
    out = np.zeros((2, 12), dtype=np.float32)
    assert transforms.take_window(x, 12, out=out) is out and np.array_equal(out, padded)


def test_storage_rounding_clips_to_the_float16_range():
    x = np.array([[1e6, -1e6, 0.1]], dtype=np.float32)
    stored = transforms.to_storage(x, "float16")
    assert stored.dtype == np.float16 and np.isfinite(stored).all() and stored[0, 0] == np.finfo(np.float16).max
    assert transforms.to_storage(x, "float32") is x


@pytest.mark.parametrize("n", [2, 5, 40, 2500])
def test_cached_filtfilt_equals_scipy(n):
    from scipy import signal as sps

    sos, zi, padlen = transforms._bandpass(0.5, 45.0, 2, 250.0)
    x = np.random.default_rng(n).standard_normal((12, n)) + 3.0
    expected = sps.sosfiltfilt(sos, x, axis=1, padlen=min(padlen, n - 1))
    np.testing.assert_allclose(transforms._sosfiltfilt(x, sos, zi, padlen), expected, rtol=1e-12, atol=1e-12)
