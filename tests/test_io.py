import gzip
import os
import sys
import warnings

import nibabel as nib
import numpy as np
import pytest

from anomaly_maps import Volume, load_volume, save_volume
from anomaly_maps.errors import VolumeError

from conftest import oblique_affine, write_nifti


def test_load_keeps_data_affine_and_header(tiny_nifti, tiny_volume):
    vol = load_volume(tiny_nifti)
    np.testing.assert_array_equal(vol.data, tiny_volume.data)
    np.testing.assert_allclose(vol.affine, tiny_volume.affine, atol=1e-5)
    assert vol.path == tiny_nifti
    assert (int(vol.header["qform_code"]), int(vol.header["sform_code"])) == (1, 2)
    np.testing.assert_allclose(vol.zooms, (0.9, 1.3, 2.7), rtol=1e-5)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_saved_map_keeps_geometry(tmp_path, tiny_nifti, suffix):
    scan = load_volume(tiny_nifti)
    anomaly_map = np.random.default_rng(1).random(scan.shape)  # float64 -> float32 on disk
    out = save_volume(scan.with_data(anomaly_map), tmp_path / f"map{suffix}")
    back = load_volume(out)
    assert back.shape == scan.shape
    assert back.data.dtype == np.float32
    np.testing.assert_allclose(back.data, anomaly_map, rtol=1e-6)
    np.testing.assert_allclose(back.affine, scan.affine, atol=1e-6)
    img = nib.load(out)
    assert (int(img.header["qform_code"]), int(img.header["sform_code"])) == (1, 2)
    np.testing.assert_allclose(img.header.get_zooms(), scan.header.get_zooms(), rtol=1e-6)


def test_bool_mask_saved_as_uint8(tmp_path, tiny_volume):
    out = save_volume(tiny_volume.with_data(tiny_volume.data > 150), tmp_path / "m.nii.gz")
    back = load_volume(out)
    assert back.data.dtype == np.uint8
    assert back.data.sum() == (tiny_volume.data > 150).sum()


def test_save_without_header_declares_scanner_codes(tmp_path):
    vol = Volume(np.zeros((3, 4, 5), np.float32), oblique_affine())
    img = nib.load(save_volume(vol, tmp_path / "x.nii"))
    assert img.header["sform_code"] == 1
    np.testing.assert_allclose(img.affine, vol.affine, atol=1e-6)


def test_save_refuses_to_overwrite_and_leaves_no_temp(tmp_path, tiny_volume):
    out = tmp_path / "map.nii.gz"
    save_volume(tiny_volume, out)
    before = out.read_bytes()
    with pytest.raises(VolumeError, match="already exists"):
        save_volume(tiny_volume.with_data(tiny_volume.data * 0), out)
    assert out.read_bytes() == before
    save_volume(tiny_volume.with_data(tiny_volume.data * 0), out, overwrite=True)
    assert load_volume(out).data.max() == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.nii.gz"]


