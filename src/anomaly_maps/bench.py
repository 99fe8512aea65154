"""Speed measurements behind ``anomaly-maps bench``.

``bench train`` times full training steps (augmentation, forward, backward, optimizer)
of every model kind at its paper preset on real anatomy (the sample brain's slices), on
the chosen device, and reports slices per second.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .augment import AugmentSpec, augment
from .device import resolve_device
from .io import load_volume
from .models import build_model, list_model_kinds, model_presets
from .preprocessing import PreprocessingSpec, to_slices
from .samples import sample_path
from .training import autocast_for, optimizer_step

__all__ = ["TrainBench", "bench_train"]


@dataclass(frozen=True)
class TrainBench:
    """Training throughput of one model kind."""

    kind: str
    preset: str
    input_shape: tuple[int, ...]
    parameters: int
    batch_size: int
    seconds_per_step: float

    @property
    def slices_per_second(self) -> float:
        return self.batch_size / self.seconds_per_step


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _brain_batch(size: int, batch_size: int) -> torch.Tensor:
    """``batch_size`` axial slices of the sample brain at ``size``, (B, 1, S, S)."""
    stack = to_slices(load_volume(sample_path("brain")), PreprocessingSpec(size=size))
    keep = torch.from_numpy(stack.mask.mean(axis=(1, 2)) > 0.05)
    images = torch.from_numpy(stack.images)[keep]
    index = torch.linspace(0, len(images) - 1, batch_size).round().long()
    return images[index][:, None]


def _bench_kind(
    kind: str, device: torch.device, batch_size: int, steps: int, warmup: int, amp: bool
) -> TrainBench:
    preset, config = next(iter(model_presets(kind).items()))
    torch.manual_seed(0)
    generator = torch.Generator(device=device).manual_seed(0)
    model = build_model(config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    position = torch.rand(batch_size, device=device)
    if kind == "prior":
        x = torch.randint(config.num_codes, (batch_size, *config.grid_size), device=device)
    else:
        x = _brain_batch(config.size, batch_size).to(device)
    autocast, scaler = autocast_for(device, amp)

    def step() -> None:
        inputs = x if kind == "prior" else augment(x, AugmentSpec(), generator)
        with autocast:
            loss = model.training_loss(inputs, position=position).total
        optimizer_step(loss, optimizer, scaler)

    for _ in range(warmup):
        step()
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _synchronize(device)
    return TrainBench(
        kind=kind,
        preset=preset,
        input_shape=tuple(x.shape[1:]),
        parameters=sum(p.numel() for p in model.parameters()),
        batch_size=batch_size,
        seconds_per_step=(time.perf_counter() - start) / steps,
    )


def bench_train(
    *,
    device: str | torch.device = "auto",
    kinds: Sequence[str] | None = None,
    batch_size: int = 16,
    steps: int = 5,
    warmup: int = 2,
    amp: bool = True,
) -> list[TrainBench]:
    """Time ``steps`` training steps per model kind (after ``warmup`` untimed ones)."""
    target = resolve_device(device)
    return [
        _bench_kind(kind, target, batch_size, steps, warmup, amp)
        for kind in kinds or list_model_kinds()
    ]
