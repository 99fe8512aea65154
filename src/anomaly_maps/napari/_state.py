"""What the dock widgets of one viewer share: the loaded checkpoint and the device.

The model widget loads a checkpoint once; the score widget (and any other) reads it from
here and hears when it changes, so no widget loads its own copy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from psygnal import Signal

from ..checkpoint import Checkpoint
from ..scoring.calibration import Calibration, find_calibration

if TYPE_CHECKING:
    import napari

__all__ = ["ViewerState", "viewer_state"]


class ViewerState:
    """The checkpoint and device chosen in one viewer; ``changed`` fires on either."""

    changed = Signal()

    def __init__(self) -> None:
        self.checkpoint: Checkpoint | None = None
        self.device = "auto"

    def set_checkpoint(self, checkpoint: Checkpoint | None) -> None:
        self.checkpoint = checkpoint
        self.changed.emit()

    def set_device(self, device: str) -> None:
        self.device = device
        self.changed.emit()

    def calibration_for(self, info: dict[str, Any] | None) -> Calibration | None:
        """The loaded model's calibration of the scorer and parameters that made a map.

        None unless the map was made by the loaded checkpoint (``info`` is the map
        layer's ``metadata["anomaly_map"]``) and that checkpoint holds a calibration.
        """
        checkpoint = self.checkpoint
        if checkpoint is None or info is None or info.get("checkpoint") != str(checkpoint.path):
            return None
        return find_calibration(checkpoint, info["scorer"], info["params"])


_STATES: WeakKeyDictionary[napari.Viewer, ViewerState] = WeakKeyDictionary()


def viewer_state(viewer: napari.Viewer) -> ViewerState:
    """The shared state of ``viewer`` (created on first use, dropped with the viewer)."""
    viewer = getattr(viewer, "__wrapped__", viewer)  # napari hands plugins a proxy
    if viewer not in _STATES:
        _STATES[viewer] = ViewerState()
    return _STATES[viewer]
