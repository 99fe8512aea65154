import csv

import nibabel as nib
import numpy as np
import pytest
from sklearn import metrics as sk

from anomaly_maps.benchmark import make_benchmark
from anomaly_maps.errors import AnomalyMapsError, VolumeError
from anomaly_maps.evaluation import OUTPUT_FILES, evaluate, evaluate_checkpoint
from anomaly_maps.io import Volume, save_volume

SHAPE = (4, 4, 3)


def labels_dir(root, labels: dict[str, np.ndarray]):
    """MOOD label layout: toy_label/pixel/NAME and toy_label/sample/NAME.txt."""
    for name, label in labels.items():
        save_volume(Volume(label.astype(np.uint8), np.eye(4)), root / "toy_label/pixel" / name)
        (root / "toy_label/sample").mkdir(parents=True, exist_ok=True)
        (root / "toy_label/sample" / f"{name}.txt").write_text(f"{int(label.any())}\n")
    return root


def predictions(root, maps: dict[str, np.ndarray], scores: dict[str, float] | None = None):
    for name, values in maps.items():
        save_volume(Volume(np.asarray(values, np.float32), np.eye(4)), root / name)
    for name, score in (scores or {}).items():
        (root / f"{name}.txt").write_text(f"{score}\n")
    return root


@pytest.fixture
def two_cases(tmp_path):
    """Case a: 3 anomalous voxels; case b: healthy."""
    a = np.zeros(SHAPE, bool)
    a[0, 0, :] = True
    return labels_dir(tmp_path / "test", {"a.nii.gz": a, "b.nii.gz": np.zeros(SHAPE, bool)})


def test_perfect_and_inverted_maps(two_cases, tmp_path):
    a = np.zeros(SHAPE)
    a[0, 0, :] = 1
    maps = {"a.nii.gz": a, "b.nii.gz": np.zeros(SHAPE)}
    predictions(tmp_path / "pred/perfect", maps, {"a.nii.gz": 0.9, "b.nii.gz": 0.1})
    inverted = {k: 1 - v for k, v in maps.items()}
    predictions(tmp_path / "pred/inverted", inverted, {"a.nii.gz": 0.1, "b.nii.gz": 0.9})
    result = {r.scorer: r for r in evaluate(tmp_path / "pred", two_cases).results}
    perfect = result["perfect"]
    assert (perfect.pixel_auroc, perfect.pixel_ap, perfect.best_dice) == (1.0, 1.0, 1.0)
    assert perfect.best_dice_threshold == 1.0
    assert (perfect.sample_auroc, perfect.sample_ap) == (1.0, 1.0)
    assert (perfect.n_cases, perfect.n_anomalous) == (2, 1)
    worst = result["inverted"]
    assert worst.pixel_auroc == 0.0
    assert worst.pixel_ap == pytest.approx(3 / 96)  # everything tied at recall 1: prevalence
    assert worst.best_dice == pytest.approx(2 * 3 / (96 + 3))  # flag every voxel
    assert np.isnan(worst.val_dice)  # no validation split given


def test_pooled_ap_by_hand_and_as_mood_computes_it(two_cases, tmp_path):
    a = np.zeros(SHAPE)
    a[0, 0, :] = [0.9, 0.5, 0.2]  # the three anomalous voxels
    a[1, 1, 1] = 0.7  # false alarm in case a
    b = np.zeros(SHAPE)
    b[2, 2, 2] = 0.5  # tie with an anomalous voxel, in the other case
    predictions(tmp_path / "rec", {"a.nii.gz": a, "b.nii.gz": b})
    (row,) = evaluate(tmp_path / "rec", two_cases).results
    # pooled ranking: 0.9 (+), 0.7 (-), 0.5 (+, -), 0.2 (+), then 93 zeros (-)
    # recall 1/3 at precision 1, 2/3 at 2/4, 3/3 at 3/5
    assert row.pixel_ap == pytest.approx((1 + 2 / 4 + 3 / 5) / 3)
    assert row.best_dice == pytest.approx(2 * 3 / (5 + 3))
    assert np.isnan(row.sample_auroc)  # no score files: no sample-level metrics
    # MOOD's evaluator: labels rounded and clipped, maps read as float16 and clipped
    labels, preds = [], []
    for name in ("a.nii.gz", "b.nii.gz"):
        label = nib.load(two_cases / "toy_label/pixel" / name).get_fdata()
        labels.append((np.clip(np.rint(label), 0, 1) == 1).ravel())
        pred = nib.load(tmp_path / "rec" / name).get_fdata(dtype=np.float16)
        preds.append(np.clip(pred, 0, 1).ravel())
    assert row.pixel_ap == pytest.approx(
        sk.average_precision_score(np.concatenate(labels), np.concatenate(preds)), abs=1e-12
    )


