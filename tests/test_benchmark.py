import json

import numpy as np
import pytest
from scipy import ndimage

from anomaly_maps.benchmark import (
    ANOMALY_TYPES,
    BenchmarkSpec,
    healthy_draw,
    insert_anomaly,
    load_template,
    make_benchmark,
    original_draws,
    read_cases,
)
from anomaly_maps.errors import AnomalyMapsError, ParameterError
from anomaly_maps.io import load_volume

STILL = BenchmarkSpec(
    rotate_deg=0, scale=0, translate_mm=0, elastic_mm=0, bias=0, gamma=(1, 1), noise=0
)


@pytest.fixture(scope="module")
def template():
    return load_template()


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory, template):
    out = tmp_path_factory.mktemp("bench") / "mood"
    make_benchmark(out, n_train=2, n_val=2, n_test=6, seed=3, shape=20, template=template)
    return out


def test_still_draw_is_the_template_on_any_grid(template):
    tpl = template.source[0, 0].numpy()
    same = healthy_draw(template, template.volume.shape, STILL, np.random.default_rng(0))
    np.testing.assert_allclose(same.data, tpl, atol=1e-4)
    # a coarser grid: each voxel shows the template at the same world position
    from anomaly_maps.benchmark.healthy import grid_affine as _grid_affine

    shape = (40, 48, 36)
    small = healthy_draw(template, shape, STILL, np.random.default_rng(0))
    affine, _ = _grid_affine(template.volume, shape)
    world = affine @ np.vstack([np.indices(shape).reshape(3, -1), np.ones((1, np.prod(shape)))])
    index = np.linalg.solve(template.volume.affine, world)[:3]
    expected = ndimage.map_coordinates(tpl, index, order=1, cval=0).reshape(shape)
    np.testing.assert_allclose(small.data, expected, atol=1e-4)


def test_draws_differ_and_repeat_with_the_seed(template):
    spec = BenchmarkSpec()
    a = healthy_draw(template, (24, 24, 24), spec, np.random.default_rng(1))
    b = healthy_draw(template, (24, 24, 24), spec, np.random.default_rng(1))
    c = healthy_draw(template, (24, 24, 24), spec, np.random.default_rng(2))
    np.testing.assert_array_equal(a.data, b.data)
    assert np.abs(a.data - c.data).mean() > 1e-3
    assert a.data.min() >= 0 and a.data.max() <= 1
    assert a.data[~a.brain].mean() < 0.02  # skull-stripped background stays dark


@pytest.mark.parametrize("kind", ANOMALY_TYPES)
def test_each_anomaly_changes_only_its_labelled_brain_voxels(template, kind):
    draw = healthy_draw(template, (40, 40, 40), BenchmarkSpec(), np.random.default_rng(5))
    spec = BenchmarkSpec(radius=(0.12, 0.13))
    data, label, info = insert_anomaly(draw, kind, spec, np.random.default_rng(6))
    assert label.dtype == np.uint8 and label.any()
    assert not (label.astype(bool) & ~draw.brain).any()
    changed = data != draw.data
    assert not (changed & ~label.astype(bool)).any()
    assert np.abs(data - draw.data)[label > 0].mean() > 0.005
    assert info["anomaly"] == kind and info["size"] == "large"
    assert 0.12 <= info["radius_fraction"] <= 0.13
    center = [int(info[f"center_{a}"]) for a in "xyz"]
    assert draw.brain[tuple(center)]


def test_benchmark_layout_labels_and_manifest(benchmark):
    cases = read_cases(benchmark)
    assert [c.split for c in cases] == ["val"] * 2 + ["test"] * 6
    test_cases = [c for c in cases if c.split == "test"]
    assert sum(c.label for c in test_cases) == 3  # anomaly_fraction 0.5
    assert {c.anomaly for c in test_cases if c.label} <= set(ANOMALY_TYPES)
    assert len(list((benchmark / "train").glob("*.nii.gz"))) == 2
    scan0 = load_volume(benchmark / "train" / "00000.nii.gz")
    for case in cases:
        split = benchmark / case.split
        scan = load_volume(split / "toy" / case.case)
        pixel = load_volume(split / "toy_label" / "pixel" / case.case)
        sample = (split / "toy_label" / "sample" / f"{case.case}.txt").read_text()
        assert scan.shape == pixel.shape == (20, 20, 20)
        np.testing.assert_allclose(pixel.affine, scan0.affine)
        assert pixel.data.dtype == np.uint8
        assert int(sample) == case.label == int(pixel.data.any())
        assert int(pixel.data.sum()) == case.label_voxels
        assert (case.anomaly == "none") == (case.label == 0)
        # a training volume is never a test volume
        assert not np.array_equal(scan.data, scan0.data)
    meta = json.loads((benchmark / "benchmark.json").read_text())
    assert meta["counts"] == {"train": 2, "val": 2, "test": 6}
    assert BenchmarkSpec.from_dict({k: v for k, v in meta["spec"].items()
                                    if k != "format_version"}) == BenchmarkSpec()  # fmt: skip
    assert (benchmark / "LICENSE-MNI152.txt").is_file()
    # voxel size follows the fit of the 233 mm long axis into 20 voxels
    np.testing.assert_allclose(scan0.zooms, 233 / 20, rtol=0.01)


