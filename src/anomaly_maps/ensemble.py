"""Join trained restoration checkpoints into one ensemble checkpoint.

The ensemble (:class:`~anomaly_maps.models.restoration_ensemble.RestorationEnsemble`)
runs every member and keeps the largest of their ``fpi`` maps, each in its unit (its
healthy 99th percentile, or its own 90th percentile over the scan: ``units``). Its file is an
ordinary checkpoint, so scoring, calibration, the docks and the demo use it unchanged.
Members must read scans the same way apart from the slice size (axis, intensity
normalisation, model space), and each must carry an ``fpi`` calibration with the
default parameters: its healthy 99th percentile is the member's unit. The joined
checkpoint keeps the largest member's preprocessing and training record, lists every
member's file and training under ``metrics["ensemble"]``, and holds no calibration:
calibrate it afresh (its maps are new).
"""

from __future__ import annotations

from collections.abc import Sequence

from .checkpoint import Checkpoint
from .errors import AnomalyMapsError
from .models.restoration_ensemble import RestorationEnsemble, RestorationEnsembleConfig
from .records import CheckpointRecords
from .scoring.calibration import find_calibration

__all__ = ["join_restorations", "member_scale"]


def member_scale(checkpoint: Checkpoint) -> float:
    """The healthy 99th percentile of a restoration checkpoint's default ``fpi`` map."""
    name = checkpoint.name
    if checkpoint.kinds != ("restoration",):
        raise AnomalyMapsError(
            f"{name}: holds {'+'.join(checkpoint.kinds)}: expected one restoration model"
        )
    calibration = find_calibration(checkpoint, "fpi")
    if (
        calibration is None
        or calibration.pixel_quantiles is None
        or 0.99 not in calibration.levels
    ):
        raise AnomalyMapsError(
            f"{name}: no fpi calibration with the default parameters: run `anomaly-maps "
            f"calibrate --checkpoint {name} --scorer fpi HEALTHY_SCANS --out ...` first"
        )
    scale = calibration.pixel_quantiles[calibration.levels.index(0.99)]
    if not scale > 0:
        raise AnomalyMapsError(f"{name}: its fpi calibration's healthy 99th percentile is {scale}")
    return float(scale)


def _reading(checkpoint: Checkpoint) -> tuple:
    """What must agree between members: preprocessing apart from the size, the space."""
    pre = {k: v for k, v in checkpoint.preprocessing.to_dict().items() if k != "size"}
    training = checkpoint.records.training
    return pre, training.space if training else None


def _check_compatible(members: Sequence[Checkpoint]) -> None:
    first_pre, first_space = _reading(members[0])
    for member in members[1:]:
        pre, space = _reading(member)
        name = member.name
        if pre != first_pre:
            raise AnomalyMapsError(
                f"{name}: reads scans as {pre} apart from the size; the first member as "
                f"{first_pre}: members must share axis and normalisation"
            )
        if space is not None and first_space is not None and space != first_space:
            raise AnomalyMapsError(
                f"{name}: trained in space {space.get('name')!r}, the first member in "
                f"{first_space.get('name')!r}: members must share a model space"
            )


def join_restorations(members: Sequence[Checkpoint], units: str = "scan") -> Checkpoint:
    """One checkpoint holding every member, largest slice size first (stable order),
    reading their maps in ``units`` (:data:`~anomaly_maps.models.restoration_ensemble.
    ENSEMBLE_UNITS`; ``scan`` transfers to real subjects, ``docs/results.md``).

    Raises
    ------
    AnomalyMapsError
        Fewer than two members, a member that is not one restoration model or has no
        default ``fpi`` calibration, or members that read scans differently.
    ~anomaly_maps.errors.ParameterError
        ``units`` not one of ``ENSEMBLE_UNITS``.
    """
    if len(members) < 2:
        raise AnomalyMapsError(f"{len(members)} checkpoint(s): an ensemble needs at least two")
    ordered = sorted(members, key=lambda c: -c.preprocessing.size)
    scales = tuple(member_scale(c) for c in ordered)
    _check_compatible(ordered)
    config = RestorationEnsembleConfig(
        members=tuple(c.model.config for c in ordered), scales=scales, units=units
    )
    model = RestorationEnsemble(config)
    for net, member in zip(model.members, ordered, strict=True):
        net.load_state_dict(member.model.state_dict())
    model.eval()
    records = CheckpointRecords(
        training=ordered[0].records.training,
        other_metrics={
            "ensemble": [
                {
                    "file": c.path.name if c.path else None,
                    "scale": s,
                    "training": c.training,
                }
                for c, s in zip(ordered, scales, strict=True)
            ]
        },
    )
    return Checkpoint(
        path=None,
        models={config.kind: model},
        preprocessing=ordered[0].preprocessing,
        records=records,
    )
