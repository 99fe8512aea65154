"""Compare dock widget: several anomaly maps side by side in napari's grid mode, one
shared threshold after a normalisation the user picks, and their metrics against labels.

Each map gets a grid cell holding the scan, the normalised map and its thresholded
outline; grid mode shares one camera and one set of dims, so panning, zooming and
moving through slices stay linked across cells.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox
from napari.layers import Image, Labels
from napari.utils.notifications import show_error
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)
from superqt import QLabeledDoubleSlider

from ..errors import AnomalyMapsError
from ..scoring.postprocess import NORMALIZATIONS, healthy_p99_value, normalize_map
from ._docks import scrolling_layout
from ._layers import MaskOverlay, add_or_update, heat_limits, map_info
from ._state import viewer_state
from ._threshold import LabelStats

if TYPE_CHECKING:
    import napari.viewer

__all__ = ["CompareWidget"]

_PREFIX = "compare"
_COLUMNS = ("map", "AUROC", "AP", "best Dice", "Dice", "flagged ml")


def grid_of(viewer: Any) -> Any:
    """The viewer's grid settings: ``viewer.canvas.grid`` from napari 0.9 on (where
    ``viewer.grid`` is deprecated), ``viewer.grid`` before."""
    canvas = getattr(viewer, "canvas", None)
    return canvas.grid if hasattr(canvas, "grid") else viewer.grid


class CompareWidget(QWidget):
    """Lays chosen maps out in a grid with a shared, normalised threshold."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = viewer
        self.state = viewer_state(viewer)
        self.overlays: list[MaskOverlay] = []
        self.stats: list[LabelStats | None] = []
        self._layers: list[Any] = []
        self._hidden: list[Any] = []

        self.maps = QListWidget()
        self.maps.setMaximumHeight(120)
        self.normalization = QComboBox()
        for name, description in NORMALIZATIONS.items():
            self.normalization.addItem(name, name)
            self.normalization.setItemData(
                self.normalization.count() - 1, description, Qt.ItemDataRole.ToolTipRole
            )
        self.normalization.setCurrentText("volume")
        self.normalization.currentIndexChanged.connect(self._describe)
        self.description = QLabel()
        self.description.setWordWrap(True)
        self.truth = ComboBox(label="labels", choices=self._label_layers, nullable=True)
        self.compare_button = QPushButton("Compare side by side")
        self.compare_button.clicked.connect(self.compare)
        self.stop_button = QPushButton("Stop comparing")
        self.stop_button.clicked.connect(self.stop)
        self.stop_button.setEnabled(False)
        self.threshold = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.threshold.setDecimals(4)
        self.threshold.setEnabled(False)
        self.threshold.setToolTip("One threshold, in normalised units, for every map")
        self.threshold.valueChanged.connect(self.set_threshold)
        self.table = QTableWidget(0, len(_COLUMNS))
        self.table.setHorizontalHeaderLabels(_COLUMNS)
        self.table.verticalHeader().hide()
        self.table.hide()

        form = QFormLayout()
        form.addRow("normalise", self.normalization)
        form.addRow("", self.description)
        form.addRow("labels", self.truth.native)
        buttons = QHBoxLayout()
        buttons.addWidget(self.compare_button)
        buttons.addWidget(self.stop_button)
        layout = scrolling_layout(self)
        layout.addWidget(QLabel("Maps (tick two or more):"))
        layout.addWidget(self.maps)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(QLabel("Shared threshold:"))
        layout.addWidget(self.threshold)
        layout.addWidget(self.table)
        layout.addStretch()

        events = viewer.layers.events
        for event in (events.inserted, events.removed, events.reordered):
            event.connect(self.reset_choices)
        self.reset_choices()
        self._describe()

    # ------------------------------------------------------------------ choices

    def _label_layers(self, _widget: Any = None) -> list[tuple[str, Labels]]:
        mine = {o.layer for o in self.overlays}
        return [
            (layer.name, layer)
            for layer in self.viewer.layers
            if isinstance(layer, Labels) and layer not in mine and map_info(layer) is None
        ]

    def _candidates(self) -> list[Image]:
        return [
            layer
            for layer in self.viewer.layers
            if isinstance(layer, Image)
            and map_info(layer) is not None
            and not map_info(layer).get("compared")
        ]

    def reset_choices(self, _event: Any = None) -> None:
        """Refresh the map and label lists (napari calls this when layers change)."""
        ticked = set(self.selected_names())
        self.maps.clear()
        for layer in self._candidates():
            item = QListWidgetItem(layer.name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            checked = layer.name in ticked
            item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
            self.maps.addItem(item)
        self.truth.reset_choices()

    def select_maps(self, names: list[str]) -> None:
        """Tick exactly ``names``."""
        for row in range(self.maps.count()):
            item = self.maps.item(row)
            checked = item.text() in names
            item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)

    def selected_names(self) -> list[str]:
        return [
            self.maps.item(row).text()
            for row in range(self.maps.count())
            if self.maps.item(row).checkState() == Qt.CheckState.Checked
        ]

    def _describe(self, _index: int = 0) -> None:
        method = self.normalization.currentData()
        self.description.setText(f"{method}: {NORMALIZATIONS[method]}")

    # ------------------------------------------------------------------ layout

    def _normalized(self, layer: Image, method: str) -> np.ndarray:
        info = map_info(layer)
        return normalize_map(
            np.asarray(layer.data), method, foreground=info.get("foreground"),
            calibration=self.state.calibration_for(info),
        )  # fmt: skip

    def compare(self) -> None:
        """Show the ticked maps, normalised, in a grid with a shared threshold."""
        names = self.selected_names()
        if len(names) < 2:
            show_error("Tick two or more maps to compare.")
            return
        method = self.normalization.currentData()
        sources = [self.viewer.layers[name] for name in names]
        try:
            values = [self._normalized(layer, method) for layer in sources]
        except AnomalyMapsError as err:
            show_error(str(err))
            return
        self.stop()
        scans = {layer.name: layer for layer in self.viewer.layers if map_info(layer) is None}
        self._hidden = [layer for layer in self.viewer.layers if layer.visible]
        for layer in self._hidden:
            layer.visible = False
        limits = [
            heat_limits(v, map_info(s).get("foreground"))
            for s, v in zip(sources, values, strict=True)
        ]
        lo, hi = min(lim[0] for lim in limits), max(lim[1] for lim in limits)
        for i, (source, normalized) in enumerate(zip(sources, values, strict=True)):
            info = dict(map_info(source), normalization=method, compared=True)
            scan = scans.get(info.get("source_layer"))
            if scan is not None:
                self._layers.append(
                    add_or_update(self.viewer, "image", scan.data, source=scan,
                                  name=f"{_PREFIX} {i}: {scan.name}", colormap="gray",
                                  contrast_limits=scan.contrast_limits)
                )  # fmt: skip
            heat = add_or_update(self.viewer, "image", normalized, source=source,
                                 name=f"{_PREFIX} {i}: {source.name} ({method})", info=info,
                                 colormap="inferno", blending="additive", opacity=0.8,
                                 contrast_limits=(lo, hi))  # fmt: skip
            overlay = MaskOverlay(self.viewer, heat, name=f"{heat.name} mask")
            overlay.layer.contour = 1
            self._layers += [heat, overlay.layer]
            self.overlays.append(overlay)
        self._arrange(per_cell=len(self._layers) // len(sources))
        self._fill_stats()
        self.threshold.setRange(min(o.index.range[0] for o in self.overlays),
                                max(o.index.range[1] for o in self.overlays))  # fmt: skip
        self.threshold.setEnabled(True)
        self.stop_button.setEnabled(True)
        first = healthy_p99_value(method)  # the same first threshold for every map
        self.set_threshold(self.overlays[0].index.value(99) if first is None else first)
        self.threshold.setValue(self.overlays[0].threshold)

    def _arrange(self, per_cell: int) -> None:
        """Compare layers first, ``per_cell`` to a grid cell, everything else hidden."""
        layers = self.viewer.layers
        layers.move_multiple([layers.index(layer) for layer in self._layers], 0)
        grid_of(self.viewer).stride = per_cell
        grid_of(self.viewer).enabled = True
        self.viewer.reset_view()

    def stop(self) -> None:
        """Remove the comparison's layers, leave grid mode, show the hidden layers again."""
        for layer in self._layers:
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        for layer in self._hidden:
            if layer in self.viewer.layers:
                layer.visible = True
        self._layers, self._hidden, self.overlays, self.stats = [], [], [], []
        grid_of(self.viewer).enabled = False
        grid_of(self.viewer).stride = 1
        self.threshold.setEnabled(False)
        self.stop_button.setEnabled(False)
        self.table.hide()

    # ------------------------------------------------------------------ threshold

    def set_threshold(self, value: float) -> None:
        """Threshold every compared map at ``value`` (normalised units)."""
        for overlay in self.overlays:
            overlay.set(value)
        self._fill_table()

    def _fill_stats(self) -> None:
        truth = self.truth.value
        self.stats = [
            LabelStats(o.index.values, np.asarray(truth.data), o.index.foreground)
            if truth is not None and truth.data.shape == o.index.values.shape
            else None
            for o in self.overlays
        ]
        self._best = [
            (s.auroc(), s.average_precision(), s.best_dice().dice) if s else None
            for s in self.stats
        ]
        self.table.setVisible(bool(self.overlays))

    def _fill_table(self) -> None:
        self.table.setRowCount(len(self.overlays))
        rows = zip(self.overlays, self.stats, self._best, strict=True)
        for row, (overlay, stats, best) in enumerate(rows):
            t = overlay.threshold
            cells = [map_info(overlay.map_layer)["scorer"]]
            if stats is None:
                cells += ["-", "-", "-", "-"]
            else:
                cells += [f"{best[0]:.3f}", f"{best[1]:.3f}", f"{best[2]:.3f}",
                          f"{stats.at(t).dice:.3f}"]  # fmt: skip
            cells.append(f"{overlay.index.flagged_ml(t):.2f}")
            for col, text in enumerate(cells):
                self.table.setItem(row, col, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
