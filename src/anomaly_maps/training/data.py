"""Training data: slices of healthy volumes in host memory and the validation split."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import AnomalyMapsError
from ..io import load_volume
from ..preprocessing import PreprocessingSpec, foreground_mask, to_view_slices
from ..standardization import scan_landmarks, standard_scale

__all__ = ["SliceData", "code_data", "fit_standard_scale", "load_slices", "split_train_val"]

log = logging.getLogger(__name__)


@dataclass
class SliceData:
    """Training slices of several volumes, kept in host memory.

    Attributes
    ----------
    images
        (N, C, S, S) float32 preprocessed slices (C = 1 for scans, 3 for RGB images), or
        (N, h, w) int64 codes for a prior.
    positions
        (N,) float32 slice position in [0, 1] along the slicing axis.
    volume
        (N,) int64 index into ``sources`` of the volume each slice came from.
    sources
        Names of the volumes (file names).
    """

    images: torch.Tensor
    positions: torch.Tensor
    volume: torch.Tensor
    sources: list[str]

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: torch.Tensor) -> SliceData:
        return SliceData(
            self.images[index], self.positions[index], self.volume[index], self.sources
        )


def fit_standard_scale(
    paths: Sequence[str | os.PathLike], spec: PreprocessingSpec
) -> PreprocessingSpec:
    """``spec`` with the Nyúl standard scale of the training scans ``paths`` (their
    foreground as :func:`~anomaly_maps.preprocessing.to_slices` finds it), for
    ``normalization="nyul"``; see :mod:`anomaly_maps.standardization`."""
    marks = []
    for path in paths:
        scan = load_volume(path)
        if scan.channels != 1:
            raise AnomalyMapsError(
                f"{path}: has {scan.channels} channels: histogram standardisation (nyul) "
                "takes single-channel scans; expected --normalization percentile"
            )
        fg = foreground_mask(scan.data, spec.foreground_fraction)
        marks.append(scan_landmarks(scan.data[fg], spec.percentiles))
    return replace(spec, landmarks=standard_scale(marks))


def load_slices(
    paths: Sequence[str | os.PathLike],
    spec: PreprocessingSpec,
    *,
    min_foreground: float = 0.05,
    extra_axes: Sequence[str] = (),
    progress: Callable[[Iterator[Any], int], Iterator[Any]] | None = None,
) -> SliceData:
    """Cut every volume (or 2D image: one slice) into model slices, along ``spec.axis``
    and each of ``extra_axes``; keep those with enough foreground. All inputs need the
    same number of channels."""
    if not paths:
        raise AnomalyMapsError("no training volumes given")
    images, positions, volume = [], [], []
    first: tuple[int, str] | None = None  # channels and path of the first input
    items: Iterator[Any] = iter(enumerate(paths))
    if progress is not None:
        items = progress(items, len(paths))
    for i, path in items:
        scan = load_volume(path)
        first = first or (scan.channels, str(path))
        if scan.channels != first[0]:
            raise AnomalyMapsError(
                f"{path}: has {scan.channels} channel(s) but {first[1]} has {first[0]}: "
                "expected training inputs with one number of channels"
            )
        for stack in to_view_slices(scan, spec, (spec.axis, *extra_axes)).values():
            keep = stack.mask.mean(axis=(1, 2)) >= min_foreground
            kept = torch.from_numpy(stack.images[keep])
            images.append(kept if kept.ndim == 4 else kept[:, None])
            positions.append(torch.from_numpy(stack.positions[keep]))
            volume.append(torch.full((int(keep.sum()),), i, dtype=torch.int64))
    data = SliceData(
        torch.cat(images),
        torch.cat(positions),
        torch.cat(volume),
        [Path(p).name for p in paths],
    )
    if len(data) == 0:
        raise AnomalyMapsError(
            f"no slice of {len(paths)} volume(s) has >= {min_foreground:.0%} foreground"
        )
    return data


def split_train_val(data: SliceData, fraction: float, seed: int) -> tuple[SliceData, SliceData]:
    """Hold out whole volumes (several volumes) or random slices (a single volume)."""
    g = torch.Generator().manual_seed(seed)
    n_volumes = len(data.sources)
    if fraction == 0:
        return data, data.subset(torch.zeros(0, dtype=torch.int64))
    if n_volumes >= 2:
        n_val = min(n_volumes - 1, max(1, round(fraction * n_volumes)))
        val_volumes = torch.randperm(n_volumes, generator=g)[:n_val]
        is_val = torch.isin(data.volume, val_volumes)
    else:
        log.warning("one training volume: validation slices come from the same volume")
        is_val = torch.zeros(len(data), dtype=torch.bool)
        is_val[torch.randperm(len(data), generator=g)[: max(1, round(fraction * len(data)))]] = (
            True
        )
    return data.subset(torch.nonzero(~is_val)[:, 0]), data.subset(torch.nonzero(is_val)[:, 0])


def code_data(vqvae: nn.Module, data: SliceData, device: torch.device, batch: int) -> SliceData:
    """Replace slices by their VQ-VAE code grids (the prior's training data)."""
    vqvae.eval()
    with torch.no_grad():
        codes = [vqvae.codes(x.to(device)).cpu() for x in data.images.split(batch)]
    return SliceData(torch.cat(codes), data.positions, data.volume, data.sources)
