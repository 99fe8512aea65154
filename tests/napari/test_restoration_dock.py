"""A restoration checkpoint in the model dock: its card, its scorers, their forms, a preview."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anomaly_maps.checkpoint import load_checkpoint, save_checkpoint
from anomaly_maps.io import load_volume
from anomaly_maps.models import RestorationConfig, build_model
from anomaly_maps.napari._model_widget import ModelWidget
from anomaly_maps.napari._score_widget import ScoreWidget
from anomaly_maps.preprocessing import PreprocessingSpec
from anomaly_maps.scoring import score_volume

pytestmark = pytest.mark.gui


def test_restoration_checkpoint_in_the_docks(make_napari_viewer, tmp_path, tiny_nifti):
    torch.manual_seed(0)
    model = build_model(RestorationConfig(size=16, widths=(8, 16)))
    with torch.no_grad():  # off the identity initialisation, so the map is not zero
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    path = save_checkpoint(
        tmp_path / "restoration.safetensors",
        {"restoration": model},
        preprocessing=PreprocessingSpec(axis="axial", size=16),
    )
    viewer = make_napari_viewer(show=True)
    viewer.open(str(tiny_nifti), plugin="napari-anomaly-maps")
    dock, score = ModelWidget(viewer), ScoreWidget(viewer)
    viewer.window.add_dock_widget(dock, name="model")
    viewer.window.add_dock_widget(score, name="score")
    assert dock.load(path) is not None
    assert "restoration" in dock.card.text() and "16x16 axial slices" in dock.card.text()
    names = [score.scorers.item(row).data(256) for row in range(score.scorers.count())]
    assert names == ["disyre", "fpi"]
    form = score.form("disyre")
    assert form.n_steps.value == 5 and form.start.value == 1.0 and form.multi_step.value is True
    form.n_steps.value = 2
    score.select_scorers(["disyre"])
    [preview] = score.preview()
    [full] = score_volume(
        load_volume(tiny_nifti), load_checkpoint(path), [("disyre", {"n_steps": 2})]
    )
    assert preview.data.shape == full.map.shape
    shown = preview.data != 0
    assert shown.any()
    np.testing.assert_allclose(preview.data[shown], full.map[shown], atol=1e-5)
