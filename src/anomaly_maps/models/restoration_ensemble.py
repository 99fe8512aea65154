"""Several trained restoration models read as one: the largest of their calibrated FPI maps.

Restoration models trained at different slice sizes or with different corruptions see
different things (``docs/results.md``): at 64x64 a model finds uniform intensity blobs
on a real subject that a 128x128 one trained on local noise as well misses, and that one
finds noise the 64x64 model cannot see. An ensemble keeps both: each member scores the
slice at its own size (the input resized as :func:`~anomaly_maps.preprocessing.
resize_planes` resizes scans, its map resized back with bilinear interpolation), each
map is put in the member's units, and the ensemble's map is the voxel-wise maximum: a
pixel is flagged when any member finds it unusual for that member. The units
(``units``): ``template``, the member's healthy 99th percentile from its stored ``fpi``
calibration (1 = the top 1 % of the template's healthy pixels); or ``scan``, the
member's own 90th percentile over the scan's foreground (1 = the top 10 % of this
scan), so that a member whose template calibration does not carry to a new scanner or
subject (its whole map louder there than the other member's) cannot take the maximum
everywhere. ``scan`` is the bundled ensemble's: on two real subjects it keeps what each
member finds alone, where template units let the louder member drown the other
(``docs/results.md``, "Member units from the scan"). Neither FPI paper ensembles models; DISYRE v2
ensembles restorations of one model over corruption severities (Naval Marimont et al.,
MICCAI 2024, arXiv 2407.06635, Method). Taking the maximum of calibrated members is our
choice, measured against the mean and the geometric mean in ``docs/results.md``.

A scan is scored member by member (:mod:`anomaly_maps.scoring.members`: each member
over the whole scan at its own size, with every view and smoothing, the final maps
combined); :meth:`RestorationEnsemble.corruption_map` combines the members on one batch
of slices, for a scorer called on slices directly (the score dock's one-slice preview).
An ensemble is built from trained checkpoints (``anomaly-maps ensemble``), never trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .._config import is_real
from ..preprocessing import resize_planes
from ._base import ModelConfig, register_model
from ._conv import check_slices
from .restoration import Restoration, RestorationConfig

__all__ = ["ENSEMBLE_UNITS", "SCAN_QUANTILE", "RestorationEnsemble", "RestorationEnsembleConfig"]

#: How an ensemble puts its members' maps in one unit (see the module docstring).
ENSEMBLE_UNITS = ("template", "scan")
#: The quantile of a member's own map over the scan's foreground that is its unit
#: under ``units="scan"``.
SCAN_QUANTILE = 0.9


@dataclass(frozen=True)
class RestorationEnsembleConfig(ModelConfig):
    """Members of a :class:`RestorationEnsemble` and their healthy scales.

    Parameters
    ----------
    members : tuple of RestorationConfig
        Each member's configuration, the largest ``size`` first: the ensemble reads
        slices of that size. All share ``in_channels``.
    scales : tuple of float
        Each member's healthy 99th percentile of its FPI map (> 0), its unit under
        ``units="template"``.
    units : {"template", "scan"}
        ``template``: each member's map over its scale; ``scan``: over its own 90th
        percentile on the scan's foreground (on a batch of slices alone, the batch's).
    """

    kind: ClassVar[str] = "restoration_ensemble"

    members: tuple[RestorationConfig, ...] = ()
    scales: tuple[float, ...] = ()
    units: str = "template"

    @property
    def size(self) -> int:
        """Side of the slices the ensemble reads: its first member's."""
        return self.members[0].size

    @property
    def in_channels(self) -> int:
        return self.members[0].in_channels

    def validate(self) -> None:
        """Check every field; raise ``ParameterError`` naming the first bad one."""
        ok = (
            isinstance(self.members, tuple)
            and len(self.members) >= 2
            and all(isinstance(m, RestorationConfig) for m in self.members)
        )
        self._require("members", ok, "a tuple of >= 2 RestorationConfig")
        first = self.members[0]
        self._require(
            "members",
            all(m.size <= first.size and m.in_channels == first.in_channels for m in self.members),
            "members sharing in_channels, the largest size first",
        )
        self._require(
            "scales",
            isinstance(self.scales, tuple)
            and len(self.scales) == len(self.members)
            and all(is_real(s) and s > 0 for s in self.scales),
            "one float > 0 per member",
        )
        self._require("units", self.units in ENSEMBLE_UNITS, f"one of {ENSEMBLE_UNITS}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "members": [m.to_dict() for m in self.members],
            "scales": list(self.scales),
            "units": self.units,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RestorationEnsembleConfig:
        """Rebuild from :meth:`to_dict` output: the members' dicts become their configs,
        then ``FrozenConfig.from_dict`` (unknown keys are an error)."""
        members = data.get("members")
        if isinstance(members, list):
            data = {**data, "members": tuple(RestorationConfig.from_dict(m) for m in members)}
        return super().from_dict(data)


def _resized(x: torch.Tensor, size: int) -> torch.Tensor:
    """``(B, C, H, W)`` slices at ``size`` x ``size``, resized as scans are."""
    return resize_planes(x.flatten(0, 1), (size, size)).unflatten(0, x.shape[:2])


def _quantile(values: torch.Tensor, q: float) -> float:
    """``np.quantile(values, q)`` (linear interpolation) of a 1-D tensor of any length
    (``torch.quantile`` refuses more than 2**24 values)."""
    position = q * (values.numel() - 1)
    low = int(position)
    below = values.kthvalue(low + 1)[0].item()
    if low + 1 >= values.numel():
        return below
    above = values.kthvalue(low + 2)[0].item()
    return below + (above - below) * (position - low)


@register_model(RestorationEnsembleConfig)
class RestorationEnsemble(nn.Module):
    """Restoration models read as one; :meth:`corruption_map` is their calibrated maximum.

    Parameters
    ----------
    config : RestorationEnsembleConfig
        Members and scales, stored as ``self.config``.

    Examples
    --------
    >>> import torch
    >>> from anomaly_maps.models import RestorationConfig
    >>> big = RestorationConfig(size=16, widths=(8, 16))
    >>> small = RestorationConfig(size=8, widths=(8, 16))
    >>> config = RestorationEnsembleConfig(members=(big, small), scales=(0.5, 0.25))
    >>> model = RestorationEnsemble(config)
    >>> tuple(model.corruption_map(torch.rand(2, 1, 16, 16)).shape)
    (2, 1, 16, 16)
    """

    def __init__(self, config: RestorationEnsembleConfig) -> None:
        super().__init__()
        self.config = config
        self.members = nn.ModuleList(Restoration(m) for m in config.members)

    def member_maps(self, x: torch.Tensor) -> torch.Tensor:
        """``(M, B, 1, H, W)``: each member's FPI map of ``x`` in its units; under
        ``units="scan"`` the batch's foreground (pixels above its minimum) stands for
        the scan's."""
        check_slices(x, self.config)
        size = x.shape[-2:]
        foreground = (x > x.amin()).any(1, keepdim=True)
        maps = []
        for member, scale in zip(self.members, self.config.scales, strict=True):
            own = member.corruption_map(_resized(x, member.config.size))
            if own.shape[-2:] != size:
                own = F.interpolate(own, size=size, mode="bilinear", align_corners=False)
            if self.config.units == "scan" and foreground.any():
                unit = _quantile(own[foreground].float(), SCAN_QUANTILE)
                scale = unit if unit > 0 else scale
            maps.append(own / scale)
        return torch.stack(maps)

    def corruption_map(self, x: torch.Tensor) -> torch.Tensor:
        """The largest member map per pixel, ``(B, 1, H, W)``, >= 0, in the members'
        units."""
        return self.member_maps(x).amax(0)
