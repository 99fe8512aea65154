"""The worklist: which of a day's scans to open first.

One row per scan and scorer, from what ``anomaly-maps score --findings`` computed: the
volume score, its calibrated rank (the fraction of healthy validation volumes scoring
higher, from :func:`~anomaly_maps.findings.volume_rank`; empty when the model's
calibration holds no healthy volume scores), and the number and size of the scan's
findings, and the top finding's atlas label (with ``--atlas``; see
:attr:`~anomaly_maps.findings.Finding.label_text`). Rows are sorted most suspicious
first: by rank where every row has one, then by volume score, then by flagged volume.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .findings import Regions, csv_cell

__all__ = ["WORKLIST_COLUMNS", "WorklistRow", "worklist_csv"]

#: Columns of ``worklist.csv``, in order.
WORKLIST_COLUMNS: tuple[str, ...] = (
    "scan", "scorer", "volume_score", "healthy_volumes_above", "findings", "total_ml",
    "largest_ml", "top_peak_score", "threshold", "top_label",
)  # fmt: skip


@dataclass(frozen=True)
class WorklistRow:
    """One scan scored by one scorer: its volume score, rank and findings."""

    scan: str
    scorer: str
    volume_score: float
    rank: float | None
    regions: Regions

    def row(self) -> tuple:
        top = self.regions.findings[0] if self.regions.findings else None
        return (self.scan, self.scorer, self.volume_score, self.rank,
                len(self.regions.findings), self.regions.total_ml, self.regions.largest_ml,
                top.peak_score if top else None, self.regions.threshold,
                top.label_text if top else "")  # fmt: skip

    def _key(self, ranked: bool) -> tuple:
        return (self.rank if ranked else 0.0, -self.volume_score, -self.regions.total_ml)


def worklist_csv(rows: Sequence[WorklistRow]) -> str:
    """CSV text of ``rows``, most suspicious first."""
    ranked = all(r.rank is not None for r in rows)
    ordered = sorted(rows, key=lambda r: r._key(ranked))
    lines = [",".join(WORKLIST_COLUMNS)]
    lines += [",".join(csv_cell(v) for v in r.row()) for r in ordered]
    return "\n".join(lines) + "\n"
