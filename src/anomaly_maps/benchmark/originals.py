"""Each case's healthy volume before its anomaly, drawn again from the benchmark's seed.

A benchmark stores the scans with their anomalies and the sphere each one filled; what
the anomaly actually changed is not stored. Every case follows from the seed
(:func:`~.build.split_seeds`), and its healthy draw comes before its anomaly, so the
healthy volume can be drawn again: ``|scan - original|`` says which voxels of the label
changed at all (a mirrored block leaves its mid-plane as it was, a sink or source its
rim), which separates "the map misses the change" from "the label holds unchanged
tissue" (``scripts/changed_voxels.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import AnomalyMapsError, ParameterError
from .build import SPLITS, read_manifest, split_seeds
from .cases import Case, read_cases
from .healthy import HealthyDraw, Template, healthy_draw, load_template
from .spec import BenchmarkSpec

__all__ = ["original_draws"]


def _template(manifest: dict, benchmark: Path) -> Template:
    """The template the benchmark was drawn from: the bundled one, or its stored path."""
    from ..samples import SAMPLES

    name = manifest["template"]
    if name == SAMPLES["brain"][1]:
        return load_template()
    if not Path(name).is_file():
        raise AnomalyMapsError(
            f"{benchmark}: its template {name} is not there; expected the file the "
            "benchmark was made from"
        )
    return load_template(name)


def original_draws(
    benchmark: str | os.PathLike, split: str = "test"
) -> Iterator[tuple[Case, HealthyDraw]]:
    """``(case, healthy draw)`` for each val or test case of ``benchmark``, in order.

    The draw is the case's volume before its anomaly was put in (a healthy case's
    volume itself), equal to what :func:`~.build.make_benchmark` drew up to
    floating-point differences between library versions.
    """
    if split not in SPLITS[1:]:
        raise ParameterError(f"split {split!r}: expected one of {list(SPLITS[1:])}")
    root = Path(benchmark)
    manifest = read_manifest(root)
    spec = BenchmarkSpec.from_dict(
        {k: v for k, v in manifest["spec"].items() if k != "format_version"}
    )
    template = _template(manifest, root)
    grid = tuple(manifest["shape"])
    _, seeds = split_seeds(manifest["seed"], manifest["counts"])[split]
    cases = [c for c in read_cases(root) if c.split == split]
    for case, seed in zip(cases, seeds, strict=True):
        yield case, healthy_draw(template, grid, spec, np.random.default_rng(seed))
