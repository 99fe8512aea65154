"""The learning-rate schedule, the kept best epoch and early stopping of ``train``."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_training import _train

from anomaly_maps.checkpoint import load_checkpoint
from anomaly_maps.cli.train import LR_SCHEDULES as CLI_SCHEDULES
from anomaly_maps.errors import ParameterError
from anomaly_maps.training import LR_SCHEDULES, TrainConfig, best_path
from anomaly_maps.training.run import _is_best, _out_of_patience


def test_cli_offers_the_schedules_training_knows():
    assert CLI_SCHEDULES == LR_SCHEDULES


def test_cosine_schedule_values():
    config = TrainConfig(epochs=4, lr=1.0, lr_schedule="cosine")
    expected = [0.01 + 0.99 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
    assert [config.epoch_lr(e) for e in range(4)] == pytest.approx(expected)
    assert config.epoch_lr(0) == 1.0
    assert TrainConfig(lr=0.5).epoch_lr(7) == 0.5


def test_bad_schedule_and_patience_are_refused():
    with pytest.raises(ParameterError, match="lr_schedule"):
        TrainConfig(lr_schedule="step")
    with pytest.raises(ParameterError, match="patience"):
        TrainConfig(patience=-1)


def test_best_and_patience_rules():
    rows = [{"val_loss": v} for v in (3.0, 2.0, 2.5, 2.1)]
    assert [_is_best(rows[: i + 1]) for i in range(4)] == [True, True, False, False]
    assert not _out_of_patience(rows, 0)
    assert _out_of_patience(rows, 2) and not _out_of_patience(rows, 3)
    assert _is_best([{"train_loss": 1.0}])  # no validation: the first epoch is kept


def test_cosine_run_sets_the_optimizer_rate_and_keeps_the_best_epoch(tmp_path, healthy_paths):
    out = tmp_path / "run.safetensors"
    config = TrainConfig(epochs=4, batch_size=8, lr=3e-3, seed=1, val_fraction=0.34,
                         lr_schedule="cosine")  # fmt: skip
    result = _train(healthy_paths, out, config=config)
    losses = [row["val_loss"] for row in result.history]
    best = best_path(out)
    assert best.is_file()
    kept = load_checkpoint(best).records.training
    assert kept.epochs_completed == 1 + int(np.argmin(losses))
    assert kept.final_losses["val_loss"] == min(losses)


def test_patience_stops_and_resume_does_not_restart(tmp_path, healthy_paths):
    out = tmp_path / "run.safetensors"
    config = TrainConfig(epochs=30, batch_size=8, lr=1e-9, seed=1, val_fraction=0.34,
                         patience=1)  # fmt: skip
    result = _train(healthy_paths, out, config=config)  # lr 1e-9: the loss soon stops falling
    assert len(result.history) < 30
    assert _out_of_patience(result.history, 1)
    again = _train(healthy_paths, out, config=config, resume=True)
    assert len(again.history) == len(result.history)
