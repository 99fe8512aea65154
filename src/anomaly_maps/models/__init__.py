"""Slice-wise generative models trained on healthy anatomy (seeds 000-004).

Importing this package registers every model kind: ``vae``, ``cevae``, ``dae``,
``vqvae`` and its autoregressive ``prior``, and the self-supervised ``restoration``
model (DISYRE / FPI, issue 15) and ``restoration_ensemble``, trained restoration models
read as one.
"""

from ._base import (
    AnomalyModel,
    LossOutput,
    ModelConfig,
    build_model,
    config_from_dict,
    list_model_kinds,
    model_presets,
    register_model,
)
from .cevae import CeVAE, CeVAEConfig
from .dae import DAE, DAEConfig
from .draws import Generators, SliceGenerators
from .prior import CodePrior, PriorConfig
from .restoration import Restoration, RestorationConfig
from .restoration_ensemble import RestorationEnsemble, RestorationEnsembleConfig
from .vae import VAE, VAEConfig
from .vqvae import VQVAE, VQVAEConfig

__all__ = [
    "DAE",
    "VAE",
    "VQVAE",
    "AnomalyModel",
    "CeVAE",
    "CeVAEConfig",
    "CodePrior",
    "DAEConfig",
    "Generators",
    "LossOutput",
    "ModelConfig",
    "PriorConfig",
    "Restoration",
    "RestorationConfig",
    "RestorationEnsemble",
    "RestorationEnsembleConfig",
    "SliceGenerators",
    "VAEConfig",
    "VQVAEConfig",
    "build_model",
    "config_from_dict",
    "list_model_kinds",
    "model_presets",
    "register_model",
]