def test_save_failure_leaves_nothing(tmp_path, monkeypatch, tiny_volume):
    def broken_save(img, filename):
        filename.write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(nib, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_volume(tiny_volume, tmp_path / "map.nii.gz")
    assert list(tmp_path.iterdir()) == []


def test_save_rejects_unknown_suffix(tmp_path, tiny_volume):
    with pytest.raises(VolumeError, match=r"expected a name ending in \.nii or \.nii\.gz"):
        save_volume(tiny_volume, tmp_path / "map.npy")


def test_with_data_rejects_other_shape(tiny_volume):
    with pytest.raises(VolumeError, match="expected the volume's shape"):
        tiny_volume.with_data(np.zeros((2, 2, 2)))


def test_missing_file(tmp_path):
    with pytest.raises(VolumeError, match="no such file") as err:
        load_volume(tmp_path / "nope.nii.gz")
    assert "nope.nii.gz" in str(err.value)


def test_directory(tmp_path):
    with pytest.raises(VolumeError, match="is a directory"):
        load_volume(tmp_path)


def test_empty_file(tmp_path):
    (tmp_path / "e.nii").write_bytes(b"")
    with pytest.raises(VolumeError, match="file is empty"):
        load_volume(tmp_path / "e.nii")


def test_not_nifti_suffix(tmp_path):
    (tmp_path / "scan.bmp").write_bytes(b"BM....")
    with pytest.raises(VolumeError, match=r"unsupported file type '\.bmp'"):
        load_volume(tmp_path / "scan.bmp")


def test_corrupt_image(tmp_path):
    (tmp_path / "scan.png").write_bytes(b"\x89PNG....")
    with pytest.raises(VolumeError, match=r"scan.png: not a readable PNG, JPEG or TIFF image"):
        load_volume(tmp_path / "scan.png")


def test_not_nifti_content(tmp_path):
    (tmp_path / "scan.nii").write_bytes(b"this is not an image" * 50)
    with pytest.raises(VolumeError, match="not a readable NIfTI image"):
        load_volume(tmp_path / "scan.nii")


def test_gzip_suffix_mismatch(tmp_path, tiny_nifti):
    raw = gzip.decompress(tiny_nifti.read_bytes())
    (tmp_path / "raw.nii.gz").write_bytes(raw)
    with pytest.raises(VolumeError, match="not gzip-compressed"):
        load_volume(tmp_path / "raw.nii.gz")


def test_truncated_gz(tmp_path, tiny_nifti):
    data = tiny_nifti.read_bytes()
    bad = tmp_path / "cut.nii.gz"
    bad.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(VolumeError, match="truncated or corrupt") as err:
        load_volume(bad)
    assert "cut.nii.gz" in str(err.value)


def test_truncated_nii(tmp_path, tiny_nifti):
    raw = gzip.decompress(tiny_nifti.read_bytes())
    bad = tmp_path / "cut.nii"
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(VolumeError, match="truncated or corrupt"):
        load_volume(bad)


def test_2d_image(tmp_path):
    write_nifti(tmp_path / "flat.nii", np.zeros((8, 9), np.float32), np.eye(4))
    with pytest.raises(VolumeError, match="expected a 3D volume"):
        load_volume(tmp_path / "flat.nii")


def test_4d_series_takes_first_with_warning(tmp_path):
    series = np.stack([np.full((4, 5, 6), i, np.float32) for i in range(3)], axis=-1)
    path = write_nifti(tmp_path / "series.nii.gz", series, oblique_affine())
    with pytest.warns(UserWarning, match="4D series of 3 volumes; using volume 0"):
        assert load_volume(path).data.max() == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_volume(path, volume_index=2).data.min() == 2
    with pytest.raises(VolumeError, match=r"volume_index=3 out of range \[0, 2\]"):
        load_volume(path, volume_index=3)


def test_single_volume_4d_is_3d_silently(tmp_path):
    path = write_nifti(tmp_path / "one.nii", np.ones((4, 5, 6, 1), np.float32), np.eye(4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_volume(path).shape == (4, 5, 6)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_voxels(tmp_path, bad):
    data = np.ones((4, 5, 6), np.float32)
    data[1, 2, 3] = bad
    data[0, 0, 0] = bad
    path = write_nifti(tmp_path / "bad.nii", data, np.eye(4))
    with pytest.raises(VolumeError, match="2 voxel\\(s\\) are NaN or infinite"):
        load_volume(path)


def test_empty_array(tmp_path):
    path = write_nifti(tmp_path / "empty.nii", np.zeros((0, 5, 6), np.float32), np.eye(4))
    with pytest.raises(VolumeError, match="image is empty"):
        load_volume(path)


def test_volume_rejects_bad_affine():
    with pytest.raises(VolumeError, match="4x4"):
        Volume(np.zeros((2, 2, 2)), np.eye(3))
    with pytest.raises(VolumeError, match="singular"):
        Volume(np.zeros((2, 2, 2)), np.diag([1.0, 0.0, 1.0, 1.0]))


def _header_only_nifti(path, shape, dtype) -> None:
    """A NIfTI whose header declares ``shape`` but which holds a few bytes of voxels."""
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header.set_qform(np.eye(4), code=1)
    raw = header.binaryblock + b"\x00" * (int(header["vox_offset"]) - 348 + 64)
    path.write_bytes(gzip.compress(raw) if path.name.endswith(".gz") else raw)


@pytest.mark.parametrize("name", ["huge.nii.gz", "huge.nii"])
def test_a_header_declaring_more_than_memory_is_refused_from_the_header(tmp_path, name):
    path = tmp_path / name
    _header_only_nifti(path, (32767, 32767, 32767), np.float64)  # 281 TB declared
    with pytest.raises(VolumeError, match=r"huge\.nii.*32767x32767x32767 float64.*281 TB") as exc:
        load_volume(path)
    assert str(path) in str(exc.value)
    assert "\n" not in str(exc.value)


def test_memory_bound_is_the_available_memory(tmp_path, tiny_nifti, monkeypatch):
    import anomaly_maps.io as io

    monkeypatch.setattr(io, "available_memory", lambda: 60_000)  # tiny_head: 69 kB float32
    with pytest.raises(VolumeError, match="only 60 kB of memory is available"):
        load_volume(tiny_nifti)
    monkeypatch.setattr(io, "available_memory", lambda: None)  # unknown: no bound
    assert load_volume(tiny_nifti).shape == (31, 33, 17)


@pytest.mark.skipif(not hasattr(os, "sysconf"), reason="no sysconf (Windows)")
def test_available_memory_without_psutil_is_the_physical_memory(monkeypatch):
    from anomaly_maps.io import available_memory

    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil -> ImportError
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert available_memory() == physical > 0
