"""The dock widgets driven like a user would, in a real viewer (Xvfb via pytest-xvfb)."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import Qt

from anomaly_maps.checkpoint import load_checkpoint
from anomaly_maps.io import load_volume
from anomaly_maps.metrics import dice_at, roc_auc
from anomaly_maps.napari._compare_widget import CompareWidget, grid_of
from anomaly_maps.napari._layers import displayed_plane, show_plane
from anomaly_maps.napari._model_widget import ModelWidget
from anomaly_maps.napari._score_widget import ScoreWidget, param_widget, write_slice_scores
from anomaly_maps.napari._slicing import ModelSlicing
from anomaly_maps.napari._threshold_widget import ThresholdWidget
from anomaly_maps.scoring import ParamSpec, score_volume

from conftest import sphere

pytestmark = pytest.mark.gui


@pytest.fixture
def viewer(make_napari_viewer, tiny_nifti):
    viewer = make_napari_viewer(show=True)
    viewer.open(str(tiny_nifti), plugin="napari-anomaly-maps")
    return viewer


@pytest.fixture
def widgets(viewer, qtbot, tiny_checkpoint):
    """Model and score widgets docked in the viewer, the tiny checkpoint loaded."""
    model, score = ModelWidget(viewer), ScoreWidget(viewer)
    viewer.window.add_dock_widget(model, name="model")
    viewer.window.add_dock_widget(score, name="score")
    assert model.load(tiny_checkpoint) is not None
    return model, score


def test_model_card_and_device(widgets, tiny_checkpoint):
    model, score = widgets
    text = model.card.text()
    assert "vae (latent 8)" in text and "16x16 axial slices" in text and "head.nii.gz" in text
    assert model.state.checkpoint.path == tiny_checkpoint
    assert (
        model.device.itemData(0) == "auto"
        and model.device.itemData(model.device.count() - 1) == "cpu"
    )
    model.device.setCurrentIndex(model.device.count() - 1)
    assert score.state.device == "cpu"
    assert "rec" in [score.scorers.item(i).data(0x0100) for i in range(score.scorers.count())]


def test_bad_checkpoint_is_a_message(widgets, tmp_path, tiny_nifti):
    model, _ = widgets
    before = model.state.checkpoint
    assert model.load(tiny_nifti) is None
    assert model.message.isVisible() and "not a safetensors checkpoint" in model.message.text()
    assert str(tiny_nifti) in model.message.text()
    assert model.state.checkpoint is before  # the loaded model stays


def test_preview_lands_on_the_displayed_plane(viewer, widgets, tiny_checkpoint, tiny_nifti):
    _, score = widgets
    score.select_scorers(["rec"])
    viewer.dims.order = (1, 2, 0)  # a plane the model does not slice, not upright
    viewer.scene.camera.orientation2d = ("down", "right")
    [preview] = score.preview()  # turns the view to the model's axial planes first
    assert tuple(viewer.scene.camera.orientation2d) == ("up", "left")  # upright, radiological
    axis, index = displayed_plane(viewer, viewer.layers["tiny_head"])
    volume = load_volume(tiny_nifti)
    slicing = ModelSlicing.for_scan(volume.affine, volume.shape, "axial")
    assert axis == slicing.file_axis
    [full] = score_volume(volume, load_checkpoint(tiny_checkpoint), [("rec", {})])
    plane = np.take(preview.data, index, axis=axis)
    np.testing.assert_allclose(plane, np.take(full.map, index, axis=axis), atol=1e-5)
    assert np.count_nonzero(plane) > 0
    others = np.delete(preview.data, index, axis=axis)
    assert not others.any()
    # the plane napari draws for this oblique scan is the one that was scored
    # (in the order napari displays the plane's axes: upright, rows before columns)
    remaining = [a for a in range(3) if a != axis]
    on_screen = [remaining.index(d) for d in viewer.dims.displayed]
    shown = np.asarray(viewer.layers["tiny_head"]._slice.image.raw)
    np.testing.assert_array_equal(
        shown, np.take(volume.data, index, axis=axis).transpose(on_screen)
    )
    np.testing.assert_array_equal(np.asarray(preview._slice.image.raw), plane.transpose(on_screen))


def _score(qtbot, score, scorers, **settings):
    """Click 'Score volume' and wait for the worker; returns the maps it added."""
    score.select_scorers(scorers)
    for name, value in settings.items():
        getattr(score, name).setValue(value)
    with qtbot.waitSignal(score.score().finished, timeout=120_000):
        pass
    return [layer for layer in score.viewer.layers if layer.name.startswith("tiny_head ")]


def test_score_volume_adds_maps_on_the_scan(viewer, widgets, qtbot, tiny_checkpoint, tiny_nifti):
    _, score = widgets
    scan = viewer.layers["tiny_head"]
    score.form("rec").sigma.value = 0.5
    maps = _score(qtbot, score, ["rec", "elbo"], batch_size=4)
    [heat] = maps  # elbo rates slices only: no map layer, but a curve in the plot
    assert heat.name == "tiny_head rec"
    expected = score_volume(load_volume(tiny_nifti), load_checkpoint(tiny_checkpoint),
                            [("rec", {"sigma": 0.5})])[0]  # fmt: skip
    np.testing.assert_allclose(heat.data, expected.map, atol=1e-5)
    for attr in ("scale", "translate", "rotate", "shear"):
        np.testing.assert_allclose(getattr(heat, attr), getattr(scan, attr))
    np.testing.assert_allclose(heat.affine.affine_matrix, scan.affine.affine_matrix)
    np.testing.assert_allclose(heat.metadata["affine"], scan.metadata["affine"])
    info = heat.metadata["anomaly_map"]
    assert info["scorer"] == "rec" and info["params"]["sigma"] == 0.5
    assert info["checkpoint"] == str(tiny_checkpoint)
    assert info["volume_score"] == pytest.approx(expected.volume_score)
    assert heat.colormap.name == "inferno" and heat.blending == "additive"
    assert set(score.slice_scores) == {"rec", "elbo"} and score.plot.isVisible()

    score.show_slice(3)  # what a click on the plot does
    axis, index = displayed_plane(viewer, scan)
    slicing = ModelSlicing.for_scan(scan.metadata["affine"], scan.data.shape, "axial")
    assert (axis, slicing.model_index(index)) == (slicing.file_axis, 3)


def test_cancel_stops_within_a_batch(widgets, qtbot):
    _, score = widgets
    score.select_scorers(["rec_grad"])
    score.batch_size.setValue(1)
    # a click the moment the first batch is reported (direct: in the worker's thread)
    score._relay.advanced.connect(lambda *_: score.cancel(), Qt.ConnectionType.DirectConnection)
    with qtbot.waitSignal(score.score().finished, timeout=120_000):
        pass
    assert "Cancelled: scoring stopped after 1 of 15 slices" in score.status.text()
    assert "tiny_head rec_grad" not in score.viewer.layers
    assert score.score_button.isEnabled() and not score.cancel_button.isEnabled()


def test_export_slice_scores(tmp_path):
    path = write_slice_scores(tmp_path / "s.csv", {"rec": np.array([0.0, 1.5]), "kl": np.ones(2)})
    assert path.read_text().splitlines() == ["slice,rec,kl", "0,0,1", "1,1.5,1"]


def test_param_widget_follows_spec():
    field = param_widget(ParamSpec("sigma", float, 1.0, (0.0, 8.0), "Gaussian smoothing"))
    assert (field.min, field.max, field.value) == (0.0, 8.0, 1.0)
    assert "Gaussian smoothing" in field.tooltip and "[0.0, 8.0]" in field.tooltip
    choice = param_widget(ParamSpec("norm", str, "l1", ("l1", "l2"), "norm"))
    assert list(choice.choices) == ["l1", "l2"] and choice.value == "l1"
    count = param_widget(ParamSpec("n", int, 8, (1, None), "samples"))
    assert count.min == 1 and count.value == 8


@pytest.fixture
def scored(viewer, widgets, qtbot):
    """The tiny head scored with `rec`, and its lesion as a Labels layer."""
    _, score = widgets
    [heat] = _score(qtbot, score, ["rec"])
    scan = viewer.layers["tiny_head"]
    lesion = sphere(scan.data.shape, (20, 12, 9), 3).astype(np.uint8)
    viewer.add_labels(lesion, name="lesion", scale=scan.scale, translate=scan.translate,
                      rotate=scan.rotate)  # fmt: skip
    return heat, lesion


def test_threshold_slider_updates_overlay_volume_and_metrics(viewer, scored):
    heat, lesion = scored
    widget = ThresholdWidget(viewer)
    viewer.window.add_dock_widget(widget, name="threshold")
    assert widget.map.value is heat
    mask = viewer.layers["tiny_head rec mask"]
    np.testing.assert_allclose(mask.scale, heat.scale)
    np.testing.assert_allclose(mask.rotate, heat.rotate)
    fg = heat.metadata["anomaly_map"]["foreground"]
    t99 = widget.value.value()
    assert widget.percentile.value() == pytest.approx(99.0, abs=0.2)
    np.testing.assert_array_equal(mask.data, (heat.data >= t99) & fg)

    widget.value.setValue(float(np.median(heat.data[fg])))  # a user dragging the slider
    t = widget.value.value()
    np.testing.assert_array_equal(mask.data, (heat.data >= t) & fg)
    assert widget.percentile.value() == pytest.approx(50, abs=1)
    voxel_ml = abs(np.linalg.det(heat.metadata["affine"][:3, :3])) / 1000
    flagged = np.count_nonzero(mask.data)
    assert f"{flagged * voxel_ml:.2f} ml" in widget.flagged.text()
    assert f"{100 * flagged / fg.sum():.2f} % of the brain" in widget.flagged.text()

    widget.percentile.setValue(90.0)
    assert np.count_nonzero(mask.data) == pytest.approx(0.1 * fg.sum(), rel=0.05)

    widget.truth.value = viewer.layers["lesion"]
    assert not widget.roc.isHidden()
    point = widget.stats.at(widget.overlay.threshold)
    counted = fg | (lesion > 0)
    assert point.dice == pytest.approx(
        dice_at(lesion[counted] > 0, heat.data[counted], widget.overlay.threshold)
    )
    assert widget.stats.auroc() == pytest.approx(roc_auc(lesion[counted] > 0, heat.data[counted]))
    assert f"Dice {point.dice:.3f}" in widget.metrics.text()
    assert not widget.dice_button.isEnabled()  # the tiny model holds no calibration


def _shot(viewer) -> np.ndarray:
    return viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)


def test_threshold_overlay_is_drawn_on_the_lesion(viewer, scored):
    widget = ThresholdWidget(viewer)
    widget.truth.value = viewer.layers["lesion"]
    best = widget.stats.best_dice()
    widget.set_threshold(best.threshold)
    assert best.dice > 0.3  # the tiny model does see the bright sphere
    scan = viewer.layers["tiny_head"]
    slicing = ModelSlicing.for_scan(scan.metadata["affine"], scan.data.shape, "axial")
    show_plane(viewer, scan, slicing.file_axis, 9)  # the lesion's centre plane
    viewer.reset_view()
    mask = viewer.layers["tiny_head rec mask"]
    truth = viewer.layers["lesion"]
    full = _shot(viewer)
    assert full.std() > 5 and (full.mean(axis=-1) > 20).mean() > 0.05  # not blank
    for layer in viewer.layers:
        layer.visible = layer is mask
    flagged = _shot(viewer).sum(axis=-1) > 60
    mask.visible, truth.visible = False, True
    lesion_px = _shot(viewer).sum(axis=-1) > 60
    assert flagged.sum() > 20 and lesion_px.sum() > 20
    assert (flagged & lesion_px).sum() > 0.3 * lesion_px.sum()


def test_compare_two_scorers_in_a_grid(viewer, widgets, qtbot, scored):
    _, score = widgets
    _score(qtbot, score, ["rec_grad"])
    compare = CompareWidget(viewer)
    viewer.window.add_dock_widget(compare, name="compare")
    compare.select_maps(["tiny_head rec", "tiny_head rec_grad"])
    compare.truth.value = viewer.layers["lesion"]
    compare.compare()
    assert grid_of(viewer).enabled and grid_of(viewer).stride == 3
    assert grid_of(viewer).actual_shape(viewer.layers) in ((1, 2), (2, 1))
    heats = [layer for layer in viewer.layers if layer.name.endswith("(volume)")]
    assert len(heats) == 2
    for heat in heats:  # volume normalisation: brain median 0, 99th percentile 1
        fg = heat.metadata["anomaly_map"]["foreground"]
        assert np.quantile(heat.data[fg], 0.99) == pytest.approx(1.0, abs=1e-3)
        np.testing.assert_allclose(heat.rotate, viewer.layers["tiny_head"].rotate)
    assert compare.overlays[0].threshold == 1.0
    compare.threshold.setValue(0.5)  # one slider moves both masks
    for overlay in compare.overlays:
        fg = overlay.index.foreground
        np.testing.assert_array_equal(overlay.layer.data, (overlay.index.values >= 0.5) & fg)
    assert compare.table.rowCount() == 2
    assert compare.table.item(0, 0).text() == "rec"
    assert float(compare.table.item(0, 1).text()) > 0.5  # AUROC
    shot = _shot(viewer)
    h, w = shot.shape[:2]
    halves = (shot[:, : w // 2], shot[:, w // 2 :]) if w > h else (shot[: h // 2], shot[h // 2 :])
    for half in halves:
        assert half.std() > 5  # each cell shows a scan with its map

    compare.stop()
    assert not grid_of(viewer).enabled and not any(
        layer.name.startswith("compare ") for layer in viewer.layers
    )
    assert viewer.layers["tiny_head"].visible


def test_widgets_from_the_plugin_menu_share_the_model(viewer, tiny_checkpoint):
    names = ["Anomaly model", "Anomaly scoring", "Anomaly threshold", "Compare anomaly maps"]
    docked = {
        name: viewer.window.add_plugin_dock_widget("napari-anomaly-maps", name)[1]
        for name in names
    }
    docked["Anomaly model"].load(tiny_checkpoint)
    scorers = docked["Anomaly scoring"].scorers
    assert scorers.count() > 5  # the score widget sees the checkpoint the model widget loaded
