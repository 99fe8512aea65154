"""Input-gradient scorers: |d term / d x| of a VAE, with SmoothGrad and Gaussian smoothing.

Seed 000 approximates the *score* ``d log p(x) / d x`` by the gradient of the ELBO with
respect to the input slice (eq. 2) and also splits it into the gradients of the
reconstruction term and of the KL term; the magnitude per pixel is the anomaly rating.
The gradients are averaged with SmoothGrad and then Gaussian-smoothed against the
checkerboard artefacts of strided convolutions (section 3). Seed 003 (ceVAE) multiplies
the reconstruction error element-wise with the KL gradient (eq. 8), back-propagating only
the KL term.

Batching and noise (the same for every scorer here)
---------------------------------------------------
- SmoothGrad: ``n_smooth`` noisy copies ``x + noise * (max(x_b) - min(x_b)) * eps`` of
  each slice ``b``, ``eps ~ N(0, I)``, i.e. the noise standard deviation is a fraction of
  each slice's own intensity range (Smilkov et al.'s "noise level"). All ``n_smooth * B``
  copies are stacked sample-major (row ``k * B + b``) and drawn from ``generator`` in one
  call (:func:`smoothgrad_inputs`).
- One backward pass: the per-copy terms are summed and differentiated once with
  :func:`torch.autograd.grad`; no layer mixes slices, so the gradient of the sum with
  respect to copy ``k * B + b`` is exactly the gradient of that copy's own term.
- Posterior noise: the reconstruction and ELBO terms need ``z``. With
  ``posterior="sample"`` (default; the single-sample Monte Carlo ELBO of seed 000, eq. 2)
  each noisy copy gets its own ``z = mu + exp(logvar / 2) * eps_z`` from
  ``model.reparameterize(generator=generator)``, drawn *after* the SmoothGrad noise as
  one ``(n_smooth * B, D)`` tensor, so SmoothGrad also averages over ``z``. With
  ``posterior="mean"``, ``z = mu`` (as in the MOOD example code) and nothing more is
  drawn. The KL term is analytic and draws no ``z``.
- SmoothGrad averages the signed gradients and takes the magnitude afterwards
  (``abs_first=False``, Smilkov et al. and the later trixi helper, since copies can point
  in opposite directions); ``abs_first=True`` averages magnitudes (the older trixi helper
  used by the seed code).

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

from typing import Literal

import torch
from torch import nn

from ._ops import gaussian_blur, model_of
from ._registry import ParamSpec, ScoreResult, register_scorer
from .reconstruction import pixel_distance, reconstruct

__all__ = [
    "cevae_combined",
    "elbo_grad",
    "input_gradient",
    "kl_grad",
    "loss_terms",
    "minmax_per_slice",
    "rec_grad",
    "smoothgrad_inputs",
]

Term = Literal["rec", "kl", "elbo"]
Posterior = Literal["sample", "mean"]


def smoothgrad_inputs(
    x: torch.Tensor, n_smooth: int, noise: float, generator: torch.Generator
) -> torch.Tensor:
    """Noisy copies of ``x`` for SmoothGrad, stacked sample-major: ``(n_smooth * B, C, H, W)``.

    Copy ``k * B + b`` is ``x[b] + noise * (max(x[b]) - min(x[b])) * eps[k, b]`` with
    ``eps = torch.randn((n_smooth, B, C, H, W), generator=generator)`` drawn in one call.
    """
    flat = x.flatten(1)
    scale = (noise * (flat.amax(1) - flat.amin(1))).view(1, -1, *([1] * (x.dim() - 1)))
    eps = torch.randn((n_smooth, *x.shape), generator=generator, device=x.device, dtype=x.dtype)
    return (x.unsqueeze(0) + scale * eps).flatten(0, 1)


def loss_terms(
    model: nn.Module,
    x: torch.Tensor,
    term: Term,
    *,
    posterior: Posterior = "sample",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Per-slice loss term ``(N,)`` of a VAE, differentiable with respect to ``x``.

    ``"kl"``: ``KL(q(z|x) || N(0, I))``; ``"rec"``: ``-log p(x|z)`` summed over pixels
    (without its constant); ``"elbo"``: their sum, the negative single-sample ELBO with
    beta = 1 (seed 000, eq. 1). The sign does not matter for the magnitude maps.
    """
    mu, logvar = model.encode(x)
    kl = model.kl_loss(mu, logvar)
    if term == "kl":
        return kl
    z = model.reparameterize(mu, logvar, generator=generator) if posterior == "sample" else mu
    rec = model.reconstruction_loss(x, model.decode(z)).flatten(1).sum(1)
    return rec if term == "rec" else rec + kl


