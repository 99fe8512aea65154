"""One epoch: batches, augmentation, mixed precision, the optimiser step, mean losses."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DistributedSampler

from ..augment import AugmentSpec, augment
from .config import TrainConfig
from .data import SliceData
from .distributed import Dist

__all__ = ["autocast_for", "optimizer_step", "run_epoch"]


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


def _batches(n: int, batch_size: int, env: Dist, seed: int, epoch: int, shuffle: bool):
    sampler = DistributedSampler(
        range(n), num_replicas=env.world, rank=env.rank, shuffle=shuffle, seed=seed
    )
    sampler.set_epoch(epoch)
    index = torch.tensor(list(sampler), dtype=torch.int64)
    return index.split(batch_size)


def run_epoch(
    loss_module: nn.Module,
    data: SliceData,
    *,
    config: TrainConfig,
    env: Dist,
    device: torch.device,
    epoch: int,
    optimizer: torch.optim.Optimizer | None,
    augment_spec: AugmentSpec | None,
    progress: Callable | None,
) -> dict[str, float]:
    """One pass over ``data``; trains when ``optimizer`` is given. Returns mean terms.

    Validation draws the same noise (corruptions, samples) in every epoch, so its loss
    compares across epochs, as early stopping (``config.patience``) needs.
    """
    training = optimizer is not None
    loss_module.train(training)
    seed = _seed_everything(config.seed, epoch if training else -1, env.rank)
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
        if x.ndim == 4:  # slices (a prior's codes are 3D): the model's channels-last layout
            x = x.contiguous(memory_format=torch.channels_last)
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
