"""How to train: the settings of a run (the model's own are its ``ModelConfig``)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import get_args

from .._config import FrozenConfig, is_int, is_real
from ..preprocessing import Axis

__all__ = ["LR_SCHEDULES", "TrainConfig"]

LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig(FrozenConfig):
    """How to train (the model's own hyper-parameters are its ``ModelConfig``).

    Parameters
    ----------
    epochs
        Total number of epochs (a resumed run continues up to this number).
    batch_size
        Slices per optimisation step and process.
    lr, weight_decay
        Adam(W) learning rate and decoupled weight decay (seed 000: Adam, 2e-4).
    val_fraction
        Fraction of the volumes (or, with a single volume, of its slices) held out.
    min_foreground
        Slices with a smaller foreground fraction are skipped (empty slices teach
        nothing and dominate the loss otherwise).
    seed
        Seeds the split, the shuffling, the augmentation and the model's own noise.
    augment
        Apply :func:`anomaly_maps.augment.augment` to training batches.
    amp
        Mixed precision on CUDA (bfloat16 where supported, else float16 with loss
        scaling); ignored on other devices.
    skull_stripped
        The training volumes are skull-stripped brains (recorded in the checkpoint;
        ``--brain-mask auto`` extracts the brain of a head scan only for such a model).
    modality
        The DICOM Modality of the training scans (``MR``, ``CT``, ...; recorded in the
        checkpoint): a DICOM series of another modality is refused at scoring.
    lr_schedule
        ``constant``, or ``cosine``: the learning rate of epoch ``e`` (from 0) is
        ``lr * (0.01 + 0.99 * (1 + cos(pi * e / epochs)) / 2)`` (Loshchilov and Hutter,
        SGDR, ICLR 2017, without restarts), a function of the epoch alone, so a resumed
        run follows the same curve.
    patience
        Stop once the validation loss has not improved for this many epochs (0: never).
        The best epoch's weights are kept beside the checkpoint either way
        (:func:`~anomaly_maps.training.files.best_path`).
    extra_axes
        More slicing axes whose slices join the training data, besides the
        preprocessing's own axis (multi-view training: a model that has seen coronal and
        sagittal slices too scores well with ``views=orthogonal``).
    """

    epochs: int = 20
    batch_size: int = 64
    lr: float = 2e-4
    weight_decay: float = 0.0
    val_fraction: float = 0.1
    min_foreground: float = 0.05
    seed: int = 0
    augment: bool = True
    amp: bool = True
    skull_stripped: bool = True
    modality: str = "MR"
    lr_schedule: str = "constant"
    patience: int = 0
    extra_axes: tuple[str, ...] = ()

    def validate(self) -> None:
        self._require("epochs", is_int(self.epochs) and self.epochs >= 1, "an int >= 1")
        self._require(
            "batch_size", is_int(self.batch_size) and self.batch_size >= 1, "an int >= 1"
        )
        self._require("lr", is_real(self.lr) and self.lr > 0, "a float > 0")
        self._require(
            "weight_decay", is_real(self.weight_decay) and self.weight_decay >= 0, "a float >= 0"
        )
        self._require(
            "val_fraction", is_real(self.val_fraction) and 0 <= self.val_fraction < 1, "[0, 1)"
        )
        self._require(
            "min_foreground",
            is_real(self.min_foreground) and 0 <= self.min_foreground < 1,
            "[0, 1)",
        )
        self._require("seed", is_int(self.seed) and self.seed >= 0, "an int >= 0")
        self._require("skull_stripped", isinstance(self.skull_stripped, bool), "a bool")
        self._require(
            "modality",
            isinstance(self.modality, str) and bool(re.fullmatch(r"[A-Z]{2,4}", self.modality)),
            "a DICOM Modality code such as MR or CT (2-4 capital letters)",
        )
        self._require(
            "lr_schedule", self.lr_schedule in LR_SCHEDULES, f"one of {list(LR_SCHEDULES)}"
        )
        self._require("patience", is_int(self.patience) and self.patience >= 0, "an int >= 0")
        self._require(
            "extra_axes",
            isinstance(self.extra_axes, tuple)
            and all(a in get_args(Axis) for a in self.extra_axes)
            and len(set(self.extra_axes)) == len(self.extra_axes),
            f"distinct axes among {list(get_args(Axis))}",
        )

    def epoch_lr(self, epoch: int) -> float:
        """The learning rate of ``epoch`` (counted from 0) under :attr:`lr_schedule`."""
        if self.lr_schedule == "constant":
            return self.lr
        return self.lr * (0.01 + 0.99 * (1 + math.cos(math.pi * epoch / self.epochs)) / 2)

    @classmethod
    def _label(cls) -> str:
        return "training"
