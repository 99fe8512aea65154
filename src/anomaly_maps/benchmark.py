"""A MOOD-style benchmark built offline from the bundled brain template.

The MOOD challenge [1]_ tests out-of-distribution detectors on brain MRI with synthetic
anomalies of known location. Its data cannot be redistributed, so this module makes a
data set with the same layout and label format from anatomy that ships with the
package: the MNI ICBM152 2009a T1 template (:func:`~anomaly_maps.samples.sample_path`,
already skull-stripped, so its brain mask is its foreground).

Every volume is a different draw of healthy variability: a random 3D rotation, zoom and
shift plus a smooth elastic deformation (one resampling, ``grid_sample``), a smooth
multiplicative bias field, a gamma change and Gaussian noise in the brain. Test and
validation volumes hold one anomaly or none, inside the brain:

=========== =============================================================== ==============
anomaly     what changes inside the sphere                                  strength
=========== =============================================================== ==============
intensity   a constant is added or removed (sign drawn)                     0.15 - 0.5
noise       Gaussian noise is added                                         std 0.05 - 0.3
sink        tissue is pulled towards the centre (shrinks)                   0.5 - 2
source      tissue is pushed out from the centre (magnified)                0.5 - 2
shift       tissue from elsewhere is moved in, by strength x radius         0.3 - 1
mirror      the tissue is reflected left-right about the sphere's centre,   0.5 - 1
            blended with weight strength
=========== =============================================================== ==============

Intensities are in [0, 1] (template maximum = 1). Radii are 5-13 % of the shortest side
of the output grid; ``size`` bins them at 7.5 and 10.5 % (small, medium, large). The
voxel label is sphere ∩ brain mask.

Layout (what MOOD's evaluator and :func:`~anomaly_maps.evaluation.evaluate` read)::

    DIR/benchmark.json                  settings, seed, counts, grid
    DIR/cases.csv                       one row per val/test case (see CASE_FIELDS)
    DIR/LICENSE-MNI152.txt              the template's notice (required with copies)
    DIR/train/00000.nii.gz ...          healthy only
    DIR/{val,test}/toy/00000.nii.gz
    DIR/{val,test}/toy_label/pixel/00000.nii.gz       uint8 voxel label
    DIR/{val,test}/toy_label/sample/00000.nii.gz.txt  "0" or "1"

References
----------
.. [1] The MOOD challenge (Medical Out-of-Distribution Analysis), brain MRI track, as
   used by Marimont & Tarroni, ISBI 2021 (seed 002, section 3.1).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from scipy.spatial.transform import Rotation

from ._config import FrozenConfig, is_int, is_real
from .errors import AnomalyMapsError, ParameterError
from .io import Volume, load_volume, save_volume
from .preprocessing import foreground_mask

__all__ = [
    "ANOMALY_TYPES",
    "CASE_FIELDS",
    "SIZE_BINS",
    "SIZE_EDGES",
    "BenchmarkSpec",
    "Case",
    "HealthyDraw",
    "Template",
    "healthy_draw",
    "insert_anomaly",
    "load_template",
    "make_benchmark",
    "read_cases",
]

log = logging.getLogger(__name__)

ANOMALY_TYPES: tuple[str, ...] = ("intensity", "noise", "sink", "source", "shift", "mirror")
SIZE_BINS: tuple[str, ...] = ("small", "medium", "large")
SIZE_EDGES: tuple[float, ...] = (0.075, 0.105)
"""Radius fractions where ``medium`` and ``large`` start: about thirds of 5-13 %."""
_STRENGTH: dict[str, tuple[float, float]] = {
    "intensity": (0.15, 0.5),
    "noise": (0.05, 0.3),
    "sink": (0.5, 2.0),
    "source": (0.5, 2.0),
    "shift": (0.3, 1.0),
    "mirror": (0.5, 1.0),
}
MANIFEST = "benchmark.json"
CASES = "cases.csv"
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class BenchmarkSpec(FrozenConfig):
    """Healthy variability and anomalies of a benchmark (stored in ``benchmark.json``).

    Parameters
    ----------
    rotate_deg, scale, translate_mm
        Random affine: rotation about each axis (+- degrees), isotropic zoom (+-
        fraction), shift along each axis (+- mm).
    elastic_mm, elastic_grid
        Elastic deformation: displacement std in mm on ``elastic_grid``^3 control
        points, smoothly (trilinearly) interpolated.
    bias
        Std of the log of the multiplicative bias field (4^3 control points).
    gamma
        Range of the gamma exponent, drawn log-uniformly.
    noise
        Std of Gaussian noise added to brain voxels (intensities in [0, 1]).
    anomaly_fraction
        Fraction of val/test cases that hold an anomaly (the rest are healthy).
    radius
        Range of anomaly radii as fractions of the grid's shortest side.
    anomalies
        Anomaly types to draw from, in turn (see the module table).
    """

    rotate_deg: float = 6.0
    scale: float = 0.06
    translate_mm: float = 4.0
    elastic_mm: float = 2.0
    elastic_grid: int = 5
    bias: float = 0.1
    gamma: tuple[float, float] = (0.85, 1.2)
    noise: float = 0.01
    anomaly_fraction: float = 0.5
    radius: tuple[float, float] = (0.05, 0.13)
    anomalies: tuple[str, ...] = ANOMALY_TYPES

    format_version: ClassVar[int] = 1

    def validate(self) -> None:
        for name in ("rotate_deg", "translate_mm", "elastic_mm", "bias", "noise"):
            value = getattr(self, name)
            self._require(name, is_real(value) and value >= 0, "a finite float >= 0")
        self._require("scale", is_real(self.scale) and 0 <= self.scale < 1, "a float in [0, 1)")
        ok = is_int(self.elastic_grid) and self.elastic_grid >= 2
        self._require("elastic_grid", ok, "an int >= 2")
        for name, upper in (("gamma", float("inf")), ("radius", 0.5)):
            pair = getattr(self, name)
            ok = (
                isinstance(pair, tuple)
                and len(pair) == 2
                and all(is_real(v) for v in pair)
                and 0 < pair[0] <= pair[1] <= upper
            )
            self._require(name, ok, f"a pair (low, high) with 0 < low <= high <= {upper}")
        frac = self.anomaly_fraction
        self._require("anomaly_fraction", is_real(frac) and 0 <= frac <= 1, "a float in [0, 1]")
        ok = (
            isinstance(self.anomalies, tuple)
            and len(self.anomalies) > 0
            and set(self.anomalies) <= set(ANOMALY_TYPES)
        )
        self._require("anomalies", ok, f"a non-empty tuple of {list(ANOMALY_TYPES)}")

    @classmethod
    def _label(cls) -> str:
        return "benchmark"


@dataclass(frozen=True)
class Case:
    """One val/test case as recorded in ``cases.csv``.

    ``anomaly`` is ``"none"`` for a healthy case, whose ``size`` is ``""`` and whose
    geometry fields are 0. ``center`` is in voxel indices of the case's grid,
    ``radius`` in voxels, ``radius_fraction`` of the grid's shortest side, and
    ``label_voxels`` counts the voxel label (sphere ∩ brain).
    """

    split: str
    case: str
    label: int
    anomaly: str = "none"
    size: str = ""
    radius: float = 0.0
    radius_fraction: float = 0.0
    center_x: float = 0.0
    center_y: float = 0.0
    center_z: float = 0.0
    strength: float = 0.0
    label_voxels: int = 0


CASE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Case))


@dataclass(frozen=True)
class HealthyDraw:
    """One healthy volume on the benchmark grid: intensities in [0, 1] and brain mask."""

    data: np.ndarray
    brain: np.ndarray


@dataclass(frozen=True, eq=False)
class Template:
    """Healthy anatomy to draw volumes from: a skull-stripped scan, its intensities
    scaled to [0, 1] and its brain mask (foreground, holes filled), stacked for one
    resampling as a (1, 2, X, Y, Z) float32 tensor."""

    volume: Volume
    source: torch.Tensor


def load_template(path: str | os.PathLike | None = None) -> Template:
    """The template at ``path`` (a skull-stripped T1 NIfTI), by default the bundled MNI
    ICBM152 2009a T1. The brain mask is its foreground (computed once: ~1.5 s at 1 mm)."""
    from .samples import sample_path

    volume = load_volume(sample_path("brain") if path is None else path)
    image = volume.data.astype(np.float32)
    image /= max(float(image.max()), 1e-12)
    brain = foreground_mask(volume.data).astype(np.float32)
    return Template(volume, torch.from_numpy(np.stack([image, brain]))[None])


def _grid_affine(template: Volume, shape: tuple[int, int, int]) -> tuple[np.ndarray, float]:
    """(affine, zoom): the template's field of view fitted isotropically into ``shape``,
    centred; ``zoom`` = output voxels per template voxel."""
    tshape = np.asarray(template.shape, float)
    zoom = float(np.min(np.asarray(shape) / tshape))
    index = np.eye(4)  # output voxel -> template voxel
    index[:3, :3] /= zoom
    index[:3, 3] = (tshape - 1) / 2 - (np.asarray(shape) - 1) / 2 / zoom
    return template.affine @ index, zoom


def _unit_coordinates(shape: np.ndarray) -> np.ndarray:
    """4x4 map from voxel indices to grid_sample's [-1, 1] (align_corners=True)."""
    scale = 2 / (np.asarray(shape, float) - 1)
    unit = np.diag([*scale, 1.0])
    unit[:3, 3] = -1
    return unit


