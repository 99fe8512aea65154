"""Typed checkpoint records: old headers load, newer records are refused, one card."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from safetensors import safe_open
from safetensors.torch import save_file

from anomaly_maps.checkpoint import load_checkpoint, read_header, save_checkpoint
from anomaly_maps.errors import CheckpointError
from anomaly_maps.evaluation import Result
from anomaly_maps.records import (
    BENCHMARK_METRICS,
    BenchmarkRecord,
    Calibration,
    CheckpointRecords,
    TrainingRecord,
)

SAMPLE_DATA = Path(__file__).parents[1] / "src" / "anomaly_maps" / "sample_data"
#: checkpoints bundled before records were versioned (restoration came later, with them)
BUNDLED = [SAMPLE_DATA / "vae.safetensors", SAMPLE_DATA / "cevae.safetensors"]


def _without_versions(value):
    if isinstance(value, dict):
        return {k: _without_versions(v) for k, v in value.items() if k != "record_version"}
    if isinstance(value, list):
        return [_without_versions(v) for v in value]
    return value


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.stem)
def test_bundled_checkpoints_written_before_records_load_as_records(path):
    header = read_header(path)
    assert "record_version" not in json.dumps(header)  # written before records had versions
    records = load_checkpoint(path).records
    training = records.training
    assert training.epochs_completed == 6 and training.train_slices == 1343
    assert training.volumes[0] == "00000.nii.gz" and training.config["epochs"] == 6
    assert "val_loss" in training.final_losses and training.world_size == 1
    assert {c.scorer for c in records.calibrations} >= {"rec"}
    assert records.benchmark.data.startswith("bench128: make-benchmark seed 0")
    assert set(records.benchmark.scores["rec"]) == set(BENCHMARK_METRICS)
    assert records.other_metrics == {}
    # written back, the records say what the old header said
    training_json, metrics_json = records.to_header()
    assert _without_versions(training_json) == header["training"]
    assert _without_versions(metrics_json) == header["metrics"]


def _rewrite_header(src: Path, dst: Path, change) -> Path:
    """Copy checkpoint ``src`` to ``dst`` with its JSON header edited by ``change``."""
    with safe_open(str(src), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    header = read_header(src)
    change(header)
    save_file(tensors, str(dst), metadata={"anomaly_maps": json.dumps(header)})
    return dst


@pytest.mark.parametrize(
    ("what", "change"),
    [
        ("training", lambda h: h["training"].update(record_version=2)),
        ("calibration", lambda h: h["metrics"]["calibration"][0].update(record_version=2)),
        ("benchmark", lambda h: h["metrics"]["benchmark"].update(record_version=2)),
    ],
)
def test_a_newer_record_is_refused_naming_the_file(tmp_path, what, change):
    path = _rewrite_header(BUNDLED[0], tmp_path / "future.safetensors", change)
    newer = rf"future\.safetensors: {what} record version 2 is newer than this anomaly-maps "
    with pytest.raises(CheckpointError, match=newer + r".* understands \(1\); upgrade"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda h: h["training"].update(record_version="1"), "training record_version '1'"),
        (lambda h: h["training"]["data"].update(subjects=[]), r"unknown training.data keys"),
        (lambda h: h["metrics"]["benchmark"]["rec"].update(auc=1), "metrics.benchmark.rec keys"),
        (lambda h: h["metrics"]["calibration"][0].pop("levels"), "calibration record"),
        (lambda h: h.update(training=[]), "'training' is list"),
    ],
)
def test_a_malformed_record_is_refused_naming_the_file(tmp_path, change, match):
    path = _rewrite_header(BUNDLED[0], tmp_path / "bad.safetensors", change)
    with pytest.raises(CheckpointError, match=rf"bad\.safetensors: .*{match}"):
        load_checkpoint(path)


def test_records_round_trip_through_the_file(tmp_path):
    bundled = load_checkpoint(BUNDLED[0])
    records = CheckpointRecords(
        training=TrainingRecord(volumes=("a.nii.gz",), epochs_completed=2, augment=None),
        calibrations=bundled.records.calibrations,
        benchmark=BenchmarkRecord("bench", "anomaly-maps ...", {"rec": {"pixel_ap": None}}),
        other_metrics={"note": "kept"},
    )
    path = save_checkpoint(tmp_path / "m.safetensors", bundled.models,
                           preprocessing=bundled.preprocessing, records=records)  # fmt: skip
    loaded = load_checkpoint(path).records
    assert loaded.training == records.training and loaded.other_metrics == {"note": "kept"}
    assert loaded.calibrations == bundled.records.calibrations
    assert loaded.benchmark.scores == {"rec": dict.fromkeys(BENCHMARK_METRICS)}
    with pytest.raises(CheckpointError, match="not both"):
        save_checkpoint(tmp_path / "n.safetensors", bundled.models,
                        preprocessing=bundled.preprocessing, records=records,
                        metrics={})  # fmt: skip


def test_benchmark_record_from_results_keeps_the_all_group():
    def row(scorer, group, value):
        numbers = dict.fromkeys(
            ("pixel_auroc", "pixel_ap", "best_dice", "best_dice_threshold", "val_threshold",
             "val_dice", "sample_auroc", "sample_ap"), value)  # fmt: skip
        return Result(scorer, group, 4, 2, **numbers)

    rows = [
        row("rec", "all", 0.123456),
        row("rec", "anomaly=noise", 0.9),
        row("kl", "all", math.nan),
    ]
    record = BenchmarkRecord.from_results(rows, data="bench", command="cmd")
    assert record.scores == {
        "rec": dict.fromkeys(BENCHMARK_METRICS, 0.1235),
        "kl": dict.fromkeys(BENCHMARK_METRICS),
    }
    assert BenchmarkRecord.from_dict(record.to_dict()) == record


def test_card_rows_come_from_the_records():
    checkpoint = load_checkpoint(BUNDLED[0])
    rows = dict(checkpoint.card_rows())
    assert rows["trained on"].startswith("20 volume(s), 1343 slices (00000.nii.gz")
    assert rows["epochs"] == "6" and "benchmark.rec.pixel_auroc" in rows
    assert rows["calibrated"] == "; ".join(c.summary() for c in checkpoint.records.calibrations)
    empty = dict(CheckpointRecords().card_rows())
    assert empty == {"trained on": "0 volume(s), ? slices", "validation": "? slices",
                     "epochs": "?", "skull-stripped data": "unknown (taken as yes)",
                     "modality": "MR (not recorded: the MR template)",
                     "metrics": "none reported"}  # fmt: skip


def test_calibration_report_line_is_the_calibrate_commands_line():
    calibration = Calibration("rec", {}, (0.0, 0.5, 1.0), (0.0, 0.2, 1.0), (0.0, 0.5, 1.0), 3,
                              dice_threshold=0.25, dice=0.5)  # fmt: skip
    assert calibration.report_line() == (
        "rec: healthy map median 0.2, 99th percentile 0.984, best Dice 0.500 at 0.25"
    )
    slice_only = Calibration("kl", {}, (0.0, 1.0), None, (1.0, 3.0), 3)
    assert slice_only.report_line() == "kl: healthy slice score median 2, 99th percentile 2.98"
    assert slice_only.summary() == "kl on 3 healthy volume(s)"
