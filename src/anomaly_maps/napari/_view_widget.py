"""View dock widget: one click turns the scan to the axial, coronal or sagittal plane."""

from __future__ import annotations

from typing import TYPE_CHECKING

from napari.layers import Image, Labels
from qtpy.QtWidgets import QHBoxLayout, QPushButton, QSizePolicy, QWidget

from ._views import VIEWS, View, show_view

if TYPE_CHECKING:
    import napari.viewer
    from napari.layers import Layer

__all__ = ["ViewWidget"]


class ViewWidget(QWidget):
    """Axial / coronal / sagittal buttons for the selected scan (else the first one)."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = viewer
        self.buttons: dict[str, QPushButton] = {}
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        row = QHBoxLayout(self)
        row.setContentsMargins(6, 2, 6, 2)
        for view in VIEWS:
            button = self.buttons[view] = QPushButton(view)
            button.setToolTip(f"Show the {view} plane upright (radiological: patient left on "
                              "the right)")  # fmt: skip
            button.clicked.connect(lambda _=False, v=view: self.turn(v))
            row.addWidget(button)

    def scan(self) -> Layer | None:
        """The layer the view follows: the selected 3D image or labels, else the first."""
        scans = [
            layer
            for layer in self.viewer.layers
            if isinstance(layer, Image | Labels) and layer.ndim == 3
        ]
        active = self.viewer.layers.selection.active
        return active if active in scans else (scans[0] if scans else None)

    def turn(self, view: View) -> None:
        """Turn the viewer to ``view`` of :meth:`scan`, at the same point."""
        layer = self.scan()
        if layer is not None:
            show_view(self.viewer, layer, view)
