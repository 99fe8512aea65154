"""The napari demo (``anomaly-maps demo``): the demo scan, its lesion, a bundled model's
map thresholded live, through the plugin's own sample data and dock widgets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication

from ..demo import DEMO_MODEL, DEMO_SCORER, demo_params, lesion_plane
from ..errors import AnomalyMapsError, ParameterError
from ..samples import sample_path
from ._docks import DOCK_WIDTH, SCORE_HEIGHT, TITLE_HEIGHT, content_height
from ._layers import layer_volume
from ._views import show_view

if TYPE_CHECKING:
    import napari
    from napari.layers import Image, Labels
    from qtpy.QtWidgets import QWidget

__all__ = ["PLUGIN", "WIDGETS", "Demo", "build_demo", "dock_widgets", "open_demo"]

PLUGIN = "napari-anomaly-maps"
WIDGETS = (
    "Anatomical view",
    "Anomaly model",
    "Anomaly scoring",
    "Compare anomaly maps",
    "Anomaly threshold",
)
"""The dock widgets the demo opens, by their display names in the manifest (the last
one shares a tab with, and is shown in front of, the one before)."""


@dataclass(eq=False)
class Demo:
    """A viewer set up by :func:`build_demo`; ``ready`` turns True once the map is shown."""

    viewer: napari.Viewer
    scan: Image
    label: Labels
    widgets: dict[str, QWidget]
    scorer: str
    plane: tuple[int, int]
    worker: Any = None
    ready: bool = False


def dock_widgets(viewer: napari.Viewer) -> dict[str, QWidget]:
    """Dock the demo's widgets on the right, sized to leave most of the width to the canvas.

    Threshold shares a tab with compare (the canvas keeps its room) and is the one in
    front: it is the dock the demo is about. The view and model docks get the height of
    their content (the card folded), scoring a few rows, threshold the rest.
    """
    docks = {
        name: viewer.window.add_plugin_dock_widget(PLUGIN, name, tabify=name == WIDGETS[-1])
        for name in WIDGETS
    }
    threshold = docks["Anomaly threshold"][0]
    threshold.raise_()
    QApplication.processEvents()  # lay the docks out before sharing the room
    window = threshold.parentWidget()  # the QMainWindow holding every dock
    right = [dock for dock, _ in docks.values()]
    window.resizeDocks(right, [DOCK_WIDTH] * len(right), Qt.Orientation.Horizontal)
    column = [docks[name][0] for name in WIDGETS[:3]] + [threshold]
    room = sum(dock.height() for dock in column)
    view = docks["Anatomical view"][1].sizeHint().height() + TITLE_HEIGHT
    model = content_height(docks["Anomaly model"][1]) + TITLE_HEIGHT
    rest = max(room - view - model - SCORE_HEIGHT, SCORE_HEIGHT)
    heights = [view, model, SCORE_HEIGHT, rest]
    window.resizeDocks(column, heights, Qt.Orientation.Vertical)
    return {name: widget for name, (_, widget) in docks.items()}


def build_demo(
    viewer: napari.Viewer,
    *,
    model: str = DEMO_MODEL,
    scorer: str = DEMO_SCORER,
    params: dict[str, Any] | None = None,
    device: str = "auto",
) -> Demo:
    """Open the demo in ``viewer`` and start scoring; returns at once.

    Adds the demo scan and its label (the plugin's ``demo`` sample), docks the four
    widgets, loads the bundled ``model`` in the model widget (shared with the others),
    shows the axial slice through the lesion and starts the score widget's volume run.
    When it ends, the threshold widget takes the map, the label as ground truth and the
    calibration's best-Dice threshold; ``Demo.ready`` is then True.
    """
    scan, label = viewer.open_sample(PLUGIN, "demo")
    label.contour = 1  # an outline: the map stays visible inside the lesion
    widgets = dock_widgets(viewer)
    model_widget, score = widgets["Anomaly model"], widgets["Anomaly scoring"]
    checkpoint = model_widget.load(sample_path(model))
    if checkpoint is None:
        raise AnomalyMapsError(model_widget.message.text())
    index = model_widget.device.findData(device)
    if index < 0:
        choices = [model_widget.device.itemData(i) for i in range(model_widget.device.count())]
        raise ParameterError(f"device {device!r}: expected one of {choices}")
    model_widget.device.setCurrentIndex(index)

    demo = Demo(viewer, scan, label, widgets, scorer, lesion_plane(layer_volume(label)))
    show_view(viewer, scan, "axial", demo.plane[1])
    score.layer.value = scan
    score.select_scorers([scorer])
    if scorer not in score.selected_scorers():
        raise ParameterError(f"scorer {scorer!r} does not fit the bundled {model}")
    score.form(scorer).update(demo_params(checkpoint, scorer, params))
    demo.worker = score.score()
    if demo.worker is None:
        raise AnomalyMapsError(score.status.text())
    demo.worker.finished.connect(lambda: _show_map(demo))
    return demo


def _show_map(demo: Demo) -> None:
    """After scoring: threshold the map at the best validation Dice against the label."""
    name = f"{demo.scan.name} {demo.scorer}"
    if name not in demo.viewer.layers:  # cancelled, or an error the score widget shows
        return
    threshold = demo.widgets["Anomaly threshold"]
    threshold.map.value = demo.viewer.layers[name]
    threshold.truth.value = demo.label
    threshold.set_validation_dice()
    layers = demo.viewer.layers
    layers.move(layers.index(demo.label), len(layers))  # the outline on top
    show_view(demo.viewer, demo.scan, "axial", demo.plane[1])
    demo.ready = True


def open_demo(**options: Any) -> Demo:
    """A new napari window running :func:`build_demo` (``napari.run()`` is the caller's)."""
    import napari

    return build_demo(napari.Viewer(title="anomaly-maps demo"), **options)
