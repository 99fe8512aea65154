"""``score``: output layouts, name collisions, and ``--list-scorers``."""

import shutil

import numpy as np
import pytest

from anomaly_maps.benchmark import make_benchmark
from anomaly_maps.cli import main
from anomaly_maps.io import load_volume, save_volume
from anomaly_maps.scoring import get_scorer, list_scorers


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """A 16^3 benchmark with 3 test cases (one anomalous at least)."""
    return make_benchmark(tmp_path_factory.mktemp("layout") / "bench", n_train=0, n_val=0,
                          n_test=3, shape=16, seed=2)  # fmt: skip


def _score(inputs, checkpoint, out, *extra):
    return main(["score", *map(str, inputs), "--checkpoint", str(checkpoint), "--out", str(out),
                 "--device", "cpu", *extra])  # fmt: skip


def test_mood_layout_is_what_evaluate_reads(bench, tiny_checkpoint, tmp_path, capsys):
    scans = sorted((bench / "test/toy").glob("*.nii.gz"))
    out = tmp_path / "rec_mood"
    assert _score(scans, tiny_checkpoint, out, "--scorer", "rec", "--layout", "mood") == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [s.name for s in scans] + [f"{s.name}.txt" for s in scans]
    )
    assert load_volume(out / scans[0].name).shape == load_volume(scans[0]).shape
    capsys.readouterr()
    report = tmp_path / "report"
    assert main(["evaluate", "--pred", str(out), "--labels", str(bench / "test"),
                 "--out", str(report)]) == 0  # fmt: skip
    assert "| rec_mood |" in capsys.readouterr().out


def test_mood_layout_with_several_scorers_has_a_folder_each(bench, tiny_checkpoint, tmp_path,
                                                            capsys):  # fmt: skip
    scans = sorted((bench / "test/toy").glob("*.nii.gz"))
    out = tmp_path / "preds"
    args = ["--scorer", "rec", "--scorer", "elbo", "--layout", "mood"]
    assert _score(scans, tiny_checkpoint, out, *args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["elbo", "rec"]
    assert sorted(p.name for p in (out / "elbo").iterdir()) == sorted(
        f"{s.name}.txt" for s in scans
    )  # a slice-only scorer writes scores, no maps
    capsys.readouterr()
    assert main(["evaluate", "--pred", str(out), "--labels", str(bench / "test"),
                 "--out", str(tmp_path / "report")]) == 0  # fmt: skip
    table = capsys.readouterr().out
    assert "| rec |" in table and "| elbo |" in table


def test_default_layout_is_unchanged(tiny_nifti, tiny_checkpoint, tmp_path):
    out = tmp_path / "o"
    assert _score([tiny_nifti], tiny_checkpoint, out, "--scorer", "rec") == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "tiny_head_rec.nii.gz", "tiny_head_rec.txt", "tiny_head_rec_slices.csv"
    ]  # fmt: skip


@pytest.mark.parametrize("layout", ["scan_scorer", "mood"])
def test_same_name_from_two_folders_is_refused_before_any_work(
    layout, tiny_nifti, tiny_checkpoint, tmp_path, capsys
):
    first, second = tmp_path / "a" / tiny_nifti.name, tmp_path / "b" / tiny_nifti.name
    for copy in (first, second):
        copy.parent.mkdir()
        shutil.copyfile(tiny_nifti, copy)
    out = tmp_path / "out"
    argv = ["--scorer", "rec", "--layout", layout]
    assert _score([first, second], tiny_checkpoint, out, *argv) == 2
    err = capsys.readouterr().err
    assert str(first) in err and str(second) in err
    assert "rename one" in err and "separate --out folders" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()  # nothing was scored or written


def test_preprocess_refuses_colliding_names_before_any_work(tiny_nifti, tmp_path, capsys):
    copy = save_volume(load_volume(tiny_nifti), tmp_path / "b" / "tiny_head.nii")  # same stem
    out = tmp_path / "out"
    assert main(["preprocess", str(tiny_nifti), str(copy), "--size", "16", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(tiny_nifti) in err and str(copy) in err
    assert not out.exists()


def test_existing_outputs_are_refused_before_any_work_in_mood_layout(
    tiny_nifti, tiny_checkpoint, tmp_path, capsys
):
    out = tmp_path / "o"
    args = ["--scorer", "rec", "--layout", "mood"]
    assert _score([tiny_nifti], tiny_checkpoint, out, *args) == 0
    before = (out / "tiny_head.nii.gz.txt").read_text()
    assert _score([tiny_nifti], tiny_checkpoint, out, *args) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert (out / "tiny_head.nii.gz.txt").read_text() == before
    assert _score([tiny_nifti], tiny_checkpoint, out, *args, "--overwrite") == 0


def test_list_scorers_needs_nothing_else(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["score", "--list-scorers"])
    assert exc.value.code == 0
    blocks = {b.split(":", 1)[0]: b for b in capsys.readouterr().out.strip().split("\n\n")}
    assert sorted(blocks) == list_scorers()
    for name, block in blocks.items():
        info = get_scorer(name)
        head, kinds, *params = block.splitlines()
        assert head == f"{name}: {info.description}"
        assert kinds.split(";")[0].split() == ["models:", *", ".join(info.model_kinds).split()]
        assert len(params) == len(info.params)
        for param, line in zip(info.params, params, strict=True):
            default = str(param.default).lower() if param.type is bool else repr(param.default)
            assert line.split()[:4] == [param.name, param.type.__name__, "default", default]
            assert param.expected() in line and param.help in line


@pytest.mark.parametrize("command", ["calibrate", "evaluate", "bench", "demo", "make-sample-data"])
def test_list_scorers_wherever_scorers_are_chosen(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--list-scorers"])
    assert exc.value.code == 0
    assert "kl_grad: " in capsys.readouterr().out


def test_score_help_points_at_a_real_option(capsys):
    with pytest.raises(SystemExit):
        main(["score", "--help"])
    helptext = capsys.readouterr().out
    assert "--list-scorers" in helptext
    assert "--layout" in helptext and "mood" in helptext


def test_mood_layout_maps_are_read_back_unchanged(tiny_nifti, tiny_checkpoint, tmp_path):
    """The mood layout writes the same numbers as the default one, under MOOD's names."""
    mood, plain = tmp_path / "mood", tmp_path / "plain"
    assert _score([tiny_nifti], tiny_checkpoint, mood, "--scorer", "rec", "--layout", "mood") == 0
    assert _score([tiny_nifti], tiny_checkpoint, plain, "--scorer", "rec") == 0
    np.testing.assert_array_equal(
        load_volume(mood / "tiny_head.nii.gz").data,
        load_volume(plain / "tiny_head_rec.nii.gz").data,
    )
    assert (mood / "tiny_head.nii.gz.txt").read_text() == (plain / "tiny_head_rec.txt").read_text()