def test_same_seed_same_benchmark(benchmark, template, tmp_path):
    again = make_benchmark(tmp_path / "again", n_train=2, n_val=2, n_test=6, seed=3, shape=20,
                           template=template)  # fmt: skip
    for path in sorted(benchmark.rglob("*.nii.gz")):
        other = again / path.relative_to(benchmark)
        np.testing.assert_array_equal(load_volume(path).data, load_volume(other).data)
    assert (again / "cases.csv").read_text() == (benchmark / "cases.csv").read_text()


@pytest.mark.parametrize("split", ["val", "test"])
def test_original_draws_are_the_cases_before_their_anomalies(benchmark, split):
    originals = list(original_draws(benchmark, split))
    assert [c.case for c, _ in originals] == [
        c.case for c in read_cases(benchmark) if c.split == split
    ]
    for case, draw in originals:
        scan = load_volume(benchmark / split / "toy" / case.case).data
        label = load_volume(benchmark / split / "toy_label" / "pixel" / case.case).data > 0
        changed = np.abs(scan - draw.data) > 1e-6
        assert not changed[~label].any()  # the same volume outside the label
        if case.label:  # and inside it, the anomaly's change
            assert changed[label].mean() > 0.2


def test_original_draws_need_the_benchmarks_template(template, tmp_path):
    from anomaly_maps.io import save_volume

    path = tmp_path / "subject.nii.gz"
    save_volume(template.volume, path)
    bench = make_benchmark(tmp_path / "b", n_train=0, n_val=0, n_test=2, seed=0, shape=12,
                           template=path)  # fmt: skip
    healthy = [(c, d) for c, d in original_draws(bench) if not c.label]
    assert len(healthy) == 1
    case, draw = healthy[0]
    np.testing.assert_array_equal(draw.data, load_volume(bench / "test/toy" / case.case).data)
    path.unlink()
    with pytest.raises(AnomalyMapsError, match=r"template .* is not there"):
        next(original_draws(bench))
    with pytest.raises(ParameterError, match="split 'train'"):
        next(original_draws(bench, "train"))


