"""The demo: a scan with a known lesion, a small bundled model, its map and a picture.

:func:`run_demo` is ``anomaly-maps demo --headless``: it scores the bundled demo scan with
a bundled model, thresholds the map where the model's calibration found the best Dice
on labelled validation volumes, and writes the map, the mask, the volume score and a
PNG of the axial slice through the lesion (matplotlib, no display needed). The napari
demo (:mod:`anomaly_maps.napari._demo`) shows the same in a viewer.

:func:`bundle_demo_case` and :func:`bundle_model` make those sample files from a
benchmark (``anomaly-maps make-sample-data``): a test case and its label, and a trained
model calibrated on the benchmark's validation split with its test metrics in the card.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nibabel as nib
import numpy as np

from ._fileio import atomic_path
from .errors import AnomalyMapsError, ParameterError
from .io import Volume, load_volume, save_volume
from .samples import SAMPLES, sample_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .checkpoint import Checkpoint
    from .evaluation import Evaluation
    from .scoring import VolumeScore

__all__ = [
    "DemoResult",
    "bundle_demo_case",
    "bundle_model",
    "demo_outputs",
    "demo_params",
    "demo_threshold",
    "lesion_plane",
    "render_slice",
    "run_demo",
]


@dataclass(frozen=True)
class DemoResult:
    """What :func:`run_demo` computed and wrote.

    ``threshold`` (raw map units) made the mask; ``threshold_source`` says where it
    came from. ``dice`` is the mask's Dice against the demo label; ``plane`` is the
    ``(data axis, index)`` of the axial slice through the lesion in the PNG.
    """

    scorer: str
    params: dict[str, Any]
    files: dict[str, Path]
    volume_score: float
    threshold: float
    threshold_source: str
    dice: float
    plane: tuple[int, int]


def lesion_plane(label: Volume) -> tuple[int, int]:
    """``(data axis, index)`` of the axial plane through the centre of ``label``'s voxels."""
    ornt = nib.orientations.io_orientation(label.affine)
    axis = int(np.flatnonzero(ornt[:, 0] == 2)[0])  # the data axis running inferior-superior
    where = np.argwhere(label.data > 0)
    if not where.size:
        raise AnomalyMapsError(f"{label.path}: the label is empty; expected a lesion")
    return axis, int(np.round(where[:, axis].mean()))


def demo_params(checkpoint: Checkpoint, scorer: str, params: dict[str, Any] | None) -> dict:
    """``params`` if given, else those of the checkpoint's newest calibration of
    ``scorer`` (``make-sample-data`` appends the one it validated), else {}."""
    if params is not None:
        return dict(params)
    for calibration in reversed(checkpoint.records.calibrations):
        if calibration.scorer == scorer:
            return dict(calibration.params)
    return {}


def demo_threshold(checkpoint: Checkpoint, result: VolumeScore) -> tuple[float, str]:
    """The map threshold for the demo mask and where it comes from.

    The calibration's best-Dice threshold on labelled validation volumes if the model
    holds one for this scorer and parameters; else the threshold flagging 1 % of healthy
    validation voxels; without any calibration, the 99th percentile of this scan's brain.
    """
    from .scoring.calibration import find_calibration

    calibration = find_calibration(checkpoint, result.scorer, result.params)
    if calibration is not None and calibration.dice_threshold is not None:
        return calibration.dice_threshold, "best Dice on the model's labelled validation scans"
    if calibration is not None and calibration.pixel_quantiles is not None:
        return calibration.threshold_for_fpr(0.01), "1 % false positives on healthy scans"
    return float(np.percentile(result.map[result.foreground], 99)), (
        "99th percentile of this brain (the model holds no calibration for this scorer)"
    )


def demo_outputs(out_dir: str | os.PathLike, scorer: str) -> dict[str, Path]:
    """The files :func:`run_demo` writes: map, mask, score and screenshot."""
    base = Path(out_dir) / f"demo_{scorer}"
    return {
        "map": base.with_name(f"{base.name}.nii.gz"),
        "mask": base.with_name(f"{base.name}_mask.nii.gz"),
        "score": base.with_name(f"{base.name}.txt"),
        "screenshot": base.with_name(f"{base.name}.png"),
    }


