"""Training on healthy scans: slices, validation split, the loop, resumable state, DDP.

One process trains on one device; under ``torchrun`` every process trains a replica
with PyTorch DDP (``nccl`` on GPUs, ``gloo`` on CPUs), each sees its shard of every
epoch through a ``DistributedSampler``, and rank 0 alone writes the checkpoint, the
resume state and the metrics CSV.

Randomness is drawn from generators seeded by ``(seed, epoch, rank)``, so a run that is
stopped and resumed continues exactly as if it had not been interrupted (on the CPU;
CUDA kernels may add their own non-determinism).

Files written for ``out = run.safetensors``:

* ``run.safetensors``: the model checkpoint (see :mod:`anomaly_maps.checkpoint`),
  rewritten atomically after every epoch;
* ``run.resume.safetensors``: optimizer state, epoch and loss history for ``--resume``;
* ``run.metrics.csv``: one row per epoch and split with every loss term.

Modules: :mod:`.config` (:class:`TrainConfig`), :mod:`.data` (slices, split),
:mod:`.epoch` (one pass), :mod:`.distributed` (torchrun, DDP), :mod:`.files` (resume
state, metrics CSV), :mod:`.run` (:func:`train`).
"""

from .config import LR_SCHEDULES, TrainConfig
from .data import SliceData, fit_standard_scale, load_slices, split_train_val
from .distributed import dist_from_env
from .epoch import autocast_for, optimizer_step
from .files import best_path, metrics_path, resume_path
from .run import TrainResult, train

__all__ = [
    "LR_SCHEDULES",
    "SliceData",
    "TrainConfig",
    "TrainResult",
    "autocast_for",
    "best_path",
    "dist_from_env",
    "fit_standard_scale",
    "load_slices",
    "metrics_path",
    "optimizer_step",
    "resume_path",
    "split_train_val",
    "train",
]
