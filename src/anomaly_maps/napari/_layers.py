"""Layers the widgets make: anomaly maps and masks that sit exactly on their scan.

A map or mask copies its scan layer's transform (scale, translate, rotate, shear,
affine) and the scan's NIfTI geometry in ``metadata``, so it overlays the scan voxel for
voxel and the plugin's writer saves it with the scan's affine and header. What made a
map (scorer, parameters, checkpoint, per-slice scores, brain mask) is kept under
``metadata["anomaly_map"]``.

napari's own reader opens 2D images (PNG, JPEG, TIFF) as 2D layers, RGB with
``rgb=True``; the plugin leaves them to it. :func:`layer_volume` turns such a layer into
the one-slice volume :mod:`anomaly_maps.images2d` reads from a file, and
:func:`add_or_update` lays a map of it back on the layer's 2D grid.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image, Labels
from napari.utils.colormaps import DirectLabelColormap

from ..images2d import image_affine
from ..io import Volume
from ._geometry import layer_affine
from ._threshold import ThresholdIndex

if TYPE_CHECKING:
    import napari
    from napari.layers import Layer

__all__ = [
    "MAP_KEY",
    "MaskOverlay",
    "add_or_update",
    "displayed_plane",
    "heat_limits",
    "layer_state",
    "layer_volume",
    "map_info",
    "show_plane",
    "transform_kwargs",
    "voxel_ml",
]

MAP_KEY = "anomaly_map"
"""``metadata`` key of the widgets' record of how a map (or a mask: ``mask_of``) was made."""
_GEOMETRY_KEYS = ("affine", "shape", "nifti_header", "source_path", "axcodes")


def transform_kwargs(layer: Layer) -> dict[str, Any]:
    """Layer kwargs that give a new layer exactly ``layer``'s placement in the world."""
    return {
        "scale": np.array(layer.scale),
        "translate": np.array(layer.translate),
        "rotate": np.array(layer.rotate),
        "shear": np.array(layer.shear),
        "affine": layer.affine.affine_matrix.copy(),
        "axis_labels": layer.axis_labels,
        "units": layer.units,
    }


def layer_state(layer: Layer) -> dict[str, Any]:
    """The parts of napari's layer state that :func:`~._geometry.layer_affine` reads."""
    return {
        "metadata": layer.metadata,
        "scale": layer.scale,
        "translate": layer.translate,
        "rotate": layer.rotate,
        "shear": layer.shear,
        "affine": layer.affine.affine_matrix,
        "axis_labels": layer.axis_labels,
    }


def _image2d_volume(layer: Image) -> Volume:
    """A 2D layer as the ``(rows, cols, 1[, 3])`` volume its file reads as (alpha dropped)."""
    data = np.asarray(layer.data)
    pixels = data[:, :, None, :3] if layer.rgb else data[:, :, None]
    path = layer.source.path or None
    return Volume(pixels, image_affine(tuple(float(s) for s in layer.scale)), path)


def layer_volume(layer: Image) -> Volume:
    """The scan behind an Image layer, with the affine it was read with; a 2D layer (an
    image napari's reader opened) as a one-slice volume."""
    if layer.ndim == 2:
        return _image2d_volume(layer)
    data = np.asarray(layer.data)
    path = layer.metadata.get("source_path")
    return Volume(
        data,
        layer_affine(layer_state(layer), data.shape),
        path,
        layer.metadata.get("nifti_header"),
    )


def voxel_ml(layer: Layer) -> float:
    """Volume of one voxel of ``layer`` in millilitres."""
    affine = layer_affine(layer_state(layer), np.shape(layer.data))
    return abs(float(np.linalg.det(affine[:3, :3]))) / 1000.0


def map_info(layer: Layer) -> dict[str, Any] | None:
    """How an anomaly-map layer was made, or None for any other layer."""
    return layer.metadata.get(MAP_KEY)


