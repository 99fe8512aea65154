"""Several trained restoration models read as one: the largest of their calibrated FPI maps.

Restoration models trained at different slice sizes or with different corruptions see
different things (``docs/results.md``): at 64x64 a model finds uniform intensity blobs
on a real subject that a 128x128 one trained on local noise as well misses, and that one
finds noise the 64x64 model cannot see. An ensemble keeps both: each member scores the
slice at its own size (the input resized as :func:`~anomaly_maps.preprocessing.
resize_planes` resizes scans, its map resized back with bilinear interpolation), each
map is divided by the member's healthy 99th percentile (from its stored ``fpi``
calibration, so every member is in the same units: 1 = the top 1 % of healthy pixels),
and the ensemble's map is the voxel-wise maximum: a pixel is flagged when any member
finds it unusual for that member. Neither FPI paper ensembles models; DISYRE v2
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

__all__ = ["RestorationEnsemble", "RestorationEnsembleConfig"]


@dataclass(frozen=True)
class RestorationEnsembleConfig(ModelConfig):
    """Members of a :class:`RestorationEnsemble` and their healthy scales.

    Parameters
    ----------
    members : tuple of RestorationConfig
        Each member's configuration, the largest ``size`` first: the ensemble reads
        slices of that size. All share ``in_channels``.
    scales : tuple of float
        Each member's healthy 99th percentile of its FPI map (> 0), its unit.
    """

    kind: ClassVar[str] = "restoration_ensemble"

    members: tuple[RestorationConfig, ...] = ()
    scales: tuple[float, ...] = ()

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

    def to_dict(self) -> dict[str, Any]:
        return {"members": [m.to_dict() for m in self.members], "scales": list(self.scales)}

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
        """``(M, B, 1, H, W)``: each member's FPI map of ``x`` in its healthy-p99 units."""
        check_slices(x, self.config)
        size = x.shape[-2:]
        maps = []
        for member, scale in zip(self.members, self.config.scales, strict=True):
            own = member.corruption_map(_resized(x, member.config.size))
            if own.shape[-2:] != size:
                own = F.interpolate(own, size=size, mode="bilinear", align_corners=False)
            maps.append(own / scale)
        return torch.stack(maps)

    def corruption_map(self, x: torch.Tensor) -> torch.Tensor:
        """The largest member map per pixel, ``(B, 1, H, W)``, >= 0; 1 = a member's
        healthy 99th percentile."""
        return self.member_maps(x).amax(0)
