"""Pipeline version 2: resampling and band-pass fused into one FFT; its quality against version 1 and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal as sps

from ecgscale.data import transforms
from ecgscale.data.transforms import PreprocessConfig, preprocess_signal, resample_ratio

RAW = PreprocessConfig(standardize=False, dtype="float32")  # 250 Hz, 0.5-45 Hz, order 2


def _tone(freq: float, fs: float, seconds: float = 10.0, amp: float = 1.0, phase: float = 0.3) -> np.ndarray:
    t = np.arange(round(fs * seconds)) / fs
    return amp * np.sin(2 * np.pi * freq * t + phase)


def _amplitude(x: np.ndarray, freq: float, fs: float) -> float:
    """Amplitude of the ``freq`` component by least squares on sin/cos (no FFT leakage questions)."""
    t = np.arange(x.shape[-1]) / fs
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t), np.ones_like(t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, x, rcond=None)
    return float(np.hypot(coef[0], coef[1]))


def _ecg_like(fs: float, seconds: float, seed: int) -> np.ndarray:
    """Spiky beats, a slow wander, an offset and noise on 12 leads: broadband like a real ECG."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(fs * seconds)) / fs
    beats = np.sin(np.pi * rng.uniform(0.9, 1.6) * t) ** 40
    wander = 0.4 * np.sin(2 * np.pi * 0.15 * t + rng.uniform(0, 6))
    gains = rng.uniform(0.3, 1.5, (12, 1))
    x = gains * beats + wander + rng.uniform(-1, 1, (12, 1)) + 0.02 * rng.standard_normal((12, t.size))
    return x.astype(np.float32)


def _version1(x: np.ndarray, fs: float, config: PreprocessConfig) -> np.ndarray:
    """Pipeline version 1 (float64 ``resample_poly`` with scipy's default filter, then ``sosfiltfilt``)."""
    up, down = resample_ratio(fs, config.fs)
    y = sps.resample_poly(x.astype(np.float64), up, down, axis=1, padtype="line") if up != down else x
    sos, zi, padlen = transforms._bandpass(*config.bandpass, config.filter_order, config.fs)
    return transforms._sosfiltfilt(np.asarray(y, dtype=np.float64), sos, zi, padlen)


@pytest.mark.parametrize("fs_in", [500.0, 250.0, 1000.0, 257.0])
def test_baseline_and_hum_removed_and_tone_passes(fs_in):
    """The filter-quality requirement: 0.2 Hz baseline and 60 Hz hum go, a 10 Hz tone stays; no worse than v1."""
    signal = np.tile(_tone(0.2, fs_in, amp=2.0) + 3.0 + _tone(60.0, fs_in, amp=0.5) + _tone(10.0, fs_in), (12, 1))
    signal = signal.astype(np.float32)
    residuals = {}
    for version, out in (("v2", preprocess_signal(signal, fs_in, RAW)), ("v1", _version1(signal, fs_in, RAW))):
        core = out[0, 250:-250]  # 1 s from each edge
        assert _amplitude(core, 10.0, 250.0) == pytest.approx(1.0, abs=0.01)
        residuals[version] = (
            _amplitude(core, 0.2, 250.0),
            _amplitude(core, 60.0, 250.0),
            abs(core.mean()),
            np.abs(core - _tone(10.0, 250.0)[250:-250]).max(),
        )
    wander, hum, offset, error = residuals["v2"]
    assert wander < 0.035 * 2.0  # |H|^2 = 0.024 at 0.2 Hz; an 8 s stretch of a 5 s period leaks a little more
    assert hum < 0.2 * 0.5  # |H|^2 = 0.17 at 60 Hz (-15 dB)
    assert offset < 0.01
    assert error < 0.25  # all that is left besides the 10 Hz tone (mostly the hum)
    for k in (0, 1, 3):  # wander, hum, what is left (the mean is within 0.01 either way)
        assert residuals["v2"][k] <= 1.05 * residuals["v1"][k]


