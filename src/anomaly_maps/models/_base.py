"""The contract every model follows: a frozen config, a loss output, and a registry.

A model kind is one module in this package. It defines a frozen ``ModelConfig``
subclass (its hyper-parameters: what a checkpoint stores) and an ``nn.Module`` whose
``__init__`` takes that config, registered with :func:`register_model`. Training code
only needs :meth:`training_loss`; scorers use the parts (encode, decode, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch
from torch import nn

from .._config import FrozenConfig
from ..errors import ParameterError

__all__ = [
    "AnomalyModel",
    "LossOutput",
    "ModelConfig",
    "build_model",
    "config_from_dict",
    "list_model_kinds",
    "model_presets",
    "register_model",
]


@dataclass(frozen=True)
class ModelConfig(FrozenConfig):
    """Hyper-parameters of one model kind; subclasses add typed fields with defaults.

    Subclasses set the class variable ``kind`` and override :meth:`validate` to
    raise :class:`ParameterError` naming the bad field, the value and the range.
    ``to_dict``/``from_dict`` (unknown keys are errors) come from ``FrozenConfig``.
    ``training_only`` names the fields that shape the training alone (corruptions, loss
    weights), not the network: fine-tuning (``train --init``) may change those.
    """

    kind: ClassVar[str] = ""
    training_only: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def _label(cls) -> str:
        return f"model {cls.kind!r}"


@dataclass(frozen=True)
class LossOutput:
    """What one training step of any model returns.

    ``total`` is the scalar the optimiser minimises; ``terms`` are detached scalar
    batch means of its parts (e.g. ``rec``, ``kl``) for progress bars and CSV logs.
    """

    total: torch.Tensor
    terms: dict[str, torch.Tensor]


class AnomalyModel(Protocol):
    """Structural type of a registered model (an ``nn.Module`` with these members)."""

    config: ModelConfig

    def training_loss(
        self, x: torch.Tensor, *, position: torch.Tensor | None = None
    ) -> LossOutput: ...


_REGISTRY: dict[str, tuple[type[nn.Module], type[ModelConfig]]] = {}
_PRESETS: dict[str, dict[str, ModelConfig]] = {}


def register_model(config_cls: type[ModelConfig], presets: dict[str, ModelConfig] | None = None):
    """Class decorator registering a model class under ``config_cls.kind``.

    ``presets`` maps a name (e.g. ``"zimmerer2019"``) to a config reproducing a paper.
    """

    def decorate(model_cls: type[nn.Module]) -> type[nn.Module]:
        kind = config_cls.kind
        if not kind or kind in _REGISTRY:
            raise ValueError(f"model kind {kind!r} is empty or registered twice")
        _REGISTRY[kind] = (model_cls, config_cls)
        _PRESETS[kind] = dict(presets or {})
        return model_cls

    return decorate


def _entry(kind: str) -> tuple[type[nn.Module], type[ModelConfig]]:
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise ParameterError(
            f"unknown model kind {kind!r}: expected one of {list_model_kinds()}"
        ) from None


def list_model_kinds(*, trainable: bool = False) -> list[str]:
    """Names of the registered model kinds, sorted; ``trainable``: only those with a
    ``training_loss`` (not ensembles joined from trained models)."""
    return sorted(
        k for k, (cls, _) in _REGISTRY.items() if not trainable or hasattr(cls, "training_loss")
    )


def model_presets(kind: str) -> dict[str, ModelConfig]:
    """The named paper presets of one model kind."""
    _entry(kind)
    return dict(_PRESETS[kind])


def config_from_dict(kind: str, data: dict[str, Any]) -> ModelConfig:
    """Rebuild the config of model ``kind`` from its ``to_dict`` output."""
    return _entry(kind)[1].from_dict(data)


def build_model(config: ModelConfig) -> nn.Module:
    """Instantiate the model for a config (weights freshly initialised)."""
    model_cls, config_cls = _entry(config.kind)
    if not isinstance(config, config_cls):
        raise ParameterError(
            f"config of type {type(config).__name__} does not match model kind "
            f"{config.kind!r}: expected {config_cls.__name__}"
        )
    return model_cls(config)