def _canonical(volume: Volume, data: np.ndarray) -> np.ndarray:
    """``data`` on ``volume``'s grid, reordered and flipped to RAS+ axes."""
    return nib.orientations.apply_orientation(data, nib.orientations.io_orientation(volume.affine))


def render_slice(
    scan: Volume,
    anomaly_map: np.ndarray,
    label: np.ndarray,
    threshold: float,
    *,
    title: str,
) -> Figure:
    """Two panels of the axial slice through the lesion: the scan with the true outline
    (red), and the map over it (inferno, top 10 % of the brain) with the thresholded
    mask (cyan). Anterior up, the patient's left on the left (neurological view)."""
    from matplotlib.figure import Figure

    truth = _canonical(scan, label > 0)
    if not truth.any():
        raise AnomalyMapsError("the label is empty; expected a lesion to show")
    index = int(np.round(np.argwhere(truth)[:, 2].mean()))  # axial plane through the lesion
    volumes = (_canonical(scan, scan.data), _canonical(scan, anomaly_map), truth)
    image, heat, truth = (v[:, :, index].T for v in volumes)
    rows, cols = (np.flatnonzero(image.any(axis=a)) for a in (1, 0))
    if rows.size:  # crop to the head, with a margin
        crop = tuple(slice(max(v[0] - 4, 0), v[-1] + 5) for v in (rows, cols))
        image, heat, truth = image[crop], heat[crop], truth[crop]
    ornt = nib.orientations.io_orientation(scan.affine)
    zooms = np.sqrt((scan.affine[:3, :3] ** 2).sum(axis=0))[np.argsort(ornt[:, 0])]
    brain = heat[heat > 0]
    low = float(np.percentile(brain, 90)) if brain.size else 0.0
    shown = np.ma.masked_less(heat, low) if brain.size else np.ma.masked_all(heat.shape)
    figure = Figure(figsize=(8, 4.3), dpi=100, facecolor="black")
    axes = figure.subplots(1, 2)
    for ax, panel in zip(axes, ("scan, true lesion (red)", "map, mask (cyan)"), strict=True):
        ax.imshow(image, cmap="gray", origin="lower", aspect=zooms[1] / zooms[0])
        ax.set_title(panel, color="white", fontsize=10)
        ax.set_axis_off()
        for x, side in ((0.01, "L"), (0.99, "R")):
            ax.text(x, 0.5, side, color="white", transform=ax.transAxes, ha="center")
    axes[1].imshow(shown, cmap="inferno", origin="lower", aspect=zooms[1] / zooms[0], alpha=0.85,
                   vmin=low, vmax=max(float(heat.max()), low + 1e-6))  # fmt: skip
    axes[1].contour(heat >= threshold, levels=[0.5], colors="cyan", linewidths=1.0)
    for ax in axes:
        ax.contour(truth, levels=[0.5], colors="red", linewidths=1.0)
    figure.suptitle(title, color="white", fontsize=10)
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.86, wspace=0.02)
    return figure


#: The bundled model and scorer the demo uses: the best by measurement (docs/results.md:
#: the two restoration models joined, ``fpi`` with three views and ``through=2``: pixel AP
#: 0.383 against 0.379 for the 128x128 model alone and 0.023 for the VAE's ``rec`` on the
#: benchmark's test split, 0.305 against 0.290 on the held-out Colin27 subject; Dice
#: 0.578 against 0.573 and 0.227 on the demo scan at the validated threshold).
DEMO_MODEL, DEMO_SCORER = "restoration_ensemble", "fpi"


