"""The score dock in the model's space: a scan off the model's grid is registered,
scored there and its map shown on the scan's own grid, as ``score --space auto`` does."""

from __future__ import annotations

import numpy as np
import pytest
from test_model_space import _moved, coarse_brain
from test_model_space_score import _mni_checkpoint

from anomaly_maps.checkpoint import load_checkpoint
from anomaly_maps.io import load_volume, save_volume
from anomaly_maps.model_space import score_in_space
from anomaly_maps.napari._model_widget import ModelWidget
from anomaly_maps.napari._score_widget import ScoreWidget

pytestmark = pytest.mark.gui


def test_score_dock_registers_a_scan_off_the_model_grid(
    make_napari_viewer, qtbot, tiny_checkpoint, tmp_path
):
    ckpt = _mni_checkpoint(tiny_checkpoint, tmp_path)
    scan, _ = _moved(coarse_brain(), (10, -5, 8), (4.0, -2.0, 3.0), (3.0, 3.0, 5.0), (60, 70, 34))
    path = save_volume(scan, tmp_path / "oblique.nii.gz")
    viewer = make_napari_viewer()
    [image] = viewer.open(str(path), plugin="napari-anomaly-maps")
    model, score = ModelWidget(viewer), ScoreWidget(viewer)
    assert model.load(ckpt) is not None
    score.select_scorers(["rec"])
    assert score.space.value == "auto"
    with qtbot.waitSignal(score.score().finished, timeout=120_000):
        pass
    assert "registered to MNI152NLin2009aSym 4 mm" in score.status.text()
    heat = viewer.layers["oblique rec"]
    [expected], _ = score_in_space(load_volume(path), load_checkpoint(ckpt), [("rec", {})])
    assert heat.data.shape == image.data.shape == scan.shape
    np.testing.assert_allclose(heat.data, expected.map, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(heat.affine.affine_matrix, image.affine.affine_matrix)
    assert not score.plot.isVisible()  # slice scores are the model's slices, not the scan's

    score.space.value = "native"
    with qtbot.waitSignal(score.score().finished, timeout=120_000):
        pass
    assert "registered" not in score.status.text()
    assert not np.allclose(viewer.layers["oblique rec"].data, expected.map)
