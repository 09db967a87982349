"""Preprocessing shared by the cache, training and prediction, so a model sees the same signal everywhere.

Pipeline (``preprocess``), in this order:

1. lead order normalised to ``STANDARD_LEADS`` (names matched case-insensitively; missing leads → ``RecordError``);
2. long records cut to their centre ``max_store_s`` (plus a 1 s margin each side, trimmed at the end) *before*
   resampling, so a 30-minute INCART record costs no more than a minute of signal;
3. resampling to ``fs`` and the optional zero-phase Butterworth band-pass in one FFT (``_fft_resample_filter``):
   the spectrum is multiplied by the squared magnitude response of the band-pass (what ``sosfiltfilt`` of that
   filter applies) and cut to the output band (the ideal anti-aliasing filter of ``scipy.signal.resample``);
   the inverse FFT at the output length gives the new rate on the grid ``resample_poly`` would use. Default
   0.5–45 Hz, order 2: 0.5 Hz removes baseline wander without touching ST segments much; 45 Hz takes most EMG
   noise and attenuates 60 Hz / 50 Hz mains hum by 15 / 9 dB while keeping the QRS energy;
4. the centre ``max_store_s`` of the result is kept;
5. per-lead standardisation (zero mean, unit variance over the stored signal; a flat lead stays all zeros
   instead of dividing by zero).

Pipeline version 1 ran ``resample_poly`` (Kaiser FIR) and then ``sosfiltfilt`` in float64: the same band-pass
response, at about four times the CPU cost. Away from the edges version 2 (float32 FFTs) differs from it by less
than 1 % of a lead's standard deviation; near the edges, where both depend on how the unseen signal is guessed,
version 2's transients are about half as large (``tests/data/test_fft_pipeline.py``).

``preprocess`` returns the stored (uncropped but capped) signal (``to_storage`` rounds it to the cache's storage
dtype); ``window`` then takes the model's fixed input: the centre window for evaluation/prediction, a random
window for training (when an ``rng`` is given), zero padding at the end for records shorter than the window.
That crop rule has one owner, used by the cache, training and prediction alike: ``crop_starts`` says where a
window starts, ``take_window`` cuts it (or pads a short record).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from fractions import Fraction
from typing import Any

import numpy as np
from scipy import fft as sfft
from scipy import signal as sps

from ecgscale.config import reject_unknown_keys
from ecgscale.data.leads import parse_leads
from ecgscale.data.records import EcgRecord
from ecgscale.errors import ConfigError, RecordError

__all__ = [
    "PIPELINE_VERSION",
    "PreprocessConfig",
    "crop_starts",
    "normalize_leads",
    "preprocess",
    "preprocess_signal",
    "resample_ratio",
    "take_window",
    "to_storage",
    "window",
]

#: Bumped whenever the pipeline's arithmetic changes, so old caches and checkpoints are detected by their hash.
PIPELINE_VERSION = 2  # 2: resampling and band-pass in one float32 FFT (1: resample_poly + sosfiltfilt)
_FLOAT16_MAX = float(np.finfo(np.float16).max)

_DTYPES = ("float16", "float32")
_RESAMPLERS = ("fft", "poly")
_FLAT_STD = 1e-6  # below this a lead is treated as flat (mV or standardised units alike)


@dataclass(frozen=True, slots=True)
class PreprocessConfig:
    """Parameters of the preprocessing pipeline; ``hash()`` identifies a cache and travels with checkpoints."""

    fs: float = 250.0
    window_s: float = 10.0
    max_store_s: float = 60.0
    bandpass: tuple[float, float] | None = (0.5, 45.0)
    filter_order: int = 2  # Butterworth order per direction (sosfiltfilt doubles it)
    standardize: bool = True
    dtype: str = "float16"  # storage dtype of the cache; preprocess() always returns float32
    # "fft": resampling and band-pass in one float32 FFT (default, ~4x cheaper); "poly": the classic
    # scipy.signal.resample_poly (polyphase Kaiser FIR) followed by sosfiltfilt, float64.
    resampler: str = "fft"

    def __post_init__(self) -> None:
        object.__setattr__(self, "fs", float(self.fs))
        object.__setattr__(self, "window_s", float(self.window_s))
        object.__setattr__(self, "max_store_s", float(self.max_store_s))
        if not (math.isfinite(self.fs) and 1.0 <= self.fs <= 20000.0):
            raise ConfigError(f"sampling rate {self.fs!r} Hz is not allowed (1 to 20000 Hz)", key="fs")
        if not (math.isfinite(self.window_s) and self.window_s > 0):
            raise ConfigError(f"window {self.window_s!r} s must be a positive number of seconds", key="window_s")
        if round(self.window_s * self.fs) < 1:
            raise ConfigError(f"window {self.window_s} s at {self.fs} Hz is shorter than one sample", key="window_s")
        if not (math.isfinite(self.max_store_s) and self.max_store_s >= self.window_s):
            raise ConfigError(
                f"max_store_s {self.max_store_s!r} must be at least the window ({self.window_s} s)", key="max_store_s"
            )
        if self.bandpass is not None:
            try:
                low, high = (float(v) for v in self.bandpass)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"bandpass {self.bandpass!r} must be (low_hz, high_hz) or None", key="bandpass"
                ) from None
            nyquist = self.fs / 2
            if not (0 < low < high < nyquist):
                raise ConfigError(
                    f"bandpass ({low}, {high}) Hz needs 0 < low < high < Nyquist ({nyquist:g} Hz at fs={self.fs:g});"
                    " lower the upper edge or pass bandpass=None",
                    key="bandpass",
                )
            object.__setattr__(self, "bandpass", (low, high))
        if not (isinstance(self.filter_order, int) and 1 <= self.filter_order <= 8):
            raise ConfigError(f"filter_order {self.filter_order!r} must be an integer from 1 to 8", key="filter_order")
        if self.resampler not in _RESAMPLERS:
            raise ConfigError(
                f"resampler {self.resampler!r} is not allowed (one of {', '.join(_RESAMPLERS)})", key="resampler"
            )
        if self.dtype not in _DTYPES:
            raise ConfigError(f"dtype {self.dtype!r} is not allowed (one of {', '.join(_DTYPES)})", key="dtype")
        object.__setattr__(self, "standardize", bool(self.standardize))

    @property
    def window_samples(self) -> int:
        """Model input length in samples."""
        return round(self.window_s * self.fs)

    @property
    def max_store_samples(self) -> int:
        return round(self.max_store_s * self.fs)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["bandpass"] = None if self.bandpass is None else list(self.bandpass)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PreprocessConfig:
        reject_unknown_keys(data, {f.name for f in fields(cls)}, what="preprocessing")
        kwargs = dict(data)
        if kwargs.get("bandpass") is not None:
            kwargs["bandpass"] = tuple(kwargs["bandpass"])
        return cls(**kwargs)

    def hash(self) -> str:
        """Stable 16-hex-digit digest of the parameters and ``PIPELINE_VERSION``."""
        payload = json.dumps({"pipeline_version": PIPELINE_VERSION, **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def normalize_leads(
    signal: np.ndarray, lead_names: Sequence[str], *, path: object = "<record>", leads: Any = None
) -> np.ndarray:
    """Rows of ``signal`` reordered to the lead set ``leads`` (default: all 12, ``STANDARD_LEADS`` order).

    ``leads`` is anything :func:`ecgscale.data.leads.parse_leads` takes; extra leads are dropped, missing ones
    are a ``RecordError`` (``reason="missing_leads"``) naming them.
    """
    return parse_leads(leads).select(signal, lead_names, path=str(path))


def resample_ratio(fs_in: float, fs_out: float) -> tuple[int, int]:
    """``(up, down)`` for ``resample_poly``: the reduced fraction ``fs_out / fs_in`` (rates rounded to 1/1000 Hz)."""
    frac = Fraction(round(fs_out * 1000), round(fs_in * 1000))
    frac = frac.limit_denominator(10000)
    return frac.numerator, frac.denominator


@functools.lru_cache(maxsize=32)
def _bandpass(low: float, high: float, order: int, fs: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Butterworth band-pass as second-order sections, its steady-state initial conditions and pad length.

    ``sos`` stays writable: scipy's compiled ``sosfilt`` rejects read-only buffers. Internal use only.
    """
    sos = sps.butter(order, (low, high), btype="bandpass", fs=fs, output="sos")
    zi = sps.sosfilt_zi(sos)
    ntaps = 2 * len(sos) + 1 - min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    zi.flags.writeable = False
    return sos, zi, 3 * ntaps


