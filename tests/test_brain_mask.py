"""Brain extraction on synthetic heads (known brain), head detection and user masks."""

from __future__ import annotations

import numpy as np
import pytest
from head_scans import small_brain, small_head
from scipy import ndimage

from anomaly_maps.brain_mask import (
    _bet_estimates,
    apply_brain_mask,
    brain_mask,
    load_brain_mask,
    looks_like_head,
    prepare_scan,
)
from anomaly_maps.errors import VolumeError
from anomaly_maps.io import Volume, save_volume
from anomaly_maps.preprocessing import foreground_mask
from anomaly_maps.synthetic_heads import synthetic_head


@pytest.fixture
def brain() -> Volume:
    return small_brain()


@pytest.fixture
def head() -> tuple[Volume, np.ndarray]:
    return small_head()


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


def test_synthetic_head_wraps_the_brain_in_dark_and_bright_shells(brain, head):
    scan, truth = head
    assert scan.shape == truth.shape and truth.sum() > 0
    outside = foreground_mask(scan.data) & ~truth
    assert outside.sum() > 0.2 * truth.sum()  # scalp and fat are foreground
    world = scan.affine @ [0, 0, 0, 1]  # the padded grid keeps world coordinates
    pad = np.linalg.solve(brain.affine, world)[:3]
    assert np.all(pad < 0)


def test_brain_mask_matches_the_true_brain_of_a_head(head):
    scan, truth = head
    mask = brain_mask(scan)
    assert mask.dtype == bool and mask.shape == scan.shape
    assert _dice(mask, truth) >= 0.93


def test_a_head_looks_like_a_head_and_a_brain_does_not(brain, head, tiny_volume):
    assert looks_like_head(head[0])[0]
    assert not looks_like_head(brain)[0]
    assert looks_like_head(tiny_volume) == (False, 0.0)  # far smaller than a brain


def test_applied_mask_leaves_the_foreground_inside_the_brain(head):
    scan, truth = head
    masked = apply_brain_mask(scan, truth)
    assert np.array_equal(masked.data[truth], scan.data[truth])
    assert not (foreground_mask(masked.data) & ~truth).any()
    np.testing.assert_array_equal(masked.affine, scan.affine)


def test_prepare_scan_extracts_only_a_head_for_a_model_of_brains(brain, head):
    scan = head[0]
    assert prepare_scan(scan, "auto", model_on_brains=False) == (scan, None)
    assert prepare_scan(scan, "none", model_on_brains=True) == (scan, None)
    assert prepare_scan(brain, "auto", model_on_brains=True) == (brain, None)
    masked, note = prepare_scan(scan, "auto", model_on_brains=True)
    assert "looks like a head" in note and "--brain-mask none" in note
    assert masked.data.min() == masked.data[~brain_mask(scan)].max()


def test_a_mask_file_must_lie_on_the_scans_grid_and_overlap_it(tmp_path, head):
    scan, truth = head
    good = save_volume(scan.with_data(truth.astype(np.uint8)), tmp_path / "mask.nii.gz")
    np.testing.assert_array_equal(load_brain_mask(good, scan), truth)
    shifted = scan.affine.copy()
    shifted[:3, 3] += 5
    moved = save_volume(Volume(truth.astype(np.uint8), shifted), tmp_path / "moved.nii.gz")
    with pytest.raises(VolumeError, match=r"--brain-mask .*moved.nii.gz.*scan's grid"):
        load_brain_mask(moved, scan)
    small = save_volume(Volume(truth[1:].astype(np.uint8), scan.affine), tmp_path / "s.nii.gz")
    with pytest.raises(VolumeError, match="do not match"):
        load_brain_mask(small, scan)
    far = np.zeros_like(truth, dtype=np.uint8)
    far[0, 0, 0] = 1
    corner = save_volume(scan.with_data(far), tmp_path / "corner.nii.gz")
    with pytest.raises(VolumeError, match="does not overlap"):
        load_brain_mask(corner, scan)


def test_no_brain_in_an_empty_scan_is_one_line(brain):
    with pytest.raises(VolumeError, match="no brain found"):
        brain_mask(brain.with_data(np.zeros(brain.shape, np.float32)))


@pytest.fixture(scope="module")
def bridged_head() -> tuple[Volume, np.ndarray]:
    """A head with a 10 mm scalp and a 5 mm tissue bridge from the brain to it, as in
    Colin27 (the threshold-and-erode extractor took its whole head: Dice 0.60)."""
    return synthetic_head(small_brain(), seed=3, scalp_mm=(8.0, 12.0), bridge_mm=5.0)


def _joined_to_the_scalp(scan: Volume, truth: np.ndarray) -> bool:
    """Whether tissue brighter than half the brain's median links brain and scalp."""
    labels, _ = ndimage.label(scan.data > 0.5 * np.median(scan.data[truth]))
    inside = np.unique(labels[truth & (labels > 0)])
    scalp = foreground_mask(scan.data) & ~ndimage.binary_dilation(truth, iterations=8)
    return bool(np.isin(labels[scalp], inside).any())


def test_the_bridge_joins_brain_and_scalp_only_where_asked(bridged_head):
    assert _joined_to_the_scalp(*bridged_head)
    thick = synthetic_head(small_brain(), seed=3, scalp_mm=(8.0, 12.0))
    assert not _joined_to_the_scalp(*thick)
    assert thick[0].shape == bridged_head[0].shape  # padded for the thicker scalp


def test_brain_mask_cuts_a_tissue_bridge_to_a_thick_scalp(bridged_head):
    scan, truth = bridged_head
    mask = brain_mask(scan)
    assert _dice(mask, truth) >= 0.93
    assert (mask & ~ndimage.binary_dilation(truth, iterations=3)).sum() < 0.01 * truth.sum()
    assert looks_like_head(scan)[0]


def test_bet_estimates_of_a_ball_are_its_centre_radius_and_level():
    zooms = np.array([2.0, 2.0, 2.0])
    grid = np.indices((40, 40, 40)).astype(float)
    ball = ((grid - np.array([18.0, 20.0, 22.0])[:, None, None, None]) ** 2).sum(0) <= 10**2
    data = np.where(ball, 100.0, 0.0).astype(np.float32)
    bet = _bet_estimates(data, zooms)
    assert bet.t2 == 0.0 and bet.tm == 100.0  # the ball fills most of its own sphere
    np.testing.assert_allclose(bet.centre, [18.0, 20.0, 22.0], atol=1e-6)
    assert bet.radius == pytest.approx(20.0, rel=0.02)  # 10 voxels of 2 mm
