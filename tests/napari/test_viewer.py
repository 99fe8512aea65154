"""The plugin inside a real napari viewer (Xvfb via pytest-xvfb)."""

import numpy as np
import pytest

from anomaly_maps.io import load_volume

pytestmark = pytest.mark.gui


def _not_blank(shot: np.ndarray) -> bool:
    """A screenshot shows something: a sizeable bright region on a dark canvas."""
    gray = shot[..., :3].mean(axis=-1)
    return gray.std() > 5 and (gray > 20).mean() > 0.05


def test_open_nifti_through_plugin_and_screenshot(make_napari_viewer, tiny_nifti):
    viewer = make_napari_viewer(show=True)
    [layer] = viewer.open(str(tiny_nifti), plugin="napari-anomaly-maps")
    assert layer.name == "tiny_head"
    assert layer.metadata["axcodes"] == "".join(load_volume(tiny_nifti).axcodes)
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot.ndim == 3 and shot.shape[-1] == 4
    assert _not_blank(shot)


def test_sample_brain_screenshot_and_save(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer(show=True)
    [layer] = viewer.open_sample("napari-anomaly-maps", "brain")
    viewer.dims.set_point(0, 0.0)  # the mid-sagittal plane (x = 0 mm)
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert _not_blank(shot)
    # brain pixels are bright in the centre of the canvas, the corners are background
    h, w = shot.shape[:2]
    centre = shot[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3, :3].mean()
    corner = shot[: h // 10, : w // 10, :3].mean()
    assert centre > corner + 30

    out = tmp_path / "brain_copy.nii.gz"
    viewer.layers.save(str(out), selected=False, plugin="napari-anomaly-maps")
    back = load_volume(out)
    np.testing.assert_array_equal(back.data, layer.data)
    np.testing.assert_allclose(back.affine, layer.metadata["affine"])
