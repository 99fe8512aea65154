"""Training: losses fall, runs resume exactly, DDP replicas agree, VAEs learn anatomy."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from anomaly_maps.checkpoint import load_checkpoint
from anomaly_maps.errors import AnomalyMapsError, CheckpointError
from anomaly_maps.io import Volume, load_volume
from anomaly_maps.models import PriorConfig, VAEConfig, config_from_dict
from anomaly_maps.preprocessing import PreprocessingSpec, to_slices
from anomaly_maps.samples import sample_path
from anomaly_maps.training import TrainConfig, load_slices, resume_path, split_train_val, train

from conftest import sphere

SPEC = PreprocessingSpec(axis="axial", size=16)
TINY = {
    "vae": {"size": 16, "widths": (8, 16), "latent_dim": 8},
    "cevae": {"size": 16, "widths": (8, 16), "latent_dim": 8},
    "dae": {"size": 16, "widths": (8, 16), "latent_dim": 8},
    "vqvae": {"size": 16, "widths": (8, 16), "res_blocks": 1, "num_codes": 8, "code_dim": 8},
}


def _train(paths, out, kind="vae", epochs=3, **kwargs):
    config = kwargs.pop("config", TrainConfig(epochs=epochs, batch_size=8, lr=3e-3, seed=1))
    return train(
        paths, out, model_config=config_from_dict(kind, TINY[kind]), preprocessing=SPEC,
        config=config, device="cpu", **kwargs,
    )  # fmt: skip


def test_split_holds_out_whole_volumes(healthy_paths):
    data = load_slices(healthy_paths, SPEC, min_foreground=0.05)
    train_data, val_data = split_train_val(data, 0.34, seed=0)
    assert len(train_data) + len(val_data) == len(data)
    assert set(train_data.volume.tolist()).isdisjoint(val_data.volume.tolist())
    assert len(set(val_data.volume.tolist())) == 1
    # empty slices are skipped
    assert len(data) < 3 * to_slices(load_volume(healthy_paths[0]), SPEC).geometry.n_slices


@pytest.mark.parametrize("kind", ["vae", "cevae", "dae", "vqvae"])
def test_loss_falls_and_files_are_written(tmp_path, healthy_paths, kind):
    out = tmp_path / f"{kind}.safetensors"
    result = _train(healthy_paths, out, kind, epochs=6)
    first, last = result.history[0], result.history[-1]
    assert last["train_loss"] < first["train_loss"]
    assert last["val_loss"] < first["val_loss"]
    ckpt = load_checkpoint(out)
    assert ckpt.kinds == (kind,)
    assert ckpt.preprocessing == SPEC
    assert ckpt.training["epochs_completed"] == 6
    assert ckpt.training["data"]["volumes"] == [os.path.basename(p) for p in healthy_paths]
    csv = (tmp_path / f"{kind}.metrics.csv").read_text().splitlines()
    assert csv[0].startswith("epoch,seconds,train_loss")
    assert len(csv) == 7
    assert resume_path(out).is_file()


def test_resume_continues_exactly(tmp_path, healthy_paths):
    whole = _train(healthy_paths, tmp_path / "whole.safetensors", epochs=4)
    part = tmp_path / "part.safetensors"
    _train(healthy_paths, part, epochs=2)
    resumed = _train(healthy_paths, part, epochs=4, resume=True)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]
    for a, b in zip(whole.history, resumed.history, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
    wa = load_checkpoint(tmp_path / "whole.safetensors").model.state_dict()
    wb = load_checkpoint(part).model.state_dict()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-5, atol=1e-6)


def test_existing_checkpoint_is_not_overwritten(tmp_path, healthy_paths):
    out = tmp_path / "run.safetensors"
    _train(healthy_paths, out, epochs=1)
    before = out.read_bytes()
    with pytest.raises(CheckpointError, match="--resume to continue it or --overwrite"):
        _train(healthy_paths, out, epochs=1)
    assert out.read_bytes() == before


def test_prior_trains_on_vqvae_codes(tmp_path, healthy_paths):
    vq_out = tmp_path / "vq.safetensors"
    _train(healthy_paths, vq_out, "vqvae", epochs=2)
    prior_cfg = PriorConfig.for_vqvae(load_checkpoint(vq_out).model.config, width=16, depth=1,
                                      heads=2)  # fmt: skip
    out = tmp_path / "prior.safetensors"
    result = train(
        healthy_paths, out, model_config=prior_cfg, vqvae_checkpoint=vq_out, device="cpu",
        config=TrainConfig(epochs=4, batch_size=8, lr=3e-3),
    )  # fmt: skip
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    ckpt = load_checkpoint(out)
    assert ckpt.kinds == ("vqvae", "prior")
    vq = load_checkpoint(vq_out).model.state_dict()
    for key, value in ckpt.models["vqvae"].state_dict().items():
        torch.testing.assert_close(value, vq[key])  # the VQ-VAE is copied, not trained


def test_prior_without_vqvae_is_refused(tmp_path, healthy_paths):
    with pytest.raises(AnomalyMapsError, match="--vqvae"):
        train(healthy_paths, tmp_path / "p.safetensors", model_config=PriorConfig(),
              preprocessing=SPEC)  # fmt: skip


def test_size_mismatch_is_refused(tmp_path, healthy_paths):
    with pytest.raises(AnomalyMapsError, match="differs from preprocessing size"):
        train(healthy_paths, tmp_path / "p.safetensors", preprocessing=SPEC,
              model_config=VAEConfig(size=32, widths=(8, 16), latent_dim=8))  # fmt: skip


# --------------------------------------------------------------------------- DDP


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, paths, folder: str) -> None:
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    torch.set_num_threads(1)
    result = _train(paths, os.path.join(folder, "ddp.safetensors"), epochs=2)
    state = {k: v.clone() for k, v in result.models["vae"].state_dict().items()}
    torch.save(state, os.path.join(folder, f"rank{rank}.pt"))  # test-only, our own file


def test_two_gloo_processes_hold_identical_weights(tmp_path, healthy_paths):
    mp.spawn(_ddp_worker, args=(2, _free_port(), healthy_paths, str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for key in ranks[0]:
        torch.testing.assert_close(ranks[0][key], ranks[1][key], rtol=0, atol=0)
    # rank 0 alone wrote the checkpoint; it holds those weights
    saved = load_checkpoint(tmp_path / "ddp.safetensors")
    for key, value in saved.model.state_dict().items():
        torch.testing.assert_close(value, ranks[0][key], rtol=0, atol=0)
    assert saved.training["world_size"] == 2
    # and the replicas really trained (weights moved from their initialisation)
    torch.manual_seed(1)
    fresh = config_from_dict("vae", TINY["vae"])
    from anomaly_maps.models import build_model

    init = build_model(fresh).state_dict()
    assert any(not torch.equal(init[k], ranks[0][k]) for k in init)


# --------------------------------------------------------------------------- anatomy


@pytest.fixture(scope="module")
def brain_vae(tmp_path_factory):
    """A small VAE trained on the sample brain's axial slices at 32x32."""
    out = tmp_path_factory.mktemp("brain") / "vae.safetensors"
    spec = PreprocessingSpec(axis="axial", size=32)
    cfg = VAEConfig(size=32, widths=(16, 32, 64), latent_dim=32, likelihood_scale=0.1)
    train([sample_path("brain")], out, model_config=cfg, preprocessing=spec, device="cpu",
          config=TrainConfig(epochs=25, batch_size=16, lr=1e-3, seed=0))  # fmt: skip
    return load_checkpoint(out)


def test_trained_vae_reconstructs_healthy_better_than_lesion(brain_vae):
    brain = load_volume(sample_path("brain"))
    lesioned = brain.data.astype(np.float32).copy()
    centre = (120, 150, 100)  # right hemisphere white matter, above the ventricles
    lesion = sphere(brain.shape, centre, 9)
    lesioned[lesion] = 40.0  # dark, CSF-like lesion inside bright white matter
    spec = brain_vae.preprocessing
    healthy = to_slices(brain, spec)
    sick = to_slices(Volume(lesioned, brain.affine), spec)
    k = int(np.argmin(np.abs(healthy.positions - healthy.positions[0])) + centre[2])
    x = torch.from_numpy(np.stack([healthy.images[k], sick.images[k]]))[:, None]
    model = brain_vae.model
    with torch.no_grad():
        mu, _ = model.encode(x)
        error = (model.decode(mu) - x).abs()
    lesion_px = torch.from_numpy(np.abs(sick.images[k] - healthy.images[k]) > 0.1)
    healthy_err = error[0, 0][lesion_px].mean()
    sick_err = error[1, 0][lesion_px].mean()
    assert lesion_px.sum() > 5
    assert sick_err > 2 * healthy_err
