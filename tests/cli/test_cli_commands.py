import subprocess
import sys

import numpy as np
import pytest

from anomaly_maps import __version__
from anomaly_maps.cli import main
from anomaly_maps.io import load_volume


def test_version_and_help_from_console_script():
    out = subprocess.run(
        [sys.executable, "-m", "anomaly_maps.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == f"anomaly-maps {__version__}"
    helptext = subprocess.run(
        [sys.executable, "-m", "anomaly_maps.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for command in ("info", "preprocess", "make-sample-data"):
        assert command in helptext


def test_info(tiny_nifti, capsys):
    assert main(["info", str(tiny_nifti)]) == 0
    out = capsys.readouterr().out
    assert "(31, 33, 17)" in out
    assert "0.9 x 1.3 x 2.7 mm" in out
    assert "qform/sform codes 1/2" in out


def test_preprocess_writes_maps_on_the_scan_grid(tiny_nifti, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["preprocess", str(tiny_nifti), "--size", "32", "--out", str(out)]) == 0
    scan = load_volume(tiny_nifti)
    view = load_volume(out / "tiny_head_model_view.nii.gz")
    mask = load_volume(out / "tiny_head_foreground.nii.gz")
    for vol in (view, mask):
        assert vol.shape == scan.shape
        np.testing.assert_allclose(vol.affine, scan.affine, atol=1e-6)
    assert view.data.min() >= 0.0 and view.data.max() <= 1.0
    assert mask.data.dtype == np.uint8
    # the model's view correlates with the scan inside the head
    inside = mask.data > 0
    assert np.corrcoef(view.data[inside], scan.data[inside])[0, 1] > 0.8
    assert "axial slices of 32x32" in capsys.readouterr().out

    # a second run refuses to overwrite, says why, and leaves the files alone
    before = (out / "tiny_head_model_view.nii.gz").read_bytes()
    assert main(["preprocess", str(tiny_nifti), "--size", "16", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "tiny_head_model_view.nii.gz").read_bytes() == before
    assert (
        main(["preprocess", str(tiny_nifti), "--size", "16", "--out", str(out), "--overwrite"])
        == 0
    )


def test_bad_input_is_one_clear_line(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing.nii.gz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("anomaly-maps info: error: ")
    assert "missing.nii.gz: no such file" in err
    assert "Traceback" not in err


def test_bad_option_exits_with_usage(tiny_nifti):
    with pytest.raises(SystemExit) as exc:
        main(["preprocess", str(tiny_nifti), "--axis", "oblique", "--out", "x"])
    assert exc.value.code == 2


def test_score_writes_map_score_and_slice_csv(tiny_nifti, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "scores"
    args = ["score", str(tiny_nifti), "--checkpoint", str(tiny_checkpoint), "--scorer", "rec",
            "--param", "sigma=1", "--out", str(out), "--device", "cpu"]  # fmt: skip
    assert main(args) == 0
    scan = load_volume(tiny_nifti)
    anomaly = load_volume(out / "tiny_head_rec.nii.gz")
    assert anomaly.shape == scan.shape
    np.testing.assert_allclose(anomaly.affine, scan.affine, atol=1e-6)
    score = float((out / "tiny_head_rec.txt").read_text())
    rows = (out / "tiny_head_rec_slices.csv").read_text().splitlines()
    assert rows[0] == "slice,score"
    assert len(rows) == 1 + scan.shape[2]
    slice_scores = np.array([float(r.split(",")[1]) for r in rows[1:]])
    assert score == pytest.approx(slice_scores[slice_scores > 0].mean(), rel=1e-5)
    assert "rec volume score" in capsys.readouterr().out
    # refuses to overwrite, before doing any work
    assert main(args) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--scorer", "nope"], "unknown scorer 'nope'"),
        (["--scorer", "rec", "--param", "sigma=-2"], "sigma=-2.0 for scorer 'rec'"),
        (["--scorer", "rec", "--param", "sigma=abc"], "sigma='abc' for scorer 'rec'"),
        (["--scorer", "rec", "--param", "zzz=1"], "has no parameter 'zzz'"),
        (["--scorer", "rec", "--param", "oops"], "expected KEY=VALUE"),
    ],
)
def test_score_bad_input(tiny_nifti, tiny_checkpoint, tmp_path, capsys, extra, message):
    args = ["score", str(tiny_nifti), "--checkpoint", str(tiny_checkpoint), *extra,
            "--out", str(tmp_path / "out")]  # fmt: skip
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_score_refuses_a_pickle_checkpoint(tiny_nifti, tmp_path, capsys):
    fake = tmp_path / "model.pt"
    fake.write_bytes(b"\x80\x04\x95" + b"\x00" * 64)
    args = ["score", str(tiny_nifti), "--checkpoint", str(fake), "--scorer", "rec",
            "--out", str(tmp_path / "o")]  # fmt: skip
    assert main(args) == 2
    assert "never unpickles" in capsys.readouterr().err


def test_one_module_per_command():
    """Each command is one module with ``add_parser(sub)`` and ``run(args)``."""
    import argparse

    from anomaly_maps.cli import COMMANDS, build_parser

    [sub] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(COMMANDS) == len(sub.choices) == 11
    for name, parser in sub.choices.items():
        module = next(m for m in COMMANDS if m.__name__.endswith("." + name.replace("-", "_")))
        assert parser.get_default("run") is module.run
        assert callable(module.add_parser)


def test_train_offers_every_registered_model_kind():
    """``train --model`` lists the kinds without importing torch; it must not drift."""
    from anomaly_maps.cli.train import MODELS
    from anomaly_maps.models import list_model_kinds

    assert sorted(MODELS) == list_model_kinds(trainable=True)