def _sosfiltfilt(x: np.ndarray, sos: np.ndarray, zi: np.ndarray, padlen: int) -> np.ndarray:
    """``scipy.signal.sosfiltfilt(sos, x, axis=1)`` (odd padding) with the initial conditions computed once.

    The time-domain band-pass of pipeline version 1, kept as the reference the FFT band-pass is tested against
    (same steps as scipy's, in the same order, so the result is scipy's: checked in the tests).
    """
    edge = min(padlen, x.shape[1] - 1)
    if edge > 0:
        left = 2 * x[:, :1] - x[:, edge:0:-1]
        right = 2 * x[:, -1:] - x[:, -2 : -edge - 2 : -1]
        ext = np.concatenate([left, x, right], axis=1)
    else:
        ext = x
    zi3 = zi[:, None, :]  # (sections, 1, 2): broadcast over leads
    y, _ = sps.sosfilt(sos, ext, axis=1, zi=zi3 * ext[None, :, :1])
    y, _ = sps.sosfilt(sos, y[:, ::-1], axis=1, zi=zi3 * y[None, :, -1:])
    y = y[:, ::-1]
    return y[:, edge:-edge] if edge > 0 else y


_PAD_S = 1.0  # padding at each end (s): the 0.5 Hz high-pass transient decays within about a second


