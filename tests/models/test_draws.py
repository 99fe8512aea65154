"""Per-slice random draws: a slice's noise depends on its own generator only."""

from __future__ import annotations

import pytest
import torch

from anomaly_maps.errors import ParameterError
from anomaly_maps.models import DAE, CeVAE, CeVAEConfig, DAEConfig, SliceGenerators
from anomaly_maps.models.draws import normal, slice_seed

SIZE = 16


def gens(*indices: int, seed: int = 0) -> SliceGenerators:
    return SliceGenerators.seeded(seed, indices)


def test_each_slice_draws_from_its_own_generator():
    batch = gens(4, 5, 6).normal((3, 3, 2), batch_dim=1)  # (S, B, D)
    for b, index in enumerate((4, 5, 6)):
        alone = gens(index).normal((3, 1, 2), batch_dim=1)
        torch.testing.assert_close(batch[:, b : b + 1], alone, rtol=0, atol=0)
    # stacked copies (m * B rows, row k * B + b) draw what an (m, B, ...) tensor draws
    rows = gens(4, 5, 6).normal((9, 2))
    torch.testing.assert_close(rows.view(3, 3, 2), batch, rtol=0, atol=0)
    assert not torch.equal(batch[:, 0], batch[:, 1])


def test_one_slice_gets_the_same_numbers_whatever_the_layout():
    g = gens(2)
    a = g.uniform((4, 3))
    b = g[0].uniform((2, 6))
    torch.testing.assert_close(a.flatten(), gens(2).uniform((12,)), rtol=0, atol=0)
    assert not torch.equal(a.flatten(), b.flatten())  # the generator moved on
    ints = gens(1, 2).integers(0, 100, (2, 5))
    torch.testing.assert_close(ints[1], gens(2).integers(0, 100, (1, 5))[0], rtol=0, atol=0)


def test_indexing_and_errors():
    g = gens(0, 1, 2)
    assert len(g) == 3 and len(g[1:]) == 2 and len(g[0]) == 1
    torch.testing.assert_close(g[2].normal((1, 4)), gens(2).normal((1, 4)), rtol=0, atol=0)
    with pytest.raises(ValueError, match="not a multiple"):
        g.normal((4, 2))
    with pytest.raises(ValueError, match="at least one"):
        SliceGenerators([])


def test_seeds_differ_by_seed_and_index_and_are_checked():
    seeds = {slice_seed(s, i) for s in range(3) for i in range(3)}
    assert len(seeds) == 9
    assert slice_seed(0, 1) != slice_seed(1, 0)
    for bad in (-1, 1.5, True):
        with pytest.raises(ParameterError, match="expected an int >= 0"):
            slice_seed(bad, 0)


def test_a_plain_generator_draws_as_torch_does():
    a = normal((3, 4), torch.Generator().manual_seed(1))
    b = torch.randn((3, 4), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def _slices(n: int) -> torch.Tensor:
    return torch.rand(n, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    "draw",
    [
        lambda x, g: CeVAE(CeVAEConfig(size=SIZE, widths=(8, 16), latent_dim=8)).mask_squares(
            x, generator=g
        )[0],
        lambda x, g: CeVAE(
            CeVAEConfig(size=SIZE, widths=(8, 16), latent_dim=8, fill="noise")
        ).mask_squares(x, generator=g)[0],
        lambda x, g: DAE(
            DAEConfig(size=SIZE, widths=(8, 16), latent_dim=8, noise="coarse", noise_resolution=4)
        ).corrupt(x, g),
        lambda x, g: DAE(
            DAEConfig(size=SIZE, widths=(8, 16), latent_dim=8, noise="gaussian")
        ).corrupt(x, g),
    ],
    ids=["mask_squares", "mask_squares-noise", "corrupt-coarse", "corrupt-gaussian"],
)
def test_model_corruptions_draw_per_slice(draw):
    x = _slices(3)
    together = draw(x, gens(0, 1, 2))
    for b in range(3):
        alone = draw(x[b : b + 1], gens(b))
        torch.testing.assert_close(together[b : b + 1], alone, rtol=0, atol=0)
    assert not torch.equal(together, draw(x, gens(0, 1, 2, seed=1)))


def test_reparameterize_draws_per_slice(tiny_models):
    model = tiny_models["vae"]["vae"]
    mu, logvar = torch.zeros(3, 8), torch.zeros(3, 8)
    stacked = model.reparameterize(mu.repeat(2, 1), logvar.repeat(2, 1), generator=gens(0, 1, 2))
    grid = model.reparameterize(
        mu.expand(2, 3, 8), logvar.expand(2, 3, 8), generator=gens(0, 1, 2)
    )
    torch.testing.assert_close(stacked.view(2, 3, 8), grid, rtol=0, atol=0)
    alone = model.reparameterize(mu[:1].repeat(2, 1), logvar[:1].repeat(2, 1), generator=gens(0))
    torch.testing.assert_close(grid[:, 0], alone, rtol=0, atol=0)


def test_prior_resample_draws_per_slice(tiny_models):
    prior = tiny_models["vqvae+prior"]["prior"]
    h, w = prior.config.grid_size
    codes = torch.zeros(3, h, w, dtype=torch.long)
    mask = torch.ones(3, h, w, dtype=torch.bool)
    position = torch.tensor([0.2, 0.5, 0.8])
    together = prior.resample(codes, mask, position, gens(0, 1, 2))
    alone = prior.resample(codes[1:2], mask[1:2], position[1:2], gens(1))
    torch.testing.assert_close(together[1:2], alone, rtol=0, atol=0)
