"""Fine-tuning (``train --init``): a run starts from a checkpoint's weights, keeps its
model and slicing, records where it started, and refuses what would change the model."""

from __future__ import annotations

import re

import pytest
import torch

from anomaly_maps.checkpoint import load_checkpoint
from anomaly_maps.cli import main
from anomaly_maps.errors import CheckpointError
from anomaly_maps.models import config_from_dict
from anomaly_maps.preprocessing import PreprocessingSpec
from anomaly_maps.training import TrainConfig, train

SPEC = PreprocessingSpec(axis="axial", size=16)
VAE = {"size": 16, "widths": (8, 16), "latent_dim": 8}


def _train(paths, out, epochs=1, lr=3e-3, model=VAE, **kwargs):
    return train(
        paths, out, model_config=config_from_dict("vae", model), preprocessing=SPEC,
        config=TrainConfig(epochs=epochs, batch_size=8, lr=lr, seed=1), device="cpu", **kwargs,
    )  # fmt: skip


@pytest.fixture(scope="module")
def pretrained(healthy_paths, tmp_path_factory):
    out = tmp_path_factory.mktemp("init") / "base.safetensors"
    _train(healthy_paths, out, epochs=6)
    return out


def test_fine_tuning_starts_where_the_checkpoint_ended(tmp_path, healthy_paths, pretrained):
    base = load_checkpoint(pretrained)
    scratch = _train(healthy_paths, tmp_path / "scratch.safetensors")
    tuned = _train(healthy_paths, tmp_path / "tuned.safetensors", lr=1e-12, init=pretrained)
    # a vanishing learning rate leaves the weights where the checkpoint had them ...
    for key, value in base.model.state_dict().items():
        torch.testing.assert_close(tuned.models["vae"].state_dict()[key], value)
    # ... which fit the data far better than a fresh start's first epoch
    assert tuned.history[0]["val_loss"] < 0.9 * scratch.history[0]["val_loss"]
    record = load_checkpoint(tmp_path / "tuned.safetensors").records.training
    assert record.started_from["file"] == "base.safetensors"
    assert record.started_from["training"]["epochs_completed"] == 6
    assert record.epochs_completed == 1
    assert ("fine-tuned from", "base.safetensors") in record.card_rows()
    assert load_checkpoint(tmp_path / "scratch.safetensors").records.training.started_from is None


def test_a_resumed_fine_tuning_keeps_its_record(tmp_path, healthy_paths, pretrained):
    out = tmp_path / "tuned.safetensors"
    _train(healthy_paths, out, epochs=1, init=pretrained)
    _train(healthy_paths, out, epochs=2, resume=True)
    record = load_checkpoint(out).records.training
    assert record.epochs_completed == 2
    assert record.started_from["file"] == "base.safetensors"


def test_another_model_is_refused_naming_what_differs(tmp_path, healthy_paths, pretrained):
    wider = {**VAE, "latent_dim": 16}
    with pytest.raises(CheckpointError, match=r"differs in \['latent_dim'\]"):
        _train(healthy_paths, tmp_path / "x.safetensors", model=wider, init=pretrained)
    assert not (tmp_path / "x.safetensors").exists()


def _cli_train(paths, out, *extra):
    return ["train", "--model", "vae", "--data", *paths, "--out", str(out), "--epochs", "1",
            "--batch-size", "8", "--device", "cpu", *extra]  # fmt: skip


def test_cli_fine_tunes_with_the_checkpoint_recipe(tmp_path, healthy_paths, pretrained, capsys):
    out = tmp_path / "tuned.safetensors"
    argv = _cli_train(healthy_paths, out, "--init", str(pretrained), "--augment", "sharpen=0.5")
    assert main(argv) == 0, capsys.readouterr().err
    tuned, base = load_checkpoint(out), load_checkpoint(pretrained)
    assert tuned.model.config == base.model.config
    assert tuned.preprocessing == base.preprocessing
    assert tuned.records.training.augment["sharpen"] == 0.5
    assert tuned.records.training.started_from["file"] == "base.safetensors"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "latent_dim=16"], "--set latent_dim would change the model it starts"),
        (["--size", "32", "--normalization", "zscore"], "--size, --normalization would change"),
        (["--axis", "coronal"], "--axis coronal: --init .* slices axial"),
    ],
)
def test_cli_refuses_options_that_change_the_model(
    tmp_path, healthy_paths, pretrained, capsys, extra, message
):
    out = tmp_path / "x.safetensors"
    assert main(_cli_train(healthy_paths, out, "--init", str(pretrained), *extra)) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert re.search(message, err), err
    assert not out.exists()


def test_cli_fine_tunes_a_restoration_model_with_other_corruptions(
    tmp_path, healthy_paths, capsys
):
    base, tuned = tmp_path / "base.safetensors", tmp_path / "tuned.safetensors"
    model = ["--model", "restoration", "--set", "size=16", "widths=[8,16]", "corruption=mix"]
    argv = _cli_train(healthy_paths, base)
    argv[argv.index("--model") : argv.index("--model") + 2] = model
    assert main(argv) == 0, capsys.readouterr().err
    argv = _cli_train(healthy_paths, tuned, "--init", str(base), "--set",
                      'local_changes=["noise","warp"]', "own_patch=0.5")  # fmt: skip
    argv[argv.index("vae")] = "restoration"
    assert main(argv) == 0, capsys.readouterr().err
    before, after = load_checkpoint(base).model.config, load_checkpoint(tuned).model.config
    assert after.local_changes == ("noise", "warp") and after.own_patch == 0.5
    assert (after.size, after.widths, after.corruption) == (before.size, before.widths, "mix")
    argv[argv.index("own_patch=0.5")] = "widths=[8,32]"
    assert main(argv) == 2
    assert "--set widths would change the model" in capsys.readouterr().err


def test_cli_refuses_a_checkpoint_of_another_kind(tmp_path, healthy_paths, pretrained, capsys):
    argv = _cli_train(healthy_paths, tmp_path / "x.safetensors", "--init", str(pretrained))
    argv[argv.index("vae")] = "dae"
    assert main(argv) == 2
    assert "holds vae: expected a dae model (--model)" in capsys.readouterr().err


def test_cli_fine_tunes_a_prior_on_its_vqvae_codes(tmp_path, healthy_paths, capsys):
    vq, prior, tuned = (tmp_path / f"{n}.safetensors" for n in ("vq", "prior", "tuned"))
    common = ["--data", *healthy_paths, "--epochs", "1", "--batch-size", "8", "--device", "cpu"]
    steps = [
        ["train", "--model", "vqvae", "--out", str(vq), "--size", "16",
         "--set", "widths=[8,16]", "res_blocks=1", "num_codes=8", "code_dim=8", *common],
        ["train", "--model", "prior", "--vqvae", str(vq), "--out", str(prior),
         "--set", "width=16", "depth=1", "heads=2", *common],
        ["train", "--model", "prior", "--vqvae", str(vq), "--init", str(prior),
         "--out", str(tuned), *common],
    ]  # fmt: skip
    for argv in steps:
        assert main(argv) == 0, capsys.readouterr().err
    ckpt = load_checkpoint(tuned)
    assert ckpt.kinds == ("vqvae", "prior")
    assert ckpt.models["prior"].config == load_checkpoint(prior).models["prior"].config
    assert ckpt.records.training.started_from["file"] == "prior.safetensors"