@functools.lru_cache(maxsize=256)
def _fft_lengths(n: int, pad: int, up: int, down: int) -> tuple[int, int, int, int]:
    """``(left pad, padded length N, output length M, output start)`` of an ``n``-sample input.

    The left pad is a multiple of ``down`` so the output grid starts exactly at the first input sample; ``N`` is
    ``down`` times a 2·3·5-smooth number (fast FFTs, exact rate ``up/down``: ``M = N * up / down``).
    """
    left = -(-pad // down) * down
    k = sfft.next_fast_len(-(-(left + n + pad) // down), real=True)
    return left, k * down, k * up, left // down * up


@functools.lru_cache(maxsize=256)
def _fft_gain(
    n_fft: int, n_out: int, fs_in: float, fs_out: float, band: tuple[float, float] | None, order: int
) -> np.ndarray:
    """Real gains of the ``min(N, M) // 2 + 1`` kept rFFT bins: band-pass response, rate change, Nyquist bin.

    ``|H(f)|²`` of the digital Butterworth band-pass at ``fs_out`` is the zero-phase response ``sosfiltfilt``
    applies; bins above the output Nyquist frequency are dropped (downsampling) or zero-filled (upsampling),
    the ideal anti-aliasing / interpolation filter. ``M / N`` keeps amplitudes. The unpaired Nyquist bin of
    the shorter length is zeroed when downsampling (its two aliases cannot be told apart) and halved when
    upsampling (it becomes a pair of bins), as ``scipy.signal.resample`` does.
    """
    k = min(n_fft, n_out) // 2 + 1
    gain = np.ones(k)
    if band is not None:
        sos, _, _ = _bandpass(band[0], band[1], order, fs_out)
        _, h = sps.sosfreqz(sos, worN=np.arange(k) * (fs_in / n_fft), fs=fs_out)
        gain = np.abs(h) ** 2
    if n_out != n_fft and min(n_fft, n_out) % 2 == 0:
        gain[-1] *= 0.0 if n_out < n_fft else 0.5
    gain = (gain * (n_out / n_fft)).astype(np.float32)
    gain.flags.writeable = False
    return gain


def _fft_resample_filter(x: np.ndarray, fs_in: float, config: PreprocessConfig) -> np.ndarray:
    """Resample float32 ``(leads, n)`` from ``fs_in`` to ``config.fs`` and band-pass it, in one rFFT/irFFT pair.

    ``scipy.signal.resample``'s algorithm (rFFT, spectral window, cut or zero-fill, irFFT) written out so the
    window (the band-pass) is designed once per length and applied to the kept bins only, in float32, with:

    * ``_PAD_S`` of padding at each end, so edge effects fall in the padding: a mirror image of the signal
      (``numpy.pad`` ``reflect``) before a band-pass, whose 0.5 Hz high-pass looks about a second ahead (on
      synthetic ECGs its edge transients are 2-3x smaller than with ``sosfiltfilt``'s odd reflection, which
      doubles whatever the edge sample happens to be, a QRS peak or noise); odd reflection without a band-pass,
      which continues a smooth signal (a line exactly) like ``resample_poly``'s ``padtype="line"``;
    * a straight line through the two ends of the padded signal taken out, so the FFT's periodic extension has
      no jump. A band-pass removes a line entirely (its ``|H|²`` vanishes like ``f²`` at 0 Hz), so the line is
      dropped; without a band-pass it is added back at the output sample times;
    * a padded length that is a fast FFT size and a multiple of ``down``, so the output lies exactly on the
      ``resample_poly`` grid: output sample j at input time ``j * down / up``, ``ceil(n * up / down)`` samples.
    """
    n = x.shape[1]
    up, down = resample_ratio(fs_in, config.fs)
    left, n_fft, n_out, start = _fft_lengths(n, math.ceil(_PAD_S * fs_in), up, down)
    right = n_fft - left - n
    odd = config.bandpass is None
    if n > max(left, right):
        padded = np.empty((x.shape[0], n_fft), dtype=np.float32)
        padded[:, left : left + n] = x
        padded[:, :left] = x[:, left:0:-1]
        padded[:, left + n :] = x[:, -2 : -2 - right : -1]
        if odd:
            padded[:, :left] *= -1
            padded[:, :left] += 2 * x[:, :1]
            padded[:, left + n :] *= -1
            padded[:, left + n :] += 2 * x[:, -1:]
    else:  # a record shorter than the padding: numpy reflects repeatedly
        padded = np.pad(x, ((0, 0), (left, right)), mode="reflect", reflect_type="odd" if odd else "even")
    first = padded[:, :1].copy()
    slope = (padded[:, -1:] - first) / np.float32(n_fft - 1)
    padded -= first + slope * np.arange(n_fft, dtype=np.float32)
    gain = _fft_gain(n_fft, n_out, float(fs_in), config.fs, config.bandpass, config.filter_order)
    spec = sfft.rfft(padded, axis=1)[:, : len(gain)]
    spec *= gain
    n_keep = -(-n * up // down)
    y = sfft.irfft(spec, n=n_out, axis=1)[:, start : start + n_keep]
    if config.bandpass is None:
        t = (start + np.arange(n_keep, dtype=np.float64)) * (down / up)
        y += first + slope * t.astype(np.float32)
    return y


def _poly_resample_filter(x: np.ndarray, fs_in: float, config: PreprocessConfig) -> np.ndarray:
    """Pipeline version 1 (``resampler="poly"``): ``scipy.signal.resample_poly`` then ``sosfiltfilt``, float64.

    The textbook polyphase route, kept selectable for users who want it (and as the reference the FFT path is
    tested against); it gives the same band-pass response at about four times the CPU cost.
    """
    y = np.asarray(x, dtype=np.float64)
    up, down = resample_ratio(fs_in, config.fs)
    if (up, down) != (1, 1):
        y = sps.resample_poly(y, up, down, axis=1, padtype="line")
    if config.bandpass is not None:
        sos, zi, padlen = _bandpass(config.bandpass[0], config.bandpass[1], config.filter_order, config.fs)
        y = _sosfiltfilt(y, sos, zi, padlen)
    return y.astype(np.float32)


def preprocess_signal(
    signal: np.ndarray, fs: float, config: PreprocessConfig, *, path: object = "<record>", n_leads: int = 12
) -> np.ndarray:
    """The pipeline on a ``(n_leads, n)`` array already in lead-set order; float32 ``(n_leads, n_stored)``.

    Every step works lead by lead, so the rows of a reduced lead set come out as the same rows of the 12-lead
    result (what lets one 12-lead cache serve every lead set; see ``ecgscale.data.leads``).
    """
    x = np.asarray(signal)
    if x.ndim != 2 or x.shape[0] != n_leads:
        raise RecordError(
            str(path), f"expected {n_leads} leads x samples, got shape {x.shape}", reason="shape_mismatch"
        )
    if not (math.isfinite(fs) and fs > 0):
        raise RecordError(str(path), f"sampling rate {fs!r} is not a positive number", reason="bad_fs", field="fs")
    if x.shape[1] < 2:
        raise RecordError(str(path), f"record has {x.shape[1]} samples; at least 2 are needed", reason="empty")
    # A sum is finite when every sample is (an overflow to inf only sends it down the exact path): one pass
    # without a (12, n) boolean temporary.
    if not np.isfinite(x.sum()) and not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        raise RecordError(str(path), f"{bad} NaN/inf samples", reason="non_finite", field="signal")

    # Cut long records to the centre part first (with a margin that absorbs filter/resampler edge effects).
    keep_in = math.ceil(config.max_store_s * fs) + 2 * math.ceil(fs)
    if x.shape[1] > keep_in:
        start = (x.shape[1] - keep_in) // 2
        x = x[:, start : start + keep_in]
    # float32 throughout: the cache stores float16 and the models compute in float32.
    if config.resampler == "poly":
        x = _poly_resample_filter(x, fs, config)
    elif resample_ratio(fs, config.fs) != (1, 1) or config.bandpass is not None:
        x = _fft_resample_filter(x.astype(np.float32, copy=False), fs, config)
    else:
        x = x.astype(np.float32)  # a copy: the caller's array is never returned or changed

    cap = config.max_store_samples
    if x.shape[1] > cap:
        start = (x.shape[1] - cap) // 2
        x = x[:, start : start + cap]

    if config.standardize:
        # In place (x is ours here), with the variance as a row-wise dot product: no (12, n) temporaries.
        x = np.ascontiguousarray(x, dtype=np.float32)
        x -= x.mean(axis=1, keepdims=True)
        std = np.sqrt(np.einsum("ij,ij->i", x, x) / x.shape[1])[:, None]
        flat = std < _FLAT_STD
        x /= np.where(flat, 1.0, std).astype(np.float32)
        x[flat[:, 0]] = 0.0
    return np.ascontiguousarray(x, dtype=np.float32)


def preprocess(record: EcgRecord, config: PreprocessConfig, *, leads: Any = None) -> np.ndarray:
    """A record as the models see it before windowing: float32 ``(n_leads, n_stored)`` at ``config.fs``, the
    rows of lead set ``leads`` (default all 12) taken from the record by name."""
    where = record.path if record.path is not None else record.record_id
    lead_set = parse_leads(leads)
    x = lead_set.select(np.asarray(record.signal), record.lead_names, path=str(where))
    return preprocess_signal(x, float(record.fs), config, path=where, n_leads=len(lead_set))


def window(signal: np.ndarray, length: int, *, rng: np.random.Generator | None = None) -> np.ndarray:
    """A fixed-length float32 ``(..., length)`` slice: centre crop, or a random crop when ``rng`` is given.

    Records shorter than ``length`` are zero-padded at the end in both modes, so training and evaluation see
    padding in the same place.
    """
    if length < 1:
        raise ConfigError(f"window length {length} must be at least 1 sample", key="length")
    x = np.asarray(signal)
    n = x.shape[-1]
    start = int(crop_starts(n, length, rng=rng)) if n >= length else 0  # a short record draws nothing
    return np.array(take_window(x, length, start), dtype=np.float32)


def crop_starts(
    n_samples: int | np.ndarray,
    length: int,
    *,
    positions: float | np.ndarray | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Where the ``length``-sample window of signals of ``n_samples`` starts: the one crop rule.

    With ``slack = max(n_samples - length, 0)``: the centre ``slack // 2`` by default; ``floor(p * (slack + 1))``
    for ``positions`` ``p`` in [0, 1) (training's seeded crop positions); uniform integers in ``[0, slack]``
    drawn from ``rng``. A record shorter than ``length`` starts at 0 and :func:`take_window` pads it at the end.
    ``n_samples`` and ``positions`` may be scalars or arrays (vectorised); the result is an int64 array.
    """
    slack = np.maximum(np.asarray(n_samples, dtype=np.int64) - length, 0)
    if rng is not None:
        return rng.integers(0, slack + 1)
    if positions is not None:
        return np.floor(np.asarray(positions) * (slack + 1)).astype(np.int64)
    return slack // 2


def take_window(signal: np.ndarray, length: int, start: int = 0, *, out: np.ndarray | None = None) -> np.ndarray:
    """The ``(..., length)`` window of ``signal`` from ``start`` (see :func:`crop_starts`); a record shorter than
    ``length`` is zero-padded at the end, so training, evaluation and prediction see padding in the same place.

    Without ``out``: a view when the window fits, else a new array of ``signal``'s dtype. With ``out`` (zeros of
    shape ``(..., length)``), the window is written into it and ``out`` is returned.
    """
    take = min(length, signal.shape[-1] - start)
    if out is None:
        if take == length:
            return signal[..., start : start + length]
        out = np.zeros((*signal.shape[:-1], length), dtype=signal.dtype)
    out[..., :take] = signal[..., start : start + take]
    return out


def to_storage(x: np.ndarray, dtype: str) -> np.ndarray:
    """``x`` in the cache's storage ``dtype`` (``PreprocessConfig.dtype``): float16 after clipping to its largest
    finite value (a spike is stored as ±65504, not inf), float32 unchanged. Prediction rounds through it too, so
    a model sees bit for bit the inputs it was trained and validated on."""
    if dtype == "float16":
        return np.clip(x, -_FLOAT16_MAX, _FLOAT16_MAX).astype(np.float16)
    return x
