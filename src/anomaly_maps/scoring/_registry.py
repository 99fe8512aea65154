"""The scorer registry: what a scorer is, its typed parameters, and how to find one.

A scorer turns a trained model into a pixel-wise anomaly map and a per-slice score. It
is one function in one module of this package, registered with :func:`register_scorer`;
the CLI builds its ``--param`` checks and the napari widget its form from the
:class:`ParamSpec` list, so adding a scorer touches no other file.

A scorer function has the signature::

    fn(models: dict[str, nn.Module], x: Tensor, *, position: Tensor,
       generator: SliceGenerators, **params) -> ScoreResult

where ``models`` are the checkpoint's models by kind (eval mode, on ``x.device``),
``x`` is a batch of preprocessed slices (B, 1, H, W), ``position`` their slice positions
(B,) in [0, 1], and ``generator`` (on ``x.device``, one generator per slice, see
:class:`~anomaly_maps.models.SliceGenerators`) is the only source of randomness: slice
``b``'s draws come from its own generator, so its result does not depend on the batch.
It works on the whole batch at once (SmoothGrad/IWAE/restoration samples are stacked
into the batch), never looping over slices in Python.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from .._config import is_int, is_real
from ..errors import ParameterError, ScorerError
from ..models import SliceGenerators

__all__ = [
    "PIPELINE_PARAMS",
    "THROUGH_PLANE",
    "VIEWS",
    "ParamSpec",
    "ScoreResult",
    "ScorerFn",
    "ScorerInfo",
    "get_scorer",
    "list_scorers",
    "register_reference",
    "register_scorer",
    "resolve_scorers",
]


@dataclass(frozen=True)
class ScoreResult:
    """What a scorer returns for a batch of B slices.

    Attributes
    ----------
    pixel
        (B, H, W) anomaly map, higher = more anomalous; ``None`` for scorers that only
        rate whole slices (ELBO, IWAE, ...).
    slice_score
        (B,) per-slice anomaly score, higher = more anomalous.
    """

    pixel: torch.Tensor | None
    slice_score: torch.Tensor

    @classmethod
    def from_map(cls, pixel: torch.Tensor) -> ScoreResult:
        """A map scorer's result: the slice score is the mean of its (B, H, W) map."""
        return cls(pixel, pixel.flatten(1).mean(1))


ScorerFn = Callable[..., ScoreResult]


@dataclass(frozen=True)
class ParamSpec:
    """One scorer parameter: typed, with a default, a range and a help text.

    ``range`` is ``(low, high)`` inclusive for ``int``/``float`` (``None`` for no
    bound on that side), the allowed values for ``str``, and ignored for ``bool``.
    """

    name: str
    type: type
    default: Any
    range: tuple[Any, ...] | None = None
    help: str = ""

    def expected(self) -> str:
        """Human description of valid values, for messages and tooltips."""
        if self.type is bool:
            return "true or false"
        if self.type is str:
            return f"one of {list(self.range or ())}"
        lo, hi = self.range or (None, None)
        bounds = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
        return f"{self.type.__name__} in {bounds}"

    def check(self, value: Any, scorer: str) -> Any:
        """Validate (and coerce int -> float) ``value``; raise ``ParameterError``."""
        ok = {
            bool: isinstance(value, bool),
            int: is_int(value),
            float: is_real(value),
            str: isinstance(value, str),
        }[self.type]
        if ok and self.type in (int, float):
            lo, hi = self.range or (None, None)
            ok = (lo is None or value >= lo) and (hi is None or value <= hi)
        if ok and self.type is str and self.range is not None:
            ok = value in self.range
        if not ok:
            raise ParameterError(
                f"{self.name}={value!r} for scorer {scorer!r}: expected {self.expected()}"
            )
        return float(value) if self.type is float else value

    def parse(self, text: str, scorer: str) -> Any:
        """Parse a command-line string (``"8"``, ``"0.1"``, ``"true"``) and check it."""
        try:
            if self.type is bool:
                value: Any = {"true": True, "false": False, "1": True, "0": False}[text.lower()]
            elif self.type is str:
                value = text
            else:
                value = self.type(float(text)) if self.type is float else int(text)
                if self.type is float and not math.isfinite(value):
                    raise ValueError
        except (KeyError, ValueError):
            raise ParameterError(
                f"{self.name}={text!r} for scorer {scorer!r}: expected {self.expected()}"
            ) from None
        return self.check(value, scorer)


