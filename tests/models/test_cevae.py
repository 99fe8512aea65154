"""Tests of the context-encoding VAE (seed 003, MOOD example recipe)."""

from __future__ import annotations

import json

import pytest
import torch

from anomaly_maps.errors import ParameterError
from anomaly_maps.models import build_model, model_presets
from anomaly_maps.models.cevae import CeVAE, CeVAEConfig
from anomaly_maps.models.vae import VAE

TINY = {"size": 16, "widths": (8, 16), "latent_dim": 8, "likelihood_scale": 0.1}


def ramps(n: int, size: int = 16, seed: int = 0) -> torch.Tensor:
    """Smooth random linear ramps plus a blob, ``(n, 1, size, size)``, roughly in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    axis = torch.linspace(0, 1, size)
    slope = torch.rand(n, 2, 1, 1, generator=g)
    ramp = 0.5 * (slope[:, 0] * axis[:, None] + slope[:, 1] * axis[None, :])
    blob = torch.exp(-((axis[:, None] - 0.5) ** 2 + (axis[None, :] - 0.5) ** 2) / 0.05)
    return (ramp + 0.5 * blob).unsqueeze(1)


def test_cevae_reuses_the_vae() -> None:
    model = CeVAE(CeVAEConfig(**TINY))
    assert isinstance(model, VAE)
    assert type(model).encode is VAE.encode and type(model).kl_loss is VAE.kl_loss


def test_config_round_trip_and_unknown_key() -> None:
    config = CeVAEConfig(**TINY, ce_factor=0.25, n_squares=(0, 2), square_size=(0.25, 0.5))
    data = json.loads(json.dumps(config.to_dict()))
    assert data["n_squares"] == [0, 2]
    assert CeVAEConfig.from_dict(data) == config
    with pytest.raises(ParameterError, match=r"cevae.*\['mask_value'\]"):
        CeVAEConfig.from_dict({**data, "mask_value": 0})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ce_factor": 1.5}, r"ce_factor=1.5 for model 'cevae': expected a float in \[0, 1\]"),
        ({"n_squares": (2, 1)}, r"n_squares=\(2, 1\) for model 'cevae'"),
        ({"n_squares": (0, 0)}, r"n_squares=\(0, 0\) .*max >= 1"),
        ({"n_squares": (1, 2, 3)}, r"n_squares=\(1, 2, 3\)"),
        ({"square_size": (0.0, 0.5)}, r"square_size=\(0.0, 0.5\) .*0 < min <= max <= 1"),
        ({"square_size": (0.5, 1.5)}, r"square_size=\(0.5, 1.5\)"),
        ({"fill": "blur"}, r"fill='blur' for model 'cevae': expected one of"),
        ({"size": 24}, r"size=24 for model 'cevae'"),
        ({"beta": -1.0}, r"beta=-1.0 for model 'cevae'"),
    ],
)
def test_bad_config_is_refused(changes: dict, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        CeVAEConfig(**{**TINY, **changes})


def test_mood_preset() -> None:
    config = model_presets("cevae")["mood2020"]
    assert isinstance(config, CeVAEConfig)
    assert (config.size, config.latent_dim, config.recon, config.ce_factor) == (
        128,
        128,
        "l1",
        0.5,
    )
    assert config.square_pixels == (1, 64)
    assert isinstance(build_model(config), CeVAE)


def test_masking_is_reproducible_with_a_seeded_generator() -> None:
    model = CeVAE(CeVAEConfig(**TINY, n_squares=(1, 3)))
    x = ramps(8)
    a = model.mask_squares(x, generator=torch.Generator().manual_seed(1))
    b = model.mask_squares(x, generator=torch.Generator().manual_seed(1))
    c = model.mask_squares(x, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


@pytest.mark.parametrize("fill", ["uniform", "noise", "zero"])
def test_mask_is_one_square_of_a_configured_size(fill: str) -> None:
    config = CeVAEConfig(**TINY, n_squares=(1, 1), square_size=(0.25, 0.5), fill=fill)
    assert config.square_pixels == (4, 8)
    model = CeVAE(config)
    x = ramps(64)
    x_masked, mask = model.mask_squares(x, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (64, 1, 16, 16) and mask.dtype == torch.bool
    rows, cols = mask[:, 0].any(dim=2), mask[:, 0].any(dim=1)  # (B, H), (B, W)
    height, width = rows.sum(1), cols.sum(1)
    assert torch.equal(height, width)  # a square ...
    assert torch.equal(mask.flatten(1).sum(1), height * width)  # ... completely filled
    assert height.min() >= 4 and height.max() <= 8
    assert len(height.unique()) > 1  # sizes are drawn, not fixed
    assert torch.equal(x_masked[~mask.expand_as(x)], x[~mask.expand_as(x)])
    if fill == "zero":
        assert (x_masked[mask] == 0).all()
        return
    # Per slice: smallest and largest fill value, and the slice's own intensity range.
    fill_low = torch.where(mask, x_masked, torch.inf).flatten(1).amin(1)
    fill_high = torch.where(mask, x_masked, -torch.inf).flatten(1).amax(1)
    assert (fill_low >= x.flatten(1).amin(1)).all() and (fill_high <= x.flatten(1).amax(1)).all()
    if fill == "uniform":
        assert torch.equal(fill_low, fill_high)  # one intensity per square
    else:
        assert (fill_low < fill_high).all()


def test_number_of_squares_follows_the_config() -> None:
    # Squares of one pixel rarely overlap: the masked area counts the squares.
    config = CeVAEConfig(**{**TINY, "size": 64}, n_squares=(0, 3), square_size=(1 / 64, 1 / 64))
    _, mask = CeVAE(config).mask_squares(
        ramps(200, 64), generator=torch.Generator().manual_seed(0)
    )
    counts = mask.flatten(1).sum(1)
    assert counts.max() <= 3
    assert set(counts.tolist()) >= {0, 1, 2, 3}


def test_inpainting_loss_reconstructs_the_clean_slice_from_the_masked_one() -> None:
    model = CeVAE(CeVAEConfig(**TINY, n_squares=(1, 2)))
    x = ramps(4).requires_grad_(True)
    x_masked, mask = model.mask_squares(x, generator=torch.Generator().manual_seed(5))
    (grad,) = torch.autograd.grad(x_masked.sum(), x)
    assert torch.equal(grad, (~mask).expand_as(x).to(grad.dtype))  # squares cut off from x
    target = model.decode(model.encode(x_masked)[0])
    expected = model.reconstruction_loss(x, target).flatten(1).sum(1)
    loss = model.inpainting_loss(x, generator=torch.Generator().manual_seed(5))
    assert loss.shape == (4,)
    torch.testing.assert_close(loss, expected)


def test_training_loss_combines_vae_and_ce_terms() -> None:
    torch.manual_seed(0)
    model = CeVAE(CeVAEConfig(**TINY, ce_factor=0.3))
    loss = model.training_loss(ramps(4))
    assert set(loss.terms) == {"rec", "kl", "ce"}
    vae_total = loss.terms["rec"] + model.config.beta * loss.terms["kl"]
    expected = 0.7 * vae_total + 0.3 * loss.terms["ce"]
    torch.testing.assert_close(loss.total.detach(), expected)


def test_ce_factor_zero_is_the_plain_vae() -> None:
    config = CeVAEConfig(**TINY, ce_factor=0.0)
    cevae = CeVAE(config)
    vae = VAE(config)
    vae.load_state_dict(cevae.state_dict())
    x = ramps(4)
    torch.manual_seed(3)
    expected = VAE.training_loss(vae, x).total
    torch.manual_seed(3)
    torch.testing.assert_close(cevae.training_loss(x).total, expected)


def test_training_loss_falls() -> None:
    torch.manual_seed(0)
    model = CeVAE(CeVAEConfig(**TINY))
    x = ramps(16)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = model.training_loss(x)
        optimiser.zero_grad()
        loss.total.backward()
        optimiser.step()
        losses.append(loss.total.item())
    assert sum(losses[-5:]) / 5 < 0.5 * losses[0]
