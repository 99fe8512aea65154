"""Tests of the denoising auto-encoder baseline (seed 000) and its training noise."""

from __future__ import annotations

import json

import pytest
import torch

from anomaly_maps.errors import ParameterError
from anomaly_maps.models import build_model, model_presets
from anomaly_maps.models.dae import DAE, DAEConfig
from anomaly_maps.models.vae import VAE, VAEConfig

TINY = {"size": 16, "widths": (8, 16), "latent_dim": 8}


def discs(n: int, size: int = 16, seed: int = 0) -> torch.Tensor:
    """Soft-edged discs of random radius and brightness, ``(n, 1, size, size)`` in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    axis = torch.linspace(-1, 1, size)
    r = (axis[:, None] ** 2 + axis[None, :] ** 2).sqrt()
    radius = torch.rand(n, 1, 1, generator=g) * 0.4 + 0.4
    level = torch.rand(n, 1, 1, generator=g) * 0.5 + 0.5
    return (level * torch.sigmoid((radius - r) * 10)).unsqueeze(1)


def neighbour_correlation(noise: torch.Tensor) -> float:
    """Correlation of horizontally adjacent pixels of a noise batch ``(B, C, H, W)``."""
    a, b = noise[..., :-1].flatten(), noise[..., 1:].flatten()
    return torch.corrcoef(torch.stack([a, b]))[0, 1].item()


def test_shapes() -> None:
    model = DAE(DAEConfig(**TINY))
    x = discs(3)
    z = model.encode(x)
    assert z.shape == (3, 8)
    assert model.decode(z).shape == model(x).shape == model.corrupt(x).shape == x.shape
    assert model.reconstruction_loss(x, model(x)).shape == x.shape


def test_same_architecture_as_the_vae_apart_from_the_code() -> None:
    dae = DAE(DAEConfig(**TINY))
    vae = VAE(VAEConfig(**TINY))
    assert [tuple(p.shape) for p in dae.decoder.parameters()] == [
        tuple(p.shape) for p in vae.decoder.parameters()
    ]
    enc_dae = [tuple(p.shape) for p in dae.encoder.parameters()]
    enc_vae = [tuple(p.shape) for p in vae.encoder.parameters()]
    assert enc_dae[:-2] == enc_vae[:-2]  # last conv: D outputs instead of 2 D
    assert enc_dae[-1] == (8,) and enc_vae[-1] == (16,)


def test_forward_is_deterministic() -> None:
    model = DAE(DAEConfig(**TINY)).train()
    x = discs(2)
    assert torch.equal(model(x), model(x))


def test_preset() -> None:
    config = model_presets("dae")["zimmerer2019"]
    assert (config.size, config.latent_dim, config.widths) == (64, 1024, (16, 32, 64, 256))
    assert build_model(config)(torch.rand(1, 1, 64, 64)).shape == (1, 1, 64, 64)


def test_config_round_trip_and_unknown_key() -> None:
    config = DAEConfig(**TINY, noise="coarse", noise_std=0.1, noise_resolution=4, recon="l1")
    data = json.loads(json.dumps(config.to_dict()))
    assert DAEConfig.from_dict(data) == config
    with pytest.raises(ParameterError, match=r"dae.*\['sigma'\]"):
        DAEConfig.from_dict({**data, "sigma": 0.1})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"noise": "salt"},
            r"noise='salt' for model 'dae': expected one of \['gaussian', 'coarse'\]",
        ),
        ({"noise_std": -0.1}, r"noise_std=-0.1 for model 'dae': expected a finite float >= 0"),
        ({"noise_resolution": 0}, r"noise_resolution=0 .*expected an int in \[1, size=16\]"),
        ({"noise_resolution": 32}, r"noise_resolution=32"),
        ({"widths": ()}, r"widths=\(\) for model 'dae'"),
        ({"recon": "ssim"}, r"recon='ssim' for model 'dae'"),
    ],
)
def test_bad_config_is_refused(changes: dict, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        DAEConfig(**{**TINY, **changes})


@pytest.mark.parametrize(
    ("noise", "resolution", "correlated"),
    [("gaussian", 16, False), ("coarse", 4, True), ("coarse", 16, False), ("coarse", 1, True)],
)
def test_noise_has_the_configured_std(noise: str, resolution: int, correlated: bool) -> None:
    model = DAE(DAEConfig(**TINY, noise=noise, noise_std=0.3, noise_resolution=resolution))
    x = discs(1024)
    added = model.corrupt(x, generator=torch.Generator().manual_seed(0)) - x
    assert added.mean().abs() < 0.03
    assert added.std().item() == pytest.approx(0.3, rel=0.08)
    assert (neighbour_correlation(added) > 0.5) is correlated


def test_corrupt_is_reproducible_with_a_generator() -> None:
    model = DAE(DAEConfig(**TINY, noise="coarse", noise_resolution=4))
    x = discs(4)
    a = model.corrupt(x, generator=torch.Generator().manual_seed(1))
    b = model.corrupt(x, generator=torch.Generator().manual_seed(1))
    c = model.corrupt(x, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_coarse_noise_is_shifted_per_slice() -> None:
    # A 2x2 grid upsampled to 16x16 is smooth; the random circular shift of each slice
    # puts a seam (a jump between neighbouring columns) at a different place per slice.
    model = DAE(DAEConfig(**TINY, noise="coarse", noise_resolution=2, noise_std=1.0))
    added = model.corrupt(torch.zeros(64, 1, 16, 16), generator=torch.Generator().manual_seed(0))
    jumps = (added[..., 1:] - added[..., :-1]).abs().amax(dim=(1, 2))  # (B, W - 1)
    assert jumps.amax(dim=1).median() > 0.5  # smooth parts change by < 0.3 per pixel
    assert len(jumps.argmax(dim=1).unique()) > 4


@pytest.mark.parametrize("recon", ["l2", "l1"])
def test_reconstruction_loss_values(recon: str) -> None:
    model = DAE(DAEConfig(**TINY, recon=recon))
    x, x_hat = discs(2), torch.zeros(2, 1, 16, 16)
    expected = x**2 if recon == "l2" else x.abs()
    torch.testing.assert_close(model.reconstruction_loss(x, x_hat), expected)


def test_input_gradient_of_the_reconstruction_error() -> None:
    model = DAE(DAEConfig(**TINY))
    x = discs(2).requires_grad_(True)
    (grad,) = torch.autograd.grad(model.reconstruction_loss(x, model(x)).sum(), x)
    assert torch.isfinite(grad).all() and (grad.abs().flatten(1).sum(1) > 0).all()


@pytest.mark.parametrize("noise", ["gaussian", "coarse"])
def test_training_loss_falls(noise: str) -> None:
    torch.manual_seed(0)
    model = DAE(DAEConfig(**TINY, noise=noise, noise_std=0.1, noise_resolution=4))
    x = discs(16)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = model.training_loss(x)
        assert set(loss.terms) == {"rec"}
        optimiser.zero_grad()
        loss.total.backward()
        optimiser.step()
        losses.append(loss.total.item())
    assert sum(losses[-5:]) / 5 < 0.5 * losses[0]