#: A scorer parameter the pipeline applies to the stacked maps of a whole scan (a scorer
#: sees one batch of slices): Gaussian smoothing across slices, ``sigma`` in slices,
#: masked to the slices' foreground (:func:`~._ops.through_plane_blur`). A 2D model
#: scores each slice alone, so its maps jump from slice to slice (stripes across a
#: sagittal view); a real lesion spans several slices. Scorers opt in by listing it.
THROUGH_PLANE = ParamSpec(
    "through", float, 0.0, (0.0, 8.0),
    "through-plane Gaussian sigma in slices over the scan's maps (2.5D); 0: off",
)  # fmt: skip

#: Multi-view scoring: a 2D model cuts the scan along one axis, so what it misses or
#: invents is specific to that axis (whole slices too high, a lesion seen edge-on).
#: ``orthogonal`` scores the scan along all three anatomical axes and keeps the
#: voxel-wise geometric mean of the three maps: a voxel stays high only where every view
#: finds it. Best with a model trained on all three (``train --axis axial coronal
#: sagittal``); slice scores stay those of the model's own axis.
VIEWS = ParamSpec(
    "views", str, "single", ("single", "orthogonal"),
    "single: slices along the model's axis; orthogonal: axial, coronal and sagittal, "
    "maps combined by their geometric mean",
)  # fmt: skip

#: Names of the parameters the pipeline consumes; scorer functions never receive them.
PIPELINE_PARAMS = frozenset({THROUGH_PLANE.name, VIEWS.name})


def _without_pipeline_params(fn: ScorerFn) -> ScorerFn:
    """``fn`` taking its resolved parameters whole: the :data:`PIPELINE_PARAMS` among
    them are dropped before the call (the pipeline applies them to the stacked maps)."""

    @functools.wraps(fn)
    def call(models: dict[str, nn.Module], x: torch.Tensor, **kwargs: Any) -> ScoreResult:
        return fn(models, x, **{k: v for k, v in kwargs.items() if k not in PIPELINE_PARAMS})

    return call


@dataclass(frozen=True)
class ScorerInfo:
    """A registered scorer and what it needs.

    Attributes
    ----------
    name, description
        Registry key and one line for menus.
    seed
        Paper it follows, e.g. ``"000, section 3"`` (see ``shared/seeds/INDEX.md``).
    model_kinds
        Accepted checkpoints: each entry is a ``+``-joined set of model kinds that
        must all be present, e.g. ``("vae", "cevae")`` or ``("vqvae+prior",)``.
    params
        Typed parameters, in form order.
    fn
        The batched implementation.
    reference
        The naive implementation (one slice, one sample at a time, as a paper's code
        would loop) with the same signature and the same random draws, registered with
        :func:`register_reference`; tests check ``fn`` against it and ``anomaly-maps
        bench score`` times both.
    bf16_auto
        Whether ``precision="auto"`` may run it under bfloat16 autocast: False where
        its maps were measured outside :data:`~.inferer.BF16_TOLERANCE` of float32
        (``scripts/bf16_tolerance.py``), so that ``auto`` keeps float32 for it and only
        an explicit ``bf16`` trades that accuracy for speed.
    """

    name: str
    description: str
    seed: str
    model_kinds: tuple[str, ...]
    params: tuple[ParamSpec, ...]
    fn: ScorerFn = field(repr=False)
    reference: ScorerFn | None = field(default=None, repr=False)
    bf16_auto: bool = True

    def fits(self, kinds: Sequence[str]) -> bool:
        """True when a checkpoint holding ``kinds`` can run this scorer."""
        return any(set(alt.split("+")) <= set(kinds) for alt in self.model_kinds)

    def check_fits(self, kinds: Sequence[str]) -> None:
        if not self.fits(kinds):
            raise ScorerError(
                f"scorer {self.name!r} needs a checkpoint with {' or '.join(self.model_kinds)}"
                f" models; this one holds {'+'.join(kinds)}"
            )

    def resolve_params(self, given: dict[str, Any] | None = None) -> dict[str, Any]:
        """Defaults overridden by ``given``, each checked; unknown names are errors."""
        given = dict(given or {})
        specs = {p.name: p for p in self.params}
        unknown = sorted(set(given) - set(specs))
        if unknown:
            raise ParameterError(
                f"unknown parameter(s) {unknown} for scorer {self.name!r}: "
                f"expected some of {sorted(specs) or 'none'}"
            )
        return {n: p.check(given.get(n, p.default), self.name) for n, p in specs.items()}

    def __call__(
        self,
        models: dict[str, nn.Module],
        x: torch.Tensor,
        *,
        position: torch.Tensor,
        generator: SliceGenerators,
        **params: Any,
    ) -> ScoreResult:
        return self.fn(models, x, position=position, generator=generator, **params)


