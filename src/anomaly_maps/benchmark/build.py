"""Build a benchmark folder: draw every case, write it in MOOD's layout, move it into place."""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .._config import is_int
from .._fileio import write_text
from ..errors import AnomalyMapsError, ParameterError
from ..io import Volume, save_volume
from .anomalies import insert_anomaly
from .cases import CASE_FIELDS, CASES, Case
from .healthy import HealthyDraw, Template, grid_affine, healthy_draw, load_template
from .spec import BenchmarkSpec

__all__ = ["MANIFEST", "SPLITS", "make_benchmark", "read_manifest", "split_seeds"]

log = logging.getLogger(__name__)

MANIFEST = "benchmark.json"
SPLITS = ("train", "val", "test")


def _shape(shape: int | tuple[int, ...] | None, template: Volume) -> tuple[int, int, int]:
    if shape is None:
        return template.shape
    if is_int(shape):
        shape = (shape,) * 3
    ok = isinstance(shape, tuple | list) and len(shape) == 3 and all(is_int(s) for s in shape)
    if not ok or min(shape) < 8:
        raise ParameterError(f"shape={shape!r}: expected an int or 3 ints, each >= 8 voxels")
    return tuple(int(s) for s in shape)  # type: ignore[return-value]


def _check_target(out: Path, overwrite: bool) -> None:
    """Refuse a non-empty ``out``; with ``overwrite``, only a benchmark may be replaced."""
    if out.exists() and not out.is_dir():
        raise AnomalyMapsError(f"{out}: is a file, expected a folder for the benchmark")
    if not out.exists() or not any(out.iterdir()):
        return
    if not overwrite:
        raise AnomalyMapsError(
            f"{out}: folder is not empty; pass overwrite=True (CLI: --overwrite) to replace it"
        )
    if not (out / MANIFEST).is_file():
        raise AnomalyMapsError(
            f"{out}: not empty and holds no {MANIFEST}: refusing to replace a folder that "
            "make-benchmark did not write; choose an empty or new folder"
        )


def read_manifest(benchmark: str | os.PathLike) -> dict[str, Any]:
    """The settings :func:`make_benchmark` stored in ``benchmark``'s :data:`MANIFEST`;
    one line if it is missing or not JSON."""
    path = Path(benchmark) / MANIFEST
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise AnomalyMapsError(f"{path}: no readable benchmark manifest ({exc})") from None


def split_seeds(
    seed: int, counts: dict[str, int]
) -> dict[str, tuple[np.random.SeedSequence, list[np.random.SeedSequence]]]:
    """Per split, the seed of its anomaly assignments and one seed per case: disjoint,
    independent streams (``SeedSequence(seed).spawn``), so no training volume is a test
    volume, and any case can be drawn again from the seed alone."""
    streams = dict(zip(SPLITS, np.random.SeedSequence(seed).spawn(len(SPLITS)), strict=True))
    out = {}
    for split in SPLITS:
        seeds = streams[split].spawn(counts[split] + 1)
        out[split] = (seeds[0], seeds[1:])
    return out


def _assignments(n: int, spec: BenchmarkSpec, rng: np.random.Generator) -> list[str]:
    """Anomaly kind (or "none") per case: round(n * fraction) anomalous, kinds in turn,
    order shuffled."""
    n_anomalous = round(n * spec.anomaly_fraction)
    kinds = [spec.anomalies[i % len(spec.anomalies)] for i in range(n_anomalous)]
    return [str(k) for k in rng.permutation(kinds + ["none"] * (n - n_anomalous))]


def _write_case(
    folder: Path, name: str, draw: HealthyDraw, kind: str, affine: np.ndarray, **anomaly: Any
) -> Case:
    """Write one val/test case in MOOD's layout (scan, voxel label, sample label)."""
    data, label, info = draw.data, np.zeros(draw.data.shape, np.uint8), {}
    if kind != "none":
        data, label, info = insert_anomaly(draw, kind, **anomaly)
    is_anomalous = int(kind != "none")
    save_volume(Volume(data, affine), folder / "toy" / name)
    save_volume(Volume(label, affine), folder / "toy_label" / "pixel" / name)
    write_text(folder / "toy_label" / "sample" / f"{name}.txt", f"{is_anomalous}\n")
    return Case(folder.name, name, is_anomalous, label_voxels=int(label.sum()), **info)


