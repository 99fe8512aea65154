"""DICOM folders as SCAN in the CLI: info, score (same maps as the NIfTI export), --series."""

from __future__ import annotations

import numpy as np
import pytest
from dicom_series import write_series

from anomaly_maps.cli import main
from anomaly_maps.io import load_volume, save_volume


@pytest.fixture
def tiny_dicom(tmp_path, tiny_volume):
    """The tiny head as an MR series (slope 0.01 keeps two decimals), beside a localizer."""
    folder = tmp_path / "DICOMDIR"
    write_series(folder / "t1", tiny_volume.data, tiny_volume.affine, slope=0.01, uid="1.2.3.1")
    small = np.ones((8, 8, 2), np.int16)
    write_series(folder / "loc", small, np.eye(4), description="localizer", uid="1.2.3.2")
    return folder


def test_info_on_a_dicom_folder(tiny_dicom, capsys):
    with pytest.warns(UserWarning, match="2 DICOM series; reading the largest"):
        assert main(["info", str(tiny_dicom)]) == 0
    out = capsys.readouterr().out
    assert "(31, 33, 17)" in out
    assert "0.9 x 1.3 x 2.7 mm" in out
    assert "qform/sform codes 1/1" in out


def test_series_option_chooses_and_lists(tiny_dicom, capsys):
    assert main(["info", str(tiny_dicom), "--series", "1.2.3.2"]) == 0
    assert "(8, 8, 2)" in capsys.readouterr().out
    assert main(["info", str(tiny_dicom), "--series", "4.5.6"]) == 2
    err = capsys.readouterr().err
    assert "no DICOM series 4.5.6" in err
    assert "1.2.3.1 (T1, 17 slices); 1.2.3.2 (localizer, 2 slices)" in err


@pytest.mark.filterwarnings("ignore:.*2 DICOM series:UserWarning")
def test_score_a_dicom_folder_as_its_nifti_export(tiny_dicom, tiny_checkpoint, tmp_path, capsys):
    export = save_volume(load_volume(tiny_dicom), tmp_path / "export.nii.gz")
    maps = {}
    for scan in (tiny_dicom, export):
        out = tmp_path / f"out_{scan.name}"
        args = ["score", str(scan), "--checkpoint", str(tiny_checkpoint), "--scorer", "rec",
                "--out", str(out), "--device", "cpu"]  # fmt: skip
        assert main(args) == 0
        [written] = out.glob("*_rec.nii.gz")
        maps[scan.name] = load_volume(written)
    dicom_map, nifti_map = maps["DICOMDIR"], maps["export.nii.gz"]
    assert dicom_map.shape == (31, 33, 17)
    np.testing.assert_allclose(dicom_map.affine, nifti_map.affine, atol=1e-6)
    np.testing.assert_allclose(dicom_map.data, nifti_map.data, rtol=1e-6, atol=1e-7)
    assert "DICOMDIR: rec volume score" in capsys.readouterr().out


def test_a_glob_over_a_series_files_names_one_scan(tiny_dicom):
    from anomaly_maps.cli._options import expand_paths

    [first] = expand_paths([str(tiny_dicom / "t1" / "*.dcm")], "SCAN")
    assert first.endswith("IM0000.dcm")
    both = expand_paths([str(tiny_dicom / "*" / "*.dcm")], "SCAN")
    assert [p.split("/")[-2] for p in both] == ["loc", "t1"]


@pytest.mark.parametrize("command", ["info", "preprocess", "score", "calibrate"])
def test_every_scan_command_takes_series(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "--series UID" in capsys.readouterr().out


def test_mood_layout_names_a_dicom_folder_as_nifti(tiny_dicom, tiny_checkpoint, tmp_path):
    """MOOD's layout names a map after its case; a folder gets `<folder>.nii.gz`."""
    out = tmp_path / "mood"
    args = ["score", str(tiny_dicom), "--checkpoint", str(tiny_checkpoint), "--scorer", "rec",
            "--out", str(out), "--device", "cpu", "--layout", "mood"]  # fmt: skip
    with pytest.warns(UserWarning, match="2 DICOM series"):
        assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["DICOMDIR.nii.gz", "DICOMDIR.nii.gz.txt"]
    assert load_volume(out / "DICOMDIR.nii.gz").shape == (31, 33, 17)


def test_a_series_of_another_modality_is_refused_by_its_header(
    tmp_path, tiny_volume, tiny_checkpoint, capsys
):
    """The tiny model learnt MR scans (``train`` records it); a CT series gets one line
    naming both modalities and nothing is written. ``info`` shows the series' modality
    and the refusal."""
    folder = tmp_path / "ct"
    write_series(folder, tiny_volume.data, tiny_volume.affine, modality="CT", slope=0.01)
    out = tmp_path / "out"
    args = ["score", str(folder), "--checkpoint", str(tiny_checkpoint), "--scorer", "rec",
            "--out", str(out), "--device", "cpu"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "ct: is a CT series (DICOM Modality), but the model was trained on MR scans" in err[0]
    assert not out.exists() or not any(out.iterdir())
    assert main(["info", str(folder), "--checkpoint", str(tiny_checkpoint)]) == 0
    printed = capsys.readouterr().out
    assert "modality     CT (DICOM)" in printed
    assert "refused       is a CT series" in printed
    assert load_volume(folder).modality == "CT"
    assert load_volume(folder).with_data(tiny_volume.data).modality == "CT"
