"""The widgets with a calibrated model, docked from the plugin menu (as napari proxies them):
automatic thresholds, calibrated normalisations, and saving what they made."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anomaly_maps.checkpoint import load_checkpoint, save_checkpoint
from anomaly_maps.io import load_volume
from anomaly_maps.scoring.calibration import calibrate, find_calibration, with_calibration
from anomaly_maps.scoring.postprocess import healthy_p99_value, normalize_map

from conftest import sphere

pytestmark = pytest.mark.gui

PLUGIN = "napari-anomaly-maps"
SCORERS = [("rec", {"sigma": 1.0}), ("kl_grad", {"n_smooth": 2})]


@pytest.fixture(scope="module")
def lesion(tiny_volume) -> np.ndarray:
    """The tiny head's lesion (see ``tiny_volume``) as a 0/1 label image."""
    return sphere(tiny_volume.shape, (20, 12, 9), 3).astype(np.uint8)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory, tiny_checkpoint, tiny_volume, lesion) -> Path:
    """The tiny checkpoint with both scorers calibrated (and a best-Dice threshold)."""
    checkpoint = load_checkpoint(tiny_checkpoint)
    for scorer, params in SCORERS:
        calibration = calibrate(
            checkpoint, scorer, params, [tiny_volume], labelled=[(tiny_volume, lesion)]
        )
        checkpoint = with_calibration(checkpoint, calibration)
    out = tmp_path_factory.mktemp("calibrated") / "vae.safetensors"
    return save_checkpoint(
        out, checkpoint.models, preprocessing=checkpoint.preprocessing,
        training=checkpoint.training, metrics=checkpoint.metrics,
    )  # fmt: skip


@pytest.fixture
def scored(make_napari_viewer, qtbot, tiny_nifti, calibrated, lesion):
    """A viewer with the tiny head, its lesion, and both scorers' maps made by the
    plugin's docked widgets from the calibrated model; returns ``(viewer, dock)``."""
    viewer = make_napari_viewer(show=True)
    viewer.open(str(tiny_nifti), plugin=PLUGIN)
    scan = viewer.layers["tiny_head"]
    viewer.add_labels(lesion, name="lesion", scale=scan.scale, translate=scan.translate,
                      rotate=scan.rotate)  # fmt: skip

    def dock(name: str):
        return viewer.window.add_plugin_dock_widget(PLUGIN, name)[1]

    dock("Anomaly model").load(calibrated)
    score = dock("Anomaly scoring")
    score.select_scorers([name for name, _ in SCORERS])
    for name, params in SCORERS:
        for key, value in params.items():
            getattr(score.form(name), key).value = value
    with qtbot.waitSignal(score.score().finished, timeout=120_000):
        pass
    return viewer, dock


def _calibration(layer):
    info = layer.metadata["anomaly_map"]
    return find_calibration(load_checkpoint(info["checkpoint"]), info["scorer"], info["params"])


def test_automatic_thresholds_come_from_the_calibration(scored):
    viewer, dock = scored
    rec, grad = viewer.layers["tiny_head rec"], viewer.layers["tiny_head kl_grad"]
    widget = dock("Anomaly threshold")
    widget.map.value = grad
    widget.map.value = rec  # switching maps through napari's proxies (once recursed forever)
    assert widget.overlay.map_layer == rec
    assert [layer.name for layer in viewer.layers].count("tiny_head rec mask") == 1
    # The previous map's mask is kept but hidden; the selected map's mask shows.
    assert not viewer.layers["tiny_head kl_grad mask"].visible
    assert viewer.layers["tiny_head rec mask"].visible
    calibration = _calibration(rec)
    assert calibration.dice_threshold is not None
    assert widget.dice_button.isEnabled() and widget.fpr_button.isEnabled()
    assert "Calibrated on 1 healthy volume" in widget.auto_note.text()
    fg = rec.metadata["anomaly_map"]["foreground"]
    mask = viewer.layers["tiny_head rec mask"]

    widget.dice_button.click()
    assert widget.overlay.threshold == pytest.approx(calibration.dice_threshold)
    assert widget.value.value() == pytest.approx(calibration.dice_threshold, abs=1e-4)
    np.testing.assert_array_equal(mask.data, (rec.data >= calibration.dice_threshold) & fg)

    widget.fpr.setValue(5.0)  # percent
    widget.fpr_button.click()
    assert widget.overlay.threshold == pytest.approx(calibration.threshold_for_fpr(0.05))
    assert widget.value.value() == pytest.approx(calibration.threshold_for_fpr(0.05), abs=1e-4)


@pytest.mark.parametrize("method", ["model", "mood"])
def test_compare_normalises_with_the_calibration(scored, method):
    viewer, dock = scored
    compare = dock("Compare anomaly maps")
    sources = [viewer.layers[f"tiny_head {name}"] for name, _ in SCORERS]
    compare.select_maps([layer.name for layer in sources])
    compare.normalization.setCurrentText(method)
    compare.compare_button.click()
    assert len(compare.overlays) == 2
    for overlay in compare.overlays:
        heat = overlay.map_layer
        source = viewer.layers[f"tiny_head {heat.metadata['anomaly_map']['scorer']}"]
        assert heat.name.endswith(f"{source.name} ({method})")
        expected = normalize_map(
            source.data, method, foreground=source.metadata["anomaly_map"]["foreground"],
            calibration=_calibration(source),
        )  # fmt: skip
        np.testing.assert_allclose(heat.data, expected, rtol=1e-6)
    # the first shared threshold is the healthy 99th percentile in both units
    first = healthy_p99_value(method)
    assert [overlay.threshold for overlay in compare.overlays] == [first, first]


def test_map_and_mask_save_with_the_scan_geometry(scored, tiny_nifti, tmp_path):
    viewer, dock = scored
    widget = dock("Anomaly threshold")
    widget.map.value = rec = viewer.layers["tiny_head rec"]
    widget.dice_button.click()
    mask = viewer.layers["tiny_head rec mask"]
    assert mask.data.any()
    scan = load_volume(tiny_nifti)
    for layer, expected in [(rec, rec.data), (mask, mask.data)]:
        out = tmp_path / f"{layer.name}.nii.gz"
        viewer.layers.selection = {layer}
        viewer.layers.save(str(out), selected=True, plugin=PLUGIN)
        back = load_volume(out)
        assert back.shape == scan.shape
        np.testing.assert_allclose(back.affine, scan.affine, atol=1e-6)
        np.testing.assert_array_equal(back.data, expected)
