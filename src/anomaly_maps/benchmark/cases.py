"""The val/test cases of a benchmark as recorded in its ``cases.csv``."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, fields
from pathlib import Path

from ..errors import AnomalyMapsError

__all__ = ["CASES", "CASE_FIELDS", "Case", "read_cases"]

CASES = "cases.csv"


@dataclass(frozen=True)
class Case:
    """One val/test case as recorded in ``cases.csv``.

    ``anomaly`` is ``"none"`` for a healthy case, whose ``size`` is ``""`` and whose
    geometry fields are 0. ``center`` is in voxel indices of the case's grid,
    ``radius`` in voxels, ``radius_fraction`` of the grid's shortest side, and
    ``label_voxels`` counts the voxel label (sphere ∩ brain).
    """

    split: str
    case: str
    label: int
    anomaly: str = "none"
    size: str = ""
    radius: float = 0.0
    radius_fraction: float = 0.0
    center_x: float = 0.0
    center_y: float = 0.0
    center_z: float = 0.0
    strength: float = 0.0
    label_voxels: int = 0


CASE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Case))


def read_cases(benchmark: str | os.PathLike) -> list[Case]:
    """Cases of a benchmark: ``benchmark`` is its folder or its ``cases.csv``."""
    path = Path(benchmark)
    if path.is_dir():
        path = path / CASES
    if not path.is_file():
        raise AnomalyMapsError(f"{path}: no such file, expected a benchmark's {CASES}")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or set(reader.fieldnames) != set(CASE_FIELDS):
            raise AnomalyMapsError(
                f"{path}: columns {reader.fieldnames}: expected {list(CASE_FIELDS)}"
            )
        types = {f.name: f.type for f in fields(Case)}
        convert = {"int": int, "float": float, "str": str}
        try:
            return [Case(**{k: convert[types[k]](v) for k, v in row.items()}) for row in reader]
        except ValueError as err:
            raise AnomalyMapsError(f"{path}: unreadable row ({err})") from err
