"""Score dock widget: pick a scan and scorers, tune parameters, preview a slice or score
the volume in a worker thread, and browse the per-slice scores."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, Container
from napari.layers import Image
from napari.qt.threading import create_worker
from napari.utils import progress
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from .._fileio import atomic_path
from ..checkpoint import Checkpoint
from ..errors import AnomalyMapsError, Cancelled
from ..io import Volume
from ..model_space import SPACES, score_in_space
from ..preprocessing import SliceStack, to_slices
from ..scoring import VolumeScore, get_scorer, list_scorers
from ._brain_mask import mask_token, masked_volume
from ._docks import scrolling_layout
from ._layers import (
    add_or_update,
    displayed_plane,
    heat_limits,
    map_info,
    show_plane,
)
from ._param_form import param_widget
from ._plots import SmallPlot
from ._slicing import ModelSlicing, SlicePreview, score_model_slice
from ._state import viewer_state
from ._views import show_view

if TYPE_CHECKING:
    import napari.viewer

    from ..model_space import Placement

__all__ = ["ScoreWidget", "param_widget", "write_slice_scores"]

log = logging.getLogger(__name__)
_DIRECTION = {
    "axial": "inferior → superior",
    "coronal": "posterior → anterior",
    "sagittal": "left → right",
}


def write_slice_scores(
    path: str | Path, scores: dict[str, np.ndarray], *, overwrite: bool = True
) -> Path:
    """CSV of per-slice scores: ``slice`` (model slice index), then one column per scorer."""
    names = list(scores)
    table = np.column_stack([np.arange(len(scores[names[0]])), *scores.values()])
    rows = "\n".join(",".join([str(int(row[0])), *(f"{v:.6g}" for v in row[1:])]) for row in table)
    path = Path(path)
    with atomic_path(path, overwrite=overwrite, error=AnomalyMapsError) as tmp:
        Path(tmp).write_text(",".join(["slice", *names]) + "\n" + rows + "\n")
    return path


class _Progress(QObject):
    """Carries ``(done, total)`` from the scoring thread to the GUI thread."""

    advanced = Signal(int, int)


class ScoreWidget(QWidget):
    """Runs scorers on the checkpoint loaded in the model widget and adds map layers."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = viewer
        self.state = viewer_state(viewer)
        self._forms: dict[str, Container] = {}
        self._boxes: dict[str, QGroupBox] = {}
        self._stacks: dict[tuple[int, Any], SliceStack] = {}
        self._worker = None
        self._cancel = False
        self._pbar: progress | None = None
        self._relay = _Progress()
        self._relay.advanced.connect(self._advance)
        self.slice_scores: dict[str, np.ndarray] = {}
        """Per-slice scores of the last volume run, by scorer (plotted and exported)."""
        self._plotted: tuple[Image, ModelSlicing, str] | None = None

        self.layer = ComboBox(label="image", choices=self._scan_layers)
        self.layer.native.setToolTip("The scan to score")
        self.scorers = QListWidget()
        self.scorers.setMaximumHeight(130)
        self.scorers.itemChanged.connect(self._update_forms)
        self.forms = QVBoxLayout()
        self.batch_size = QSpinBox(minimum=1, maximum=4096, value=32)
        self.batch_size.setToolTip("Slices per model call; halved automatically on GPU OOM")
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1, value=0)
        self.seed.setToolTip("Seeds every random draw (noise, samples, restorations)")
        self.space = ComboBox(label="space", choices=["auto", "native"], value="auto")
        self.space.native.setToolTip(
            "\n".join(f"{name}: {SPACES[name]}" for name in ("auto", "native"))
        )
        self.preview_button = QPushButton("Preview slice")
        self.preview_button.setToolTip("Score only the slice on screen (model's slicing axis)")
        self.preview_button.clicked.connect(self.preview)
        self.score_button = QPushButton("Score volume")
        self.score_button.clicked.connect(self.score)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.status = QLabel("Load a checkpoint in the Anomaly model widget.")
        self.status.setWordWrap(True)
        self.plot = SmallPlot()
        self.plot.setToolTip("Per-slice scores; click to show that slice")
        self.plot.mpl_connect("button_press_event", self._plot_clicked)
        self.plot.hide()
        self.export_button = QPushButton("Export slice scores (CSV)…")
        self.export_button.clicked.connect(self._export)
        self.export_button.hide()

        settings = QFormLayout()
        settings.addRow("image", self.layer.native)
        settings.addRow("batch size", self.batch_size)
        settings.addRow("seed", self.seed)
        settings.addRow("space", self.space.native)
        buttons = QHBoxLayout()
        for button in (self.preview_button, self.score_button, self.cancel_button):
            buttons.addWidget(button)
        layout = scrolling_layout(self)
        layout.addLayout(settings)
        layout.addWidget(QLabel("Scorers (tick one or more):"))
        layout.addWidget(self.scorers)
        layout.addLayout(self.forms)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(self.plot)
        layout.addWidget(self.export_button)
        layout.addStretch()

        events = viewer.layers.events
        for event in (events.inserted, events.removed, events.reordered):
            event.connect(self.reset_choices)
        viewer.dims.events.current_step.connect(self._mark_slice)
        self.state.changed.connect(self._checkpoint_changed)
        self._checkpoint_changed()

    # ------------------------------------------------------------------ choices

    def _scan_layers(self, _widget: Any = None) -> list[tuple[str, Image]]:
        return [
            (layer.name, layer)
            for layer in self.viewer.layers
            if isinstance(layer, Image) and map_info(layer) is None and layer.ndim in (2, 3)
        ]

    def reset_choices(self, _event: Any = None) -> None:
        """Refresh the image list (napari calls this when layers change)."""
        self.layer.reset_choices()

    def _checkpoint_changed(self) -> None:
        checkpoint = self.state.checkpoint
        ticked = set(self.selected_scorers())
        self.scorers.blockSignals(True)
        self.scorers.clear()
        for name in list_scorers(checkpoint.kinds) if checkpoint else []:
            info = get_scorer(name)
            item = QListWidgetItem(f"{name}: {info.description}")
            item.setData(Qt.ItemDataRole.UserRole, name)
            item.setToolTip(f"{info.description} (seed {info.seed})")
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(
                Qt.CheckState.Checked if name in ticked else Qt.CheckState.Unchecked
            )
            self.scorers.addItem(item)
        self.scorers.blockSignals(False)
        self._update_forms()
        self.status.setText(
            f"Model: {'+'.join(checkpoint.kinds)}, {checkpoint.preprocessing.axis} slices."
            if checkpoint
            else "Load a checkpoint in the Anomaly model widget."
        )

    def select_scorers(self, names: list[str]) -> None:
        """Tick exactly ``names`` in the scorer list (e.g. from a script)."""
        for row in range(self.scorers.count()):
            item = self.scorers.item(row)
            ticked = item.data(Qt.ItemDataRole.UserRole) in names
            item.setCheckState(Qt.CheckState.Checked if ticked else Qt.CheckState.Unchecked)

    def selected_scorers(self) -> list[str]:
        return [
            self.scorers.item(row).data(Qt.ItemDataRole.UserRole)
            for row in range(self.scorers.count())
            if self.scorers.item(row).checkState() == Qt.CheckState.Checked
        ]

    def form(self, scorer: str) -> Container:
        """The parameter form of ``scorer`` (kept while the widget lives, with its values)."""
        if scorer not in self._forms:
            fields = [param_widget(spec) for spec in get_scorer(scorer).params]
            self._forms[scorer] = Container(widgets=fields, labels=True)
        return self._forms[scorer]

    def _update_forms(self, _item: Any = None) -> None:
        ticked = self.selected_scorers()
        for name in ticked:
            if name not in self._boxes:
                self._boxes[name] = box = QGroupBox(name)
                QVBoxLayout(box).addWidget(self.form(name).native)
                self.forms.addWidget(box)
        for name, box in self._boxes.items():
            box.setVisible(name in ticked and bool(get_scorer(name).params))

    def requests(self) -> list[tuple[str, dict[str, Any]]]:
        """``(scorer, params)`` for every ticked scorer, as its form sets them."""
        return [(name, self.form(name).asdict()) for name in self.selected_scorers()]

    def _ready(self) -> tuple[Image, list[tuple[str, dict[str, Any]]]] | None:
        message = None
        if self.state.checkpoint is None:
            message = "Load a checkpoint in the Anomaly model widget first."
        elif self.layer.value is None:
            message = "Open a scan (an Image layer) to score."
        elif not self.selected_scorers():
            message = "Tick at least one scorer."
        if message:
            show_error(message)
            self.status.setText(message)
            return None
        return self.layer.value, self.requests()

    # ------------------------------------------------------------------ preview

    def _stack(self, layer: Image) -> SliceStack:
        """The scan's model slices, cut once per scan and model preprocessing."""
        spec = self.state.checkpoint.preprocessing
        key = (id(layer.data), spec, mask_token(self.viewer, layer))
        if key not in self._stacks:
            self._stacks.clear()
            self._stacks[key] = to_slices(masked_volume(self.viewer, layer), spec)
        return self._stacks[key]

    def preview(self) -> list[Image]:
        """Score the displayed slice (turning the view to the model's slicing axis first)."""
        ready = self._ready()
        if ready is None:
            return []
        layer, requests = ready
        checkpoint = self.state.checkpoint
        try:
            stack = self._stack(layer)
            slicing = ModelSlicing.from_geometry(stack.geometry)
            plane = displayed_plane(self.viewer, layer)
            if plane is None or plane[0] != slicing.file_axis:
                middle = slicing.file_index(slicing.n_slices // 2)
                show_view(self.viewer, layer, checkpoint.preprocessing.axis, middle)
                plane = displayed_plane(self.viewer, layer)
            results = score_model_slice(
                stack,
                checkpoint,
                requests,
                plane[1],
                device=self.state.device,
                seed=self.seed.value(),
            )
        except AnomalyMapsError as err:
            show_error(str(err))
            self.status.setText(str(err))
            return []
        layers, where = [], [slice(None)] * 3
        where[slicing.file_axis] = plane[1]
        for result in results:
            if result.plane is None:
                continue
            data = np.zeros(layer.data.shape, np.float32)
            data[tuple(where)] = result.plane
            info = self._info(checkpoint, layer, result, slicing, stack.foreground)
            info["preview_plane"] = plane[1]
            fg_plane = np.take(stack.foreground, plane[1], axis=slicing.file_axis)
            layers.append(
                self._show_map(
                    layer,
                    f"{layer.name} {result.scorer} preview",
                    data,
                    info,
                    heat_limits(result.plane, fg_plane),
                )
            )
        scores = ", ".join(f"{r.scorer} {r.slice_score:.4g}" for r in results)
        self.status.setText(f"Slice {slicing.model_index(plane[1])}: {scores}")
        return layers

    @staticmethod
    def _info(
        checkpoint: Checkpoint,
        layer: Image,
        result: VolumeScore | SlicePreview,
        slicing: ModelSlicing,
        foreground: np.ndarray,
    ) -> dict[str, Any]:
        """The ``metadata["anomaly_map"]`` record of a map layer."""
        return {
            "scorer": result.scorer,
            "params": dict(result.params),
            "checkpoint": str(checkpoint.path) if checkpoint.path else None,
            "source_layer": layer.name,
            "slicing_axis": checkpoint.preprocessing.axis,
            "slicing": slicing.to_dict(),
            "foreground": foreground,
        }

    def _show_map(
        self,
        source: Image,
        name: str,
        data: np.ndarray,
        info: dict[str, Any],
        limits: tuple[float, float],
    ) -> Image:
        layer = add_or_update(
            self.viewer,
            "image",
            data,
            source=source,
            name=name,
            info=info,
            colormap="inferno",
            blending="additive",
            opacity=0.8,
        )
        layer.contrast_limits_range = (float(data.min()), max(float(data.max()), limits[1]))
        layer.contrast_limits = limits
        return layer

    # ------------------------------------------------------------------ volume

    def score(self):
        """Score the whole scan in a worker thread; returns the worker (None if not started)."""
        ready = self._ready()
        if ready is None or self._worker is not None:
            return None
        layer, requests = ready
        try:
            volume = masked_volume(self.viewer, layer)  # inside its brain mask layer, if any
        except AnomalyMapsError as err:
            self.status.setText(str(err))
            return None
        checkpoint, device = self.state.checkpoint, self.state.device
        batch_size, seed = self.batch_size.value(), self.seed.value()
        space = self.space.value
        self._cancel = False

        def run() -> tuple[list[VolumeScore], Placement | None, AnomalyMapsError | None]:
            # an error comes back as a value (superqt re-raises a returned exception)
            try:
                return *score_in_space(
                    volume,
                    checkpoint,
                    requests,
                    space=space,
                    device=device,
                    batch_size=batch_size,
                    seed=seed,
                    progress=self._relay.advanced.emit,
                    should_stop=lambda: self._cancel,
                ), None
            except AnomalyMapsError as err:  # shown in the viewer, not as a traceback
                return [], None, err

        self._pbar = progress(total=0, desc=f"Scoring {layer.name}")
        self._worker = create_worker(run, _start_thread=False)
        self._worker.returned.connect(
            lambda outcome: self._finished(layer, volume, checkpoint, outcome)
        )
        self._worker.finished.connect(self._cleanup)
        self._set_running(True)
        self.status.setText(f"Scoring {layer.name} with {', '.join(n for n, _ in requests)}…")
        self._worker.start()
        return self._worker

    def cancel(self) -> None:
        """Stop the running volume after the batch in progress."""
        self._cancel = True
        self.status.setText("Cancelling after the current batch…")

    def _advance(self, done: int, total: int) -> None:
        if self._pbar is not None:
            self._pbar.total = total
            self._pbar.n = done
            self._pbar.refresh()

    def _set_running(self, running: bool) -> None:
        self.score_button.setEnabled(not running)
        self.preview_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    def _cleanup(self) -> None:
        if self._pbar is not None:
            self._pbar.close()
        self._pbar, self._worker = None, None
        self._set_running(False)

    def _finished(
        self,
        source: Image,
        volume: Volume,
        checkpoint: Checkpoint,
        outcome: tuple[list[VolumeScore], Placement | None, AnomalyMapsError | None],
    ) -> None:
        results, placement, error = outcome
        if isinstance(error, Cancelled):
            self.status.setText(f"Cancelled: {error}")
            show_info(f"Cancelled: {error}")
            return
        if error is not None:
            self.status.setText(str(error))
            show_error(str(error))
            return
        slicing = ModelSlicing.for_scan(volume.affine, volume.shape, checkpoint.preprocessing.axis)
        for result in results:
            if result.map is None:
                continue
            info = self._info(checkpoint, source, result, slicing, result.foreground)
            info["slice_scores"] = result.slice_scores
            info["volume_score"] = result.volume_score
            limits = heat_limits(result.map, result.foreground)
            self._show_map(source, f"{source.name} {result.scorer}", result.map, info, limits)
        self.slice_scores = {r.scorer: r.slice_scores for r in results}
        scores = "Volume scores: " + ", ".join(f"{r.scorer} {r.volume_score:.4g}" for r in results)
        if placement.registered:  # slice scores are of the model's slices, not the scan's
            self.status.setText(f"{scores}\n{placement.note}")
            self._plotted = None
            self.plot.hide()
            self.export_button.show()
            return
        self.status.setText(scores)
        self._plot_scores(source, slicing, checkpoint.preprocessing.axis)

    # ------------------------------------------------------------------ slice plot

    def _plot_scores(self, source: Image, slicing: ModelSlicing, axis: str) -> None:
        self._plotted = (source, slicing, axis)
        several = len(self.slice_scores) > 1
        self.plot.clear(
            f"{axis} slice ({_DIRECTION[axis]})",
            "score (scaled to max)" if several else "slice score",
        )
        for name, scores in self.slice_scores.items():
            top = float(np.abs(scores).max()) if several else 1.0
            self.plot.axes.plot(scores / (top or 1.0), lw=1, label=name)
        if several:
            self.plot.axes.legend(fontsize=6, labelcolor="w", facecolor="#262930")
        self._marker = self.plot.axes.axvline(0, color="#00c0ff", lw=1)
        self.plot.show()
        self.export_button.show()
        self._mark_slice()

    def _mark_slice(self, _event: Any = None) -> None:
        if self._plotted is None or self._plotted[0] not in self.viewer.layers:
            return
        source, slicing, _ = self._plotted
        plane = displayed_plane(self.viewer, source)
        if plane is not None and plane[0] == slicing.file_axis:
            self._marker.set_xdata([slicing.model_index(plane[1])] * 2)
            self.plot.draw_idle()

    def _plot_clicked(self, event: Any) -> None:
        if event.xdata is None or self._plotted is None:
            return
        self.show_slice(round(event.xdata))

    def show_slice(self, model_index: int) -> None:
        """Show model slice ``model_index`` of the last scored scan (a click on the plot)."""
        if self._plotted is None or self._plotted[0] not in self.viewer.layers:
            return
        source, slicing, _ = self._plotted
        index = int(np.clip(model_index, 0, slicing.n_slices - 1))
        show_plane(self.viewer, source, slicing.file_axis, slicing.file_index(index))

    def _export(self) -> None:
        source = self._plotted[0].name if self._plotted else "scan"
        path, _ = QFileDialog.getSaveFileName(
            self, "Export per-slice scores", f"{source}_slices.csv", "CSV (*.csv)"
        )
        if path:
            write_slice_scores(path, self.slice_scores)
            show_info(f"wrote {path}")
