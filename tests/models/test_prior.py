"""Tests of the autoregressive code prior (seed 002): causality, likelihoods, sampling."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from anomaly_maps.errors import ParameterError
from anomaly_maps.models import build_model, config_from_dict, model_presets
from anomaly_maps.models.prior import CodePrior, PriorConfig
from anomaly_maps.models.vqvae import VQVAEConfig

K, H, W = 8, 4, 4
TINY = {"num_codes": K, "grid_size": (H, W), "width": 32, "depth": 2, "heads": 2, "dropout": 0.0}


def tiny(**overrides) -> CodePrior:
    torch.manual_seed(0)
    return CodePrior(PriorConfig(**{**TINY, **overrides})).eval()


def random_codes(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, K, (n, H, W), generator=torch.Generator().manual_seed(seed))


def diagonal_codes(n: int, seed: int = 0) -> torch.Tensor:
    """Codes ``(a + row + col) mod K`` with random ``a``: all fixed by the first code."""
    offset = torch.randint(0, K, (n, 1, 1), generator=torch.Generator().manual_seed(seed))
    return (offset + torch.arange(H)[:, None] + torch.arange(W)[None, :]) % K


def naive_resample(model, codes, mask, position, generator, temperature=1.0):
    """Reference: one full teacher-forced pass per visited raster position, no cache;
    each row's uniforms drawn in turn, a code drawn by counting the CDF values <= u."""
    out = codes.clone()
    uniform = torch.cat([torch.rand(1, H * W, generator=generator) for _ in range(len(codes))])
    for i in range(H * W):
        r, c = divmod(i, W)
        if not mask[:, r, c].any():
            continue
        logits = model.logits(out, position)[:, :, r, c] / temperature
        cdf = logits.softmax(-1).cumsum(-1)
        draw = (cdf <= uniform[:, i, None]).sum(-1).clamp_max(K - 1)
        out[:, r, c] = torch.where(mask[:, r, c], draw, out[:, r, c])
    return out


def test_shapes():
    model = tiny()
    codes, position = random_codes(3), torch.tensor([0.0, 0.5, 1.0])
    assert model.logits(codes, position).shape == (3, K, H, W)
    nll = model.nll(codes, position)
    assert nll.shape == (3, H, W)
    assert nll.dtype == torch.float32
    out = model.training_loss(codes, position=position)
    assert out.total.ndim == 0
    assert set(out.terms) == {"nll"}
    assert not out.terms["nll"].requires_grad


def test_config_round_trip_and_unknown_key():
    config = PriorConfig(**TINY, conditioned=False)
    data = json.loads(json.dumps(config.to_dict()))
    assert PriorConfig.from_dict(data) == config
    assert config_from_dict("prior", data) == config
    assert isinstance(build_model(config), CodePrior)
    with pytest.raises(ParameterError, match="n_layers"):
        PriorConfig.from_dict({**data, "n_layers": 3})


def test_preset_matches_seed_002():
    config = model_presets("prior")["marimont2021"]
    assert (config.num_codes, config.grid_size, config.conditioned) == (128, (20, 20), True)
    config.check_matches(model_presets("vqvae")["marimont2021"])


def test_config_for_vqvae_and_mismatch():
    vqvae = VQVAEConfig(size=16, widths=(8, 16, 16), num_codes=8, code_dim=8)
    config = PriorConfig.for_vqvae(vqvae, width=32, heads=2)
    assert (config.num_codes, config.grid_size, config.width) == (8, (4, 4), 32)
    config.check_matches(vqvae)
    with pytest.raises(ParameterError, match=r"grid_size=\(5, 4\) does not fit"):
        PriorConfig(**{**TINY, "grid_size": (5, 4)}).check_matches(vqvae)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"num_codes": 1}, "num_codes=1 for model 'prior': expected int >= 2"),
        ({"grid_size": (4,)}, r"grid_size=\(4,\)"),
        ({"grid_size": (4, 0)}, r"grid_size=\(4, 0\)"),
        ({"width": 33}, "width=33 for model 'prior': expected a positive multiple of heads=2"),
        ({"depth": 0}, "depth=0"),
        ({"heads": 0}, "heads=0"),
        ({"dropout": -0.1}, "dropout=-0.1"),
        ({"conditioned": "yes"}, "conditioned='yes'"),
    ],
)
def test_bad_config_is_refused(overrides, message):
    with pytest.raises(ParameterError, match=message):
        PriorConfig(**{**TINY, **overrides})


def test_bad_inputs_are_refused():
    model, codes = tiny(), random_codes(2)
    with pytest.raises(ParameterError, match="position=None"):
        model.logits(codes)
    with pytest.raises(ParameterError, match=r"expected \(2,\)"):
        model.logits(codes, torch.zeros(3))
    with pytest.raises(ParameterError, match=r"expected values in \[0, 1\]"):
        model.logits(codes, torch.tensor([0.5, 1.5]))
    with pytest.raises(ParameterError, match=r"expected values in \[0, 1\]"):
        model.logits(codes, torch.tensor([0.5, float("nan")]))
    with pytest.raises(ParameterError, match="unconditioned"):
        tiny(conditioned=False).logits(codes, torch.zeros(2))
    with pytest.raises(ParameterError, match=r"expected integer codes of shape \(B, 4, 4\)"):
        model.logits(codes[:, :3], torch.zeros(2))
    with pytest.raises(ParameterError, match="mask"):
        model.resample(codes, torch.ones(2, H, W), torch.zeros(2))
    with pytest.raises(ParameterError, match="temperature=0"):
        model.resample(codes, codes > 3, torch.zeros(2), temperature=0)


