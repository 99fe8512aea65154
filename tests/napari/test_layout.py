"""The demo's docks on a 1366x768 laptop screen (real widgets, Xvfb via pytest-xvfb)."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication, QDockWidget

from anomaly_maps.napari._demo import PLUGIN, WIDGETS, dock_widgets
from anomaly_maps.samples import sample_path

pytestmark = pytest.mark.gui

SCREEN = (1366, 768)


def _dock(widget) -> QDockWidget:
    while not isinstance(widget, QDockWidget):
        widget = widget.parentWidget()
    return widget


def _on_screen(widget) -> bool:
    """Drawn in the window (a dock behind another's tab is "visible" but off-screen)."""
    return widget.isVisible() and not widget.visibleRegion().isEmpty()


@pytest.fixture
def demo_docks(make_napari_viewer):
    """The demo's docks, filled as after its run: model card, scorer, map, labels, ROC."""
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(*SCREEN)
    scan, label = viewer.open_sample(PLUGIN, "demo")
    widgets = dock_widgets(viewer)
    model = widgets["Anomaly model"]
    model.load(sample_path("vae"))
    assert model.card_button.isVisible() and not model.card.isVisible()  # folded at first
    model.card_button.click()  # the card unfolded: the worst case
    assert model.card.isVisible() and "benchmark" in model.card.text()
    widgets["Anomaly scoring"].select_scorers(["rec", "kl_grad"])
    brain = scan.data > np.percentile(scan.data, 60)
    viewer.add_image(
        np.where(brain, scan.data, 0).astype(np.float32), name="demo scan rec",
        metadata={"anomaly_map": {"scorer": "rec", "params": {}, "checkpoint": None,
                                  "foreground": brain}},
        scale=scan.scale, translate=scan.translate, rotate=scan.rotate, units=scan.units,
    )  # fmt: skip
    widgets["Anomaly threshold"].truth.value = label
    QApplication.processEvents()
    return viewer, widgets


def test_docks_fit_a_laptop_screen(demo_docks):
    _, widgets = demo_docks
    window = _dock(widgets["Anomaly model"]).parentWidget()
    assert window.minimumSizeHint().height() < 700
    for name, widget in widgets.items():
        hint = _dock(widget).minimumSizeHint()
        assert hint.height() < 160, name
        assert hint.width() < 340, name
    docks = [d for d in window.findChildren(QDockWidget) if _on_screen(d)]
    right = [d for d in docks if window.dockWidgetArea(d) == Qt.DockWidgetArea.RightDockWidgetArea]
    left = [d for d in docks if window.dockWidgetArea(d) == Qt.DockWidgetArea.LeftDockWidgetArea]
    canvas = min(d.geometry().left() for d in right) - max(d.geometry().right() for d in left)
    assert canvas > SCREEN[0] / 2  # the canvas keeps most of the width


def test_demo_shows_the_threshold_dock_in_front_of_compare(demo_docks):
    _, widgets = demo_docks
    threshold, compare = widgets["Anomaly threshold"], widgets["Compare anomaly maps"]
    window = _dock(threshold).parentWidget()
    assert _dock(compare) in window.tabifiedDockWidgets(_dock(threshold))
    assert _on_screen(threshold) and not _on_screen(compare)
    assert set(widgets) == set(WIDGETS)
