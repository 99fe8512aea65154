"""Tests of the restoration scorers ``disyre`` and ``fpi`` (DISYRE; FPI)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anomaly_maps.checkpoint import Checkpoint
from anomaly_maps.errors import ParameterError, ScorerError
from anomaly_maps.models import RestorationConfig, SliceGenerators, build_model
from anomaly_maps.preprocessing import PreprocessingSpec
from anomaly_maps.scoring import get_scorer, list_scorers, score_volume
from anomaly_maps.scoring.disyre import step_levels


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    model = build_model(RestorationConfig(size=16, widths=(8, 16))).eval()
    with torch.no_grad():  # off the identity initialisation, so maps are not trivial
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return {"restoration": model}


def _run(fn, models, x, params):
    with torch.no_grad():
        generator = SliceGenerators.seeded(7, range(len(x)))
        return fn(models, x, position=torch.zeros(len(x)), generator=generator, **params)


CASES = [
    ("disyre", {}),
    ("disyre", {"n_steps": 3, "start": 0.6}),
    ("disyre", {"n_steps": 4, "multi_step": False}),
    ("fpi", {}),
]


@pytest.mark.parametrize(("name", "params"), CASES)
def test_batched_equals_reference(models, tiny_batch, name, params):
    x, _ = tiny_batch
    info = get_scorer(name)
    params = info.resolve_params(params)
    sizes: list[int] = []
    hook = models["restoration"].stem.register_forward_hook(
        lambda m, i, o: sizes.append(i[0].shape[0])
    )
    try:
        reference = _run(info.reference, models, x, params)
    finally:
        hook.remove()
    batched = _run(info.fn, models, x, params)
    assert set(sizes) == {1}  # the reference runs one slice at a time
    assert batched.pixel.shape == (3, 16, 16)
    assert bool(batched.pixel.abs().sum() > 0)
    torch.testing.assert_close(batched.pixel, reference.pixel, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(batched.slice_score, reference.slice_score, rtol=1e-5, atol=1e-6)


def test_single_steps_are_the_mean_restoration_error(models, tiny_batch):
    """multi_step=false: mean over levels of |x - P(x, a)|, written out directly."""
    x, _ = tiny_batch
    model = models["restoration"]
    levels = [1.0, 2 / 3, 1 / 3]
    with torch.no_grad():
        expected = sum((x - model(x, torch.full((3,), a))[0]).abs()[:, 0] for a in levels) / 3
    params = {"n_steps": 3, "start": 1.0, "multi_step": False}
    result = _run(get_scorer("disyre").fn, models, x, params)
    torch.testing.assert_close(result.pixel, expected)


def test_multi_step_moves_towards_each_restoration(models, tiny_batch):
    """Two cold-diffusion steps from level 1: x_1 = x + (1 - 0.5 / 1) (P(x, 1) - x)."""
    x, _ = tiny_batch
    model = models["restoration"]
    with torch.no_grad():
        first = model(x, torch.ones(3))[0]
        x1 = x + 0.5 * (first - x)
        second = model(x1, torch.full((3,), 0.5))[0]
    expected = ((x - first).abs() + (x1 - second).abs())[:, 0] / 2
    params = {"n_steps": 2, "start": 1.0, "multi_step": True}
    result = _run(get_scorer("disyre").fn, models, x, params)
    torch.testing.assert_close(result.pixel, expected)
    assert step_levels(2, 1.0) == [1.0, 0.5, 0.0]


def test_fpi_map_is_the_unconditioned_alpha(models, tiny_batch):
    x, _ = tiny_batch
    with torch.no_grad():
        expected = torch.sigmoid(models["restoration"](x)[1])[:, 0]
    result = _run(get_scorer("fpi").fn, models, x, {})
    torch.testing.assert_close(result.pixel, expected)
    assert bool(((result.pixel > 0) & (result.pixel < 1)).all())


def test_registered_for_restoration_checkpoints_only():
    assert list_scorers(["restoration"]) == ["disyre", "fpi"]
    assert not {"disyre", "fpi"} & set(list_scorers(["vae"]))
    with pytest.raises(ScorerError, match="restoration"):
        get_scorer("disyre").check_fits(["vae"])


@pytest.mark.parametrize(
    "params", [{"n_steps": 0}, {"n_steps": 101}, {"start": 0.0}, {"start": 1.5}, {"sigma": 1}]
)
def test_params_out_of_range_rejected(params):
    with pytest.raises(ParameterError):
        get_scorer("disyre").resolve_params(params)


def test_maps_on_the_scan_grid(models, tiny_volume):
    checkpoint = Checkpoint(path=None, models=models, preprocessing=PreprocessingSpec(size=16))
    batched = score_volume(tiny_volume, checkpoint, [("disyre", {"n_steps": 2}), ("fpi", {})])
    reference = score_volume(
        tiny_volume, checkpoint, [("disyre", {"n_steps": 2}), ("fpi", {})], reference=True
    )
    for a, b in zip(batched, reference, strict=True):
        assert a.map.shape == tiny_volume.shape
        np.testing.assert_allclose(a.map, b.map, rtol=1e-4, atol=1e-6)
