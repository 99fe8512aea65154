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


def _centred(affine: np.ndarray) -> np.ndarray:
    """``affine`` moved so that the volume's centre voxel sits at world (0, 0, 0)."""
    out = affine.copy()
    out[:3, 3] = -affine[:3, :3] @ ((np.asarray(SHAPE) - 1) / 2)
    return out


@pytest.mark.parametrize("affine", [np.eye(4), _flipped_affine()], ids=["ras", "lpi"])
def test_panels_are_radiological_with_edge_letters(affine, tiny_checkpoint):
    """A lesion on the patient's right, anterior and superior: left half of the axial and
    coronal panels, left (nose side) of the sagittal one, upper half where up is S or A;
    the same in the PNG's pixels."""
    from io import BytesIO

    from matplotlib.image import imread

    from anomaly_maps.report import finding_figure_png, panel

    affine = _centred(affine)
    voxel = np.rint(np.linalg.solve(affine[:3, :3], np.array([6.0, 5.0, 4.0]) - affine[:3, 3]))
    heat = np.zeros(SHAPE, np.float32)
    heat[sphere(SHAPE, voxel, 1.5)] = 2.0
    scan = Volume(np.ones(SHAPE, np.float32), affine)
    regions = find_regions(heat, affine, 1.0)
    canonical = _Canonical(scan, heat, regions.labels)
    (finding,) = regions.findings
    expected = {"axial": ("R", "L", "A", "P"), "coronal": ("R", "L", "S", "I"),
                "sagittal": ("A", "P", "S", "I")}  # fmt: skip
    for view, edges in expected.items():
        p = panel(canonical, finding, view)
        assert p.edges == edges
        rows, cols = np.nonzero(p.heat >= 1.0)
        assert cols.max() < p.heat.shape[1] / 2 and rows.max() < p.heat.shape[0] / 2
        assert p.region[p.peak] and p.heat[p.peak] == 2.0
    png = imread(BytesIO(finding_figure_png(canonical, finding, 1.0, 1.0, 2.0)))[..., :3]
    colour = np.ptp(png, axis=2) > 0.2  # the overlay (inferno), outline and peak marker
    colour[: png.shape[0] // 6] = False  # the title
    axial = colour[:, : png.shape[1] // 3]
    cols = np.nonzero(axial)[1]
    assert cols.size and cols.max() < axial.shape[1] / 2  # right of the patient: left half


def test_empty_mask_is_a_valid_empty_report(tiny_checkpoint):
    """No voxel may be flagged: no finding, the page says so (no colour scale to take
    from an empty brain, no crash)."""
    heat = np.ones(SHAPE, np.float32)
    nothing = np.zeros(SHAPE, bool)
    scan = Volume(heat, np.eye(4))
    regions = find_regions(heat, scan.affine, 0.5, mask=nothing)
    assert regions.findings == () and not regions.labels.any()
    page = report_html(scan, _result(heat, nothing), regions, load_checkpoint(tiny_checkpoint),
                       "--threshold")  # fmt: skip
    assert "No region above the threshold" in page and "base64" not in page
