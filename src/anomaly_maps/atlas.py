"""Anatomical names for findings, from a label atlas: a label volume and its names table.

An atlas is a NIfTI volume of integer labels (0 = no structure) on a template's grid,
with a names file beside it. A finding is named by looking its voxels up in world
millimetres: each point goes through the atlas' inverse affine to its nearest atlas
voxel (outside the atlas' grid, or on label 0: no name). Names are right only when the
scan is in the atlas' space: for the bundled AAL that is MNI space, in which the
benchmark volumes and the demo scan lie (drawn from the MNI ICBM152 template, up to the
benchmark's random few-degree, few-millimetre pose and elastic jitter); a native scan
(a patient's own head position) is not, and its labels would be wrong.

Names files, looked for beside ``NAME.nii[.gz]`` in this order:

- ``NAME.nii.txt`` or ``NAME.txt``: MRIcron's format, lines ``index name [more...]``
  separated by white space (as ``aal.nii.txt`` of Debian's ``mricron-data``);
- ``NAME.tsv`` / ``NAME.csv``: ``index<TAB>name`` / ``index,name`` lines, an optional
  header line first.

Lines starting with ``#`` and blank lines are skipped. Debian's
``HarvardOxford-cort-maxprob-thr0-1mm.nii.gz`` ships without names (its ``.lut`` files,
like every ``.lut`` there, are 256-entry colour tables): pass it with a names file of
your own beside it, or it is refused.

:data:`ATLASES` names the atlases known by name (``--atlas aal``): the AAL atlas of
Tzourio-Mazoyer et al., *Automated anatomical labeling of activations in SPM using a
macroscopic anatomical parcellation of the MNI MRI single-subject brain*, NeuroImage 15
(2002), as packaged for MRIcron (Rorden & Brett, 2000) by Debian's ``mricron-data``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from ._fileio import full_suffix
from .errors import AnomalyMapsError, VolumeError
from .io import load_volume

__all__ = [
    "ATLASES",
    "Atlas",
    "RegionNames",
    "load_atlas",
    "names_file",
    "read_names",
    "resolve_atlas",
]

#: Atlases known by name: name -> label NIfTI (its names file lies beside it).
ATLASES: dict[str, Path] = {"aal": Path("/usr/share/mricron/templates/aal.nii.gz")}

_INSTALL = {"aal": "apt-get install mricron-data"}
_NAME_SUFFIXES = (".nii.txt", ".txt", ".tsv", ".csv")


@dataclass(frozen=True)
class RegionNames:
    """A region's names: the label at its peak, and the label covering most of its voxels
    with the fraction of the region's voxels it covers (``None`` when none is labelled)."""

    peak: str = ""
    main: str = ""
    main_share: float | None = None


@dataclass(frozen=True, eq=False)
class Atlas:
    """Integer labels on a grid (``affine``: voxel -> world mm, RAS+) and their names.

    ``name`` says which atlas this is (its file), in reports, CSV comments and the
    settings ``score --resume`` compares.
    """

    labels: np.ndarray
    affine: np.ndarray
    names: Mapping[int, str]
    name: str = ""
    _inverse: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_inverse", np.linalg.inv(np.asarray(self.affine, float)))

    def _at(self, index: list[np.ndarray]) -> np.ndarray:
        """Labels at fractional atlas indices (one array per axis): the nearest voxel's,
        0 outside the atlas' grid."""
        index = [np.rint(i).astype(np.intp) for i in index]
        inside = np.ones(index[0].shape, dtype=bool)
        for i, size in zip(index, self.labels.shape, strict=True):
            inside &= (i >= 0) & (i < size)
        out = np.zeros(index[0].shape, dtype=np.int64)
        out[inside] = self.labels[tuple(i[inside] for i in index)]
        return out

    def lookup(self, points_mm: np.ndarray) -> np.ndarray:
        """The label (int) at each world point (``(..., 3)`` mm): the nearest atlas voxel's,
        0 outside the atlas' grid."""
        index = nib.affines.apply_affine(self._inverse, np.asarray(points_mm, np.float64))
        return self._at(list(np.moveaxis(index, -1, 0)))

    def voxel_labels(self, coords: tuple[np.ndarray, ...], affine: np.ndarray) -> np.ndarray:
        """The label at each voxel ``coords`` (one index array per data axis) of a scan
        with ``affine``: scan voxel -> atlas index in one composed affine (no array of
        world points: a refresh on a 256^3 map may look up millions of voxels)."""
        m = self._inverse @ np.asarray(affine, np.float64)
        return self._at([m[r, 0] * coords[0] + m[r, 1] * coords[1] + m[r, 2] * coords[2]
                         + m[r, 3] for r in range(3)])  # fmt: skip

    def name_of(self, label: int) -> str:
        """A label's name; "" for label 0 (no structure), whatever the names file says."""
        return self.names.get(int(label), "") if label else ""

    def name_at(self, point_mm) -> str:
        """The name at one world point ("" outside the atlas or on label 0)."""
        return self.name_of(self.lookup(np.asarray(point_mm, float)[None])[0])

    def region_names(
        self,
        region: np.ndarray,
        coords: tuple[np.ndarray, ...],
        affine: np.ndarray,
        peaks: np.ndarray,
    ) -> list[RegionNames]:
        """Names of regions ``1..len(peaks)`` of a scan with ``affine``: ``region`` holds
        the region (0: none) of each voxel at ``coords``; ``peaks`` the ``(n, 3)`` peak
        voxels. The label covering most voxels comes with its share, counted over all the
        region's voxels, unlabelled ones included (a tie goes to the lower label)."""
        n = len(peaks)
        labels = self.voxel_labels(coords, affine)
        width = int(labels.max(initial=0)) + 1
        counts = np.bincount(region * width + labels, minlength=(n + 1) * width)
        counts = counts.reshape(n + 1, width)[1:]
        sizes = counts.sum(axis=1)
        counts[:, 0] = 0  # unlabelled voxels never name a region
        main = counts.argmax(axis=1)
        peak_labels = self.voxel_labels(tuple(np.reshape(peaks, (n, 3)).T), affine)
        out = []
        for i, peak in enumerate(peak_labels):
            covered = int(counts[i, main[i]])
            out.append(RegionNames(
                self.name_of(peak),
                self.name_of(main[i]) if covered else "",
                covered / int(sizes[i]) if covered else None,
            ))  # fmt: skip
        return out


