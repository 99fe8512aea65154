"""scripts/findings_hit_rate.py: the count behind issue 17's benchmark target."""

import importlib.util
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from anomaly_maps.benchmark import load_template, make_benchmark, read_cases
from anomaly_maps.io import load_volume

SCRIPT = Path(__file__).parents[1] / "scripts" / "findings_hit_rate.py"


@pytest.fixture(scope="module")
def hit_rate():
    spec = importlib.util.spec_from_file_location("findings_hit_rate", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("hits") / "bench"
    make_benchmark(out, n_train=0, n_val=0, n_test=6, seed=2, shape=20, template=load_template())
    return out


def _predictions(bench: Path, out: Path, where: str) -> dict[str, bool]:
    """A flat map per test case with one peak: inside the label, one voxel outside it,
    or far from it; returns which cases are anomalous."""
    out.mkdir()
    anomalous = {}
    for case in read_cases(bench):
        if case.split != "test":
            continue
        scan = load_volume(bench / "test" / "toy" / case.case)
        heat = np.full(scan.data.shape, 0.8, np.float32)
        heat[0, 0, 0] = 0.9  # a healthy-looking corner region, below every peak
        if case.label:
            label = load_volume(bench / "test" / "toy_label" / "pixel" / case.case).data > 0
            ring = ndimage.binary_dilation(label) & ~label
            pick = {
                "inside": label,
                "next to": ring,
                "far": ~ndimage.binary_dilation(label, iterations=4),
            }
            heat[tuple(np.argwhere(pick[where])[0])] = 1.0
        heat[heat < 0.85] = 0.0  # one-voxel regions only
        nib.save(nib.Nifti1Image(heat, scan.affine), out / case.case)
        anomalous[case.case] = bool(case.label)
    return anomalous


@pytest.mark.parametrize(
    ("where", "hit", "near"),
    [("inside", True, True), ("next to", False, True), ("far", False, False)],
)
def test_hits_and_near_misses_are_counted_where_the_peak_lies(
    hit_rate, bench, tmp_path, where, hit, near
):
    anomalous = _predictions(bench, tmp_path / "pred", where)
    spacing = np.linalg.norm(
        load_volume(bench / "test" / "toy" / "00000.nii.gz").affine[:3, :3], axis=0
    )
    rows = list(
        hit_rate.top_finding_hits(
            bench, tmp_path / "pred", "test", 0.85, 0.0, near_mm=1.01 * spacing.max()
        )
    )
    assert [r[0] for r in rows] == [c for c, a in anomalous.items() if a] != []
    assert {(r[3], r[4]) for r in rows} == {(hit, near)}


def test_the_order_decides_which_region_is_on_top(hit_rate, bench, tmp_path):
    """A lesion flagged whole at 0.9 and a one-voxel speck at 1.0 far from it: the peak
    order puts the speck first (a miss), the volume and mass orders the lesion."""
    out = tmp_path / "pred"
    out.mkdir()
    for case in read_cases(bench):
        scan = load_volume(bench / "test" / "toy" / case.case)
        heat = np.zeros(scan.data.shape, np.float32)
        if case.label:
            label = load_volume(bench / "test" / "toy_label" / "pixel" / case.case).data > 0
            heat[label] = 0.9
            far = np.argwhere(~ndimage.binary_dilation(label, iterations=4))[0]
            heat[tuple(far)] = 1.0
        nib.save(nib.Nifti1Image(heat, scan.affine), out / case.case)
    for order, hit in (("peak", False), ("volume", True), ("mass", True)):
        rows = hit_rate.top_finding_hits(bench, out, "test", 0.85, 0.0, order=order)
        assert {r[3] for r in rows} == {hit}, order
