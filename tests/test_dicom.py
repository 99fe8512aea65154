"""DICOM series and Analyze pairs through load_volume: data and geometry round trips."""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest
from dicom_series import canonical, write_series

from anomaly_maps import io
from anomaly_maps.dicom import DicomSeries
from anomaly_maps.errors import VolumeError
from anomaly_maps.io import load_volume, save_volume

from conftest import oblique_affine

SHAPE = (6, 7, 5)

AXIAL = np.array([[0.8, 0, 0, -20], [0, 1.1, 0, 30], [0, 0, 2.5, -5], [0, 0, 0, 1.0]])
SAGITTAL = np.array([[0, 0, -1.5, 90], [2.0, 0, 0, -100], [0, 2.5, 0, -60], [0, 0, 0, 1]])
CORONAL = np.array([[-1.2, 0, 0, 60], [0, 0, 3.0, -10], [0, 0.9, 0, 20], [0, 0, 0, 1]])
TILTED = np.array([[0.8, 0, 0, -20], [0, 1.1, 0.6, 30], [0, 0, 2.5, -5], [0, 0, 0, 1.0]])
"""A CT gantry tilt: the slices step off their normal, which the positions show."""


def _data(shape=SHAPE, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2000, shape).astype(np.int16)


def _assert_same_grid(volume, data, affine) -> None:
    """Same voxels at the same world positions (the axis order may differ)."""
    got_data, got_affine = canonical(volume.data, volume.affine)
    want_data, want_affine = canonical(data, affine)
    np.testing.assert_array_equal(got_data, want_data)
    np.testing.assert_allclose(got_affine, want_affine, atol=1e-4)


@pytest.mark.parametrize(
    "affine",
    [AXIAL, oblique_affine(), SAGITTAL, CORONAL, TILTED],
    ids=["axial", "oblique", "sagittal", "coronal", "tilted"],
)
def test_series_round_trip(tmp_path, affine):
    data = _data()
    write_series(tmp_path / "series", data, affine)
    volume = load_volume(tmp_path / "series")
    _assert_same_grid(volume, data, affine)
    np.testing.assert_allclose(volume.zooms, np.linalg.norm(affine[:3, :3], axis=0), atol=1e-5)
    # rows and columns keep their directions; slices run along the image normal
    assert volume.axcodes[:2] == nib.aff2axcodes(affine)[:2]


def test_axial_series_keeps_the_voxel_order(tmp_path):
    """Columns along axis 0, rows along axis 1, slices along 2: the NIfTI's own order."""
    data = _data()
    write_series(tmp_path / "s", data, AXIAL)
    volume = load_volume(tmp_path / "s")
    np.testing.assert_array_equal(volume.data, data)
    np.testing.assert_allclose(volume.affine, AXIAL, atol=1e-5)


def test_shuffled_file_order_is_sorted_by_position(tmp_path):
    data = _data()
    order = np.random.default_rng(3).permutation(SHAPE[2])
    write_series(tmp_path / "s", data, oblique_affine(), order=order)
    _assert_same_grid(load_volume(tmp_path / "s"), data, oblique_affine())


def test_rescale_slope_and_intercept_are_applied(tmp_path):
    data = _data().astype(np.float32) * 0.5 - 1024
    write_series(tmp_path / "s", data, AXIAL, slope=0.5, intercept=-1024, modality="CT")
    volume = load_volume(tmp_path / "s")
    assert volume.data.dtype == np.float32
    np.testing.assert_array_equal(volume.data, data)


def test_integer_intercept_keeps_integers(tmp_path):
    data = _data().astype(np.int32) - 1024
    write_series(tmp_path / "s", data, AXIAL, intercept=-1024, modality="CT")
    volume = load_volume(tmp_path / "s")
    assert volume.data.dtype == np.int32
    np.testing.assert_array_equal(volume.data, data)


def test_one_file_opens_its_whole_series(tmp_path):
    data = _data()
    files = write_series(tmp_path / "s", data, oblique_affine())
    volume = load_volume(files[2])
    _assert_same_grid(volume, data, oblique_affine())


