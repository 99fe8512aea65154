"""The napari demo (``anomaly-maps demo``): the demo scan, its lesion, a bundled model's
map thresholded live, through the plugin's own sample data and dock widgets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..demo import demo_params, lesion_plane
from ..errors import AnomalyMapsError, ParameterError
from ..samples import sample_path
from ._layers import layer_volume, show_plane

if TYPE_CHECKING:
    import napari
    from napari.layers import Image, Labels
    from qtpy.QtWidgets import QWidget

__all__ = ["PLUGIN", "WIDGETS", "Demo", "build_demo", "open_demo"]

PLUGIN = "napari-anomaly-maps"
WIDGETS = ("Anomaly model", "Anomaly scoring", "Anomaly threshold", "Compare anomaly maps")
"""The dock widgets the demo opens, by their display names in the manifest."""


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


def show_axial(viewer: napari.Viewer, scan: Image, plane: tuple[int, int]) -> None:
    """Axial plane ``(data axis, index)`` of ``scan``, upright: anterior up, left-right across."""
    viewer.dims.order = (2, 1, 0)  # slider over I->S, rows P->A, columns L->R (RAS world)
    viewer.scene.camera.orientation2d = ("up", "right")
    show_plane(viewer, scan, *plane)
    viewer.reset_view()


def build_demo(
    viewer: napari.Viewer,
    *,
    model: str = "vae",
    scorer: str = "rec",
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
    widgets = {  # compare shares a tab with threshold: the canvas keeps its room
        name: viewer.window.add_plugin_dock_widget(PLUGIN, name, tabify=name == WIDGETS[-1])[1]
        for name in WIDGETS
    }
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
    show_axial(viewer, scan, demo.plane)
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
    show_axial(demo.viewer, demo.scan, demo.plane)
    demo.ready = True


def open_demo(**options: Any) -> Demo:
    """A new napari window running :func:`build_demo` (``napari.run()`` is the caller's)."""
    import napari

    return build_demo(napari.Viewer(title="anomaly-maps demo"), **options)
