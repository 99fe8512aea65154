"""Tests of the VQ-VAE (seed 002): shapes, config, quantiser, codebook learning."""

from __future__ import annotations

import json

import pytest
import torch

from anomaly_maps.errors import ParameterError
from anomaly_maps.models import build_model, config_from_dict, model_presets
from anomaly_maps.models.vqvae import VQVAE, VQVAEConfig

EXACT = "donot_use_mm_for_euclid_dist"
TINY = {"size": 16, "widths": (8, 16, 16), "res_blocks": 1, "num_codes": 8, "code_dim": 8}


def tiny(**overrides) -> VQVAE:
    torch.manual_seed(0)
    return VQVAE(VQVAEConfig(**{**TINY, **overrides}))


def blobs(n: int, size: int = 16, seed: int = 0) -> torch.Tensor:
    """``(n, 1, size, size)`` synthetic slices: a bright disk of random centre and radius."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    centre = torch.randint(4, size - 4, (n, 2, 1, 1), generator=g)
    radius = torch.randint(2, 5, (n, 1, 1), generator=g)
    inside = (yy - centre[:, 0]) ** 2 + (xx - centre[:, 1]) ** 2 <= radius**2
    return (inside.float() * 2 - 1)[:, None]


def test_shapes_of_every_part():
    model = tiny().eval()
    x = blobs(3)
    z_e = model.encode(x)
    assert z_e.shape == (3, 8, 4, 4)
    assert model.grid_size == (4, 4)
    q = model.quantize(z_e)
    assert q.z_q.shape == z_e.shape
    assert q.codes.shape == (3, 4, 4)
    assert q.codes.dtype == torch.long
    assert q.commitment_loss.ndim == 0
    assert q.codebook_loss.ndim == 0
    assert torch.equal(model.codes(x), q.codes)
    assert model.decode_codes(q.codes).shape == x.shape
    assert torch.allclose(model(x), model.decode_codes(q.codes), atol=1e-4)
    assert torch.allclose(q.z_q, model.codebook[q.codes].permute(0, 3, 1, 2), atol=1e-5)


def test_quantize_picks_the_nearest_code():
    model = tiny().eval()
    z_e = torch.randn(2, 8, 4, 4)
    codes = model.quantize(z_e).codes
    vectors = z_e.permute(0, 2, 3, 1).reshape(-1, 8)
    expected = torch.cdist(vectors, model.codebook, compute_mode=EXACT).argmin(1).view(2, 4, 4)
    assert torch.equal(codes, expected)


@pytest.mark.parametrize("recon", ["l1", "l2"])
def test_reconstruction_loss_is_per_pixel(recon):
    model = tiny(recon=recon)
    x, x_hat = torch.randn(2, 1, 16, 16), torch.randn(2, 1, 16, 16)
    loss = model.reconstruction_loss(x, x_hat)
    assert loss.shape == x.shape
    expected = (x - x_hat).abs() if recon == "l1" else (x - x_hat) ** 2
    assert torch.allclose(loss, expected)


def test_config_round_trip_and_unknown_key():
    config = VQVAEConfig(**TINY, codebook="loss", recon="l2", dropout=0.1)
    data = json.loads(json.dumps(config.to_dict()))
    assert VQVAEConfig.from_dict(data) == config
    assert config_from_dict("vqvae", data) == config
    assert isinstance(build_model(config), VQVAE)
    with pytest.raises(ParameterError, match="learning_rate"):
        VQVAEConfig.from_dict({**data, "learning_rate": 1e-3})


def test_preset_matches_seed_002():
    config = model_presets("vqvae")["marimont2021"]
    assert (config.size, config.grid_size) == (160, (20, 20))
    assert config.downsamplings == 3
    assert (config.num_codes, config.code_dim, config.recon) == (128, 256, "l1")
    assert build_model(config).grid_size == (20, 20)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"num_codes": 1}, "num_codes=1 for model 'vqvae': expected int >= 2"),
        ({"code_dim": 0}, "code_dim=0"),
        ({"in_channels": 0}, "in_channels=0"),
        ({"widths": ()}, "widths=()"),
        ({"widths": (8, 0)}, r"widths=\(8, 0\)"),
        ({"size": 18}, r"size=18 for model 'vqvae': expected a positive multiple of .* = 4"),
        ({"size": 2}, "size=2"),
        ({"codebook": "kmeans"}, "codebook='kmeans'"),
        ({"recon": "l3"}, "recon='l3'"),
        ({"commitment_weight": -1.0}, "commitment_weight=-1.0"),
        ({"ema_decay": 1.0}, "ema_decay=1.0"),
        ({"ema_epsilon": 0.0}, "ema_epsilon=0.0"),
        ({"dead_code_threshold": -1}, "dead_code_threshold=-1"),
        ({"dropout": 1.0}, "dropout=1.0"),
        ({"res_blocks": 1.5}, "res_blocks=1.5"),
    ],
)
def test_bad_config_is_refused(overrides, message):
    with pytest.raises(ParameterError, match=message):
        VQVAEConfig(**{**TINY, **overrides})


def test_bad_input_shapes_are_refused():
    model = tiny()
    with pytest.raises(ParameterError, match=r"expected \(B, 1, 16, 16\)"):
        model.encode(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ParameterError, match=r"expected integer codes of shape \(B, 4, 4\)"):
        model.decode_codes(torch.zeros(2, 3, 3, dtype=torch.long))


@pytest.mark.parametrize("codebook", ["ema", "loss"])
def test_loss_falls_and_codes_stay_in_range(codebook):
    model = tiny(codebook=codebook)
    x = blobs(16)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        out = model.training_loss(x)
        optimiser.zero_grad()
        out.total.backward()
        optimiser.step()
        losses.append(out.total.item())
    assert set(out.terms) >= {"rec", "commit", "perplexity"}
    assert ("codebook" in out.terms) == (codebook == "loss")
    assert all(t.ndim == 0 and not t.requires_grad for t in out.terms.values())
    assert sum(losses[-5:]) / 5 < 0.5 * losses[0]
    codes = model.eval().codes(x)
    assert codes.min() >= 0
    assert codes.max() < 8


def test_straight_through_gradient_reaches_the_encoder():
    model = tiny(codebook="loss")
    x = blobs(4)
    z_e = model.encode(x)
    z_e.retain_grad()
    q = model.quantize(z_e)
    q.z_q.retain_grad()
    model.reconstruction_loss(x, model.decode(q.z_q)).mean().backward()
    # The reconstruction term alone (no commitment loss) reaches the encoder: the
    # gradient w.r.t. z_q is copied to z_e, and none goes to the codebook.
    assert q.z_q.grad.abs().sum() > 0
    assert torch.equal(z_e.grad, q.z_q.grad)
    assert model.encoder[0].weight.grad.abs().sum() > 0
    assert model.codebook.grad is None


def test_codebook_loss_trains_the_codebook_parameter():
    model = tiny(codebook="loss")
    assert any(p is model.codebook for p in model.parameters())
    q = model.quantize(model.encode(blobs(4)))
    q.codebook_loss.backward()
    assert model.codebook.grad.abs().sum() > 0


def test_ema_codebook_updates_in_training_mode_only():
    model = tiny(codebook="ema")
    assert all(p is not model.codebook for p in model.parameters())
    x = blobs(8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.eval()(x)
    after_eval = model.state_dict()
    for name in ("codebook", "ema_count", "ema_sum"):
        assert torch.equal(before[name], after_eval[name])
    with torch.no_grad():
        model.train()(x)
    assert not torch.equal(before["codebook"], model.codebook)
    assert not torch.equal(before["ema_count"], model.ema_count)


def test_first_ema_step_restarts_unused_codes_at_encoder_outputs():
    model = tiny(codebook="ema", dead_code_threshold=1.0)
    x = blobs(8)
    with torch.no_grad():
        z_e = model.encode(x)
        model.quantize(z_e)
    vectors = z_e.permute(0, 2, 3, 1).reshape(-1, 8)
    # Counts start at 0 < threshold: every code is restarted at some encoder output.
    assert torch.cdist(model.codebook, vectors, compute_mode=EXACT).min(1).values.max() < 1e-5


def test_ema_without_restarts_tracks_the_assigned_means():
    model = tiny(codebook="ema", dead_code_threshold=0.0, ema_decay=0.0)
    with torch.no_grad():
        z_e = model.encode(blobs(8))
        codes = model.quantize(z_e).codes.flatten()
    vectors = z_e.permute(0, 2, 3, 1).reshape(-1, 8)
    for k in codes.unique().tolist():
        expected = vectors[codes == k].mean(0)
        assert torch.allclose(model.codebook[k], expected, atol=1e-4)


def test_position_is_accepted_and_ignored():
    model = tiny().eval()
    x = blobs(2)
    with_position = model.training_loss(x, position=torch.tensor([0.2, 0.8]))
    assert torch.allclose(with_position.total, model.training_loss(x).total)


def test_cpu_inference_in_chunks_equals_one_batch(monkeypatch):
    """Chunked CPU inference runs the encoder and decoder per slice group (asserted by a
    hook) and gives the one-batch result."""
    import anomaly_maps.models.vqvae as vqvae_module

    model = tiny().eval()
    x = blobs(5)
    with torch.enable_grad():  # autograd on: one batch
        whole = (model.encode(x).detach(), model.decode_codes(model.codes(x)).detach())
    per_slice = 8 * 16 * 16 * 4
    monkeypatch.setattr(vqvae_module, "CPU_CHUNK_BYTES", 2 * per_slice)
    sizes = []
    model.encoder.register_forward_hook(lambda m, args, out: sizes.append(len(args[0])))
    with torch.no_grad():
        chunked = (model.encode(x), model.decode_codes(model.codes(x)))
    assert sizes == [2, 2, 1, 2, 2, 1]  # encode, then codes' encode
    for a, b in zip(whole, chunked, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
