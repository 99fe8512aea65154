"""The slice inferer: run scorers over preprocessed slices in batches on a device.

Volume scoring (:func:`~anomaly_maps.scoring.score_volume`), the napari preview of one
slice, calibration and ``anomaly-maps bench`` all score slices through
:class:`SliceInferer`, in the spirit of MONAI's ``SliceInferer``: it batches the slices,
halves the batch and retries on CUDA out-of-memory, gives every scorer one generator per
slice seeded from ``(seed, slice index)`` (so a map is the same at any batch size, and
a preview of slice ``k`` draws what the volume run draws for it), shares the models'
deterministic passes between the scorers of a batch, reports progress and stops on
request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .._config import is_int
from ..errors import Cancelled, ParameterError
from ..models import SliceGenerators
from ..models.draws import slice_seed
from ..preprocessing import SliceStack
from ._ops import sharing_passes
from ._registry import ScorerFn

__all__ = [
    "BF16_TOLERANCE",
    "PRECISIONS",
    "SliceInferer",
    "SliceMaps",
    "Slices",
    "bf16_supported",
    "iter_batches_adaptive",
    "resolve_precision",
    "within_bf16_tolerance",
]

log = logging.getLogger(__name__)
CHANNELS_LAST = torch.channels_last


@dataclass(frozen=True)
class Slices:
    """Preprocessed slices to score, and where they lie in their stack.

    Attributes
    ----------
    images
        (N, 1, H, W) float32 slices.
    positions
        (N,) slice positions in [0, 1] (for position-conditioned priors).
    masks
        (N, H, W) bool foreground: maps are 0 outside it.
    indices
        (N,) index of each slice along the model's slicing axis in the full stack; it
        seeds the slice's random draws.
    """

    images: torch.Tensor
    positions: torch.Tensor
    masks: torch.Tensor
    indices: np.ndarray

    @classmethod
    def from_stack(cls, stack: SliceStack, indices: np.ndarray) -> Slices:
        """The slices at ``indices`` of a :class:`~anomaly_maps.preprocessing.SliceStack`."""
        indices = np.asarray(indices, dtype=np.int64)
        images = torch.from_numpy(stack.images[indices])  # (N, S, S) or (N, C, S, S)
        return cls(
            images=images[:, None] if images.ndim == 3 else images,
            positions=torch.from_numpy(stack.positions[indices]),
            masks=torch.from_numpy(stack.mask[indices]),
            indices=indices,
        )

    def __len__(self) -> int:
        return len(self.indices)

    def pin_memory(self) -> Slices:
        """The slices in pinned (page-locked) host memory, so copies to a CUDA device
        run without blocking (a DataLoader with ``pin_memory=True`` calls this)."""
        return Slices(self.images.pin_memory(), self.positions.pin_memory(),
                      self.masks.pin_memory(), self.indices)  # fmt: skip


@dataclass(frozen=True)
class SliceMaps:
    """One scorer's results on :class:`Slices`.

    Attributes
    ----------
    maps
        (N, H, W) float32 maps on the CPU, 0 outside each slice's mask; ``None`` for
        scorers that only rate slices.
    scores
        (N,) float32 slice scores.
    """

    maps: torch.Tensor | None
    scores: np.ndarray


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower()


def iter_batches_adaptive(
    n: int, batch_size: int, run: Callable[[slice], Any], device: torch.device
) -> Iterator[tuple[slice, Any]]:
    """Yield ``(batch_slice, run(batch_slice))`` over ``range(n)``.

    On a CUDA out-of-memory error the batch is halved and retried (down to one slice),
    and the smaller size is kept for the rest of the volume.
    """
    start = 0
    while start < n:
        stop = min(n, start + batch_size)
        try:
            result = run(slice(start, stop))
        except (torch.cuda.OutOfMemoryError, RuntimeError) as err:
            if device.type != "cuda" or not _is_oom(err) or stop - start == 1:
                raise
            torch.cuda.empty_cache()
            batch_size = max(1, (stop - start) // 2)
            log.warning("out of GPU memory: retrying with batches of %d slices", batch_size)
            continue
        yield slice(start, stop), result
        start = stop


#: Inference precisions of :class:`SliceInferer`, as it runs them.
PRECISIONS = ("float32", "bf16")

#: What a caller may ask for: ``auto`` (bf16 on CUDA devices that have it, float32
#: elsewhere), ``fp32``/``float32`` or ``bf16``.
PRECISION_CHOICES = ("auto", "fp32", "bf16")

#: How far bf16 autocast maps and scores may lie from float32: ``atol`` x the largest
#: float32 magnitude (of the map, or of the slice scores) plus ``rtol`` x the float32
#: value. bfloat16 keeps 8 bits of mantissa (about 0.4 % per operation); measured on
#: the bundled models and sample brain (``scripts/bf16_tolerance.py``): ``rec`` and the
#: input-gradient maps within 0.5-1.5 % of their largest value, slice and volume scores
#: within 1.2 %. ``fpi`` (3.3 %; 8.6 % on the 64x64 model), ``disyre`` (46 %; 14 %),
#: ``cevae_combined`` (2.5-6.4 %), ``sample_std`` (2.2-3.6 %) and
#: ``vae_tv_restoration`` (2.5-54 %) leave it, so they are registered with
#: ``bf16_auto=False`` and ``auto`` keeps float32 for them.
BF16_TOLERANCE = {"rtol": 0.0, "atol": 0.02}


def within_bf16_tolerance(got: torch.Tensor, want: torch.Tensor) -> bool:
    """Whether bf16 results ``got`` lie within :data:`BF16_TOLERANCE` of float32 ``want``."""
    scale = float(want.abs().max()) if want.numel() else 0.0
    atol = BF16_TOLERANCE["atol"] * scale
    return torch.allclose(got, want, rtol=BF16_TOLERANCE["rtol"], atol=atol)


def bf16_supported(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 autocast: the CPU, or CUDA with bf16 support."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu"


def resolve_precision(precision: str, device: torch.device, *, bf16_auto: bool) -> str:
    """The precision ``device`` runs for a requested one (:data:`PRECISION_CHOICES`):
    ``"float32"`` or ``"bf16"``.

    ``auto`` takes bf16 only on CUDA devices that support it, and only when
    ``bf16_auto`` (every scorer of the run keeps its maps within
    :data:`BF16_TOLERANCE` under bf16: :attr:`~._registry.ScorerInfo.bf16_auto`). On
    the CPU ``auto`` stays float32, so results do not depend on which CPU ran them;
    CPUs with native bfloat16 (AVX512-BF16, AMX) run an explicit ``bf16`` about twice
    as fast through the network (``scripts/bf16_tolerance.py``), others emulate it.
    An explicit ``bf16`` on a device without it is refused rather than quietly run in
    float32.
    """
    if precision in ("fp32", "float32"):
        return "float32"
    if precision == "auto":
        fast = device.type == "cuda" and bf16_supported(device)
        return "bf16" if fast and bf16_auto else "float32"
    if precision != "bf16":
        raise ParameterError(f"precision={precision!r}: expected one of {PRECISION_CHOICES}")
    if not bf16_supported(device):
        raise ParameterError(
            f"precision 'bf16': {device} does not run bfloat16 autocast; use fp32 or auto"
        )
    return "bf16"


def _autocast(device: torch.device, precision: str):
    """bfloat16 autocast for ``bf16``; float32 (autocast off) otherwise."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


