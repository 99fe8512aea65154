"""The training record says whether the model learnt skull-stripped brains, and which
modality."""

from __future__ import annotations

import pytest

from anomaly_maps.checkpoint import load_checkpoint
from anomaly_maps.records import TrainingRecord, trained_modality, trained_on_brains
from anomaly_maps.samples import sample_path


@pytest.mark.parametrize("value", [True, False, None])
def test_skull_stripped_round_trips_and_shows_in_the_card(value):
    record = TrainingRecord(volumes=("a.nii.gz",), skull_stripped=value)
    assert TrainingRecord.from_dict(record.to_dict()) == record
    shown = dict(record.card_rows())["skull-stripped data"]
    assert shown == {True: "yes", False: "no (heads)", None: "unknown (taken as yes)"}[value]
    assert trained_on_brains(record) is (value is not False)


def test_bundled_checkpoints_are_unknown_and_taken_as_trained_on_brains():
    training = load_checkpoint(sample_path("vae")).records.training
    assert training.skull_stripped is None and trained_on_brains(training)
    assert trained_on_brains(None)


def test_train_writes_the_field(tiny_checkpoint):
    assert load_checkpoint(tiny_checkpoint).records.training.skull_stripped is True


@pytest.mark.parametrize("value", ["CT", None])
def test_modality_round_trips_and_old_records_are_mr(value):
    record = TrainingRecord(volumes=("a.nii.gz",), modality=value)
    assert TrainingRecord.from_dict(record.to_dict()) == record
    assert ("modality" in record.to_dict()) is (value is not None)
    assert trained_modality(record) == (value or "MR")
    assert dict(record.card_rows())["modality"].startswith(value or "MR")
    assert trained_modality(None) == "MR"


def test_train_records_the_modality(tiny_checkpoint):
    assert load_checkpoint(tiny_checkpoint).records.training.modality == "MR"
