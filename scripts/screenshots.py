"""Regenerate the screenshots in docs/ (run under a display, e.g. `xvfb-run -a`).

xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshots.py
"""

from __future__ import annotations

from pathlib import Path

import napari
from imageio.v3 import imwrite

from anomaly_maps.samples import sample_path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def sample_brain_axial() -> None:
    """The sample brain opened through the plugin's reader, axial slice, anterior up."""
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1400, 900)
    viewer.open(str(sample_path("brain")), plugin="napari-anomaly-maps")
    viewer.dims.order = (2, 1, 0)  # slider over I->S (axial), rows P->A, columns L->R
    viewer.scene.camera.orientation2d = ("up", "right")  # anterior up
    viewer.dims.set_point(2, 10.0)  # 10 mm above the AC-PC plane
    viewer.reset_view()
    imwrite(DOCS / "viewer_sample_brain.png", viewer.screenshot(canvas_only=False, flash=False))
    viewer.close()


if __name__ == "__main__":
    DOCS.mkdir(exist_ok=True)
    sample_brain_axial()
