"""A report a person can open: one self-contained HTML page per scan and scorer.

``anomaly-maps score --report`` writes it: the model card summary
(:meth:`~anomaly_maps.checkpoint.Checkpoint.card_rows`), the scorer, its parameters and
the threshold with its source, the findings table, and for each of the top findings
the axial, coronal and sagittal slices through its peak with the map over the scan
(inferno, above the threshold), the region's outline (cyan) and its peak (+). Pictures are PNGs
drawn with matplotlib's Agg canvas (no display) and embedded as base64, so the file
can be mailed or archived alone. Panels are radiological, as the viewer's views
(:mod:`anomaly_maps.napari._views`): anterior (axial) or superior (coronal, sagittal) up,
the patient's right on the panel's left in axial and coronal panels, the nose on the left
in sagittal ones; letters on every edge (R/L, A/P, S/I) say so on the picture itself.
With an atlas (``score --atlas``) the table and the captions name each finding's anatomy.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np

if TYPE_CHECKING:
    from .checkpoint import Checkpoint
    from .findings import Finding, Regions
    from .io import Volume
    from .scoring.pipeline import VolumeScore

__all__ = ["TOP_FINDINGS", "VIEWS", "Panel", "finding_figure_png", "panel", "report_html"]

#: How many findings get pictures (the table lists all).
TOP_FINDINGS = 10

#: The views of each finding and the RAS+ axis each one cuts across.
VIEWS: tuple[tuple[str, int], ...] = (("axial", 2), ("coronal", 1), ("sagittal", 0))

_LETTERS = ("RL", "AP", "SI")  # per RAS+ axis: the letter of its + and - ends

_TABLE = (("finding", "#"), ("volume_ml", "ml"), ("peak_score", "peak"),
          ("mean_score", "mean"), ("healthy_above", "healthy above peak"),
          ("peak_mm", "peak (mm, RAS)"), ("centroid_mm", "centroid (mm, RAS)"),
          ("peak_voxel", "peak voxel"), ("peak_axial_slice", "axial slice"))  # fmt: skip

_FIELD = {"finding": "index"}  # table key -> Finding attribute, where they differ

_STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: left; font-size: 0.9em; }
th { background: #eee; }
img { max-width: 100%; display: block; }
.note { color: #555; font-size: 0.9em; }
"""


class _Canonical:
    """Scan, map and labels in RAS+ axis order, and the mapping of voxel indices there."""

    def __init__(self, volume: Volume, heat: np.ndarray, labels: np.ndarray) -> None:
        self.ornt = nib.orientations.io_orientation(volume.affine)
        self.shape = volume.data.shape

        def canon(data):
            return nib.orientations.apply_orientation(data, self.ornt)

        self.scan, self.heat, self.labels = canon(volume.data), canon(heat), canon(labels)
        head = np.argwhere(self.scan > 0)  # crop every view to the head, with a margin
        low = head.min(axis=0) - 4 if head.size else np.zeros(3, int)
        high = head.max(axis=0) + 5 if head.size else np.array(self.scan.shape)
        self.box = tuple(slice(max(int(a), 0), int(b)) for a, b in zip(low, high, strict=True))
        zooms = np.sqrt((volume.affine[:3, :3] ** 2).sum(axis=0))
        self.zooms = zooms[np.argsort(self.ornt[:, 0])]

    def index(self, voxel: tuple[int, ...]) -> tuple[int, int, int]:
        out = [0, 0, 0]
        for axis, (target, flip) in enumerate(self.ornt.astype(int)):
            out[target] = self.shape[axis] - 1 - voxel[axis] if flip < 0 else voxel[axis]
        return tuple(out)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, tuple):
        return ", ".join(_text(v) for v in value)
    return str(value)


@dataclass(frozen=True)
class Panel:
    """One view through a finding's peak, in screen order: row 0 at the top, column 0 on
    the left (radiological). ``peak`` is ``(row, column)``; ``edges`` the anatomical
    letters of the left, right, top and bottom edges; ``aspect`` a pixel's height/width."""

    view: str
    scan: np.ndarray
    heat: np.ndarray
    region: np.ndarray
    peak: tuple[int, int]
    aspect: float
    edges: tuple[str, str, str, str]


def panel(canonical: _Canonical, finding: Finding, view: str) -> Panel:
    """The ``view`` slice through ``finding``'s peak: the RAS+ axis shown across runs
    leftward (its + end on the left), the one shown up upward, as the viewer shows it."""
    axis = dict(VIEWS)[view]
    peak, box = canonical.index(finding.peak_voxel), canonical.box
    cut = tuple(peak[a] if a == axis else box[a] for a in range(3))
    across, up = (a for a in range(3) if a != axis)

    def screen(data: np.ndarray) -> np.ndarray:  # (across, up) -> rows down, columns right
        return data[cut].T[::-1, ::-1]

    scan = screen(canonical.scan)
    row = scan.shape[0] - 1 - (peak[up] - box[up].start)
    col = scan.shape[1] - 1 - (peak[across] - box[across].start)
    edges = (_LETTERS[across][0], _LETTERS[across][1], _LETTERS[up][0], _LETTERS[up][1])
    return Panel(view, scan, screen(canonical.heat),
                 np.equal(screen(canonical.labels), finding.index), (row, col),
                 float(canonical.zooms[up] / canonical.zooms[across]), edges)  # fmt: skip


