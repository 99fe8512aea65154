"""Input-gradient scorers: |d term / d x| of a VAE, with SmoothGrad and Gaussian smoothing.

Seed 000 approximates the *score* ``d log p(x) / d x`` by the gradient of the ELBO with
respect to the input slice (eq. 2) and also splits it into the gradients of the
reconstruction term and of the KL term; the magnitude per pixel is the anomaly rating.
The gradients are averaged with SmoothGrad and then Gaussian-smoothed against the
checkerboard artefacts of strided convolutions (section 3). Seed 003 (ceVAE) multiplies
the reconstruction error element-wise with the KL gradient (eq. 8), back-propagating only
the KL term.

The batching and the noise of SmoothGrad are described in :mod:`.smoothgrad`; each
scorer's naive reference (one slice, one copy per pass) is registered next to it.

References
----------
.. [1] Zimmerer et al., "A Case for the Score: Identifying Image Anomalies using
   Variational Autoencoder Gradients" (seed 000), eq. 1-2 and section 3.
.. [2] Zimmerer et al., "Unsupervised Anomaly Localization using Variational
   Auto-Encoders" (ceVAE), reviewed in seed 003, eq. 8 and remarks.
.. [3] Smilkov et al., "SmoothGrad: removing noise by adding noise", arXiv:1706.03825.
.. [4] MIC-DKFZ/mood, ``example_algos/algorithms/ce_vae.py`` (``score_mode="combi"``)
   and ``example_algos/util/ce_noise.py`` (``normalize``, ``smooth_tensor``).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from ..models import SliceGenerators
from ._naive import cat_results, decode_sample
from ._ops import gaussian_blur, model_of
from ._registry import ParamSpec, ScoreResult, ScorerFn, register_reference, register_scorer
from .reconstruction import Norm, pixel_distance, reconstruct
from .smoothgrad import (
    POSTERIOR,
    Posterior,
    Term,
    input_gradient,
    minmax_per_slice,
    smoothgrad_params,
    smoothgrad_per_copy,
)

__all__ = ["cevae_combined", "elbo_grad", "kl_grad", "rec_grad"]

_KINDS = ("vae", "cevae")


def _gradient_score(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    term: Term,
    generator: SliceGenerators,
    *,
    n_smooth: int,
    noise: float,
    sigma: float,
    abs_first: bool,
    posterior: Posterior = "sample",
) -> ScoreResult:
    model = model_of(models, *_KINDS)
    grad = input_gradient(
        model,
        x,
        term,
        n_smooth=n_smooth,
        noise=noise,
        generator=generator,
        posterior=posterior,
        abs_first=abs_first,
    )
    pixel = gaussian_blur(grad, sigma)
    return ScoreResult.from_map(pixel)


_PARAMS_DOC = """
    Parameters
    ----------
    models : dict of str to nn.Module
        Checkpoint models; uses the ``vae`` or ``cevae`` one.
    x : torch.Tensor
        Preprocessed slices ``(B, 1, H, W)``.
    position : torch.Tensor
        Slice positions ``(B,)``; unused.
    generator : SliceGenerators
        Source of the SmoothGrad noise, then of the posterior noise (:mod:`.smoothgrad`).
    n_smooth : int
        SmoothGrad copies per slice. Default 20 and ``noise`` 0.05: the trixi
        ``get_smooth_image_gradient`` defaults of the seed authors (``n_runs=20``,
        ``eps=0.1`` on intensities in [-1, 1], i.e. 5 % of the range).
    noise : float
        SmoothGrad noise standard deviation as a fraction of each slice's range.
    sigma : float
        Gaussian smoothing of the gradient magnitude in pixels (scipy
        ``mode="mirror"``, truncate 4). Seed 000 smooths but states no width; default 2.
    abs_first : bool
        Average ``|grad|`` over copies instead of ``|mean grad|``.
"""

_RETURNS_DOC = """
    Returns
    -------
    ScoreResult
        ``pixel (B, H, W)``: smoothed gradient magnitude (channel mean);
        ``slice_score (B,)``: the mean of the map.
