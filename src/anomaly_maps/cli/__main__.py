"""``python -m anomaly_maps.cli`` (and ``torchrun -m anomaly_maps.cli train ...``)."""

import sys

from . import main

sys.exit(main())
