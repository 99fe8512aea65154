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
