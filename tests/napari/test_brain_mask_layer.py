"""The score dock's brain mask layer: extracted, editable, used to score the scan."""

from __future__ import annotations

import numpy as np
import pytest
from head_scans import small_head

from anomaly_maps.errors import VolumeError
from anomaly_maps.io import save_volume
from anomaly_maps.napari._brain_mask import add_brain_mask_layer, masked_volume
from anomaly_maps.napari._layers import layer_volume

pytestmark = pytest.mark.gui


def test_the_edited_mask_layer_is_what_gets_scored(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    scan, truth = small_head()
    [image] = viewer.open(str(save_volume(scan, tmp_path / "head.nii.gz")),
                          plugin="napari-anomaly-maps")  # fmt: skip
    assert masked_volume(viewer, image).data.tolist() == layer_volume(image).data.tolist()
    labels = add_brain_mask_layer(viewer, image)
    assert labels.name == "head brain mask" and labels.data.shape == scan.shape
    np.testing.assert_allclose(labels.affine.affine_matrix, image.affine.affine_matrix)
    dice = 2 * ((labels.data > 0) & truth).sum() / ((labels.data > 0).sum() + truth.sum())
    assert dice >= 0.93
    edited = labels.data.copy()
    edited[:, :, : scan.shape[2] // 2] = 0  # the user erases the lower half
    labels.data = edited
    volume = masked_volume(viewer, image)
    assert np.all(volume.data[edited == 0] == scan.data.min())
    np.testing.assert_array_equal(volume.data[edited > 0], scan.data[edited > 0])
    labels.data = np.zeros_like(edited)
    with pytest.raises(VolumeError, match="is empty"):
        masked_volume(viewer, image)


def test_the_brain_mask_dock_extracts_in_a_worker_and_scoring_sees_it(
    make_napari_viewer, qtbot, tmp_path
):
    from anomaly_maps.napari._brain_widget import BrainMaskWidget
    from anomaly_maps.napari._model_widget import ModelWidget
    from anomaly_maps.napari._score_widget import ScoreWidget
    from anomaly_maps.samples import sample_path

    viewer = make_napari_viewer()
    scan, _ = small_head()
    [image] = viewer.open(str(save_volume(scan, tmp_path / "head.nii.gz")),
                          plugin="napari-anomaly-maps")  # fmt: skip
    ModelWidget(viewer).load(sample_path("vae"))
    dock = BrainMaskWidget(viewer)
    with qtbot.waitSignal(dock.extract().finished, timeout=120_000):
        pass
    labels = viewer.layers["head brain mask"]
    assert "scoring uses it" in dock.status.text() and labels.data.any()
    score = ScoreWidget(viewer)
    before = score._stack(image)
    edited = labels.data.copy()
    edited[:, :, : scan.shape[2] // 2] = 0
    labels.data = edited  # an edit invalidates the preview's cached slices
    after = score._stack(image)
    assert after is not before
    assert after.foreground[edited == 0].sum() == 0


def test_the_brain_mask_dock_without_a_scan_says_so(make_napari_viewer):
    from anomaly_maps.napari._brain_widget import BrainMaskWidget

    dock = BrainMaskWidget(make_napari_viewer())
    assert dock.extract() is None and "Open a scan" in dock.status.text()
