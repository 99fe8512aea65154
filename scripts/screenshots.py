"""Regenerate the screenshots in docs/ (run under a display, e.g. `xvfb-run -a`).

xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshots.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import napari
import numpy as np
from imageio.v3 import imwrite

from anomaly_maps.samples import sample_path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def sample_brain_axial() -> None:
    """The sample brain opened through the plugin's reader, axial slice, anterior up."""
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1400, 900)
    viewer.open(str(sample_path("brain")), plugin="napari-anomaly-maps")
    _axial_view(viewer, 10.0)  # 10 mm above the AC-PC plane
    imwrite(DOCS / "viewer_sample_brain.png", viewer.screenshot(canvas_only=False, flash=False))
    viewer.close()


def _axial_view(viewer: napari.Viewer, z_mm: float) -> None:
    viewer.dims.order = (2, 1, 0)  # slider over I->S (axial), rows P->A, columns L->R
    viewer.scene.camera.orientation2d = ("up", "right")  # anterior up
    viewer.dims.set_point(2, z_mm)
    viewer.reset_view()


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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--overlay", nargs=3, metavar=("SCAN", "MAP", "LABEL"))
    args = parser.parse_args()
    DOCS.mkdir(exist_ok=True)
    if args.overlay:
        overlay(*args.overlay)
    else:
        sample_brain_axial()