@pytest.mark.parametrize("freq", [0.3, 0.5, 1.0, 5.0, 25.0, 45.0, 50.0, 70.0, 100.0])
def test_response_is_the_squared_butterworth_magnitude(freq):
    """Steady-state gain = |H(f)|², the zero-phase response sosfiltfilt of the same Butterworth applies."""
    out = preprocess_signal(np.tile(_tone(freq, 500.0, seconds=20.0), (12, 1)).astype(np.float32), 500.0, RAW)
    sos = sps.butter(2, (0.5, 45.0), btype="bandpass", fs=250.0, output="sos")
    expected = float(np.abs(sps.sosfreqz(sos, worN=[freq], fs=250.0)[1][0]) ** 2)
    assert _amplitude(out[3, 750:-750], freq, 250.0) == pytest.approx(expected, abs=2e-3)


@pytest.mark.parametrize("fs_in", [500.0, 1000.0, 257.0])
def test_interior_matches_pipeline_version1(fs_in):
    x = _ecg_like(fs_in, 15.0, seed=int(fs_in))
    new = preprocess_signal(x, fs_in, RAW)
    old = _version1(x, fs_in, RAW)
    assert new.shape == old.shape
    sd = old.std(axis=1, keepdims=True)
    assert (np.abs(new - old) / sd)[:, 750:-750].max() < 0.01  # 3 s from the edges: the resamplers' filters differ


