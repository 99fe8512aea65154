"""Codebook usage of a small VQ-VAE trained with and without dead-code restarts (issue 15).

Trains the same model (seed 002's codebook-loss quantiser, as ``--preset marimont2021``)
twice on the axial 64x64 slices of a benchmark's training volumes, with
``dead_code_threshold`` 0 (no restarts) and 1 (Jukebox's random restarts), for the same
number of steps, and prints the perplexity and fraction of codes used on the training
slices. The first run stops at ``--seconds`` (or ``--steps``); the second runs as many.
With ``--checkpoint`` it trains nothing and prints the usage of that checkpoint's VQ-VAE
on the benchmark's training slices, made as the checkpoint's preprocessing makes them.

    anomaly-maps make-benchmark --out /tmp/vqb --n-train 4 --n-val 2 --n-test 2 --seed 0 --shape 64
    python scripts/vqvae_codebook_usage.py /tmp/vqb --seconds 120
    python scripts/vqvae_codebook_usage.py /tmp/vqb --checkpoint vq_prior.safetensors
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from anomaly_maps.checkpoint import load_checkpoint
from anomaly_maps.models.codebook import code_usage
from anomaly_maps.models.vqvae import VQVAE, VQVAEConfig
from anomaly_maps.preprocessing import PreprocessingSpec
from anomaly_maps.training import load_slices

CONFIG = {
    "size": 64,
    "widths": (16, 32, 64, 64),
    "res_blocks": 1,
    "num_codes": 128,
    "code_dim": 64,
    "commitment_weight": 1.0,
    "codebook": "loss",
}


def usage(model: VQVAE, images: torch.Tensor) -> dict[str, float]:
    """Perplexity and fraction of codes used over all ``images`` (eval mode)."""
    with torch.no_grad():
        codes = torch.cat([model.eval().codes(x) for x in images.split(64)])
    model.train()
    measured = code_usage(codes, model.config.num_codes)
    return {k: round(float(v), 3) for k, v in measured.items()}


def train(images: torch.Tensor, threshold: float, steps: int, seconds: float) -> tuple[int, dict]:
    """Train for ``steps`` batches of 16 or ``seconds``; return the steps and the usage."""
    torch.manual_seed(0)
    model = VQVAE(VQVAEConfig(**CONFIG, dead_code_threshold=threshold))
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    g = torch.Generator().manual_seed(0)
    start, step = time.perf_counter(), 0
    while step < steps and time.perf_counter() - start < seconds:
        batch = images[torch.randint(len(images), (16,), generator=g)]
        loss = model.training_loss(batch).total
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        step += 1
    return step, usage(model, images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("benchmark", type=Path)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--checkpoint", type=Path, help="report this trained VQ-VAE's usage")
    args = parser.parse_args()
    paths = sorted((args.benchmark / "train").glob("*.nii.gz"))
    if args.checkpoint is not None:
        ckpt = load_checkpoint(args.checkpoint)
        images = load_slices(paths, ckpt.preprocessing).images
        print(f"{ckpt.name}, {len(images)} training slices: {usage(ckpt.models['vqvae'], images)}")
        return
    images = load_slices(paths, PreprocessingSpec(axis="axial", size=64)).images
    steps, off = train(images, 0.0, args.steps, args.seconds)
    print(f"{len(images)} slices, {steps} steps of 16; restarts off: {off}", flush=True)
    _, on = train(images, 1.0, steps, float("inf"))
    print(f"restarts on (dead_code_threshold 1): {on}")


if __name__ == "__main__":
    main()
