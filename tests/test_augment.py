"""Batched healthy-variability augmentation: validation, determinism, geometry, intensity."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from anomaly_maps import augment as augment_module
from anomaly_maps.augment import AugmentSpec, augment
from anomaly_maps.errors import ParameterError

# every transform off: geometric and intensity identities
OFF = {
    "rotate_deg": 0.0,
    "scale": 0.0,
    "translate": 0.0,
    "elastic_px": 0.0,
    "bias": 0.0,
    "gamma": (1.0, 1.0),
    "noise": 0.0,
}


def only(**on) -> AugmentSpec:
    """A spec with prob=1 and every transform off except those given."""
    return AugmentSpec(prob=1.0, **{**OFF, **on})


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def head(b: int = 2, size: int = 32, *, radius: float = 7.0, background: float = -1.0):
    """(B, 1, size, size) 'brain': a textured disk on a constant (non-zero) background."""
    r = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    rr, cc = torch.meshgrid(r, r, indexing="ij")
    dist = torch.sqrt(rr**2 + cc**2)
    tissue = 1.0 + 0.5 * torch.cos(rr / 2) * torch.sin(cc / 3)
    img = torch.where(dist <= radius, tissue, torch.tensor(0.0)) + background
    return img.expand(b, 1, size, size).clone(), dist


def blob(size: int, row: float, col: float, *, sigma: float = 1.2, b: int = 1) -> torch.Tensor:
    """A Gaussian dot centred at pixel (row, col), on background 0."""
    idx = torch.arange(size, dtype=torch.float64)
    rr, cc = torch.meshgrid(idx, idx, indexing="ij")
    img = torch.exp(-((rr - row) ** 2 + (cc - col) ** 2) / (2 * sigma**2))
    return img.float().expand(b, 1, size, size).clone()


def centroid(img: torch.Tensor) -> tuple[float, float]:
    """Intensity-weighted (row, col) of a (H, W) image."""
    img = img.double()
    idx = torch.arange(img.shape[0], dtype=torch.float64)
    w = img.sum()
    return float((img.sum(1) * idx).sum() / w), float((img.sum(0) * idx).sum() / w)


# -- AugmentSpec ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("prob", -0.1),
        ("prob", 1.5),
        ("prob", float("nan")),
        ("prob", "0.5"),
        ("rotate_deg", -1.0),
        ("rotate_deg", float("nan")),
        ("translate", -0.1),
        ("elastic_px", float("inf")),
        ("bias", -0.01),
        ("noise", -0.01),
        ("noise", True),
        ("sharpen", -0.5),
        ("scale", 1.0),
        ("scale", -0.1),
        ("elastic_grid", 1),
        ("elastic_grid", 2.5),
        ("gamma", (0.0, 1.0)),
        ("gamma", (1.2, 0.8)),
        ("gamma", (1.0,)),
        ("gamma", (0.5, float("inf"))),
    ],
)
def test_spec_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ParameterError, match=rf"^{field}="):
        AugmentSpec(**{field: value})


def test_spec_accepts_edges():
    spec = AugmentSpec(prob=0, scale=0, elastic_grid=2, gamma=(1, 1), noise=0, rotate_deg=0)
    assert spec.prob == 0 and spec.gamma == (1, 1)


def test_spec_dict_round_trip():
    spec = AugmentSpec(prob=0.3, rotate_deg=7.5, elastic_grid=4, gamma=(0.8, 1.2), noise=0.1)
    data = spec.to_dict()
    assert data["gamma"] == [0.8, 1.2]  # JSON-ready
    assert set(data) == {f.name for f in dataclasses.fields(AugmentSpec)}
    assert AugmentSpec.from_dict(data) == spec
    assert AugmentSpec.from_dict({}) == AugmentSpec()


def test_spec_from_dict_rejects_unknown_keys():
    with pytest.raises(ParameterError, match="rotation"):
        AugmentSpec.from_dict({"rotation": 3.0})


# -- the batch transform -------------------------------------------------------------


def test_prob_zero_returns_input_exactly():
    x = torch.rand(3, 1, 16, 16, generator=gen(1)) * 3 - 1.3  # lo != 0 exercises x - lo + lo
    out = augment(x, AugmentSpec(prob=0.0), gen())
    assert torch.equal(out, x)
    assert out is not x


def test_prob_one_changes_every_sample():
    x, _ = head(b=4)
    out = augment(x, AugmentSpec(prob=1.0), gen())
    assert all(not torch.equal(out[i], x[i]) for i in range(4))


def test_all_transforms_at_strength_zero_are_the_identity():
    x, _ = head(b=2)
    out = augment(x, only(), gen())
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_reproducible_with_seed_and_different_with_other_seed():
    x, _ = head(b=3)
    spec = AugmentSpec(prob=1.0)
    a = augment(x, spec, gen(7))
    b = augment(x, spec, gen(7))
    c = augment(x, spec, gen(8))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_does_not_modify_input():
    x, _ = head(b=2)
    before = x.clone()
    augment(x, AugmentSpec(prob=1.0), gen())
    assert torch.equal(x, before)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(1, 1, 16, 16), (3, 2, 16, 24)])
def test_keeps_shape_dtype_device_and_is_finite(shape, dtype):
    x = torch.rand(shape, generator=gen(2)).to(dtype)
    out = augment(x, AugmentSpec(prob=1.0, bias=0.5, gamma=(0.5, 2.0)), gen())
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert torch.isfinite(out).all()


def test_single_sample_batch_matches_its_own_seeded_run():
    x, _ = head(b=1)
    out = augment(x, AugmentSpec(prob=1.0), gen(3))
    assert out.shape == (1, 1, 32, 32)
    assert not torch.equal(out, x)
    assert torch.equal(out, augment(x, AugmentSpec(prob=1.0), gen(3)))


@pytest.mark.parametrize(
    "bad",
    [torch.zeros(16, 16), torch.zeros(2, 16, 16), torch.zeros(1, 1, 16, 16, dtype=torch.uint8)],
)
def test_rejects_non_batch_or_integer_input(bad):
    with pytest.raises(ParameterError, match=r"expected a float tensor \(B, C, H, W\)"):
        augment(bad, AugmentSpec(), gen())


def test_background_stays_background_away_from_tissue():
    background = -1.0
    x, dist = head(b=4, radius=6.0, background=background)
    # tissue reaches ~6 * 1.1 (zoom) + 1.6 (shift) + a few px (elastic) from the centre
    spec = AugmentSpec(prob=1.0, elastic_px=1.0, bias=0.3, noise=0.2)
    out = augment(x, spec, gen(4))
    far = dist > 13
    assert far.sum() > 100
    assert (out[:, 0][:, far] == background).all()
    # the background level is each slice's own minimum, not zero
    out2 = augment(x + 5.0, spec, gen(4))
    assert (out2[:, 0][:, far] == background + 5.0).all()
    torch.testing.assert_close(out2, out + 5.0, atol=1e-5, rtol=0)


def test_gamma_and_bias_keep_the_minimum_and_stay_finite():
    x = torch.rand(4, 1, 16, 16, generator=gen(5)) * 2 - 0.5
    for spec in (only(gamma=(0.3, 3.0)), only(bias=0.8), only(gamma=(0.5, 2.0), bias=0.5)):
        out = augment(x, spec, gen(6))
        assert torch.isfinite(out).all()
        torch.testing.assert_close(out.amin(dim=(1, 2, 3)), x.amin(dim=(1, 2, 3)))
        assert not torch.allclose(out, x)


def test_gamma_alone_keeps_order_and_range():
    x = torch.rand(3, 1, 16, 16, generator=gen(9)) * 4 - 1
    out = augment(x, only(gamma=(0.5, 2.0)), gen(1))
    torch.testing.assert_close(out.amin(dim=(1, 2, 3)), x.amin(dim=(1, 2, 3)))
    torch.testing.assert_close(out.amax(dim=(1, 2, 3)), x.amax(dim=(1, 2, 3)))
    for i in range(3):  # a monotone intensity map: same ranking of pixels
        assert torch.equal(out[i].flatten().argsort(), x[i].flatten().argsort())


def test_bias_field_is_smooth_and_multiplicative():
    x = torch.full((2, 1, 32, 32), 2.0)
    x[:, :, 0, 0] = 1.0  # background level 1, tissue 1 above it
    out = augment(x, only(bias=0.3), gen(2))
    field = (out - 1.0)[:, 0, 1:, 1:]  # = exp(smooth field) over the tissue
    assert (field > 0).all()
    assert field.std() > 0.01  # it does something
    # smooth: neighbouring pixels differ far less than the field varies overall
    step = (field[:, 1:, :] - field[:, :-1, :]).abs().max()
    assert step < 0.2 * (field.max() - field.min())


def test_noise_only_inside_foreground_with_the_given_std():
    background = 0.25
    x, _ = head(b=4, size=32, radius=10.0, background=background)
    out = augment(x, only(noise=0.1), gen(3))
    bg = x == background
    assert torch.equal(out[bg], x[bg])
    diff = (out - x)[~bg]
    assert diff.numel() > 1000
    assert abs(diff.std().item() - 0.1) < 0.01
    assert abs(diff.mean().item()) < 0.01


def test_sharpen_is_an_unsharp_mask_of_the_tissue_by_a_reference_filter():
    """Against scipy: x + s (x - binomial blur of x), background untouched, and
    the per-slice amount s drawn in [0, sharpen]."""
    import numpy as np
    from scipy import ndimage

    background = -0.5
    x, _ = head(b=6, size=32, radius=10.0, background=background)
    out = augment(x, only(sharpen=1.5), gen(4))
    tissue = x > background
    assert torch.equal(out[~tissue], x[~tissue])
    taps = np.array([1, 4, 6, 4, 1.0]) / 16
    for i in range(6):
        rel = (x[i, 0] - background).numpy().astype(np.float64)
        detail = rel - ndimage.correlate(rel, np.outer(taps, taps), mode="nearest")
        inside = tissue[i, 0].numpy() & (np.abs(detail) > 1e-3)
        amount = np.median(((out[i, 0] - x[i, 0]).numpy() / np.where(inside, detail, 1))[inside])
        assert 0 <= amount <= 1.5
        want = np.maximum(rel + amount * detail, 0) + background
        np.testing.assert_allclose(out[i, 0].numpy()[inside], want[inside], atol=1e-5)


def test_sharpen_off_keeps_the_random_stream():
    x, _ = head(b=3)
    old = augment(x, AugmentSpec(prob=0.7), gen(5))
    assert torch.equal(augment(x, AugmentSpec(prob=0.7, sharpen=0.0), gen(5)), old)


def test_elastic_deformation_moves_pixels_by_about_elastic_px():
    x = blob(32, 15.5, 15.5, sigma=4.0, b=8)
    out = augment(x, only(elastic_px=1.5), gen(5))
    moved = [math.dist(centroid(out[i, 0]), (15.5, 15.5)) for i in range(8)]
    assert 0.1 < max(moved) < 6.0
    # background stays zero far from the blob
    assert not torch.allclose(out, x, atol=1e-3)


def _pin_draws(monkeypatch, sign: float) -> None:
    """Make every symmetric draw its extreme: angle = +-rotate_deg, zoom = 1 +- scale."""

    def extreme(n, half_range, g, device):
        return torch.full((n,), sign * half_range, device=device)

    monkeypatch.setattr(augment_module, "_uniform", extreme)


@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("angle", [30.0, 90.0])
def test_rotation_moves_an_off_centre_dot_counter_clockwise(monkeypatch, sign, angle):
    _pin_draws(monkeypatch, sign)
    size, centre = 33, 16.0
    row, col = centre - 3.0, centre + 9.0  # up and to the right of the centre
    out = augment(blob(size, row, col), only(rotate_deg=angle), gen())
    # docstring: content at centred (r, c) moves to (cos a r - sin a c, sin a r + cos a c)
    a = math.radians(sign * angle)
    r, c = row - centre, col - centre
    expected = (
        centre + math.cos(a) * r - math.sin(a) * c,
        centre + math.sin(a) * r + math.cos(a) * c,
    )
    got = centroid(out[0, 0])
    assert math.dist(got, expected) < 0.2, (got, expected)
    # rotation about the centre keeps the distance to it, and the dot's brightness
    assert abs(math.dist(got, (centre, centre)) - math.hypot(r, c)) < 0.2
    torch.testing.assert_close(out.sum(), blob(size, row, col).sum(), rtol=0.02, atol=0)


def test_rotation_is_about_the_centre_of_an_even_sized_slice(monkeypatch):
    _pin_draws(monkeypatch, 1.0)
    size, centre = 32, 15.5  # centre between pixels: (H - 1) / 2
    out = augment(blob(size, centre, centre), only(rotate_deg=90.0), gen())
    got = centroid(out[0, 0])
    assert math.dist(got, (centre, centre)) < 0.05
    # an off-centre dot on an even grid lands at the exact rotated pixel position
    out = augment(blob(size, centre, centre + 8), only(rotate_deg=90.0), gen())
    assert math.dist(centroid(out[0, 0]), (centre - 8, centre)) < 0.1


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_zoom_scales_distances_from_the_centre(monkeypatch, sign):
    _pin_draws(monkeypatch, sign)
    size, centre = 33, 16.0
    out = augment(blob(size, centre + 6, centre - 4), only(scale=0.2), gen())
    zoom = 1 + sign * 0.2
    expected = (centre + 6 * zoom, centre - 4 * zoom)
    assert math.dist(centroid(out[0, 0]), expected) < 0.2


def test_translation_moves_content_by_the_documented_shift(monkeypatch):
    _pin_draws(monkeypatch, 1.0)
    size = 32
    out = augment(blob(size, 15.5, 15.5), only(translate=0.125), gen())  # 4 px
    assert math.dist(centroid(out[0, 0]), (11.5, 11.5)) < 0.1


def test_random_rotations_differ_per_sample_and_keep_the_radius():
    size, centre = 33, 16.0
    x = blob(size, centre, centre + 10, b=6)
    out = augment(x, only(rotate_deg=45.0), gen(11))
    positions = [centroid(out[i, 0]) for i in range(6)]
    for p in positions:
        assert abs(math.dist(p, (centre, centre)) - 10) < 0.2
        angle = math.degrees(math.atan2(p[0] - centre, p[1] - centre))
        assert abs(angle) <= 45.5
    assert len({round(p[0], 1) for p in positions}) == 6  # one angle per sample


@pytest.mark.parametrize(
    "on",
    [
        {"rotate_deg": 20.0},
        {"elastic_px": 2.0},
        {"bias": 0.5},
        {"gamma": (0.5, 2.0)},
        {"noise": 0.1},
    ],
    ids=lambda on: next(iter(on)),
)
def test_each_transform_is_drawn_per_sample_with_prob(on):
    """Other transforms are drawn too (at strength 0), so a sample that skips this one
    is still 'touched'; only this transform's own draw may change it."""
    x, _ = head(b=64, size=16, radius=5.0)
    out = augment(x, AugmentSpec(prob=0.5, **{**OFF, **on}), gen(12))
    changed = (out - x).flatten(1).abs().amax(dim=1) > 1e-3
    assert 16 <= int(changed.sum()) <= 48