def heat_limits(values: np.ndarray, foreground: np.ndarray | None) -> tuple[float, float]:
    """Contrast limits that light up the top 10 % of the brain and leave the rest dark."""
    inside = values[foreground] if foreground is not None else values.ravel()
    if not inside.size:
        return 0.0, 1.0
    lo, hi = float(np.percentile(inside, 90)), float(inside.max())
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def add_or_update(
    viewer: napari.Viewer,
    kind: str,
    data: np.ndarray,
    *,
    source: Layer,
    name: str,
    info: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Image | Labels:
    """Add an Image/Labels layer placed like ``source``, or refill the one called ``name``.

    Refilling keeps what the user changed on the layer (colormap, opacity, ...) and
    only replaces its data and record. Layers are compared with ``isinstance`` and
    ``==``, never ``type``/``is``: a plugin's viewer hands out proxies of them. A
    one-slice map of a 2D ``source`` is shown as 2D, on the image's pixels.
    """
    if source.ndim == 2 and data.ndim == 3 and data.shape[2] == 1:
        data = data[:, :, 0]
    metadata = {k: source.metadata[k] for k in _GEOMETRY_KEYS if k in source.metadata}
    if info is not None:
        metadata[MAP_KEY] = info
    if name in viewer.layers:
        layer = viewer.layers[name]
        if (
            isinstance(layer, Image if kind == "image" else Labels)
            and layer.data.shape == data.shape
        ):
            layer.metadata = metadata
            layer.data = data
            return layer
        viewer.layers.remove(layer)
    add = viewer.add_image if kind == "image" else viewer.add_labels
    return add(data, name=name, metadata=metadata, **transform_kwargs(source), **kwargs)


def _layer_axes(viewer: napari.Viewer, layer: Layer) -> int:
    """Offset of ``layer``'s first axis among the viewer's dims."""
    return viewer.dims.ndim - layer.ndim


def _world_to_data(layer: Layer) -> np.ndarray:
    """``layer``'s (ndim+1)-square world->data matrix, from its public transform."""
    n = layer.ndim
    origin = np.asarray(layer.data_to_world(np.zeros(n)), dtype=float)
    matrix = np.eye(n + 1)
    for i in range(n):
        matrix[:n, i] = np.asarray(layer.data_to_world(np.eye(n)[i]), dtype=float) - origin
    matrix[:n, n] = origin
    return np.linalg.inv(matrix)


def displayed_plane(viewer: napari.Viewer, layer: Layer) -> tuple[int, int] | None:
    """``(data_axis, index)`` of the plane of ``layer`` on screen in 2D, else None.

    napari slices a layer along the data axis of the slider's world axis, at the index
    that the *diagonal* of its world->data transform gives for the slider position (for
    an oblique scan it drops the out-of-plane rotation); this follows it exactly.
    """
    if viewer.dims.ndisplay != 2:
        return None
    offset = _layer_axes(viewer, layer)
    axes = [a - offset for a in viewer.dims.not_displayed if a >= offset]
    if len(axes) != 1:
        return None
    [axis] = axes
    inverse = _world_to_data(layer)
    world = viewer.dims.point[offset + axis]
    index = np.round(inverse[axis, axis] * world + inverse[axis, -1])
    return axis, int(np.clip(index, 0, layer.data.shape[axis] - 1))


def show_plane(viewer: napari.Viewer, layer: Layer, axis: int, index: int) -> None:
    """Show plane ``index`` of ``layer``'s data axis ``axis`` (that axis on the slider)."""
    offset = _layer_axes(viewer, layer)
    world_axis = axis + offset
    if viewer.dims.ndisplay != 2 or viewer.dims.not_displayed[-1] != world_axis:
        order = [a for a in viewer.dims.order if a != world_axis]
        viewer.dims.ndisplay = 2
        viewer.dims.order = (*order[:-2], world_axis, *order[-2:])
    inverse = _world_to_data(layer)
    viewer.dims.set_point(world_axis, (index - inverse[axis, -1]) / inverse[axis, axis])


class MaskOverlay:
    """A Labels layer showing ``map >= threshold`` over a map, refilled in place.

    The threshold statistics come from a :class:`ThresholdIndex` built once; moving the
    threshold rewrites the layer's own uint8 buffer with one vectorised comparison and
    asks napari to redraw, without allocating a volume.

    Parameters
    ----------
    viewer, map_layer
        Where to show it, and the map it thresholds (its geometry is copied).
    values
        The values to threshold; default ``map_layer.data`` (the compare widget passes
        a normalised copy).
    name, color
        Layer name and the colour of flagged voxels.
    """

    def __init__(
        self,
        viewer: napari.Viewer,
        map_layer: Image,
        *,
        values: np.ndarray | None = None,
        name: str | None = None,
        color: str = "cyan",
    ) -> None:
        self.map_layer = map_layer
        values = np.asarray(map_layer.data if values is None else values)
        foreground = (map_info(map_layer) or {}).get("foreground")
        if foreground is None or foreground.shape != values.shape:
            foreground = values != 0  # a map from disk: 0 outside the scored brain
        self.index = ThresholdIndex(values, foreground, voxel_ml(map_layer))
        self.buffer = np.zeros(values.shape, np.uint8)
        self.layer = add_or_update(
            viewer, "labels", self.buffer, source=map_layer,
            name=name or f"{map_layer.name} mask", opacity=0.6, info={"mask_of": map_layer.name},
            colormap=DirectLabelColormap(color_dict={None: "transparent", 1: color}),
        )  # fmt: skip
        self.threshold = float("nan")

    def set(self, threshold: float, plane: tuple[int, int] | None = None) -> None:
        """Show ``map >= threshold``, only on ``plane`` ``(axis, index)`` if given.

        Updating only the plane on screen keeps a slider drag interactive on 256^3
        volumes; the whole volume follows when the drag ends.
        """
        self.threshold = float(threshold)
        where: tuple[int | slice, ...] = ()
        if plane is not None:
            where = tuple(
                plane[1] if a == plane[0] else slice(None) for a in range(self.layer.ndim)
            )
        self.index.apply(self.threshold, self.buffer, where)
        # only the slice changed: no extent, highlight or (while dragging) thumbnail work
        self.layer.refresh(thumbnail=plane is None, extent=False, highlight=False)
