"""Every batched scorer equals its naive per-slice, per-sample reference (same seed).

The references (registered next to each scorer in its family module) share the scorers'
building blocks, so the family test files keep at least one check against an
independent formulation each (scipy, torch.distributions, explicit autograd or Python
loops).
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from anomaly_maps.checkpoint import load_checkpoint
from anomaly_maps.models import SliceGenerators
from anomaly_maps.scoring import get_scorer, list_scorers, score_volume

LAMBDA = 2.05  # about the median code NLL of the tiny prior: about half the codes count

CASES = [
    ("rec", "vae", {"norm": "l2", "sigma": 1.0}),
    ("rec", "cevae", {}),
    ("rec", "dae", {"sigma": 0.5}),
    ("rec", "vqvae+prior", {}),
    ("sample_std", "vae", {"n_samples": 5, "sigma": 1.0}),
    ("sample_std", "cevae", {"n_samples": 3}),
    ("rec_grad", "vae", {"n_smooth": 3, "noise": 0.1}),
    ("rec_grad", "cevae", {"n_smooth": 3, "posterior": "mean", "abs_first": True}),
    ("kl_grad", "cevae", {"n_smooth": 3, "noise": 0.1, "abs_first": True}),
    ("kl_grad", "vae", {"n_smooth": 1, "noise": 0.0}),
    ("elbo_grad", "vae", {"n_smooth": 3, "noise": 0.1}),
    ("cevae_combined", "cevae", {"n_smooth": 3, "noise": 0.1}),
    ("cevae_combined", "vae", {"norm": "l1"}),
    ("vae_tv_restoration", "vae", {"n_steps": 5, "lr": 5e-3}),
    ("vae_tv_restoration", "cevae", {"n_steps": 3, "lr": 5e-3}),
    ("latent_restoration", "vqvae+prior", {"lambda_p": LAMBDA, "n_restorations": 4}),
    ("latent_nll", "vqvae+prior", {"lambda_s": LAMBDA}),
    ("disyre", "restoration", {"n_steps": 3}),
    ("disyre", "restoration", {"n_steps": 2, "start": 0.5, "multi_step": False}),
    ("fpi", "restoration", {}),
    ("fpi", "restoration_ensemble", {}),
    ("elbo", "vae", {"n_samples": 4}),
    ("kl", "cevae", {}),
    ("rec_nll", "cevae", {"n_samples": 4}),
    ("iwae", "vae", {"n_samples": 4}),
    ("iwae_kl", "cevae", {"n_samples": 4}),
    ("iwae_rec", "vae", {"n_samples": 1}),
]


def _batch_sizes(models: dict[str, torch.nn.Module]):
    """Forward hooks recording the batch size every top-level submodule sees (the
    elements of a top-level ``ModuleList``, which has no forward of its own)."""
    sizes: list[int] = []
    handles = [
        part.register_forward_hook(lambda m, i, o: sizes.append(i[0].shape[0]))
        for model in models.values()
        for child in model.children()
        for part in (child if isinstance(child, torch.nn.ModuleList) else [child])
    ]
    return sizes, handles


@pytest.mark.parametrize(("name", "kind", "params"), CASES, ids=[f"{n}-{k}" for n, k, _ in CASES])
def test_batched_equals_reference(tiny_models, tiny_batch, name, kind, params):
    # in the channels-last layout the inferer runs them in (it converts them in place)
    cl = torch.channels_last
    models = {k: m.to(memory_format=cl) for k, m in tiny_models[kind].items()}
    info = get_scorer(name)
    assert info.fits(kind.split("+"))
    x, position = tiny_batch
    x = x.contiguous(memory_format=cl)
    params = info.resolve_params(params)

    def run(fn):
        with torch.no_grad():  # as in score_volume
            generator = SliceGenerators.seeded(7, range(len(x)))
            return fn(models, x, position=position, generator=generator, **params)

    batched = run(info.fn)
    sizes, handles = _batch_sizes(models)
    try:
        reference = run(info.reference)
    finally:
        for handle in handles:
            handle.remove()
    assert sizes and set(sizes) == {1}  # every forward pass sees one slice, one sample
    assert batched.slice_score.shape == (3,)
    assert bool(batched.slice_score.abs().sum() > 0)
    torch.testing.assert_close(batched.slice_score, reference.slice_score, rtol=1e-5, atol=1e-6)
    assert (batched.pixel is None) == (reference.pixel is None)
    if batched.pixel is not None:
        assert batched.pixel.shape == (3, 16, 16)
        # channels-last convolutions choose kernels by batch size: float32 rounding
        # differs by up to 3e-6 (the VQ-VAE's maps), far below any map's resolution
        torch.testing.assert_close(batched.pixel, reference.pixel, rtol=1e-4, atol=1e-5)


def test_cases_cover_every_scorer():
    assert {name for name, _, _ in CASES} == set(list_scorers())


@pytest.mark.parametrize("name", list_scorers())
def test_every_scorer_has_a_reference_with_its_arguments(name):
    info = get_scorer(name)
    assert info.reference is not None
    scorer, reference = (inspect.signature(f).parameters for f in (info.fn, info.reference))
    assert [(p.name, p.kind) for p in reference.values()] == [
        (p.name, p.kind) for p in scorer.values()
    ]


def test_latent_restoration_reference_draws_from_the_prior(tiny_models, tiny_batch):
    """With the real prior the reference draws one restoration at a time: reproducible,
    and unlike the map without redraws."""
    models = tiny_models["vqvae+prior"]
    x, position = tiny_batch
    info = get_scorer("latent_restoration")

    def run(lambda_p, seed):
        params = info.resolve_params({"lambda_p": lambda_p, "n_restorations": 3})
        generator = SliceGenerators.seeded(seed, range(len(x)))
        return info.reference(models, x, position=position, generator=generator, **params)

    first, again, kept = run(LAMBDA, 1), run(LAMBDA, 1), run(1e9, 1)
    torch.testing.assert_close(first.pixel, again.pixel, rtol=0, atol=0)
    assert not torch.allclose(first.pixel, kept.pixel)


def test_score_volume_runs_the_references(tiny_checkpoint, tiny_volume):
    """reference=True: the same maps and scores, the draws of several scorers interleaved."""
    checkpoint = load_checkpoint(tiny_checkpoint)
    scorers = [("sample_std", {"n_samples": 3}), ("kl_grad", {"n_smooth": 2}), ("iwae", {})]
    batched = score_volume(tiny_volume, checkpoint, scorers, batch_size=4)
    reference = score_volume(tiny_volume, checkpoint, scorers, batch_size=4, reference=True)
    for a, b in zip(batched, reference, strict=True):
        if a.map is not None:
            np.testing.assert_allclose(a.map, b.map, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(a.slice_scores, b.slice_scores, rtol=1e-5, atol=1e-6)
