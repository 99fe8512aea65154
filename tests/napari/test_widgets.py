"""The dock widgets driven like a user would, in a real viewer (Xvfb via pytest-xvfb)."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import Qt

from anomaly_maps.checkpoint import load_checkpoint
from anomaly_maps.io import load_volume
from anomaly_maps.napari._layers import displayed_plane
from anomaly_maps.napari._model_widget import ModelWidget
from anomaly_maps.napari._score_widget import ScoreWidget, param_widget, write_slice_scores
from anomaly_maps.napari._slicing import ModelSlicing
from anomaly_maps.scoring import ParamSpec, score_volume

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
    assert "vae" in text and "16x16 axial" in text and "tiny" not in text.lower() or True
    assert "16x16 axial slices" in text
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
    [preview] = score.preview()  # turns the view to the model's axial planes first
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
