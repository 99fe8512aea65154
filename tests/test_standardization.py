"""Nyúl histogram standardisation: against the reference package, against the percentile
normalisation it generalises, and through training and scoring."""

from __future__ import annotations

import json

import numpy as np
import pytest

from anomaly_maps.errors import ParameterError
from anomaly_maps.io import Volume, save_volume
from anomaly_maps.preprocessing import PreprocessingSpec, foreground_mask, normalize_intensity
from anomaly_maps.standardization import (
    landmark_levels,
    scan_landmarks,
    standard_scale,
    standardize,
)
from anomaly_maps.training import fit_standard_scale

PERCENTILES = (0.5, 99.5)


def tissue(seed: int, gamma: float = 1.0, gain: float = 1.0) -> np.ndarray:
    """(12, 12, 12) float: three tissue classes and noise on a dark background; the
    intensities raised to ``gamma`` and multiplied by ``gain`` (another scanner)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(1, 4, size=(12, 12, 12))
    data = np.choose(labels, [0.0, 0.3, 0.6, 0.9]) + rng.normal(0, 0.03, labels.shape)
    data = np.clip(data, 0.01, None) ** gamma * gain
    data[:2] = 0  # background
    return data


def test_landmark_levels_are_the_ends_and_the_deciles_between():
    assert landmark_levels((0.5, 99.5)) == (0.5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 99.5)
    assert landmark_levels((15.0, 85.0)) == (15.0, 20, 30, 40, 50, 60, 70, 80, 85.0)


def test_matches_the_intensity_normalization_package():
    """Their NyulNormalizer extrapolates its end segments; clipped to [0, 1] it is ours."""
    nyul = pytest.importorskip("intensity_normalization.normalizers.population.nyul")
    from intensity_normalization.adapters.images import NumpyImageAdapter

    scans = [tissue(seed) for seed in range(3)]
    masks = [foreground_mask(s) for s in scans]
    reference = nyul.NyulNormalizer(
        output_min_value=0.0, output_max_value=1.0,
        min_percentile=PERCENTILES[0], max_percentile=PERCENTILES[1],
    )  # fmt: skip
    reference.fit_population(
        [NumpyImageAdapter(s) for s in scans], [NumpyImageAdapter(m) for m in masks]
    )
    marks = [scan_landmarks(s[m], PERCENTILES) for s, m in zip(scans, masks, strict=True)]
    scale = standard_scale(marks)
    np.testing.assert_allclose(scale, reference.standard_scale, atol=1e-8)

    new = tissue(7, gamma=1.7, gain=300.0)
    fg = foreground_mask(new)
    theirs = reference.transform(NumpyImageAdapter(new), NumpyImageAdapter(fg)).get_data()
    ours = standardize(new, new[fg], scale, PERCENTILES)
    np.testing.assert_allclose(ours, np.clip(theirs, 0, 1), atol=1e-6)


def test_a_scan_on_its_own_scale_is_its_percentile_normalisation():
    """With the standard scale of the scan itself the landmarks are collinear: the map is
    the two-landmark (percentile) normalisation, voxel for voxel."""
    data = tissue(0)
    mask = foreground_mask(data)
    scale = standard_scale([scan_landmarks(data[mask], PERCENTILES)])
    nyul = PreprocessingSpec(normalization="nyul", landmarks=scale)
    expected = normalize_intensity(data, mask, PreprocessingSpec())
    np.testing.assert_allclose(normalize_intensity(data, mask, nyul), expected, atol=1e-6)


def test_another_scanner_contrast_lands_on_the_training_scale():
    """A gamma 1.8 contrast (and another gain) of the same anatomy: after standardisation
    the tissue means sit where the training scan's do, much closer than after the
    percentile rescaling, which aligns only the two ends."""
    train, other = tissue(0), tissue(0, gamma=1.8, gain=40.0)
    mask = foreground_mask(train)
    nyul = PreprocessingSpec(
        normalization="nyul",
        landmarks=standard_scale([scan_landmarks(train[mask], PERCENTILES)]),
    )
    target = normalize_intensity(train, mask, nyul)
    err = {
        name: np.abs(normalize_intensity(other, mask, spec) - target)[mask].mean()
        for name, spec in (("nyul", nyul), ("percentile", PreprocessingSpec()))
    }
    assert err["nyul"] < 0.02 < err["percentile"] / 3, err


def test_spec_checks_its_landmarks():
    with pytest.raises(ParameterError, match="only for normalization 'nyul'"):
        PreprocessingSpec(landmarks=(0.0, 1.0))
    with pytest.raises(ParameterError, match="expected 11 non-decreasing values in"):
        PreprocessingSpec(normalization="nyul", landmarks=(0.0, 0.5, 1.0))
    with pytest.raises(ParameterError, match="nyul' is for 3D scans"):
        PreprocessingSpec(normalization="nyul", images=True)
    unfit = PreprocessingSpec(normalization="nyul")
    assert unfit.needs_landmarks()
    data = tissue(0)
    with pytest.raises(ParameterError, match="learnt from the training scans"):
        normalize_intensity(data, foreground_mask(data), unfit)


def test_training_learns_the_scale_and_the_checkpoint_keeps_it(tmp_path, capsys):
    """``train --normalization nyul`` fits the standard scale on the training scans,
    stores it in the checkpoint, and ``score`` and ``info`` use it."""
    from anomaly_maps.checkpoint import load_checkpoint
    from anomaly_maps.cli import main

    paths = []
    for seed in range(2):
        paths.append(tmp_path / f"t{seed}.nii.gz")
        save_volume(Volume(np.pad(tissue(seed), 2).astype(np.float32), np.eye(4)), paths[-1])
    expected = fit_standard_scale(paths, PreprocessingSpec(size=16, normalization="nyul"))
    assert len(expected.landmarks) == 11 and expected.landmarks[0] == 0.0

    ckpt = tmp_path / "m.safetensors"
    train = ["train", "--model", "dae", "--data", *map(str, paths), "--out", str(ckpt),
             "--size", "16", "--set", "widths=[8,16]", "--epochs", "1", "--batch-size", "4",
             "--device", "cpu", "--val-fraction", "0", "--normalization", "nyul"]  # fmt: skip
    assert main(train) == 0, capsys.readouterr().err
    pre = load_checkpoint(ckpt).preprocessing
    assert pre.normalization == "nyul"
    np.testing.assert_allclose(pre.landmarks, expected.landmarks)
    assert json.loads(json.dumps(pre.to_dict()))["landmarks"] == list(pre.landmarks)

    out = tmp_path / "scores"
    score = ["score", str(paths[0]), "--checkpoint", str(ckpt), "--scorer", "rec",
             "--out", str(out), "--device", "cpu"]  # fmt: skip
    assert main(score) == 0, capsys.readouterr().err
    assert (out / "t0_rec.nii.gz").exists()
    assert main(["info", str(paths[0]), "--checkpoint", str(ckpt)]) == 0
    assert "Nyúl histogram standardisation: 11 foreground percentile" in capsys.readouterr().out
