"""What a run writes beside its checkpoint: the resume state and the metrics CSV."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .._fileio import atomic_path
from ..errors import CheckpointError

__all__ = [
    "best_path",
    "load_resume",
    "metrics_path",
    "resume_path",
    "save_resume",
    "write_metrics",
]


def resume_path(out: str | os.PathLike) -> Path:
    """Where the resume state of checkpoint ``out`` lives: ``run.resume.safetensors``."""
    out = Path(out)
    return out.with_name(out.name.removesuffix(".safetensors") + ".resume.safetensors")


def best_path(out: str | os.PathLike) -> Path:
    """Where the lowest-validation-loss epoch of checkpoint ``out`` is kept:
    ``run.best.safetensors``."""
    out = Path(out)
    return out.with_name(out.name.removesuffix(".safetensors") + ".best.safetensors")


def metrics_path(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(out.name.removesuffix(".safetensors") + ".metrics.csv")


def save_resume(path: Path, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
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


def load_resume(path: Path, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
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


def write_metrics(path: Path, history: list[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(k for row in history for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(history)
    with atomic_path(path, overwrite=True) as tmp:
        tmp.write_text(buffer.getvalue())
