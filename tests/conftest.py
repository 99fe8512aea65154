"""Shared fixtures: small NIfTI scans with awkward geometry, written to tmp folders."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from anomaly_maps.io import Volume


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny test models gain nothing from intra-op threads; on a busy 2-core runner they
    only fight over the cores (measured: 3-5x slower model tests with 2 threads)."""
    import torch

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
