"""The exception hierarchy: every error the project raises on bad input is one of these.

Messages say what was wrong, what was received and what was expected, and name the
file or parameter involved, so a user can fix the input without reading a traceback.
"""

from __future__ import annotations

__all__ = [
    "AnomalyMapsError",
    "Cancelled",
    "CheckpointError",
    "DeviceError",
    "ParameterError",
    "ScorerError",
    "VolumeError",
]


class AnomalyMapsError(Exception):
    """Root of every error raised by anomaly_maps on bad input or state."""


class VolumeError(AnomalyMapsError):
    """A scan could not be read or written, or its contents are not usable."""


class CheckpointError(AnomalyMapsError):
    """A checkpoint is missing, truncated, foreign, unsafe or from an unknown format."""


class ScorerError(AnomalyMapsError):
    """An unknown scorer, or a scorer that does not fit the model."""


class ParameterError(AnomalyMapsError, ValueError):
    """A parameter is out of range or of the wrong type."""


class DeviceError(AnomalyMapsError):
    """A requested compute device does not exist or cannot be used."""


class Cancelled(AnomalyMapsError):
    """Long work (scoring a volume) was stopped on request; nothing was written."""