"""


_POSTERIOR_DOC = """    posterior : {"sample", "mean"}
        ``z`` of the reconstruction term: one reparameterised sample per noisy copy
        (default, seed 000 eq. 2) or the posterior mean.
"""


def _gradient_reference(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    term: Term,
    generator: SliceGenerators,
    *,
    sigma: float,
    **smoothgrad: Any,
) -> ScoreResult:
    """:func:`_gradient_score` per slice and SmoothGrad copy (:func:`smoothgrad_per_copy`)."""
    maps = smoothgrad_per_copy(model_of(models, "vae", "cevae"), x, term, generator, **smoothgrad)
    return cat_results([ScoreResult.from_map(gaussian_blur(m, sigma)) for m in maps])


def _register_gradient_scorer(
    name: str, term: Term, *, description: str, seed: str, posterior: bool, doc: str
) -> ScorerFn:
    """Register the smoothed SmoothGrad magnitude of ``term`` as scorer ``name``, with its
    naive reference; ``posterior``: whether it takes the ``posterior`` parameter (the
    terms that decode a ``z``). The three gradient scorers differ only in these."""
    params = [*smoothgrad_params(20, 2.0), *([POSTERIOR] if posterior else [])]

    @register_scorer(name, description=description, seed=seed, model_kinds=_KINDS, params=params)
    def scorer(
        models: dict[str, nn.Module],
        x: torch.Tensor,
        *,
        position: torch.Tensor,
        generator: SliceGenerators,
        **smoothgrad: Any,
    ) -> ScoreResult:
        return _gradient_score(models, x, term, generator, **smoothgrad)

    @register_reference(name)
    def reference(
        models: dict[str, nn.Module],
        x: torch.Tensor,
        *,
        position: torch.Tensor,
        generator: SliceGenerators,
        **smoothgrad: Any,
    ) -> ScoreResult:
        return _gradient_reference(models, x, term, generator, **smoothgrad)

    scorer.__name__ = scorer.__qualname__ = name
    scorer.__doc__ = doc
    reference.__name__ = reference.__qualname__ = f"{name}_reference"
    reference.__doc__ = f"``{name}`` per slice and SmoothGrad copy (seed {seed})."
    return scorer


rec_grad = _register_gradient_scorer(
    "rec_grad",
    "rec",
    description="|d rec / d x|: input gradient of the reconstruction term (SmoothGrad)",
    seed="000, section 3",
    posterior=True,
    doc="Magnitude of the input gradient of the reconstruction term ``-log p(x|z)``.\n"
    + _PARAMS_DOC
    + _POSTERIOR_DOC
    + _RETURNS_DOC
    + """
    References
    ----------
    .. [1] Zimmerer et al., "A Case for the Score" (seed 000), section 3
       ("reconstruction-loss gradient").
    """,
)
kl_grad = _register_gradient_scorer(
    "kl_grad",
    "kl",
    description="|d KL / d x|: input gradient of the KL term (SmoothGrad)",
    seed="000, section 3",
    posterior=False,
    doc="Magnitude of the input gradient of ``KL(q(z|x) || p(z))``.\n"
    + _PARAMS_DOC
    + _RETURNS_DOC
    + """
    References
    ----------
    .. [1] Zimmerer et al., "A Case for the Score" (seed 000), section 3
       ("KL-loss gradient", pixel AUROC 0.939 on BraTS 2017).
    """,
)
elbo_grad = _register_gradient_scorer(
    "elbo_grad",
    "elbo",
    description="|d ELBO / d x|: the approximate score, input gradient of the ELBO",
    seed="000, eq. 2 and section 3",
    posterior=True,
    doc="Magnitude of the input gradient of the ELBO, the approximate score d log p(x) / dx.\n"
    + _PARAMS_DOC
    + _POSTERIOR_DOC
    + _RETURNS_DOC
    + """
    References
    ----------
    .. [1] Zimmerer et al., "A Case for the Score" (seed 000), eq. 2 and section 3
       ("ELBO gradient").
    """,
)


@register_scorer(
    "cevae_combined",
    description="ceVAE: reconstruction error x normalised, smoothed |d KL / d x|",
    seed="003, eq. 8",
    model_kinds=("vae", "cevae"),
    bf16_auto=False,  # measured outside BF16_TOLERANCE: scripts/bf16_tolerance.py
    params=[
        ParamSpec(
            "norm",
            str,
            "l2",
            ("l1", "l2"),
            "Reconstruction error: absolute (l1) or squared (l2) difference",
        ),
        *smoothgrad_params(2, 3.0),
    ],
)
def cevae_combined(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: SliceGenerators,
    norm: Literal["l1", "l2"] = "l2",
    n_smooth: int = 2,
    noise: float = 0.05,
    sigma: float = 3.0,
    abs_first: bool = False,
) -> ScoreResult:
    """ceVAE pixel score: reconstruction error times the normalised KL-gradient magnitude.

    ``pixel = blur(minmax(|d KL / d x|), sigma) * error(x, decode(mu))``, element-wise.
    Only the KL term is back-propagated (seed 003, remarks: the reconstruction gradient
    "showed no additional benefit"); the defaults follow the MOOD example
    (``score_mode="combi"``): squared error of the posterior-mean reconstruction,
    SmoothGrad with 2 copies, min-max normalisation of the gradient, Gaussian smoothing
    with sigma 3. Differences: MOOD min-max normalises over the whole batch and truncates
    its kernel at 7x7; here each slice is normalised on its own (results do not depend on
    the batch) and the kernel is truncated at 4 sigma.

    Parameters
    ----------
    models : dict of str to nn.Module
        Checkpoint models; uses the ``vae`` or ``cevae`` one (trained as a ceVAE for the
        paper's results).
    x : torch.Tensor
        Preprocessed slices ``(B, 1, H, W)``.
    position : torch.Tensor
        Slice positions ``(B,)``; unused.
    generator : SliceGenerators
        Source of the SmoothGrad noise.
    norm : {"l1", "l2"}
        Reconstruction error (MOOD: squared).
    n_smooth, noise, abs_first
        SmoothGrad of the KL term (see :func:`kl_grad`).
    sigma : float
        Gaussian smoothing of the normalised KL gradient in pixels (MOOD: 3); the
        reconstruction error is not smoothed.

    Returns
    -------
    ScoreResult
        ``pixel (B, H, W)``; ``slice_score (B,)`` the mean of the map.

    References
    ----------
    .. [1] Zimmerer et al., "Unsupervised Anomaly Localization using Variational
       Auto-Encoders" (ceVAE), reviewed in seed 003, eq. 8.
    .. [2] MIC-DKFZ/mood, ``example_algos/algorithms/ce_vae.py``.
    """
    model = model_of(models, "vae", "cevae")
    grad = input_gradient(
        model, x, "kl", n_smooth=n_smooth, noise=noise, generator=generator, abs_first=abs_first
    )
    with torch.no_grad():
        rec = pixel_distance(x, reconstruct(models, x), norm)
    pixel = gaussian_blur(minmax_per_slice(grad), sigma) * rec
    return ScoreResult.from_map(pixel)


# --------------------------------------------------------------- naive references


@register_reference("cevae_combined")
def cevae_combined_reference(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: SliceGenerators,
    norm: Norm,
    n_smooth: int,
    noise: float,
    sigma: float,
    abs_first: bool,
) -> ScoreResult:
    """``cevae_combined`` per slice: smoothed, normalised SmoothGrad KL gradient (one copy
    per backward pass) times the error of the posterior-mean reconstruction (seed 003,
    eq. 8)."""
    model = model_of(models, "vae", "cevae")
    grads = smoothgrad_per_copy(
        model, x, "kl", generator, n_smooth=n_smooth, noise=noise, abs_first=abs_first
    )
    results = []
    with torch.no_grad():
        for b, grad in enumerate(grads):
            x1 = x[b : b + 1]
            _, x_hat = decode_sample(model, *model.encode(x1), None)
            pixel = gaussian_blur(minmax_per_slice(grad), sigma) * pixel_distance(x1, x_hat, norm)
            results.append(ScoreResult.from_map(pixel))
    return cat_results(results)
