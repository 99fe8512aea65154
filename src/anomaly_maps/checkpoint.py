"""Checkpoints: safetensors weights plus a JSON header, and never a pickle.

A checkpoint is one ``.safetensors`` file. Its tensors are the state dicts of one or
more models, each prefixed with the model's kind (``vae.encoder.0.weight``; a prior
checkpoint holds ``vqvae.*`` and ``prior.*``). Its safetensors metadata holds one JSON
document under the key ``anomaly_maps``:

.. code-block:: json

    {"format": "anomaly-maps-checkpoint", "format_version": 1, "project_version": "0.1.0",
     "models": {"vae": {"latent_dim": 1024, "...": "..."}},
     "preprocessing": {"axis": "axial", "size": 64, "...": "..."},
     "training": {"record_version": 1, "data": {"...": "..."}, "final_losses": {"...": "..."}},
     "metrics": {"calibration": [{"record_version": 1, "scorer": "rec", "...": "..."}]}}

``training`` and ``metrics`` hold typed, versioned records (training, calibrations,
benchmark results); :mod:`anomaly_maps.records` is the one place that reads and writes
them, and :attr:`Checkpoint.records` holds them parsed.

Loading parses the header first and checks it, then reads tensors with safetensors,
which cannot execute code. PyTorch ``.pt``/``.pth`` files are pickles that can run
arbitrary code when loaded; they are refused with an explanation of how to convert a
file you trust.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from . import __version__
from ._fileio import atomic_path
from .device import resolve_device
from .errors import CheckpointError
from .models import ModelConfig, build_model, config_from_dict
from .preprocessing import PreprocessingSpec
from .records import CheckpointRecords, check_version

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Checkpoint",
    "load_checkpoint",
    "read_header",
    "save_checkpoint",
]

FORMAT = "anomaly-maps-checkpoint"
FORMAT_VERSION = 1
_META_KEY = "anomaly_maps"
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default (zip of pickles)
_MAX_HEADER = 100 * 2**20


@dataclass
class Checkpoint:
    """A loaded checkpoint: models in eval mode on one device, and their header.

    Attributes
    ----------
    path
        File it was read from.
    models
        Kind -> model, in the order they were saved (e.g. ``{"vqvae": ..., "prior": ...}``).
    preprocessing
        How the training slices were made; scoring re-applies it.
    records
        What the models were trained on and how, their calibrations and benchmark
        results (:class:`~anomaly_maps.records.CheckpointRecords`).
    project_version
        anomaly-maps version that wrote the file.
    """

    path: Path | None
    models: dict[str, nn.Module]
    preprocessing: PreprocessingSpec
    records: CheckpointRecords = field(default_factory=CheckpointRecords)
    project_version: str = __version__

    @property
    def training(self) -> dict[str, Any]:
        """The header's ``training`` object (JSON form of ``records.training``)."""
        return self.records.to_header()[0]

    @property
    def metrics(self) -> dict[str, Any]:
        """The header's ``metrics`` object (JSON form of the other records)."""
        return self.records.to_header()[1]

    @property
    def name(self) -> str:
        """The file's name, for messages and the card; ``"(in memory)"`` without one."""
        return self.path.name if self.path else "(in memory)"

    @property
    def kinds(self) -> tuple[str, ...]:
        """Model kinds held, e.g. ``("vae",)`` or ``("vqvae", "prior")``."""
        return tuple(self.models)

    @property
    def model(self) -> nn.Module:
        """The first (for most checkpoints the only) model."""
        return next(iter(self.models.values()))

    def card_rows(self) -> list[tuple[str, str]]:
        """``(label, text)`` rows of the model card: what it is, saw, and how it did."""
        pre = self.preprocessing
        return [
            ("file", self.name),
            ("models", " + ".join(_model_summary(k, m.config) for k, m in self.models.items())),
            ("input", f"{pre.size}x{pre.size} {pre.axis} slices, {pre.normalization} intensities"),
            *self.records.card_rows(),
            ("written by", f"anomaly-maps {self.project_version}"),
        ]


