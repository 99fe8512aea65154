"""Tests of the self-supervised restoration model (DISYRE / FPI) and its corruptions."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys

import numpy as np
import pytest
import torch

from anomaly_maps.checkpoint import load_checkpoint, save_checkpoint
from anomaly_maps.errors import ParameterError
from anomaly_maps.models import (
    Restoration,
    RestorationConfig,
    SliceGenerators,
    build_model,
    model_presets,
)
from anomaly_maps.models import corruptions as corruptions_module
from anomaly_maps.models import restoration as restoration_module
from anomaly_maps.models.corruptions import (
    _blurred,
    _local_changes,
    _warped,
    _zoomed,
    corrupt,
    foreign_patches,
    shape_masks,
    thick_slices,
)
from anomaly_maps.models.draws import uniform
from anomaly_maps.preprocessing import PreprocessingSpec
from anomaly_maps.scoring import get_scorer

SIDE = 32


def striped_heads(n: int, generator: torch.Generator) -> torch.Tensor:
    """``(n, 1, 32, 32)`` ellipses of stripes with a random orientation and frequency:
    a foreign patch from another slice breaks the local pattern."""
    axis = torch.linspace(-1, 1, SIDE)
    r, c = torch.meshgrid(axis, axis, indexing="ij")
    u = torch.rand(n, 3, generator=generator)[:, :, None, None]
    angle = u[:, 0] * torch.pi
    phase = (3 + 3 * u[:, 1]) * torch.pi * (torch.cos(angle) * r + torch.sin(angle) * c)
    inside = (r / (0.75 + 0.15 * u[:, 2])) ** 2 + (c / 0.85) ** 2 < 1
    return ((0.5 + 0.25 * torch.sin(phase)) * inside)[:, None]


@pytest.fixture(scope="module")
def trained() -> Restoration:
    """A tiny restoration model after 120 Adam steps on striped heads (a few seconds)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    config = RestorationConfig(
        size=SIDE,
        widths=(8, 16, 32),
        corruption="fpi",
        shape_radius=(0.15, 0.3),
        thick_prob=0.0,
        alpha_weight=1.0,
    )
    model = Restoration(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(120):
        loss = model.corruption_loss(model.corrupt(striped_heads(16, g), g), g).total
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.mark.parametrize("scorer", ["disyre", "fpi"])
def test_trained_model_maps_the_corrupted_region(trained, scorer):
    """Measured, not assumed: the map is > 2x higher inside a fresh corruption than on
    the rest of the foreground (held-out slices, shapes and patches)."""
    g = torch.Generator().manual_seed(123)
    x = striped_heads(8, g)
    sample = corrupt(x, g, radius=(0.2, 0.3), level_range=(0.9, 1.0))
    info = get_scorer(scorer)
    result = info(
        {"restoration": trained},
        sample.corrupted,
        position=torch.zeros(8),
        generator=SliceGenerators.seeded(0, range(8)),
        **info.resolve_params({}),
    )
    inside = sample.alpha_map[:, 0] > 0.5
    outside = (x[:, 0] > 0) & (sample.alpha_map[:, 0] < 0.01)
    ratio = result.pixel[inside].mean() / result.pixel[outside].mean()
    assert ratio > 2.0, f"{scorer}: inside/outside = {ratio:.2f}"


def test_training_lowers_both_losses(trained):
    g = torch.Generator().manual_seed(5)
    fresh = Restoration(trained.config).eval()
    sample = trained.corrupt(striped_heads(8, g), g)
    with torch.no_grad():
        before = fresh.corruption_loss(sample, torch.Generator().manual_seed(0)).terms
        after = trained.corruption_loss(sample, torch.Generator().manual_seed(0)).terms
    assert after["mse"] < before["mse"] and after["bce"] < before["bce"]


def test_checkpoint_round_trip(tmp_path, trained):
    path = save_checkpoint(
        tmp_path / "restoration.safetensors",
        {"restoration": trained},
        preprocessing=PreprocessingSpec(size=SIDE),
    )
    loaded = load_checkpoint(path)
    assert loaded.kinds == ("restoration",)
    model = loaded.models["restoration"]
    assert model.config == trained.config
    x = striped_heads(2, torch.Generator().manual_seed(1))
    level = torch.tensor([1.0, 0.3])
    with torch.no_grad():
        for a, b in zip(model(x, level), trained(x, level), strict=True):
            torch.testing.assert_close(a, b)


def test_presets_build_and_validate():
    for name, config in model_presets("restoration").items():
        assert build_model(config).config == config, name
    with pytest.raises(ParameterError, match="size"):
        RestorationConfig(size=30, widths=(8, 16, 32))
    with pytest.raises(ParameterError, match="corruption"):
        RestorationConfig(corruption="spheres")
    with pytest.raises(ParameterError, match="shape_radius"):
        RestorationConfig(shape_radius=(0.0, 0.2))  # a shape of radius 0 divides by 0
    with pytest.raises(ParameterError, match="level_range"):
        RestorationConfig(level_range=(0.5, 0.2))
    with pytest.raises(ParameterError, match="own_patch"):
        RestorationConfig(own_patch=1.5)
    with pytest.raises(ParameterError, match="expected float slices"):
        Restoration(RestorationConfig(size=16, widths=(8, 16)))(torch.rand(1, 1, 32, 32))


def test_unknown_level_differs_from_a_known_one(trained):
    x = striped_heads(2, torch.Generator().manual_seed(2))
    with torch.no_grad():
        unknown = trained(x)[0]
        assert torch.equal(unknown, trained(x, torch.full((2,), float("nan")))[0])
        assert not torch.allclose(unknown, trained(x, torch.ones(2))[0])


# ------------------------------------------------------------------ corruptions


@pytest.mark.parametrize("mode", ["fpi", "dag", "mix"])
def test_corruption_follows_the_forward_process(mode):
    x = striped_heads(6, torch.Generator().manual_seed(3))
    first = corrupt(x, torch.Generator().manual_seed(9), mode=mode, thick_prob=0.5)
    again = corrupt(x, torch.Generator().manual_seed(9), mode=mode, thick_prob=0.5)
    torch.testing.assert_close(first.corrupted, again.corrupted, rtol=0, atol=0)
    background = first.clean.flatten(1).amin(1)[:, None, None, None] >= first.clean
    assert bool((first.alpha_map[background] == 0).all())  # nothing in the background
    assert bool(((first.alpha_map >= 0) & (first.alpha_map <= 1)).all())
    assert bool(((first.level >= 0) & (first.level <= 1)).all())
    untouched = first.alpha_map == 0
    torch.testing.assert_close(first.corrupted[untouched], first.clean[untouched])
    assert bool((first.alpha_map.flatten(1).amax(1) > 0).all())


def test_fpi_blend_is_the_disyre_interpolation():
    """x_t = (1 - alpha m) x_0 + alpha m x_fp with the patch drawn from the same numbers."""
    x = striped_heads(4, torch.Generator().manual_seed(4))
    sample = corrupt(x, torch.Generator().manual_seed(1), mode="fpi")
    g = torch.Generator().manual_seed(1)
    shape = shape_masks(4, SIDE, g) * (x > 0)
    level = torch.rand(4, generator=g)
    patch = foreign_patches(x, g)
    a = level[:, None, None, None] * shape
    torch.testing.assert_close(sample.alpha_map, a)
    torch.testing.assert_close(sample.corrupted, (1 - a) * x + a * patch)


def test_mix_gives_half_the_slices_a_local_texture_or_warp_change():
    x = striped_heads(600, torch.Generator().manual_seed(5))
    shape = shape_masks(600, SIDE, torch.Generator().manual_seed(6)) * (x > 0)
    level = torch.full((600,), 0.8)
    changes, kind = _local_changes(x, shape, level, x > 0, torch.Generator().manual_seed(7))
    share = torch.bincount(kind, minlength=4).float() / 600
    torch.testing.assert_close(share, torch.tensor([0.5, 1 / 6, 1 / 6, 1 / 6]), atol=0.05, rtol=0)
    inside, outside = shape > 0.5, shape == 0
    noisy, blurred, warped = changes
    for changed in (noisy, blurred, warped):
        assert bool((changed[outside] == x[outside]).all())
        assert float((changed - x)[inside].abs().mean()) > 0.02
    texture = (noisy - x)[inside]  # zero-mean noise, not a shift of the intensity
    assert abs(float(texture.mean())) < 0.1 * float(texture.std())
    rough = lambda v: (v.diff(dim=-1).abs() * inside[..., 1:]).sum()  # noqa: E731
    assert rough(blurred) < rough(x) < rough(noisy)


def test_blur_keeps_a_constant_and_smooths_detail():
    flat = torch.full((2, 1, 32, 32), 0.7)
    torch.testing.assert_close(_blurred(flat), flat)
    x = striped_heads(2, torch.Generator().manual_seed(0))
    assert float(_blurred(x).diff(dim=-1).abs().mean()) < float(x.diff(dim=-1).abs().mean())


def test_warp_displaces_by_at_most_its_bound_and_not_at_level_zero():
    ramp = torch.linspace(-1, 1, SIDE).expand(3, 1, SIDE, SIDE).contiguous()  # = grid x
    shape = torch.ones(3, 1, SIDE, SIDE)
    g = torch.Generator().manual_seed(2)
    moved = _warped(ramp, shape, torch.tensor([0.0, 0.5, 1.0]), g)
    shift = (moved - ramp).abs().flatten(1).amax(1)
    torch.testing.assert_close(moved[0], ramp[0], atol=1e-6, rtol=0)
    assert 0 < float(shift[1]) <= 0.06 + 1e-5 and 0.06 < float(shift[2]) <= 0.12 + 1e-5


def test_shapes_are_soft_and_irregular():
    masks = shape_masks(64, 64, torch.Generator().manual_seed(0))[:, 0]
    assert masks.shape == (64, 64, 64)
    area = (masks > 0.5).float().mean((1, 2))
    assert bool((area > 0).all()) and bool((area < 0.6).all())
    soft = ((masks > 0.05) & (masks < 0.95)).float().mean()
    assert 0 < float(soft) < 0.2  # a soft rim, not a hard edge, nor a blur everywhere
    # not an ellipse: the fraction of its bounding box a shape fills varies widely
    rows, cols = (masks > 0.5).any(2), (masks > 0.5).any(1)
    box = rows.float().sum(1) * cols.float().sum(1)
    fill = (masks > 0.5).float().sum((1, 2)) / box
    assert float(fill.std()) > 0.03


def test_foreign_patch_comes_from_another_slice():
    x = torch.arange(4.0)[:, None, None, None].expand(4, 1, 8, 8).contiguous()
    patch = foreign_patches(x, torch.Generator().manual_seed(0))
    source = patch.flatten(1)[:, 0]
    assert bool((source != torch.arange(4.0)).all())
    single = foreign_patches(x[:1], torch.Generator().manual_seed(0))
    assert single.shape == (1, 1, 8, 8)


def test_own_patch_is_the_slices_own_tissue_moved_elsewhere():
    """CutPaste-style patches: the slice's own values, displaced 1/16-1/4 of the slice
    along each axis (never in place), and ``own_prob=0`` draws exactly as before."""
    x = torch.rand(64, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    before = foreign_patches(x, torch.Generator().manual_seed(3))
    torch.testing.assert_close(
        foreign_patches(x, torch.Generator().manual_seed(3), own_prob=0.0), before
    )
    own = foreign_patches(x, torch.Generator().manual_seed(3), own_prob=1.0)
    sorted_values = lambda v: v.flatten(1).sort(1).values  # noqa: E731
    torch.testing.assert_close(sorted_values(own), sorted_values(x))  # a permutation of itself
    assert bool((own != x).flatten(1).any(1).all())
    for b in range(64):  # some flip and roll of the slice, the roll 2-8 pixels per axis
        found = [
            (r, c)
            for flip in ((), (-2,), (-1,), (-2, -1))
            for r in range(-8, 9)
            for c in range(-8, 9)
            if torch.equal(own[b], torch.roll(x[b].flip(flip) if flip else x[b], (r, c), (-2, -1)))
        ]
        assert found and all(2 <= abs(r) <= 8 and 2 <= abs(c) <= 8 for r, c in found)
    half = foreign_patches(x, torch.Generator().manual_seed(3), own_prob=0.5)
    mine = (sorted_values(half) == sorted_values(x)).all(1).float().mean()
    assert 0.3 < float(mine) < 0.7


def test_thick_slices_average_along_one_axis():
    x = torch.rand(32, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    out = thick_slices(x, torch.Generator().manual_seed(1), prob=0.5)
    changed = (out != x).flatten(1).any(1)
    assert 0 < int(changed.sum()) < 32  # some slices, not all
    assert bool((out[~changed] == x[~changed]).all())
    # a thick slice is smoother along its averaged axis
    rough = (out[changed].diff(dim=-1).abs().mean((1, 2, 3))).minimum(
        out[changed].diff(dim=-2).abs().mean((1, 2, 3))
    )
    assert bool((rough < x[changed].diff(dim=-1).abs().mean((1, 2, 3))).all())


def test_per_slice_generators_give_per_slice_corruptions():
    """With one generator per slice, a slice's shape does not depend on its batch."""
    masks = shape_masks(3, 16, SliceGenerators.seeded(0, range(3)))
    alone = shape_masks(1, 16, SliceGenerators.seeded(0, [2]))
    torch.testing.assert_close(masks[2:], alone)


def test_corruptions_share_no_code_with_the_benchmark():
    """Issue 15, item 2: training corruptions are written apart from the benchmark's
    anomaly generator: no import of it, and importing them does not load it."""
    for module in (corruptions_module, restoration_module):
        tree = ast.parse(inspect.getsource(module))
        imported = [
            (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in node.names
        ]
        assert not [name for name in imported if "benchmark" in name], module.__name__
    code = (
        "import sys, anomaly_maps.models.corruptions, anomaly_maps.models.restoration;"
        "print(any(m.startswith('anomaly_maps.benchmark') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_trains_through_the_training_loop(tmp_path, tiny_volume):
    """``train`` (as ``anomaly-maps train --model restoration``) writes a checkpoint whose
    model the restoration scorers run on the scan's grid."""
    from anomaly_maps.io import save_volume
    from anomaly_maps.scoring import score_volume
    from anomaly_maps.training import TrainConfig, train

    scan = save_volume(tiny_volume, tmp_path / "head.nii.gz")
    result = train(
        [scan],
        tmp_path / "restoration.safetensors",
        model_config=RestorationConfig(size=16, widths=(8, 16), thick_prob=0.5),
        preprocessing=PreprocessingSpec(axis="axial", size=16),
        config=TrainConfig(epochs=2, batch_size=4, lr=3e-3, val_fraction=0.2),
        device="cpu",
    )
    assert {"train_mse", "train_bce", "val_mse", "val_bce"} <= set(result.history[-1])
    checkpoint = load_checkpoint(result.checkpoint)
    assert checkpoint.kinds == ("restoration",)
    assert checkpoint.records.training.epochs_completed == 2
    maps = score_volume(tiny_volume, checkpoint, [("disyre", {"n_steps": 2}), ("fpi", {})])
    for scored in maps:
        assert scored.map.shape == tiny_volume.shape
        assert np.isfinite(scored.map).all() and scored.map.max() > 0


def test_dag_stays_in_the_intensity_range_of_flat_patches():
    """A foreign patch of one flat intensity under the shape has no range to rescale:
    it must not be blown up (it was, by 1 / 1e-6, and training diverged)."""
    x = striped_heads(8, torch.Generator().manual_seed(6))
    x[::2] = (x[::2] > 0).float() * 0.5  # flat "tissue": patches without contrast
    for seed in range(5):
        sample = corrupt(x, torch.Generator().manual_seed(seed), mode="dag")
        assert float(sample.corrupted.min()) >= float(x.min()) - 1e-6
        assert float(sample.corrupted.max()) <= float(x.max()) + 1e-6


def test_mix_draws_only_the_named_local_changes():
    x = striped_heads(400, torch.Generator().manual_seed(5))
    shape = shape_masks(400, SIDE, torch.Generator().manual_seed(6)) * (x > 0)
    level = torch.full((400,), 0.8)
    g = torch.Generator().manual_seed(7)
    changes, kind = _local_changes(x, shape, level, x > 0, g, ("noise",))
    assert changes.shape[0] == 1
    share = torch.bincount(kind, minlength=2).float() / 400
    torch.testing.assert_close(share, torch.tensor([0.5, 0.5]), atol=0.06, rtol=0)
    texture = (changes[0] - x)[shape > 0.5]
    assert abs(float(texture.mean())) < 0.1 * float(texture.std())


def test_zoom_magnifies_or_shrinks_about_the_shapes_centre():
    # a disc at the centre of a radial ramp (the distance to the centre): magnified
    # tissue comes from nearer the centre, so the ramp falls inside; shrunk, it rises
    side = 33
    coords = torch.linspace(-1, 1, side)
    rr, cc = torch.meshgrid(coords, coords, indexing="ij")
    ramp = (rr**2 + cc**2).sqrt()[None, None].repeat(2, 1, 1, 1)
    disc = (ramp < 0.5).float()
    level = torch.ones(2)
    sign_draw = uniform((2,), torch.Generator().manual_seed(0))
    assert sign_draw[0] < 0.5 <= sign_draw[1]  # the first shrinks, the second magnifies
    zoomed = _zoomed(ramp, disc, level, torch.Generator().manual_seed(0))
    inside, outside = disc > 0.5, disc == 0
    shrunk, magnified = zoomed[0], zoomed[1]
    assert bool((magnified[inside[1]] <= ramp[1][inside[1]] + 1e-5).all())
    assert bool((shrunk[inside[0]] >= ramp[0][inside[0]] - 1e-5).all())
    # at the centre's neighbours the factor is nearly 2 (the bump is ~1 there)
    near = (ramp[0] > 0.05) & (ramp[0] < 0.15)
    ratio = magnified[near] / ramp[1][near]
    assert float(ratio.min()) >= 0.5 and float(ratio.max()) < 0.62
    torch.testing.assert_close(zoomed[:, :, outside[0, 0]], ramp[:, :, outside[0, 0]])
    torch.testing.assert_close(_zoomed(ramp, disc, torch.zeros(2), None), ramp)


def test_shape_centres_over_the_whole_slice_cover_it_evenly():
    # the default centres (0.2-0.8) put the middle of the slice under a shape more than
    # twice as often as a ring 4-8 px inside its border; centres anywhere, about as often
    def middle_over_ring(centres):
        cover = shape_masks(800, SIDE, torch.Generator().manual_seed(0), centres=centres)
        cover = cover[:, 0].mean(0)
        inner = torch.zeros(SIDE, SIDE, dtype=torch.bool)
        inner[8:24, 8:24] = True
        ring = torch.zeros_like(inner)
        ring[4:28, 4:28] = True
        return float(cover[12:20, 12:20].mean() / cover[ring & ~inner].mean())

    assert middle_over_ring((0.2, 0.8)) > 2.0
    assert middle_over_ring((0.0, 1.0)) < 1.3
    with pytest.raises(ParameterError, match="shape_centres"):
        RestorationConfig(shape_centres=(0.6, 0.4))
    with pytest.raises(ValueError, match="centres"):
        corrupt(torch.rand(2, 1, 16, 16), None, centres=(0.0, 1.5))


@pytest.mark.parametrize(
    ("option", "value"),
    [("radius", (0.0, 0.3)), ("radius", (0.3, 0.1)), ("level_range", (0.5, 1.2))],
)
def test_corrupt_checks_its_ranges_before_drawing(option, value):
    with pytest.raises(ValueError, match=f"^{option}="):
        corrupt(torch.rand(2, 1, 16, 16), None, **{option: value})


def test_local_changes_are_checked():
    with pytest.raises(ParameterError, match="local_changes"):
        RestorationConfig(local_changes=("noise", "noise"))
    with pytest.raises(ValueError, match="local changes"):
        corrupt(torch.rand(2, 1, 16, 16), None, mode="mix", local=("swirl",))
