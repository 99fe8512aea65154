"""Scan geometry <-> napari layer transforms.

A layer from our reader sits in world millimetres: ``scale`` holds the voxel sizes,
``translate`` the position of voxel (0, 0, 0), ``rotate`` the direction cosines (with
reflections, e.g. for LPS files); the NIfTI affine itself is kept in ``metadata``.
Maps and masks copy these kwargs so they overlay the scan exactly.
"""

from __future__ import annotations

from typing import Any

import nibabel as nib
import numpy as np

from ..io import Volume

__all__ = [
    "RAS_AXES",
    "layer_affine",
    "layer_geometry",
    "ras_axes",
    "volume_metadata",
    "world_affine",
]

RAS_AXES = ("L→R", "P→A", "I→S")
"""Labels of the world axes R, A, S (NIfTI RAS+ millimetres)."""


def ras_axes(affine: np.ndarray) -> tuple[int, int, int]:
    """The world axis (0 = R, 1 = A, 2 = S) each data axis runs closest to."""
    return tuple(int(a) for a in nib.io_orientation(np.asarray(affine))[:, 0])


def world_affine(affine: np.ndarray) -> np.ndarray:
    """``affine`` with its world rows in data-axis order: napari's world for the layer.

    napari slices data axis ``k`` along world dim ``k``, so a layer whose transform
    permutes axes (a sagittal or coronal acquisition) cannot be shown in 2D. Reordering
    the world axes to follow the data axes keeps every coordinate in RAS millimetres
    (dim ``k`` is RAS axis ``ras_axes(affine)[k]``) and leaves only flips and small
    rotations in the transform; RAS- and LPS-ordered scans are unchanged.
    """
    affine = np.asarray(affine, dtype=np.float64)
    return affine[[*ras_axes(affine), 3]]


def layer_geometry(affine: np.ndarray) -> dict[str, Any]:
    """napari ``scale``/``translate``/``rotate`` kwargs equal to a 4x4 voxel->world affine.

    A sheared affine has no rotate/scale decomposition; it is passed as napari's own
    ``affine`` instead.
    """
    affine = np.asarray(affine, dtype=np.float64)
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    directions = affine[:3, :3] / zooms
    if np.allclose(directions.T @ directions, np.eye(3), atol=1e-5):
        return {"scale": zooms, "translate": affine[:3, 3], "rotate": directions}
    return {"affine": affine}


def volume_metadata(volume: Volume) -> dict[str, Any]:
    """Layer ``metadata`` that lets the writer save with the source geometry."""
    return {
        "affine": volume.affine.copy(),
        "shape": volume.shape,
        "nifti_header": volume.header,
        "source_path": str(volume.path) if volume.path else None,
        "axcodes": "".join(volume.axcodes),
    }


def layer_affine(meta: dict[str, Any], shape: tuple[int, ...]) -> np.ndarray:
    """The voxel->world affine of a layer, from its napari state ``meta``.

    The source affine in ``metadata`` wins when the data still has the source's shape
    (no float drift from napari's decomposition); otherwise it is rebuilt from the
    layer's own transform, its world rows put back in RAS order (see
    :func:`world_affine`) when ``axis_labels`` name them.
    """
    from napari.utils.transforms import Affine

    source = (meta.get("metadata") or {}).get("affine")
    source_shape = (meta.get("metadata") or {}).get("shape")
    if source is not None and (source_shape is None or tuple(source_shape) == tuple(shape)):
        return np.asarray(source, dtype=np.float64)
    own = Affine(
        scale=meta.get("scale", (1, 1, 1)),
        translate=meta.get("translate", (0, 0, 0)),
        rotate=meta.get("rotate"),
        shear=meta.get("shear"),
    ).affine_matrix
    extra = meta.get("affine")
    extra = np.eye(4) if extra is None else np.asarray(getattr(extra, "affine_matrix", extra))
    world = extra @ own
    labels = list(meta.get("axis_labels") or ())
    if sorted(labels) == sorted(RAS_AXES):  # world dims in data-axis order: back to RAS rows
        world = world[[*(labels.index(axis) for axis in RAS_AXES), 3]]
    return world
