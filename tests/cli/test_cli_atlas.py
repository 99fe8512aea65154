"""``score --atlas``: findings named in the CSV, worklist and report; refusals before work."""

import numpy as np
import pytest
from test_cli_findings import _rows, _score

from anomaly_maps import atlas as atlas_module
from anomaly_maps.findings import FINDING_COLUMNS
from anomaly_maps.worklist import WORKLIST_COLUMNS

from conftest import write_nifti


@pytest.fixture
def head_atlas(tmp_path, tiny_volume):
    """An atlas on the tiny head's own grid: label 1 ("Head") everywhere."""
    path = write_nifti(tmp_path / "head_atlas.nii.gz", np.ones(tiny_volume.shape, np.uint8),
                       tiny_volume.affine)  # fmt: skip
    (tmp_path / "head_atlas.tsv").write_text("index\tname\n1\tHead\n")
    return path


def test_atlas_file_names_every_finding(tiny_nifti, tiny_checkpoint, head_atlas, tmp_path):
    out = tmp_path / "o"
    second = tmp_path / "second.nii.gz"
    second.write_bytes(tiny_nifti.read_bytes())
    extra = ("--findings", "--report", "--threshold", "0", "--min-ml", "0", "--atlas")
    assert _score([tiny_nifti, second], tiny_checkpoint, out, *extra, str(head_atlas)) == 0
    findings = out / "tiny_head_rec_findings.csv"
    assert f"# atlas {head_atlas}: labels are right only" in findings.read_text()
    _, *rows = _rows(findings)
    start = FINDING_COLUMNS.index("atlas_label")
    assert rows and {tuple(r[start:]) for r in rows} == {("Head", "1", "Head")}
    _, *worklist = _rows(out / "worklist.csv")
    assert {r[WORKLIST_COLUMNS.index("top_label")] for r in worklist} == {"Head (100 %)"}
    report = (out / "tiny_head_rec_report.html").read_text()
    assert "<td>Head (100 %)</td>" in report and str(head_atlas) in report


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--findings", "--threshold", "0", "--atlas", "aal"), "`apt-get install mricron-data`"),
        (("--findings", "--threshold", "0", "--atlas", "x.nii"), "x.nii: no such file"),
        (("--atlas", "aal"), "--atlas without --findings or --report"),
    ],
    ids=["aal-missing", "no-file", "nothing-to-name"],
)
def test_atlas_refusals_are_one_line_before_work(
    extra, message, tiny_nifti, tiny_checkpoint, tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(atlas_module.ATLASES, "aal", tmp_path / "absent" / "aal.nii.gz")
    out = tmp_path / "o"
    assert _score([tiny_nifti], tiny_checkpoint, out, *extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not out.exists()