def _model_summary(kind: str, config: Any) -> str:
    members = getattr(config, "members", None)
    if members:  # a restoration ensemble: each member's slice size and corruption, units
        joined = " + ".join(f"{m.size}x{m.size} {m.corruption}" for m in members)
        return f"{kind} ({joined}; {config.units} units)"
    latent = getattr(config, "latent_dim", None) or getattr(config, "num_codes", None)
    what = "latent" if hasattr(config, "latent_dim") else "codes"
    return f"{kind} ({what} {latent})" if latent else kind


def save_checkpoint(
    path: str | os.PathLike,
    models: dict[str, nn.Module],
    *,
    preprocessing: PreprocessingSpec,
    records: CheckpointRecords | None = None,
    training: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write models and their description to one ``.safetensors`` file, atomically.

    Parameters
    ----------
    path
        Destination; must end in ``.safetensors``.
    models
        Kind -> model; each model's ``config`` (a ``ModelConfig``) goes to the header.
    preprocessing
        How the slices were made.
    records
        Training, calibration and benchmark records (default: none).
    training, metrics
        The same in the header's JSON form (e.g. ``checkpoint.training``), instead of
        ``records``; they are parsed, so a malformed record is refused here.
    overwrite
        Replace an existing file (training replaces its own checkpoint every epoch).
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path}: checkpoint names must end in .safetensors")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory; expected a .safetensors file name")
    if not models:
        raise CheckpointError(f"{path}: no model to save: expected {{kind: model}}")
    if not isinstance(preprocessing, PreprocessingSpec):
        raise CheckpointError(
            f"{path}: preprocessing is a {type(preprocessing).__name__}: "
            "expected a PreprocessingSpec"
        )
    if records is None:
        records = CheckpointRecords.from_header(training, metrics, path)
    elif training is not None or metrics is not None:
        raise CheckpointError(f"{path}: give records or training/metrics dicts, not both")
    training, metrics = records.to_header()
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "project_version": __version__,
        "models": {},
        "preprocessing": preprocessing.to_dict(),
        "training": training,
        "metrics": metrics,
    }
    tensors: dict[str, torch.Tensor] = {}
    for kind, model in models.items():
        if not isinstance(getattr(model, "config", None), ModelConfig):
            raise CheckpointError(
                f"{path}: model {kind!r} ({type(model).__name__}) has no ModelConfig "
                "`config`; save the model itself (for DDP: `ddp.module`), not a wrapper"
            )
        if model.config.kind != kind:
            raise CheckpointError(
                f"{path}: model saved as {kind!r} is a {model.config.kind!r} model"
            )
        header["models"][kind] = model.config.to_dict()
        for name, value in model.state_dict().items():
            # clone: safetensors refuses tensors that share storage (tied weights)
            tensors[f"{kind}.{name}"] = value.detach().to("cpu").contiguous().clone()
    try:
        metadata = {_META_KEY: json.dumps(header, allow_nan=False)}
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: header is not JSON-serialisable ({err})") from err
    with atomic_path(path, overwrite=overwrite, error=CheckpointError) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def _refuse_pickle(path: Path, head: bytes) -> None:
    """Refuse torch.save files (zip of pickles) and raw pickles (protocol 2-5 opcode)."""
    raw_pickle = head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
    if head.startswith(_ZIP_MAGIC) or raw_pickle or path.suffix in (".pt", ".pth", ".pkl"):
        raise CheckpointError(
            f"{path}: looks like a PyTorch pickle (.pt/.pth). Loading a pickle can run "
            "arbitrary code, so anomaly-maps never unpickles files. If you trust this file, "
            "convert it: state = torch.load(path, weights_only=True), build the model with "
            "anomaly_maps.models.build_model(config), load_state_dict(state), then "
            "anomaly_maps.checkpoint.save_checkpoint('model.safetensors', {kind: model}, "
            "preprocessing=PreprocessingSpec(...))."
        )


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a checkpoint's JSON header without loading any tensor.

    Raises
    ------
    CheckpointError
        Missing file, a pickle, a truncated or foreign file, a header from a newer
        format; the message names the file.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.safetensors"))
        raise CheckpointError(
            f"{path}: is a directory; expected a .safetensors checkpoint file"
            + (f" (found {found})" if found else "")
        )
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(9)
            if head[8:9] != b"{":  # safetensors: u64 header length, then a JSON object
                _refuse_pickle(path, head)
                raise CheckpointError(
                    f"{path}: not a safetensors checkpoint (empty, truncated or another format)"
                )
            (n,) = struct.unpack("<Q", head[:8])
            if n < 2 or n > min(size - 8, _MAX_HEADER):
                raise CheckpointError(
                    f"{path}: not a safetensors checkpoint, or truncated "
                    f"(header claims {n} bytes, file has {size})"
                )
            raw = head[8:] + f.read(n - 1)
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read checkpoint ({err})") from err
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: not a safetensors checkpoint ({err})") from err
    meta = document.get("__metadata__") if isinstance(document, dict) else None
    if not isinstance(meta, dict) or _META_KEY not in meta:
        raise CheckpointError(
            f"{path}: a safetensors file, but not an anomaly-maps checkpoint "
            f"(no {_META_KEY!r} header; train one with `anomaly-maps train`)"
        )
    try:
        header = json.loads(meta[_META_KEY])
    except (TypeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: checkpoint header is corrupt ({err})") from err
    if not isinstance(header, dict):
        raise CheckpointError(
            f"{path}: checkpoint header is corrupt (a JSON {type(header).__name__}, "
            "expected an object)"
        )
    if header.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: unknown checkpoint format {header.get('format')!r}: expected {FORMAT!r}"
        )
    version = header.get("format_version")
    check_version(version, "checkpoint", "format_version", FORMAT_VERSION, path)
    return header


