"""Anatomical views: a scan upright in the radiological convention, whatever its file order.

The world dims of a layer from our reader are RAS millimetres in data-axis order
(:func:`~._geometry.world_affine`), so the dims holding R, A and S come from the scan's
affine. Every view puts anterior (axial) or superior (coronal, sagittal) up and has the
horizontal axis increase to the left: the patient's left on the screen's right, and the
nose on the left in sagittal views, as radiologists read them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from ..errors import ParameterError
from ._geometry import layer_affine, ras_axes
from ._layers import layer_state, show_plane

if TYPE_CHECKING:
    import napari
    from napari.layers import Layer

__all__ = ["VIEWS", "View", "ras_dims", "show_view", "upright_when_opened"]

View = Literal["axial", "coronal", "sagittal"]
VIEWS: dict[str, tuple[int, int, int]] = {
    "axial": (2, 1, 0),
    "coronal": (1, 2, 0),
    "sagittal": (0, 2, 1),
}
"""RAS axes of each view: (through the slices, up the screen, leftward on the screen)."""
_ORIENTATION = ("up", "left")


def ras_dims(viewer: napari.Viewer, layer: Layer) -> tuple[int, int, int]:
    """The viewer dims holding world R, A and S for ``layer``."""
    axes = ras_axes(layer_affine(layer_state(layer), np.shape(layer.data)))
    offset = viewer.dims.ndim - layer.ndim
    return tuple(offset + axes.index(ras) for ras in range(3))


def show_view(
    viewer: napari.Viewer, layer: Layer, view: View = "axial", index: int | None = None
) -> None:
    """Show ``layer`` in the ``view`` plane, upright; at data index ``index`` if given.

    Without ``index`` the slider keeps its world position (switching views stays on the
    point under study).
    """
    if view not in VIEWS:
        raise ParameterError(f"view {view!r}: expected one of {list(VIEWS)}")
    dims = ras_dims(viewer, layer)
    through, up, across = (dims[axis] for axis in VIEWS[view])
    others = [d for d in viewer.dims.order if d not in dims]
    viewer.dims.ndisplay = 2
    viewer.dims.order = (*others, through, up, across)
    viewer.scene.camera.orientation2d = _ORIENTATION
    if index is not None:
        offset = viewer.dims.ndim - layer.ndim
        show_plane(viewer, layer, through - offset, index)
    viewer.reset_view()


def upright_when_opened() -> None:
    """Show the next scan opened into an empty viewer upright and axial.

    Readers and sample-data functions only return layer data; napari adds the layers
    afterwards, so this waits for the first one. A viewer that already holds layers keeps
    the view its user chose.
    """
    import napari

    viewer = napari.current_viewer()
    if viewer is None or len(viewer.layers):
        return

    def first_added(event) -> None:
        viewer.layers.events.inserted.disconnect(first_added)
        if event.value.ndim == 3:
            show_view(viewer, event.value, "axial")

    viewer.layers.events.inserted.connect(first_added)
