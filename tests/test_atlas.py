"""Atlas labels: names files, world-mm lookups, and region names against hand counts and a
brute-force nearest-voxel reference."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from anomaly_maps import atlas as atlas_module
from anomaly_maps.atlas import load_atlas, read_names, resolve_atlas
from anomaly_maps.errors import AnomalyMapsError
from anomaly_maps.findings import FINDING_COLUMNS, find_regions, findings_csv

from conftest import oblique_affine, write_nifti

SHAPE = (10, 8, 6)
#: x = 9 - 2i (a flipped axis), y = -8 + 2j, z = -6 + 2k: 2 mm voxels
AFFINE = np.array([[-2.0, 0, 0, 9], [0, 2, 0, -8], [0, 0, 2, -6], [0, 0, 0, 1]])
MRICRON = "1 Left_Thing 2001\r\n2 Right_Thing 2002\r\n\r\n"


def _labels() -> np.ndarray:
    """1 where x < 0 (i >= 5); 2 where x > 0 and y >= 0 (i < 5, j >= 4); else 0."""
    labels = np.zeros(SHAPE, np.uint8)
    labels[5:] = 1
    labels[:5, 4:] = 2
    return labels


@pytest.fixture
def atlas_file(tmp_path):
    path = write_nifti(tmp_path / "tiny_atlas.nii.gz", _labels(), AFFINE)
    (tmp_path / "tiny_atlas.nii.txt").write_bytes(MRICRON.encode())
    return path


def test_lookup_in_world_mm(atlas_file):
    atlas = load_atlas(atlas_file)
    assert atlas.names == {1: "Left_Thing", 2: "Right_Thing"}
    assert atlas.name_at((-1.2, 0.0, 0.0)) == "Left_Thing"  # i = 5.1 -> 5
    assert atlas.name_at((0.9, 0.5, 0.0)) == "Right_Thing"  # i = 4.05, j = 4.25
    assert atlas.name_at((0.9, -1.5, 0.0)) == ""  # j = 3.25 -> 3: label 0
    assert atlas.name_at((20.0, 0.0, 0.0)) == ""  # i = -5.5: outside
    assert atlas.name_at((0.0, 0.0, 10.0)) == ""  # k = 8: outside
    points = np.array([[-9.0, -8, -6], [9.0, 6, 4], [-9.9, 6.9, 4.9]])
    assert atlas.lookup(points).tolist() == [1, 2, 1]


def test_region_names_and_shares_by_hand(atlas_file):
    """Scan on the atlas' grid: region 1 covers 9 voxels of label 1, 4 of label 2 and 2
    unlabelled (60 %, its peak on label 2); region 2 lies on label 0 only."""
    atlas = load_atlas(atlas_file)
    heat = np.zeros(SHAPE, np.float32)
    heat[3:8, 3:6, 2] = 1.0
    heat[3, 4, 2] = 5.0  # the peak: x = 3, y = 0 -> label 2
    heat[0:2, 0:2, 0] = 2.0
    regions = find_regions(heat, AFFINE, 0.5, atlas=atlas)
    first, second = regions.findings
    assert (first.atlas_label, first.atlas_share, first.peak_atlas_label) == (
        "Left_Thing", 9 / 15, "Right_Thing")  # fmt: skip
    assert first.label_text == "Left_Thing (60 %); peak in Right_Thing"
    assert (second.atlas_label, second.atlas_share, second.peak_atlas_label) == ("", None, "")
    assert second.label_text == ""
    assert regions.atlas == str(atlas_file)
    text = findings_csv(regions)
    assert f"# atlas {atlas_file}" in text
    row = text.splitlines()[-2].split(",")
    assert row[FINDING_COLUMNS.index("atlas_label") :] == ["Left_Thing", "0.6", "Right_Thing"]
    plain = find_regions(heat, AFFINE, 0.5)
    assert plain.findings[0].atlas_label == "" and plain.atlas == ""


def _nearest_labels(world: np.ndarray) -> np.ndarray:
    """Labels of the atlas voxels whose centres are nearest (exhaustive search); 0 for a
    point more than half a voxel (1 mm) beyond the grid along an axis."""
    centres = nib.affines.apply_affine(AFFINE, np.indices(SHAPE).reshape(3, -1).T)
    nearest = np.linalg.norm(world[:, None] - centres[None], axis=2).argmin(axis=1)
    outside = np.any(np.abs(world - centres[nearest]) > 1.0, axis=1)
    return np.where(outside, 0, _labels().ravel()[nearest])


def test_region_names_match_brute_force_nearest_voxel(atlas_file):
    """An oblique scan partly over the atlas: the main label and its share counted from
    the reference's labels of every voxel, and the peak's label."""
    atlas = load_atlas(atlas_file)
    affine = oblique_affine(zooms=(1.1, 0.9, 1.3), origin=(-6.0, -7.0, -5.0))
    rng = np.random.default_rng(3)
    heat = rng.random((12, 12, 8))
    regions = find_regions(heat, affine, 0.9, atlas=atlas)  # 40 regions, 1 to 21 voxels
    assert len(regions.findings) == 40
    seen = set()
    for f in regions.findings:
        near = _nearest_labels(
            nib.affines.apply_affine(affine, np.argwhere(regions.labels == f.index))
        )
        seen.update(near.tolist())
        counts = np.bincount(near, minlength=3)[1:]
        if counts.any():
            assert f.atlas_label == atlas.names[1 + int(counts.argmax())]
            assert f.atlas_share == counts.max() / len(near)
        else:
            assert f.atlas_label == "" and f.atlas_share is None
        peak = _nearest_labels(nib.affines.apply_affine(affine, np.array([f.peak_voxel])))[0]
        assert f.peak_atlas_label == atlas.names.get(int(peak), "")
    assert seen == {0, 1, 2}  # the case covers both labels and unlabelled voxels


def test_names_files_tsv_csv_and_refusals(tmp_path):
    tsv = tmp_path / "a.tsv"
    tsv.write_text("index\tname\n0\tUnclassified\n1\tFrontal Pole\n# comment\n3\tX\n")
    assert read_names(tsv) == {0: "Unclassified", 1: "Frontal Pole", 3: "X"}
    csv_file = tmp_path / "b.csv"
    csv_file.write_text('index,name\n1,"Gyrus, left"\n2,Other\n')
    assert read_names(csv_file) == {1: "Gyrus, left", 2: "Other"}
    refusals = [("1 A\n1 B\n", "index 1 is named twice"), ("1 A\nx B\n", "line 2"),
                ("2\n", "line 1"), ("# none\n", "no 'index")]  # fmt: skip
    for text, message in refusals:
        bad = tmp_path / "bad.txt"
        bad.write_text(text)
        with pytest.raises(AnomalyMapsError, match=message):
            read_names(bad)


def test_label_zero_has_no_name_and_csv_quotes_commas(tmp_path):
    path = write_nifti(tmp_path / "c.nii.gz", _labels(), AFFINE)
    (tmp_path / "c.csv").write_text('0,Unclassified\n1,"Gyrus, left"\n2,Right\n')
    atlas = load_atlas(path)
    assert atlas.name_at((0.9, -1.5, 0.0)) == ""  # label 0, named in the file
    heat = np.zeros(SHAPE, np.float32)
    heat[6:8, 0:2, 0] = 1.0
    text = findings_csv(find_regions(heat, AFFINE, 0.5, atlas=atlas))
    assert '"Gyrus, left",1,"Gyrus, left"' in text


def test_atlas_files_are_checked(tmp_path):
    path = write_nifti(tmp_path / "d.nii.gz", _labels(), AFFINE)
    with pytest.raises(AnomalyMapsError, match=r"no names file beside it.*d\.nii\.txt"):
        load_atlas(path)
    (tmp_path / "d.tsv").write_text("1\tOnly_One\n")
    with pytest.raises(AnomalyMapsError, match=r"1 label\(s\) \(2\) have no name"):
        load_atlas(path)
    fractional = write_nifti(tmp_path / "e.nii.gz", _labels() * 0.5, AFFINE)
    (tmp_path / "e.tsv").write_text("1\tA\n")
    with pytest.raises(AnomalyMapsError, match="not whole numbers"):
        load_atlas(fractional)


def test_resolve_names_the_package_to_install(tmp_path, monkeypatch, atlas_file):
    monkeypatch.setitem(atlas_module.ATLASES, "aal", tmp_path / "missing" / "aal.nii.gz")
    with pytest.raises(AnomalyMapsError, match=r"apt-get install mricron-data`, or pass a"):
        resolve_atlas("aal")
    with pytest.raises(AnomalyMapsError, match="no such file; expected aal or a label"):
        resolve_atlas(str(tmp_path / "nope.nii.gz"))
    assert resolve_atlas(str(atlas_file)).names[2] == "Right_Thing"
    monkeypatch.setitem(atlas_module.ATLASES, "aal", atlas_file)
    assert resolve_atlas("aal").name == f"AAL ({atlas_file})"
