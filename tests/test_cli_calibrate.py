"""``anomaly-maps calibrate`` and ``score --normalize / --volume-score``."""

import numpy as np
import pytest

from anomaly_maps.checkpoint import load_checkpoint
from anomaly_maps.cli import main
from anomaly_maps.io import load_volume, save_volume
from anomaly_maps.scoring.calibration import find_calibration


@pytest.fixture
def calibrated(tiny_nifti, tiny_checkpoint, tmp_path, capsys):
    """The tiny checkpoint calibrated for rec (sigma 1) on the tiny scan, with a label."""
    labelled = tmp_path / "val"
    scan = load_volume(tiny_nifti)
    save_volume(scan, labelled / "toy" / "case.nii.gz")
    label = (scan.data > np.quantile(scan.data, 0.97)).astype(np.uint8)
    save_volume(scan.with_data(label), labelled / "toy_label" / "pixel" / "case.nii.gz")
    out = tmp_path / "calibrated.safetensors"
    args = ["calibrate", str(tiny_nifti), "--checkpoint", str(tiny_checkpoint),
            "--scorer", "rec", "--param", "sigma=1", "--labelled", str(labelled),
            "--out", str(out), "--device", "cpu"]  # fmt: skip
    assert main(args) == 0
    assert "best Dice" in capsys.readouterr().out
    assert main(args) == 2  # exists: refused
    assert "pass --overwrite" in capsys.readouterr().err
    return out


def test_calibrate_stores_statistics(calibrated):
    checkpoint = load_checkpoint(calibrated)
    cal = find_calibration(checkpoint, "rec", {"sigma": 1.0})
    assert cal is not None and cal.n_volumes == 1 and 0 < cal.dice <= 1
    assert cal.dice_threshold > 0
    assert find_calibration(checkpoint, "rec", {}) is None


def test_score_normalised_for_mood(calibrated, tiny_nifti, tmp_path):
    out = tmp_path / "mood"
    args = ["score", str(tiny_nifti), "--checkpoint", str(calibrated), "--scorer", "rec",
            "--param", "sigma=1", "--normalize", "mood", "--volume-score", "map_p99",
            "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    anomaly = load_volume(out / "tiny_head_rec.nii.gz").data
    score = float((out / "tiny_head_rec.txt").read_text())
    assert anomaly.min() >= 0 and anomaly.max() < 1 and 0 <= score < 1
    assert anomaly.max() > 0


def test_model_normalisation_needs_a_calibration(tiny_nifti, tiny_checkpoint, tmp_path, capsys):
    args = ["score", str(tiny_nifti), "--checkpoint", str(tiny_checkpoint), "--scorer", "rec",
            "--normalize", "model", "--out", str(tmp_path / "o")]  # fmt: skip
    assert main(args) == 2
    assert "anomaly-maps calibrate" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_calibration_stores_healthy_volume_scores_for_every_aggregate(calibrated, tiny_nifti):
    """The worklist ranks a scan against healthy volumes: their raw volume scores."""
    from anomaly_maps.scoring import score_volume

    checkpoint = load_checkpoint(calibrated)
    cal = find_calibration(checkpoint, "rec", {"sigma": 1.0})
    assert set(cal.volume_scores) == {"slice_mean", "slice_max", "map_mean", "map_p99"}
    for aggregate, values in cal.volume_scores.items():
        [raw] = score_volume(load_volume(tiny_nifti), checkpoint, [("rec", {"sigma": 1.0})],
                             volume_score=aggregate, device="cpu")  # fmt: skip
        assert values == pytest.approx((raw.volume_score,), rel=1e-6)


def test_worklist_ranks_against_the_healthy_volumes(calibrated, tiny_nifti, tmp_path):
    scan = load_volume(tiny_nifti)
    rng = np.random.default_rng(0)
    noisy = scan.with_data(scan.data + rng.normal(0, scan.data.std() / 2, scan.shape))
    noisy_path = save_volume(
        noisy.with_data(noisy.data.astype(np.float32)), tmp_path / "noisy.nii.gz"
    )
    out = tmp_path / "work"
    args = ["score", str(tiny_nifti), str(noisy_path), "--checkpoint", str(calibrated),
            "--scorer", "rec", "--param", "sigma=1", "--findings", "--out", str(out),
            "--volume-score", "map_p99", "--device", "cpu"]  # fmt: skip
    assert main(args) == 0
    header, *rows = [line.split(",") for line in (out / "worklist.csv").read_text().splitlines()]
    healthy = find_calibration(load_checkpoint(calibrated), "rec", {"sigma": 1.0})
    for row in rows:
        score, above = (
            float(row[header.index("volume_score")]),
            row[header.index("healthy_volumes_above")],
        )
        expected = np.mean(
            np.asarray(healthy.volume_scores["map_p99"]) > score + 1e-5
        )  # CSV: 6 digits
        assert float(above) == pytest.approx(expected)
    assert {row[0] for row in rows} == {"tiny_head", "noisy"}
