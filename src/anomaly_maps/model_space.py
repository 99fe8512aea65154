"""The space a model was trained in, and scoring a scan there with its maps brought back.

A model learns anatomy on one grid: the bundled ones on the MNI ICBM152 2009a template's
field of view (1.82 mm, 128^3, RAS). The checkpoint records it (:func:`space_of`, written
by training as ``training.space``). :func:`place_scan` decides, per scan and
``--space`` choice (:data:`SPACES`), what the model scores: the scan itself when it lies
on the model's grid (or on the template's own 1 mm grid, the same field of view), else
the scan registered rigidly then affinely to the template (:mod:`.registration`) and
resampled onto the model's grid. Its intensities are then standardised exactly as the
training volumes were, by the checkpoint's preprocessing (``percentile`` or ``zscore``
of the foreground) inside :func:`~anomaly_maps.scoring.score_volume`.
:meth:`Placement.to_native` resamples every map (trilinear) and foreground mask
(nearest) back onto the scan's grid, so they save with the scan's affine.

Checkpoints written before the record (the bundled ones) are taken to be in MNI space
when their benchmark record says the benchmark was built from the MNI ICBM152 template
(``make-benchmark`` writes "NxNxN voxels ... MNI ICBM152 ..."), on that benchmark's grid;
any other checkpoint without a record is of unknown space and scores scans natively.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from .errors import ParameterError, VolumeError
from .io import NIFTI_SUFFIXES, Volume, load_volume, save_volume
from .registration import register, resample

__all__ = [
    "MNI_NAME",
    "SPACES",
    "ModelSpace",
    "Placement",
    "check_model_space_outputs",
    "check_space_choice",
    "check_space_run",
    "checkpoint_space",
    "grid_difference",
    "model_space_path",
    "on_model_grid",
    "place_scan",
    "score_in_space",
    "space_of",
    "write_model_space_map",
]

SPACES: dict[str, str] = {
    "auto": "a scan off the model's grid is registered into the model's space, scored "
    "there and its maps resampled back onto the scan's grid",
    "native": "score the scan on its own grid (no registration)",
    "model": "as auto, and also write each map in the model's space (*_model-space.nii.gz)",
}
MNI_NAME = "MNI152NLin2009aSym"
UNKNOWN = "unknown"
_ATOL_MM = 1e-3
_BENCHMARK_GRID = re.compile(r"(\d+)x(\d+)x(\d+) voxels")


@dataclass(frozen=True)
class ModelSpace:
    """Name and grid of a model's training space (``name`` ``"unknown"``: no grid)."""

    name: str = UNKNOWN
    shape: tuple[int, int, int] | None = None
    affine: tuple[tuple[float, ...], ...] | None = None

    @property
    def known(self) -> bool:
        return self.name != UNKNOWN and self.shape is not None and self.affine is not None

    @property
    def is_mni(self) -> bool:
        """In the bundled template's world: registration to it is possible."""
        return self.known and self.name.startswith(MNI_NAME)

    @property
    def matrix(self) -> np.ndarray:
        return np.asarray(self.affine, dtype=float)

    def describe(self) -> str:
        if not self.known:
            return UNKNOWN
        return (f"{self.name}, {'x'.join(map(str, self.shape))} voxels, "
                f"{''.join(nib.aff2axcodes(self.matrix))}")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """The ``training.space`` record: name, shape, affine, orientation code."""
        if not self.known:
            return {"name": UNKNOWN}
        return {"name": self.name, "shape": list(self.shape),
                "affine": [list(r) for r in self.affine],
                "orientation": "".join(nib.aff2axcodes(self.matrix))}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpace:
        if data.get("name", UNKNOWN) == UNKNOWN or "shape" not in data:
            return cls()
        return cls(str(data["name"]), _shape(data["shape"]), _rows(np.asarray(data["affine"])))

    @classmethod
    def of_grid(cls, name: str, shape: Sequence[int], affine: np.ndarray) -> ModelSpace:
        return cls(name, _shape(shape), _rows(affine))


