"""Through-plane smoothing of a scan's slice maps (the ``through`` scorer parameter)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from anomaly_maps.errors import ParameterError
from anomaly_maps.scoring import get_scorer, score_volume
from anomaly_maps.scoring._ops import through_plane_blur, through_plane_radius


@pytest.mark.parametrize("sigma", [0.4, 1.0, 2.0, 3.3])
def test_equals_scipy_normalised_convolution_inside_the_mask(sigma):
    rng = np.random.default_rng(0)
    maps = rng.random((23, 5, 6)).astype(np.float32)
    mask = rng.random((23, 5, 6)) > 0.3
    mask[:4] = False  # slices without tissue at one end
    got = through_plane_blur(torch.from_numpy(maps), torch.from_numpy(mask), sigma).numpy()

    def smooth(a):
        return ndimage.gaussian_filter1d(a.astype(np.float64), sigma, axis=0, mode="constant",
                                         truncate=3.0)  # fmt: skip

    want = np.where(mask, smooth(maps * mask) / np.maximum(smooth(mask), 1e-300), 0)
    assert through_plane_radius(sigma) == int(3.0 * sigma + 0.5)  # scipy's cut at 3 sigma
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not got[~mask].any()


def test_sigma_zero_is_the_identity_and_stripes_flatten():
    stripes = torch.arange(20.0).remainder(2)[:, None, None].expand(20, 4, 4).contiguous()
    mask = torch.ones(20, 4, 4, dtype=torch.bool)
    assert through_plane_blur(stripes, mask, 0.0) is stripes
    smooth = through_plane_blur(stripes, mask, 2.0)
    assert float(smooth[3:-3].std()) < 0.01 * float(stripes.std())


def test_restoration_scorers_take_it_and_the_map_changes(tiny_models, tiny_volume):
    from anomaly_maps.checkpoint import Checkpoint
    from anomaly_maps.preprocessing import PreprocessingSpec

    checkpoint = Checkpoint(None, tiny_models["restoration"], PreprocessingSpec(size=16))
    for name in ("fpi", "disyre"):
        assert get_scorer(name).resolve_params()["through"] == 0.0  # the papers by default
    raw, smooth = score_volume(tiny_volume, checkpoint, [("fpi", {}), ("fpi", {"through": 2})])
    assert smooth.params["through"] == 2.0
    inside = raw.foreground
    assert not np.allclose(raw.map[inside], smooth.map[inside])
    assert not smooth.map[~inside].any()
    # the slice scores stay the scorer's own
    np.testing.assert_array_equal(raw.slice_scores, smooth.slice_scores)
    with pytest.raises(ParameterError, match="through=-1"):
        get_scorer("fpi").resolve_params({"through": -1})