_SCORERS: dict[str, ScorerInfo] = {}


def _takes_pipeline_params(params: Sequence[ParamSpec]) -> bool:
    return any(p.name in PIPELINE_PARAMS for p in params)


def register_scorer(
    name: str,
    *,
    description: str,
    seed: str,
    model_kinds: Sequence[str],
    params: Sequence[ParamSpec] = (),
    bf16_auto: bool = True,
) -> Callable[[ScorerFn], ScorerFn]:
    """Decorator registering a batched scorer function under ``name`` (``bf16_auto``:
    see :class:`ScorerInfo`)."""

    def decorate(fn: ScorerFn) -> ScorerFn:
        if name in _SCORERS:
            raise ValueError(f"scorer {name!r} registered twice")
        for p in params:
            p.check(p.default, name)  # a bad default is a programming error
        wrapped = _without_pipeline_params(fn) if _takes_pipeline_params(params) else fn
        _SCORERS[name] = ScorerInfo(
            name,
            description,
            seed,
            tuple(model_kinds),
            tuple(params),
            wrapped,
            bf16_auto=bf16_auto,
        )
        return fn

    return decorate


def register_reference(name: str) -> Callable[[ScorerFn], ScorerFn]:
    """Decorator attaching the naive per-slice, per-sample reference of scorer ``name``."""

    def decorate(fn: ScorerFn) -> ScorerFn:
        info = get_scorer(name)
        if info.reference is not None:
            raise ValueError(f"reference of scorer {name!r} registered twice")
        wrapped = _without_pipeline_params(fn) if _takes_pipeline_params(info.params) else fn
        _SCORERS[name] = replace(info, reference=wrapped)
        return fn

    return decorate


def get_scorer(name: str) -> ScorerInfo:
    """The registered scorer ``name``; an unknown name lists the known ones."""
    try:
        return _SCORERS[name]
    except KeyError:
        raise ScorerError(f"unknown scorer {name!r}: expected one of {list_scorers()}") from None


def list_scorers(kinds: Sequence[str] | None = None) -> list[str]:
    """Names of all scorers, or of those that fit a checkpoint holding ``kinds``."""
    return sorted(n for n, s in _SCORERS.items() if kinds is None or s.fits(kinds))


def resolve_scorers(
    requests: Sequence[tuple[str, dict[str, Any] | None]],
    kinds: Sequence[str],
    *,
    reference: bool = False,
) -> list[tuple[ScorerInfo, dict[str, Any]]]:
    """Each ``(name, params)`` request as its scorer and checked parameters, before any work.

    Raises ``ScorerError`` for an unknown scorer, one that does not fit a checkpoint
    holding ``kinds``, or (``reference=True``) one without a naive reference, and
    ``ParameterError`` for bad parameters.
    """
    resolved = []
    for name, params in requests:
        info = get_scorer(name)
        info.check_fits(kinds)
        if reference and info.reference is None:
            raise ScorerError(f"scorer {name!r} has no registered reference implementation")
        resolved.append((info, info.resolve_params(params)))
    return resolved