def _shape(shape: Sequence[int]) -> tuple[int, int, int]:
    return tuple(int(s) for s in shape)  # type: ignore[return-value]


def _rows(affine: np.ndarray) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(v) for v in row) for row in np.asarray(affine, float))


@lru_cache(maxsize=1)
def _template() -> Volume:
    from .samples import sample_path

    return load_volume(sample_path("brain"))


def _template_grid() -> tuple[tuple[int, int, int], np.ndarray]:
    """The bundled template's shape and affine, from its header alone."""
    from .samples import sample_path

    img = nib.load(sample_path("brain"))
    return _shape(img.shape[:3]), img.affine


def _fit(tshape: Sequence[int], taffine: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """:func:`~anomaly_maps.benchmark.healthy.grid_affine` from the template's header."""
    tshape_f = np.asarray(tshape, float)
    zoom = float(np.min(np.asarray(shape) / tshape_f))
    index = np.eye(4)
    index[:3, :3] /= zoom
    index[:3, 3] = (tshape_f - 1) / 2 - (np.asarray(shape) - 1) / 2 / zoom
    return taffine @ index


def _mni_space(shape: Sequence[int], affine: np.ndarray) -> ModelSpace | None:
    """The MNI space of this grid when it is the template's or a benchmark grid."""
    tshape, taffine = _template_grid()
    candidates = [(tshape, taffine), (_shape(shape), _fit(tshape, taffine, shape))]
    for cshape, caffine in candidates:
        if _shape(shape) == cshape and np.allclose(affine, caffine, atol=_ATOL_MM):
            zoom = float(np.sqrt((caffine[:3, :3] ** 2).sum(axis=0)).mean())
            return ModelSpace.of_grid(f"{MNI_NAME} {zoom:.3g} mm", cshape, caffine)
    return None


def _grid(source: Volume | str | os.PathLike) -> tuple[tuple[int, int, int], np.ndarray]:
    if isinstance(source, Volume):
        return source.shape, source.affine
    path = Path(source)
    if path.name.endswith(NIFTI_SUFFIXES):  # the header is enough
        img = nib.load(path)
        return _shape(img.shape[:3]), img.affine
    volume = load_volume(path)
    return volume.shape, volume.affine


def space_of(sources: Iterable[Volume | str | os.PathLike]) -> dict[str, Any]:
    """The ``training.space`` record of training volumes (volumes or files): MNI on
    their grid when they all share one and it is the template's or a benchmark grid of
    it; ``{"name": "unknown"}`` otherwise (and for no volumes)."""
    grids = [_grid(s) for s in sources]
    if not grids:
        return ModelSpace().to_dict()
    shape, affine = grids[0]
    same = all(s == shape and np.allclose(a, affine, atol=_ATOL_MM) for s, a in grids[1:])
    space = _mni_space(shape, affine) if same else None
    return (space or ModelSpace()).to_dict()


def checkpoint_space(checkpoint: Any) -> ModelSpace:
    """The space a checkpoint's models were trained in (see the module docstring for the
    rule that places checkpoints written before the record)."""
    records = checkpoint.records
    training = records.training
    recorded = getattr(training, "space", None)
    if recorded is not None:
        return ModelSpace.from_dict(recorded)
    from .records import trained_on_brains

    benchmark = records.benchmark.data if records.benchmark else ""
    if not (trained_on_brains(training) and "MNI ICBM152" in benchmark):
        return ModelSpace()
    found = _BENCHMARK_GRID.search(benchmark)
    shape = _shape(found.groups()) if found else _template_grid()[0]
    return _mni_space(shape, _fit(*_template_grid(), shape)) or ModelSpace()


def on_model_grid(volume: Volume, space: ModelSpace) -> bool:
    """Whether the scan lies on the model's grid (or the template's own, for MNI)."""
    if not space.known:
        return False
    if volume.shape == space.shape and np.allclose(volume.affine, space.matrix, atol=_ATOL_MM):
        return True
    tshape, taffine = _template_grid()
    on_template = volume.shape == tshape and np.allclose(volume.affine, taffine, atol=_ATOL_MM)
    return space.is_mni and on_template


def grid_difference(volume: Volume, space: ModelSpace) -> str:
    """How a scan's grid differs from the model's: shape, voxel size, orientation, origin."""
    zooms = np.sqrt((space.matrix[:3, :3] ** 2).sum(axis=0))
    parts = []
    if volume.shape != space.shape:
        parts.append(f"shape {'x'.join(map(str, volume.shape))} vs "
                     f"{'x'.join(map(str, space.shape))}")  # fmt: skip
    if not np.allclose(volume.zooms, zooms, atol=_ATOL_MM):
        parts.append(f"voxels {'x'.join(f'{z:.3g}' for z in volume.zooms)} vs "
                     f"{'x'.join(f'{z:.3g}' for z in zooms)} mm")  # fmt: skip
    axcodes, model_axcodes = "".join(volume.axcodes), "".join(nib.aff2axcodes(space.matrix))
    direction = volume.affine[:3, :3] / volume.zooms
    model_direction = space.matrix[:3, :3] / zooms
    if axcodes != model_axcodes or not np.allclose(direction, model_direction, atol=1e-3):
        parts.append(f"orientation {axcodes} vs {model_axcodes}"
                     + ("" if axcodes != model_axcodes else " (oblique)"))  # fmt: skip
    return ", ".join(parts) or "origin differs"


def check_space_choice(choice: str, space: ModelSpace, checkpoint: object) -> None:
    """Refuse, before any work, an unknown ``--space`` or ``model`` without a known space."""
    if choice not in SPACES:
        raise ParameterError(f"--space {choice!r}: expected one of {list(SPACES)}")
    if choice == "model" and not space.is_mni:
        raise ParameterError(
            f"--space model: {checkpoint} records no model space with a template "
            f"(space: {space.describe()}); use --space native"
        )


@dataclass(frozen=True, eq=False)
class Placement:
    """A scan and what the model scores of it.

    ``scored`` is ``native`` itself (pass-through) or the scan resampled onto the
    model's grid; ``model_to_native`` then takes model world points to the scan's
    world (RAS mm). ``note`` is one line to tell the user, or ``None``.
    """

    native: Volume
    scored: Volume
    model_to_native: np.ndarray | None = None
    note: str | None = None

    @property
    def registered(self) -> bool:
        return self.model_to_native is not None

    def to_native(self, results: list) -> list:
        """Each :class:`~anomaly_maps.scoring.VolumeScore` with its map (trilinear) and
        foreground (nearest) on the scan's grid; slice and volume scores stay those of
        the model-space volume. A pass-through returns ``results`` themselves."""
        if not self.registered:
            return results
        back = np.linalg.inv(self.model_to_native)
        grid = (self.native.shape, self.native.affine)

        def native(data: np.ndarray, order: int) -> np.ndarray:
            return resample(data, self.scored.affine, back, *grid, order=order)

        out, masks = [], {}
        for result in results:
            key = id(result.foreground)
            if key not in masks:
                masks[key] = native(result.foreground, 0)
            foreground = masks[key]
            volume_map = None
            if result.map is not None:
                volume_map = (native(result.map, 1) * foreground).astype(np.float32)
            out.append(replace(result, map=volume_map, foreground=foreground))
        return out


@lru_cache(maxsize=2)
def _fixed(space: ModelSpace) -> Volume:
    """The template on the model's grid: the registration's fixed image."""
    template = _template()
    if template.shape == space.shape and np.allclose(template.affine, space.matrix):
        return template
    data = resample(template.data, template.affine, np.eye(4), space.shape, space.matrix)
    return Volume(data, space.matrix)


def place_scan(volume: Volume, choice: str, space: ModelSpace, *, seed: int = 0) -> Placement:
    """What the model scores of ``volume`` under ``--space choice`` (see :data:`SPACES`).

    Raises
    ------
    ParameterError
        An unknown choice, or ``model`` for a checkpoint without a known space.
    ~anomaly_maps.registration.RegistrationError
        The registration failed (one line naming the scan).
    """
    check_space_choice(choice, space, "the checkpoint")
    if choice == "native" or volume.is_image2d or not space.is_mni or on_model_grid(volume, space):
        return Placement(volume, volume)
    started = time.perf_counter()
    world = register(volume, _fixed(space), seed=seed)
    data = resample(volume.data, volume.affine, world, space.shape, space.matrix,
                    cval=float(np.min(volume.data)))  # fmt: skip
    scored = Volume(data.astype(np.float32), space.matrix, volume.path)
    note = (
        f"{volume.path or 'volume'}: not on the model's grid ({grid_difference(volume, space)}): "
        f"registered to {space.name} (rigid + affine, {time.perf_counter() - started:.1f} s), "
        "scored there, maps resampled onto the scan's grid (--space native scores it as is)"
    )
    return Placement(volume, scored, world, note)


def score_in_space(
    volume: Volume, checkpoint: Any, scorers: Sequence[tuple[str, dict[str, Any]]],
    *, space: str = "auto", **options: Any,
) -> tuple[list, Placement]:  # fmt: skip
    """:func:`~anomaly_maps.scoring.score_volume` in the model's space: the results on
    the scan's grid, and the :class:`Placement` (its ``scored`` volume is what the model
    saw). ``options`` go to ``score_volume``."""
    from .scoring import score_volume
    from .scoring.pipeline import check_model_takes

    check_model_takes(volume, checkpoint)
    seed = options.get("seed", 0)
    placement = place_scan(volume, space, checkpoint_space(checkpoint), seed=seed)
    results = score_volume(placement.scored, checkpoint, scorers, **options)
    return placement.to_native(results), placement


def model_space_path(map_path: str | os.PathLike) -> Path:
    """Where ``--space model`` writes a map in model space: ``x_rec.nii.gz`` ->
    ``x_rec_model-space.nii.gz``."""
    path = Path(map_path)
    suffix = next(s for s in (".nii.gz", ".nii") if path.name.endswith(s))
    return path.with_name(path.name[: -len(suffix)] + "_model-space" + suffix)


def check_model_space_outputs(map_paths: Iterable[Path], overwrite: bool) -> None:
    """Refuse, before any work, model-space map names that exist (without overwrite)."""
    taken = [p for p in map(model_space_path, map_paths) if p.exists()]
    if taken and not overwrite:
        raise VolumeError(f"{taken[0]}: exists; pass --overwrite to replace it")


def write_model_space_map(
    placement: Placement, model_map: np.ndarray, map_path: Path, *, overwrite: bool = False
) -> Path:
    """Save a map computed on ``placement.scored`` with the model space's affine."""
    volume = Volume(np.asarray(model_map, np.float32), placement.scored.affine)
    return save_volume(volume, model_space_path(map_path), overwrite=overwrite)


def check_space_run(
    choice: str, checkpoint: Any, name: object, planned: Mapping[str, Mapping[str, Any]],
    *, overwrite: bool,
) -> None:  # fmt: skip
    """``anomaly-maps score --space``, checked before any work: a known space for
    ``model``, and its extra map names free (``planned``: scan -> scorer -> ScoreFiles)."""
    check_space_choice(choice, checkpoint_space(checkpoint), name)
    if choice == "model":
        maps = [f.map for files in planned.values() for f in files.values()]
        check_model_space_outputs(maps, overwrite)
