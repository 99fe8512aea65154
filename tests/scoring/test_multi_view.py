"""Multi-view scoring (the ``views`` scorer parameter) and multi-view training data."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from anomaly_maps.checkpoint import Checkpoint
from anomaly_maps.errors import ParameterError
from anomaly_maps.io import load_volume
from anomaly_maps.preprocessing import PreprocessingSpec, to_slices
from anomaly_maps.scoring import get_scorer, score_volume
from anomaly_maps.scoring.pipeline import combine_views, view_axes


def _checkpoint(models, axis="axial"):
    return Checkpoint(None, models["restoration"], PreprocessingSpec(size=16, axis=axis))


def test_view_axes_put_the_model_axis_first():
    assert view_axes({}, "coronal") == ("coronal",)
    assert view_axes({"views": "single"}, "axial") == ("axial",)
    assert view_axes({"views": "orthogonal"}, "coronal") == ("coronal", "axial", "sagittal")


def test_combine_views_is_the_geometric_mean_of_the_clipped_maps():
    rng = np.random.default_rng(0)
    maps = [rng.random((3, 4, 5)).astype(np.float32) for _ in range(3)]
    maps[1][0, 0, 0] = -0.5  # a negative value counts as 0
    want = np.cbrt(np.clip(maps[0], 0, None) * np.clip(maps[1], 0, None) * maps[2])
    np.testing.assert_allclose(combine_views(maps), want, rtol=1e-6)
    assert combine_views(maps[:1]) is maps[0]


def test_orthogonal_map_is_the_geometric_mean_of_three_single_view_runs(tiny_models, tiny_volume):
    ckpt = _checkpoint(tiny_models)
    for name in ("fpi", "disyre"):
        assert get_scorer(name).resolve_params()["views"] == "single"  # the papers
    params = {"through": 1.0}
    (multi,) = score_volume(tiny_volume, ckpt, [("fpi", {**params, "views": "orthogonal"})])
    singles = [
        score_volume(tiny_volume, _checkpoint(tiny_models, a), [("fpi", params)])[0]
        for a in ("axial", "coronal", "sagittal")
    ]
    want = combine_views([s.map for s in singles]) * singles[0].foreground
    np.testing.assert_allclose(multi.map, want, rtol=1e-5, atol=1e-7)
    # the views differ, so the ensemble is not one of them
    assert not np.allclose(singles[0].map, singles[1].map)
    # slice scores and the scored slices stay those of the model's own axis
    np.testing.assert_array_equal(multi.slice_scores, singles[0].slice_scores)
    np.testing.assert_array_equal(multi.scored, singles[0].scored)
    assert multi.params["views"] == "orthogonal"


def test_progress_counts_the_slices_of_every_view(tiny_models, tiny_volume):
    ckpt = _checkpoint(tiny_models)
    calls = []
    score_volume(tiny_volume, ckpt, [("fpi", {"views": "orthogonal"})], batch_size=4,
                 progress=lambda done, total: calls.append((done, total)))  # fmt: skip
    n = sum(
        int(to_slices(tiny_volume, replace(ckpt.preprocessing, axis=a)).mask.any((1, 2)).sum())
        for a in ("axial", "coronal", "sagittal")
    )
    assert calls[-1] == (n, n)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert {t for _, t in calls} == {n}


def test_bad_views_and_2d_images_are_refused(tiny_models, tmp_path):
    with pytest.raises(ParameterError, match="views='all'"):
        get_scorer("fpi").resolve_params({"views": "all"})
    yy, xx = np.mgrid[:20, :30]
    Image.fromarray(((np.hypot(yy - 10, xx - 15) < 8) * 200).astype(np.uint8)).save(
        tmp_path / "grey.png"
    )
    ckpt = Checkpoint(None, tiny_models["restoration"], PreprocessingSpec(size=16, images=True))
    with pytest.raises(ParameterError, match="2D image has one plane"):
        score_volume(load_volume(tmp_path / "grey.png"), ckpt, [("fpi", {"views": "orthogonal"})])


def test_training_slices_of_extra_axes_join_the_data(tiny_volume, tmp_path):
    from anomaly_maps.io import save_volume
    from anomaly_maps.training import TrainConfig
    from anomaly_maps.training.data import load_slices

    path = save_volume(tiny_volume, tmp_path / "head.nii.gz")
    spec = PreprocessingSpec(size=16)
    one = {a: len(load_slices([path], replace(spec, axis=a), min_foreground=0.05))
           for a in ("axial", "coronal", "sagittal")}  # fmt: skip
    both = load_slices([path], spec, min_foreground=0.05, extra_axes=("sagittal",))
    assert len(both) == one["axial"] + one["sagittal"]
    assert set(both.volume.tolist()) == {0}  # held out by volume, all views together
    with pytest.raises(ParameterError, match="extra_axes"):
        TrainConfig(extra_axes=("axial", "axial"))
    with pytest.raises(ParameterError, match="extra_axes"):
        TrainConfig(extra_axes=("oblique",))


def test_train_on_several_axes_records_them(tiny_nifti, tmp_path, capsys):
    from anomaly_maps.checkpoint import load_checkpoint
    from anomaly_maps.cli import main

    ckpt = tmp_path / "m.safetensors"
    argv = ["train", "--model", "restoration", "--data", str(tiny_nifti), "--out", str(ckpt),
            "--size", "16", "--set", "widths=[8,16]", "--epochs", "1", "--batch-size", "8",
            "--device", "cpu", "--val-fraction", "0", "--axis", "coronal", "axial"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    records = load_checkpoint(ckpt).records.training
    assert records.preprocessing["axis"] == "coronal"
    assert records.config["extra_axes"] == ["axial"]
    coronal = load_slices_count(tiny_nifti, "coronal")
    assert records.train_slices == coronal + load_slices_count(tiny_nifti, "axial")


def load_slices_count(path, axis):
    from anomaly_maps.training.data import load_slices

    return len(load_slices([path], PreprocessingSpec(size=16, axis=axis)))


def test_the_preview_refuses_a_multi_view_scorer(tiny_models, tiny_volume):
    from anomaly_maps.napari._slicing import score_model_slice

    ckpt = _checkpoint(tiny_models)
    stack = to_slices(tiny_volume, ckpt.preprocessing)
    with pytest.raises(ParameterError, match=r"fpi views=orthogonal: .*press Score volume"):
        score_model_slice(stack, ckpt, [("fpi", {"views": "orthogonal"})], 5, device="cpu")


def test_view_slices_equal_one_to_slices_call_per_axis(tiny_volume):
    from anomaly_maps.preprocessing import to_view_slices

    spec = PreprocessingSpec(size=16)
    axes = ("sagittal", "axial", "coronal")
    stacks = to_view_slices(tiny_volume, spec, axes)
    assert list(stacks) == list(axes)
    for axis, stack in stacks.items():
        alone = to_slices(tiny_volume, replace(spec, axis=axis))
        np.testing.assert_array_equal(stack.images, alone.images)
        np.testing.assert_array_equal(stack.mask, alone.mask)
        got, want = stack.geometry, alone.geometry
        assert (got.axis, got.plane_shape, got.pad) == (want.axis, want.plane_shape, want.pad)
        np.testing.assert_array_equal(got.ornt, want.ornt)
