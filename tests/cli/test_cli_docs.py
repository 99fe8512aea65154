"""The README's command-line descriptions say what the code does."""

from pathlib import Path

import numpy as np

from anomaly_maps.scoring.calibration import Calibration
from anomaly_maps.scoring.postprocess import normalize_map

README = Path(__file__).resolve().parents[2] / "README.md"


def _row(table_key: str) -> str:
    return next(line for line in README.read_text().splitlines() if line.startswith(table_key))


def test_readme_states_where_mood_puts_the_healthy_median_and_p99():
    calibration = Calibration("rec", {}, (0.0, 0.5, 0.99, 1.0), (0.0, 2.0, 5.0, 9.0),
                              (0.0, 2.0, 5.0, 9.0), n_volumes=1)  # fmt: skip
    median, p99 = normalize_map(np.array([2.0, 5.0]), "mood", calibration=calibration)
    row = _row("| `mood` |")
    assert f"{median:g} = the healthy median" in row
    assert f"{p99:g} = the healthy p99" in row


def test_readme_says_which_command_reads_which_layout():
    text = README.read_text()
    assert "`--layout mood`" in text
    assert "`<case>.nii.gz.txt`" in text and "`evaluate --pred`" in text
