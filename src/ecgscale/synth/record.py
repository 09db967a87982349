"""One synthetic record: parameters → beats → dipole → electrodes (+ artefacts) → 12 leads, with its labels."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ecgscale.errors import ConfigError
from ecgscale.synth.dipole import (
    GROUP_SPIKE,
    GROUP_T,
    Waves,
    chest_transform,
    electrodes_from_dipole,
    render_dipole,
)
from ecgscale.synth.morphology import BeatShapes, beat_shapes, measure_shape
from ecgscale.synth.noise import add_electrode_noise, electrodes_to_leads
from ecgscale.synth.pathologies import RecordParams, codes_for_labels, derive_labels, sample_params
from ecgscale.synth.rhythm import KIND_N, KIND_PAC, KIND_PVC, BeatTrain, atrial_wave, beat_train
from ecgscale.synth.sources import SourceProfile

__all__ = ["MAX_TRIES", "SynthRecord", "sample_duration", "synth_record"]

#: Draws per record before ``classes=`` is declared too restrictive.
MAX_TRIES = 200


@dataclass(frozen=True, slots=True)
class SynthRecord:
    """A generated record: ``signal`` float32 mV (12, n) in STANDARD_LEADS order, ``clean`` without artefacts."""

    signal: np.ndarray
    clean: np.ndarray | None
    params: RecordParams
    measured: dict
    labels: tuple[str, ...]
    codes: tuple[str, ...]


def sample_duration(rng: np.random.Generator, profile: SourceProfile) -> float:
    lo, med, hi = profile.duration_s
    if lo == hi:
        return float(lo)
    return float(np.clip(math.exp(rng.normal(math.log(med), 0.45)), lo, hi))


def _measure_rhythm(train: BeatTrain, p: RecordParams) -> dict:
    inside = train.inside(p.duration_s)
    t = train.t[inside]
    kind = train.kind[inside]
    rr = np.diff(t)
    out: dict = {
        "n_beats": int(t.size),
        "rate_bpm": round(60.0 / float(rr.mean()), 2) if rr.size else round(p.rate_bpm, 2),
        "rr_cv": round(float(rr.std() / rr.mean()), 4) if rr.size > 1 else 0.0,
        "n_pac": int((kind == KIND_PAC).sum()),
        "n_pvc": int((kind == KIND_PVC).sum()),
        "sinus_rr_range_ms": None,
    }
    if p.rhythm == "sinus":
        # PP intervals between two consecutive sinus beats, excluding the cycles around an ectopic beat.
        idx = np.flatnonzero(inside)
        ok = [
            i
            for i in idx[1:]
            if train.kind[i] == KIND_N
            and train.kind[i - 1] == KIND_N
            and (i + 1 >= train.kind.size or train.kind[i + 1] == KIND_N)
            and (i < 2 or train.kind[i - 2] == KIND_N)
            and train.t[i - 1] >= 0.0
        ]
        if len(ok) >= 2:
            pp = train.rr_prev[ok]
            out["sinus_rr_range_ms"] = round(float(pp.max() - pp.min()) * 1000.0, 1)
    return out


def _beat_waves(
    shape: Waves, times: np.ndarray, rr_prev: np.ndarray, shapes: BeatShapes, scale: np.ndarray, adapt_qt: bool
) -> Waves:
    if times.size == 0:
        return Waves.concat([])
    centers = times[:, None] + shape.center[None, :]
    if adapt_qt:  # Bazett: QT follows the preceding RR beat by beat
        shift = shapes.qtc_s * (np.sqrt(np.clip(rr_prev, 0.25, 2.5)) - math.sqrt(shapes.rr_s))
        centers = centers + np.clip(shift, -0.12, 0.12)[:, None] * (shape.group == GROUP_T)[None, :]
    amps = shape.amp[None, :, :] * scale[:, None, None]
    b = times.size
    return Waves(centers.ravel(), np.tile(shape.sigma, b), amps.reshape(-1, 3), np.tile(shape.group, b))


def synth_record(
    rng: np.random.Generator,
    profile: SourceProfile,
    *,
    fs: int | None = None,
    duration_s: float | None = None,
    allowed: frozenset[str] | None = None,
    keep_clean: bool = False,
) -> SynthRecord:
    """Generate one record of ``profile`` (at ``fs`` / ``duration_s`` when given, e.g. Tianchi's 500 Hz, 10 s).

    With ``allowed`` (class abbreviations), parameters are redrawn until the record's labels are non-empty and
    every finding it shows (coded or not) is in ``allowed``; a ConfigError says so after ``MAX_TRIES`` draws.
    """
    fs = int(fs or profile.fs)
    duration = float(duration_s) if duration_s is not None else sample_duration(rng, profile)
    n = round(duration * fs)
    duration = n / fs
    for _ in range(MAX_TRIES):
        params = sample_params(rng, profile, fs=fs, duration_s=duration, allowed=allowed)
        train = beat_train(rng, params)
        measured = _measure_rhythm(train, params)
        rr_mean = 60.0 / measured["rate_bpm"]
        shapes = beat_shapes(params, rng, rr_mean)
        transform = chest_transform(params.chest_gain, params.chest_gains, params.chest_shifts)
        measured.update(measure_shape(shapes.N, rr_mean, transform))
        labels = derive_labels(params, measured)
        measured["uncoded"] = [lab for lab in derive_labels(params, measured, coded=False) if lab not in labels]
        if allowed is None or (labels and set(labels) | set(measured["uncoded"]) <= allowed):
            break
    else:
        raise ConfigError(
            f"could not generate a {profile.name} record whose labels are all among {sorted(allowed or ())} "
            f"in {MAX_TRIES} draws; allow more classes (e.g. NSR)",
            key="classes",
        )

    # Per-beat amplitude: respiration (electrical axis moves with the diaphragm) and a little jitter.
    phase = rng.uniform(0.0, 2 * math.pi)
    scale = 1.0 + 0.05 * np.sin(2 * math.pi * params.resp_hz * train.t + phase) + rng.normal(0, 0.015, train.t.size)
    parts = []
    for kind, shape, adapt in ((KIND_N, shapes.N, True), (KIND_PAC, shapes.A, True), (KIND_PVC, shapes.V, False)):
        sel = train.kind == kind
        parts.append(_beat_waves(shape, train.t[sel], train.rr_prev[sel], shapes, scale[sel], adapt))
    waves = Waves.concat(parts)
    spike = waves.group == GROUP_SPIKE
    if spike.any():  # pacing spikes live on the sample grid: one dominant sample, whatever the rate
        waves.center[spike] = np.rint(waves.center[spike] * fs) / fs
        waves.sigma[spike] = 0.45 / fs
    dipole = render_dipole(waves, n, fs)
    atrial = atrial_wave(rng, params, np.arange(n) / fs)
    if atrial is not None:
        dipole += atrial
    electrodes = electrodes_from_dipole(dipole, transform)
    clean = electrodes_to_leads(electrodes.copy(), _no_artefacts(params)) if keep_clean else None
    add_electrode_noise(rng, electrodes, params)
    signal = electrodes_to_leads(electrodes, params).astype(np.float32)
    codes = codes_for_labels(labels, equivalent=params.equivalent_code)
    return SynthRecord(signal, clean, params, measured, tuple(labels), tuple(codes))


def _no_artefacts(p: RecordParams) -> RecordParams:
    return replace(p, lead_swap=False, flat_lead=None)
