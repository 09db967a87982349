"""The synthetic 12-lead ECG benchmark: a cardiac-dipole model written in the real CinC 2021 / Tianchi formats.

``generate(out, n=..., seed=...)`` is the entry point (``ecgscale synth`` on the command line). Records come
from a vectorcardiographic beat model (``dipole``, ``morphology``) projected to 12 leads through the Dower
transform, with rhythms (``rhythm``), pathologies whose labels are derived from the generating parameters
and measurements (``pathologies``), electrode-level artefacts (``noise``) and several source profiles with
domain shift (``sources``). See ``docs/synth.md``.
"""

from ecgscale.synth.generate import FORMATS, PARAMS_FILE, SynthSummary, generate, resolve_classes, tianchi_name
from ecgscale.synth.pathologies import RecordParams, derive_labels, sample_params
from ecgscale.synth.record import SynthRecord, synth_record
from ecgscale.synth.sources import DEFAULT_SOURCES, SourceProfile

__all__ = [
    "DEFAULT_SOURCES",
    "FORMATS",
    "PARAMS_FILE",
    "RecordParams",
    "SourceProfile",
    "SynthRecord",
    "SynthSummary",
    "derive_labels",
    "generate",
    "resolve_classes",
    "sample_params",
    "synth_record",
    "tianchi_name",
]
