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
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import DistributedSampler

from . import __version__
from ._config import FrozenConfig, is_int, is_real
from ._fileio import atomic_path
from .augment import AugmentSpec, augment
from .checkpoint import load_checkpoint, save_checkpoint
from .device import resolve_device
from .errors import AnomalyMapsError, CheckpointError
from .io import load_volume
from .models import ModelConfig, PriorConfig, build_model
from .preprocessing import PreprocessingSpec, to_slices

__all__ = [
    "SliceData",
    "TrainConfig",
    "TrainResult",
    "autocast_for",
    "load_slices",
    "optimizer_step",
    "resume_path",
    "train",
]

log = logging.getLogger(__name__)


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

    @classmethod
    def _label(cls) -> str:
        return "training"


@dataclass
class SliceData:
    """Training slices of several volumes, kept in host memory.

    Attributes
    ----------
    images
        (N, 1, S, S) float32 preprocessed slices, or (N, h, w) int64 codes for a prior.
    positions
        (N,) float32 slice position in [0, 1] along the slicing axis.
    volume
        (N,) int64 index into ``sources`` of the volume each slice came from.
    sources
        Names of the volumes (file names).
    """

    images: torch.Tensor
    positions: torch.Tensor
    volume: torch.Tensor
    sources: list[str]

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: torch.Tensor) -> SliceData:
        return SliceData(
            self.images[index], self.positions[index], self.volume[index], self.sources
        )


def load_slices(
    paths: Sequence[str | os.PathLike],
    spec: PreprocessingSpec,
    *,
    min_foreground: float = 0.05,
    progress: Callable[[Iterator[Any], int], Iterator[Any]] | None = None,
) -> SliceData:
    """Cut every volume into model slices; keep those with enough foreground."""
    if not paths:
        raise AnomalyMapsError("no training volumes given")
    images, positions, volume = [], [], []
    items: Iterator[Any] = iter(enumerate(paths))
    if progress is not None:
        items = progress(items, len(paths))
    for i, path in items:
        stack = to_slices(load_volume(path), spec)
        keep = stack.mask.mean(axis=(1, 2)) >= min_foreground
        images.append(torch.from_numpy(stack.images[keep]))
        positions.append(torch.from_numpy(stack.positions[keep]))
        volume.append(torch.full((int(keep.sum()),), i, dtype=torch.int64))
    data = SliceData(
        torch.cat(images)[:, None],
        torch.cat(positions),
        torch.cat(volume),
        [Path(p).name for p in paths],
    )
    if len(data) == 0:
        raise AnomalyMapsError(
            f"no slice of {len(paths)} volume(s) has >= {min_foreground:.0%} foreground"
        )
    return data


def split_train_val(data: SliceData, fraction: float, seed: int) -> tuple[SliceData, SliceData]:
    """Hold out whole volumes (several volumes) or random slices (a single volume)."""
    g = torch.Generator().manual_seed(seed)
    n_volumes = len(data.sources)
    if fraction == 0:
        return data, data.subset(torch.zeros(0, dtype=torch.int64))
    if n_volumes >= 2:
        n_val = min(n_volumes - 1, max(1, round(fraction * n_volumes)))
        val_volumes = torch.randperm(n_volumes, generator=g)[:n_val]
        is_val = torch.isin(data.volume, val_volumes)
    else:
        log.warning("one training volume: validation slices come from the same volume")
        is_val = torch.zeros(len(data), dtype=torch.bool)
        is_val[torch.randperm(len(data), generator=g)[: max(1, round(fraction * len(data)))]] = (
            True
        )
    return data.subset(torch.nonzero(~is_val)[:, 0]), data.subset(torch.nonzero(is_val)[:, 0])


def resume_path(out: str | os.PathLike) -> Path:
    """Where the resume state of checkpoint ``out`` lives: ``run.resume.safetensors``."""
    out = Path(out)
    return out.with_name(out.name.removesuffix(".safetensors") + ".resume.safetensors")


