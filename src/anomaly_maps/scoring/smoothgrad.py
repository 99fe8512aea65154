"""SmoothGrad of a VAE's loss terms, batched, and its naive per-copy twin.

The machinery behind the input-gradient scorers (:mod:`.gradients`, seed 000 and 003).

Batching and noise
------------------
- SmoothGrad: ``n_smooth`` noisy copies ``x + noise * (max(x_b) - min(x_b)) * eps`` of
  each slice ``b``, ``eps ~ N(0, I)``, i.e. the noise standard deviation is a fraction of
  each slice's own intensity range (Smilkov et al.'s "noise level"). All ``n_smooth * B``
  copies are stacked sample-major (row ``k * B + b``); slice ``b``'s noise is drawn from
  its own generator (:func:`smoothgrad_inputs`).
- One backward pass: the per-copy terms are summed and differentiated once with
  :func:`torch.autograd.grad`; no layer mixes slices, so the gradient of the sum with
  respect to copy ``k * B + b`` is exactly the gradient of that copy's own term.
- Posterior noise: the reconstruction and ELBO terms need ``z``. With
  ``posterior="sample"`` (default; the single-sample Monte Carlo ELBO of seed 000, eq. 2)
  each noisy copy gets its own ``z = mu + exp(logvar / 2) * eps_z`` from
  ``model.reparameterize``, drawn from each slice's generator *after* its SmoothGrad
  noise, so SmoothGrad also averages over ``z``. With ``posterior="mean"``, ``z = mu``
  (as in the MOOD example code) and nothing more is drawn. The KL term is analytic and
  draws no ``z``.
- SmoothGrad averages the signed gradients and takes the magnitude afterwards
  (``abs_first=False``, Smilkov et al. and the later trixi helper, since copies can point
  in opposite directions); ``abs_first=True`` averages magnitudes (the older trixi helper
  used by the seed code).

:func:`smoothgrad_per_copy` computes the same maps one slice and one copy per backward
pass, for the scorers' naive references (:mod:`._naive`).

References
----------
.. [1] Zimmerer et al., "A Case for the Score: Identifying Image Anomalies using
   Variational Autoencoder Gradients" (seed 000), eq. 1-2 and section 3.
.. [2] Smilkov et al., "SmoothGrad: removing noise by adding noise", arXiv:1706.03825.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from ..models import Generators, SliceGenerators
from ..models.draws import normal
from ._naive import decode_sample, latent_noise
from ._registry import ParamSpec

__all__ = [
    "POSTERIOR",
    "Posterior",
    "Term",
    "input_gradient",
    "loss_terms",
    "minmax_per_slice",
    "smoothgrad_inputs",
    "smoothgrad_params",
    "smoothgrad_per_copy",
]

Term = Literal["rec", "kl", "elbo"]
Posterior = Literal["sample", "mean"]


def smoothgrad_inputs(
    x: torch.Tensor, n_smooth: int, noise: float, generator: Generators
) -> torch.Tensor:
    """Noisy copies of ``x`` for SmoothGrad, stacked sample-major: ``(n_smooth * B, C, H, W)``.

    Copy ``k * B + b`` is ``x[b] + noise * (max(x[b]) - min(x[b])) * eps[k, b]`` with
    ``eps`` of shape ``(n_smooth, B, C, H, W)``, slice ``b``'s part drawn from its own
    generator.
    """
    flat = x.flatten(1)
    scale = (noise * (flat.amax(1) - flat.amin(1))).view(1, -1, *([1] * (x.dim() - 1)))
    eps = normal((n_smooth, *x.shape), generator, batch_dim=1, device=x.device, dtype=x.dtype)
    return (x.unsqueeze(0) + scale * eps).flatten(0, 1)


def loss_terms(
    model: nn.Module,
    x: torch.Tensor,
    term: Term,
    *,
    posterior: Posterior = "sample",
    generator: Generators = None,
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
    generator: Generators,
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


def smoothgrad_params(n_smooth: int, sigma: float) -> list[ParamSpec]:
    """The SmoothGrad parameters of a gradient scorer, with its defaults."""
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


POSTERIOR = ParamSpec(
    "posterior",
    str,
    "sample",
    ("sample", "mean"),
    "z for the reconstruction term: one posterior sample per noisy copy, or the mean",
)


def smoothgrad_per_copy(
    model: nn.Module,
    x: torch.Tensor,
    term: Term,
    generator: SliceGenerators,
    *,
    n_smooth: int,
    noise: float,
    abs_first: bool,
    posterior: Posterior = "sample",
) -> list[torch.Tensor]:
    """:func:`input_gradient` of each slice, one noisy copy per forward and backward pass.

    The loss of a copy is the KL, ``-log p(x|z)`` or their sum (the negative ELBO,
    seed 000 eq. 1); the likelihood's constant does not change the gradient. Slice
    ``b`` draws from ``generator[b]`` as :func:`input_gradient` does: its
    ``(n, C, H, W)`` input noise, then, for a sampled reconstruction term, its
    ``(n, D)`` posterior noise. Returns ``B`` maps ``(1, H, W)``.
    """
    sampled = term != "kl" and posterior == "sample"
    maps = []
    with torch.inference_mode(False), torch.enable_grad():
        for b in range(x.shape[0]):
            x1 = x[b : b + 1]
            eps = generator[b].normal((n_smooth, *x1.shape), device=x.device, dtype=x.dtype)
            eps_z = latent_noise(model, generator[b], n_smooth, x) if sampled else None
            scale = noise * (x1.max() - x1.min())
            grads = []
            for k in range(n_smooth):
                copy = (x1 + scale * eps[k]).detach().requires_grad_(True)
                mu, logvar = model.encode(copy)
                loss = model.kl_loss(mu, logvar)
                if term != "kl":
                    z_noise = None if eps_z is None else eps_z[k]
                    _, x_hat = decode_sample(model, mu, logvar, z_noise)
                    nll = -model.log_likelihood(copy, x_hat)
                    loss = nll if term == "rec" else nll + loss
                (grad,) = torch.autograd.grad(loss.sum(), copy)
                grads.append(grad)
            stacked = torch.cat(grads)  # (n, C, H, W)
            magnitude = stacked.abs().mean(0) if abs_first else stacked.mean(0).abs()
            maps.append(magnitude.mean(0, keepdim=True))
    return maps