def _draw(ax, p: Panel, threshold: float, low: float, high: float) -> None:
    from matplotlib.patheffects import withStroke

    ax.imshow(p.scan, cmap="gray", aspect=p.aspect)
    ax.imshow(np.ma.masked_less(p.heat, threshold), cmap="inferno", aspect=p.aspect,
              alpha=0.8, vmin=low, vmax=high)  # fmt: skip
    if p.region.any():
        ax.contour(p.region, levels=[0.5], colors="cyan", linewidths=1.0)
    ax.plot(p.peak[1], p.peak[0], "+", color="lime", markersize=12, markeredgewidth=1.5)
    places = (((0.02, 0.5), "left", "center"), ((0.98, 0.5), "right", "center"),
              ((0.5, 0.98), "center", "top"), ((0.5, 0.02), "center", "bottom"))  # fmt: skip
    for letter, (xy, ha, va) in zip(p.edges, places, strict=True):
        ax.text(*xy, letter, transform=ax.transAxes, ha=ha, va=va, color="white",
                fontsize=11, fontweight="bold",
                path_effects=[withStroke(linewidth=2.5, foreground="black")])  # fmt: skip
    ax.set_title(p.view, color="white", fontsize=10)
    ax.set_axis_off()


def finding_figure_png(
    canonical: _Canonical, finding: Finding, threshold: float, low: float, high: float
) -> bytes:
    """Three panels (axial, coronal, sagittal) through ``finding``'s peak, as PNG bytes."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10.5, 3.8), dpi=100, facecolor="black")
    for ax, (name, _) in zip(figure.subplots(1, 3), VIEWS, strict=True):
        _draw(ax, panel(canonical, finding, name), threshold, low, high)
    label = f": {finding.label_text}" if finding.label_text else ""
    figure.suptitle(f"finding {finding.index}: {finding.volume_ml:.3g} ml, peak "
                    f"{finding.peak_score:.4g}{label}", color="white", fontsize=11)  # fmt: skip
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.84, wspace=0.03)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", facecolor=figure.get_facecolor())
    return buffer.getvalue()


def _rows(pairs) -> str:
    return "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in pairs
    )


def _findings_table(regions: Regions) -> str:
    if not regions.findings:
        return '<p class="note">No region above the threshold: a valid result.</p>'
    columns = _TABLE + ((("label_text", "atlas label"),) if regions.atlas else ())
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_text(getattr(f, _FIELD.get(key, key))))}</td>"
                         for key, _ in columns) + "</tr>"
        for f in regions.findings
    )  # fmt: skip
    return f"<table><tr>{head}</tr>{body}</table>"


def report_html(
    volume: Volume,
    result: VolumeScore,
    regions: Regions,
    checkpoint: Checkpoint,
    threshold_source: str,
) -> str:
    """The report page: model card, scorer and threshold, findings, and pictures of the
    top :data:`TOP_FINDINGS` findings through their peaks."""
    if result.map is None:
        return _page(volume, checkpoint, result, regions, threshold_source,
                     f'<p class="note">{html.escape(result.scorer)} rates slices only: no map, '
                     "no findings.</p>")  # fmt: skip
    canonical = _Canonical(volume, result.map, regions.labels)
    brain = result.map[result.foreground]
    high = float(brain.max()) if brain.size else 1.0
    low = min(regions.threshold, high)
    pictures = "".join(
        '<h3>Finding {}</h3><img alt="finding {}" src="data:image/png;base64,{}">'.format(
            f.index, f.index,
            base64.b64encode(finding_figure_png(canonical, f, regions.threshold, low, high))
            .decode("ascii"),
        )
        for f in regions.findings[:TOP_FINDINGS]
    )  # fmt: skip
    body = (
        f"{_findings_table(regions)}"
        '<p class="note">healthy above peak: the fraction of healthy validation voxels '
        "scoring higher than the peak (empty without a calibration). Positions in world "
        "millimetres (RAS+). Pictures: map above the threshold (inferno), the region's "
        "outline (cyan), the peak (green +); radiological, as in the viewer: the "
        "patient's right on the left of axial and coronal panels, the nose on the left of "
        "sagittal ones (letters on each edge).</p>"
        f"{pictures}"
    )
    return _page(volume, checkpoint, result, regions, threshold_source, body)


def _page(volume, checkpoint, result, regions, threshold_source: str, findings: str) -> str:
    name = html.escape(volume.path.name if volume.path else "scan")
    setup = [("scorer", f"{result.scorer} {result.params} ({result.precision})"),
             ("threshold", f"{regions.threshold:.4g} (raw map units): {threshold_source}"),
             ("minimum size", f"{regions.min_ml:g} ml"),
             ("volume score", f"{result.volume_score:.4g} ({result.aggregate}, raw)"),
             ("findings", f"{len(regions.findings)}, {regions.total_ml:.3g} ml")]  # fmt: skip
    if regions.atlas:
        setup.append(("atlas", f"{regions.atlas}: labels are right only for a scan in the "
                      "atlas' space (MNI for AAL), not for a native scan"))  # fmt: skip
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{name}: findings</title>"
        f"<style>{_STYLE}</style></head><body><h1>{name}</h1>"
        f"<h2>Model</h2><table>{_rows(checkpoint.card_rows())}</table>"
        f"<h2>Scoring</h2><table>{_rows(setup)}</table>"
        f"<h2>Findings</h2>{findings}</body></html>\n"
    )
