"""The settings of a benchmark: healthy variability and which anomalies, how often."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .._config import FrozenConfig, is_int, is_real
from .anomalies import ANOMALY_TYPES, anomaly_kinds

__all__ = ["BenchmarkSpec"]


@dataclass(frozen=True)
class BenchmarkSpec(FrozenConfig):
    """Healthy variability and anomalies of a benchmark (stored in ``benchmark.json``).

    Parameters
    ----------
    rotate_deg, scale, translate_mm
        Random affine: rotation about each axis (+- degrees), isotropic zoom (+-
        fraction), shift along each axis (+- mm).
    elastic_mm, elastic_grid
        Elastic deformation: displacement std in mm on ``elastic_grid``^3 control
        points, smoothly (trilinearly) interpolated.
    bias
        Std of the log of the multiplicative bias field (4^3 control points).
    gamma
        Range of the gamma exponent, drawn log-uniformly.
    noise
        Std of Gaussian noise added to brain voxels (intensities in [0, 1]).
    anomaly_fraction
        Fraction of val/test cases that hold an anomaly (the rest are healthy).
    radius
        Range of anomaly radii as fractions of the grid's shortest side.
    anomalies
        Anomaly types to draw from, in turn (see the module table).
    """

    rotate_deg: float = 6.0
    scale: float = 0.06
    translate_mm: float = 4.0
    elastic_mm: float = 2.0
    elastic_grid: int = 5
    bias: float = 0.1
    gamma: tuple[float, float] = (0.85, 1.2)
    noise: float = 0.01
    anomaly_fraction: float = 0.5
    radius: tuple[float, float] = (0.05, 0.13)
    anomalies: tuple[str, ...] = ANOMALY_TYPES

    format_version: ClassVar[int] = 1

    def validate(self) -> None:
        for name in ("rotate_deg", "translate_mm", "elastic_mm", "bias", "noise"):
            value = getattr(self, name)
            self._require(name, is_real(value) and value >= 0, "a finite float >= 0")
        self._require("scale", is_real(self.scale) and 0 <= self.scale < 1, "a float in [0, 1)")
        ok = is_int(self.elastic_grid) and self.elastic_grid >= 2
        self._require("elastic_grid", ok, "an int >= 2")
        for name, upper in (("gamma", float("inf")), ("radius", 0.5)):
            pair = getattr(self, name)
            ok = (
                isinstance(pair, tuple)
                and len(pair) == 2
                and all(is_real(v) for v in pair)
                and 0 < pair[0] <= pair[1] <= upper
            )
            self._require(name, ok, f"a pair (low, high) with 0 < low <= high <= {upper}")
        frac = self.anomaly_fraction
        self._require("anomaly_fraction", is_real(frac) and 0 <= frac <= 1, "a float in [0, 1]")
        ok = (
            isinstance(self.anomalies, tuple)
            and len(self.anomalies) > 0
            and set(self.anomalies) <= set(anomaly_kinds())
        )
        self._require("anomalies", ok, f"a non-empty tuple of {list(anomaly_kinds())}")

    @classmethod
    def _label(cls) -> str:
        return "benchmark"
