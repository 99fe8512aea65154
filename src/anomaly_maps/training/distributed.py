"""Many processes under ``torchrun``: the rank layout, the process group, DDP's wrapper."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..errors import AnomalyMapsError

__all__ = ["Dist", "LossModule", "check_replicas_agree", "dist_from_env", "process_group"]


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def dist_from_env() -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    return Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


@contextmanager
def process_group(env: Dist, device: torch.device) -> Iterator[None]:
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


class LossModule(nn.Module):
    """DDP only synchronises gradients of calls that go through ``forward``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, position: torch.Tensor) -> tuple[torch.Tensor, dict]:
        out = self.model.training_loss(x, position=position)
        return out.total, out.terms


def check_replicas_agree(model: nn.Module, device: torch.device, world: int) -> None:
    """Refuse a run whose DDP replicas ended with different weights (compared by sum)."""
    checksum = float(sum(p.detach().double().sum() for p in model.state_dict().values()))
    sums = torch.tensor([checksum], dtype=torch.float64, device=device)
    gathered = [torch.zeros_like(sums) for _ in range(world)]
    dist.all_gather(gathered, sums)
    if len({float(g) for g in gathered}) != 1:
        raise AnomalyMapsError(f"DDP replicas diverged: weight checksums {gathered}")
