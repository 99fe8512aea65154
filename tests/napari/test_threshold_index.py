"""The histogram threshold index answers exactly what a full sort answers."""

from __future__ import annotations

import numpy as np
import pytest

from anomaly_maps.napari._threshold import ThresholdIndex


def _maps() -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    rng = np.random.default_rng(3)
    shape = (13, 17, 11)
    fg = rng.random(shape) < 0.7
    heavy = rng.gamma(0.5, 2.0, shape).astype(np.float32)
    ties = rng.integers(0, 5, shape).astype(np.float32) / 4  # few distinct values
    signed = rng.normal(0, 1, shape).astype(np.float32)
    signed[0, 0, :3] = [1e6, -1e6, 1e-7]  # far outliers squeeze every other value into a bin
    return {
        "heavy": (heavy, fg),
        "ties": (ties, fg),
        "signed": (signed, None),
        "constant": (np.full(shape, 2.5, np.float32), fg),
        "one voxel": (heavy, np.eye(1, fg.size, 7, dtype=bool).reshape(shape)),
    }


@pytest.mark.parametrize("name", list(_maps()))
def test_index_matches_a_full_sort(name):
    values, fg = _maps()[name]
    inside = np.sort(values[fg] if fg is not None else values.ravel())
    index = ThresholdIndex(values, fg, voxel_ml=0.5)
    assert index.range == (float(inside[0]), float(inside[-1]))
    needles = np.concatenate([
        inside[:: max(1, inside.size // 50)], inside[-3:], np.nextafter(inside[::7], np.inf),
        [inside[0] - 1, inside[-1] + 1, -np.inf, np.inf, 0.0, 0.3],
    ])  # fmt: skip
    for t in needles:
        flagged = int(inside.size - np.searchsorted(inside, np.float32(t), side="left"))
        assert index.flagged(t) == flagged, t
        assert index.flagged_ml(t) == flagged * 0.5
        assert index.brain_fraction(t) == flagged / inside.size
        assert index.percentile(t) == 100.0 * (inside.size - flagged) / inside.size
    for p in np.linspace(0, 100, 101):
        assert index.value(p) == float(inside[round(p / 100 * (inside.size - 1))]), p
    out = np.zeros(values.shape, np.uint8)
    t = index.value(90)
    index.apply(t, out)
    expected = (values >= t) & (fg if fg is not None else True)
    np.testing.assert_array_equal(out.astype(bool), expected)
