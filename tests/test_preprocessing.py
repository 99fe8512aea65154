import nibabel as nib
import numpy as np
import pytest
import torch

from anomaly_maps.errors import ParameterError, VolumeError
from anomaly_maps.io import Volume
from anomaly_maps.preprocessing import (
    PreprocessingSpec,
    foreground_mask,
    normalize_intensity,
    resize_planes,
    slices_to_volume,
    to_slices,
)

from conftest import oblique_affine, sphere

AXES = ("axial", "coronal", "sagittal")


def _affine(linear, origin=(3.0, -5.0, 8.0)):
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = origin
    return affine


# Isotropic in-plane voxels: the padded field of view is square in pixels too, so with
# size equal to it no resampling happens and the round trip must be exact.
LAYOUTS = {
    "ras": _affine(np.eye(3)),
    "lps": _affine(np.diag([-1.0, -1.0, 1.0])),
    "permuted_flipped": _affine(np.array([[0, 0, -1.0], [1.0, 0, 0], [0, -1.0, 0]])),
    "oblique": oblique_affine(zooms=(1.0, 1.0, 1.0)),
}


def _exact_spec(volume, axis):
    """A spec whose size equals the padded plane, so resizing is the identity."""
    probe = to_slices(volume, PreprocessingSpec(axis=axis, size=8, foreground_fraction=0.0))
    rows, cols = probe.geometry.padded_shape
    assert rows == cols
    return PreprocessingSpec(axis=axis, size=rows, normalization="zscore", foreground_fraction=0)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("axis", AXES)
def test_slices_own_values_come_back_voxel_for_voxel(layout, axis):
    data = np.random.default_rng(3).random((13, 17, 11)).astype(np.float32) + 1
    volume = Volume(data, LAYOUTS[layout])
    spec = _exact_spec(volume, axis)
    stack = to_slices(volume, spec)
    back = slices_to_volume(stack.images, stack.geometry)
    expected = normalize_intensity(data, foreground_mask(data, 0.0), spec)
    np.testing.assert_array_equal(back, expected)


@pytest.mark.parametrize("axis", AXES)
def test_same_anatomy_in_any_file_layout_gives_same_slices(axis):
    """A scan stored RAS, LPS or permuted must produce identical model slices."""
    ras = np.random.default_rng(4).random((9, 12, 7)).astype(np.float32)
    spec = PreprocessingSpec(axis=axis, size=16, foreground_fraction=0.0)
    ref = to_slices(Volume(ras, LAYOUTS["ras"]), spec).images
    # LPS file: the first two voxel axes run the other way.
    lps = Volume(ras[::-1, ::-1, :].copy(), _affine(np.diag([-1.0, -1.0, 1.0])))
    np.testing.assert_array_equal(to_slices(lps, spec).images, ref)
    # Axes stored as (S, R, A) with S flipped.
    perm = Volume(
        ras.transpose(2, 0, 1)[::-1].copy(),
        _affine(np.array([[0, 1.0, 0], [0, 0, 1.0], [-1.0, 0, 0]])),
    )
    np.testing.assert_array_equal(to_slices(perm, spec).images, ref)


def test_axis_names_follow_anatomy():
    """Axial slices step inferior->superior and show anterior at the top row."""
    data = np.zeros((10, 12, 14), np.float32)
    data[2, 9, 11] = 1.0  # left of centre (x=2), anterior (y=9), superior (z=11)
    vol = Volume(data, LAYOUTS["ras"])
    exact = {"normalization": "zscore", "foreground_fraction": 0.0}
    axial = to_slices(vol, PreprocessingSpec(axis="axial", size=12, **exact))
    k, r, c = np.unravel_index(np.argmax(axial.images), axial.images.shape)
    assert k == 11  # slice index runs along S
    assert axial.positions[k] == pytest.approx(11 / 13)
    # padded 12x12 plane: rows = A (reversed, anterior on top), cols = R (padding 1 each)
    assert (r, c) == (12 - 1 - 9, 2 + 1)
    coronal = to_slices(vol, PreprocessingSpec(axis="coronal", size=14, **exact))
    assert np.unravel_index(np.argmax(coronal.images), coronal.images.shape)[0] == 9
    sagittal = to_slices(vol, PreprocessingSpec(axis="sagittal", size=14, **exact))
    assert np.unravel_index(np.argmax(sagittal.images), sagittal.images.shape)[0] == 2


@pytest.mark.parametrize("axis", AXES)
def test_anisotropic_oblique_blob_comes_back_in_place(axis):
    """With real resampling, a blob's map lands on the same voxels (odd sizes, 0.9/1.3/2.7 mm)."""
    shape = (29, 23, 13)
    volume = Volume(np.ones(shape, np.float32), oblique_affine())
    blob = sphere(shape, (14, 11, 6), 4).astype(np.float32)
    spec = PreprocessingSpec(axis=axis, size=48, normalization="zscore", foreground_fraction=0)
    stack = to_slices(volume.with_data(blob + 1), spec)  # normalised: blob 0, background -1
    back = slices_to_volume(stack.images, stack.geometry) + 1
    assert back.shape == shape
    com = np.array([np.average(idx, weights=back) for idx in np.indices(shape)])
    com_ref = np.array([np.average(idx, weights=blob) for idx in np.indices(shape)])
    np.testing.assert_allclose(com, com_ref, atol=0.5)
    # interior of the blob and far background are recovered closely
    assert np.corrcoef(back.ravel(), blob.ravel())[0, 1] > 0.9


