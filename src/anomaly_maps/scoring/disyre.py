"""Self-supervised restoration scorers: DISYRE's accumulated restoration and FPI's alpha.

Both run the :class:`~anomaly_maps.models.Restoration` model, trained on healthy slices
to undo synthetic corruptions (:mod:`anomaly_maps.models.corruptions`):

- ``disyre``: the test slice is taken as corrupted at level ``start`` and restored in
  ``n_steps`` steps of the cold-diffusion sampler; the map is the mean over the steps of
  ``|x_k - P_theta(x_k, a_k)|``, the accumulated restoration (DISYRE [1]_, Method,
  "anomaly score" from the accumulated restoration gradients; reference
  ``DISYREPipeline.__call__`` divides the accumulated score by the number of steps).
- ``fpi``: the model's predicted interpolation factor per pixel (Tan et al. [2]_: "the
  estimate of the interpolation factor lends itself nicely to ... an outlier score").

Steps: levels ``a_k = start * (1 - k / n_steps)``, ``k = 0 .. n_steps - 1``, linear
(the paper is silent; the reference spaces 5 of 100 DDPM steps of a linear beta
schedule). With ``multi_step`` the slice moves as in the reference scheduler's
``cold_diffusion_sampling`` (Bansal et al.'s Algorithm 2):
``x_{k+1} = x_k + (1 - a_{k+1} / a_k) (x0_hat - x_k)``, so the last step lands on the
restoration; without it every step restores the input itself (the reference's
``"mean-single-step"``, DISYRE v2's ensemble over severities [3]_). We do not clamp to
[0, 1] (the reference does; our intensities need not be in [0, 1]) and do not weight
the map by the slice's foreground fraction (the reference's ``weight_foreground``): the
map's background is zeroed by the inferer.

Both take ``through`` (:data:`~._registry.THROUGH_PLANE`, default 0 = the papers): a
Gaussian across the scan's slices of the stacked maps, applied by the pipeline. Neither
paper smooths; the comparative study of autoencoder UAD post-processes residuals in 3D
(Baur et al. [4]_: a median filter over the residual volume). Across slices only,
because the model sees each slice alone and its maps jump from one slice to the next,
while smoothing in-plane blurs the lesion's border (measured in ``docs/results.md``:
through-plane sigma 2 raises ``fpi``'s pixel AP, in-plane smoothing lowers it).
Both also take ``views`` (:data:`~._registry.VIEWS`, default ``single`` = the papers):
``orthogonal`` scores along all three axes and keeps the maps' geometric mean. Neither
paper does; it is the view aggregation of 2D networks for 3D brain scans (QuickNAT [5]_,
which averages three view-specific networks' probabilities; here one network, trained on
all three views, and a geometric mean, measured in ``docs/results.md``).

References
----------
.. [1] Naval Marimont et al., "DISYRE: Diffusion-Inspired SYnthetic REstoration for
   Unsupervised Anomaly Detection", ISBI 2024, arXiv 2311.15453, Method; code GitHub
   snavalm/disyre at e149f29, ``diffusion/scheduler.py``.
.. [2] Tan, Hou, Batten, Kainz, "Detecting Outliers with Foreign Patch Interpolation",
   MOOD 2020 / MELBA 2022, Method.
.. [3] Naval Marimont et al., "Ensembled Cold-Diffusion Restorations for Unsupervised
   Anomaly Detection", MICCAI 2024, arXiv 2407.06635, Method (ensembles over severities).
.. [4] Baur, Denner, Wiestler, Navab, Albarqouni, "Autoencoders for unsupervised anomaly
   segmentation in brain MR images: a comparative study", Medical Image Analysis 69
   (2021), its post-processing of residual maps.
.. [5] Roy, Conjeti, Navab, Wachinger, "QuickNAT: A fully convolutional network for quick
   and accurate segmentation of neuroanatomy", NeuroImage 186, 2019 (view aggregation).
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

from ..models import SliceGenerators
from ._naive import cat_results
from ._ops import model_of, shared
from ._registry import (
    THROUGH_PLANE,
    VIEWS,
    ParamSpec,
    ScoreResult,
    register_reference,
    register_scorer,
)

__all__ = ["disyre", "fpi", "restoration_steps", "step_levels"]

_KINDS = ("restoration",)
_FPI_KINDS = ("restoration", "restoration_ensemble")  # an ensemble maps, never restores
_SEED = "DISYRE, Naval Marimont et al. ISBI 2024, Method"


def step_levels(n_steps: int, start: float) -> list[float]:
    """The ``n_steps + 1`` levels ``start * (1 - k / n_steps)``, ending at 0."""
    return [start * (1 - k / n_steps) for k in range(n_steps + 1)]


def restoration_steps(
    model: nn.Module, x: torch.Tensor, *, n_steps: int, start: float, multi_step: bool
) -> torch.Tensor:
    """DISYRE's accumulated restoration ``(B, H, W)`` of slices ``(B, C, H, W)``."""
    levels = step_levels(n_steps, start)
    current = x
    total = torch.zeros_like(x[:, 0])
    for a_now, a_next in pairwise(levels):
        level = x.new_full((x.shape[0],), a_now)
        restored = model(current, level)[0]
        total = total + (current - restored).abs().mean(1)
        if multi_step:
            current = current + (1 - a_next / a_now) * (restored - current)
    return total / n_steps


