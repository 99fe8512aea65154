"""``--brain-mask auto|none|FILE``: a head and a model of brains: scored inside the brain."""

from __future__ import annotations

import numpy as np
import pytest
from head_scans import small_head

from anomaly_maps.cli import main
from anomaly_maps.io import Volume, load_volume, save_volume


@pytest.fixture
def head_file(tmp_path):
    scan, _ = small_head()
    return save_volume(scan, tmp_path / "head.nii.gz")


def _score(head_file, checkpoint, out, *extra):
    return main(["score", str(head_file), "--checkpoint", str(checkpoint), "--scorer", "rec",
                 "--out", str(out), "--device", "cpu", *extra])  # fmt: skip


def test_auto_scores_a_head_inside_its_brain(head_file, tiny_checkpoint, tmp_path, capsys):
    assert _score(head_file, tiny_checkpoint, tmp_path / "auto") == 0
    err = capsys.readouterr().err
    assert "looks like a head" in err and "extracted the brain first" in err
    _, truth = small_head()
    masked = load_volume(tmp_path / "auto" / "head_rec.nii.gz").data
    assert _score(head_file, tiny_checkpoint, tmp_path / "none", "--brain-mask", "none") == 0
    assert "looks like a head" not in capsys.readouterr().err
    plain = load_volume(tmp_path / "none" / "head_rec.nii.gz").data
    assert (plain[~truth] > 0).sum() > 10 * max((masked[~truth] > 0).sum(), 1)


def test_a_mask_file_scores_inside_it(head_file, tiny_checkpoint, tmp_path, capsys):
    scan, truth = small_head()
    mask = save_volume(scan.with_data(truth.astype(np.uint8)), tmp_path / "mask.nii.gz")
    assert _score(head_file, tiny_checkpoint, tmp_path / "o", "--brain-mask", str(mask)) == 0
    assert "inside the brain mask" in capsys.readouterr().err
    assert not load_volume(tmp_path / "o" / "head_rec.nii.gz").data[~truth].any()


def test_a_mask_on_another_grid_is_one_line(head_file, tiny_checkpoint, tmp_path, capsys):
    scan, truth = small_head()
    wrong = save_volume(Volume(truth[:-1].astype(np.uint8), scan.affine), tmp_path / "m.nii.gz")
    assert _score(head_file, tiny_checkpoint, tmp_path / "o", "--brain-mask", str(wrong)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--brain-mask" in err[0] and "scan's grid" in err[0]


@pytest.mark.parametrize("command", ["score", "calibrate"])
def test_brain_mask_must_be_auto_none_or_a_file(command, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([command, "x.nii.gz", "--checkpoint", "c.safetensors", "--scorer", "rec",
              "--out", str(tmp_path / "o.safetensors"), "--brain-mask", "nope"])  # fmt: skip
    expected = "--brain-mask: expected auto, none or a mask file, got 'nope'"
    assert expected in capsys.readouterr().err


def test_info_says_whether_a_scan_is_a_head(head_file, capsys):
    assert main(["info", str(head_file)]) == 0
    assert "head scan    yes" in capsys.readouterr().out


@pytest.mark.parametrize(("flag", "value"), [([], True), (["--no-skull-stripped"], False)])
def test_train_takes_whether_its_data_are_skull_stripped(flag, value, tmp_path):
    from anomaly_maps.cli import build_parser

    out = str(tmp_path / "m.safetensors")
    argv = ["train", "--model", "vae", "--data", "x.nii.gz", "--out", out, *flag]
    args = build_parser().parse_args(argv)
    assert args.skull_stripped is value