def test_content_from_outside_the_slice_is_background(monkeypatch):
    _pin_draws(monkeypatch, 1.0)
    x = torch.ones(1, 1, 32, 32)
    x[0, 0, 16, 16] = 0.0  # background level 0; tissue reaches the edges
    out = augment(x, only(translate=0.125), gen())  # content moves 4 px up and left
    assert (out[0, 0, -4:, :] == 0).all() and (out[0, 0, :, -4:] == 0).all()
    assert (out[0, 0, :27, :27] > 0.99).sum() == 27 * 27 - 1


def test_elastic_field_is_smooth():
    size = 32
    ramp = torch.arange(size, dtype=torch.float32).expand(4, 1, size, size).clone()
    out = augment(ramp, only(elastic_px=2.0, elastic_grid=6), gen(13))
    inner = (out - ramp)[:, 0, 4:-4, 4:-4]  # = column displacement away from the borders
    assert inner.abs().max() > 0.5
    for d in range(4):
        field = inner[d]
        step = max(field.diff(dim=0).abs().max(), field.diff(dim=1).abs().max())
        assert step < 0.3 * (field.max() - field.min())


def test_gamma_is_drawn_per_sample_inside_its_range():
    v = torch.linspace(0.05, 0.95, 19)
    x = torch.cat([torch.tensor([0.0, 1.0]), v]).view(1, 1, 1, 21).expand(64, 1, 1, 21)
    out = augment(x.clone(), only(gamma=(0.5, 2.0)), gen(14))
    g = torch.log(out[:, 0, 0, 2:].clamp_min(1e-12)) / torch.log(v)  # out = v ** gamma
    assert (g.std(dim=1) < 1e-3).all()  # one gamma per sample
    gamma = g.mean(dim=1)
    assert (gamma >= 0.5 - 1e-4).all() and (gamma <= 2.0 + 1e-4).all()
    assert gamma.std() > 0.1
    assert 16 <= int((gamma < 1).sum()) <= 48  # log-uniform: median 1


def test_train_augment_option_is_checked_first_and_recorded(tiny_nifti, tmp_path, capsys):
    from anomaly_maps.checkpoint import load_checkpoint
    from anomaly_maps.cli import main

    ckpt = tmp_path / "m.safetensors"
    base = ["train", "--model", "dae", "--data", str(tiny_nifti), "--out", str(ckpt),
            "--size", "16", "--set", "widths=[8,16]", "--epochs", "1", "--batch-size", "4",
            "--device", "cpu", "--val-fraction", "0"]  # fmt: skip
    for bad, message in ((["sharpen=-1"], "sharpen=-1"), (["blur=2"], "unknown augmentation"),
                         (["sharpen"], "--augment 'sharpen': expected KEY=VALUE")):  # fmt: skip
        assert main([*base, "--augment", *bad]) == 2
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(err) == 1 and message in err[0] and not ckpt.exists()
    assert main([*base, "--augment", "sharpen=0.5", "prob=0.8"]) == 0, capsys.readouterr().err
    recorded = load_checkpoint(ckpt).records.training.augment
    assert recorded == {**AugmentSpec().to_dict(), "sharpen": 0.5, "prob": 0.8}