def healthy_draw(
    template: Template,
    shape: tuple[int, int, int],
    spec: BenchmarkSpec,
    rng: np.random.Generator,
) -> HealthyDraw:
    """One healthy draw of ``template`` (intensities in [0, 1]) on a grid of
    ``shape`` (see :func:`_grid_affine`), with the spec's random affine, elastic
    deformation, bias field, gamma and noise. Deterministic given ``rng``'s state.

    The template's image and brain mask are resampled together in one trilinear
    ``grid_sample``; the bias field is a trilinear upsampling of 4^3 random values.
    """
    tshape = np.asarray(template.volume.shape)
    zooms = template.volume.zooms
    _, zoom = _grid_affine(template.volume, shape)

    rotation = Rotation.from_euler("xyz", rng.uniform(-1, 1, 3) * spec.rotate_deg, degrees=True)
    scale = 1 + rng.uniform(-spec.scale, spec.scale)
    shift_mm = rng.uniform(-1, 1, 3) * spec.translate_mm
    # template voxel u = c_t + (R / scale (Z (v - c_out) / zoom) + shift + elastic) / Z,
    # Z = diag(template zooms): rotation and zoom act in millimetres about the centres
    z = np.diag(zooms)
    matrix = np.linalg.inv(z) @ rotation.as_matrix() / scale @ z / zoom
    offset = (tshape - 1) / 2 + shift_mm / zooms - matrix @ ((np.asarray(shape) - 1) / 2)
    # in grid_sample's normalised coordinates ([-1, 1], axes in (z, y, x) order)
    to_unit_in = _unit_coordinates(tshape)
    from_unit_out = np.linalg.inv(_unit_coordinates(np.asarray(shape)))
    index = np.eye(4)
    index[:3, :3], index[:3, 3] = matrix, offset
    theta = (to_unit_in @ index @ from_unit_out)[:3][::-1][:, [2, 1, 0, 3]]
    grid = F.affine_grid(
        torch.from_numpy(theta.astype(np.float32))[None], [1, 2, *shape], align_corners=True
    )
    # elastic displacement (mm) in the same units, upsampled from control points
    per_mm = 2 / ((tshape - 1) * zooms)
    coarse = rng.normal(size=(1, 3, *(spec.elastic_grid,) * 3)) * spec.elastic_mm
    coarse = (coarse * per_mm[None, :, None, None, None])[:, ::-1].astype(np.float32)
    elastic = F.interpolate(
        torch.from_numpy(coarse.copy()), size=shape, mode="trilinear", align_corners=True
    )
    grid += elastic.permute(0, 2, 3, 4, 1)
    warped = F.grid_sample(
        template.source, grid, mode="bilinear", padding_mode="zeros", align_corners=True
    )
    data, mask = warped[0, 0], warped[0, 1] >= 0.5

    coarse_bias = torch.from_numpy(
        (rng.normal(size=(1, 1, 4, 4, 4)) * spec.bias).astype(np.float32)
    )
    bias = F.interpolate(coarse_bias, size=shape, mode="trilinear", align_corners=True)[0, 0]
    data = data * torch.exp(bias)
    log_gamma = rng.uniform(*np.log(spec.gamma))
    data = data.clamp(0, 1) ** float(np.exp(log_gamma))
    noise = torch.from_numpy(rng.standard_normal(shape, dtype=np.float32))
    data = torch.where(mask, data + noise * spec.noise, data).clamp(0, 1)
    return HealthyDraw(data.numpy(), mask.numpy())


