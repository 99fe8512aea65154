"""Score a benchmark with a model, write MOOD-format predictions and evaluate them."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..benchmark import Case, read_cases
from ..checkpoint import Checkpoint
from ..errors import AnomalyMapsError
from ..io import Volume, load_volume
from ..outputs import ScoreFiles, write_score
from .results import OUTPUT_FILES, Evaluation, evaluate

if TYPE_CHECKING:
    from ..scoring import VolumeScore

__all__ = ["evaluate_checkpoint"]

log = logging.getLogger(__name__)


def evaluate_checkpoint(
    checkpoint: str | os.PathLike | Checkpoint,
    scorers: Sequence[tuple[str, dict[str, Any]]],
    benchmark: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    device: str | None = None,
    batch_size: int = 32,
    seed: int = 0,
    volume_score: str = "slice_mean",
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    space: str = "auto",
) -> Evaluation:
    """Score a benchmark's val and test cases with a model, write MOOD-format
    predictions, evaluate them (test, Dice threshold from val) and write the report.

    Maps and volume scores are normalised with the ``mood`` method of
    :mod:`~anomaly_maps.scoring.postprocess` (into (0, 1), 0.75 at the healthy 99th
    percentile), as MOOD's evaluator needs. The healthy statistics are the checkpoint's
    calibration of each scorer if it holds one, else they are computed here on the
    benchmark's healthy validation cases (the checkpoint file is left unchanged), whose
    raw results are then held in memory until written, so each case is scored once.

    Parameters
    ----------
    checkpoint
        A trained model file or a loaded :class:`~anomaly_maps.checkpoint.Checkpoint`.
    scorers
        ``(name, params)`` pairs, names unique.
    benchmark
        A folder made by :func:`~anomaly_maps.benchmark.make_benchmark`.
    out_dir
        Receives ``predictions/{val,test}/SCORER/NAME.nii.gz`` and ``NAME.txt``, and
        the :data:`OUTPUT_FILES` of the test evaluation.
    device, batch_size, seed, volume_score
        As for :func:`~anomaly_maps.scoring.score_volume`.
    overwrite
        Replace earlier predictions and report in ``out_dir``.
    progress
        Called as ``progress(done, total)`` after each scored val/test volume.
    space
        ``auto`` (as ``anomaly-maps score``): a case off the model's grid, e.g. a real
        subject's scan at its own resolution, is registered into the model's space,
        scored there and its maps brought back onto its grid
        (:func:`~anomaly_maps.model_space.score_in_space`), so the evaluation measures
        what a user scoring that scan gets; ``native`` scores every case as it is.
    """
    from ..checkpoint import load_checkpoint
    from ..model_space import score_in_space
    from ..scoring import get_scorer
    from ..scoring.calibration import calibrations_from_results, find_calibration
    from ..scoring.postprocess import normalize_result

    names = [name for name, _ in scorers]
    if not names or len(set(names)) != len(names):
        raise AnomalyMapsError(f"scorers {names}: expected one or more, each named once")
    benchmark, out = Path(benchmark), Path(out_dir)
    predictions = out / "predictions"
    taken = [p for p in (predictions, *(out / f for f in OUTPUT_FILES)) if p.exists()]
    if taken and not overwrite:
        raise AnomalyMapsError(
            f"{taken[0]}: already exists; pass overwrite=True (CLI: --overwrite) to replace "
            "the predictions and report"
        )
    if not isinstance(checkpoint, Checkpoint):
        checkpoint = load_checkpoint(checkpoint, device="cpu" if device is None else device)
    for name in names:
        get_scorer(name).check_fits(checkpoint.kinds)
    if space not in ("auto", "native"):
        raise AnomalyMapsError(f"space={space!r}: expected 'auto' or 'native'")
    cases = read_cases(benchmark)
    splits = {s: [c for c in cases if c.split == s] for s in ("val", "test")}
    if not splits["test"]:
        raise AnomalyMapsError(f"{benchmark}: no test cases to evaluate")

    total, done = len(splits["val"]) + len(splits["test"]), 0

    def score(case: Case) -> tuple[Volume, list[VolumeScore]]:
        nonlocal done
        volume = load_volume(benchmark / case.split / "toy" / case.case)
        results, _ = score_in_space(
            volume, checkpoint, scorers, space=space, device=device, batch_size=batch_size,
            seed=seed, volume_score=volume_score,
        )  # fmt: skip
        done += 1
        if progress is not None:
            progress(done, total)
        return volume, results

    calibrations = {name: find_calibration(checkpoint, name, params) for name, params in scorers}
    missing = [i for i, (name, _) in enumerate(scorers) if calibrations[name] is None]
    # Healthy validation cases calibrate the missing scorers; their results are kept
    # (raw, in memory) to be written below rather than scored a second time.
    scored: dict[tuple[str, str], tuple[Volume, list[VolumeScore]]] = {}
    if missing:
        healthy = [c for c in splits["val"] if c.label == 0]
        if not healthy:
            raise AnomalyMapsError(
                f"{checkpoint.path}: no calibration of {[names[i] for i in missing]} and no "
                f"healthy validation case in {benchmark} to compute one from"
            )
        log.info("calibrating %d scorer(s) on %d healthy validation cases", len(missing),
                 len(healthy))  # fmt: skip
        for case in healthy:
            scored[case.split, case.case] = score(case)
        computed = calibrations_from_results(
            [scorers[i] for i in missing],
            ([results[i] for i in missing] for _, results in scored.values()),
        )
        calibrations.update({c.scorer: c for c in computed})

    for split, split_cases in splits.items():
        for case in split_cases:
            volume, raw_results = scored.pop((split, case.case), None) or score(case)
            for raw in raw_results:
                result = normalize_result(raw, "mood", calibrations[raw.scorer])
                folder = predictions / split / raw.scorer
                files = ScoreFiles(folder / case.case, folder / f"{case.case}.txt", None)
                write_score(volume, result, files, overwrite=overwrite)
    with_val = bool(splits["val"])
    evaluation = evaluate(
        predictions / "test",
        benchmark / "test",
        val_pred_dir=predictions / "val" if with_val else None,
        val_label_dir=benchmark / "val" if with_val else None,
        manifest=benchmark,
        split="test",
    )
    evaluation.write(out, overwrite=overwrite)
    return evaluation