@pytest.mark.parametrize("fs_in", [500.0, 257.0])
def test_edge_transients_smaller_than_version1(fs_in):
    """Near its edges a record's output depends on how the filter guesses the unseen signal (padding).

    Each pipeline is compared with its own output on a longer stretch of the same signal, where those samples
    are interior; averaged over excerpts because a single edge depends on where it falls in a beat.
    """
    x = _ecg_like(fs_in, 60.0, seed=7)
    n = round(8 * fs_in)
    errors: dict[str, list[np.ndarray]] = {"v2": [], "v1": []}
    runs = {"v2": lambda z: preprocess_signal(z, fs_in, RAW), "v1": lambda z: _version1(z, fs_in, RAW)}
    for version, run in runs.items():
        full = run(x)
        for k in range(10):
            a = round((3 + 5.1 * k) * fs_in)
            a -= a % 257 if fs_in == 257.0 else a % 2  # on the output grid of the full record
            b = a + n
            out = run(x[:, a:b])
            errors[version].append(np.abs(out - full[:, a * 250 // round(fs_in) :][:, : out.shape[1]]).mean(axis=0))
    sd = x.std()
    new, old = np.mean(errors["v2"], axis=0) / sd, np.mean(errors["v1"], axis=0) / sd
    both_ends = lambda e, lo, hi: np.r_[e[lo:hi], e[len(e) - hi : len(e) - lo]].mean()  # noqa: E731
    for lo, hi in ((0, 125), (125, 500)):  # first half second, then up to 2 s
        assert both_ends(new, lo, hi) < both_ends(old, lo, hi)
    assert new[500:-500].max() < 2e-3  # beyond 2 s from the edges: interior


@pytest.mark.parametrize("fs_in", [500.0, 257.0, 1000.0, 100.0])
def test_fused_core_equals_scipy_resample_with_the_band_pass_window(fs_in):
    """``_fft_resample_filter`` is scipy.signal.resample of the padded, detrended signal with |H|² as window."""
    x = _ecg_like(fs_in, 7.3, seed=1)
    n = x.shape[1]
    up, down = resample_ratio(fs_in, 250.0)
    left, n_fft, n_out, start = transforms._fft_lengths(n, int(np.ceil(fs_in)), up, down)
    assert n_fft % down == 0 and n_out * down == n_fft * up and left % down == 0
    padded = np.pad(x.astype(np.float64), ((0, 0), (left, n_fft - n - left)), mode="reflect")  # mirror image
    padded -= padded[:, :1] + (padded[:, -1:] - padded[:, :1]) * np.arange(n_fft) / (n_fft - 1)
    sos = sps.butter(2, (0.5, 45.0), btype="bandpass", fs=250.0, output="sos")
    freqs = np.abs(np.fft.fftfreq(n_fft, 1 / fs_in))
    window = np.abs(sps.sosfreqz(sos, worN=np.minimum(freqs, 125.0), fs=250.0)[1]) ** 2
    expected = sps.resample(padded, n_out, axis=1, window=window)[:, start : start + -(-n * up // down)]
    got = transforms._fft_resample_filter(x, fs_in, RAW)
    np.testing.assert_allclose(got, expected, atol=2e-5 * np.abs(expected).max())


@pytest.mark.parametrize(("fs_in", "freq"), [(257.0, 3.1), (1000.0, 7.0), (100.0, 2.3), (500.0, 11.0)])
def test_output_on_the_resample_poly_grid(fs_in, freq):
    """Output sample j is the input at time j * down / up (no band-pass: the resampled signal itself)."""
    cfg = PreprocessConfig(bandpass=None, standardize=False, dtype="float32")
    x = np.tile(_tone(freq, fs_in, seconds=9.7) + 0.5, (12, 1)).astype(np.float32)
    out = preprocess_signal(x, fs_in, cfg)
    up, down = resample_ratio(fs_in, 250.0)
    assert out.shape[1] == -(-x.shape[1] * up // down)
    expected = _tone(freq, 250.0, seconds=out.shape[1] / 250.0) + 0.5
    np.testing.assert_allclose(out[5, 25:-25], expected[25:-25], atol=2e-3)
    np.testing.assert_allclose(out[5], expected, atol=3e-2)  # edges too: odd padding + line removal


@pytest.mark.parametrize("n", [2, 3, 17, 400, 1000])
def test_records_shorter_than_the_padding(n):
    x = _ecg_like(500.0, 3.0, seed=n)[:, :n]
    for cfg in (RAW, PreprocessConfig(bandpass=None, standardize=False, dtype="float32"), PreprocessConfig()):
        out = preprocess_signal(x, 500.0, cfg)
        assert out.shape == (12, -(-n // 2)) and out.dtype == np.float32 and np.isfinite(out).all()
    ramp = np.tile(np.linspace(-1.0, 1.0, n, dtype=np.float32), (12, 1))
    plain = preprocess_signal(ramp, 500.0, PreprocessConfig(bandpass=None, standardize=False, dtype="float32"))
    np.testing.assert_allclose(plain[0], ramp[0, ::2], atol=1e-4)  # a line is resampled exactly


def test_preprocess_does_not_change_or_return_the_input():
    x = _ecg_like(250.0, 4.0, seed=3)
    before = x.copy()
    for cfg in (PreprocessConfig(bandpass=None, standardize=False, dtype="float32"), RAW, PreprocessConfig()):
        out = preprocess_signal(x, 250.0, cfg)
        assert not np.shares_memory(out, x)
    np.testing.assert_array_equal(x, before)


def test_poly_resampler_is_resample_poly_then_sosfiltfilt_and_close_to_fft():
    """``resampler="poly"`` is the textbook scipy route; away from the edges it agrees with the FFT path."""
    import scipy.signal as sps

    from ecgscale.data.transforms import PreprocessConfig, preprocess_signal

    rng = np.random.default_rng(3)
    t = np.arange(5000) / 500.0
    x = (np.sin(2 * np.pi * 7 * t) + 0.3 * rng.standard_normal((12, t.size))).astype(np.float32)
    poly = PreprocessConfig(fs=250, resampler="poly", standardize=False)
    got = preprocess_signal(x, 500.0, poly)
    sos = sps.butter(2, (0.5, 45.0), btype="bandpass", fs=250.0, output="sos")
    ref = sps.sosfiltfilt(sos, sps.resample_poly(x.astype(np.float64), 1, 2, axis=1, padtype="line"), axis=1)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    fft = preprocess_signal(x, 500.0, PreprocessConfig(fs=250, standardize=False))
    mid = slice(500, -500)
    assert np.abs(fft[:, mid] - got[:, mid]).max() < 0.05 * got[:, mid].std()
    assert poly.hash() != PreprocessConfig(fs=250, standardize=False).hash()