def test_square_field_of_view_in_millimetres():
    data = np.random.default_rng(0).random((20, 10, 5)).astype(np.float32)
    volume = Volume(data, _affine(np.diag([1.0, 3.0, 2.0])))
    geom = to_slices(volume, PreprocessingSpec(axis="axial", size=32)).geometry
    rows, cols = geom.padded_shape
    assert rows * 3.0 == pytest.approx(cols * 1.0, abs=3.0)  # 30 mm x 20 mm -> 30 x 30 mm
    assert geom.pad[0] == (0, 0) and sum(geom.pad[1]) == 10


def test_foreground_mask_fills_enclosed_dark_regions(tiny_volume):
    mask = foreground_mask(tiny_volume.data)
    centre = tuple(s // 2 for s in tiny_volume.shape)
    assert tiny_volume.data[centre] < 40  # dark ventricle ...
    assert mask[centre]  # ... still brain
    assert not mask[0, 0, 0]


def test_normalizations(tiny_volume):
    mask = foreground_mask(tiny_volume.data)
    pct = normalize_intensity(tiny_volume.data, mask, PreprocessingSpec())
    assert pct.min() == 0.0 and pct.max() == 1.0 and pct.dtype == np.float32
    assert np.all(pct[~mask] == 0.0)
    z = normalize_intensity(tiny_volume.data, mask, PreprocessingSpec(normalization="zscore"))
    assert z[mask].mean() == pytest.approx(0.0, abs=1e-4)
    assert z[mask].std() == pytest.approx(1.0, abs=1e-4)


def test_slice_stack_outputs(tiny_volume):
    stack = to_slices(tiny_volume, PreprocessingSpec(axis="axial", size=16))
    n = stack.geometry.n_slices
    assert stack.images.shape == stack.mask.shape == (n, 16, 16)
    assert stack.images.dtype == np.float32 and stack.mask.dtype == bool
    assert stack.positions[0] == 0.0 and stack.positions[-1] == 1.0
    assert 0 < stack.mask.mean() < 1


@pytest.mark.parametrize("seed", range(6))
def test_fill_holes_equals_scipy(seed):
    """Random blobby masks in 2D and 3D, some touching the grid's border, some empty."""
    from scipy import ndimage

    from anomaly_maps.preprocessing import fill_holes

    rng = np.random.default_rng(seed)
    shape = [(17, 23, 11), (30, 9), (12, 12, 12), (5, 40, 7), (9, 9), (8, 8, 8)][seed]
    noise = ndimage.gaussian_filter(rng.random(shape), 1.2)
    mask = noise > np.quantile(noise, [0.3, 0.5, 0.6, 0.45, 0.5, 1.0][seed])
    if seed == 2:  # a shell enclosing a cavity, away from the border
        mask = np.zeros(shape, bool)
        mask[2:10, 2:10, 2:10] = True
        mask[4:8, 4:8, 4:8] = False
    np.testing.assert_array_equal(fill_holes(mask), ndimage.binary_fill_holes(mask))


def test_no_foreground_is_an_error_naming_the_scan():
    flat = Volume(np.zeros((4, 4, 4), np.float32), np.eye(4), "flat.nii.gz")
    with pytest.raises(VolumeError, match=r"^flat.nii.gz: no foreground voxels"):
        to_slices(flat, PreprocessingSpec())


def test_map_shape_checked(tiny_volume):
    stack = to_slices(tiny_volume, PreprocessingSpec(size=16))
    with pytest.raises(ParameterError, match="expected"):
        slices_to_volume(stack.images[:-1], stack.geometry)


def test_tensor_maps_are_resized_on_their_device(tiny_volume):
    stack = to_slices(tiny_volume, PreprocessingSpec(size=16))
    from_numpy = slices_to_volume(stack.images, stack.geometry)
    from_tensor = slices_to_volume(torch.from_numpy(stack.images), stack.geometry)
    np.testing.assert_array_equal(from_numpy, from_tensor)


def test_resize_identity_returns_input():
    x = torch.rand(3, 5, 7)
    assert resize_planes(x, (5, 7)) is x
    assert resize_planes(x, (10, 14)).shape == (3, 10, 14)


def test_spec_round_trip_and_validation():
    spec = PreprocessingSpec(axis="coronal", size=64, percentiles=(1.0, 99.0))
    assert PreprocessingSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ParameterError, match="unknown preprocessing setting"):
        PreprocessingSpec.from_dict({**spec.to_dict(), "sise": 3})
    with pytest.raises(ParameterError, match="axis='transverse'"):
        PreprocessingSpec(axis="transverse")
    with pytest.raises(ParameterError, match="size=2"):
        PreprocessingSpec(size=2)
    with pytest.raises(ParameterError, match="percentiles"):
        PreprocessingSpec(percentiles=(99.0, 1.0))
    with pytest.raises(ParameterError, match="normalization"):
        PreprocessingSpec(normalization="minmax")


def test_orientation_codes_of_fixture_layouts():
    assert nib.aff2axcodes(LAYOUTS["lps"]) == ("L", "P", "S")
    assert nib.aff2axcodes(LAYOUTS["permuted_flipped"]) == ("A", "I", "L")
