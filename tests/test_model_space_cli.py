"""``anomaly-maps info --checkpoint`` says what scoring does to a scan first, and
``score --space`` refuses what it cannot do before writing anything."""

from __future__ import annotations

from test_model_space import _moved, coarse_brain

from anomaly_maps.cli import main
from anomaly_maps.io import save_volume
from anomaly_maps.samples import sample_path


def test_info_says_whether_a_scan_is_registered(tmp_path, capsys):
    scan, _ = _moved(coarse_brain(), (12, 0, 5), (2.0, 0.0, 0.0), (3.0, 3.0, 5.0), (60, 70, 34))
    oblique = save_volume(scan, tmp_path / "oblique.nii.gz")
    ckpt = str(sample_path("vae"))
    assert main(["info", "--checkpoint", ckpt, str(sample_path("demo_scan")), str(oblique)]) == 0
    out = capsys.readouterr().out
    plans = out.split("before scoring with")[1:]
    assert len(plans) == 2
    assert "model space   MNI152NLin2009aSym 1.82 mm, 128x128x128 voxels, RAS" in plans[0]
    assert "registration  no: the scan lies on the model's grid" in plans[0]
    assert "registration  yes: not on the model's grid (shape 60x70x34 vs 128x128x128" in plans[1]
    assert "(oblique)" in plans[1]
    assert "intensities   foreground 0.5-99.5 percentiles to [0, 1]" in plans[1]


def test_info_without_checkpoint_is_unchanged(tiny_nifti, capsys):
    assert main(["info", str(tiny_nifti)]) == 0
    assert "before scoring" not in capsys.readouterr().out


def test_space_model_without_a_known_space_fails_before_writing(
    tiny_nifti, tiny_checkpoint, tmp_path, capsys
):
    out = tmp_path / "out"
    code = main(["score", str(tiny_nifti), "--checkpoint", str(tiny_checkpoint),
                 "--scorer", "rec", "--out", str(out), "--space", "model"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"anomaly-maps score: error: --space model: {tiny_checkpoint} records no model space "
        "with a template (space: unknown); use --space native"
    ]
    assert not out.exists() or not any(out.iterdir())


def test_space_model_refuses_existing_model_space_maps(tmp_path, capsys):
    scan = save_volume(coarse_brain(), tmp_path / "b.nii.gz")
    out = tmp_path / "out"
    out.mkdir()
    (out / "b_rec_model-space.nii.gz").write_bytes(b"keep")
    code = main(["score", str(scan), "--checkpoint", str(sample_path("vae")), "--scorer", "rec",
                 "--out", str(out), "--space", "model"])  # fmt: skip
    assert code == 2
    assert "b_rec_model-space.nii.gz: exists; pass --overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["b_rec_model-space.nii.gz"]
    assert (out / "b_rec_model-space.nii.gz").read_bytes() == b"keep"
