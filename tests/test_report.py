"""The HTML report: views through the right voxel whatever the scan's axis order, and the
worklist's order."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from anomaly_maps.checkpoint import load_checkpoint
from anomaly_maps.findings import find_regions
from anomaly_maps.io import Volume
from anomaly_maps.report import _Canonical, report_html
from anomaly_maps.scoring.pipeline import VolumeScore
from anomaly_maps.worklist import WorklistRow, worklist_csv

from conftest import oblique_affine, sphere

SHAPE = (20, 18, 14)


def _flipped_affine() -> np.ndarray:
    """LPI-ish axis order: axes permuted and two of them flipped."""
    affine = np.zeros((4, 4))
    affine[0, 2], affine[1, 0], affine[2, 1], affine[3, 3] = -1.5, 1.0, -2.0, 1.0
    return affine


@pytest.mark.parametrize("affine", [_flipped_affine(), oblique_affine()], ids=["lpi", "oblique"])
def test_canonical_index_lands_on_the_same_voxel(affine):
    data = np.random.default_rng(0).random(SHAPE).astype(np.float32)
    canonical = _Canonical(Volume(data, affine), data, np.zeros(SHAPE, np.int32))
    for voxel in [(0, 0, 0), (3, 17, 5), (19, 2, 13)]:
        assert canonical.scan[canonical.index(voxel)] == data[voxel]


def _result(heat, foreground, map_=True) -> VolumeScore:
    return VolumeScore("rec", {}, heat if map_ else None, np.zeros(SHAPE[2]), 0.5, "slice_mean",
                       foreground, np.ones(SHAPE[2], bool))  # fmt: skip


def test_report_embeds_a_picture_per_top_finding(tiny_checkpoint):
    heat = np.zeros(SHAPE, np.float32)
    heat[sphere(SHAPE, (6, 6, 6), 2)] = 2.0
    heat[sphere(SHAPE, (14, 12, 8), 2)] = 3.0
    scan = Volume(heat + 1.0, _flipped_affine())
    foreground = np.ones(SHAPE, bool)
    regions = find_regions(heat, scan.affine, 1.0, mask=foreground)
    checkpoint = load_checkpoint(tiny_checkpoint)
    page = report_html(scan, _result(heat, foreground), regions, checkpoint, "--threshold")
    assert page.count("data:image/png;base64,") == 2
    assert "1 (raw map units): --threshold" in page and "vae (latent 8)" in page
    empty = find_regions(heat, scan.affine, 10.0, mask=foreground)
    page = report_html(scan, _result(heat, foreground), empty, checkpoint, "--threshold")
    assert "No region above the threshold" in page and "base64" not in page
    page = report_html(scan, _result(heat, foreground, map_=False), empty, checkpoint, "x")
    assert "rates slices only" in page


def test_worklist_puts_the_most_suspicious_first():
    regions = find_regions(np.zeros(SHAPE), np.eye(4), 1.0)
    rows = [
        WorklistRow("a", "rec", 0.2, None, regions),
        WorklistRow("b", "rec", 0.9, None, regions),
    ]
    assert [line.split(",")[0] for line in worklist_csv(rows).splitlines()[1:]] == ["b", "a"]
    ranked = [replace(rows[0], rank=0.0), replace(rows[1], rank=0.5)]  # rank beats the score
    assert [line.split(",")[0] for line in worklist_csv(ranked).splitlines()[1:]] == ["a", "b"]
