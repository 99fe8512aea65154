"""Scorers: pixel-wise anomaly maps and slice scores from trained models.

Importing this package registers every scorer (one module per family), each with its
naive per-slice, per-sample reference next to it (:mod:`._naive`).
"""

from . import (  # noqa: F401  (importing a family registers its scorers)
    disyre,
    gradients,
    iwae_scores,
    latent_restoration,
    reconstruction,
    restoration,
    sample_scores,
    sampling,
)
from ._registry import (
    ParamSpec,
    ScoreResult,
    ScorerInfo,
    get_scorer,
    list_scorers,
    register_scorer,
    resolve_scorers,
)
from .inferer import SliceInferer, Slices
from .pipeline import VolumeScore, score_volume

__all__ = [
    "ParamSpec",
    "ScoreResult",
    "ScorerInfo",
    "SliceInferer",
    "Slices",
    "VolumeScore",
    "get_scorer",
    "list_scorers",
    "register_scorer",
    "resolve_scorers",
    "score_volume",
]
