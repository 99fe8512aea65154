"""The threshold dock's findings table: the map's regions above the threshold, to step through.

The table lists :func:`~anomaly_maps.findings.find_regions`'s findings (highest peak
first). It is refilled when a threshold drag ends, or shortly after the last of a run of
single steps (a debounce timer), never on each step of a drag: labelling a 256^3 map
takes a noticeable fraction of a second. Clicking a row shows the region's peak in an
upright axial view (the other sliders and the camera centred on the peak too) and
highlights the region (yellow) in a Labels layer of all findings. Export CSV and Save
report write what ``anomaly-maps score --findings/--report`` write. The atlas choice
(none, AAL, a label file: :mod:`anomaly_maps.atlas`) names each finding's anatomy, as
``score --atlas`` does; right only for a scan in the atlas' space (MNI for AAL).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from napari.utils.colormaps import DirectLabelColormap
from napari.utils.notifications import show_error
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .._fileio import write_text
from ..atlas import ATLASES, Atlas, resolve_atlas
from ..errors import AnomalyMapsError
from ..findings import Regions, find_regions, findings_csv
from ._geometry import layer_affine
from ._layers import add_or_update, layer_state, layer_volume, map_info
from ._state import viewer_state
from ._views import show_view

if TYPE_CHECKING:
    import napari.viewer
    from napari.layers import Image

    from ..records import Calibration
    from ._threshold import ThresholdIndex

__all__ = ["COLUMNS", "FindingsTable"]

#: Shown columns: header and how to read each one off a finding.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("#", "index"), ("ml", "volume_ml"), ("peak", "peak_score"), ("mean", "mean_score"),
    ("healthy above", "healthy_above"), ("peak (mm, RAS)", "peak_mm"),
    ("atlas label", "label_text"),
)  # fmt: skip

_ATLAS_TIP = ("Names each finding's anatomy: the label covering most of it (its share) "
              "and the label at its peak. Right only for a scan in the atlas' space "
              "(MNI for AAL: the demo and benchmark scans), not for a native scan")  # fmt: skip
_FILE = "label file…"

DEBOUNCE_MS = 250
"""Wait after the last single threshold step before refilling the table."""


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, tuple):
        return ", ".join(f"{v:.1f}" for v in value)
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class FindingsTable(QWidget):
    """Findings of one map at one threshold, as a table a reader can click through."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = viewer
        self.regions: Regions | None = None
        self.atlas: Atlas | None = None
        self.atlas_spec: str | None = None  # what set_atlas was given
        self.map_layer: Image | None = None
        self.highlight = None
        self._pending: tuple | None = None
        self.timer = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self.timer.timeout.connect(self.refresh_now)

        self.min_ml = QDoubleSpinBox(minimum=0.0, maximum=1000.0, value=0.1, decimals=2)
        self.min_ml.setSuffix(" ml")
        self.min_ml.setMinimumWidth(100)
        self.min_ml.setToolTip("Regions smaller than this are specks and not listed")
        self.min_ml.valueChanged.connect(lambda _v: self.refresh_now())
        self.export_button = QPushButton("Export CSV")
        self.export_button.clicked.connect(self._export_clicked)
        self.report_button = QPushButton("Save report")
        self.report_button.setToolTip(
            "The HTML report of `anomaly-maps score --report`: model card, findings, slices"
        )
        self.report_button.clicked.connect(self._report_clicked)
        self.atlas_choice = QComboBox()
        self.atlas_choice.addItem("no atlas", None)
        for name in ATLASES:
            self.atlas_choice.addItem(name.upper(), name)
        self.atlas_choice.addItem(_FILE, _FILE)
        self.atlas_choice.setToolTip(_ATLAS_TIP)
        self.atlas_choice.activated.connect(self._atlas_chosen)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([header for header, _ in COLUMNS])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setMinimumHeight(160)
        self.table.cellClicked.connect(lambda row, _col: self.go_to(row))

        row = QHBoxLayout()
        row.addWidget(QLabel("Findings, minimum"))
        row.addWidget(self.min_ml)
        row.addWidget(self.atlas_choice)
        row.addStretch()
        buttons = QHBoxLayout()  # a row of their own: the dock stays narrow
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.report_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addLayout(buttons)
        layout.addWidget(self.note)
        layout.addWidget(self.table)

    # ------------------------------------------------------------------ filling

    def request(
        self,
        map_layer: Image,
        index: ThresholdIndex,
        threshold: float,
        calibration: Calibration | None,
        *,
        now: bool = False,
    ) -> None:
        """Refill for ``threshold`` now, or after :data:`DEBOUNCE_MS` without a newer call."""
        self._pending = (map_layer, index, float(threshold), calibration)
        if now:
            self.refresh_now()
        else:
            self.timer.start()

    def refresh_now(self) -> None:
        """Compute the pending (or the last) request's findings and fill the table."""
        self.timer.stop()
        if self._pending is None:
            return
        map_layer, index, threshold, calibration = self._pending
        self.map_layer = map_layer
        affine = layer_affine(layer_state(map_layer), index.values.shape)
        self.regions = find_regions(
            index.values, affine, threshold, mask=index.foreground,
            min_ml=self.min_ml.value(), calibration=calibration, atlas=self.atlas,
        )  # fmt: skip
        self._fill()

    # ------------------------------------------------------------------ atlas

    def set_atlas(self, spec: str | None) -> None:
        """Name findings with atlas ``spec`` (``aal`` or a label NIfTI; ``None``: none),
        and refill the table. A refused atlas leaves the current one in place."""
        self.atlas = None if spec is None else resolve_atlas(spec)
        self.atlas_spec = spec
        if spec is not None and self.atlas_choice.findData(spec) < 0:  # a new file
            self.atlas_choice.insertItem(self.atlas_choice.count() - 1, spec, spec)
        self.atlas_choice.setCurrentIndex(self.atlas_choice.findData(spec))
        self.refresh_now()

    def _atlas_chosen(self, index: int) -> None:
        spec = self.atlas_choice.itemData(index)
        if spec == _FILE:
            start = str(ATLASES["aal"].parent) if ATLASES["aal"].parent.is_dir() else ""
            spec, _ = QFileDialog.getOpenFileName(self, "Atlas label volume", start,
                                                  "NIfTI (*.nii *.nii.gz)")  # fmt: skip
        previous = self.atlas_choice.findData(self.atlas_spec)
        if spec == "":  # the file dialog was cancelled
            self.atlas_choice.setCurrentIndex(previous)
            return
        try:
            self.set_atlas(spec)
        except AnomalyMapsError as err:
            self.atlas_choice.setCurrentIndex(previous)
            show_error(str(err))

    def _fill(self) -> None:
        findings = self.regions.findings
        self.table.setRowCount(len(findings))
        for r, finding in enumerate(findings):
            for c, (_, key) in enumerate(COLUMNS):
                self.table.setItem(r, c, QTableWidgetItem(_text(getattr(finding, key))))
        self.table.resizeColumnsToContents()
        self.note.setText(
            f"{len(findings)} region(s), {self.regions.total_ml:.2f} ml at "
            f"{self.regions.threshold:.4g}" if findings else "No region above the threshold."
        )  # fmt: skip
        self.export_button.setEnabled(True)
        if self.highlight is not None and self.highlight in self.viewer.layers:
            self.highlight.data = self.regions.labels
            self.highlight.visible = False

    # ------------------------------------------------------------------ going there

    def go_to(self, row: int) -> None:
        """Show finding ``row``'s peak (axial view, sliders and camera on it), highlighted."""
        if self.regions is None or not 0 <= row < len(self.regions.findings):
            return
        finding, layer = self.regions.findings[row], self.map_layer
        self.table.selectRow(row)
        show_view(self.viewer, layer, "axial", index=finding.peak_axial_slice)
        # the slider was set by show_view (as napari slices oblique scans); centre the
        # camera on the peak in the displayed plane
        world = np.asarray(layer.data_to_world(np.asarray(finding.peak_voxel, float)))
        offset = self.viewer.dims.ndim - layer.ndim
        shown = [d - offset for d in self.viewer.dims.displayed]
        self.viewer.scene.camera.center = tuple(float(world[d]) for d in shown)
        self._highlight(finding.index)

    def _highlight(self, index: int) -> None:
        self.highlight = add_or_update(
            self.viewer, "labels", self.regions.labels, source=self.map_layer,
            name=f"{self.map_layer.name} findings", opacity=0.7,
            info={"mask_of": self.map_layer.name},
            colormap=DirectLabelColormap(color_dict={None: "yellow", 0: "transparent"}),
        )  # fmt: skip
        self.highlight.selected_label = index
        self.highlight.show_selected_label = True
        self.highlight.visible = True
        self.viewer.layers.selection.active = self.map_layer  # the map stays the one chosen

    # ------------------------------------------------------------------ export

    def export_csv(self, path: str) -> None:
        """Write the table (every finding, all columns) as ``score --findings`` does."""
        if self.regions is None:
            raise AnomalyMapsError("no findings yet: choose a map and a threshold first")
        name = self.map_layer.name if self.map_layer is not None else "map"
        comments = [f"map {name}", f"threshold {self.regions.threshold:.6g}, minimum size "
                    f"{self.regions.min_ml:g} ml"]  # fmt: skip
        write_text(path, findings_csv(self.regions, comments), overwrite=True)

    def save_report(self, path: str) -> None:
        """Write the HTML report of the map's findings (needs the map's model loaded: the
        report holds its card)."""
        from ..report import report_html
        from ..scoring import VolumeScore

        if self.regions is None:
            raise AnomalyMapsError("no findings yet: choose a map and a threshold first")
        info, checkpoint = map_info(self.map_layer) or {}, viewer_state(self.viewer).checkpoint
        if checkpoint is None or info.get("checkpoint") != str(checkpoint.path):
            raise AnomalyMapsError(
                f"{self.map_layer.name}: load the model that made this map in the Anomaly "
                "model dock; the report holds its card"
            )
        source = info.get("source_layer")
        scan = next((lay for lay in self.viewer.layers if lay.name == source), self.map_layer)
        heat = np.asarray(self.map_layer.data)
        foreground = info.get("foreground", heat != 0)
        result = VolumeScore(info["scorer"], info["params"], heat,
                             np.asarray(info.get("slice_scores", ())),
                             float(info.get("volume_score", np.nan)), "slice_mean",
                             foreground, np.zeros(0, bool))  # fmt: skip
        page = report_html(layer_volume(scan), result, self.regions, checkpoint,
                           "chosen in the threshold dock")  # fmt: skip
        write_text(path, page, overwrite=True)

    def _export_clicked(self) -> None:
        self._save_as("Export findings", "findings.csv", self.export_csv)

    def _report_clicked(self) -> None:
        self._save_as("Save report", "report.html", self.save_report)

    def _save_as(self, title: str, name: str, write) -> None:
        path, _ = QFileDialog.getSaveFileName(self, title, name, f"*{name[name.index('.') :]}")
        if path:
            try:
                write(path)
            except (AnomalyMapsError, OSError) as err:
                show_error(str(err))
