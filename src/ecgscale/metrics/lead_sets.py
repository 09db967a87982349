"""Challenge scoring per lead set, as in PhysioNet/CinC 2021 ("Will Two Do?").

The challenge scored every entry separately on 12-, 6-, 4-, 3- and 2-lead versions of the hidden test set and
ranked on the mean of the 12-, 3- and 2-lead challenge metrics. Here a folder of outputs holds one subfolder per
lead set, named by its size (``12``, ``6``, ... or ``12_leads``, ``6-lead``, ...); each is scored against the
same headers with :func:`ecgscale.metrics.score_challenge`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecgscale.data.leads import LEAD_SETS
from ecgscale.errors import RecordError
from ecgscale.metrics.challenge import ChallengeScores, score_challenge
from ecgscale.metrics.challenge_io import ChallengeData, load_challenge_dirs

__all__ = ["SUMMARY_LEAD_SETS", "LeadSetScores", "challenge_summary", "lead_set_dirs", "score_lead_sets"]

#: The lead sets whose challenge metrics the challenge averaged for its ranking.
SUMMARY_LEAD_SETS: tuple[str, ...] = ("12", "3", "2")

_DIR_RE = re.compile(r"^(?P<n>\d+)(?:[-_ ]?leads?)?$", re.IGNORECASE)


def lead_set_dirs(outputs_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Subfolders of ``outputs_dir`` named after an official lead set, by tag, largest set first.

    A name that looks like a lead count but is not an official set (``5_leads``), or two folders for one set,
    is a ``RecordError`` naming the folder; other subfolders are ignored.
    """
    root = Path(outputs_dir)
    if not root.is_dir():
        raise RecordError(root, "outputs folder does not exist or is not a folder", reason="missing")
    found: dict[str, Path] = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        m = _DIR_RE.match(sub.name)
        if m is None:
            continue
        tag = str(int(m["n"]))
        if tag not in LEAD_SETS:
            raise RecordError(sub, f"{tag} leads is not a lead set of the challenge ({', '.join(LEAD_SETS)})")
        if tag in found:
            raise RecordError(sub, f"a second folder for the {tag}-lead set (also {found[tag]})", reason="duplicate")
        found[tag] = sub
    if not found:
        raise RecordError(
            root,
            "no lead-set subfolders; expected folders named 12, 6, 4, 3, 2 (or 12_leads, ...) holding output files",
            reason="missing",
        )
    return {tag: found[tag] for tag in LEAD_SETS if tag in found}


def challenge_summary(metrics: Mapping[str, float | None]) -> float | None:
    """Mean challenge metric over the 12-, 3- and 2-lead sets (the challenge's ranking score); None unless all
    three are present and finite."""
    values = [metrics.get(tag) for tag in SUMMARY_LEAD_SETS]
    if any(v is None or not math.isfinite(float(v)) for v in values):
        return None
    return float(sum(float(v) for v in values if v is not None) / len(values))


@dataclass(frozen=True, slots=True)
class LeadSetScores:
    """The scores of each lead set (tag → ``ChallengeScores``), their inputs, and the challenge summary."""

    scores: dict[str, ChallengeScores]
    data: dict[str, ChallengeData]
    dirs: dict[str, Path]

    @property
    def summary(self) -> float | None:
        return challenge_summary({t: s.challenge_metric for t, s in self.scores.items()})

    def to_dict(self) -> dict[str, Any]:
        return {
            "lead_sets": {
                tag: {
                    "outputs_dir": str(self.dirs[tag]),
                    "n_records": len(self.data[tag].record_ids),
                    "n_missing_outputs": len(self.data[tag].missing),
                    **{k: v for k, v in s.to_dict().items() if k != "classes"},
                }
                for tag, s in self.scores.items()
            },
            "challenge_summary": self.summary,
            "summary_lead_sets": list(SUMMARY_LEAD_SETS),
        }


def score_lead_sets(
    labels_dir: str | os.PathLike[str], outputs_dir: str | os.PathLike[str], *, strict: bool = False
) -> LeadSetScores:
    """Score each lead-set subfolder of ``outputs_dir`` against the headers under ``labels_dir``."""
    dirs = lead_set_dirs(outputs_dir)
    scores: dict[str, ChallengeScores] = {}
    data: dict[str, ChallengeData] = {}
    for tag, d in dirs.items():
        data[tag] = load_challenge_dirs(labels_dir, d, strict=strict)
        x = data[tag]
        scores[tag] = score_challenge(x.labels, x.binary, x.scalar, x.class_keys)
    return LeadSetScores(scores, data, dirs)
