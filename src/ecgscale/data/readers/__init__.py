"""Readers for the real ECG formats: CinC 2021 (WFDB + MATLAB v4), Tianchi (Hefei) text, PTB-XL, plain WFDB.

``discover(paths)`` finds records and returns picklable :class:`RecordRef` objects plus :class:`Skip` entries
for unusable files; ``read(ref)`` / ``read_record(path)`` return an :class:`~ecgscale.data.records.EcgRecord`
or raise :class:`~ecgscale.errors.RecordError` (``reason`` tags: see ``docs/formats.md``).
"""

from __future__ import annotations

from ecgscale.data.readers.base import FORMATS, Discovery, RecordRef, Skip
from ecgscale.data.readers.cinc2021 import parse_cinc_header, read_cinc2021, read_wfdb_record
from ecgscale.data.readers.discover import default_label_space, discover, read, read_record
from ecgscale.data.readers.ptbxl import ptbxl_refs, ptbxl_split, read_ptbxl
from ecgscale.data.readers.summary import describe_record, summarize
from ecgscale.data.readers.tianchi import derive_limb_leads, read_tianchi, read_tianchi_classes, read_tianchi_labels

__all__ = [
    "FORMATS",
    "Discovery",
    "RecordRef",
    "Skip",
    "default_label_space",
    "derive_limb_leads",
    "describe_record",
    "discover",
    "parse_cinc_header",
    "ptbxl_refs",
    "ptbxl_split",
    "read",
    "read_cinc2021",
    "read_ptbxl",
    "read_record",
    "read_tianchi",
    "read_tianchi_classes",
    "read_tianchi_labels",
    "read_wfdb_record",
    "summarize",
]
