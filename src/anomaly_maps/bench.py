"""Speed measurements behind ``anomaly-maps bench``.

``bench train`` times full training steps (augmentation, forward, backward, optimizer)
of every model kind at its paper preset on real anatomy (the sample brain's slices), on
the chosen device, and reports slices per second.

``bench score`` times :func:`~anomaly_maps.scoring.score_volume` on one volume (the
sample brain centred in a cube, 256^3 by default) with each scorer's batched
implementation and, in the same run and the same pipeline, with its registered naive
reference (``reference=True``: the per-slice, per-sample loop a paper's code would
write, with the same random draws). Both get the same slice batches, so the ratio is the
gain of batching slices and samples, not of the pipeline around it. Models are the paper
presets with fresh weights: speed does not depend on training.

``bench score-many`` times a folder of small scans from files to written outputs: the
loop that reads, scores and writes each scan in turn, against
:func:`~anomaly_maps.batch_scoring.score_scans` (reading and preprocessing in worker
processes, writing behind in a thread), and reports scans per minute. The two take
turns over several rounds and each keeps its median, so a load that comes and goes on
a shared machine weighs on both alike.

``bench head`` times what a raw 1 mm head scan costs before scoring: brain extraction
(:func:`~anomaly_maps.brain_mask.brain_mask`) and the registration into the bundled
restoration model's space (:func:`~anomaly_maps.model_space.place_scan`), on a synthetic
head built around the sample brain (:mod:`~anomaly_maps.synthetic_heads`), with the
extracted mask's Dice against the true brain.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .augment import AugmentSpec, augment
from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .device import resolve_device
from .io import Volume, load_volume, save_volume
from .models import build_model, list_model_kinds, model_presets
from .preprocessing import PreprocessingSpec, to_slices
from .samples import sample_path
from .training import autocast_for, optimizer_step

__all__ = [
    "HeadBench",
    "ScoreBench",
    "ScoreManyBench",
    "TrainBench",
    "bench_head",
    "bench_score",
    "bench_score_many",
    "bench_train",
]


@dataclass(frozen=True)
class TrainBench:
    """Training throughput of one model kind."""

    kind: str
    preset: str
    input_shape: tuple[int, ...]
    parameters: int
    batch_size: int
    seconds_per_step: float

    @property
    def slices_per_second(self) -> float:
        return self.batch_size / self.seconds_per_step


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _brain_batch(size: int, batch_size: int) -> torch.Tensor:
    """``batch_size`` axial slices of the sample brain at ``size``, (B, 1, S, S)."""
    stack = to_slices(load_volume(sample_path("brain")), PreprocessingSpec(size=size))
    keep = torch.from_numpy(stack.mask.mean(axis=(1, 2)) > 0.05)
    images = torch.from_numpy(stack.images)[keep]
    index = torch.linspace(0, len(images) - 1, batch_size).round().long()
    return images[index][:, None]


def _bench_kind(
    kind: str, device: torch.device, batch_size: int, steps: int, warmup: int, amp: bool
) -> TrainBench:
    preset, config = next(iter(model_presets(kind).items()))
    torch.manual_seed(0)
    generator = torch.Generator(device=device).manual_seed(0)
    model = build_model(config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    position = torch.rand(batch_size, device=device)
    if kind == "prior":
        x = torch.randint(config.num_codes, (batch_size, *config.grid_size), device=device)
    else:
        x = _brain_batch(config.size, batch_size).to(device)
    autocast, scaler = autocast_for(device, amp)

    def step() -> None:
        inputs = x if kind == "prior" else augment(x, AugmentSpec(), generator)
        with autocast:
            loss = model.training_loss(inputs, position=position).total
        optimizer_step(loss, optimizer, scaler)

    for _ in range(warmup):
        step()
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _synchronize(device)
    return TrainBench(
        kind=kind,
        preset=preset,
        input_shape=tuple(x.shape[1:]),
        parameters=sum(p.numel() for p in model.parameters()),
        batch_size=batch_size,
        seconds_per_step=(time.perf_counter() - start) / steps,
    )


def bench_train(
    *,
    device: str | torch.device = "auto",
    kinds: Sequence[str] | None = None,
    batch_size: int = 16,
    steps: int = 5,
    warmup: int = 2,
    amp: bool = True,
) -> list[TrainBench]:
    """Time ``steps`` training steps per model kind (after ``warmup`` untimed ones)."""
    target = resolve_device(device)
    return [
        _bench_kind(kind, target, batch_size, steps, warmup, amp)
        for kind in kinds or list_model_kinds(trainable=True)
    ]


@dataclass(frozen=True)
class ScoreBench:
    """Seconds to score one volume, batched and with the per-slice, per-sample reference."""

    scorer: str
    models: str
    batched_seconds: float
    reference_seconds: float

    @property
    def ratio(self) -> float:
        return self.reference_seconds / self.batched_seconds


def _cube_brain(side: int) -> Volume:
    """The sample brain centred (cropped or padded) in a ``side``^3 cube, 1 mm voxels."""
    brain = load_volume(sample_path("brain"))
    cube = np.zeros((side,) * 3, np.float32)
    src, dst = [], []
    for n in brain.shape:
        lo = (n - side) // 2
        src.append(slice(max(lo, 0), max(lo, 0) + min(n, side)))
        dst.append(slice(max(-lo, 0), max(-lo, 0) + min(n, side)))
    cube[tuple(dst)] = brain.data[tuple(src)]
    affine = brain.affine.copy()  # voxel (0, 0, 0) of the cube in world mm
    shift = np.array([s.start for s in src]) - np.array([d.start for d in dst])
    affine[:3, 3] += affine[:3, :3] @ shift
    return Volume(cube, affine)


def _preset_checkpoint(kinds: str, device: torch.device) -> Checkpoint:
    """Fresh paper-preset models for a ``+``-joined set of kinds, e.g. ``vqvae+prior``."""
    torch.manual_seed(0)
    configs = {kind: next(iter(model_presets(kind).values())) for kind in kinds.split("+")}
    models = {kind: build_model(cfg).to(device).eval() for kind, cfg in configs.items()}
    size = next(cfg.size for cfg in configs.values() if hasattr(cfg, "size"))
    return Checkpoint(path=None, models=models, preprocessing=PreprocessingSpec(size=size))


def bench_score(
    scorers: Sequence[tuple[str, dict]],
    *,
    device: str | torch.device = "auto",
    side: int = 256,
    batch_size: int = 32,
) -> list[ScoreBench]:
    """Time each scorer on a ``side``^3 volume: batched vs. its naive reference."""
    from .scoring import get_scorer, score_volume

    target = resolve_device(device)
    volume = _cube_brain(side)
    rows = []
    for name, params in scorers:
        kinds = get_scorer(name).model_kinds[0]
        checkpoint = _preset_checkpoint(kinds, target)
        seconds = []
        for reference in (False, True):
            # warm-up (kernels, threads) with the shapes of this implementation
            score_volume(_cube_brain(8), checkpoint, [(name, params)], reference=reference)
            _synchronize(target)
            start = time.perf_counter()
            score_volume(
                volume, checkpoint, [(name, params)], batch_size=batch_size, reference=reference
            )
            _synchronize(target)
            seconds.append(time.perf_counter() - start)
        rows.append(ScoreBench(name, kinds, *seconds))
    return rows


@dataclass(frozen=True)
class ScoreManyBench:
    """Scans per minute over a folder of scans: today's loop against :func:`score_scans`
    (median seconds over ``rounds`` alternating runs of each)."""

    scans: int
    workers: int
    sequential_seconds: float
    overlapped_seconds: float
    rounds: int = 1

    @property
    def sequential_per_minute(self) -> float:
        return 60 * self.scans / self.sequential_seconds

    @property
    def overlapped_per_minute(self) -> float:
        return 60 * self.scans / self.overlapped_seconds

    @property
    def ratio(self) -> float:
        return self.sequential_seconds / self.overlapped_seconds


def _scan_folder(folder: Path, n_scans: int, side: int) -> list[str]:
    """``n_scans`` copies of the cube brain, each with its own noise, as .nii.gz files."""
    brain = _cube_brain(side)
    paths = []
    for i in range(n_scans):
        noise = np.random.default_rng(i).normal(0, 0.02, brain.shape) * (brain.data > 0)
        scan = brain.with_data((brain.data * (1 + noise)).astype(np.float32))
        paths.append(str(save_volume(scan, folder / f"scan{i:03d}.nii.gz")))
    return paths


def bench_score_many(
    scorer: tuple[str, dict],
    *,
    device: str | torch.device = "auto",
    n_scans: int = 40,
    side: int = 64,
    batch_size: int = 32,
    workers: int = 2,
    rounds: int = 3,
    precision: str = "float32",
) -> ScoreManyBench:
    """Time scoring ``n_scans`` ``side``^3 scans from files to written outputs: read,
    score and write in turn (the loop ``score`` ran before :mod:`.batch_scoring`), then
    with reading and preprocessing in ``workers`` processes and writing in a thread;
    ``rounds`` times each, alternating, both at ``precision``."""
    from .batch_scoring import ScoringJob, score_scans
    from .outputs import score_outputs, write_score
    from .scoring import get_scorer, score_volume

    target = resolve_device(device)
    name = scorer[0]
    preset = _preset_checkpoint(get_scorer(name).model_kinds[0], target)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = save_checkpoint(folder / "model.safetensors", preset.models,
                               preprocessing=preset.preprocessing)  # fmt: skip
        checkpoint = load_checkpoint(path, device=target)
        scans = _scan_folder(folder / "scans", n_scans, side)
        score_volume(_cube_brain(8), checkpoint, [scorer])  # warm-up
        seconds: dict[str, list[float]] = {"sequential": [], "overlapped": []}
        for run in [run for _ in range(rounds) for run in seconds]:
            out = folder / f"{run}{len(seconds[run])}"
            planned = score_outputs(out, scans, [name])
            start = time.perf_counter()
            if run == "sequential":
                for scan, files in planned.items():
                    volume = load_volume(scan)
                    (result,) = score_volume(
                        volume, checkpoint, [scorer], batch_size=batch_size, precision=precision
                    )
                    write_score(volume, result, files[name])
            else:
                job = ScoringJob(checkpoint, path, [scorer], batch_size=batch_size,
                                 precision=precision)  # fmt: skip
                score_scans(job, planned, out, workers=workers)
            _synchronize(target)
            seconds[run].append(time.perf_counter() - start)
    return ScoreManyBench(n_scans, workers, *map(statistics.median, seconds.values()), rounds)


@dataclass(frozen=True)
class HeadBench:
    """Seconds of brain extraction and registration for one head scan."""

    shape: tuple[int, ...]
    zooms: tuple[float, ...]
    extraction_seconds: float
    registration_seconds: float
    dice: float

    @property
    def total_seconds(self) -> float:
        return self.extraction_seconds + self.registration_seconds


def bench_head(brain: Volume | None = None, *, seed: int = 0) -> HeadBench:
    """Extract the brain of a synthetic head around ``brain`` (default: the sample brain,
    1 mm) and register it into the bundled restoration model's space (1.8 mm MNI)."""
    from .brain_mask import apply_brain_mask, brain_mask
    from .model_space import checkpoint_space, place_scan
    from .synthetic_heads import synthetic_head

    head, truth = synthetic_head(brain or load_volume(sample_path("brain")), seed)
    space = checkpoint_space(load_checkpoint(sample_path("restoration")))
    start = time.perf_counter()
    mask = brain_mask(head)
    extracted = time.perf_counter()
    placement = place_scan(apply_brain_mask(head, mask), "auto", space, seed=seed)
    registered = time.perf_counter()
    if not placement.registered:
        raise RuntimeError("the synthetic head lies on the model's grid: nothing registered")
    dice = 2 * float((mask & truth).sum()) / max(float(mask.sum() + truth.sum()), 1.0)
    return HeadBench(
        head.shape, tuple(map(float, head.zooms)), extracted - start, registered - extracted, dice
    )
