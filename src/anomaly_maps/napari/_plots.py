"""A small matplotlib canvas for the widgets' plots (per-slice scores, ROC curves)."""

from __future__ import annotations

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure

__all__ = ["SmallPlot"]


class SmallPlot(FigureCanvasQTAgg):
    """One dark axes sized for a dock widget, matching napari's default theme."""

    def __init__(self, height: float = 1.8) -> None:
        figure = Figure(figsize=(3.2, height), dpi=90, facecolor="#262930", layout="tight")
        super().__init__(figure)
        self.axes = figure.add_subplot()
        self.setMinimumHeight(int(height * 90))

    def clear(self, xlabel: str, ylabel: str) -> None:
        """Empty the axes and label them, styled for a dark background."""
        ax = self.axes
        ax.clear()
        ax.set_facecolor("#262930")
        ax.set_xlabel(xlabel, color="w", fontsize=8)
        ax.set_ylabel(ylabel, color="w", fontsize=8)
        ax.tick_params(colors="w", labelsize=7)
        for spine in ax.spines.values():
            spine.set_color("#888888")
