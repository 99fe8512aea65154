import numpy as np
import pytest

from anomaly_maps.benchmark import read_cases
from anomaly_maps.cli import main
from anomaly_maps.io import Volume, load_volume, save_volume


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "bench"
    args = ["make-benchmark", "--out", str(out), "--n-train", "1", "--n-val", "2",
            "--n-test", "4", "--shape", "16", "--seed", "2"]  # fmt: skip
    assert main(args) == 0
    return out


def test_make_benchmark_and_refuse_to_overwrite(bench, capsys):
    assert len(read_cases(bench)) == 6
    assert load_volume(bench / "train" / "00000.nii.gz").shape == (16, 16, 16)
    assert main(["make-benchmark", "--out", str(bench), "--n-test", "1", "--shape", "16"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert len(read_cases(bench)) == 6
    with pytest.raises(SystemExit):
        main(["make-benchmark", "--out", str(bench), "--shape", "16,16"])


def test_evaluate_oracle_predictions(bench, tmp_path, capsys):
    """Maps equal to the labels and scores equal to the sample labels score 1."""
    for split in ("val", "test"):
        for label_path in sorted((bench / split / "toy_label/pixel").glob("*.nii.gz")):
            label = load_volume(label_path)
            out = tmp_path / split / "oracle" / label_path.name
            save_volume(Volume(label.data.astype(np.float32), label.affine), out)
            score = (bench / split / "toy_label/sample" / f"{label_path.name}.txt").read_text()
            (out.parent / f"{label_path.name}.txt").write_text(score)
    args = ["evaluate", "--pred", str(tmp_path / "test"), "--labels", str(bench / "test"),
            "--val-pred", str(tmp_path / "val"), "--val-labels", str(bench / "val"),
            "--manifest", str(bench), "--out", str(tmp_path / "report")]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    first_row = next(line for line in out.splitlines() if line.startswith("| oracle |"))
    assert first_row.count("1.000") >= 6
    assert (tmp_path / "report" / "results.csv").is_file()
    assert main(args) == 2  # the report exists
    assert "already exists" in capsys.readouterr().err


def test_evaluate_with_a_checkpoint(bench, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "eval"
    args = ["evaluate", "--checkpoint", str(tiny_checkpoint), "--scorer", "rec",
            "--param", "sigma=1", "--benchmark", str(bench), "--out", str(out),
            "--device", "cpu"]  # fmt: skip
    assert main(args) == 0
    assert "| rec |" in capsys.readouterr().out
    assert len(list((out / "predictions/test/rec").glob("*.nii.gz.txt"))) == 4


def test_evaluate_needs_one_complete_mode(bench, tmp_path, capsys):
    assert main(["evaluate", "--pred", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "missing --labels" in capsys.readouterr().err
    both = ["evaluate", "--pred", str(tmp_path), "--benchmark", str(bench), "--out", "r"]
    assert main(both) == 2
    assert "either --pred and --labels" in capsys.readouterr().err
