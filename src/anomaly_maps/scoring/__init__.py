"""Scorers: pixel-wise anomaly maps and slice scores from trained models.

Importing this package registers every scorer (one module per family) and its naive
per-slice, per-sample reference (:mod:`.reference`).
"""

from . import (  # noqa: F401  (importing a family registers its scorers)
    gradients,
    latent_restoration,
    reconstruction,
    reference,  # registers the naive reference of every scorer
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
)
from .pipeline import VolumeScore, score_volume

__all__ = [
    "ParamSpec",
    "ScoreResult",
    "ScorerInfo",
    "VolumeScore",
    "get_scorer",
    "list_scorers",
    "register_scorer",
    "score_volume",
]