def _two_series(tmp_path):
    folder = tmp_path / "study"
    big = write_series(folder / "a", _data(), AXIAL, description="T1 big", uid="1.2.3.1")
    small = write_series(
        folder / "b", _data((6, 7, 3), 1), SAGITTAL, description="localizer", uid="1.2.3.2"
    )
    return folder, big, small


def test_folder_with_two_series_reads_the_largest_or_the_chosen_one(tmp_path):
    folder, _, _ = _two_series(tmp_path)
    with pytest.warns(UserWarning, match=r"2 DICOM series; reading the largest, 1\.2\.3\.1"):
        assert load_volume(folder).shape == SHAPE
    chosen = load_volume(folder, series="1.2.3.2")
    _assert_same_grid(chosen, _data((6, 7, 3), 1), SAGITTAL)


def test_unknown_series_lists_the_series_found(tmp_path):
    folder, _, _ = _two_series(tmp_path)
    with pytest.raises(VolumeError) as err:
        load_volume(folder, series="9.9")
    message = str(err.value)
    assert str(folder) in message and "9.9" in message
    assert "1.2.3.1 (T1 big, 5 slices)" in message
    assert "1.2.3.2 (localizer, 3 slices)" in message


def test_file_of_another_series_than_asked_is_refused(tmp_path):
    _, big, _ = _two_series(tmp_path)
    with pytest.raises(VolumeError, match=r"belongs to DICOM series 1\.2\.3\.1"):
        load_volume(big[0], series="1.2.3.2")


def test_missing_slice_is_refused_naming_the_folder(tmp_path):
    files = write_series(tmp_path / "s", _data(), AXIAL)
    files[2].unlink()
    with pytest.raises(VolumeError, match="irregular slice spacing") as err:
        load_volume(tmp_path / "s")
    assert str(tmp_path / "s") in str(err.value)


def test_mixed_orientations_are_refused(tmp_path):
    write_series(tmp_path / "s", _data(), AXIAL, uid="1.2.3")
    tilted = oblique_affine(zooms=(0.8, 1.1, 2.5))
    write_series(tmp_path / "s", _data((6, 7, 1)), tilted, uid="1.2.3", prefix="X")
    with pytest.raises(VolumeError, match="mixed slice orientations"):
        load_volume(tmp_path / "s")


def test_slices_sharing_a_position_are_refused(tmp_path):
    write_series(tmp_path / "s", _data(), AXIAL, uid="1.2.3")
    write_series(tmp_path / "s", _data(), AXIAL, uid="1.2.3", prefix="E2_")
    with pytest.raises(VolumeError, match="share a position"):
        load_volume(tmp_path / "s")


def test_folder_without_dicom_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("no scans here")
    with pytest.raises(VolumeError, match="without DICOM image files"):
        load_volume(tmp_path)


def test_compressed_pixels_without_a_decoder_name_the_package(tmp_path):
    import pydicom
    from pydicom.uid import JPEGLSLossless

    files = write_series(tmp_path / "s", _data(), AXIAL)
    for path in files:
        ds = pydicom.dcmread(path)
        ds.file_meta.TransferSyntaxUID = JPEGLSLossless
        ds.PixelData = pydicom.encaps.encapsulate([b"\xff\xd8not jpeg-ls\xff\xd9"])
        ds["PixelData"].VR = "OB"
        ds.save_as(path, enforce_file_format=True)
    from pydicom.pixels import get_decoder

    if get_decoder(JPEGLSLossless).is_available:
        pytest.skip("a JPEG-LS decoder is installed here")
    with pytest.raises(VolumeError, match=r"JPEG-LS.*pyjpegls"):
        load_volume(tmp_path / "s")


def test_series_too_large_for_memory_is_refused_before_its_pixels(tmp_path, monkeypatch):
    write_series(tmp_path / "s", _data(), AXIAL)
    monkeypatch.setattr(io, "available_memory", lambda: 100)

    def no_read(self):
        raise AssertionError("pixel data read before the memory check")

    monkeypatch.setattr(DicomSeries, "read", no_read)
    with pytest.raises(VolumeError, match=r"DICOM series declares a 6x7x5 int16 volume"):
        load_volume(tmp_path / "s")


