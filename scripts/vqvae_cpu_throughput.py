"""Why batching cannot speed up the paper-size VQ-VAE on a CPU: its throughput per batch size.

Prints the encoder's floating-point work per 160x160 slice, the GFLOP/s it reaches one
slice at a time and in batches (with the chunking of ``models/vqvae.py`` off and on), and
the machine's float32 matrix-multiply peak, all measured in this run. Usage::

    python scripts/vqvae_cpu_throughput.py [--slices 16]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

import anomaly_maps.models.vqvae as vqvae_module
from anomaly_maps.models import build_model, model_presets


def seconds_per_slice(fn, x: torch.Tensor, batch: int) -> float:
    fn(x[:batch])  # warm-up: kernels for this shape
    start = time.perf_counter()
    for part in x.split(batch):
        fn(part)
    return (time.perf_counter() - start) / len(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=16)
    args = parser.parse_args()
    torch.manual_seed(0)
    config = next(iter(model_presets("vqvae").values()))
    model = build_model(config).eval()
    x = torch.rand(args.slices, config.in_channels, config.size, config.size)
    with torch.inference_mode():
        with FlopCounterMode(display=False) as counter:
            model.encode(x[:1])
        gflop = counter.get_total_flops() / 1e9
        a = torch.randn(2048, 2048)
        a @ a
        start = time.perf_counter()
        for _ in range(5):
            a @ a
        peak = 5 * 2 * 2048**3 / (time.perf_counter() - start)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
        print(f"encoder of the {config.size}x{config.size} preset: {gflop:.1f} GFLOP per slice")
        print(f"float32 matrix-multiply peak: {peak / 1e9:.0f} GFLOP/s")
        chunk_bytes = vqvae_module.CPU_CHUNK_BYTES
        for chunked in (False, True):
            vqvae_module.CPU_CHUNK_BYTES = chunk_bytes if chunked else 2**62
            for batch in (1, 4, args.slices):
                s = seconds_per_slice(model.encode, x, batch)
                print(f"  chunking {'on ' if chunked else 'off'} batch {batch:3d}: "
                      f"{s:.3f} s per slice, {gflop / s:.0f} GFLOP/s")  # fmt: skip


if __name__ == "__main__":
    main()
