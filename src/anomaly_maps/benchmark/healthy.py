"""Healthy anatomy for a benchmark: the template and its random healthy draws."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial.transform import Rotation

from ..io import Volume, load_volume
from ..preprocessing import foreground_mask

if TYPE_CHECKING:
    from .spec import BenchmarkSpec

__all__ = ["HealthyDraw", "Template", "grid_affine", "healthy_draw", "load_template"]


@dataclass(frozen=True)
class HealthyDraw:
    """One healthy volume on the benchmark grid: intensities in [0, 1] and brain mask."""

    data: np.ndarray
    brain: np.ndarray


@dataclass(frozen=True, eq=False)
class Template:
    """Healthy anatomy to draw volumes from: a skull-stripped scan, its intensities
    scaled to [0, 1] and its brain mask (foreground, holes filled), stacked for one
    resampling as a (1, 2, X, Y, Z) float32 tensor."""

    volume: Volume
    source: torch.Tensor


def load_template(path: str | os.PathLike | None = None) -> Template:
    """The template at ``path`` (a skull-stripped T1 NIfTI), by default the bundled MNI
    ICBM152 2009a T1. The brain mask is its foreground (computed once: ~1.5 s at 1 mm)."""
    from ..samples import sample_path

    volume = load_volume(sample_path("brain") if path is None else path)
    image = volume.data.astype(np.float32)
    image /= max(float(image.max()), 1e-12)
    brain = foreground_mask(volume.data).astype(np.float32)
    return Template(volume, torch.from_numpy(np.stack([image, brain]))[None])


def grid_affine(template: Volume, shape: tuple[int, int, int]) -> tuple[np.ndarray, float]:
    """(affine, zoom): the template's field of view fitted isotropically into ``shape``,
    centred; ``zoom`` = output voxels per template voxel."""
    tshape = np.asarray(template.shape, float)
    zoom = float(np.min(np.asarray(shape) / tshape))
    index = np.eye(4)  # output voxel -> template voxel
    index[:3, :3] /= zoom
    index[:3, 3] = (tshape - 1) / 2 - (np.asarray(shape) - 1) / 2 / zoom
    return template.affine @ index, zoom


def _unit_coordinates(shape: np.ndarray) -> np.ndarray:
    """4x4 map from voxel indices to grid_sample's [-1, 1] (align_corners=True)."""
    scale = 2 / (np.asarray(shape, float) - 1)
    unit = np.diag([*scale, 1.0])
    unit[:3, 3] = -1
    return unit


def healthy_draw(
    template: Template,
    shape: tuple[int, int, int],
    spec: BenchmarkSpec,
    rng: np.random.Generator,
) -> HealthyDraw:
    """One healthy draw of ``template`` (intensities in [0, 1]) on a grid of
    ``shape`` (see :func:`grid_affine`), with the spec's random affine, elastic
    deformation, bias field, gamma and noise. Deterministic given ``rng``'s state.

    The template's image and brain mask are resampled together in one trilinear
    ``grid_sample``; the bias field is a trilinear upsampling of 4^3 random values.
    """
    tshape = np.asarray(template.volume.shape)
    zooms = template.volume.zooms
    _, zoom = grid_affine(template.volume, shape)

    rotation = Rotation.from_euler("xyz", rng.uniform(-1, 1, 3) * spec.rotate_deg, degrees=True)
    scale = 1 + rng.uniform(-spec.scale, spec.scale)
    shift_mm = rng.uniform(-1, 1, 3) * spec.translate_mm
    # template voxel u = c_t + (R / scale (Z (v - c_out) / zoom) + shift + elastic) / Z,
    # Z = diag(template zooms): rotation and zoom act in millimetres about the centres
    z = np.diag(zooms)
    matrix = np.linalg.inv(z) @ rotation.as_matrix() / scale @ z / zoom
    offset = (tshape - 1) / 2 + shift_mm / zooms - matrix @ ((np.asarray(shape) - 1) / 2)
    # in grid_sample's normalised coordinates ([-1, 1], axes in (z, y, x) order)
    to_unit_in = _unit_coordinates(tshape)
    from_unit_out = np.linalg.inv(_unit_coordinates(np.asarray(shape)))
    index = np.eye(4)
    index[:3, :3], index[:3, 3] = matrix, offset
    theta = (to_unit_in @ index @ from_unit_out)[:3][::-1][:, [2, 1, 0, 3]]
    grid = F.affine_grid(
        torch.from_numpy(theta.astype(np.float32))[None], [1, 2, *shape], align_corners=True
    )
    # elastic displacement (mm) in the same units, upsampled from control points
    per_mm = 2 / ((tshape - 1) * zooms)
    coarse = rng.normal(size=(1, 3, *(spec.elastic_grid,) * 3)) * spec.elastic_mm
    coarse = (coarse * per_mm[None, :, None, None, None])[:, ::-1].astype(np.float32)
    elastic = F.interpolate(
        torch.from_numpy(coarse.copy()), size=shape, mode="trilinear", align_corners=True
    )
    grid += elastic.permute(0, 2, 3, 4, 1)
    warped = F.grid_sample(
        template.source, grid, mode="bilinear", padding_mode="zeros", align_corners=True
    )
    data, mask = warped[0, 0], warped[0, 1] >= 0.5

    coarse_bias = torch.from_numpy(
        (rng.normal(size=(1, 1, 4, 4, 4)) * spec.bias).astype(np.float32)
    )
    bias = F.interpolate(coarse_bias, size=shape, mode="trilinear", align_corners=True)[0, 0]
    data = data * torch.exp(bias)
    log_gamma = rng.uniform(*np.log(spec.gamma))
    data = data.clamp(0, 1) ** float(np.exp(log_gamma))
    noise = torch.from_numpy(rng.standard_normal(shape, dtype=np.float32))
    data = torch.where(mask, data + noise * spec.noise, data).clamp(0, 1)
    return HealthyDraw(data.numpy(), mask.numpy())
