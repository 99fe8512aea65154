"""Threshold dock widget: a live slider on an anomaly map, in map units and percentiles,
with the flagged volume, a findings table (:mod:`._findings_table`), automatic
thresholds from the model's calibration and, given a label layer, live detection
metrics and a ROC curve."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox
from napari.layers import Image, Labels
from napari.utils.notifications import show_error
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QWidget,
)
from superqt import QLabeledDoubleSlider

from ..errors import AnomalyMapsError
from ..scoring.calibration import Calibration
from ._docks import scrolling_layout
from ._findings_table import FindingsTable
from ._layers import MaskOverlay, displayed_plane, map_info
from ._plots import SmallPlot
from ._state import viewer_state
from ._threshold import LabelStats

if TYPE_CHECKING:
    import napari.viewer

__all__ = ["ThresholdWidget"]


def _slider(lo: float, hi: float, decimals: int = 4) -> QLabeledDoubleSlider:
    slider = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
    slider.setRange(lo, hi)
    slider.setDecimals(decimals)
    return slider


class ThresholdWidget(QWidget):
    """Thresholds the chosen map into a Labels overlay while the slider moves."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = viewer
        self.state = viewer_state(viewer)
        self.overlay: MaskOverlay | None = None
        self.stats: LabelStats | None = None
        self.calibration: Calibration | None = None
        self._syncing = False

        self.map = ComboBox(label="map", choices=self._map_layers)
        self.map.changed.connect(self._map_changed)
        self.truth = ComboBox(label="labels", choices=self._label_layers, nullable=True)
        self.truth.native.setToolTip("A lesion mask: shows sensitivity, specificity, Dice, ROC")
        self.truth.changed.connect(self._truth_changed)
        self.value = _slider(0.0, 1.0)
        self.value.setToolTip("Threshold in map units: voxels at or above it are flagged")
        self.value.valueChanged.connect(self._value_moved)
        self.percentile = _slider(0.0, 100.0, 2)
        self.percentile.setToolTip("The threshold as a percentile of the brain's map values")
        self.percentile.valueChanged.connect(self._percentile_moved)
        for slider in (self.value, self.percentile):
            slider.sliderReleased.connect(self._released)
        self.contour = QCheckBox("outline only")
        self.contour.toggled.connect(self._style_changed)
        self.flagged = QLabel()
        self.flagged.setWordWrap(True)
        self.findings = FindingsTable(viewer)
        self.dice_button = QPushButton("Best Dice (validation)")
        self.dice_button.setToolTip("The threshold with the best Dice on the labelled "
                                    "validation volumes stored with the model")  # fmt: skip
        self.dice_button.clicked.connect(self.set_validation_dice)
        self.fpr = QDoubleSpinBox(minimum=0.001, maximum=50.0, value=1.0, decimals=3)
        self.fpr.setSuffix(" % FPR")
        self.fpr.setToolTip("Target false-positive rate on healthy brain voxels")
        self.fpr_button = QPushButton("Set")
        self.fpr_button.clicked.connect(self.set_target_fpr)
        self.auto_note = QLabel()
        self.auto_note.setWordWrap(True)
        self.metrics = QLabel()
        self.metrics.setWordWrap(True)
        self.roc = SmallPlot(height=2.4)
        self.roc.hide()

        form = QFormLayout()
        form.addRow("map", self.map.native)
        form.addRow("value", self.value)
        form.addRow("percentile", self.percentile)
        form.addRow("", self.contour)
        form.addRow("labels", self.truth.native)
        fpr_row = QHBoxLayout()
        fpr_row.addWidget(self.fpr)
        fpr_row.addWidget(self.fpr_button)
        layout = scrolling_layout(self)
        layout.addLayout(form)
        layout.addWidget(self.flagged)
        layout.addWidget(self.findings)
        layout.addWidget(QLabel("Automatic thresholds:"))
        layout.addWidget(self.dice_button)
        layout.addLayout(fpr_row)
        layout.addWidget(self.auto_note)
        layout.addWidget(self.metrics)
        layout.addWidget(self.roc)
        layout.addStretch()

        events = viewer.layers.events
        for event in (events.inserted, events.removed, events.reordered):
            event.connect(self.reset_choices)
        viewer.layers.selection.events.active.connect(self._follow_selection)
        self.state.changed.connect(self._update_calibration)
        self._map_changed()

    # ------------------------------------------------------------------ choices

    def _map_layers(self, _widget: Any = None) -> list[tuple[str, Image]]:
        return [(m.name, m) for m in self.viewer.layers if isinstance(m, Image) and map_info(m)]

    def _label_layers(self, _widget: Any = None) -> list[tuple[str, Labels]]:
        return [
            (layer.name, layer)
            for layer in self.viewer.layers
            if isinstance(layer, Labels) and map_info(layer) is None and layer.ndim == 3
        ]

    def reset_choices(self, _event: Any = None) -> None:
        """Refresh the map and label lists (napari calls this when layers change)."""
        self.map.reset_choices()
        self.truth.reset_choices()
        if self.overlay is not None and self.overlay.map_layer != self.map.value:
            self._map_changed()

    def _follow_selection(self, event: Any) -> None:
        layer = event.value
        if isinstance(layer, Image) and layer != self.map.value and map_info(layer):
            self.map.value = layer

    # ------------------------------------------------------------------ map

    def _map_changed(self, _value: Any = None) -> None:
        layer = self.map.value
        previous, self.overlay = self.overlay, None  # adding the new mask resets the choices
        if layer is None or layer not in self.viewer.layers:
            self.flagged.setText("Score a volume (Anomaly scoring widget) to threshold its map.")
            self._enable(False)
            return
        try:
            self.overlay = MaskOverlay(self.viewer, layer)
        except ValueError as err:  # an all-zero map
            self.flagged.setText(f"{layer.name}: {err}")
            self._enable(False)
            return
        if previous is not None and previous.layer != self.overlay.layer:
            previous.layer.visible = False  # one mask on screen: the selected map's (kept)
        self.overlay.layer.visible = True
        self.viewer.layers.selection.active = layer
        self._style_changed()
        lo, hi = self.overlay.index.range
        self._syncing = True
        self.value.setRange(lo, hi if hi > lo else lo + 1e-6)
        self._syncing = False
        self._enable(True)
        self._update_calibration()
        self._truth_changed()
        self.set_percentile(99.0)

    def _enable(self, enabled: bool) -> None:
        for control in (self.value, self.percentile, self.contour):
            control.setEnabled(enabled)

    def _style_changed(self, _checked: bool = False) -> None:
        if self.overlay is not None:
            self.overlay.layer.contour = 1 if self.contour.isChecked() else 0

    # ------------------------------------------------------------------ threshold

    def set_threshold(self, value: float) -> None:
        """Move to ``value`` (map units): overlay, sliders and numbers follow."""
        if self.overlay is None:
            return
        index = self.overlay.index
        dragging = self.value.isSliderDown() or self.percentile.isSliderDown()
        self.overlay.set(
            value, displayed_plane(self.viewer, self.overlay.layer) if dragging else None
        )
        self._syncing = True
        self.value.setValue(value)
        self.percentile.setValue(index.percentile(value))
        self._syncing = False
        self.flagged.setText(
            f"flagged: {index.flagged_ml(value):.2f} ml, "
            f"{100 * index.brain_fraction(value):.2f} % of the brain"
        )
        self._update_metrics(plot=not dragging)
        if not dragging:
            self._request_findings(now=False)

    def _request_findings(self, now: bool) -> None:
        """The table follows the threshold: at once after a drag, else debounced."""
        if self.overlay is not None:
            self.findings.request(self.overlay.map_layer, self.overlay.index,
                                  self.overlay.threshold, self.calibration, now=now)  # fmt: skip

    def set_percentile(self, percentile: float) -> None:
        """Flag the brain voxels above ``percentile`` (0-100) of the map's values."""
        if self.overlay is not None:
            self.set_threshold(self.overlay.index.value(percentile))

    def _value_moved(self, value: float) -> None:
        if not self._syncing:
            self.set_threshold(value)

    def _released(self) -> None:
        """End of a drag: threshold the whole volume, not just the plane on screen."""
        if self.overlay is not None:
            self.overlay.set(self.overlay.threshold)
            self._update_metrics()
            self._request_findings(now=True)

    def _percentile_moved(self, percentile: float) -> None:
        if not self._syncing:
            self.set_percentile(percentile)

    # ------------------------------------------------------------------ automatic

    def _update_calibration(self) -> None:
        """Find the loaded model's calibration of the chosen map's scorer and parameters."""
        info = map_info(self.map.value) if self.map.value is not None else None
        self.calibration = self.state.calibration_for(info)
        if self.calibration is not None:
            note = f"Calibrated on {self.calibration.n_volumes} healthy volume(s)."
        elif info is not None and self.state.checkpoint is not None:
            note = (
                f"No calibration for {info['scorer']} with these parameters in the loaded "
                "model (it must be the map's model; run `anomaly-maps calibrate`)."
            )
        else:
            note = "Load the map's model in the Anomaly model widget for automatic thresholds."
        has_dice = self.calibration is not None and self.calibration.dice_threshold is not None
        self.dice_button.setEnabled(has_dice)
        self.fpr_button.setEnabled(
            self.calibration is not None and self.calibration.pixel_quantiles is not None
        )
        self.auto_note.setText(note)

    def set_validation_dice(self) -> None:
        """The threshold that gave the best Dice on the model's labelled validation set."""
        if self.calibration is not None and self.calibration.dice_threshold is not None:
            self.set_threshold(self.calibration.dice_threshold)

    def set_target_fpr(self) -> None:
        """The threshold that flags the chosen fraction of healthy brain voxels."""
        if self.calibration is None:
            return
        try:
            self.set_threshold(self.calibration.threshold_for_fpr(self.fpr.value() / 100))
        except AnomalyMapsError as err:
            show_error(str(err))

    # ------------------------------------------------------------------ labels

    def _truth_changed(self, _value: Any = None) -> None:
        truth = self.truth.value
        self.stats = None
        if truth is not None and self.overlay is not None:
            if truth.data.shape != self.overlay.index.values.shape:
                show_error(f"{truth.name} has shape {truth.data.shape}: expected the map's "
                           f"{self.overlay.index.values.shape}")  # fmt: skip
            else:
                self.stats = LabelStats(
                    self.overlay.index.values,
                    np.asarray(truth.data),
                    self.overlay.index.foreground,
                )
        self.roc.setVisible(self.stats is not None)
        self.metrics.setVisible(self.stats is not None)
        if self.stats is None:
            return
        fpr, tpr = self.stats.roc()
        self.roc.clear("1 - specificity", "sensitivity")
        self.roc.axes.plot(fpr, tpr, color="#ffb000", lw=1.2)
        self.roc.axes.plot([0, 1], [0, 1], color="#666666", lw=0.6, ls="--")
        self.roc.axes.set_title(f"AUROC {self.stats.auroc():.3f}", color="w", fontsize=8)
        (self._operating,) = self.roc.axes.plot([], [], "o", color="#00e0ff", ms=5)
        best = self.stats.best_dice()
        self._summary = (
            f"best Dice {best.dice:.3f} at {best.threshold:.4g}, "
            f"AP {self.stats.average_precision():.3f}"
        )
        self._update_metrics()

    def _update_metrics(self, plot: bool = True) -> None:
        """Metrics at the current threshold; ``plot``: move the ROC's operating point too
        (a matplotlib redraw, left to the end of a drag)."""
        if self.stats is None or self.overlay is None:
            return
        point = self.stats.at(self.overlay.threshold)
        self.metrics.setText(
            f"sensitivity {point.sensitivity:.3f}, specificity {point.specificity:.4f}, "
            f"Dice {point.dice:.3f} ({self._summary})"
        )
        if plot:
            self._operating.set_data([point.fpr], [point.sensitivity])
            self.roc.draw_idle()
