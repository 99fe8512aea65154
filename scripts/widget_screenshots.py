"""Regenerate the dock-widget screenshots in docs/ (run under a display, e.g. `xvfb-run -a`).

xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/widget_screenshots.py \\
    --checkpoint runs/vae64.safetensors --bench bench128 --case 00019

Drives the widgets as a user would on one benchmark test case and its voxel label:
loads a calibrated copy of the checkpoint in the model widget, scores the scan with
``rec`` (sigma 2) and ``kl_grad``, thresholds the ``rec`` map at the calibration's best
Dice, and compares both maps side by side after "model" normalisation. The calibrated
copy (quantiles from 4 healthy validation volumes of the benchmark, best-Dice thresholds
pooled over all its anomalous validation volumes) is made once at ``--calibrated`` and
reused while it holds both calibrations.
"""

from __future__ import annotations

import argparse
import csv
import time
from collections.abc import Callable
from pathlib import Path

import napari
import numpy as np
from napari.utils.colormaps import DirectLabelColormap
from PIL import Image as PILImage
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QAbstractItemView, QApplication

from anomaly_maps.checkpoint import load_checkpoint, save_checkpoint
from anomaly_maps.io import load_volume
from anomaly_maps.napari._layers import show_plane
from anomaly_maps.scoring.calibration import calibrate, find_calibration, with_calibration

DOCS = Path(__file__).resolve().parents[1] / "docs"
PLUGIN = "napari-anomaly-maps"
SCORERS = [("rec", {"sigma": 2.0}), ("kl_grad", {})]
N_HEALTHY = 4
DOCK_WIDTH = 480


def calibrated_copy(checkpoint: Path, bench: Path, out: Path) -> Path:
    """``out``: ``checkpoint`` with both scorers calibrated on the benchmark's val split."""
    if out.exists():
        kept = load_checkpoint(out)
        if all(find_calibration(kept, scorer, params) for scorer, params in SCORERS):
            return out
    with open(bench / "cases.csv", newline="") as f:
        val = [row for row in csv.DictReader(f) if row["split"] == "val"]
    healthy = [row["case"] for row in val if row["label"] == "0"][:N_HEALTHY]
    labelled = [
        (
            load_volume(bench / "val/toy" / row["case"]),
            load_volume(bench / "val/toy_label/pixel" / row["case"]).data,
        )
        for row in val
        if row["label"] == "1"
    ]
    model = load_checkpoint(checkpoint)
    for scorer, params in SCORERS:
        scans = (load_volume(bench / "val/toy" / case) for case in healthy)
        model = with_calibration(model, calibrate(model, scorer, params, scans, labelled=labelled))
    return save_checkpoint(
        out, model.models, preprocessing=model.preprocessing, records=model.records,
        overwrite=True,
    )  # fmt: skip


def wait_until(done: Callable[[], bool], timeout_s: float = 900.0) -> None:
    """Keep the GUI running until ``done()`` (e.g. a worker re-enabled its button)."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"still waiting after {timeout_s:.0f} s")
        QApplication.processEvents()
        time.sleep(0.05)


def save_png(viewer: napari.Viewer, name: str) -> None:
    """The whole window (canvas and docks), as a 256-colour PNG to keep docs/ small."""
    QApplication.processEvents()
    shot = viewer.screenshot(canvas_only=False, flash=False)[..., :3]
    image = PILImage.fromarray(np.ascontiguousarray(shot)).quantize(256, dither=0)
    image.save(DOCS / name, optimize=True)


def upright_axial(viewer: napari.Viewer, scan: napari.layers.Image, file_index: int) -> None:
    """Axial plane ``file_index`` of a RAS-ordered scan, anterior up, zoomed to fit."""
    viewer.dims.order = (2, 1, 0)  # slider over I->S, rows P->A, columns L->R
    viewer.scene.camera.orientation2d = ("up", "right")
    show_plane(viewer, scan, 2, file_index)
    viewer.reset_view()


def main(checkpoint: Path, bench: Path, case: str, calibrated: Path) -> None:
    model_file = calibrated_copy(checkpoint, bench, calibrated)
    viewer = napari.Viewer(title=f"anomaly-maps: benchmark case {case}")
    viewer.window.resize(1600, 1000)
    viewer.window.activate()  # an inactive window never dismisses its notifications
    [scan] = viewer.open(str(bench / "test/toy" / f"{case}.nii.gz"), plugin=PLUGIN)
    [lesion] = viewer.open(str(bench / "test/toy_label/pixel" / f"{case}.nii.gz"), plugin=PLUGIN)
    lesion.name, lesion.contour = "lesion (label)", 1
    lesion.colormap = DirectLabelColormap(color_dict={None: "transparent", 1: "lime"})
    centre = int(np.argwhere(lesion.data > 0)[:, 2].mean().round())  # axial plane

    dock = viewer.window.add_plugin_dock_widget
    model_dock, model = dock(PLUGIN, "Anomaly model")
    model.load(model_file)
    model_dock.hide()  # back next to the threshold widget, which reads its calibration
    score_dock, score = dock(PLUGIN, "Anomaly scoring")
    window = score_dock.parentWidget()  # the QMainWindow the docks live in
    window.resizeDocks([score_dock], [DOCK_WIDTH], Qt.Orientation.Horizontal)
    names = [name for name, _ in SCORERS]
    score.select_scorers(names)
    for name, params in SCORERS:
        for key, value in params.items():
            getattr(score.form(name), key).value = value
    score.score_button.click()
    wait_until(score.score_button.isEnabled)
    rec, grad = (viewer.layers[f"{scan.name} {name}"] for name in names)
    grad.visible = False
    viewer.layers.move_multiple([viewer.layers.index(lesion)], len(viewer.layers))
    upright_axial(viewer, scan, centre)
    [top] = score.scorers.findItems(f"{min(names)}:", Qt.MatchFlag.MatchStartsWith)
    score.scorers.scrollToItem(top, QAbstractItemView.ScrollHint.PositionAtTop)
    save_png(viewer, "widget_score.png")

    score_dock.hide()
    model_dock.show()
    threshold_dock, threshold = dock(PLUGIN, "Anomaly threshold")
    threshold.map.value = rec
    threshold.truth.value = lesion
    threshold.dice_button.click()
    viewer.layers.move_multiple([viewer.layers.index(lesion)], len(viewer.layers))
    QApplication.processEvents()  # lay the filled widget out before sharing the height
    window.resizeDocks([model_dock, threshold_dock], [340, 600], Qt.Orientation.Vertical)
    save_png(viewer, "widget_threshold.png")

    model_dock.hide()
    threshold_dock.hide()
    _, compare = dock(PLUGIN, "Compare anomaly maps")
    compare.select_maps([rec.name, grad.name])
    compare.normalization.setCurrentText("model")
    compare.truth.value = lesion
    compare.compare_button.click()
    upright_axial(viewer, scan, centre)
    save_png(viewer, "widget_compare.png")
    viewer.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="a VAE checkpoint")
    parser.add_argument("--bench", type=Path, required=True, help="benchmark folder: "
                        "cases.csv, {val,test}/toy, {val,test}/toy_label/pixel")  # fmt: skip
    parser.add_argument("--case", default="00019", help="test case to show (default: a "
                        "large 'mirror' anomaly)")  # fmt: skip
    parser.add_argument("--calibrated", type=Path, default=Path("/tmp/vae_calibrated.safetensors"),
                        help="where the calibrated copy of --checkpoint is kept")  # fmt: skip
    args = parser.parse_args()
    main(args.checkpoint, args.bench, args.case, args.calibrated)