def input_gradient(
    model: nn.Module,
    x: torch.Tensor,
    term: Term,
    *,
    n_smooth: int,
    noise: float,
    generator: torch.Generator,
    posterior: Posterior = "sample",
    abs_first: bool = False,
) -> torch.Tensor:
    """SmoothGrad magnitude of ``d term / d x``, channel mean: ``(B, C, H, W) -> (B, H, W)``.

    All copies go through one forward and one backward pass (see the module notes). Runs
    under :func:`torch.enable_grad` and outside inference mode, so it works when called
    inside ``torch.no_grad()`` or ``torch.inference_mode()``.
    """
    with torch.inference_mode(False), torch.enable_grad():
        noisy = smoothgrad_inputs(x.clone(), n_smooth, noise, generator)
        noisy = noisy.detach().requires_grad_(True)
        total = loss_terms(model, noisy, term, posterior=posterior, generator=generator).sum()
        (grad,) = torch.autograd.grad(total, noisy)
    grad = grad.detach().view(n_smooth, *x.shape)
    magnitude = grad.abs().mean(0) if abs_first else grad.mean(0).abs()
    return magnitude.mean(1)


def minmax_per_slice(maps: torch.Tensor) -> torch.Tensor:
    """Rescale each ``(H, W)`` map of ``(B, H, W)`` to [0, 1]; a constant map becomes 0."""
    flat = maps.flatten(1)
    low = flat.amin(1).view(-1, 1, 1)
    span = (flat.amax(1).view(-1, 1, 1) - low).clamp_min(torch.finfo(maps.dtype).tiny)
    return (maps - low) / span


def _smoothgrad_params(n_smooth: int, sigma: float) -> list[ParamSpec]:
    return [
        ParamSpec(
            "n_smooth",
            int,
            n_smooth,
            (1, 128),
            "SmoothGrad noisy copies per slice (1 with noise 0 = plain gradient)",
        ),
        ParamSpec(
            "noise",
            float,
            0.05,
            (0.0, 1.0),
            "SmoothGrad noise std as a fraction of each slice's intensity range",
        ),
        ParamSpec(
            "sigma",
            float,
            sigma,
            (0.0, 32.0),
            "Gaussian smoothing of the gradient map in pixels; 0 = none",
        ),
        ParamSpec(
            "abs_first",
            bool,
            False,
            None,
            "Average gradient magnitudes instead of taking the magnitude of the average",
        ),
    ]


_POSTERIOR = ParamSpec(
    "posterior",
    str,
    "sample",
    ("sample", "mean"),
    "z for the reconstruction term: one posterior sample per noisy copy, or the mean",
)


def _gradient_score(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    term: Term,
    generator: torch.Generator,
    *,
    n_smooth: int,
    noise: float,
    sigma: float,
    abs_first: bool,
    posterior: Posterior = "sample",
) -> ScoreResult:
    model = model_of(models, "vae", "cevae")
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
    generator : torch.Generator
        Source of the SmoothGrad noise, then of the posterior noise (module notes).
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


