"""The napari demo built in a real viewer (Xvfb via pytest-xvfb), without napari.run()."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Image, Labels

from anomaly_maps.demo import DEMO_SCORER
from anomaly_maps.napari._demo import WIDGETS, build_demo
from anomaly_maps.napari._layers import displayed_plane
from anomaly_maps.scoring.calibration import find_calibration

pytestmark = pytest.mark.gui


def test_demo_shows_the_thresholded_map_on_the_lesion(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1400, 900)
    demo = build_demo(viewer, device="cpu")
    qtbot.waitUntil(lambda: demo.ready, timeout=300_000)

    layers = {layer.name: layer for layer in viewer.layers}
    scan, label = layers["demo scan"], layers["demo lesion"]
    assert isinstance(scan, Image) and isinstance(label, Labels) and label.data.any()
    heat, mask = layers[f"demo scan {DEMO_SCORER}"], layers[f"demo scan {DEMO_SCORER} mask"]
    for layer in (label, heat, mask):
        np.testing.assert_allclose(layer.affine.affine_matrix, scan.affine.affine_matrix)
        np.testing.assert_allclose(layer.scale, scan.scale)
        np.testing.assert_allclose(layer.translate, scan.translate)
    assert viewer.layers[-1] is label  # the outline on top

    assert all(any(name in key for key in viewer.window.dock_widgets) for name in WIDGETS)
    model, threshold = demo.widgets["Anomaly model"], demo.widgets["Anomaly threshold"]
    assert "benchmark" in model.card.text()
    calibration = find_calibration(
        model.state.checkpoint, DEMO_SCORER, heat.metadata["anomaly_map"]["params"]
    )
    assert threshold.overlay.threshold == pytest.approx(calibration.dice_threshold)
    assert threshold.truth.value is label and "Dice" in threshold.metrics.text()
    assert (mask.data.astype(bool) & label.data.astype(bool)).any()

    assert viewer.dims.order == (2, 1, 0)
    assert displayed_plane(viewer, scan) == demo.plane
    shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
    assert shot.std() > 10  # the brain is on screen
    assert ((shot.max(axis=-1) - shot.min(axis=-1)) > 80).mean() > 0.001  # map/mask colour
