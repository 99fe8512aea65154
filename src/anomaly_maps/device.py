"""Compute devices: ``auto`` picks CUDA, then Apple MPS, then the CPU."""

from __future__ import annotations

import torch

from .errors import DeviceError

__all__ = ["available_devices", "resolve_device"]


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def available_devices() -> list[tuple[str, str]]:
    """``(name, description)`` of every usable device, best first, e.g. for a GUI menu."""
    devices = [
        (f"cuda:{i}", f"CUDA {i}: {torch.cuda.get_device_name(i)}")
        for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0)
    ]
    if _mps_available():
        devices.append(("mps", "Apple MPS"))
    devices.append(("cpu", "CPU"))
    return devices


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """Turn ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` into a usable device.

    Raises
    ------
    DeviceError
        The device is unknown or not present on this machine; the message lists the
        devices that are.
    """
    if isinstance(name, torch.device):
        name = str(name)
    known = [d for d, _ in available_devices()]
    if not isinstance(name, str):
        raise DeviceError(
            f"device {name!r} of type {type(name).__name__}: expected auto or one of {known}"
        )
    name = name.strip().lower()
    if name == "auto":
        return torch.device(known[0])
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise DeviceError(
            f"device {name!r} is not a device name: expected auto or {known}"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name!r}: CUDA is not available here; available: {known}")
        index = 0 if device.index is None else device.index
        if index >= torch.cuda.device_count():
            raise DeviceError(f"device {name!r}: no such GPU; available: {known}")
        return torch.device("cuda", index)
    if device.type == "mps" and not _mps_available():
        raise DeviceError(f"device {name!r}: MPS is not available here; available: {known}")
    if device.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"device {name!r} is not supported: expected auto or {known}")
    return device