def _size_bin(fraction: float) -> str:
    return SIZE_BINS[int(np.searchsorted(SIZE_EDGES, fraction, side="right"))]


def insert_anomaly(
    draw: HealthyDraw,
    kind: str,
    spec: BenchmarkSpec,
    rng: np.random.Generator,
    *,
    lr_axis: int = 0,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Put one anomaly of ``kind`` into a healthy draw (see the module table).

    The centre is a random brain voxel, redrawn (up to 20 times) until at least half the
    sphere lies in the brain. Only voxels of sphere ∩ brain change, and they are the label.

    Returns
    -------
    data, label, info
        New intensities (float32, [0, 1]), the uint8 voxel label and the :class:`Case`
        fields ``anomaly, size, radius, radius_fraction, center_*, strength``.
    """
    if kind not in ANOMALY_TYPES:
        raise ParameterError(f"anomaly {kind!r}: expected one of {list(ANOMALY_TYPES)}")
    shape = np.asarray(draw.data.shape)
    fraction = float(rng.uniform(*spec.radius))
    radius = fraction * float(shape.min())
    strength = float(rng.uniform(*_STRENGTH[kind]))
    brain_voxels = np.flatnonzero(draw.brain)
    if brain_voxels.size == 0:
        raise ParameterError("cannot place an anomaly: the volume has no brain voxels")
    half = int(np.ceil(radius))
    for _ in range(20):
        center = np.array(np.unravel_index(rng.choice(brain_voxels), draw.data.shape), float)
        lo = np.maximum(center.astype(int) - half, 0)
        hi = np.minimum(center.astype(int) + half + 1, shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        points = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi, strict=True)],
                                      indexing="ij"), axis=-1).astype(float)  # fmt: skip
        distance = np.linalg.norm(points - center, axis=-1)
        sphere = distance <= radius
        if draw.brain[box][sphere].mean() >= 0.5:
            break
    inside = sphere & draw.brain[box]
    where = points[inside]  # (n, 3) voxel coordinates of the changed voxels
    r = distance[inside][:, None]
    old = draw.data[box][inside]
    if kind == "intensity":
        new = old + strength * rng.choice((-1.0, 1.0))
    elif kind == "noise":
        new = old + strength * rng.standard_normal(old.shape)
    else:
        weight = 1.0
        if kind == "shift":
            direction = rng.normal(size=3)
            source = where - direction / np.linalg.norm(direction) * strength * radius
        elif kind == "mirror":
            source = where.copy()
            source[:, lr_axis] = 2 * center[lr_axis] - source[:, lr_axis]
            weight = strength
        else:  # radial remap r -> R (r / R)^p: p > 1 magnifies (source), p < 1 shrinks
            power = 1 + strength if kind == "source" else 1 / (1 + strength)
            factor = np.where(r > 0, (np.maximum(r, 1e-9) / radius) ** (power - 1), 0.0)
            source = center + (where - center) * factor
        moved = ndimage.map_coordinates(draw.data, source.T, order=1, mode="constant")
        new = (1 - weight) * old + weight * moved
    data = draw.data.copy()
    data[box][inside] = np.clip(new, 0, 1)
    label = np.zeros(draw.data.shape, np.uint8)
    label[box][inside] = 1
    info = {
        "anomaly": kind,
        "size": _size_bin(fraction),
        "radius": round(radius, 3),
        "radius_fraction": round(fraction, 5),
        "center_x": center[0],
        "center_y": center[1],
        "center_z": center[2],
        "strength": round(strength, 5),
    }
    return data, label, info


def _shape(shape: int | tuple[int, ...] | None, template: Volume) -> tuple[int, int, int]:
    if shape is None:
        return template.shape
    if is_int(shape):
        shape = (shape,) * 3
    ok = isinstance(shape, tuple | list) and len(shape) == 3 and all(is_int(s) for s in shape)
    if not ok or min(shape) < 8:
        raise ParameterError(f"shape={shape!r}: expected an int or 3 ints, each >= 8 voxels")
    return tuple(int(s) for s in shape)  # type: ignore[return-value]


def _check_target(out: Path, overwrite: bool) -> None:
    """Refuse a non-empty ``out``; with ``overwrite``, only a benchmark may be replaced."""
    if out.exists() and not out.is_dir():
        raise AnomalyMapsError(f"{out}: is a file, expected a folder for the benchmark")
    if not out.exists() or not any(out.iterdir()):
        return
    if not overwrite:
        raise AnomalyMapsError(
            f"{out}: folder is not empty; pass overwrite=True (CLI: --overwrite) to replace it"
        )
    if not (out / MANIFEST).is_file():
        raise AnomalyMapsError(
            f"{out}: not empty and holds no {MANIFEST}: refusing to replace a folder that "
            "make-benchmark did not write; choose an empty or new folder"
        )


def _write_text(path: Path, text: str) -> None:
    from ._fileio import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _assignments(n: int, spec: BenchmarkSpec, rng: np.random.Generator) -> list[str]:
    """Anomaly kind (or "none") per case: round(n * fraction) anomalous, kinds in turn,
    order shuffled."""
    n_anomalous = round(n * spec.anomaly_fraction)
    kinds = [spec.anomalies[i % len(spec.anomalies)] for i in range(n_anomalous)]
    return [str(k) for k in rng.permutation(kinds + ["none"] * (n - n_anomalous))]


def _write_case(
    folder: Path, name: str, draw: HealthyDraw, kind: str, affine: np.ndarray, **anomaly: Any
) -> Case:
    """Write one val/test case in MOOD's layout (scan, voxel label, sample label)."""
    data, label, info = draw.data, np.zeros(draw.data.shape, np.uint8), {}
    if kind != "none":
        data, label, info = insert_anomaly(draw, kind, **anomaly)
    is_anomalous = int(kind != "none")
    save_volume(Volume(data, affine), folder / "toy" / name)
    save_volume(Volume(label, affine), folder / "toy_label" / "pixel" / name)
    _write_text(folder / "toy_label" / "sample" / f"{name}.txt", f"{is_anomalous}\n")
    return Case(folder.name, name, is_anomalous, label_voxels=int(label.sum()), **info)


def make_benchmark(
    out_dir: str | os.PathLike,
    *,
    n_train: int = 20,
    n_val: int = 10,
    n_test: int = 20,
    seed: int = 0,
    shape: int | tuple[int, int, int] | None = None,
    spec: BenchmarkSpec | None = None,
    template: Template | str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Build a MOOD-style benchmark in ``out_dir`` (layout in the module docstring).

    Parameters
    ----------
    out_dir
        Target folder: new, empty, or (with ``overwrite``) an earlier benchmark.
    n_train, n_val, n_test
        Volumes per split; train is healthy only, val and test hold anomalies.
    seed
        Everything follows from it. The splits draw from disjoint, independent streams
        (``SeedSequence(seed).spawn``), so no training volume is a test volume.
    shape
        Output grid (int for a cube); the template's field of view is fitted into it
        isotropically and centred, and the affine says so. Default: the template's own
        grid (197 x 233 x 189 at 1 mm for the bundled one).
    spec
        Variability and anomaly settings (default :class:`BenchmarkSpec`).
    template
        A skull-stripped T1 (path or :func:`load_template` result) to use instead of
        the bundled MNI template, e.g. a subject kept apart from training, to test on
        anatomy the model never saw.
    overwrite
        Replace an earlier benchmark in ``out_dir``.
    progress
        Called as ``progress(done, total)`` after each volume.

    Returns
    -------
    Path
        ``out_dir``. The benchmark is built in a temporary folder beside it and moved
        into place at the end, so a failure leaves no partial benchmark.
    """
    from .samples import MNI152_NOTICE, SAMPLES, sample_path

    spec = spec or BenchmarkSpec()
    counts = {"train": n_train, "val": n_val, "test": n_test}
    for name, n in counts.items():
        if not (is_int(n) and n >= 0):
            raise ParameterError(f"n_{name}={n!r}: expected an int >= 0")
    if not (is_int(seed) and seed >= 0):
        raise ParameterError(f"seed={seed!r}: expected an int >= 0")
    out = Path(out_dir)
    _check_target(out, overwrite)
    source = template if isinstance(template, Template) else load_template(template)
    grid = _shape(shape, source.volume)
    affine, _ = _grid_affine(source.volume, grid)
    lr_axis = int(np.argmax(np.abs(affine[0, :3])))  # array axis running left-right
    bundled = source.volume.path == sample_path("brain")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        streams = dict(zip(SPLITS, np.random.SeedSequence(seed).spawn(3), strict=True))
        total, done = sum(counts.values()), 0
        cases: list[Case] = []
        for split in SPLITS:
            seeds = streams[split].spawn(counts[split] + 1)
            kinds = _assignments(counts[split], spec, np.random.default_rng(seeds[0]))
            for i, case_seed in enumerate(seeds[1:]):
                rng = np.random.default_rng(case_seed)
                draw = healthy_draw(source, grid, spec, rng)
                name = f"{i:05d}.nii.gz"
                if split == "train":
                    save_volume(Volume(draw.data, affine), tmp / split / name)
                else:
                    cases.append(
                        _write_case(tmp / split, name, draw, kinds[i], affine, spec=spec,
                                    rng=rng, lr_axis=lr_axis)
                    )  # fmt: skip
                done += 1
                if progress is not None:
                    progress(done, total)
        with (tmp / CASES).open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=CASE_FIELDS)
            writer.writeheader()
            writer.writerows(vars(c) for c in cases)
        manifest = {
            "format_version": 1,
            "kind": "anomaly-maps benchmark",
            "seed": seed,
            "counts": counts,
            "shape": list(grid),
            "affine": affine.tolist(),
            "template": SAMPLES["brain"][1] if bundled else str(source.volume.path),
            "spec": {"format_version": spec.format_version, **spec.to_dict()},
        }
        _write_text(tmp / MANIFEST, json.dumps(manifest, indent=2) + "\n")
        if bundled:  # its licence asks for the notice in all copies
            _write_text(tmp / "LICENSE-MNI152.txt", MNI152_NOTICE)
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote benchmark %s: %s", out, counts)
    return out


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Move the finished ``tmp`` folder to ``out``, replacing an earlier benchmark."""
    if not out.exists():
        os.rename(tmp, out)
        return
    old = out.with_name(f".{out.name}.old-{tmp.name.rsplit('-', 1)[-1]}")
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except OSError:
        os.rename(old, out)  # put the earlier benchmark back
        raise
    shutil.rmtree(old)


def read_cases(benchmark: str | os.PathLike) -> list[Case]:
    """Cases of a benchmark: ``benchmark`` is its folder or its ``cases.csv``."""
    path = Path(benchmark)
    if path.is_dir():
        path = path / CASES
    if not path.is_file():
        raise AnomalyMapsError(f"{path}: no such file, expected a benchmark's {CASES}")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or set(reader.fieldnames) != set(CASE_FIELDS):
            raise AnomalyMapsError(
                f"{path}: columns {reader.fieldnames}: expected {list(CASE_FIELDS)}"
            )
        types = {f.name: f.type for f in fields(Case)}
        convert = {"int": int, "float": float, "str": str}
        try:
            return [Case(**{k: convert[types[k]](v) for k, v in row.items()}) for row in reader]
        except ValueError as err:
            raise AnomalyMapsError(f"{path}: unreadable row ({err})") from err
