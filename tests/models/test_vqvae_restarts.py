"""Dead-code restarts of the VQ-VAE codebook (Jukebox) and its usage metrics (issue 15)."""

from __future__ import annotations

import os

import pytest
import torch
import torch.multiprocessing as mp
from safetensors import safe_open
from safetensors.torch import save_file
from test_vqvae import blobs

from anomaly_maps.checkpoint import load_checkpoint, save_checkpoint
from anomaly_maps.io import load_volume
from anomaly_maps.models.codebook import code_usage, restart_dead_codes
from anomaly_maps.models.vqvae import VQVAE, VQVAEConfig
from anomaly_maps.preprocessing import PreprocessingSpec
from anomaly_maps.samples import sample_path
from anomaly_maps.scoring.pipeline import prepare_volume

TINY = {"size": 16, "widths": (8, 16, 16), "res_blocks": 1, "num_codes": 32, "code_dim": 8}


def test_code_usage_matches_a_hand_computation():
    usage = code_usage(torch.tensor([[0, 0], [1, 2]]), num_codes=4)
    # frequencies 1/2, 1/4, 1/4, 0: entropy 1.5 ln 2, perplexity 2 ** 1.5; 3 of 4 codes used
    assert usage["perplexity"].item() == pytest.approx(2**1.5, rel=1e-6)
    assert usage["codes_used"].item() == pytest.approx(0.75)
    one = code_usage(torch.zeros(5, dtype=torch.long), num_codes=4)
    assert (one["perplexity"].item(), one["codes_used"].item()) == (pytest.approx(1.0), 0.25)


def test_training_terms_report_the_batch_usage():
    torch.manual_seed(0)
    model = VQVAE(VQVAEConfig(**TINY)).eval()
    x = blobs(4)
    terms = model.training_loss(x).terms
    expected = code_usage(model.codes(x), 32)
    for key in ("perplexity", "codes_used"):
        assert terms[key].item() == pytest.approx(expected[key].item())


def _usage_after_training(codebook: str, threshold: float, steps: int = 6) -> float:
    torch.manual_seed(0)
    model = VQVAE(VQVAEConfig(**TINY, codebook=codebook, dead_code_threshold=threshold))
    x = blobs(16)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        loss = model.training_loss(x).total
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        return code_usage(model.eval().codes(x), 32)["perplexity"].item()


@pytest.mark.parametrize("codebook", ["loss", "ema"])
def test_restarts_keep_more_codes_in_use(codebook):
    off = _usage_after_training(codebook, 0.0)
    on = _usage_after_training(codebook, 1.0)
    assert on > 1.5 * off, (off, on)


def test_restart_moves_only_dead_codes_onto_encoder_outputs():
    torch.manual_seed(0)
    codebook = torch.randn(6, 3)
    count = torch.tensor([5.0, 0.2, 3.0, 0.0, 0.99, 1.0])
    flat = torch.randn(10, 3) + 10
    before = codebook.clone()
    restart_dead_codes(codebook, count, None, flat, threshold=1.0)
    dead = torch.tensor([False, True, False, True, True, False])
    assert torch.equal(codebook[~dead], before[~dead])
    assert torch.cdist(codebook[dead], flat).min(1).values.max() < 1e-6
    assert torch.equal(count, torch.tensor([5.0, 1.0, 3.0, 1.0, 1.0, 1.0]))


def _old_loss_checkpoint(tmp_path) -> tuple[VQVAE, str]:
    """A ``codebook="loss"`` checkpoint as written before the usage buffer existed."""
    torch.manual_seed(0)
    model = VQVAE(VQVAEConfig(**TINY, codebook="loss"))
    path = save_checkpoint(
        tmp_path / "new.safetensors", {"vqvae": model}, preprocessing=PreprocessingSpec(size=16)
    )
    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys() if k != "vqvae.ema_count"}  # noqa: SIM118
        metadata = f.metadata()
    old = tmp_path / "old.safetensors"
    save_file(tensors, str(old), metadata=metadata)
    return model, str(old)


def test_old_loss_codebook_checkpoints_still_load(tmp_path):
    model, old = _old_loss_checkpoint(tmp_path)
    loaded = load_checkpoint(old).models["vqvae"]
    assert torch.equal(loaded.codebook, model.codebook)
    # no usage record: every code starts just alive, so nothing restarts at once
    assert torch.equal(loaded.ema_count, torch.ones(32))
    # and a new checkpoint keeps the counts
    loaded.ema_count.fill_(3.0)
    again = save_checkpoint(
        tmp_path / "again.safetensors", {"vqvae": loaded}, preprocessing=PreprocessingSpec(size=16)
    )
    assert torch.equal(load_checkpoint(again).models["vqvae"].ema_count, torch.full((32,), 3.0))


@pytest.mark.parametrize("name", ["vae", "cevae"])
def test_bundled_checkpoints_still_load(name):
    assert load_checkpoint(sample_path(name)).kinds == (name,)


def test_bundled_vqvae_has_not_collapsed():
    """The bundled VQ-VAE (scripts/seed002_ranking.sh) spreads the demo scan's slices over
    most of its codebook: measured 0.99 of 128 codes, perplexity 88; the collapsed model of
    earlier versions used 5 codes."""
    checkpoint = load_checkpoint(sample_path("vqvae"))
    assert checkpoint.kinds == ("vqvae", "prior")
    slices = prepare_volume(load_volume(sample_path("demo_scan")), checkpoint.preprocessing)
    with torch.no_grad():
        codes = checkpoint.models["vqvae"].codes(slices.slices.images)
    usage = code_usage(codes, checkpoint.models["vqvae"].config.num_codes)
    assert usage["codes_used"].item() > 0.5
    assert usage["perplexity"].item() > 20


def _restart_worker(rank: int, port: int, folder: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2)
    try:
        torch.manual_seed(rank)  # as training does: every rank draws differently
        codebook, count = torch.zeros(8, 4), torch.tensor([0.0, 2.0] * 4)
        restart_dead_codes(codebook, count, None, torch.randn(20, 4) + 10 * rank, 1.0)
        torch.save(codebook, os.path.join(folder, f"rank{rank}.pt"))  # test-only
    finally:
        torch.distributed.destroy_process_group()


def test_restarts_agree_across_ranks(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_restart_worker, args=(port, str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert torch.equal(ranks[0], ranks[1])
    restarted, alive = ranks[0][0::2], ranks[0][1::2]
    assert torch.equal(alive, torch.zeros_like(alive))
    # rank 0's candidates (near 0), not rank 1's (near 10), on both ranks
    assert 0 < restarted.abs().max() < 6