@dataclass(frozen=True)
class SliceInferer:
    """Scores slices in batches; one instance per run (device, batch size, seed, callbacks).

    Attributes
    ----------
    device
        Where models and slices go.
    batch_size
        Slices per call (>= 1; halved automatically on CUDA out-of-memory).
    seed
        Seeds each scorer's generator of each slice, with the slice's index (>= 0).
    progress
        Called as ``progress(done_slices, total_slices)`` after every batch.
    should_stop
        Polled after every batch; when it returns True, scoring stops there and
        :class:`~anomaly_maps.errors.Cancelled` is raised (a GUI's Cancel button).
    precision
        One of :data:`PRECISION_CHOICES`, resolved for the device
        (:func:`resolve_precision`) and kept as ``"float32"`` (exact) or ``"bf16"``.
        The inferer does not know its scorers before it is called, so ``auto`` here
        keeps float32; callers that know them resolve ``auto`` first
        (:func:`~.pipeline.score_volume` does). With ``"bf16"`` the models' passes run
        under bfloat16 autocast, maps and scores within :data:`BF16_TOLERANCE` of
        float32 (:func:`within_bf16_tolerance`).
    """

    device: torch.device
    batch_size: int = 32
    seed: int = 0
    progress: Callable[[int, int], None] | None = None
    should_stop: Callable[[], bool] | None = None
    precision: str = "float32"

    def __post_init__(self) -> None:
        if not (is_int(self.batch_size) and self.batch_size >= 1):
            raise ParameterError(f"batch_size={self.batch_size!r}: expected an int >= 1")
        precision = resolve_precision(self.precision, self.device, bf16_auto=False)
        object.__setattr__(self, "precision", precision)
        slice_seed(self.seed, 0)  # checks the seed

    def __call__(
        self,
        models: dict[str, nn.Module],
        slices: Slices,
        scorers: Sequence[tuple[ScorerFn, dict[str, Any]]],
    ) -> list[SliceMaps]:
        """Run every ``(fn, params)`` scorer (parameters resolved) over ``slices``.

        ``models`` are moved to :attr:`device` in eval mode and channels-last layout
        (in place, as ``Module.to`` does). Returns one
        :class:`SliceMaps` per scorer, in order.
        """
        # channels-last: oneDNN's and cuDNN's fast convolutions (1.26x for the 64x64
        # restoration U-Net, 1.37x for the 128x128 ceVAE on our 2-core CPU; `bench score`)
        models = {kind: m.to(self.device, memory_format=CHANNELS_LAST).eval()
                  for kind, m in models.items()}  # fmt: skip
        n, size = len(slices), slices.images.shape[-2:]
        cuda = self.device.type == "cuda"
        # pinned host memory (a no-op when the reader pinned it): each batch's copies
        # overlap with the previous batch's work
        images = slices.images.pin_memory() if cuda else slices.images
        positions = slices.positions.pin_memory() if cuda else slices.positions
        masks = slices.masks.to(self.device, non_blocking=cuda)
        # results stay on the device until the volume is done: one copy back, no sync
        # per batch
        maps = [torch.zeros(n, *size, device=self.device) for _ in scorers]
        scores = [torch.zeros(n, device=self.device) for _ in scorers]
        has_map = [False] * len(scorers)

        def run(batch: slice) -> list:
            x = images[batch].to(self.device, non_blocking=cuda, memory_format=CHANNELS_LAST)
            position = positions[batch].to(self.device, non_blocking=cuda)
            indices = slices.indices[batch]
            with torch.no_grad(), sharing_passes(), _autocast(self.device, self.precision):
                # Each scorer its own generators: its draws do not depend on the others.
                return [
                    fn(
                        models,
                        x,
                        position=position,
                        generator=SliceGenerators.seeded(self.seed, indices, self.device),
                        **params,
                    )
                    for fn, params in scorers
                ]

        for batch, results in iter_batches_adaptive(n, self.batch_size, run, self.device):
            for i, result in enumerate(results):
                if result.pixel is not None:
                    maps[i][batch] = result.pixel.float() * masks[batch]
                    has_map[i] = True
                scores[i][batch] = result.slice_score.float()
            if self.progress is not None:
                self.progress(batch.stop, n)
            if self.should_stop is not None and self.should_stop():
                raise Cancelled(f"scoring stopped after {batch.stop} of {n} slices")
        return [
            SliceMaps(m.cpu() if has else None, s.cpu().numpy())
            for m, s, has in zip(maps, scores, has_map, strict=True)
        ]
