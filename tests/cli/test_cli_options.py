"""Option checks every command shares: numeric ranges and ``--out`` targets, at parse time."""

import argparse

import pytest

from anomaly_maps.cli import build_parser, main


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_no_numeric_option_goes_unchecked():
    """A bare ``type=int``/``float`` accepts any value: every number needs a range."""
    bare = [
        f"{name} {'/'.join(action.option_strings) or action.dest}"
        for name, parser in _subparsers(build_parser()).items()
        for action in parser._actions
        if action.type in (int, float)
    ]
    assert bare == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["score", "x.nii.gz", "--batch-size", "0"],
            "--batch-size: expected an integer >= 1, got 0",
        ),
        (["score", "x.nii.gz", "--batch-size", "-3"], "expected an integer >= 1, got -3"),
        (["score", "x.nii.gz", "--batch-size", "two"], "expected an integer >= 1, got 'two'"),
        (["score", "x.nii.gz", "--seed", "-1"], "--seed: expected an integer >= 0, got -1"),
        (
            ["score", "x.nii.gz", "--volume-index", "-1"],
            "--volume-index: expected an integer >= 0",
        ),
        (["info", "x.nii.gz", "--volume-index", "-2"], "--volume-index: expected an integer >= 0"),
        (["preprocess", "x.nii.gz", "--size", "2"], "--size: expected an integer >= 4, got 2"),
        (["train", "--epochs", "0"], "--epochs: expected an integer >= 1, got 0"),
        (["train", "--lr", "0"], "--lr: expected a number > 0, got 0"),
        (["train", "--lr", "nan"], "--lr: expected a number > 0, got 'nan'"),
        (["train", "--val-fraction", "1"], "--val-fraction: expected a number in [0, 1), got 1"),
        (["train", "--val-fraction", "-0.1"], "expected a number in [0, 1), got -0.1"),
        (["train", "--size", "0"], "--size: expected an integer >= 4, got 0"),
        (["train", "--batch-size", "0"], "--batch-size: expected an integer >= 1"),
        (["calibrate", "x.nii.gz", "--batch-size", "0"], "--batch-size: expected an integer >= 1"),
        (["bench", "score", "--side", "3"], "--side: expected an integer >= 8, got 3"),
        (["bench", "train", "--steps", "0"], "--steps: expected an integer >= 1, got 0"),
        (["bench", "train", "--batch-size", "-1"], "--batch-size: expected an integer >= 1"),
        (["make-benchmark", "--n-train", "-1"], "--n-train: expected an integer >= 0, got -1"),
        (["make-benchmark", "--n-val", "-1"], "--n-val: expected an integer >= 0"),
        (["make-benchmark", "--n-test", "-1"], "--n-test: expected an integer >= 0"),
        (["make-benchmark", "--shape", "4"], "--shape: expected N or X,Y,Z, each an integer >= 8"),
        (["make-benchmark", "--shape", "16,0,16"], "each an integer >= 8, got '16,0,16'"),
        (["make-benchmark", "--seed", "-5"], "--seed: expected an integer >= 0"),
        (["make-sample-data", "--batch-size", "0"], "--batch-size: expected an integer >= 1"),
        (["evaluate", "--batch-size", "0"], "--batch-size: expected an integer >= 1"),
        (["demo", "--batch-size", "0"], "--batch-size: expected an integer >= 1"),
        (["demo", "--seed", "-1"], "--seed: expected an integer >= 0"),
    ],
)
def test_numbers_out_of_range_are_refused_at_parse_time(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_numbers_in_range_pass_unchanged():
    argv = "train --model vae --data x --out o.safetensors --lr 1e-3 --val-fraction 0"
    args = build_parser().parse_args([*argv.split(), "--epochs", "3", "--size", "64"])
    assert (args.lr, args.val_fraction, args.epochs, args.size) == (1e-3, 0.0, 3, 64)
    args = build_parser().parse_args(["make-benchmark", "--out", "b", "--shape", "16,20,24"])
    assert args.shape == (16, 20, 24)
    assert build_parser().parse_args(["make-benchmark", "--out", "b", "--shape", "16"]).shape == 16


def _out_commands(tiny_nifti, tiny_checkpoint):
    """Every command that takes --out, complete enough to run."""
    scan, ckpt = str(tiny_nifti), str(tiny_checkpoint)
    return {
        "preprocess": ["preprocess", scan, "--size", "16"],
        "train": ["train", "--model", "vae", "--data", scan, "--size", "16", "--epochs", "1"],
        "score": ["score", scan, "--checkpoint", ckpt, "--scorer", "rec", "--device", "cpu"],
        "calibrate": ["calibrate", scan, "--checkpoint", ckpt, "--scorer", "rec"],
        "make-sample-data": ["make-sample-data"],
        "make-benchmark": ["make-benchmark", "--n-test", "1", *("--shape", "16")],
        "evaluate": ["evaluate", "--pred", str(tiny_nifti.parent), "--labels", scan],
        "demo": ["demo", "--headless", "--device", "cpu"],
    }


FOLDER_OUT = ["preprocess", "score", "make-sample-data", "make-benchmark", "evaluate", "demo"]
CASES = [(c, False) for c in FOLDER_OUT] + [(c, True) for c in (*FOLDER_OUT, "train", "calibrate")]


@pytest.mark.parametrize(
    ("command", "under"), CASES, ids=[f"{c}-{'under-a-file' if u else 'file'}" for c, u in CASES]
)
def test_out_on_a_regular_file_is_one_clear_line(
    command, under, tiny_nifti, tiny_checkpoint, tmp_path, capsys
):
    """A folder --out that is a file, or any --out under a file (a checkpoint --out may
    name an existing file: replacing it is --overwrite's business)."""
    blocker = tmp_path / "taken.safetensors"
    blocker.write_text("not a folder")
    out = blocker / "run.safetensors" if under else blocker
    argv = [*_out_commands(tiny_nifti, tiny_checkpoint)[command], "--out", str(out)]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert (
        err.strip().splitlines()[-1].startswith(f"anomaly-maps {command}: error: argument --out")
    )
    assert f"{blocker} is a file" in err
    assert "Traceback" not in err
    assert blocker.read_text() == "not a folder"


def test_checkpoint_out_on_a_folder_is_refused(tiny_nifti, tiny_checkpoint, tmp_path, capsys):
    argv = ["calibrate", str(tiny_nifti), "--checkpoint", str(tiny_checkpoint), "--scorer", "rec",
            "--out", str(tmp_path)]  # fmt: skip
    with pytest.raises(SystemExit):
        main(argv)
    assert f"{tmp_path} is a folder, expected a .safetensors file" in capsys.readouterr().err


@pytest.mark.parametrize(("text", "value"), [("-1e-3", -1e-3), ("-2", -2.0), ("-.5E+2", -50.0)])
def test_a_negative_number_in_exponent_notation_is_a_value_not_an_option(text, value):
    argv = ["score", "x.nii.gz", "--checkpoint", "c", "--scorer", "rec", "--out", "o"]
    assert build_parser().parse_args([*argv, "--threshold", text]).threshold == value
