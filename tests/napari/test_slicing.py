"""The preview of one slice draws what the volume run draws for it (no Qt needed)."""

from __future__ import annotations

import numpy as np
import pytest

from anomaly_maps.checkpoint import Checkpoint
from anomaly_maps.napari._slicing import ModelSlicing, score_model_slice
from anomaly_maps.preprocessing import PreprocessingSpec, to_slices
from anomaly_maps.scoring import score_volume

LAMBDA = 2.05  # about the median code NLL of the tiny prior: about half the codes redrawn

STOCHASTIC = [
    ("vae", "sample_std", {"n_samples": 3}),
    ("cevae", "kl_grad", {"n_smooth": 2, "noise": 0.1}),
    ("vqvae+prior", "latent_restoration", {"lambda_p": LAMBDA, "n_restorations": 3}),
    ("vae", "iwae", {"n_samples": 3}),  # slice scores only
    # smoothed across slices by the pipeline: the preview reads the neighbouring slices
    ("restoration", "fpi", {"through": 1.5}),
    ("restoration", "disyre", {"n_steps": 2, "through": 0.7}),
]
#: A scorer ticked before it, drawing noise of its own.
OTHER = {
    "vae": ("elbo", {}),
    "cevae": ("sample_std", {}),
    "vqvae+prior": ("latent_restoration", {"lambda_p": LAMBDA, "n_restorations": 2}),
    "restoration": ("disyre", {"n_steps": 1}),
}


@pytest.fixture(scope="module")
def checkpoints(tiny_models):
    spec = PreprocessingSpec(axis="axial", size=16)
    return {kind: Checkpoint(None, models, spec) for kind, models in tiny_models.items()}


@pytest.mark.parametrize(("kind", "name", "params"), STOCHASTIC, ids=[s[1] for s in STOCHASTIC])
def test_preview_equals_that_slice_of_the_volume_run(checkpoints, tiny_volume, kind, name, params):
    checkpoint = checkpoints[kind]
    [volume] = score_volume(tiny_volume, checkpoint, [(name, params)], batch_size=4, seed=3)
    stack = to_slices(tiny_volume, checkpoint.preprocessing)
    slicing = ModelSlicing.from_geometry(stack.geometry)
    scored = np.flatnonzero(volume.scored)
    for index in (scored[1], scored[len(scored) // 2], scored[-1]):
        file_index = slicing.file_index(int(index))
        [preview] = score_model_slice(
            stack, checkpoint, [(name, params)], file_index, device="cpu", seed=3
        )
        assert preview.slice_score == pytest.approx(volume.slice_scores[index], rel=1e-5)
        if volume.map is None:
            assert preview.plane is None
        else:
            expected = np.take(volume.map, file_index, axis=slicing.file_axis)
            np.testing.assert_allclose(preview.plane, expected, rtol=1e-4, atol=1e-6)
            assert preview.plane.any()


@pytest.mark.parametrize(("kind", "name", "params"), STOCHASTIC, ids=[s[1] for s in STOCHASTIC])
def test_preview_does_not_depend_on_the_other_scorers(
    checkpoints, tiny_volume, kind, name, params
):
    checkpoint = checkpoints[kind]
    stack = to_slices(tiny_volume, checkpoint.preprocessing)
    file_index = ModelSlicing.from_geometry(stack.geometry).n_slices // 2
    [alone] = score_model_slice(stack, checkpoint, [(name, params)], file_index, seed=3)
    _, together = score_model_slice(
        stack, checkpoint, [OTHER[kind], (name, params)], file_index, seed=3
    )
    assert together.slice_score == alone.slice_score
    if alone.plane is not None:
        np.testing.assert_array_equal(together.plane, alone.plane)
