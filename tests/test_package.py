"""Packaging: the manifest napari uses, the sample data, and the public API."""

from pathlib import Path

import numpy as np
import yaml

import anomaly_maps
from anomaly_maps.io import load_volume
from anomaly_maps.samples import sample_path

ROOT = Path(__file__).resolve().parents[1]


def test_root_manifest_is_the_installed_one():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("napari-anomaly-maps")
    root = yaml.safe_load((ROOT / "napari.yaml").read_text())
    assert manifest.name == root["name"] == "napari-anomaly-maps"
    commands = {c.id: c.python_name for c in manifest.contributions.commands}
    assert commands == {c["id"]: c["python_name"] for c in root["contributions"]["commands"]}
    manifest.validate_imports()


def test_sample_data_is_reachable_and_real():
    path = sample_path("brain")
    assert (ROOT / "sample_data" / path.name).resolve() == path.resolve()
    vol = load_volume(path)
    assert vol.shape == (197, 233, 189)
    assert "".join(vol.axcodes) == "RAS"
    assert 0.1 < np.mean(vol.data > 0) < 0.5  # a brain, not an empty box


def test_public_api_needs_no_napari_or_torch():
    import subprocess
    import sys

    code = (
        "import sys, anomaly_maps; "
        "print(sorted(m for m in ('napari', 'qtpy', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert set(anomaly_maps.__all__) >= {"Volume", "load_volume", "save_volume", "__version__"}
