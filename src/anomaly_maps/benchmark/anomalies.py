"""Synthetic anomalies of a benchmark: a registry of kinds and their insertion.

Each kind is a function registered with :func:`register_anomaly`; it gets the voxels of
sphere ∩ brain (a :class:`Sphere`), a strength drawn from the kind's range and the
case's generator, and returns their new intensities. Built in:

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

Adding a kind is one function here (or in any module imported before the benchmark
is made)::

    @register_anomaly("dark", strength=(0.2, 0.6), description="darkened tissue")
    def _dark(sphere, strength, rng):
        return sphere.old * (1 - strength)

A kind must draw from ``rng`` only, so that a benchmark follows from its seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage

from ..errors import ParameterError

if TYPE_CHECKING:
    from .healthy import HealthyDraw
    from .spec import BenchmarkSpec

__all__ = [
    "ANOMALY_TYPES",
    "SIZE_BINS",
    "SIZE_EDGES",
    "AnomalyKind",
    "Sphere",
    "anomaly_kinds",
    "get_anomaly",
    "insert_anomaly",
    "register_anomaly",
]

SIZE_BINS: tuple[str, ...] = ("small", "medium", "large")
SIZE_EDGES: tuple[float, ...] = (0.075, 0.105)
"""Radius fractions where ``medium`` and ``large`` start: about thirds of 5-13 %."""


@dataclass(frozen=True, eq=False)
class Sphere:
    """Where an anomaly goes: the ``n`` voxels of sphere ∩ brain of one healthy draw.

    ``points`` are their (n, 3) voxel coordinates, ``distance`` their (n,) distances
    from ``center`` (voxels), ``old`` their (n,) intensities; ``data`` is the whole
    healthy volume (to resample tissue from) and ``lr_axis`` its left-right axis.
    """

    data: np.ndarray
    points: np.ndarray
    distance: np.ndarray
    center: np.ndarray
    radius: float
    old: np.ndarray
    lr_axis: int


AnomalyFunction = Callable[[Sphere, float, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class AnomalyKind:
    """A registered anomaly kind: its strength range and how it changes the sphere."""

    name: str
    strength: tuple[float, float]
    description: str
    apply: AnomalyFunction


_KINDS: dict[str, AnomalyKind] = {}


def register_anomaly(
    name: str, *, strength: tuple[float, float], description: str
) -> Callable[[AnomalyFunction], AnomalyFunction]:
    """Register ``function(sphere, strength, rng) -> new (n,) intensities`` as ``name``."""

    def decorate(function: AnomalyFunction) -> AnomalyFunction:
        if name in _KINDS or name == "none":
            raise ParameterError(f"anomaly kind {name!r} is already registered")
        low, high = strength
        if not 0 <= low <= high:
            raise ParameterError(
                f"anomaly {name!r}: strength {strength}: expected 0 <= low <= high"
            )
        _KINDS[name] = AnomalyKind(name, (float(low), float(high)), description, function)
        return function

    return decorate


def anomaly_kinds() -> tuple[str, ...]:
    """Names of the registered anomaly kinds, in registration order."""
    return tuple(_KINDS)


def get_anomaly(name: str) -> AnomalyKind:
    """The registered kind ``name``; a :class:`ParameterError` lists the known ones."""
    try:
        return _KINDS[name]
    except KeyError:
        raise ParameterError(f"anomaly {name!r}: expected one of {list(_KINDS)}") from None


def _resampled(sphere: Sphere, source: np.ndarray, weight: float = 1.0) -> np.ndarray:
    """The tissue at (n, 3) voxel coordinates ``source``, blended into the old with ``weight``."""
    moved = ndimage.map_coordinates(sphere.data, source.T, order=1, mode="constant")
    return (1 - weight) * sphere.old + weight * moved


@register_anomaly("intensity", strength=(0.15, 0.5), description="a constant added or removed")
def _intensity(sphere: Sphere, strength: float, rng: np.random.Generator) -> np.ndarray:
    return sphere.old + strength * rng.choice((-1.0, 1.0))


@register_anomaly("noise", strength=(0.05, 0.3), description="Gaussian noise added")
def _noise(sphere: Sphere, strength: float, rng: np.random.Generator) -> np.ndarray:
    return sphere.old + strength * rng.standard_normal(sphere.old.shape)


def _radial(sphere: Sphere, power: float) -> np.ndarray:
    """Radial remap r -> R (r / R)^p: p > 1 magnifies (source), p < 1 shrinks (sink)."""
    r = sphere.distance[:, None]
    factor = np.where(r > 0, (np.maximum(r, 1e-9) / sphere.radius) ** (power - 1), 0.0)
    return _resampled(sphere, sphere.center + (sphere.points - sphere.center) * factor)


@register_anomaly("sink", strength=(0.5, 2.0), description="tissue pulled towards the centre")
def _sink(sphere: Sphere, strength: float, rng: np.random.Generator) -> np.ndarray:
    return _radial(sphere, 1 / (1 + strength))


@register_anomaly("source", strength=(0.5, 2.0), description="tissue pushed out from the centre")
def _source(sphere: Sphere, strength: float, rng: np.random.Generator) -> np.ndarray:
    return _radial(sphere, 1 + strength)


@register_anomaly("shift", strength=(0.3, 1.0), description="tissue moved in from elsewhere")
def _shift(sphere: Sphere, strength: float, rng: np.random.Generator) -> np.ndarray:
    direction = rng.normal(size=3)
    offset = direction / np.linalg.norm(direction) * strength * sphere.radius
    return _resampled(sphere, sphere.points - offset)


@register_anomaly("mirror", strength=(0.5, 1.0), description="tissue reflected left-right")
def _mirror(sphere: Sphere, strength: float, rng: np.random.Generator) -> np.ndarray:
    source = sphere.points.copy()
    axis = sphere.lr_axis
    source[:, axis] = 2 * sphere.center[axis] - source[:, axis]
    return _resampled(sphere, source, weight=strength)


ANOMALY_TYPES: tuple[str, ...] = anomaly_kinds()
"""The built-in kinds (the default of :attr:`BenchmarkSpec.anomalies`)."""


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
        New intensities (float32, [0, 1]), the uint8 voxel label and the
        :class:`~anomaly_maps.benchmark.Case` fields ``anomaly, size, radius,
        radius_fraction, center_*, strength``.
    """
    anomaly = get_anomaly(kind)
    shape = np.asarray(draw.data.shape)
    fraction = float(rng.uniform(*spec.radius))
    radius = fraction * float(shape.min())
    strength = float(rng.uniform(*anomaly.strength))
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
    where = Sphere(
        data=draw.data,
        points=points[inside],
        distance=distance[inside],
        center=center,
        radius=radius,
        old=draw.data[box][inside],
        lr_axis=lr_axis,
    )
    new = anomaly.apply(where, strength, rng)
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
