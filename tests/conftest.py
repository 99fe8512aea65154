"""Shared fixtures: small NIfTI scans with awkward geometry, written to tmp folders."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from anomaly_maps.io import Volume, save_volume
from anomaly_maps.models import (
    CeVAEConfig,
    DAEConfig,
    PriorConfig,
    RestorationConfig,
    RestorationEnsembleConfig,
    VAEConfig,
    VQVAEConfig,
    build_model,
)


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny test models gain nothing from intra-op threads; on a busy 2-core runner they
    only fight over the cores (measured: 3-5x slower model tests with 2 threads)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def oblique_affine(zooms=(0.9, 1.3, 2.7), angles=(20, -10, 35), origin=(12.0, -40.0, 7.5)):
    """An oblique, anisotropic voxel->world affine."""
    rot = Rotation.from_euler("xyz", angles, degrees=True).as_matrix()
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag(zooms)
    affine[:3, 3] = origin
    return affine


def sphere(shape, center, radius) -> np.ndarray:
    grid = np.indices(shape).astype(np.float32)
    dist2 = sum((g - c) ** 2 for g, c in zip(grid, center, strict=True))
    return dist2 <= radius**2


@pytest.fixture(scope="session")
def tiny_volume() -> Volume:
    """~32x32x16 'head': bright ellipsoid, dark core (ventricle), a sphere lesion; oblique."""
    shape = (31, 33, 17)
    grid = np.indices(shape).astype(np.float32)
    center = (np.asarray(shape) - 1) / 2
    r = np.sqrt(
        sum(((g - c) / (s * 0.42)) ** 2 for g, c, s in zip(grid, center, shape, strict=False))
    )
    rng = np.random.default_rng(0)
    data = np.where(r < 1, 100 + 20 * np.cos(3 * r), 0).astype(np.float32)
    data[r < 0.25] = 30  # ventricle: dark but enclosed, must stay foreground
    data[sphere(shape, (20, 12, 9), 3)] = 180  # lesion
    data += np.where(r < 1, rng.normal(0, 2, shape), 0).astype(np.float32)
    return Volume(data, oblique_affine(), Path("tiny_head.nii.gz"))


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray, *, qcode=1, scode=2) -> Path:
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=qcode)
    img.set_sform(affine, code=scode)
    nib.save(img, path)
    return path


@pytest.fixture
def tiny_nifti(tmp_path, tiny_volume) -> Path:
    """tiny_volume written as .nii.gz with distinct qform (1) and sform (2) codes."""
    return write_nifti(tmp_path / "tiny_head.nii.gz", tiny_volume.data, tiny_volume.affine)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_volume) -> Path:
    """A 16x16 axial VAE trained for two epochs on the tiny head (and saved)."""
    from anomaly_maps.io import save_volume
    from anomaly_maps.preprocessing import PreprocessingSpec
    from anomaly_maps.training import TrainConfig, train

    folder = tmp_path_factory.mktemp("tiny_checkpoint")
    scan = save_volume(tiny_volume, folder / "head.nii.gz")
    out = folder / "vae.safetensors"
    train(
        [scan],
        out,
        model_config=VAEConfig(size=16, widths=(8, 16), latent_dim=8, likelihood_scale=0.2),
        preprocessing=PreprocessingSpec(axis="axial", size=16),
        config=TrainConfig(epochs=2, batch_size=8, lr=3e-3, val_fraction=0.0),
        device="cpu",
    )
    return out


# --------------------------------------------------------------------- scorer models

SIZE = 16  # in-plane size of the scorer tests' models and slices


def _model(config, seed: int):
    torch.manual_seed(seed)
    model = build_model(config).eval()
    with torch.no_grad():  # move weights off their initialisation so outputs are not trivial
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    return model


@pytest.fixture(scope="session")
def tiny_models() -> dict[str, dict[str, torch.nn.Module]]:
    """Checkpoint-like model dicts by kind: vae, cevae, dae, vqvae+prior, restoration,
    restoration_ensemble (a 16x16 and an 8x8 member)."""
    conv = {"size": SIZE, "widths": (8, 16), "latent_dim": 8}
    vq_cfg = VQVAEConfig(size=SIZE, widths=(8, 16), res_blocks=1, num_codes=8, code_dim=8)
    vq = _model(vq_cfg, 3)
    prior = _model(PriorConfig.for_vqvae(vq_cfg, width=16, depth=1, heads=2), 4)
    halves = (
        RestorationConfig(size=SIZE, widths=(8, 16)),
        RestorationConfig(size=8, widths=(8, 16)),
    )
    ensemble = RestorationEnsembleConfig(members=halves, scales=(0.5, 0.3))
    return {
        "vae": {"vae": _model(VAEConfig(**conv, likelihood_scale=0.2), 0)},
        "cevae": {"cevae": _model(CeVAEConfig(**conv, likelihood_scale=0.2), 1)},
        "dae": {"dae": _model(DAEConfig(**conv), 2)},
        "vqvae+prior": {"vqvae": vq, "prior": prior},
        "restoration": {"restoration": _model(RestorationConfig(size=SIZE, widths=(8, 16)), 5)},
        "restoration_ensemble": {"restoration_ensemble": _model(ensemble, 6)},
    }


@pytest.fixture(scope="session")
def tiny_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """(x, position): 3 smooth slices in [0, 1] of shape (3, 1, 16, 16) and positions (3,)."""
    g = torch.Generator().manual_seed(0)
    axis = torch.linspace(-1, 1, SIZE)
    r2 = axis[:, None] ** 2 + axis[None, :] ** 2
    x = torch.stack([torch.exp(-r2 / (0.2 + 0.2 * i)) for i in range(3)])[:, None]
    x = (x + 0.05 * torch.rand(x.shape, generator=g)).clamp(0, 1)
    return x, torch.tensor([0.2, 0.5, 0.8])


@pytest.fixture(scope="module")
def healthy_paths(tmp_path_factory, tiny_volume) -> list[str]:
    """Three 'subjects': the tiny head with different intensity scalings and noise."""
    folder = tmp_path_factory.mktemp("healthy")
    rng = np.random.default_rng(5)
    paths = []
    for i in range(3):
        data = tiny_volume.data * (0.8 + 0.2 * i) + rng.normal(0, 1, tiny_volume.shape) * (
            tiny_volume.data > 0
        )
        paths.append(str(save_volume(tiny_volume.with_data(data.astype(np.float32)),
                                     folder / f"subject{i}.nii.gz")))  # fmt: skip
    return paths