def metrics_path(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(out.name.removesuffix(".safetensors") + ".metrics.csv")


# --------------------------------------------------------------------------- distributed


@dataclass(frozen=True)
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _dist_from_env() -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    return _Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


@contextmanager
def _process_group(env: _Dist, device: torch.device) -> Iterator[None]:
    """Join the torchrun process group for the duration of training."""
    if env.world == 1 or dist.is_initialized():
        yield
        return
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield
        # leave together: a rank tearing down while another still talks to it can abort
        dist.barrier()
    finally:
        dist.destroy_process_group()


class _LossModule(nn.Module):
    """DDP only synchronises gradients of calls that go through ``forward``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, position: torch.Tensor) -> tuple[torch.Tensor, dict]:
        out = self.model.training_loss(x, position=position)
        return out.total, out.terms


# --------------------------------------------------------------------------- resume state


def _save_resume(path: Path, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Optimizer tensors + JSON (epoch, history, ...) in one safetensors file."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, per_param in sd["state"].items():
        for key, value in per_param.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{key}"] = value.detach().cpu().contiguous().clone()
            else:
                scalars[f"{pid}.{key}"] = value
    meta = {**state, "param_groups": sd["param_groups"], "scalars": scalars}
    with atomic_path(path, overwrite=True, error=CheckpointError) as tmp:
        save_file(tensors, str(tmp), metadata={"anomaly_maps_resume": json.dumps(meta)})


def _load_resume(path: Path, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"{path}: no resume state here (written by an earlier `train`)")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = json.loads((f.metadata() or {})["anomaly_maps_resume"])
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118
    except Exception as err:  # safetensors raises several types for foreign files
        raise CheckpointError(f"{path}: not a readable resume state ({err})") from err
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = value
    for key, value in meta.pop("scalars").items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta.pop("param_groups")})
    return meta


def _write_metrics(path: Path, history: list[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(k for row in history for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(history)
    with atomic_path(path, overwrite=True) as tmp:
        tmp.write_text(buffer.getvalue())


# --------------------------------------------------------------------------- the loop


@dataclass
class TrainResult:
    """What :func:`train` produced."""

    checkpoint: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    models: dict[str, nn.Module] = field(default_factory=dict)
    seconds: float = 0.0


def autocast_for(device: torch.device, enabled: bool):
    """``(autocast context, GradScaler or None)`` for mixed precision on CUDA only."""
    if not (enabled and device.type == "cuda"):
        return nullcontext(), None
    if torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16), None
    return torch.autocast("cuda", dtype=torch.float16), torch.amp.GradScaler("cuda")


def optimizer_step(
    loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None
) -> None:
    """Backward and step, through the loss scaler when float16 autocast needs one."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimizer.step()
        return
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


def _seed_everything(seed: int, epoch: int, rank: int) -> int:
    """Seed torch's global RNG (model noise: sampling, masks) for one epoch of one rank."""
    derived = (seed * 1_000_003 + epoch * 10_007 + rank) % 2**63
    torch.manual_seed(derived)
    return derived


def _batches(n: int, batch_size: int, env: _Dist, seed: int, epoch: int, shuffle: bool):
    sampler = DistributedSampler(
        range(n), num_replicas=env.world, rank=env.rank, shuffle=shuffle, seed=seed
    )
    sampler.set_epoch(epoch)
    index = torch.tensor(list(sampler), dtype=torch.int64)
    return index.split(batch_size)


def _run_epoch(
    loss_module: nn.Module,
    data: SliceData,
    *,
    config: TrainConfig,
    env: _Dist,
    device: torch.device,
    epoch: int,
    optimizer: torch.optim.Optimizer | None,
    augment_spec: AugmentSpec | None,
    progress: Callable | None,
) -> dict[str, float]:
    """One pass over ``data``; trains when ``optimizer`` is given. Returns mean terms."""
    training = optimizer is not None
    loss_module.train(training)
    seed = _seed_everything(config.seed, epoch, env.rank)
    generator = torch.Generator(device=device).manual_seed(seed)
    batches = _batches(len(data), config.batch_size, env, config.seed, epoch, shuffle=training)
    autocast, scaler = autocast_for(device, config.amp)
    sums: dict[str, torch.Tensor] = {}
    count = 0
    bar = progress(batches, epoch, "train" if training else "val") if progress else batches
    for index in bar:
        x = data.images[index].to(device, non_blocking=True)
        position = data.positions[index].to(device, non_blocking=True)
        if training and augment_spec is not None:
            x = augment(x, augment_spec, generator)
        with torch.set_grad_enabled(training), autocast:
            total, terms = loss_module(x, position)
        if training:
            optimizer_step(total, optimizer, scaler)
        n = len(index)
        for key, value in {"loss": total.detach(), **terms}.items():
            sums[key] = sums.get(key, 0.0) + value.detach().float() * n
        count += n
        if progress is not None and hasattr(bar, "set_postfix"):
            bar.set_postfix({k: f"{(v / count).item():.4g}" for k, v in sums.items()})
    stacked = torch.stack([*sums.values(), torch.tensor(float(count), device=device)])
    if env.world > 1:  # average over every rank's samples
        dist.all_reduce(stacked)
    total_count = max(float(stacked[-1]), 1.0)
    return {k: float(v) / total_count for k, v in zip(sums, stacked[:-1].tolist(), strict=True)}


def _code_data(vqvae: nn.Module, data: SliceData, device: torch.device, batch: int) -> SliceData:
    """Replace slices by their VQ-VAE code grids (the prior's training data)."""
    vqvae.eval()
    with torch.no_grad():
        codes = [vqvae.codes(x.to(device)).cpu() for x in data.images.split(batch)]
    return SliceData(torch.cat(codes), data.positions, data.volume, data.sources)


def _checksum(model: nn.Module) -> float:
    return float(sum(p.detach().double().sum() for p in model.state_dict().values()))


def train(
    paths: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    model_config: ModelConfig | None = None,
    preprocessing: PreprocessingSpec | None = None,
    config: TrainConfig | None = None,
    augment_spec: AugmentSpec | None = None,
    vqvae_checkpoint: str | os.PathLike | None = None,
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
    resume
        Continue from ``out`` and its resume state up to ``config.epochs``.
    overwrite
        Start afresh even if ``out`` exists.
    progress
        ``progress(iterable, epoch, split)`` wrapping batch iterables (e.g. tqdm).
    command
        Command line recorded in the checkpoint.
    """
    env = _dist_from_env()
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

    job = _Job(paths, out, config, vqvae_checkpoint, device, resume, progress, command, env)
    with _process_group(env, device):
        return _train(job, model_config, preprocessing, augment_spec)


@dataclass(frozen=True)
class _Job:
    """The fixed inputs of one training run (see :func:`train`)."""

    paths: Sequence[str | os.PathLike]
    out: Path
    config: TrainConfig
    vqvae_checkpoint: str | os.PathLike | None
    device: torch.device
    resume: bool
    progress: Callable | None
    command: str | None
    env: _Dist


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

    torch.manual_seed(job.config.seed)  # weight initialisation
    model = build_model(model_config).to(job.device)
    kind = model_config.kind
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=job.config.lr, weight_decay=job.config.weight_decay
    )
    history: list[dict[str, Any]] = []
    start_epoch = 0
    if job.resume:
        ckpt = load_checkpoint(job.out, device=job.device)
        model.load_state_dict(ckpt.models[kind].state_dict())
        meta = _load_resume(resume_path(job.out), optimizer)
        history, start_epoch = meta["history"], meta["epoch"]
        if ckpt.training.get("epochs_completed") != start_epoch:
            raise CheckpointError(f"{job.out}: checkpoint and resume state disagree on the epoch")

    data = load_slices(job.paths, preprocessing, min_foreground=job.config.min_foreground)
    train_data, val_data = split_train_val(data, job.config.val_fraction, job.config.seed)
    if "vqvae" in models:
        train_data = _code_data(models["vqvae"], train_data, job.device, job.config.batch_size)
        val_data = _code_data(models["vqvae"], val_data, job.device, job.config.batch_size)
    loss_module: nn.Module = _LossModule(model)
    if job.env.world > 1:
        loss_module = nn.parallel.DistributedDataParallel(
            loss_module, device_ids=[job.device.index] if job.device.type == "cuda" else None
        )
    summary = {
        "volumes": data.sources,
        "train_slices": len(train_data),
        "val_slices": len(val_data),
        "val_volumes": sorted({data.sources[i] for i in val_data.volume.unique().tolist()}),
        "preprocessing": preprocessing.to_dict(),
    }
    log.info("training %s on %d slices (%d for validation)", kind, len(train_data), len(val_data))

    for epoch in range(start_epoch, job.config.epochs):
        t0 = time.perf_counter()
        common = {
            "config": job.config,
            "env": job.env,
            "device": job.device,
            "epoch": epoch,
        }
        row_train = _run_epoch(
            loss_module,
            train_data,
            optimizer=optimizer,
            augment_spec=augment_spec,
            progress=job.progress,
            **common,
        )
        row_val = (
            _run_epoch(
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
            training_header = {
                "data": summary,
                "config": job.config.to_dict(),
                "augment": augment_spec.to_dict() if augment_spec else None,
                "epochs_completed": epoch + 1,
                "final_losses": history[-1],
                "seconds": round(sum(r["seconds"] for r in history), 1),
                "device": str(job.device),
                "world_size": job.env.world,
                "command": job.command,
                "versions": {
                    "anomaly_maps": __version__,
                    "torch": torch.__version__,
                    "python": platform.python_version(),
                },
            }
            save_checkpoint(
                job.out,
                {**models, kind: model},
                preprocessing=preprocessing,
                training=training_header,
                overwrite=True,
            )
            _save_resume(resume_path(job.out), optimizer, {"epoch": epoch + 1, "history": history})
            _write_metrics(metrics_path(job.out), history)
    if job.env.world > 1:
        sums = torch.tensor([_checksum(model)], dtype=torch.float64, device=job.device)
        gathered = [torch.zeros_like(sums) for _ in range(job.env.world)]
        dist.all_gather(gathered, sums)
        if len({float(g) for g in gathered}) != 1:
            raise AnomalyMapsError(f"DDP replicas diverged: weight checksums {gathered}")
    return TrainResult(job.out, history, {**models, kind: model}, time.perf_counter() - started)
