"""The threshold dock's findings table: refreshed on release, sorted, clickable, exportable."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from anomaly_maps.findings import FINDING_COLUMNS, find_regions
from anomaly_maps.napari._findings_table import COLUMNS
from anomaly_maps.napari._layers import add_or_update, displayed_plane
from anomaly_maps.napari._threshold_widget import ThresholdWidget

from conftest import sphere

pytestmark = pytest.mark.gui

PEAKS = {(8, 10, 8): 3.0, (20, 12, 9): 5.0, (15, 24, 6): 2.0}


@pytest.fixture
def dock(make_napari_viewer, tiny_nifti, tiny_volume):
    """The tiny head with a hand-made map of three blobs, and the threshold dock on it."""
    viewer = make_napari_viewer(show=True)
    viewer.open(str(tiny_nifti), plugin="napari-anomaly-maps")
    scan = viewer.layers["tiny_head"]
    heat = np.zeros(tiny_volume.shape, np.float32)
    for center, peak in PEAKS.items():
        blob = sphere(heat.shape, center, 2.5)
        heat[blob] = peak / 2
        heat[center] = peak
    foreground = tiny_volume.data > 0
    heat[~foreground] = 0
    info = {"scorer": "rec", "params": {}, "foreground": foreground}
    layer = add_or_update(viewer, "image", heat, source=scan, name="blobs", info=info)
    widget = ThresholdWidget(viewer)
    viewer.window.add_dock_widget(widget, name="threshold")
    widget.findings.min_ml.setValue(0.0)
    return viewer, widget, layer, tiny_volume


def test_table_follows_the_threshold_on_release(dock, qtbot):
    _, widget, layer, volume = dock
    widget.set_threshold(0.5)
    qtbot.waitUntil(lambda: widget.findings.regions is not None
                    and widget.findings.regions.threshold == 0.5)  # fmt: skip
    table = widget.findings.table
    assert table.rowCount() == 3
    peak_col = [h for h, _ in COLUMNS].index("peak")
    assert [float(table.item(r, peak_col).text()) for r in range(3)] == [5.0, 3.0, 2.0]
    expected = find_regions(layer.data, volume.affine, 0.5, mask=volume.data > 0)
    assert [f.voxels for f in widget.findings.regions.findings] == [
        f.voxels for f in expected.findings
    ]  # the layer's geometry gives the scan's affine

    widget.value.setSliderDown(True)  # a drag: steps do not refill the table
    widget.value.setValue(2.5)
    qtbot.wait(400)
    assert widget.findings.regions.threshold == 0.5
    widget.value.setSliderDown(False)
    widget._released()
    assert widget.findings.regions.threshold == pytest.approx(2.5, abs=1e-3)
    assert table.rowCount() == 2


def test_click_goes_to_the_peak_and_highlights_it(dock, qtbot):
    viewer, widget, layer, _ = dock
    widget.set_threshold(0.5)
    widget.findings.refresh_now()
    widget.findings.go_to(1)  # the second-highest peak, at (8, 10, 8)
    finding = widget.findings.regions.findings[1]
    assert finding.peak_voxel == (8, 10, 8)
    axis, index = displayed_plane(viewer, layer)
    assert index == finding.peak_voxel[axis]
    shown = [d - (viewer.dims.ndim - layer.ndim) for d in viewer.dims.displayed]
    world = np.asarray(layer.data_to_world(np.asarray(finding.peak_voxel, float)))
    np.testing.assert_allclose(viewer.scene.camera.center[-2:], world[shown])
    highlight = viewer.layers["blobs findings"]
    assert highlight.selected_label == finding.index and highlight.show_selected_label
    assert (highlight.data == finding.index).sum() == finding.voxels


def test_export_csv(dock, tmp_path):
    _, widget, _, _ = dock
    widget.set_threshold(0.5)
    widget.findings.refresh_now()
    out = tmp_path / "findings.csv"
    widget.findings.export_csv(str(out))
    rows = list(csv.reader(line for line in out.open() if not line.startswith("#")))
    assert tuple(rows[0]) == FINDING_COLUMNS and len(rows) == 4


def test_bench_times_the_refresh():
    from anomaly_maps.napari._bench import bench_findings

    times = bench_findings(size=32, repeats=1)
    assert sorted(times) == ["findings_refresh_p99_9_ms", "findings_refresh_p99_ms"]
    assert all(t > 0 for t in times.values())


def test_save_report_needs_the_maps_model(dock, tmp_path, tiny_checkpoint):
    from anomaly_maps.errors import AnomalyMapsError
    from anomaly_maps.napari._model_widget import ModelWidget

    viewer, widget, layer, _ = dock
    widget.set_threshold(0.5)
    widget.findings.refresh_now()
    out = tmp_path / "report.html"
    with pytest.raises(AnomalyMapsError, match="load the model that made this map"):
        widget.findings.save_report(str(out))
    assert not out.exists()
    assert ModelWidget(viewer).load(tiny_checkpoint) is not None
    layer.metadata["anomaly_map"] = {**layer.metadata["anomaly_map"],
                                     "checkpoint": str(tiny_checkpoint),
                                     "source_layer": "tiny_head"}  # fmt: skip
    widget.findings.save_report(str(out))
    page = out.read_text()
    assert page.count("data:image/png;base64,") == 3 and "vae (latent 8)" in page


def test_atlas_names_the_findings(dock, tmp_path):
    """A label file on the scan's grid (label 1, "Low", below data index 14 on axis 0;
    label 2, "High", from it): the table's names and shares voxel by voxel."""
    from anomaly_maps.errors import AnomalyMapsError

    from conftest import write_nifti

    _, widget, _, volume = dock
    labels = np.ones(volume.shape, np.uint8)
    labels[14:] = 2
    path = write_nifti(tmp_path / "halves.nii.gz", labels, volume.affine)
    (tmp_path / "halves.csv").write_text("1,Low\n2,High\n")
    widget.set_threshold(0.5)
    widget.findings.refresh_now()
    findings = widget.findings
    findings.set_atlas(str(path))
    column = [h for h, _ in COLUMNS].index("atlas label")
    expected = []
    for f in findings.regions.findings:  # the atlas is on the scan's grid: voxel by voxel
        high = np.mean(np.argwhere(findings.regions.labels == f.index)[:, 0] >= 14)
        main = "High" if high >= 0.5 else "Low"
        peak = "High" if f.peak_voxel[0] >= 14 else "Low"
        text = f"{main} ({100 * max(high, 1 - high):.0f} %)"
        expected.append(text if main == peak else f"{text}; peak in {peak}")
    texts = [findings.table.item(r, column).text() for r in range(3)]
    assert texts == expected and texts[1] == "Low (100 %)"  # the blob at (8, 10, 8)
    assert findings.atlas_choice.currentText() == str(path)
    out = tmp_path / "findings.csv"
    findings.export_csv(str(out))
    assert f"# atlas {path}" in out.read_text()
    unnamed = write_nifti(tmp_path / "unnamed.nii.gz", labels, volume.affine)
    with pytest.raises(AnomalyMapsError, match="no names file"):
        findings.set_atlas(str(unnamed))
    assert findings.atlas is not None and findings.atlas_spec == str(path)  # kept
    findings._atlas_chosen(0)  # "no atlas"
    assert findings.atlas is None and findings.table.item(0, column).text() == ""
