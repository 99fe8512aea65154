"""Findings: regions of a thresholded map against a naive reference on tiny volumes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from anomaly_maps.errors import ParameterError
from anomaly_maps.findings import (
    FINDING_COLUMNS,
    find_regions,
    findings_csv,
    healthy_fraction_above,
    validated_threshold,
    volume_rank,
)
from anomaly_maps.records import Calibration

from conftest import oblique_affine, sphere

SHAPE = (24, 20, 16)


def _blobs() -> np.ndarray:
    """Three blobs with distinct peaks, a one-voxel speck, and a diagonal pair that only
    26-connectivity joins."""
    heat = np.zeros(SHAPE, np.float32)
    heat[sphere(SHAPE, (6, 6, 5), 3)] = 2.0
    heat[6, 6, 5] = 5.0
    heat[3:8, 13:17, 10:13] = 3.0
    heat[5, 15, 11] = 4.0
    heat[18, 4, 3] = 9.0  # speck
    heat[18, 14, 10] = heat[19, 15, 11] = 1.5  # corner neighbours: one region
    return heat


def _reference(heat, affine, threshold, min_ml):
    """One region at a time with plain numpy: voxels, ml, peak, mean, centroid (mm)."""
    labels, n = ndimage.label(heat >= threshold, structure=np.ones((3, 3, 3)))
    voxel_ml = abs(np.linalg.det(affine[:3, :3])) / 1000
    rows = []
    for r in range(1, n + 1):
        where = np.argwhere(labels == r)
        if len(where) * voxel_ml < min_ml:
            continue
        values = heat[labels == r]
        peak = where[np.argmax(values)]
        centroid = affine[:3, :3] @ where.mean(axis=0) + affine[:3, 3]
        rows.append((len(where), len(where) * voxel_ml, values.max(), values.mean(),
                     affine[:3, :3] @ peak + affine[:3, 3], centroid,
                     tuple(zip(where.min(0), where.max(0) + 1, strict=True))))  # fmt: skip
    return sorted(rows, key=lambda row: -row[2])


@pytest.mark.parametrize(
    "affine",
    [np.diag([1.0, 1.0, 1.0, 1.0]), np.diag([0.7, 1.2, 3.0, 1.0]), oblique_affine()],
    ids=["iso", "anisotropic", "oblique"],
)
@pytest.mark.parametrize("min_ml", [0.0, 0.01])
def test_regions_match_reference(affine, min_ml):
    heat = _blobs()
    regions = find_regions(heat, affine, 1.0, min_ml=min_ml)
    expected = _reference(heat, affine, 1.0, min_ml)
    assert len(regions.findings) == len(expected)
    for f, (voxels, ml, peak, mean, peak_mm, centroid, bbox) in zip(
        regions.findings, expected, strict=True
    ):
        assert f.voxels == voxels and f.volume_ml == pytest.approx(ml)
        assert f.peak_score == pytest.approx(peak) and f.mean_score == pytest.approx(mean)
        np.testing.assert_allclose(f.peak_mm, peak_mm, atol=1e-9)
        np.testing.assert_allclose(f.centroid_mm, centroid, atol=1e-9)
        assert f.bbox == bbox
        assert (regions.labels == f.index).sum() == voxels
    assert [f.index for f in regions.findings] == list(range(1, len(expected) + 1))


def test_known_blobs():
    """Sizes, peaks and order by hand: the speck goes with a minimum size; the corner
    pair is one region (26-connectivity)."""
    affine = np.diag([2.0, 2.0, 2.0, 1.0])  # 8 mm^3 voxels
    heat = _blobs()
    all_ = find_regions(heat, affine, 1.0)
    assert [f.peak_score for f in all_.findings] == [9.0, 5.0, 4.0, 1.5]
    assert all_.findings[0].voxels == 1 and all_.findings[3].voxels == 2
    assert all_.findings[2].voxels == 5 * 4 * 3 and all_.findings[2].peak_voxel == (5, 15, 11)
    kept = find_regions(heat, affine, 1.0, min_ml=0.02)
    assert [f.peak_score for f in kept.findings] == [5.0, 4.0]
    assert kept.findings[1].volume_ml == pytest.approx(60 * 8 / 1000)
    assert kept.findings[0].peak_mm == (12.0, 12.0, 10.0)
    assert kept.findings[0].peak_axial_slice == 5
    assert kept.labels[18, 4, 3] == 0  # the speck is not labelled
    assert kept.total_ml == pytest.approx(sum(f.volume_ml for f in kept.findings))


def test_mask_limits_regions_and_empty_is_valid():
    heat = _blobs()
    mask = np.zeros(SHAPE, bool)
    mask[:12] = True
    assert {f.peak_score for f in find_regions(heat, np.eye(4), 1.0, mask=mask).findings} == {
        5.0,
        4.0,
    }
    empty = find_regions(heat, np.eye(4), 100.0)
    assert empty.findings == () and not empty.labels.any() and empty.largest_ml == 0.0
    assert findings_csv(empty).strip() == ",".join(FINDING_COLUMNS)


def test_healthy_above_from_calibration():
    calibration = Calibration("rec", {}, (0.0, 0.5, 0.99, 1.0), (0.0, 1.0, 3.0, 6.0),
                              (0.0, 1.0, 2.0, 3.0), 4)  # fmt: skip
    regions = find_regions(_blobs(), np.eye(4), 1.0, calibration=calibration)
    # peaks 9, 5, 4, 1.5: above the healthy maximum, then interpolated between levels
    expected = [0.0, 0.01 / 3, 0.02 / 3, 1 - (0.5 + 0.25 * 0.49)]
    assert [f.healthy_above for f in regions.findings] == pytest.approx(expected)
    assert find_regions(_blobs(), np.eye(4), 1.0).findings[0].healthy_above is None
    assert healthy_fraction_above(1.0, None) is None
    csv = findings_csv(regions, ["threshold 1"]).splitlines()
    assert csv[0] == "# threshold 1" and len(csv) == 2 + len(regions.findings)
    assert csv[2].split(",")[FINDING_COLUMNS.index("atlas_label")] == ""


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_bad_threshold_is_refused(bad):
    with pytest.raises(ParameterError, match="threshold"):
        find_regions(_blobs(), np.eye(4), bad)
    with pytest.raises(ParameterError, match="minimum size"):
        find_regions(_blobs(), np.eye(4), 1.0, min_ml=-1)


def test_validated_threshold_and_rank():
    with_dice = Calibration("rec", {}, (0.0, 0.99, 1.0), (0.0, 2.0, 3.0), (0, 1, 2), 3,
                            dice_threshold=1.5, dice=0.4)  # fmt: skip
    assert validated_threshold(with_dice, "rec")[0] == 1.5
    healthy = Calibration("rec", {}, (0.0, 0.99, 1.0), (0.0, 2.0, 3.0), (0, 1, 2), 3)
    assert validated_threshold(healthy, "rec") == (
        2.0,
        "99th percentile of healthy validation voxels",
    )
    with pytest.raises(ParameterError, match="--threshold"):
        validated_threshold(None, "rec of model.safetensors")
    assert volume_rank(2.5, [1.0, 2.0, 3.0, 4.0]) == 0.5
    for none in (None, []):
        with pytest.raises(ParameterError, match="calibrated rank"):
            volume_rank(2.5, none)
