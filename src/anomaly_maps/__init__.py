"""napari-anomaly-maps: pixel-wise anomaly maps from generative models of healthy anatomy.

The public API needs neither napari nor Qt; torch is imported only by the modules that
run models.
"""

from .errors import AnomalyMapsError
from .io import Volume, load_volume, save_volume

__version__ = "0.1.0"

__all__ = ["AnomalyMapsError", "Volume", "__version__", "load_volume", "save_volume"]
