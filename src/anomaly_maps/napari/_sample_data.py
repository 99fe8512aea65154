"""napari sample data: File > Open Sample > Anomaly Maps."""

from __future__ import annotations

from ..io import load_volume
from ..samples import sample_path
from ._reader import LayerData, volume_layer_data
from ._views import upright_when_opened

__all__ = ["sample_brain", "sample_demo"]


def sample_brain() -> list[LayerData]:
    """The MNI ICBM152 2009 T1 brain template, in world millimetres, shown axial."""
    upright_when_opened()
    return [volume_layer_data(load_volume(sample_path("brain")), name="MNI152 T1")]


def sample_demo() -> list[LayerData]:
    """The demo scan (a benchmark case with a synthetic anomaly) and its lesion label.

    Both are placed in world millimetres by the scan's affine, so the Labels layer sits
    on the scan voxel for voxel; the scan is shown axial, upright.
    """
    upright_when_opened()
    scan = volume_layer_data(load_volume(sample_path("demo_scan")), name="demo scan")
    label = volume_layer_data(load_volume(sample_path("demo_label")), name="demo lesion")
    return [scan, label]
