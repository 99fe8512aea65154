"""``score --findings/--report``: findings CSV, worklist, report, and refusals before work."""

import csv
import shutil
from contextlib import nullcontext

import pytest

from anomaly_maps.cli import main
from anomaly_maps.findings import FINDING_COLUMNS
from anomaly_maps.worklist import WORKLIST_COLUMNS


def _score(inputs, checkpoint, out, *extra):
    return main(["score", *map(str, inputs), "--checkpoint", str(checkpoint), "--out", str(out),
                 "--device", "cpu", "--scorer", "rec", *extra])  # fmt: skip


def _rows(path):
    return list(csv.reader(line for line in path.open() if not line.startswith("#")))


@pytest.fixture
def two_scans(tiny_nifti, tmp_path):
    second = tmp_path / "second.nii.gz"
    shutil.copyfile(tiny_nifti, second)
    return [tiny_nifti, second]


def test_findings_worklist_and_report(two_scans, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "o"
    extra = ("--findings", "--report", "--threshold", "0", "--min-ml", "0")
    assert _score(two_scans, tiny_checkpoint, out, *extra) == 0
    assert "finding(s) at threshold 0" in capsys.readouterr().out
    findings = out / "tiny_head_rec_findings.csv"
    text = findings.read_text()
    assert "threshold 0 (raw map units): --threshold" in text
    header, *rows = _rows(findings)
    assert tuple(header) == FINDING_COLUMNS and rows  # threshold 0 flags the foreground
    peaks = [float(r[FINDING_COLUMNS.index("peak_score")]) for r in rows]
    assert peaks == sorted(peaks, reverse=True)
    header, *worklist = _rows(out / "worklist.csv")
    assert tuple(header) == WORKLIST_COLUMNS
    assert sorted(r[0] for r in worklist) == ["second", "tiny_head"]
    assert {r[3] for r in worklist} == {""}  # no healthy volume scores: rank left empty
    report = (out / "tiny_head_rec_report.html").read_text()
    assert "data:image/png;base64," in report and "Findings" in report
    assert tiny_checkpoint.name in report  # the model card


def test_empty_result_is_written(tiny_nifti, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "o"
    assert _score([tiny_nifti], tiny_checkpoint, out, "--findings", "--threshold", "1e9") == 0
    findings = out / "tiny_head_rec_findings.csv"
    assert "no region above the threshold" in findings.read_text()
    assert _rows(findings) == [list(FINDING_COLUMNS)]
    assert not (out / "worklist.csv").exists()  # one scan: no worklist


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--findings",), "no map calibration to take a threshold from"),
        (("--findings", "--threshold", "nan"), "--threshold: expected a number"),
        (("--findings", "--threshold", "1", "--layout", "mood"), "--layout scan_scorer"),
        (("--findings", "--threshold", "1", "--min-ml", "-1"), "--min-ml: expected a number"),
    ],
    ids=["no-calibration", "nan-threshold", "mood-layout", "negative-size"],
)
def test_bad_input_is_one_line_before_any_work(
    extra, message, tiny_nifti, tiny_checkpoint, tmp_path, capsys
):
    out = tmp_path / "o"
    with pytest.raises(SystemExit) if "expected a number" in message else nullcontext():
        assert _score([tiny_nifti], tiny_checkpoint, out, *extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1]
    assert not out.exists()


def test_existing_findings_refused_before_any_work(tiny_nifti, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "tiny_head_rec_findings.csv").write_text("keep")
    assert _score([tiny_nifti], tiny_checkpoint, out, "--findings", "--threshold", "1") == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["tiny_head_rec_findings.csv"]


def test_demo_top_finding_lies_in_the_lesion(tmp_path):
    """The issue's target: the bundled VAE's top finding on the demo scan (rec with its
    calibrated parameters, best-Dice threshold) has its peak inside the true lesion."""
    from anomaly_maps.io import load_volume
    from anomaly_maps.samples import sample_path

    out = tmp_path / "demo"
    argv = ["score", str(sample_path("demo_scan")), "--checkpoint", str(sample_path("vae")),
            "--scorer", "rec", "--param", "norm=l1", "--param", "sigma=2", "--findings",
            "--out", str(out), "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    header, top, *_ = _rows(out / "demo_scan_rec_findings.csv")
    peak = tuple(int(top[header.index(k)]) for k in ("peak_i", "peak_j", "peak_k"))
    assert load_volume(sample_path("demo_label")).data[peak] > 0
