"""Random draws per slice: each slice's noise comes from its own generator.

Scoring seeds one generator per slice from ``(seed, slice index)``
(:meth:`SliceGenerators.seeded`), so the noise a slice gets does not depend on which
slices share its batch: a stochastic map is the same at any batch size, and a preview of
one slice draws what the volume run draws for it. The draws stay batched where the model
is called: a ``(B, ...)`` or ``(S, B, ...)`` tensor is assembled from one draw per slice.

The model methods that draw (:meth:`VAE.reparameterize`, :meth:`CodePrior.resample`,
:meth:`CeVAE.mask_squares`, :meth:`DAE.corrupt`) take either a :class:`SliceGenerators`
or a plain :class:`torch.Generator` (training: one generator for the whole batch) through
:func:`normal`, :func:`uniform` and :func:`integers`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TypeAlias

import numpy as np
import torch

from ..errors import ParameterError

__all__ = ["Generators", "SliceGenerators", "integers", "normal", "slice_seed", "uniform"]

Shape = Sequence[int]


def slice_seed(seed: int, index: int) -> int:
    """The seed of slice ``index`` of a run seeded with ``seed`` (both ints >= 0)."""
    if not (isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0):
        raise ParameterError(f"seed={seed!r}: expected an int >= 0")
    return int(np.random.SeedSequence((seed, int(index))).generate_state(1, np.uint64)[0])


class SliceGenerators:
    """One :class:`torch.Generator` per slice of a batch of ``B`` slices.

    A draw of a tensor whose ``batch_dim`` has ``m * B`` entries reads that axis
    sample-major (entry ``k * B + b`` belongs to slice ``b``, as ``x.repeat(m, ...)``
    stacks copies, or as an ``(m, B, ...)`` tensor flattened): slice ``b``'s part is one
    draw of the shape with ``m`` in place of ``m * B`` from generator ``b``. A slice's
    draws therefore depend only on its generator and on how many numbers it is asked
    for, so a one-slice ``SliceGenerators`` (``generators[b]``) gets the same numbers
    for that slice whatever the layout, e.g. ``(n, D)`` for the ``(n * B, D)`` rows.
    """

    def __init__(self, generators: Sequence[torch.Generator]) -> None:
        if not generators:
            raise ValueError("SliceGenerators needs at least one generator")
        self._generators = tuple(generators)

    @classmethod
    def seeded(
        cls, seed: int, indices: Iterable[int], device: str | torch.device = "cpu"
    ) -> SliceGenerators:
        """Generators on ``device`` for the slices at ``indices`` of a stack, from ``seed``."""
        return cls(
            [torch.Generator(device=device).manual_seed(slice_seed(seed, i)) for i in indices]
        )

    def __len__(self) -> int:
        return len(self._generators)

    def __getitem__(self, index: int | slice) -> SliceGenerators:
        """The generators of one slice (an int) or of a range of slices."""
        picked = self._generators[index]
        return SliceGenerators(picked if isinstance(index, slice) else (picked,))

    def _draw(
        self, draw: Callable[[list[int], torch.Generator], torch.Tensor], shape: Shape, dim: int
    ) -> torch.Tensor:
        shape = list(shape)
        dim %= len(shape)
        n = len(self._generators)
        if shape[dim] % n:
            raise ValueError(
                f"cannot draw shape {tuple(shape)} for {n} slices: axis {dim} is not a multiple"
            )
        part = [*shape[:dim], shape[dim] // n, *shape[dim + 1 :]]
        pieces = [draw(part, g) for g in self._generators]
        return torch.stack(pieces, dim=dim + 1).flatten(dim, dim + 1)

    def normal(self, shape: Shape, *, batch_dim: int = 0, device=None, dtype=None) -> torch.Tensor:
        """Standard normals of ``shape``, slice by slice along ``batch_dim``."""
        return self._draw(
            lambda s, g: torch.randn(s, generator=g, device=device, dtype=dtype), shape, batch_dim
        )

    def uniform(
        self, shape: Shape, *, batch_dim: int = 0, device=None, dtype=None
    ) -> torch.Tensor:
        """Uniforms in [0, 1) of ``shape``, slice by slice along ``batch_dim``."""
        return self._draw(
            lambda s, g: torch.rand(s, generator=g, device=device, dtype=dtype), shape, batch_dim
        )

    def integers(
        self, low: int, high: int, shape: Shape, *, batch_dim: int = 0, device=None
    ) -> torch.Tensor:
        """Integers in ``[low, high)`` of ``shape``, slice by slice along ``batch_dim``."""
        return self._draw(
            lambda s, g: torch.randint(low, high, s, generator=g, device=device),
            shape,
            batch_dim,
        )


#: What a drawing model method accepts: per-slice generators, one generator, or None
#: (torch's global generator).
Generators: TypeAlias = SliceGenerators | torch.Generator | None


def normal(
    shape: Shape, generator: Generators, *, batch_dim: int = 0, device=None, dtype=None
) -> torch.Tensor:
    """``torch.randn(shape)`` from ``generator``; per slice along ``batch_dim`` for
    :class:`SliceGenerators`."""
    if isinstance(generator, SliceGenerators):
        return generator.normal(shape, batch_dim=batch_dim, device=device, dtype=dtype)
    return torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)


def uniform(
    shape: Shape, generator: Generators, *, batch_dim: int = 0, device=None, dtype=None
) -> torch.Tensor:
    """``torch.rand(shape)`` from ``generator``; per slice along ``batch_dim`` for
    :class:`SliceGenerators`."""
    if isinstance(generator, SliceGenerators):
        return generator.uniform(shape, batch_dim=batch_dim, device=device, dtype=dtype)
    return torch.rand(tuple(shape), generator=generator, device=device, dtype=dtype)


def integers(
    low: int, high: int, shape: Shape, generator: Generators, *, batch_dim: int = 0, device=None
) -> torch.Tensor:
    """``torch.randint(low, high, shape)`` from ``generator``; per slice along
    ``batch_dim`` for :class:`SliceGenerators`."""
    if isinstance(generator, SliceGenerators):
        return generator.integers(low, high, shape, batch_dim=batch_dim, device=device)
    return torch.randint(low, high, tuple(shape), generator=generator, device=device)
