"""Measure registration into the model's space on real data: the Colin27 brain.

Colin27 (mricron's ``ch2bet.nii.gz``, another subject than our MNI ICBM152 2009a) is
resampled onto a native-like 1.2 x 1.2 x 3 mm grid twice: as it lies ("straight"), and
with the head moved by a known rigid motion (tilted ``--degrees``, shifted 10 mm:
"oblique"). Both are registered to the bundled template on the bundled VAE's grid.
Printed:

- the registration time of each (2-core CPU; ``bench``-style lines);
- consistency: the two registrations must agree up to the known motion; landmark
  error (mm) over brain voxels, and the Dice of the two scans' brain masks in model space;
- the Dice of each registered brain with the template's brain;
- the healthy map's quietness: p99 of the VAE's ``rec`` map (its calibrated parameters)
  over the scan's foreground, scored natively (``--space native``) and registered;
- brain extraction (forced, and the head test ``--brain-mask auto`` runs) and
  registration of the Colin27 1 mm head (``ch2.nii.gz``): the issue's target is at
  most 30 s.

    python scripts/model_space_check.py
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from anomaly_maps import load_volume
from anomaly_maps.brain_mask import apply_brain_mask, brain_mask, looks_like_head
from anomaly_maps.checkpoint import load_checkpoint
from anomaly_maps.io import Volume
from anomaly_maps.model_space import checkpoint_space, place_scan, score_in_space
from anomaly_maps.preprocessing import foreground_mask
from anomaly_maps.registration import resample
from anomaly_maps.samples import sample_path

TEMPLATES = Path("/usr/share/mricron/templates")
ZOOMS = (1.2, 1.2, 3.0)


def _native(brain: Volume, motion: np.ndarray) -> Volume:
    """``brain`` moved by ``motion`` (world -> world) on an axis-aligned 1.2 x 1.2 x 3 mm
    grid covering its field of view."""
    extent = np.asarray(brain.shape) * brain.zooms
    shape = tuple(int(s) for s in np.ceil(extent / ZOOMS))
    affine = np.diag([*ZOOMS, 1.0])
    centre = brain.affine @ np.r_[(np.asarray(brain.shape) - 1) / 2, 1]
    affine[:3, 3] = (motion @ centre)[:3] - np.asarray(ZOOMS) * (np.asarray(shape) - 1) / 2
    data = resample(brain.data, brain.affine, np.linalg.inv(motion), shape, affine)
    return Volume(data.astype(np.float32), affine)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(int(a.sum() + b.sum()), 1))


def _p99(results) -> float:
    (result,) = results
    return float(np.percentile(result.map[result.foreground], 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--degrees", type=float, default=12.0, help="tilt of the oblique scan")
    args = parser.parse_args()
    checkpoint = load_checkpoint(sample_path("vae"))
    space = checkpoint_space(checkpoint)
    calibration = next(c for c in checkpoint.records.calibrations if c.scorer == "rec")
    scorers = [("rec", dict(calibration.params))]
    print(f"model space: {space.describe()}; healthy p99 of rec (calibration): "
          f"{calibration.quantile(0.99):.4g}")  # fmt: skip

    brain = load_volume(TEMPLATES / "ch2bet.nii.gz")
    brain = brain.with_data(brain.data.astype(np.float32))
    motion = np.eye(4)
    angles = (args.degrees, 0.6 * args.degrees, -0.4 * args.degrees)
    motion[:3, :3] = Rotation.from_euler("xyz", angles, degrees=True).as_matrix()
    motion[:3, 3] = (10.0, -6.0, 4.0)
    scans = {"straight": _native(brain, np.eye(4)), "oblique": _native(brain, motion)}
    template_fg = foreground_mask(_template_on(space))
    placed = {}
    for name, scan in scans.items():
        started = time.perf_counter()
        placed[name] = place_scan(scan, "auto", space)
        seconds = time.perf_counter() - started
        fg = foreground_mask(placed[name].scored.data)
        print(f"bench  register  {name:8s} {'x'.join(map(str, scan.shape))} "
              f"{'x'.join(f'{z:g}' for z in ZOOMS)} mm  {seconds:6.1f} s  "
              f"Dice with template brain {_dice(fg, template_fg):.3f}")  # fmt: skip

    straight, oblique = placed["straight"], placed["oblique"]
    index = np.argwhere(template_fg)[::97]
    points = space.matrix @ np.c_[index, np.ones(len(index))].T
    error = np.linalg.norm(
        (oblique.model_to_native @ points - motion @ straight.model_to_native @ points)[:3], axis=0
    )
    masks = [foreground_mask(p.scored.data) for p in (straight, oblique)]
    print(f"consistency (oblique vs straight, known motion {args.degrees:g} deg): landmark "
          f"error median {np.median(error):.2f} mm, max {error.max():.2f} mm over "
          f"{len(index)} brain points; brain-mask Dice in model space "
          f"{_dice(*masks):.3f}")  # fmt: skip

    for name, scan in {"colin 1 mm": brain, **scans}.items():
        native = _p99(score_in_space(scan, checkpoint, scorers, space="native", device="cpu")[0])
        registered = _p99(score_in_space(scan, checkpoint, scorers, device="cpu")[0])
        print(f"quietness  rec p99 {name:10s} native {native:.4g}  registered {registered:.4g}")

    head = load_volume(TEMPLATES / "ch2.nii.gz")
    started = time.perf_counter()
    is_head, outside = looks_like_head(head)  # what --brain-mask auto decides on
    masked = apply_brain_mask(head, brain_mask(head))  # extracted either way: timed
    extracted = time.perf_counter() - started
    place_scan(masked, "auto", space)
    total = time.perf_counter() - started
    print(f"bench  brain extraction + registration  ch2 1 mm head "
          f"{'x'.join(map(str, head.shape))}  {extracted:.1f} s + {total - extracted:.1f} s "
          f"= {total:.1f} s (target <= 30 s); looks_like_head: {is_head} "
          f"({outside:.1%} outside the brain)")  # fmt: skip


def _template_on(space) -> np.ndarray:
    """The bundled template on the model's grid (what registration aligns to)."""
    template = load_volume(sample_path("brain"))
    return resample(template.data, template.affine, np.eye(4), space.shape, space.matrix)


if __name__ == "__main__":
    main()