def test_logits_are_causal_in_raster_order():
    model = tiny()
    codes, position = random_codes(2), torch.tensor([0.3, 0.7])
    reference = model.logits(codes, position).flatten(2)
    for i in (0, 5, 10, H * W - 1):
        changed = codes.clone().flatten(1)
        changed[:, i] = (changed[:, i] + 1) % K
        logits = model.logits(changed.view_as(codes), position).flatten(2)
        assert torch.allclose(logits[:, :, : i + 1], reference[:, :, : i + 1], atol=1e-6)
        if i + 1 < H * W:
            assert not torch.allclose(logits[:, :, i + 1], reference[:, :, i + 1], atol=1e-4)


def test_position_conditioning_changes_every_logit():
    model = tiny()
    codes = random_codes(1).expand(2, H, W)
    logits = model.logits(codes, torch.tensor([0.1, 0.9]))
    assert (logits[0] - logits[1]).abs().amax(0).min() > 0


def test_nll_equals_a_naive_per_position_loop():
    model = tiny()
    codes, position = random_codes(3), torch.tensor([0.2, 0.4, 0.6])
    nll = model.nll(codes, position).flatten(1)
    flat = codes.flatten(1)
    for i in range(H * W):
        # A separate pass per position, with the codes from i on scrambled: only the
        # prefix may matter.
        probe = flat.clone()
        probe[:, i:] = random_codes(3, seed=i).flatten(1)[:, i:]
        logits = model.logits(probe.view_as(codes), position).flatten(2)[:, :, i]
        expected = F.cross_entropy(logits, flat[:, i], reduction="none")
        assert torch.allclose(nll[:, i], expected, atol=1e-5)


@pytest.mark.parametrize("conditioned", [False, True])
def test_training_loss_falls_on_structured_codes(conditioned):
    model = tiny(conditioned=conditioned).train()
    codes = diagonal_codes(32)
    position = torch.rand(32) if conditioned else None
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = model.training_loss(codes, position=position).total
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[0] > 0.9 * torch.log(torch.tensor(float(K))).item()
    # Only the first code is random: the rest of the grid is learnable.
    assert sum(losses[-5:]) / 5 < 0.4 * losses[0]


def gappy_mask(batch: int) -> torch.Tensor:
    """Masks with an untouched prefix, consecutive positions, gaps and per-row choices."""
    mask = torch.zeros(batch, H * W, dtype=torch.bool)
    mask[:, [3, 4, 9]] = True
    mask[0, 13] = True
    mask[1, 6] = True
    return mask.view(batch, H, W)


def test_resample_keeps_unmasked_codes_and_is_reproducible():
    model = tiny()
    codes, position = random_codes(4), torch.rand(4)
    mask = gappy_mask(4)
    out = model.resample(codes, mask, position, torch.Generator().manual_seed(1))
    assert out.shape == codes.shape
    assert out.dtype == torch.long
    assert torch.equal(out[~mask], codes[~mask])
    assert out.min() >= 0
    assert out.max() < K
    again = model.resample(codes, mask, position, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)
    others = [
        model.resample(codes, mask, position, torch.Generator().manual_seed(s)) for s in (2, 3)
    ]
    assert any(not torch.equal(out, other) for other in others)
    empty = torch.zeros_like(mask)
    assert torch.equal(model.resample(codes, empty, position), codes)


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_cached_resample_equals_naive_full_pass_resample(temperature):
    model = tiny()
    codes, position = random_codes(4), torch.rand(4)
    mask = gappy_mask(4)
    fast = model.resample(codes, mask, position, torch.Generator().manual_seed(7), temperature)
    naive = naive_resample(
        model, codes, mask, position, torch.Generator().manual_seed(7), temperature
    )
    assert torch.equal(fast, naive)


def test_sample_equals_naive_and_is_in_range():
    model = tiny(conditioned=False)
    samples = model.sample(3, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (3, H, W)
    assert samples.dtype == torch.long
    assert samples.min() >= 0
    assert samples.max() < K
    zeros = torch.zeros(3, H, W, dtype=torch.long)
    everything = torch.ones(3, H, W, dtype=torch.bool)
    naive = naive_resample(model, zeros, everything, None, torch.Generator().manual_seed(0))
    assert torch.equal(samples, naive)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_resample_draws_from_the_full_pass_distribution(temperature):
    model = tiny(conditioned=False)
    with torch.no_grad():
        model.head.weight.mul_(20)  # a peaked, non-uniform distribution
    n, target = 4000, 6
    codes = random_codes(1).expand(n, H, W)
    mask = torch.zeros(n, H * W, dtype=torch.bool)
    mask[:, target] = True
    mask = mask.view(n, H, W)
    out = model.resample(codes, mask, None, torch.Generator().manual_seed(0), temperature)
    empirical = torch.bincount(out.flatten(1)[:, target], minlength=K).float() / n
    logits = model.logits(codes[:1]).flatten(2)[0, :, target]
    expected = (logits / temperature).softmax(0)
    assert (empirical - expected).abs().max() < 0.03