@register_scorer(
    "rec_grad",
    description="|d rec / d x|: input gradient of the reconstruction term (SmoothGrad)",
    seed="000, section 3",
    model_kinds=("vae", "cevae"),
    params=[*_smoothgrad_params(20, 2.0), _POSTERIOR],
)
def rec_grad(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: torch.Generator,
    n_smooth: int = 20,
    noise: float = 0.05,
    sigma: float = 2.0,
    abs_first: bool = False,
    posterior: Posterior = "sample",
) -> ScoreResult:
    return _gradient_score(
        models,
        x,
        "rec",
        generator,
        n_smooth=n_smooth,
        noise=noise,
        sigma=sigma,
        abs_first=abs_first,
        posterior=posterior,
    )


@register_scorer(
    "kl_grad",
    description="|d KL / d x|: input gradient of the KL term (SmoothGrad)",
    seed="000, section 3",
    model_kinds=("vae", "cevae"),
    params=_smoothgrad_params(20, 2.0),
)
def kl_grad(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: torch.Generator,
    n_smooth: int = 20,
    noise: float = 0.05,
    sigma: float = 2.0,
    abs_first: bool = False,
) -> ScoreResult:
    return _gradient_score(
        models,
        x,
        "kl",
        generator,
        n_smooth=n_smooth,
        noise=noise,
        sigma=sigma,
        abs_first=abs_first,
    )


@register_scorer(
    "elbo_grad",
    description="|d ELBO / d x|: the approximate score, input gradient of the ELBO",
    seed="000, eq. 2 and section 3",
    model_kinds=("vae", "cevae"),
    params=[*_smoothgrad_params(20, 2.0), _POSTERIOR],
)
def elbo_grad(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: torch.Generator,
    n_smooth: int = 20,
    noise: float = 0.05,
    sigma: float = 2.0,
    abs_first: bool = False,
    posterior: Posterior = "sample",
) -> ScoreResult:
    return _gradient_score(
        models,
        x,
        "elbo",
        generator,
        n_smooth=n_smooth,
        noise=noise,
        sigma=sigma,
        abs_first=abs_first,
        posterior=posterior,
    )


_POSTERIOR_DOC = """    posterior : {"sample", "mean"}
        ``z`` of the reconstruction term: one reparameterised sample per noisy copy
        (default, seed 000 eq. 2) or the posterior mean.
"""

rec_grad.__doc__ = (
    "Magnitude of the input gradient of the reconstruction term ``-log p(x|z)``.\n"
    + _PARAMS_DOC
    + _POSTERIOR_DOC
    + _RETURNS_DOC
    + """
    References
    ----------
    .. [1] Zimmerer et al., "A Case for the Score" (seed 000), section 3
       ("reconstruction-loss gradient").
    """
)
kl_grad.__doc__ = (
    "Magnitude of the input gradient of ``KL(q(z|x) || p(z))``.\n"
    + _PARAMS_DOC
    + _RETURNS_DOC
    + """
    References
    ----------
    .. [1] Zimmerer et al., "A Case for the Score" (seed 000), section 3
       ("KL-loss gradient", pixel AUROC 0.939 on BraTS 2017).
    """
)
elbo_grad.__doc__ = (
    "Magnitude of the input gradient of the ELBO, the approximate score d log p(x) / dx.\n"
    + _PARAMS_DOC
    + _POSTERIOR_DOC
    + _RETURNS_DOC
    + """
    References
    ----------
    .. [1] Zimmerer et al., "A Case for the Score" (seed 000), eq. 2 and section 3
       ("ELBO gradient").
    """
)


@register_scorer(
    "cevae_combined",
    description="ceVAE: reconstruction error x normalised, smoothed |d KL / d x|",
    seed="003, eq. 8",
    model_kinds=("vae", "cevae"),
    params=[
        ParamSpec(
            "norm",
            str,
            "l2",
            ("l1", "l2"),
            "Reconstruction error: absolute (l1) or squared (l2) difference",
        ),
        *_smoothgrad_params(2, 3.0),
    ],
)
def cevae_combined(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    *,
    position: torch.Tensor,
    generator: torch.Generator,
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
    generator : torch.Generator
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
