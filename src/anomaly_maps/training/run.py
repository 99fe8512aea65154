"""A training run: models, resume, the epochs, and the checkpoint after each of them."""

from __future__ import annotations

import logging
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import __version__
from ..augment import AugmentSpec
from ..checkpoint import load_checkpoint, save_checkpoint
from ..device import resolve_device
from ..errors import AnomalyMapsError, CheckpointError
from ..model_space import space_of
from ..models import ModelConfig, PriorConfig, build_model
from ..preprocessing import PreprocessingSpec
from ..records import CheckpointRecords, TrainingRecord
from .config import TrainConfig
from .data import code_data, fit_standard_scale, load_slices, split_train_val
from .distributed import Dist, LossModule, check_replicas_agree, dist_from_env, process_group
from .epoch import run_epoch
from .files import (
    best_path,
    load_resume,
    metrics_path,
    resume_path,
    save_resume,
    write_metrics,
)

__all__ = ["TrainResult", "train"]

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What :func:`train` produced."""

    checkpoint: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    models: dict[str, nn.Module] = field(default_factory=dict)
    seconds: float = 0.0


def train(
    paths: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    model_config: ModelConfig | None = None,
    preprocessing: PreprocessingSpec | None = None,
    config: TrainConfig | None = None,
    augment_spec: AugmentSpec | None = None,
    vqvae_checkpoint: str | os.PathLike | None = None,
    init: str | os.PathLike | None = None,
    device: str | torch.device = "auto",
    resume: bool = False,
    overwrite: bool = False,
    progress: Callable | None = None,
    command: str | None = None,
) -> TrainResult:
    """Train a model on healthy volumes and write its checkpoint after every epoch.

    Parameters
    ----------
    paths
        Healthy training volumes (NIfTI).
    out
        Checkpoint file (``.safetensors``); resume state and metrics CSV go beside it.
    model_config
        The model to train. For a ``prior`` it is optional (defaults to
        ``PriorConfig.for_vqvae``) and ``vqvae_checkpoint`` is required.
    preprocessing
        How slices are cut; its ``size`` must equal the model's. Taken from the VQ-VAE
        checkpoint when training a prior.
    config, augment_spec
        Training settings and augmentation strengths (``config.augment`` switches it).
    device
        ``auto``, ``cpu``, ``cuda:N`` or ``mps``; under torchrun each rank uses its
        ``LOCAL_RANK`` GPU when CUDA is chosen.
    init
        Fine-tuning: start from the weights of this checkpoint (e.g. on a site's own
        healthy scans), whose model must equal ``model_config`` and whose slices
        ``preprocessing`` (the optimizer and the schedule start afresh); recorded as
        ``started_from``. Ignored on ``resume``: the weights and record are ``out``'s.
    resume
        Continue from ``out`` and its resume state up to ``config.epochs``.
    overwrite
        Start afresh even if ``out`` exists.
    progress
        ``progress(iterable, epoch, split)`` wrapping batch iterables (e.g. tqdm).
    command
        Command line recorded in the checkpoint.
    """
    env = dist_from_env()
    config = config or TrainConfig()
    augment_spec = (augment_spec or AugmentSpec()) if config.augment else None
    out = Path(out)
    device = resolve_device(device)
    if env.world > 1 and device.type == "cuda":
        device = torch.device("cuda", env.local_rank)
        torch.cuda.set_device(device)
    if out.exists() and not (resume or overwrite):
        raise CheckpointError(
            f"{out}: already exists; pass --resume to continue it or --overwrite"
        )

    job = _Job(paths, out, config, vqvae_checkpoint, init, device, resume, progress, command, env)
    with process_group(env, device):
        return _train(job, model_config, preprocessing, augment_spec)


@dataclass(frozen=True)
class _Job:
    """The fixed inputs of one training run (see :func:`train`)."""

    paths: Sequence[str | os.PathLike]
    out: Path
    config: TrainConfig
    vqvae_checkpoint: str | os.PathLike | None
    init: str | os.PathLike | None
    device: torch.device
    resume: bool
    progress: Callable | None
    command: str | None
    env: Dist


def _train(
    job: _Job,
    model_config: ModelConfig | None,
    preprocessing: PreprocessingSpec | None,
    augment_spec: AugmentSpec | None,
) -> TrainResult:
    started = time.perf_counter()
    models: dict[str, nn.Module] = {}
    if job.vqvae_checkpoint is not None:
        vq = load_checkpoint(job.vqvae_checkpoint, device=job.device)
        if "vqvae" not in vq.models:
            raise CheckpointError(f"{job.vqvae_checkpoint}: holds {vq.kinds}, expected a vqvae")
        models["vqvae"] = vq.models["vqvae"]
        preprocessing = vq.preprocessing
        model_config = model_config or PriorConfig.for_vqvae(models["vqvae"].config)
        if not isinstance(model_config, PriorConfig):
            raise AnomalyMapsError("--vqvae is only used to train a prior (--model prior)")
        model_config.check_matches(models["vqvae"].config)
        augment_spec = None  # the prior learns the codes of real, unaugmented anatomy
    elif model_config is not None and model_config.kind == "prior":
        raise AnomalyMapsError("a prior is trained on the codes of a VQ-VAE: pass --vqvae CKPT")
    if model_config is None or preprocessing is None:
        raise AnomalyMapsError("train needs a model config and a preprocessing spec")
    size = getattr(model_config, "size", preprocessing.size)
    if size != preprocessing.size:
        raise AnomalyMapsError(
            f"model size {size} differs from preprocessing size {preprocessing.size}"
        )
    if preprocessing.images and job.config.extra_axes:
        raise AnomalyMapsError(
            f"extra_axes={list(job.config.extra_axes)}: 2D images have one plane; "
            "expected one --axis for them"
        )

    torch.manual_seed(job.config.seed)  # weight initialisation
    # channels-last: the fast convolution paths (a restoration training step 1.5-1.7x
    # faster on our 2-core CPU); only 4D weights change layout, values do not
    model = build_model(model_config).to(job.device, memory_format=torch.channels_last)
    kind = model_config.kind
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=job.config.lr, weight_decay=job.config.weight_decay
    )
    history: list[dict[str, Any]] = []
    start_epoch = 0
    started_from = None
    if job.resume:
        ckpt = load_checkpoint(job.out, device=job.device)
        model.load_state_dict(ckpt.models[kind].state_dict())
        meta = load_resume(resume_path(job.out), optimizer)
        history, start_epoch = meta["history"], meta["epoch"]
        training = ckpt.records.training
        if (training.epochs_completed if training else None) != start_epoch:
            raise CheckpointError(f"{job.out}: checkpoint and resume state disagree on the epoch")
        started_from = training.started_from if training else None
    elif job.init is not None:
        started_from = _start_from(model, job.init, model_config, preprocessing, job.device)

    if preprocessing.needs_landmarks():
        preprocessing = fit_standard_scale(job.paths, preprocessing)
    data = load_slices(
        job.paths,
        preprocessing,
        min_foreground=job.config.min_foreground,
        extra_axes=job.config.extra_axes,
    )
    space = space_of(job.paths)  # the training volumes' grid: MNI or unknown
    train_data, val_data = split_train_val(data, job.config.val_fraction, job.config.seed)
    if "vqvae" in models:
        train_data = code_data(models["vqvae"], train_data, job.device, job.config.batch_size)
        val_data = code_data(models["vqvae"], val_data, job.device, job.config.batch_size)
    loss_module: nn.Module = LossModule(model)
    if job.env.world > 1:
        loss_module = nn.parallel.DistributedDataParallel(
            loss_module, device_ids=[job.device.index] if job.device.type == "cuda" else None
        )
    val_volumes = tuple(sorted({data.sources[i] for i in val_data.volume.unique().tolist()}))
    log.info("training %s on %d slices (%d for validation)", kind, len(train_data), len(val_data))

    for epoch in range(start_epoch, job.config.epochs):
        if _out_of_patience(history, job.config.patience):
            log.info("no lower validation loss for %d epochs: stopping", job.config.patience)
            break
        for group in optimizer.param_groups:
            group["lr"] = job.config.epoch_lr(epoch)
        t0 = time.perf_counter()
        common = {
            "config": job.config,
            "env": job.env,
            "device": job.device,
            "epoch": epoch,
        }
        row_train = run_epoch(
            loss_module,
            train_data,
            optimizer=optimizer,
            augment_spec=augment_spec,
            progress=job.progress,
            **common,
        )
        row_val = (
            run_epoch(
                loss_module,
                val_data,
                optimizer=None,
                augment_spec=None,
                progress=job.progress,
                **common,
            )
            if len(val_data)
            else {}
        )
        seconds = time.perf_counter() - t0
        history.append(
            {
                "epoch": epoch + 1,
                "seconds": round(seconds, 3),
                **{f"train_{k}": v for k, v in row_train.items()},
                **{f"val_{k}": v for k, v in row_val.items()},
            }
        )
        if not all(math.isfinite(v) for v in row_train.values()):
            raise AnomalyMapsError(f"training diverged at epoch {epoch + 1}: {row_train}")
        if job.env.main:
            record = TrainingRecord(
                volumes=tuple(data.sources),
                train_slices=len(train_data),
                val_slices=len(val_data),
                val_volumes=val_volumes,
                preprocessing=preprocessing.to_dict(),
                config=job.config.to_dict(),
                augment=augment_spec.to_dict() if augment_spec else None,
                epochs_completed=epoch + 1,
                final_losses=history[-1],
                seconds=round(sum(r["seconds"] for r in history), 1),
                device=str(job.device),
                world_size=job.env.world,
                command=job.command,
                skull_stripped=job.config.skull_stripped,
                modality=job.config.modality,
                space=space,
                started_from=started_from,
                versions={
                    "anomaly_maps": __version__,
                    "torch": torch.__version__,
                    "python": platform.python_version(),
                },
            )
            targets = [job.out] + ([best_path(job.out)] if _is_best(history) else [])
            for target in targets:
                save_checkpoint(
                    target,
                    {**models, kind: model},
                    preprocessing=preprocessing,
                    records=CheckpointRecords(training=record),
                    overwrite=True,
                )
            save_resume(resume_path(job.out), optimizer, {"epoch": epoch + 1, "history": history})
            write_metrics(metrics_path(job.out), history)
    if job.env.world > 1:
        check_replicas_agree(model, job.device, job.env.world)
    return TrainResult(job.out, history, {**models, kind: model}, time.perf_counter() - started)


def _start_from(
    model: nn.Module,
    path: str | os.PathLike,
    model_config: ModelConfig,
    preprocessing: PreprocessingSpec,
    device: torch.device,
) -> dict[str, Any]:
    """Load ``path``'s weights into ``model`` (same hyper-parameters, but for those that
    shape the training alone, and the same slicing, else one line naming what differs);
    its file name and training record, for the record."""
    source = load_checkpoint(path, device=device)
    kind = model_config.kind
    if kind not in source.models:
        raise CheckpointError(
            f"{path}: holds {'+'.join(source.kinds)}: expected a {kind} model to start from"
        )
    ours, theirs = model_config.to_dict(), source.models[kind].config.to_dict()
    keys = (ours.keys() | theirs.keys()) - type(model_config).training_only
    differ = sorted(k for k in keys if ours.get(k) != theirs.get(k))
    if differ:
        raise CheckpointError(
            f"{path}: its {kind} differs in {differ}: fine-tuning needs the same model "
            "(`anomaly-maps train --init` takes it from the checkpoint)"
        )
    if source.preprocessing != preprocessing:
        raise CheckpointError(
            f"{path}: cuts slices as {source.preprocessing.to_dict()}, this run as "
            f"{preprocessing.to_dict()}: fine-tuning needs the same slices"
        )
    model.load_state_dict(source.models[kind].state_dict())
    training = source.records.training
    return {"file": Path(path).name, "training": training.to_dict() if training else None}


def _is_best(history: list[dict[str, Any]]) -> bool:
    """The last epoch has the lowest validation loss so far (or there is no validation)."""
    losses = [row.get("val_loss", math.nan) for row in history]
    if not math.isfinite(losses[-1]):
        return len(history) == 1
    return all(not losses[-1] > v for v in losses[:-1] if math.isfinite(v))


def _out_of_patience(history: list[dict[str, Any]], patience: int) -> bool:
    """``patience`` epochs have passed since the lowest validation loss (never for 0)."""
    losses = [row.get("val_loss", math.nan) for row in history]
    finite = [i for i, v in enumerate(losses) if math.isfinite(v)]
    if patience == 0 or not finite:
        return False
    best = min(finite, key=lambda i: losses[i])
    return len(history) - 1 - best >= patience
