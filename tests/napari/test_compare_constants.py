"""The compare dock's first shared threshold comes from the normalisation itself."""

from __future__ import annotations

import numpy as np
import pytest

from anomaly_maps.errors import ParameterError
from anomaly_maps.scoring.calibration import Calibration
from anomaly_maps.scoring.postprocess import NORMALIZATIONS, healthy_p99_value, normalize_map

LEVELS = (0.0, 0.5, 0.99, 1.0)
CALIBRATION = Calibration("rec", {}, LEVELS, (0.0, 2.0, 7.0, 9.0), (0.0, 1.0, 2.0, 3.0), 3)


@pytest.mark.parametrize("method", ["volume", "model", "mood"])
def test_healthy_p99_value_is_where_the_method_puts_a_p99(method):
    if method == "volume":  # this map's own quantiles: 101 values 0..100, p99 = 99
        values = np.arange(101, dtype=np.float32)
        p99 = np.quantile(values, 0.99)
    else:  # the healthy quantiles stored in the calibration
        values = np.array([0.0, 2.0, 7.0, 9.0], np.float32)
        p99 = CALIBRATION.quantile(0.99)
    normalised = normalize_map(values, method, calibration=CALIBRATION)
    at_p99 = np.interp(p99, values, normalised)
    assert healthy_p99_value(method) == pytest.approx(at_p99, abs=1e-6)


def test_healthy_p99_value_names():
    assert healthy_p99_value("none") is None
    assert {m: healthy_p99_value(m) for m in ("model", "mood")} == {"model": 1.0, "mood": 0.75}
    assert set(NORMALIZATIONS) == {"none", "volume", "model", "mood"}
    with pytest.raises(ParameterError, match="'z'"):
        healthy_p99_value("z")
