"""How far bfloat16 autocast maps lie from float32 ones (on the CPU by default).

Scores the bundled sample brain with the bundled sample VAE (``vae.safetensors``) in
float32 and under bf16 autocast (``score_volume(precision=...)``), for ``rec`` and the
gradient scorer ``elbo_grad`` (and the slice-only ``kl``), and prints per scorer the
largest map difference and the 99th percentile of differences, both over the largest
float32 map value, the largest slice score difference over the largest float32 slice
score, and the volume score's relative difference. These figures back
``scoring.inferer.BF16_TOLERANCE``.

Usage: python scripts/bf16_tolerance.py [--device DEVICE] [SCORER ...]
"""

import argparse

import numpy as np

from anomaly_maps.checkpoint import load_checkpoint
from anomaly_maps.io import load_volume
from anomaly_maps.samples import sample_path
from anomaly_maps.scoring import score_volume


def main(scorers: list[str], device: str) -> None:
    checkpoint = load_checkpoint(sample_path("vae"), device=device)
    volume = load_volume(sample_path("brain"))
    print(
        f"{'scorer':12} {'map max':>8} {'map p99':>8} {'slices':>8} {'volume':>8}"
        "   (|bf16 - fp32| / max |fp32|)"
    )
    for name in scorers:
        runs = {
            p: score_volume(volume, checkpoint, [(name, {})], precision=p)[0]
            for p in ("fp32", "bf16")
        }
        want, got = runs["fp32"], runs["bf16"]
        assert got.precision == "bf16", got.precision
        maps = "       -        -"
        if want.map is not None:
            diff = np.abs(got.map - want.map)[want.foreground] / np.abs(want.map).max()
            maps = f"{diff.max():8.4f} {np.percentile(diff, 99):8.4f}"
        slices = _relative(got.slice_scores, want.slice_scores)
        total = _relative(got.volume_score, want.volume_score)
        print(f"{name:12} {maps} {slices:8.4f} {total:8.4f}")


def _relative(got, want) -> float:
    return float(np.max(np.abs(np.subtract(got, want))) / np.max(np.abs(want)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("scorers", nargs="*", default=["rec", "elbo_grad", "kl"])
    args = parser.parse_args()
    main(args.scorers, args.device)