@register_scorer(
    "disyre",
    description="DISYRE: accumulated |x_k - restored| over a multi-step restoration",
    seed=_SEED,
    model_kinds=_KINDS,
    bf16_auto=False,  # measured outside BF16_TOLERANCE: scripts/bf16_tolerance.py
    params=[
        ParamSpec("n_steps", int, 5, (1, 100), "restoration steps (reference: 5 of 100)"),
        ParamSpec(
            "start", float, 1.0, (0.05, 1.0), "corruption level assumed for the input slice"
        ),
        ParamSpec(
            "multi_step",
            bool,
            True,
            help="multi-step restoration (cold diffusion); false: mean of single steps",
        ),
        THROUGH_PLANE,
        VIEWS,
    ],
)
def disyre(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: SliceGenerators,
    n_steps: int = 5,
    start: float = 1.0,
    multi_step: bool = True,
) -> ScoreResult:
    """Mean over ``n_steps`` restoration steps of ``|x_k - P_theta(x_k, a_k)|``.

    Parameters
    ----------
    models : dict
        Checkpoint models; uses ``"restoration"``.
    x : torch.Tensor
        Slices ``(B, C, H, W)``.
    position, generator
        Unused: the restoration is deterministic.
    n_steps : int
        Restoration steps, levels ``start`` down to ``start / n_steps``.
    start : float
        Level the input is assumed corrupted at (DISYRE starts at the last step, 1).
    multi_step : bool
        Move the slice towards each restoration (multi-step, the ISBI paper's best on
        ATLAS) or restore the input at every level (single-step mean).

    Returns
    -------
    ScoreResult
        ``pixel (B, H, W)``; ``slice_score (B,)`` its mean.
    """
    model = model_of(models, *_KINDS)
    with torch.no_grad():
        pixel = restoration_steps(model, x, n_steps=n_steps, start=start, multi_step=multi_step)
    return ScoreResult.from_map(pixel)


@register_reference("disyre")
def disyre_reference(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: SliceGenerators,
    n_steps: int,
    start: float,
    multi_step: bool,
) -> ScoreResult:
    """``disyre`` slice by slice, step by step, as the reference pipeline loops."""
    model = model_of(models, *_KINDS)
    levels = step_levels(n_steps, start)
    results = []
    with torch.no_grad():
        for b in range(x.shape[0]):
            current = x[b : b + 1]
            total = torch.zeros_like(current[:, 0])
            for k in range(n_steps):
                restored = model(current, x.new_tensor([levels[k]]))[0]
                total += (current - restored).abs().mean(1)
                if multi_step:
                    current = current + (1 - levels[k + 1] / levels[k]) * (restored - current)
            results.append(ScoreResult.from_map(total / n_steps))
    return cat_results(results)


@register_scorer(
    "fpi",
    description="FPI: the predicted foreign-patch interpolation factor per pixel",
    seed="FPI, Tan et al. MOOD 2020 / MELBA 2022, Method; DISYRE corruptions",
    model_kinds=_FPI_KINDS,
    bf16_auto=False,  # measured outside BF16_TOLERANCE: scripts/bf16_tolerance.py
    params=[THROUGH_PLANE, VIEWS],
)
def fpi(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: SliceGenerators,
) -> ScoreResult:
    """The corruption head's ``sigmoid`` output, level unknown: ``(B, H, W)`` in (0, 1).

    For a ``restoration_ensemble``, the largest of its members' maps, each divided by
    its healthy 99th percentile (>= 0; 1 = that percentile; see
    :mod:`anomaly_maps.models.restoration_ensemble`). ``position`` and ``generator``
    are unused (deterministic). The slice score is the map's mean, as for every map
    scorer here (our choice).
    """
    model = model_of(models, *_FPI_KINDS)
    with torch.no_grad():
        pixel = shared("corruption_map", lambda: model.corruption_map(x), model, x)
    return ScoreResult.from_map(pixel[:, 0])


@register_reference("fpi")
def fpi_reference(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: SliceGenerators,
) -> ScoreResult:
    """``fpi`` one slice at a time."""
    model = model_of(models, *_FPI_KINDS)
    with torch.no_grad():
        maps = [model.corruption_map(x[b : b + 1])[:, 0] for b in range(x.shape[0])]
    return cat_results([ScoreResult.from_map(m) for m in maps])