def make_benchmark(
    out_dir: str | os.PathLike,
    *,
    n_train: int = 20,
    n_val: int = 10,
    n_test: int = 20,
    seed: int = 0,
    shape: int | tuple[int, int, int] | None = None,
    spec: BenchmarkSpec | None = None,
    template: Template | str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Build a MOOD-style benchmark in ``out_dir`` (layout in the module docstring).

    Parameters
    ----------
    out_dir
        Target folder: new, empty, or (with ``overwrite``) an earlier benchmark.
    n_train, n_val, n_test
        Volumes per split; train is healthy only, val and test hold anomalies.
    seed
        Everything follows from it. The splits draw from disjoint, independent streams
        (``SeedSequence(seed).spawn``), so no training volume is a test volume.
    shape
        Output grid (int for a cube); the template's field of view is fitted into it
        isotropically and centred, and the affine says so. Default: the template's own
        grid (197 x 233 x 189 at 1 mm for the bundled one).
    spec
        Variability and anomaly settings (default :class:`BenchmarkSpec`).
    template
        A skull-stripped T1 (path or :func:`load_template` result) to use instead of
        the bundled MNI template, e.g. a subject kept apart from training, to test on
        anatomy the model never saw.
    overwrite
        Replace an earlier benchmark in ``out_dir``.
    progress
        Called as ``progress(done, total)`` after each volume.

    Returns
    -------
    Path
        ``out_dir``. The benchmark is built in a temporary folder beside it and moved
        into place at the end, so a failure leaves no partial benchmark.
    """
    from ..samples import MNI152_NOTICE, SAMPLES, sample_path

    spec = spec or BenchmarkSpec()
    counts = {"train": n_train, "val": n_val, "test": n_test}
    for name, n in counts.items():
        if not (is_int(n) and n >= 0):
            raise ParameterError(f"n_{name}={n!r}: expected an int >= 0")
    if not (is_int(seed) and seed >= 0):
        raise ParameterError(f"seed={seed!r}: expected an int >= 0")
    out = Path(out_dir)
    _check_target(out, overwrite)
    source = template if isinstance(template, Template) else load_template(template)
    grid = _shape(shape, source.volume)
    affine, _ = grid_affine(source.volume, grid)
    lr_axis = int(np.argmax(np.abs(affine[0, :3])))  # array axis running left-right
    bundled = source.volume.path == sample_path("brain")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        total, done = sum(counts.values()), 0
        cases: list[Case] = []
        for split, (kinds_seed, case_seeds) in split_seeds(seed, counts).items():
            kinds = _assignments(counts[split], spec, np.random.default_rng(kinds_seed))
            for i, case_seed in enumerate(case_seeds):
                rng = np.random.default_rng(case_seed)
                draw = healthy_draw(source, grid, spec, rng)
                name = f"{i:05d}.nii.gz"
                if split == "train":
                    save_volume(Volume(draw.data, affine), tmp / split / name)
                else:
                    cases.append(
                        _write_case(tmp / split, name, draw, kinds[i], affine, spec=spec,
                                    rng=rng, lr_axis=lr_axis)
                    )  # fmt: skip
                done += 1
                if progress is not None:
                    progress(done, total)
        with (tmp / CASES).open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=CASE_FIELDS)
            writer.writeheader()
            writer.writerows(vars(c) for c in cases)
        manifest = {
            "format_version": 1,
            "kind": "anomaly-maps benchmark",
            "seed": seed,
            "counts": counts,
            "shape": list(grid),
            "affine": affine.tolist(),
            "template": SAMPLES["brain"][1] if bundled else str(source.volume.path),
            "spec": {"format_version": spec.format_version, **spec.to_dict()},
        }
        write_text(tmp / MANIFEST, json.dumps(manifest, indent=2) + "\n")
        if bundled:  # its licence asks for the notice in all copies
            write_text(tmp / "LICENSE-MNI152.txt", MNI152_NOTICE)
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote benchmark %s: %s", out, counts)
    return out


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Move the finished ``tmp`` folder to ``out``, replacing an earlier benchmark."""
    if not out.exists():
        os.rename(tmp, out)
        return
    old = out.with_name(f".{out.name}.old-{tmp.name.rsplit('-', 1)[-1]}")
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except OSError:
        os.rename(old, out)  # put the earlier benchmark back
        raise
    shutil.rmtree(old)
