"""The widgets on 2D image layers, which napari's own reader opens (PNG, TIFF)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from anomaly_maps.io import load_volume
from anomaly_maps.models import VAEConfig
from anomaly_maps.napari._layers import add_or_update, layer_volume
from anomaly_maps.napari._model_widget import ModelWidget
from anomaly_maps.napari._score_widget import ScoreWidget
from anomaly_maps.preprocessing import PreprocessingSpec
from anomaly_maps.training import TrainConfig, train

pytestmark = pytest.mark.gui


def _pixels(seed: int, rgb: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:40, :48]  # napari takes (Y, X, 3) as RGB from 31 pixels a side
    grey = 100 + 120 * ((yy - 16) ** 2 + (xx - 20) ** 2 <= 100) + rng.normal(0, 5, (40, 48))
    grey = np.clip(grey, 0, 255).astype(np.uint8)
    return np.stack([grey, 255 - grey, grey // 2], axis=-1) if rgb else grey


@pytest.mark.parametrize("rgb", [False, True])
def test_a_2d_layer_is_the_volume_its_file_reads_as(make_napari_viewer, tmp_path, rgb):
    path = tmp_path / ("rgb.png" if rgb else "grey.png")
    Image.fromarray(_pixels(0, rgb)).save(path)
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(path))  # napari's builtin reader: the plugin does not claim it
    assert layer.ndim == 2 and layer.rgb == rgb
    volume, read = layer_volume(layer), load_volume(path)
    np.testing.assert_array_equal(volume.data, read.data)
    np.testing.assert_allclose(volume.affine, read.affine)
    assert volume.channels == (3 if rgb else 1)


def test_a_map_of_a_2d_layer_lies_on_its_pixels(make_napari_viewer, tmp_path):
    path = tmp_path / "grey.png"
    Image.fromarray(_pixels(0)).save(path)
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(path))
    layer.scale = (0.5, 0.25)
    volume = layer_volume(layer)
    np.testing.assert_allclose(volume.zooms, [0.5, 0.25, 1.0])  # rows, columns, slice
    heat = np.random.default_rng(0).random(volume.shape).astype(np.float32)
    shown = add_or_update(viewer, "image", heat, source=layer, name="heat")
    np.testing.assert_array_equal(shown.data, heat[:, :, 0])
    np.testing.assert_allclose(shown.scale, layer.scale)


def test_score_dock_maps_a_2d_layer_on_its_pixels(make_napari_viewer, qtbot, tmp_path):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"healthy{i}.png")
        Image.fromarray(_pixels(i + 1)).save(paths[-1])
    ckpt = tmp_path / "grey.safetensors"
    train(
        paths,
        ckpt,
        model_config=VAEConfig(size=16, widths=(8, 16), latent_dim=4),
        preprocessing=PreprocessingSpec(size=16, images=True),
        config=TrainConfig(epochs=1, batch_size=2, val_fraction=0.0),
        device="cpu",
    )
    scan = tmp_path / "scan.png"
    Image.fromarray(_pixels(9)).save(scan)
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(scan))
    model, score = ModelWidget(viewer), ScoreWidget(viewer)
    viewer.window.add_dock_widget(model, name="model")
    viewer.window.add_dock_widget(score, name="score")
    assert model.load(ckpt) is not None
    score.select_scorers(["rec"])
    with qtbot.waitSignal(score.score().finished, timeout=120_000):
        pass
    heat = viewer.layers["scan rec"]
    assert heat.data.shape == layer.data.shape == (40, 48)
    np.testing.assert_allclose(heat.scale, layer.scale)
    assert np.isfinite(heat.data).all() and heat.data.max() > 0
