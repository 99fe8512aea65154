"""Model dock widget: open a checkpoint, read its card, choose where to score."""

from __future__ import annotations

import html
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..checkpoint import Checkpoint, load_checkpoint
from ..device import available_devices, resolve_device
from ..errors import AnomalyMapsError
from ._state import viewer_state

if TYPE_CHECKING:
    import napari.viewer

__all__ = ["ModelWidget", "bundled_checkpoints", "checkpoint_card"]


def bundled_checkpoints() -> list[Path]:
    """Checkpoints shipped in ``anomaly_maps/sample_data`` (offered without a dialog)."""
    folder = Path(str(resources.files("anomaly_maps") / "sample_data"))
    return sorted(folder.glob("*.safetensors"))


def checkpoint_card(checkpoint: Checkpoint) -> str:
    """HTML summary of a checkpoint: what it is, what it saw, how well it did.

    The rows are :meth:`~anomaly_maps.checkpoint.Checkpoint.card_rows`, built from the
    checkpoint's typed records, so the card and the command line say the same.
    """
    body = "".join(
        f"<tr><td><b>{html.escape(k)}</b></td><td>{html.escape(v)}</td></tr>"
        for k, v in checkpoint.card_rows()
    )
    return f"<table cellspacing='2'>{body}</table>"


class ModelWidget(QWidget):
    """Loads one checkpoint for the viewer's widgets and shows what it is."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = viewer
        self.state = viewer_state(viewer)

        self.open_button = QPushButton("Open checkpoint…")
        self.open_button.setToolTip("An anomaly-maps .safetensors checkpoint")
        self.open_button.clicked.connect(self._choose_file)
        self.bundled = QComboBox()
        self.bundled.addItem("bundled model…", None)
        for path in bundled_checkpoints():
            self.bundled.addItem(path.stem, path)
        self.bundled.setVisible(self.bundled.count() > 1)
        self.bundled.activated.connect(self._pick_bundled)

        self.device = QComboBox()
        auto = str(resolve_device("auto"))
        self.device.addItem(f"auto ({auto})", "auto")
        for name, description in available_devices():
            self.device.addItem(description, name)
        self.device.setToolTip("Where scoring runs; auto: CUDA, then Apple MPS, then CPU")
        self.device.currentIndexChanged.connect(
            lambda _: self.state.set_device(self.device.currentData())
        )

        self.card = QLabel("No checkpoint loaded.")
        self.card.setWordWrap(True)
        self.card.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #ff6b6b")
        self.message.hide()

        form = QFormLayout()
        form.addRow("Device", self.device)
        layout = QVBoxLayout(self)
        layout.addWidget(self.open_button)
        layout.addWidget(self.bundled)
        layout.addLayout(form)
        layout.addWidget(self.card)
        layout.addWidget(self.message)
        layout.addStretch()

    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open checkpoint", "", "Checkpoints (*.safetensors);;All files (*)"
        )
        if path:
            self.load(path)

    def _pick_bundled(self, index: int) -> None:
        path = self.bundled.itemData(index)
        if path is not None:
            self.load(path)

    def load(self, path: str | Path) -> Checkpoint | None:
        """Load ``path`` and share it; a bad file gets a message, the old model stays."""
        try:
            checkpoint = load_checkpoint(path, device="cpu")
        except AnomalyMapsError as err:
            self.message.setText(str(err))
            self.message.show()
            show_error(str(err))
            return None
        self.message.hide()
        self.card.setText(checkpoint_card(checkpoint))
        self.state.set_checkpoint(checkpoint)
        show_info(f"loaded {Path(path).name}: {'+'.join(checkpoint.kinds)}")
        return checkpoint
