"""The napari reader on DICOM series and Analyze pairs: the NIfTI's layer, voxel for voxel."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from dicom_series import write_series
from napari.layers import Image

from anomaly_maps.napari._reader import get_reader

from conftest import oblique_affine, write_nifti


def _data() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 900, (9, 8, 6)).astype(np.int16)


def _open(path) -> list:
    reader = get_reader(path)
    assert reader is not None, f"the reader declines {path}"
    return reader(path)


def _assert_same_layer(layer_data, reference) -> None:
    (data, kwargs, kind), (want_data, want_kwargs, want_kind) = layer_data, reference
    assert kind == want_kind == "image"
    np.testing.assert_array_equal(data, want_data)
    layer, want = Image(data, **kwargs), Image(want_data, **want_kwargs)
    assert layer.axis_labels == want.axis_labels
    for idx in [(0, 0, 0), (8, 7, 5), (3, 2, 4)]:
        np.testing.assert_allclose(
            layer.data_to_world(np.asarray(idx, float)),
            want.data_to_world(np.asarray(idx, float)),
            atol=1e-4,
        )


@pytest.fixture
def series_and_nifti(tmp_path):
    data, affine = _data(), oblique_affine()
    files = write_series(tmp_path / "series", data, affine)
    nifti = write_nifti(tmp_path / "scan.nii.gz", data, affine)
    return tmp_path / "series", files, nifti


def test_reader_opens_a_dicom_folder_like_its_nifti(series_and_nifti):
    folder, _, nifti = series_and_nifti
    [layer_data] = _open(str(folder))
    [reference] = _open(str(nifti))
    _assert_same_layer(layer_data, reference)
    assert layer_data[1]["name"] == "series"


def test_reader_opens_files_of_one_series_as_one_layer(series_and_nifti):
    _, files, nifti = series_and_nifti
    [reference] = _open(str(nifti))
    [one] = _open(str(files[3]))
    _assert_same_layer(one, reference)
    assert len(_open([str(f) for f in files])) == 1


def test_reader_declines_a_folder_without_dicom(tmp_path):
    (tmp_path / "notes.txt").write_text("no scans")
    assert get_reader(str(tmp_path)) is None


def test_reader_opens_an_analyze_pair(tmp_path):
    nib.save(nib.AnalyzeImage(_data(), np.diag([2.0, 3.0, 4.0, 1.0])), tmp_path / "scan.hdr")
    [(data, kwargs, _)] = _open(str(tmp_path / "scan.hdr"))
    np.testing.assert_array_equal(data, _data())
    np.testing.assert_allclose(
        kwargs["metadata"]["affine"], nib.load(tmp_path / "scan.hdr").affine
    )


@pytest.mark.parametrize("name", ["series", "series/IM0000.dcm", "scan.hdr", "scan.img"])
def test_manifest_offers_the_reader_for_folders_and_new_suffixes(tmp_path, name):
    from pathlib import Path

    from npe2 import PluginManager, PluginManifest

    import anomaly_maps

    manifest = PluginManifest.from_file(Path(anomaly_maps.__file__).parent / "napari.yaml")
    manager = PluginManager()
    manager.register(manifest)
    (tmp_path / "series").mkdir()
    commands = {r.command for r in manager.iter_compatible_readers([str(tmp_path / name)])}
    assert commands == {"napari-anomaly-maps.get_reader"}


@pytest.mark.gui
def test_viewer_opens_a_dicom_folder_through_the_plugin(make_napari_viewer, series_and_nifti):
    folder, _, nifti = series_and_nifti
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(folder), plugin="napari-anomaly-maps")
    [reference] = viewer.open(str(nifti), plugin="napari-anomaly-maps")
    np.testing.assert_array_equal(layer.data, reference.data)
    corner = np.asarray([8.0, 7.0, 5.0])
    np.testing.assert_allclose(
        layer.data_to_world(corner), reference.data_to_world(corner), atol=1e-4
    )