def load_checkpoint(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint's models (eval mode, on ``device``) and header.

    Raises
    ------
    CheckpointError
        Anything wrong with the file (see :func:`read_header`), unknown model kinds,
        weights that do not fit the models the header describes.
    DeviceError
        ``device`` is unknown or not present (checked before any tensor is read).
    """
    path = Path(path)
    header = read_header(path)
    target = resolve_device(device)
    for key in ("models", "preprocessing"):
        if not isinstance(header.get(key), dict):
            raise CheckpointError(
                f"{path}: checkpoint header is invalid ({key!r} is "
                f"{type(header.get(key)).__name__}: expected an object)"
            )
    if not header["models"]:
        raise CheckpointError(f"{path}: checkpoint holds no model")
    records = CheckpointRecords.from_header(header.get("training"), header.get("metrics"), path)
    try:
        preprocessing = PreprocessingSpec.from_dict(header["preprocessing"])
        configs = {kind: config_from_dict(kind, cfg) for kind, cfg in header["models"].items()}
    except (KeyError, TypeError, ValueError, AttributeError) as err:  # ParameterError too
        raise CheckpointError(f"{path}: checkpoint header is invalid ({err})") from err
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: tensors are truncated or corrupt ({err})") from err
    stray = sorted(k for k in tensors if k.split(".", 1)[0] not in configs)
    if stray:
        raise CheckpointError(
            f"{path}: tensors {stray[:5]} belong to no model in the header "
            f"(models: {list(configs)})"
        )
    models: dict[str, nn.Module] = {}
    for kind, config in configs.items():
        prefix = f"{kind}."
        state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        model = build_model(config)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise CheckpointError(
                f"{path}: weights do not fit the {kind!r} model its header describes ({err})"
            ) from err
        models[kind] = model.to(target).eval()
    return Checkpoint(
        path=path,
        models=models,
        preprocessing=preprocessing,
        records=records,
        project_version=header.get("project_version", "unknown"),
    )
