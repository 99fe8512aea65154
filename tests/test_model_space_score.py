"""``anomaly-maps score --space``: a scan off the model's grid is registered, scored in
the model's space and its maps written on its own grid; a failed registration is one
line and writes nothing for that scan."""

from __future__ import annotations

import numpy as np
from test_model_space import _checkpoint_with_space, _moved, coarse_brain

from anomaly_maps.cli import main
from anomaly_maps.io import Volume, load_volume, save_volume
from anomaly_maps.model_space import MNI_NAME, ModelSpace


def _mni_checkpoint(tiny_checkpoint, tmp_path):
    grid = coarse_brain()
    space = ModelSpace.of_grid(f"{MNI_NAME} 4 mm", grid.shape, grid.affine).to_dict()
    _checkpoint_with_space(tiny_checkpoint, tmp_path, space)
    return tmp_path / "space.safetensors"


def _score(scan, ckpt, out, *extra):
    return main(["score", str(scan), "--checkpoint", str(ckpt), "--scorer", "rec",
                 "--out", str(out), "--device", "cpu", "--workers", "0", *extra])  # fmt: skip


def test_score_registers_and_writes_maps_on_the_scan_grid(tiny_checkpoint, tmp_path, capsys):
    ckpt = _mni_checkpoint(tiny_checkpoint, tmp_path)
    scan, _ = _moved(coarse_brain(), (10, -5, 8), (4.0, -2.0, 3.0), (3.0, 3.0, 5.0), (60, 70, 34))
    path = save_volume(scan, tmp_path / "oblique.nii.gz")
    assert _score(path, ckpt, tmp_path / "out", "--space", "model") == 0
    assert "registered to MNI152NLin2009aSym 4 mm" in capsys.readouterr().err
    native = load_volume(tmp_path / "out" / "oblique_rec.nii.gz")
    assert native.shape == scan.shape
    np.testing.assert_allclose(native.affine, scan.affine, atol=1e-5)
    assert native.data[scan.data > 0.3 * scan.data.max()].any()
    model = load_volume(tmp_path / "out" / "oblique_rec_model-space.nii.gz")
    assert model.shape == coarse_brain().shape
    np.testing.assert_allclose(model.affine, coarse_brain().affine, atol=1e-5)
    assert _score(path, ckpt, tmp_path / "native", "--space", "native") == 0
    assert "registered" not in capsys.readouterr().err


def test_a_failed_registration_is_one_line_and_writes_nothing(tiny_checkpoint, tmp_path, capsys):
    ckpt = _mni_checkpoint(tiny_checkpoint, tmp_path)
    slab = np.zeros((40, 40, 40), np.float32)
    slab[5:12, 5:35, 30:34] = 100.0
    path = save_volume(Volume(slab, np.diag([4.0, 4.0, 4.0, 1.0])), tmp_path / "slab.nii.gz")
    assert _score(path, ckpt, tmp_path / "out") == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1 and "registration to the model's template failed" in err[0]
    assert not list((tmp_path / "out").glob("*.nii.gz"))


def test_evaluate_scores_cases_off_the_model_grid_in_its_space(
    tiny_checkpoint, tmp_path, monkeypatch
):
    """A real subject's benchmark at its own resolution is evaluated as ``score`` would
    score its scans: registered into the model's space, maps back on the case's grid."""
    import anomaly_maps.model_space as model_space
    from anomaly_maps.benchmark import make_benchmark
    from anomaly_maps.evaluation import evaluate_checkpoint

    ckpt = _mni_checkpoint(tiny_checkpoint, tmp_path)
    template = save_volume(coarse_brain(), tmp_path / "subject.nii.gz")
    bench = make_benchmark(tmp_path / "bench", n_train=0, n_val=1, n_test=2, seed=0,
                           shape=(36, 40, 30), template=template)  # fmt: skip
    placed = []
    real = model_space.place_scan
    monkeypatch.setattr(model_space, "place_scan",
                        lambda *a, **k: placed.append(real(*a, **k)) or placed[-1])  # fmt: skip
    for space, registered in (("auto", True), ("native", False)):
        placed.clear()
        evaluate_checkpoint(ckpt, [("rec", {})], bench, tmp_path / space, device="cpu",
                            space=space)  # fmt: skip
        assert len(placed) == 3 and all(p.registered == registered for p in placed)
        for case in (tmp_path / space / "predictions/test/rec").glob("*.nii.gz"):
            assert load_volume(case).shape == (36, 40, 30)