def run_demo(
    out_dir: str | os.PathLike,
    *,
    model: str = DEMO_MODEL,
    scorer: str = DEMO_SCORER,
    params: dict[str, Any] | None = None,
    device: str = "auto",
    batch_size: int = 32,
    seed: int = 0,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> DemoResult:
    """Score the demo scan with a bundled model and write map, mask, score and PNG.

    Parameters
    ----------
    out_dir
        Receives the :func:`demo_outputs` files.
    model
        A bundled model's name (:func:`~anomaly_maps.sample_build.bundled_models`; the
        VQ-VAE sample holds its prior too).
    scorer, params
        The scorer; ``params=None`` takes the parameters the model was calibrated with.
    device, batch_size, seed, progress
        As for :func:`~anomaly_maps.scoring.score_volume`.
    overwrite
        Replace earlier demo outputs in ``out_dir``.
    """
    from .checkpoint import load_checkpoint
    from .metrics import dice_at
    from .sample_build import bundled_models
    from .scoring import get_scorer, score_volume

    if model not in bundled_models():
        raise ParameterError(f"model {model!r}: expected one of the bundled {bundled_models()}")
    files = demo_outputs(out_dir, scorer)
    taken = [str(p) for p in files.values() if p.exists()]
    if taken and not overwrite:
        raise AnomalyMapsError(f"{taken[0]}: already exists; pass --overwrite to replace it")
    info = get_scorer(scorer)
    checkpoint = load_checkpoint(sample_path(model), device=device)
    info.check_fits(checkpoint.kinds)
    params = info.resolve_params(demo_params(checkpoint, scorer, params))
    scan, label = load_volume(sample_path("demo_scan")), load_volume(sample_path("demo_label"))
    [result] = score_volume(scan, checkpoint, [(scorer, params)], device=device,
                            batch_size=batch_size, seed=seed, progress=progress)  # fmt: skip
    if result.map is None:
        raise ParameterError(f"scorer {scorer!r} rates slices only; the demo needs a map scorer")
    threshold, source = demo_threshold(checkpoint, result)
    mask = (result.map >= threshold) & result.foreground
    dice = dice_at(label.data > 0, result.map, threshold)
    save_volume(scan.with_data(result.map), files["map"], overwrite=overwrite)
    save_volume(scan.with_data(mask.astype(np.uint8)), files["mask"], overwrite=overwrite)
    with atomic_path(files["score"], overwrite=overwrite) as tmp:
        tmp.write_text(f"{result.volume_score:.8g}\n")
    figure = render_slice(
        scan, result.map, label.data, threshold,
        title=f"{model} + {scorer}: Dice {dice:.3f} at threshold {threshold:.4g}",
    )  # fmt: skip
    with atomic_path(files["screenshot"], overwrite=overwrite) as tmp:
        figure.savefig(tmp, format="png", facecolor=figure.get_facecolor())
    return DemoResult(scorer, params, files, result.volume_score, threshold, source, dice,
                      lesion_plane(label))  # fmt: skip


# ---------------------------------------------------------------------- sample files


def _copy_checked(src: Path, dst: Path, overwrite: bool) -> Path:
    """Copy a NIfTI file byte for byte after checking that it reads."""
    load_volume(src)
    with atomic_path(dst, overwrite=overwrite) as tmp:
        shutil.copyfile(src, tmp)
    return dst


def bundle_demo_case(
    benchmark: str | os.PathLike, case: str, out_dir: str | os.PathLike, *, overwrite: bool = False
) -> tuple[Path, Path, str]:
    """Copy benchmark test case ``case`` (with an anomaly) and its voxel label to
    ``out_dir`` as the demo scan and label; returns both paths and a one-line description."""
    from .benchmark import read_cases

    benchmark, out = Path(benchmark), Path(out_dir)
    name = case if case.endswith(".nii.gz") else f"{case}.nii.gz"
    tests = {c.case: c for c in read_cases(benchmark) if c.split == "test"}
    found = tests.get(name)
    if found is None or not found.label:
        with_anomaly = sorted(n[: -len(".nii.gz")] for n, c in tests.items() if c.label)
        raise ParameterError(
            f"demo case {case!r}: expected a test case of {benchmark} with an anomaly, "
            f"one of {with_anomaly}"
        )
    scan = _copy_checked(benchmark / "test/toy" / name, out / SAMPLES["demo_scan"][0], overwrite)
    label = _copy_checked(benchmark / "test/toy_label/pixel" / name,
                          out / SAMPLES["demo_label"][0], overwrite)  # fmt: skip
    about = (
        f"test case {name} of benchmark {benchmark.name}: {found.anomaly} anomaly, "
        f"{found.size} (radius {found.radius:.1f} voxels, {found.label_voxels} label voxels)"
    )
    return scan, label, about


def _benchmark_summary(benchmark: Path) -> str:
    from .benchmark.build import read_manifest

    manifest = read_manifest(benchmark)
    counts, shape = manifest["counts"], "x".join(map(str, manifest["shape"]))
    return (
        f"{benchmark.name}: make-benchmark seed {manifest['seed']}, {shape} voxels, "
        f"{counts['train']} train / {counts['val']} val / {counts['test']} test volumes "
        f"from {manifest['template']}"
    )


def bundle_model(
    checkpoint: str | os.PathLike,
    scorers: Sequence[tuple[str, dict[str, Any]]],
    benchmark: str | os.PathLike,
    out: str | os.PathLike,
    *,
    command: str,
    device: str = "auto",
    batch_size: int = 32,
    seed: int = 0,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Path, Evaluation]:
    """Calibrate a trained model on a benchmark's validation split, evaluate it on the
    test split, and save it to ``out`` with the results in its card.

    The calibration of every scorer (healthy validation cases; best-Dice threshold on
    all validation cases) is stored as by ``anomaly-maps calibrate``; the test results of
    :func:`~anomaly_maps.evaluation.evaluate_checkpoint` (all cases) go to
    ``metrics["benchmark"]`` with the benchmark's description and ``command``.
    """
    from .benchmark import read_cases
    from .checkpoint import load_checkpoint, save_checkpoint
    from .evaluation import evaluate_checkpoint
    from .records import BenchmarkRecord
    from .scoring import score_volume
    from .scoring.calibration import calibrations_from_results, with_calibration

    benchmark, out = Path(benchmark), Path(out)
    if out.exists() and not overwrite:
        raise AnomalyMapsError(f"{out}: already exists; pass --overwrite to replace it")
    cases = read_cases(benchmark)
    val = [c for c in cases if c.split == "val"]
    if all(c.label for c in val) or not any(c.label for c in val):
        raise AnomalyMapsError(f"{benchmark}: calibration needs healthy and anomalous val cases")
    total = len(val) + len(cases)

    def scan(case: Any, folder: str = "toy") -> Volume:
        return load_volume(benchmark / case.split / folder / case.case)

    model = load_checkpoint(checkpoint, device=device)
    # Each val case is scored once; its raw results (held until calibrated) count as
    # healthy statistics if it has no anomaly, and towards the best-Dice threshold.
    scored = []
    for done, case in enumerate(val, 1):
        scored.append((case, score_volume(scan(case), model, scorers, device=device,
                                          batch_size=batch_size, seed=seed)))  # fmt: skip
        if progress is not None:
            progress(done, total)
    calibrations = calibrations_from_results(
        scorers,
        (results for case, results in scored if not case.label),
        ((results, scan(case, "toy_label/pixel").data) for case, results in scored),
    )
    for calibration in calibrations:
        model = with_calibration(model, calibration)
    with tempfile.TemporaryDirectory() as tmp:
        evaluation = evaluate_checkpoint(
            model, scorers, benchmark, tmp, device=device, batch_size=batch_size, seed=seed,
            progress=None if progress is None else
            lambda done, _: progress(len(val) + done, total),
        )  # fmt: skip
    record = BenchmarkRecord.from_results(
        evaluation.results, data=_benchmark_summary(benchmark), command=command
    )
    save_checkpoint(out, model.models, preprocessing=model.preprocessing,
                    records=replace(model.records, benchmark=record),
                    overwrite=overwrite)  # fmt: skip
    return out, evaluation
