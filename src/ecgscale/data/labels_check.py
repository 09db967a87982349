"""Check the PTB-XL → CinC 2021 label mapping against the challenge's own labelling of the same records.

PhysioNet/CinC 2020 relabelled PTB-XL with SNOMED-CT codes. A PTB-XL database that carries that labelling in
a ``cinc2020_dx_snomed`` column (``;``-joined codes, as the reconstructed database under ``shared/realdata``
does) lets every record be encoded twice in the 26 scored CinC 2021 classes: once from its SCP statements
through :data:`ecgscale.data.labels.PTBXL_SCP_MAP` (what ``prepare --labels cinc2021`` does), once from the
challenge's codes. :func:`ptbxl_cinc_agreement` counts, per class, where the two agree::

    python -m ecgscale.data.labels_check PTBXL_ROOT                         # print the table
    python -m ecgscale.data.labels_check PTBXL_ROOT --write-docs docs/labels.md   # refresh the docs table

Equivalent classes of the challenge (RBBB/CRBBB, PAC/SVPB, PVC/VPB, LBBB/CLBBB) are one class on both sides,
exactly as the challenge scores them.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ecgscale.data import labels as _labels

__all__ = ["AgreementRow", "agreement_markdown", "ptbxl_cinc_agreement", "write_docs_table"]

CINC_COLUMN = "cinc2020_dx_snomed"
DOCS_MARKER = "ptbxl-agreement"


@dataclass(frozen=True, slots=True)
class AgreementRow:
    """Agreement of one scored class over ``n`` records: ours (mapped SCP statements) against the challenge's."""

    abbreviation: str
    key: str
    n: int
    n_cinc: int  # records the challenge labels with the class
    n_ours: int  # records our mapping labels with the class
    tp: int
    fp: int  # ours only
    fn: int  # the challenge's only

    @property
    def tn(self) -> int:
        return self.n - self.tp - self.fp - self.fn

    @property
    def agreement(self) -> float:
        """Share of records on which both agree (positives and negatives)."""
        return (self.tp + self.tn) / self.n if self.n else math.nan

    @property
    def positive_agreement(self) -> float:
        """``2·TP / (2·TP + FP + FN)``; NaN when neither side has a positive."""
        d = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / d if d else math.nan

    @property
    def kappa(self) -> float:
        """Cohen's kappa of the two binary labellings; NaN when both are constant (no positives anywhere)."""
        n = self.n
        if not n:
            return math.nan
        po = (self.tp + self.tn) / n
        pe = (self.n_ours * self.n_cinc + (n - self.n_ours) * (n - self.n_cinc)) / (n * n)
        return (po - pe) / (1 - pe) if pe < 1 else math.nan

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = asdict(self)
        out.update(tn=self.tn, agreement=self.agreement, positive_agreement=self.positive_agreement, kappa=self.kappa)
        return out


def _database(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    return p / "ptbxl_database.csv" if p.is_dir() else p


def ptbxl_cinc_agreement(path: str | os.PathLike[str]) -> list[AgreementRow]:
    """Per scored CinC 2021 class, our PTB-XL mapping against the ``cinc2020_dx_snomed`` column.

    ``path`` is a PTB-XL folder or its ``ptbxl_database.csv``. SCP statements are parsed with the PTB-XL
    reader's :func:`~ecgscale.data.readers.ptbxl.parse_scp_codes`, every statement whatever its likelihood.
    """
    from ecgscale.data.readers.ptbxl import parse_scp_codes

    db = _database(path)
    text = db.read_bytes().decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if CINC_COLUMN not in (reader.fieldnames or ()) or "scp_codes" not in (reader.fieldnames or ()):
        raise ValueError(f"{db}: needs the columns scp_codes and {CINC_COLUMN} (found {reader.fieldnames})")
    ours_space = _labels.cinc2021_scored(aliases=_labels.ptbxl_to_snomed())
    cinc_space = _labels.cinc2021_scored()
    ours, cinc = [], []
    for n, row in enumerate(reader, start=2):
        ours.append(ours_space.encode(parse_scp_codes(row["scp_codes"] or "", path=db, row=n)))
        cinc.append(cinc_space.encode((row[CINC_COLUMN] or "").split(";")))
    a = np.asarray(ours, dtype=bool).reshape(-1, len(cinc_space))
    b = np.asarray(cinc, dtype=bool).reshape(-1, len(cinc_space))
    rows = []
    for k, cls in enumerate(cinc_space.classes):
        rows.append(
            AgreementRow(
                abbreviation=cls.abbreviation,
                key=cls.key,
                n=len(a),
                n_cinc=int(b[:, k].sum()),
                n_ours=int(a[:, k].sum()),
                tp=int((a[:, k] & b[:, k]).sum()),
                fp=int((a[:, k] & ~b[:, k]).sum()),
                fn=int((~a[:, k] & b[:, k]).sum()),
            )
        )
    return rows


def _pct(x: float) -> str:
    return "—" if math.isnan(x) else f"{100 * x:.2f}"


def _kappa(x: float) -> str:
    return "—" if math.isnan(x) else f"{x:.3f}"


def agreement_markdown(rows: list[AgreementRow]) -> str:
    """The table of ``docs/labels.md`` (one line per class, ``weights.csv`` order)."""
    lines = [
        "| class | SNOMED-CT | CinC 2020 positives | ours | TP | FP | FN | agreement % | pos. agreement % | kappa |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.abbreviation} | {r.key.replace('|', ', ')} | {r.n_cinc} | {r.n_ours} | {r.tp} | {r.fp} | {r.fn}"
            f" | {_pct(r.agreement)} | {_pct(r.positive_agreement)} | {_kappa(r.kappa)} |"
        )
    return "\n".join(lines)


def write_docs_table(rows: list[AgreementRow], docs: str | os.PathLike[str]) -> None:
    """Replace the table after ``<!-- ptbxl-agreement -->`` in ``docs`` (up to the next blank line)."""
    path = Path(docs)
    text = path.read_text(encoding="utf-8")
    marker = f"<!-- {DOCS_MARKER} -->"
    if marker not in text:
        raise ValueError(f"{path}: no {marker} line to put the table after")
    head, rest = text.split(marker, 1)
    rest = rest.lstrip("\n")
    tail = rest.split("\n\n", 1)[1] if "\n\n" in rest else ""
    path.write_text(f"{head}{marker}\n{agreement_markdown(rows)}\n\n{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ecgscale.data.labels_check", description=__doc__.split("\n")[0])
    parser.add_argument("ptbxl", help="PTB-XL folder (or its ptbxl_database.csv) with a cinc2020_dx_snomed column")
    parser.add_argument("--write-docs", metavar="MD", help="replace the table after <!-- ptbxl-agreement --> in MD")
    args = parser.parse_args(argv)
    rows = ptbxl_cinc_agreement(args.ptbxl)
    print(f"{rows[0].n} records\n")
    print(agreement_markdown(rows))
    if args.write_docs:
        write_docs_table(rows, args.write_docs)
        print(f"\nwrote the table into {args.write_docs}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
