"""What a cache folder holds: its format version, the manifest's columns and the identity of its content.

Shared by the writer (``writer``), the reader (``store``) and the builder's up-to-date check (``builder``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import pandas as pd

from ecgscale.data.records import STANDARD_LEADS
from ecgscale.data.splits import SPLIT_NAMES

__all__ = [
    "CACHE_FORMAT_VERSION",
    "INFO_FILE",
    "MANIFEST_COLUMNS",
    "N_LEADS",
    "OPTIONAL_COLUMNS",
    "STR_COLUMNS",
    "params_hash",
    "split_counts",
]

CACHE_FORMAT_VERSION = 1
N_LEADS = len(STANDARD_LEADS)
#: Written last by a build: its presence marks a complete cache.
INFO_FILE = "cache.json"
MANIFEST_COLUMNS = [
    "index",
    "record_id",
    "source",
    "patient_id",
    "age",
    "sex",
    "fs",
    "n_samples",
    "duration_s",
    "n_stored",
    "codes",
    "unknown_codes",
    "flat_leads",
    "official_split",
    "fold",
    "split",
    "path",
]
OPTIONAL_COLUMNS = {"fold"}  # absent from manifests written before fold roles existed: read as ""
STR_COLUMNS = [
    "record_id",
    "source",
    "patient_id",
    "sex",
    "codes",
    "unknown_codes",
    "flat_leads",
    "official_split",
    "fold",
    "split",
    "path",
]


def params_hash(params: Mapping[str, object]) -> str:
    """The ``params_hash`` of ``cache.json``: what identifies a cache's content (``builder.build_params``)."""
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def split_counts(splits: pd.Series) -> dict[str, int]:
    """The ``split_counts`` of ``cache.json``: records per split, plus ``unassigned`` when some have none."""
    counts = splits.value_counts()
    out = {name: int(counts.get(name, 0)) for name in SPLIT_NAMES}
    if counts.get("", 0):  # records of folds given no role (SplitConfig.folds)
        out["unassigned"] = int(counts[""])
    return out
