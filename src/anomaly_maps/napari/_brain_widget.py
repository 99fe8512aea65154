"""Brain mask dock: extract the brain of a head scan into an editable Labels layer.

A model trained on skull-stripped brains flags a head scan's skull and scalp
(:mod:`anomaly_maps.brain_mask`). The extraction (about 5-8 s for a 1 mm head on 2 CPU cores
CPU) runs in a worker thread; the layer it adds is what the score dock scores inside
(:func:`~anomaly_maps.napari._brain_mask.masked_volume`), as edited by the user.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from napari.layers import Image
from napari.qt.threading import thread_worker
from qtpy.QtWidgets import QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from ..brain_mask import brain_mask
from ..errors import AnomalyMapsError
from ._brain_mask import add_brain_mask_layer, mask_layer_name
from ._layers import layer_volume

if TYPE_CHECKING:
    import napari.viewer

__all__ = ["BrainMaskWidget"]


class BrainMaskWidget(QWidget):
    """One button: the selected scan's (else the first scan's) brain as a Labels layer."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = viewer
        self.worker = None
        self.button = QPushButton("Extract brain mask")
        self.button.setToolTip(
            "For head scans (skull on): the brain as an editable Labels layer; scoring "
            "then sees only the scan inside it. Paint or erase to correct it."
        )
        self.button.clicked.connect(self.extract)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 2, 6, 2)
        layout.addWidget(self.button)
        layout.addWidget(self.status)

    def scan(self) -> Image | None:
        """The selected image layer, else the first one."""
        active = self.viewer.layers.selection.active
        if isinstance(active, Image):
            return active
        return next((layer for layer in self.viewer.layers if isinstance(layer, Image)), None)

    def extract(self):
        """Start the extraction in a worker; returns it (``None`` when there is no scan)."""
        image = self.scan()
        if image is None:
            self.status.setText("Open a scan first.")
            return None
        self.button.setEnabled(False)
        self.status.setText(f"Extracting the brain of {image.name}…")

        @thread_worker
        def run():
            try:
                return brain_mask(layer_volume(image)), None
            except AnomalyMapsError as err:  # a message for the dock, not a traceback
                return None, err

        def done(result) -> None:
            mask, error = result
            self.button.setEnabled(True)
            self.worker = None
            if error is not None:
                self.status.setText(str(error))
                return
            add_brain_mask_layer(self.viewer, image, mask)
            self.status.setText(
                f"{mask_layer_name(image)}: {int(mask.sum())} voxels; scoring uses it as edited"
            )

        self.worker = run()
        self.worker.returned.connect(done)
        self.worker.start()
        return self.worker
