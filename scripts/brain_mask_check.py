"""Measure brain extraction on synthetic heads built around the bundled MNI152 brain.

Prints, per head, the Dice of :func:`anomaly_maps.brain_mask.brain_mask` against the
true brain, its time, and (``--score``) the share of voxels above the healthy p99
(0.75 under ``--normalize mood``) that lie outside the true brain, scored with the
bundled VAE's ``rec`` scorer (with its calibrated parameters) under ``--brain-mask
none`` and ``auto``. ``--colin DIR`` adds the one real head this machine has: Colin27
with skull (``DIR/ch2.nii.gz``, Debian package mricron-data, ``DIR`` =
/usr/share/mricron/templates) against its brain-extracted version (``ch2bet.nii.gz``
> 0) as the reference mask. ``--scalp-mm`` and ``--bridge-mm`` make the synthetic heads
harder the way real ones are (a thick scalp joined to the brain by a tissue bridge; see
:mod:`anomaly_maps.synthetic_heads`).

    python scripts/brain_mask_check.py --heads 3 --score [--colin DIR]
    python scripts/brain_mask_check.py --heads 3 --scalp-mm 8 12 --bridge-mm 5
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

from anomaly_maps import load_volume
from anomaly_maps.brain_mask import brain_mask, prepare_scan
from anomaly_maps.checkpoint import load_checkpoint
from anomaly_maps.records import trained_on_brains
from anomaly_maps.samples import sample_path
from anomaly_maps.scoring import score_volume
from anomaly_maps.scoring.postprocess import normalize_result
from anomaly_maps.synthetic_heads import synthetic_head

MOOD_P99 = 0.75


def _outside_share(head, truth, checkpoint, choice: str) -> tuple[float, int]:
    """Share of the voxels above the healthy p99 that lie outside the true brain."""
    on_brains = trained_on_brains(checkpoint.records.training)
    scan, _ = prepare_scan(head, choice, on_brains)
    calibration = next(c for c in checkpoint.records.calibrations if c.scorer == "rec")
    (raw,) = score_volume(scan, checkpoint, [("rec", dict(calibration.params))], device="cpu")
    result = normalize_result(raw, "mood", calibration)
    hot = result.map > MOOD_P99
    return float((hot & ~truth).sum() / max(int(hot.sum()), 1)), int(hot.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heads", type=int, default=3)
    parser.add_argument("--score", action="store_true", help="also score with the VAE")
    parser.add_argument("--colin", type=Path, default=None, metavar="DIR",
                        help="also the Colin27 head of mricron-data in DIR")  # fmt: skip
    parser.add_argument("--scalp-mm", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                        help="range of the synthetic scalp's thickness (default 2 4)")  # fmt: skip
    parser.add_argument("--bridge-mm", type=float, default=0.0, metavar="R",
                        help="radius of a brain-scalp tissue bridge (default none)")  # fmt: skip
    args = parser.parse_args()
    brain = load_volume(sample_path("brain"))
    checkpoint = load_checkpoint(sample_path("vae")) if args.score else None
    shape = {"bridge_mm": args.bridge_mm}
    if args.scalp_mm is not None:
        shape["scalp_mm"] = tuple(args.scalp_mm)
    heads = ((f"head {seed}", *synthetic_head(brain, seed, **shape)) for seed in range(args.heads))
    if args.colin is not None:
        real = [("Colin27", load_volume(args.colin / "ch2.nii.gz"),
                 load_volume(args.colin / "ch2bet.nii.gz").data > 0)]  # fmt: skip
        heads = itertools.chain(heads, real)
    for name, head, truth in heads:
        started = time.perf_counter()
        mask = brain_mask(head)
        seconds = time.perf_counter() - started
        dice = 2 * (mask & truth).sum() / (mask.sum() + truth.sum())
        line = f"{name}: Dice {dice:.4f}  {seconds:.1f} s ({head.shape})"
        if checkpoint is not None:
            for choice in ("none", "auto"):
                share, hot = _outside_share(head, truth, checkpoint, choice)
                line += f"  --brain-mask {choice}: {share:.1%} of {hot} hot voxels outside"
        print(line, flush=True)


if __name__ == "__main__":
    main()