def test_series_saves_as_nifti_with_its_geometry(tmp_path):
    data = _data()
    write_series(tmp_path / "s", data, oblique_affine())
    volume = load_volume(tmp_path / "s")
    saved = load_volume(save_volume(volume, tmp_path / "s.nii.gz"))
    np.testing.assert_array_equal(saved.data, volume.data)
    np.testing.assert_allclose(saved.affine, volume.affine, atol=1e-5)
    header = saved.header
    assert (int(header["qform_code"]), int(header["sform_code"])) == (1, 1)


def test_series_option_on_a_nifti_is_refused(tiny_nifti):
    with pytest.raises(VolumeError, match="only a DICOM series has one"):
        load_volume(tiny_nifti, series="1.2.3")


@pytest.mark.parametrize("suffix", [".hdr", ".img"])
def test_analyze_pair_round_trip(tmp_path, suffix):
    data = _data()
    img = nib.AnalyzeImage(data, np.diag([2.0, 3.0, 4.0, 1.0]))
    nib.save(img, tmp_path / "scan.hdr")
    want = nib.load(tmp_path / "scan.hdr")
    volume = load_volume(tmp_path / f"scan{suffix}")
    np.testing.assert_array_equal(volume.data, data)
    np.testing.assert_allclose(volume.affine, want.affine)
    saved = load_volume(save_volume(volume, tmp_path / "map.nii.gz"))
    np.testing.assert_allclose(saved.affine, want.affine)


def test_analyze_header_without_its_image_is_refused(tmp_path):
    nib.save(nib.AnalyzeImage(_data(), np.eye(4)), tmp_path / "scan.hdr")
    (tmp_path / "scan.img").unlink()
    with pytest.raises(VolumeError, match=r"without its pair scan\.img"):
        load_volume(tmp_path / "scan.hdr")


def test_in_plane_geometry_agrees_with_nibabel_dicom_wrapper(tmp_path):
    """An independent reader of the same tags (nibabel.nicom, rows first) checks the
    helper and the reader against each other not being wrong in the same way."""
    with warnings.catch_warnings():  # "highly experimental" (for the whole readers)
        warnings.simplefilter("ignore", UserWarning)
        from nibabel.nicom import dicomwrappers

    data = _data()
    files = write_series(tmp_path / "s", data, oblique_affine())
    volume = load_volume(tmp_path / "s")
    wrapper = dicomwrappers.wrapper_from_file(str(files[0]))
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ volume.affine
    np.testing.assert_allclose(lps[:3, [1, 0, 3]], wrapper.affine[:3, [0, 1, 3]], atol=1e-5)
    np.testing.assert_array_equal(volume.data[:, :, 0].T, wrapper.get_data())


def test_nifti_pair_keeps_its_header(tmp_path):
    affine = oblique_affine()
    img = nib.Nifti1Pair(_data(), affine)
    img.set_qform(affine, code=1)
    nib.save(img, tmp_path / "pair.hdr")
    volume = load_volume(tmp_path / "pair.img")
    np.testing.assert_allclose(volume.affine, affine, atol=1e-5)
    assert int(volume.header["qform_code"]) == 1


def test_source_files_are_what_a_scan_is_read_from(tmp_path, tiny_nifti):
    """--resume fingerprints these: a series' files, both files of a pair, a file."""
    files = write_series(tmp_path / "s", _data(), oblique_affine())
    assert io.source_files(files[2]) == sorted(files)
    assert io.source_files(tmp_path / "s") == sorted(files)
    nib.save(nib.AnalyzeImage(_data(), np.eye(4)), tmp_path / "scan.hdr")
    assert io.source_files(tmp_path / "scan.img") == [tmp_path / "scan.img", tmp_path / "scan.hdr"]
    assert io.source_files(tiny_nifti) == [tiny_nifti]
