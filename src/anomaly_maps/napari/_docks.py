"""Dock layout: every dock scrolls, so the docks fit a laptop screen together.

napari stacks the docks of one side on top of each other; without scroll areas their
minimum heights add up (1717 px for the demo), and the widest minimum width takes the
canvas's room. A dock built on :func:`scrolling_layout` has a small minimum size and
scrolls its content instead.
"""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFrame, QScrollArea, QVBoxLayout, QWidget

__all__ = [
    "DOCK_WIDTH",
    "SCORE_HEIGHT",
    "TITLE_HEIGHT",
    "content_height",
    "scrolling_layout",
]

DOCK_WIDTH = 320
"""Width (px) the demo gives the right-hand docks: on 1366 px, most is left to the canvas."""
SCORE_HEIGHT = 150
"""Height (px) the demo gives the score dock (it scrolls): the threshold dock gets the rest."""
TITLE_HEIGHT = 24
"""Height (px) of a dock's title bar."""
_MIN_HEIGHT = 90
"""Smallest content height a dock is squeezed to (a few rows, then it scrolls)."""


def scrolling_layout(owner: QWidget) -> QVBoxLayout:
    """The compact vertical layout of ``owner``'s content, inside a scroll area.

    The scroll area fills ``owner``; the content keeps its natural size and scrolls
    (vertically, or sideways below its minimum width) when the dock is smaller.
    """
    content = QWidget()
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
    scroll.setMinimumHeight(_MIN_HEIGHT)
    scroll.setWidget(content)
    outer = QVBoxLayout(owner)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(scroll)
    layout = QVBoxLayout(content)
    layout.setContentsMargins(6, 4, 6, 4)
    layout.setSpacing(4)
    return layout


def content_height(owner: QWidget) -> int:
    """Height (px) ``owner``'s content needs to show without scrolling."""
    return owner.findChild(QScrollArea).widget().sizeHint().height()
