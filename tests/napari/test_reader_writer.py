"""Reader and writer without a viewer: layer kwargs and NIfTI round trips."""

import nibabel as nib
import numpy as np
import pytest
from napari.layers import Image, Labels

from anomaly_maps.io import load_volume
from anomaly_maps.napari._reader import get_reader, is_label_image
from anomaly_maps.napari._sample_data import sample_brain
from anomaly_maps.napari._writer import write_image, write_labels

from conftest import oblique_affine, write_nifti


@pytest.mark.parametrize("path", ["scan.png", "scan.nii.bak", ["a.nii", "b.tif"], []])
def test_reader_declines_other_files(path):
    assert get_reader(path) is None


def _layer(layer_data):
    data, kwargs, kind = layer_data
    return (Image if kind == "image" else Labels)(data, **kwargs)


def test_reader_places_scan_in_world_mm(tiny_nifti):
    [(data, kwargs, kind)] = get_reader(str(tiny_nifti))(str(tiny_nifti))
    assert kind == "image"
    assert kwargs["name"] == "tiny_head"
    lo, hi = kwargs["contrast_limits"]
    assert lo < hi <= data.max()
    layer = _layer((data, kwargs, kind))
    # napari's data->world transform equals the NIfTI affine, voxel for voxel
    affine = kwargs["metadata"]["affine"]
    for idx in [(0, 0, 0), (30, 32, 16), (5, 17, 3)]:
        world = layer.data_to_world(np.asarray(idx, float))
        np.testing.assert_allclose(world, (affine @ [*idx, 1])[:3], atol=1e-6)


def test_reader_lps_file_uses_reflection():
    affine = np.diag([-2.0, -2.0, 3.0, 1.0])
    from anomaly_maps.io import Volume
    from anomaly_maps.napari._reader import volume_layer_data

    layer = _layer(volume_layer_data(Volume(np.ones((4, 5, 6), np.float32) * 2, affine)))
    np.testing.assert_allclose(layer.scale, (2, 2, 3))
    np.testing.assert_allclose(layer.data_to_world(np.array([1.0, 1, 1])), (-2, -2, 3))


def test_permuted_file_keeps_ras_millimetres_in_data_axis_order(tmp_path):
    """A sagittal acquisition (voxel axes A, S, L): world dim k runs along data axis k,
    names its RAS direction, and every coordinate stays the file's millimetres; a layer
    whose data changed shape saves with its own transform, back in RAS rows."""
    from anomaly_maps.io import Volume
    from anomaly_maps.napari._geometry import layer_affine
    from anomaly_maps.napari._reader import volume_layer_data

    affine = np.array([[0, 0, -1.5, 90], [2.0, 0, 0, -100], [0, 2.5, 0, -60], [0, 0, 0, 1]])
    assert nib.aff2axcodes(affine) == ("A", "S", "L")
    layer = _layer(volume_layer_data(Volume(np.ones((4, 5, 6), np.float32), affine)))
    assert layer.axis_labels == ("P→A", "I→S", "L→R")
    np.testing.assert_allclose(layer.rotate, np.diag([1.0, 1.0, -1.0]), atol=1e-12)
    for idx in [(0, 0, 0), (3, 4, 5), (1, 2, 3)]:
        world = layer.data_to_world(np.asarray(idx, float))
        ras = (affine @ [*idx, 1])[:3]
        np.testing.assert_allclose(world, ras[[1, 2, 0]], atol=1e-9)
    state = {
        "metadata": dict(layer.metadata, shape=(9, 9, 9)),  # not the data's shape any more
        "scale": layer.scale, "translate": layer.translate, "rotate": layer.rotate,
        "shear": layer.shear, "affine": layer.affine.affine_matrix,
        "axis_labels": layer.axis_labels,
    }  # fmt: skip
    np.testing.assert_allclose(layer_affine(state, (4, 5, 6)), affine, atol=1e-9)


def test_small_integer_file_opens_as_labels(tmp_path):
    seg = np.zeros((8, 9, 10), np.uint8)
    seg[2:5, 3:6, 4:7] = 1
    seg[6, 6, 6] = 3
    path = write_nifti(tmp_path / "lesion_mask.nii.gz", seg, oblique_affine())
    [(_data, kwargs, kind)] = get_reader(str(path))(str(path))
    assert kind == "labels"
    assert "contrast_limits" not in kwargs


def test_label_detection_rules():
    assert is_label_image(np.array([[[0, 1, 2]]], np.int16))
    assert is_label_image(np.zeros((2, 2, 2), bool))
    assert not is_label_image(np.arange(300, dtype=np.uint16).reshape(3, 10, 10))  # a scan
    assert not is_label_image(np.array([[[0.0, 1.0]]]))  # float maps stay images
    assert not is_label_image(np.array([[[-1, 0, 1]]]))


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_image_layer_round_trip(tmp_path, tiny_nifti, suffix):
    [layer_data] = get_reader(str(tiny_nifti))(str(tiny_nifti))
    layer = _layer(layer_data)
    out = tmp_path / f"saved{suffix}"
    assert write_image(str(out), layer.data, layer._get_state()) == [str(out)]
    src, back = load_volume(tiny_nifti), load_volume(out)
    np.testing.assert_array_equal(back.data, src.data)
    np.testing.assert_allclose(back.affine, src.affine, atol=1e-6)
    hdr = nib.load(out).header
    assert (int(hdr["qform_code"]), int(hdr["sform_code"])) == (1, 2)


def test_labels_layer_round_trip_keeps_geometry(tmp_path, tiny_nifti):
    [layer_data] = get_reader(str(tiny_nifti))(str(tiny_nifti))
    data, kwargs, _ = layer_data
    labels = Labels(
        (data > 150).astype(np.uint8),
        **{k: v for k, v in kwargs.items() if k not in ("contrast_limits", "colormap")},
    )
    out = tmp_path / "mask.nii.gz"
    write_labels(str(out), labels.data, labels._get_state())
    back = load_volume(out)
    np.testing.assert_array_equal(back.data, data > 150)
    np.testing.assert_allclose(back.affine, load_volume(tiny_nifti).affine, atol=1e-6)


def test_layer_without_source_affine_saves_its_own_transform(tmp_path):
    layer = Image(np.ones((3, 4, 5), np.float32), scale=(2, 3, 4), translate=(10, 20, 30))
    out = tmp_path / "plain.nii"
    write_image(str(out), layer.data, layer._get_state())
    expected = np.diag([2.0, 3.0, 4.0, 1.0])
    expected[:3, 3] = (10, 20, 30)
    np.testing.assert_allclose(load_volume(out).affine, expected)


def test_sample_brain():
    [(data, kwargs, kind)] = sample_brain()
    assert kind == "image"
    assert data.shape == (197, 233, 189)
    np.testing.assert_allclose(kwargs["scale"], (1, 1, 1))
    np.testing.assert_allclose(kwargs["translate"], (-98, -134, -72))