def test_same_ap_as_mood_on_unnormalised_float_maps(tmp_path):
    rng = np.random.default_rng(0)
    shape = (12, 10, 8)
    labels = {f"{i:05d}.nii.gz": rng.random(shape) < 0.1 * i for i in range(3)}
    root = labels_dir(tmp_path / "test", labels)
    maps = {n: rng.normal(0.3, 0.4, shape) + 0.3 * lab for n, lab in labels.items()}
    predictions(tmp_path / "pred", maps)  # partly outside [0, 1], many float16 ties
    (row,) = evaluate(tmp_path / "pred", root).results
    pooled_labels = np.concatenate([lab.ravel() for lab in labels.values()])
    pooled = np.concatenate(
        [
            np.clip(nib.load(tmp_path / "pred" / n).get_fdata(dtype=np.float16), 0, 1).ravel()
            for n in labels
        ]
    )
    assert row.pixel_ap == pytest.approx(
        sk.average_precision_score(pooled_labels, pooled), abs=1e-12
    )
    assert row.pixel_auroc == pytest.approx(sk.roc_auc_score(pooled_labels, pooled), abs=1e-12)


def test_threshold_from_validation_and_breakdown_by_manifest(tmp_path):
    lesion = np.zeros(SHAPE, bool)
    lesion[1:3, 1:3, 1] = True
    val = labels_dir(tmp_path / "bench/val", {"v.nii.gz": lesion})
    test = labels_dir(tmp_path / "bench/test", {"a.nii.gz": lesion, "h.nii.gz": 0 * lesion})
    # val: lesion at 0.6, background at 0.3 -> best threshold 0.6 (highest of the ties)
    predictions(tmp_path / "val/rec", {"v.nii.gz": np.where(lesion, 0.6, 0.3)})
    # test: lesion at 0.8 / 0.5 (half missed at 0.6), healthy case all 0.2
    test_map = np.where(lesion, 0.5, 0.1)
    test_map[1, 1, 1] = test_map[2, 2, 1] = 0.8
    predictions(tmp_path / "test/rec", {"a.nii.gz": test_map, "h.nii.gz": np.full(SHAPE, 0.2)},
                {"a.nii.gz": 0.7, "h.nii.gz": 0.2})  # fmt: skip
    with (tmp_path / "bench/cases.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["split", "case", "label", "anomaly", "size", "radius",
                         "radius_fraction", "center_x", "center_y", "center_z", "strength",
                         "label_voxels"])  # fmt: skip
        writer.writerow(["val", "v.nii.gz", 1, "noise", "small", 1, 0.06, 1, 1, 1, 0.1, 4])
        writer.writerow(["test", "a.nii.gz", 1, "sink", "large", 1, 0.12, 1, 1, 1, 1.0, 4])
        writer.writerow(["test", "h.nii.gz", 0, "none", "", 0, 0, 0, 0, 0, 0, 0])
    evaluation = evaluate(tmp_path / "test", test, val_pred_dir=tmp_path / "val",
                          val_label_dir=val, manifest=tmp_path / "bench")  # fmt: skip
    rows = {r.group: r for r in evaluation.results}
    assert set(rows) == {"all", "anomaly=sink", "size=large"}
    assert rows["anomaly=sink"].n_cases == 2  # the sink case plus the healthy one
    row = rows["all"]
    assert row.val_threshold == pytest.approx(0.6, abs=1e-3)  # float16 of 0.6
    assert row.val_dice == pytest.approx(2 * 2 / (2 + 4))
    assert row.best_dice == pytest.approx(1.0)  # at 0.5 the whole lesion, nothing else
    assert (row.sample_auroc, row.sample_ap) == (1.0, 1.0)

    written = evaluation.write(tmp_path / "report")
    assert [p.name for p in written] == list(OUTPUT_FILES)
    assert "| rec · anomaly=sink |" in (tmp_path / "report/results.md").read_text()
    with (tmp_path / "report/results.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 3
    assert (tmp_path / "report/roc.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(AnomalyMapsError, match="already exists"):
        evaluation.write(tmp_path / "report")


def test_missing_and_misshapen_predictions_are_errors(two_cases, tmp_path):
    predictions(tmp_path / "some", {"a.nii.gz": np.zeros(SHAPE)})
    with pytest.raises(AnomalyMapsError, match=r"no prediction for 1 of 2 .*b\.nii\.gz"):
        evaluate(tmp_path / "some", two_cases)
    predictions(
        tmp_path / "bad", {"a.nii.gz": np.zeros(SHAPE), "b.nii.gz": np.zeros((4, 4))[..., None]}
    )
    with pytest.raises(VolumeError, match=r"b\.nii\.gz: shape \(4, 4, 1\) differs"):
        evaluate(tmp_path / "bad", two_cases)
    with pytest.raises(AnomalyMapsError, match="go together"):
        evaluate(tmp_path / "bad", two_cases, val_pred_dir=tmp_path / "bad")
    with pytest.raises(AnomalyMapsError, match="no pixel/ or sample/"):
        evaluate(tmp_path / "bad", tmp_path)
    (tmp_path / "words").mkdir()
    (tmp_path / "words/a.nii.gz.txt").write_text("high\n")
    (tmp_path / "words/b.nii.gz.txt").write_text("0.1\n")
    with pytest.raises(AnomalyMapsError, match=r"a\.nii\.gz\.txt: cannot read a score"):
        evaluate(tmp_path / "words", two_cases)


def test_checkpoint_on_a_tiny_benchmark(tiny_checkpoint, tmp_path):
    bench = make_benchmark(tmp_path / "bench", n_train=0, n_val=2, n_test=4, seed=0, shape=16)
    steps = []
    evaluation = evaluate_checkpoint(
        tiny_checkpoint, [("rec", {})], bench, tmp_path / "out", device="cpu",
        progress=lambda done, total: steps.append((done, total)),
    )  # fmt: skip
    assert steps[-1] == (6, 6)
    row = evaluation.results[0]
    assert (row.scorer, row.group, row.n_cases, row.n_anomalous) == ("rec", "all", 4, 2)
    for value in (row.pixel_auroc, row.pixel_ap, row.best_dice, row.sample_auroc):
        assert 0 <= value <= 1
    assert not np.isnan(row.val_threshold)
    maps = sorted((tmp_path / "out/predictions/test/rec").glob("*.nii.gz"))
    assert len(maps) == 4
    values = nib.load(maps[0]).get_fdata()
    assert values.shape == (16, 16, 16) and values.min() >= 0 and values.max() < 1
    assert all((tmp_path / "out" / name).is_file() for name in OUTPUT_FILES)
    with pytest.raises(AnomalyMapsError, match="already exists"):
        evaluate_checkpoint(tiny_checkpoint, [("rec", {})], bench, tmp_path / "out")


def test_uncalibrated_checkpoint_scores_each_case_once(tiny_checkpoint, tmp_path, monkeypatch):
    """Calibrating on the healthy val cases reuses their results: one pass per case, and
    the same predictions as with that calibration stored in the checkpoint beforehand."""
    import anomaly_maps.scoring as scoring
    from anomaly_maps.benchmark import read_cases
    from anomaly_maps.checkpoint import load_checkpoint
    from anomaly_maps.io import load_volume
    from anomaly_maps.scoring.calibration import calibrate, with_calibration

    bench = make_benchmark(tmp_path / "bench", n_train=0, n_val=3, n_test=2, seed=1, shape=16)
    calls = []
    real = scoring.score_volume
    monkeypatch.setattr(scoring, "score_volume", lambda *a, **k: calls.append(1) or real(*a, **k))
    evaluate_checkpoint(tiny_checkpoint, [("rec", {})], bench, tmp_path / "once", device="cpu")
    assert len(calls) == 5

    healthy = [
        load_volume(bench / "val/toy" / c.case)
        for c in read_cases(bench)
        if c.split == "val" and c.label == 0
    ]
    assert healthy
    model = load_checkpoint(tiny_checkpoint, device="cpu")
    calibrated = with_calibration(model, calibrate(model, "rec", {}, healthy))
    evaluate_checkpoint(calibrated, [("rec", {})], bench, tmp_path / "given", device="cpu")
    for split in ("val", "test"):
        for once in sorted((tmp_path / "once/predictions" / split / "rec").iterdir()):
            given = tmp_path / "given/predictions" / split / "rec" / once.name
            if once.suffix == ".txt":
                assert once.read_text() == given.read_text()
            else:
                np.testing.assert_array_equal(nib.load(once).dataobj, nib.load(given).dataobj)


def test_labelled_scans_pairs_scans_with_labels(tmp_path):
    from anomaly_maps.evaluation import labelled_scans

    bench = make_benchmark(tmp_path / "bench", n_train=0, n_val=3, n_test=0, seed=1, shape=16)
    pairs = labelled_scans(bench / "val")
    assert [(s.name, lab.name) for s, lab in pairs] == [(s.name, s.name) for s, _ in pairs]
    assert len(pairs) == 3 and all(lab.parent.name == "pixel" for _, lab in pairs)
    pairs[0][1].unlink()
    with pytest.raises(AnomalyMapsError, match=f"no voxel label .*{pairs[0][0].name}"):
        labelled_scans(bench / "val")
    with pytest.raises(AnomalyMapsError, match="no NIfTI scans: expected MOOD layout"):
        labelled_scans(tmp_path)
