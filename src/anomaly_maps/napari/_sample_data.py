"""napari sample data: File > Open Sample > Anomaly Maps."""

from __future__ import annotations

from ..io import load_volume
from ..samples import sample_path
from ._reader import LayerData, volume_layer_data

__all__ = ["sample_brain"]


def sample_brain() -> list[LayerData]:
    """The MNI ICBM152 2009 T1 brain template, in world millimetres."""
    return [volume_layer_data(load_volume(sample_path("brain")), name="MNI152 T1")]
