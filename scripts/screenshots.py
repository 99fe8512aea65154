"""Regenerate the screenshots in docs/ (run under a display, e.g. `xvfb-run -a`).

xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshots.py
xvfb-run -a -s "-screen 0 1366x768x24" python scripts/screenshots.py --demo

``--demo`` runs ``anomaly-maps demo`` in a 1366x768 window (a laptop screen) and saves
the whole window with its docks: docs/widget_threshold.png (the demo as it opens),
widget_score.png (both calibrated scorers of the bundled VAE) and widget_compare.png.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import napari
import numpy as np
from imageio.v3 import imwrite
from PIL import Image as PILImage

from anomaly_maps.demo import demo_params
from anomaly_maps.napari._demo import build_demo
from anomaly_maps.napari._views import ras_dims, show_view
from anomaly_maps.samples import sample_path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def sample_brain_axial() -> None:
    """The sample brain opened through the plugin's reader: upright axial, as it opens."""
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1400, 900)
    [brain] = viewer.open(str(sample_path("brain")), plugin="napari-anomaly-maps")
    _axial_view(viewer, brain, 10.0)  # 10 mm above the AC-PC plane
    imwrite(DOCS / "viewer_sample_brain.png", viewer.screenshot(canvas_only=False, flash=False))
    viewer.close()


def _axial_view(viewer: napari.Viewer, layer: napari.layers.Layer, z_mm: float) -> None:
    """Upright axial view (radiological) through the plane ``z_mm`` above the origin."""
    show_view(viewer, layer, "axial")
    viewer.dims.set_point(ras_dims(viewer, layer)[2], z_mm)


def overlay(scan: str, anomaly_map: str, label: str) -> None:
    """A scan with an anomaly map (additive heat map) and the true lesion's outline."""
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1400, 900)
    viewer.open(scan, plugin="napari-anomaly-maps")
    [heat] = viewer.open(anomaly_map, plugin="napari-anomaly-maps")
    heat.colormap, heat.blending, heat.opacity = "inferno", "additive", 0.8
    tissue = heat.data[heat.data > 0]
    heat.contrast_limits = (float(np.percentile(tissue, 95)), float(tissue.max()))
    [truth] = viewer.open(label, plugin="napari-anomaly-maps")
    truth.contour = 2
    centre = truth.data_to_world(np.argwhere(truth.data > 0).mean(axis=0))
    _axial_view(viewer, float(centre[2]))
    imwrite(DOCS / "viewer_anomaly_map.png", viewer.screenshot(canvas_only=False, flash=False))
    viewer.close()


def _wait(done) -> None:
    """Keep the GUI running until ``done()``."""
    from qtpy.QtWidgets import QApplication

    while not done():
        QApplication.processEvents()
        time.sleep(0.05)
    for _ in range(20):
        QApplication.processEvents()


def _save(viewer: napari.Viewer, name: str) -> None:
    """The whole window (canvas and docks), as a 256-colour PNG to keep docs/ small."""
    shot = viewer.screenshot(canvas_only=False, flash=False)[..., :3]
    image = PILImage.fromarray(np.ascontiguousarray(shot)).quantize(256, dither=0)
    image.save(DOCS / name, optimize=True)


def demo_window() -> None:
    """The demo at 1366x768: the thresholded map, then both calibrated scorers scored
    (score dock in front) and compared after ``model`` normalisation (compare dock)."""
    viewer = napari.Viewer(title="anomaly-maps demo")
    viewer.window.resize(1366, 768)
    viewer.window.activate()  # an inactive window never dismisses its notifications
    demo = build_demo(viewer, device="cpu")
    _wait(lambda: demo.ready)
    _save(viewer, "widget_threshold.png")

    score, compare = demo.widgets["Anomaly scoring"], demo.widgets["Compare anomaly maps"]
    checkpoint = score.state.checkpoint
    scorers = [calibration.scorer for calibration in checkpoint.records.calibrations]
    score.select_scorers(scorers)
    for name in scorers:
        score.form(name).update(demo_params(checkpoint, name, None))
    _dock(demo.widgets["Anomaly threshold"]).hide()
    _dock(compare).hide()
    score.score_button.click()
    _wait(score.score_button.isEnabled)
    show_view(viewer, demo.scan, "axial", demo.plane[1])
    _save(viewer, "widget_score.png")

    _dock(score).hide()
    _dock(compare).show()
    compare.select_maps([f"{demo.scan.name} {name}" for name in scorers])
    compare.normalization.setCurrentText("model")
    compare.truth.value = demo.label
    compare.compare_button.click()
    show_view(viewer, demo.scan, "axial", demo.plane[1])
    _wait(lambda: True)
    _save(viewer, "widget_compare.png")
    viewer.close()


def _dock(widget):
    """The dock widget holding ``widget``."""
    from qtpy.QtWidgets import QDockWidget

    while not isinstance(widget, QDockWidget):
        widget = widget.parentWidget()
    return widget


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--overlay", nargs=3, metavar=("SCAN", "MAP", "LABEL"))
    parser.add_argument("--demo", action="store_true", help="the demo window at 1366x768")
    args = parser.parse_args()
    DOCS.mkdir(exist_ok=True)
    if args.overlay:
        overlay(*args.overlay)
    elif args.demo:
        demo_window()
    else:
        sample_brain_axial()
