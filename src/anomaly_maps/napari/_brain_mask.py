"""The score dock's brain mask: extracted into an editable Labels layer, used when scoring.

A head scan scored with a model of skull-stripped brains lights up its skull
(:mod:`anomaly_maps.brain_mask`). *Brain mask* shows the extracted brain as a Labels
layer beside the scan, so the user can paint or erase it; scoring then sees the scan
inside that (edited) layer, as ``anomaly-maps score --brain-mask FILE`` does.
"""

from __future__ import annotations

import napari
import numpy as np
from napari.layers import Image, Labels

from ..brain_mask import apply_brain_mask, brain_mask
from ..errors import VolumeError
from ..io import Volume
from ._layers import add_or_update, layer_volume

__all__ = ["add_brain_mask_layer", "mask_layer_name", "mask_token", "masked_volume"]


def mask_layer_name(image: Image) -> str:
    """The name of ``image``'s brain mask layer (one per scan)."""
    return f"{image.name} brain mask"


def add_brain_mask_layer(
    viewer: napari.Viewer, image: Image, mask: np.ndarray | None = None
) -> Labels:
    """Show ``mask`` (default: the brain extracted from ``image``'s scan) as an editable
    Labels layer placed like the scan (the layer is refilled if it exists)."""
    if mask is None:
        mask = brain_mask(layer_volume(image))
    return add_or_update(
        viewer, "labels", mask.astype(np.uint8), source=image, name=mask_layer_name(image),
        opacity=0.3,
    )  # fmt: skip


def masked_volume(viewer: napari.Viewer, image: Image) -> Volume:
    """The scan to score: inside its brain mask layer (as edited) when there is one."""
    volume = layer_volume(image)
    name = mask_layer_name(image)
    if name not in viewer.layers or not isinstance(viewer.layers[name], Labels):
        return volume
    mask = np.asarray(viewer.layers[name].data) > 0
    if mask.shape != volume.shape:
        raise VolumeError(
            f"layer {name!r} has shape {mask.shape}: expected the scan's {volume.shape}"
        )
    if not mask.any():
        raise VolumeError(f"layer {name!r} is empty: paint the brain or delete the layer")
    return apply_brain_mask(volume, mask)


def mask_token(viewer: napari.Viewer, image: Image) -> tuple[int, int] | None:
    """What the scan's brain mask layer holds now, cheaply (``None``: no mask layer): a
    cache of the scan's model slices is stale when this changes (painting or erasing
    changes the count of brain voxels)."""
    name = mask_layer_name(image)
    layer = next((layer for layer in viewer.layers if layer.name == name), None)
    if not isinstance(layer, Labels):
        return None
    return id(layer.data), int(np.count_nonzero(layer.data))