def test_refuses_to_replace_without_overwrite(template, tmp_path):
    out = tmp_path / "bench"
    make_benchmark(out, n_train=1, n_val=0, n_test=1, shape=12, template=template)
    before = (out / "cases.csv").read_text()
    with pytest.raises(AnomalyMapsError, match=r"not empty.*overwrite"):
        make_benchmark(out, n_train=1, n_val=0, n_test=1, shape=12, seed=1, template=template)
    assert (out / "cases.csv").read_text() == before
    make_benchmark(out, n_train=0, n_val=0, n_test=2, shape=12, seed=1, template=template,
                   overwrite=True)  # fmt: skip
    assert not (out / "train").exists() or not any((out / "train").iterdir())
    assert len(read_cases(out)) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["bench"]  # no temporary folders left

    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(AnomalyMapsError, match="make-benchmark did not write"):
        make_benchmark(other, n_train=1, n_val=0, n_test=0, template=template, overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me"


def test_bad_settings_name_the_parameter(template, tmp_path):
    with pytest.raises(ParameterError, match="radius="):
        BenchmarkSpec(radius=(0.2, 0.1))
    with pytest.raises(ParameterError, match="anomalies="):
        BenchmarkSpec(anomalies=("spheres",))
    with pytest.raises(ParameterError, match="n_test=-1"):
        make_benchmark(tmp_path / "x", n_test=-1, template=template)
    with pytest.raises(ParameterError, match="shape="):
        make_benchmark(tmp_path / "x", shape=(10, 10), template=template)
    assert not (tmp_path / "x").exists()


# Computed by the code before anomaly kinds moved into a registry (same seed, same
# benchmark): the manifest's rows exactly, each volume's sum and index-weighted sum.
_FINGERPRINT_CASES_SHA256 = "63d86f40fc76c1011a14daea5f213eecd75dd991de1f159c5dbf05536187d05f"
_FINGERPRINT = {
    "test/toy/00000.nii.gz": (699.947936, 342.609877),
    "test/toy/00001.nii.gz": (894.057179, 461.430144),
    "test/toy/00002.nii.gz": (798.264325, 399.742529),
    "test/toy/00003.nii.gz": (869.082803, 436.408538),
    "test/toy/00004.nii.gz": (847.203684, 433.256507),
    "test/toy/00005.nii.gz": (793.95432, 395.717927),
    "test/toy/00006.nii.gz": (785.790407, 387.830998),
    "test/toy/00007.nii.gz": (850.167211, 429.31114),
    "test/toy/00008.nii.gz": (795.645222, 413.660934),
    "test/toy/00009.nii.gz": (944.330424, 487.093165),
    "test/toy/00010.nii.gz": (850.121513, 431.589045),
    "test/toy/00011.nii.gz": (770.1579, 383.86335),
    "test/toy_label/pixel/00000.nii.gz": (56.0, 16.3565),
    "test/toy_label/pixel/00001.nii.gz": (14.0, 3.379),
    "test/toy_label/pixel/00002.nii.gz": (52.0, 23.97175),
    "test/toy_label/pixel/00003.nii.gz": (19.0, 12.708625),
    "test/toy_label/pixel/00004.nii.gz": (7.0, 3.28125),
    "test/toy_label/pixel/00005.nii.gz": (24.0, 6.7695),
    "test/toy_label/pixel/00006.nii.gz": (57.0, 24.004125),
    "test/toy_label/pixel/00007.nii.gz": (19.0, 12.751375),
    "test/toy_label/pixel/00008.nii.gz": (19.0, 7.146375),
    "test/toy_label/pixel/00009.nii.gz": (7.0, 4.102),
    "test/toy_label/pixel/00010.nii.gz": (7.0, 2.601375),
    "test/toy_label/pixel/00011.nii.gz": (7.0, 3.352125),
    "train/00000.nii.gz": (849.87354, 435.951196),
    "val/toy/00000.nii.gz": (908.083452, 463.743564),
    "val/toy_label/pixel/00000.nii.gz": (17.0, 5.8075),
}


def test_same_seed_gives_the_benchmark_it_always_gave(template, tmp_path):
    import hashlib

    out = make_benchmark(tmp_path / "b", n_train=1, n_val=1, n_test=12, seed=5, shape=20,
                         spec=BenchmarkSpec(anomaly_fraction=1.0), template=template)  # fmt: skip
    assert {c.anomaly for c in read_cases(out)} == set(ANOMALY_TYPES)
    assert (
        hashlib.sha256((out / "cases.csv").read_bytes()).hexdigest() == _FINGERPRINT_CASES_SHA256
    )
    got = {}
    for path in sorted(out.rglob("*.nii.gz")):
        data = load_volume(path).data.astype(np.float64)
        weight = np.arange(data.size).reshape(data.shape) / data.size
        got[str(path.relative_to(out))] = (data.sum(), (data * weight).sum())
    assert got.keys() == _FINGERPRINT.keys()
    for name, expected in _FINGERPRINT.items():
        np.testing.assert_allclose(got[name], expected, rtol=1e-6, atol=1e-5, err_msg=name)


def test_a_registered_anomaly_kind_is_drawn_without_touching_the_builder(
    template, tmp_path, monkeypatch
):
    from anomaly_maps.benchmark import anomalies, anomaly_kinds, register_anomaly

    monkeypatch.setattr(anomalies, "_KINDS", dict(anomalies._KINDS))

    @register_anomaly("dark", strength=(0.5, 0.5), description="darkened tissue")
    def dark(sphere, strength, rng):
        return sphere.old * (1 - strength)

    assert anomaly_kinds()[-1] == "dark" and "dark" not in ANOMALY_TYPES
    with pytest.raises(ParameterError, match="already registered"):
        register_anomaly("dark", strength=(0, 1), description="again")(dark)
    spec = BenchmarkSpec(anomalies=("dark",), anomaly_fraction=1.0)
    out = make_benchmark(tmp_path / "b", n_train=0, n_val=0, n_test=2, seed=1, shape=20,
                         spec=spec, template=template)  # fmt: skip
    [case, _] = read_cases(out)
    assert case.anomaly == "dark" and case.strength == 0.5
    scan = load_volume(out / "test" / "toy" / case.case).data
    label = load_volume(out / "test" / "toy_label" / "pixel" / case.case).data > 0
    assert scan[label].max() <= 0.5


def test_unknown_anomaly_kind_lists_the_registered_ones(template):
    draw = healthy_draw(template, (20, 20, 20), STILL, np.random.default_rng(0))
    with pytest.raises(ParameterError, match=r"'blob': expected one of .*'mirror'"):
        insert_anomaly(draw, "blob", STILL, np.random.default_rng(0))