def names_file(label_path: str | os.PathLike) -> Path:
    """The names file beside a label NIfTI (see the module's list), or an error naming
    the files looked for."""
    path = Path(label_path)
    stem = path.name[: -len(full_suffix(path))] if full_suffix(path) else path.name
    candidates = [path.with_name(stem + suffix) for suffix in _NAME_SUFFIXES]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise AnomalyMapsError(
        f"--atlas {path}: no names file beside it; expected one of "
        f"{', '.join(c.name for c in candidates)} with lines 'index name'"
    )


def _fields(line: str, suffix: str) -> list[str]:
    if suffix == ".csv":
        return next(csv.reader([line]))
    if suffix == ".tsv":
        return line.split("\t")
    return line.split()


def read_names(path: str | os.PathLike) -> dict[int, str]:
    """Index -> name from a names file (MRIcron ``.txt``, ``.tsv`` or ``.csv``)."""
    path = Path(path)
    suffix = ".csv" if path.name.lower().endswith(".csv") else path.suffix.lower()
    names: dict[int, str] = {}
    lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    data_lines = [(n, s.strip()) for n, s in enumerate(lines, 1)
                  if s.strip() and not s.strip().startswith("#")]  # fmt: skip
    for position, (number, line) in enumerate(data_lines):
        fields = [f.strip() for f in _fields(line, suffix)]
        try:
            index = int(fields[0])
        except ValueError:
            if position == 0:  # a header line
                continue
            index = -1
        if index < 0 or len(fields) < 2 or not fields[1]:
            raise AnomalyMapsError(
                f"{path}, line {number}: {line!r}; expected 'index name' with index >= 0"
            )
        if index in names:
            raise AnomalyMapsError(f"{path}, line {number}: index {index} is named twice")
        names[index] = fields[1]
    if not names:
        raise AnomalyMapsError(f"{path}: no 'index name' line")
    return names


def load_atlas(label_path: str | os.PathLike, name: str = "") -> Atlas:
    """An atlas from a label NIfTI and the names file beside it (:func:`names_file`).

    Refused: labels that are not whole numbers >= 0, and labels in the volume that the
    names file does not name (a names file for another atlas)."""
    path = Path(label_path)
    names_path = names_file(path)
    volume = load_volume(path)
    data = volume.data
    if not np.issubdtype(data.dtype, np.integer):
        if data.dtype == bool or np.any(data != np.round(data)):
            raise VolumeError(
                f"--atlas {path}: voxels of type {data.dtype} that are not whole numbers; "
                "expected integer labels (a probabilistic atlas needs thresholding first)"
            )
        data = data.astype(np.int32)
    if data.min() < 0:
        raise VolumeError(f"--atlas {path}: negative labels; expected labels >= 0")
    names = read_names(names_path)
    present = np.unique(data)
    unnamed = [int(v) for v in present if v and int(v) not in names]
    if unnamed:
        raise AnomalyMapsError(
            f"--atlas {path}: {len(unnamed)} label(s) ({', '.join(map(str, unnamed[:5]))}"
            f"{', ...' if len(unnamed) > 5 else ''}) have no name in {names_path}; "
            "expected a names file for this label volume"
        )
    return Atlas(data, volume.affine, names, name or str(path))


def resolve_atlas(spec: str) -> Atlas:
    """``--atlas``: a name of :data:`ATLASES` or a label NIfTI file."""
    if spec in ATLASES:
        path = ATLASES[spec]
        if not path.is_file():
            raise AnomalyMapsError(
                f"--atlas {spec}: {path} is not installed; install it with "
                f"`{_INSTALL[spec]}`, or pass a label NIfTI FILE"
            )
        return load_atlas(path, f"{spec.upper()} ({path})")
    if not Path(spec).is_file():
        raise AnomalyMapsError(
            f"--atlas {spec}: no such file; expected {' or '.join(ATLASES)} or a label "
            "NIfTI FILE with a names file beside it"
        )
    return load_atlas(spec)
