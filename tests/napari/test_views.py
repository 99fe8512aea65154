"""Scans open upright, axial, radiological (patient left on screen right), whatever the
file's voxel order; the view dock switches planes (real viewer, Xvfb via pytest-xvfb)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from anomaly_maps.napari._view_widget import ViewWidget

pytestmark = pytest.mark.gui

PLUGIN = "napari-anomaly-maps"
# where each view must show its marker rod: (screen half vertically, horizontally)
EXPECTED = {"axial": ("top", "right"), "coronal": ("top", "right"), "sagittal": ("bottom", "left")}


def _scan(tmp_path, codes: str):
    """A dark box with three bright rods, stored with voxel axes ``codes``.

    In RAS voxels (x grows to the patient's right, y to anterior, z to superior), each
    rod runs through every slice of one view and through no mid slice of the others:
    along S at left-anterior (axial: top right on screen), along A at left-superior
    (coronal: top right), along R at anterior-inferior (sagittal: bottom left, nose left).
    """
    ras = np.full((40, 48, 32), 10, np.float32)
    ras[2:10, 38:46, :] = 200
    ras[2:10, :, 24:30] = 200
    ras[:, 38:46, 2:8] = 200
    img = nib.Nifti1Image(ras, np.diag([1.5, 1.5, 1.5, 1.0]))
    ornt = nib.orientations
    img = img.as_reoriented(
        ornt.ornt_transform(ornt.axcodes2ornt("RAS"), ornt.axcodes2ornt(codes))
    )
    assert "".join(nib.aff2axcodes(img.affine)) == codes
    path = tmp_path / f"{codes}.nii.gz"
    nib.save(img, path)
    return path


def _marker_side(viewer) -> tuple[str, str]:
    """Which halves of the canvas the bright marker is drawn in."""
    shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3].mean(axis=-1)
    rows, cols = np.nonzero(shot > 128)
    assert rows.size > 20, "no marker on screen"
    h, w = shot.shape
    return ("top" if rows.mean() < h / 2 else "bottom"), (
        "left" if cols.mean() < w / 2 else "right"
    )


@pytest.mark.parametrize("codes", ["RAS", "LPS", "SRA", "ASL", "LIP"])
def test_scans_open_upright_axial_and_switch_views(make_napari_viewer, tmp_path, codes):
    viewer = make_napari_viewer(show=True)
    [layer] = viewer.open(str(_scan(tmp_path, codes)), plugin=PLUGIN)
    labels = [layer.axis_labels[d] for d in viewer.dims.order]
    assert labels == ["I→S", "P→A", "L→R"]  # slider over I-S, rows P-A, columns L-R
    assert tuple(viewer.scene.camera.orientation2d) == ("up", "left")
    assert _marker_side(viewer) == EXPECTED["axial"]

    view = ViewWidget(viewer)
    for plane in ("coronal", "sagittal", "axial"):
        view.buttons[plane].click()
        assert _marker_side(viewer) == EXPECTED[plane], plane


def test_a_second_scan_keeps_the_users_view(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer(show=True)
    viewer.open(str(_scan(tmp_path, "RAS")), plugin=PLUGIN)
    ViewWidget(viewer).turn("sagittal")
    order = viewer.dims.order
    viewer.open(str(_scan(tmp_path, "LPS")), plugin=PLUGIN)
    assert viewer.dims.order == order
