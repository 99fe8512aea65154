"""Typed, versioned records of a checkpoint header: training, calibration, benchmark.

A checkpoint's header holds, next to its models and preprocessing, what was done with
the models: how they were trained (``training``), what their scorers give on healthy
scans (``metrics["calibration"]``, one entry per scorer and parameters) and how they did
on a benchmark (``metrics["benchmark"]``). This module is the one place that reads and
writes them: :class:`CheckpointRecords` parses both dicts (:meth:`~CheckpointRecords.
from_header`) and writes them back (:meth:`~CheckpointRecords.to_header`); the model
card and the CLI format them through :meth:`~CheckpointRecords.card_rows` and
:meth:`Calibration.report_line`.

Each record stores ``record_version``; one without it is version 1 (headers written
before records were versioned). A record newer than this code knows is refused with an
error naming the file, rather than read wrongly. Other ``metrics`` keys (results a user
stored) are kept as they are.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, ClassVar

import numpy as np

from . import __version__
from .errors import CheckpointError, ParameterError, ScorerError

__all__ = [
    "BENCHMARK_METRICS",
    "BenchmarkRecord",
    "Calibration",
    "CheckpointRecords",
    "TrainingRecord",
    "check_version",
    "trained_modality",
    "trained_on_brains",
]

BENCHMARK_METRICS: tuple[str, ...] = (
    "pixel_ap", "pixel_auroc", "best_dice", "val_dice", "sample_auroc",
)  # fmt: skip
"""Per-scorer benchmark results a :class:`BenchmarkRecord` keeps (of the ``all`` group)."""

_VERSION_KEY = "record_version"


def check_version(version: Any, what: str, key: str, newest: int, source: object) -> None:
    """Refuse a ``key`` (e.g. ``format_version``) that is not an int from 1 to ``newest``.

    A newer one is refused rather than read wrongly; ``what`` and ``source`` (the file)
    go into the message.
    """
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(
            f"{source}: {what} {key} {version!r} is invalid: expected an int from 1 to {newest}"
        )
    if version > newest:
        raise CheckpointError(
            f"{source}: {what} {key.replace('_', ' ')} {version!r} is newer than this "
            f"anomaly-maps {__version__} understands ({newest}); upgrade anomaly-maps"
        )


def _version(data: Mapping[str, Any], kind: str, newest: int, source: object) -> None:
    check_version(data.get(_VERSION_KEY, 1), kind, _VERSION_KEY, newest, source)


def _mapping(value: Any, what: str, source: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise CheckpointError(
            f"{source}: checkpoint header is invalid ({what} is {type(value).__name__}: "
            "expected an object)"
        )
    return value


def _unknown(data: Mapping[str, Any], known: Iterable[str], what: str, source: object) -> None:
    extra = sorted(set(data) - set(known) - {_VERSION_KEY})
    if extra:
        raise CheckpointError(
            f"{source}: checkpoint header is invalid (unknown {what} keys {extra}; "
            f"expected some of {sorted(known)})"
        )


@dataclass(frozen=True)
class Calibration:
    """Healthy-value statistics of one scorer with one set of parameters.

    Attributes
    ----------
    scorer, params
        The scorer and its full parameter set (defaults filled in).
    levels
        Quantile levels of the stored quantiles.
    pixel_quantiles
        Quantiles of the map over the foreground voxels of all healthy volumes (scan
        grid), or ``None`` for slice-only scorers.
    slice_quantiles
        Quantiles of the slice scores of the healthy volumes' foreground slices.
    n_volumes
        Number of healthy volumes the quantiles come from.
    dice_threshold, dice
        Map threshold (raw units) that maximised pooled Dice on labelled validation
        volumes, and that Dice; ``None`` without labelled data.
    volume_scores
        Volume-score aggregate (``slice_mean``, ``map_p99``, ...) -> the raw volume scores
        of the healthy volumes, to rank a scan against healthy volumes (the worklist);
        empty in calibrations made before they were stored.
    """

    scorer: str
    params: dict[str, Any]
    levels: tuple[float, ...]
    pixel_quantiles: tuple[float, ...] | None
    slice_quantiles: tuple[float, ...]
    n_volumes: int
    dice_threshold: float | None = None
    dice: float | None = None
    volume_scores: dict[str, tuple[float, ...]] = field(default_factory=dict)

    record_version: ClassVar[int] = 1

    def quantile(self, level: float, *, pixel: bool = True) -> float:
        """Healthy value at quantile ``level`` (linear interpolation between levels)."""
        values = self.pixel_quantiles if pixel else self.slice_quantiles
        if values is None:
            raise ScorerError(f"scorer {self.scorer!r} makes no map: no pixel calibration")
        if not 0.0 <= level <= 1.0:
            raise ParameterError(f"quantile level {level!r}: expected a float in [0, 1]")
        return float(np.interp(level, self.levels, values))

    def threshold_for_fpr(self, fpr: float) -> float:
        """Map threshold flagging a fraction ``fpr`` of healthy foreground voxels."""
        if not 0.0 < fpr < 1.0:
            raise ParameterError(f"false-positive rate {fpr!r}: expected a float in (0, 1)")
        return self.quantile(1.0 - fpr)

    def summary(self) -> str:
        """One line for the model card: scorer, healthy volumes, best Dice."""
        return f"{self.scorer} on {self.n_volumes} healthy volume(s){self._best_dice()}"

    def report_line(self) -> str:
        """One line for ``anomaly-maps calibrate``: the healthy median and 99th percentile."""
        pixel = self.pixel_quantiles is not None
        median, high = (self.quantile(q, pixel=pixel) for q in (0.5, 0.99))
        return (
            f"{self.scorer}: healthy {'map' if pixel else 'slice score'} median "
            f"{median:.4g}, 99th percentile {high:.4g}{self._best_dice()}"
        )

    def _best_dice(self) -> str:
        if self.dice is None:
            return ""
        return f", best Dice {self.dice:.3f} at {self.dice_threshold:.4g}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (tuples become lists when the header is written)."""
        record = asdict(self)
        if not record["volume_scores"]:  # headers written before stay byte for byte
            del record["volume_scores"]
        return {**record, _VERSION_KEY: self.record_version}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: object = "checkpoint") -> Calibration:
        _version(data, "calibration", cls.record_version, source)
        pixel = data.get("pixel_quantiles")
        return cls(
            scorer=str(data["scorer"]),
            params=dict(data["params"]),
            levels=tuple(float(v) for v in data["levels"]),
            pixel_quantiles=None if pixel is None else tuple(float(v) for v in pixel),
            slice_quantiles=tuple(float(v) for v in data["slice_quantiles"]),
            n_volumes=int(data["n_volumes"]),
            dice_threshold=data.get("dice_threshold"),
            dice=data.get("dice"),
            volume_scores={
                str(aggregate): tuple(float(v) for v in values)
                for aggregate, values in _mapping(
                    data.get("volume_scores", {}), "'calibration.volume_scores'", source
                ).items()
            },
        )


_TRAINING_DATA = ("volumes", "train_slices", "val_slices", "val_volumes", "preprocessing")


@dataclass(frozen=True)
class TrainingRecord:
    """How the models of a checkpoint were trained (written by ``anomaly-maps train``).

    Attributes
    ----------
    volumes, val_volumes
        File names of the training volumes, and of those held out for validation.
    train_slices, val_slices
        Slices trained and validated on.
    preprocessing
        The preprocessing the slices were made with (as the header's own).
    config, augment
        :class:`~anomaly_maps.training.TrainConfig` and augmentation settings (``None``:
        no augmentation), as dicts.
    epochs_completed
        Epochs done when the checkpoint was written.
    final_losses
        The last epoch's row of the metrics CSV (``epoch``, ``seconds``, ``train_*``,
        ``val_*``).
    seconds, device, world_size, command, versions
        Training time, where and on how many processes it ran, the command line and
        the versions of anomaly-maps, torch and Python.
    skull_stripped
        Whether the training volumes were skull-stripped brains; ``None``: unknown
        (checkpoints written before the field; the bundled ones were trained on the
        brain-masked MNI152 template, see :func:`trained_on_brains`).
    modality
        The DICOM Modality the training scans were (``MR``, ...); ``None``: not recorded
        (checkpoints written before the field, all trained on the MR template; see
        :func:`trained_modality`).
    space
        The space of the training volumes (:func:`anomaly_maps.model_space.space_of`:
        name, shape, affine, orientation); ``None``: not recorded (checkpoints written
        before the field), read by :func:`~anomaly_maps.model_space.checkpoint_space`.
    started_from
        Fine-tuning (``anomaly-maps train --init``): the file whose weights the run
        started from and that file's own training record (``{"file", "training"}``);
        ``None``: trained from a random initialisation.
    """

    volumes: tuple[str, ...] = ()
    train_slices: int | None = None
    val_slices: int | None = None
    val_volumes: tuple[str, ...] = ()
    preprocessing: dict[str, Any] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    augment: dict[str, Any] | None = None
    epochs_completed: int | None = None
    final_losses: dict[str, float] = field(default_factory=dict)
    seconds: float | None = None
    device: str | None = None
    world_size: int | None = None
    command: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    skull_stripped: bool | None = None
    modality: str | None = None
    space: dict[str, Any] | None = None
    started_from: dict[str, Any] | None = None

    record_version: ClassVar[int] = 1

    def to_dict(self) -> dict[str, Any]:
        """The header's ``training`` object (data summary nested under ``data``)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        data = {k: values.pop(k) for k in _TRAINING_DATA}
        data["volumes"], data["val_volumes"] = list(self.volumes), list(self.val_volumes)
        if self.skull_stripped is None:  # unknown stays absent: an old header reads back as it was
            del values["skull_stripped"]
        for name in ("space", "modality", "started_from"):  # likewise for headers before these
            if values[name] is None:
                del values[name]
        return {_VERSION_KEY: self.record_version, "data": data, **values}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: object = "checkpoint") -> TrainingRecord:
        _version(data, "training", cls.record_version, source)
        known = [f.name for f in fields(cls) if f.name not in _TRAINING_DATA]
        _unknown(data, [*known, "data"], "training", source)
        summary = _mapping(data.get("data", {}), "'training.data'", source)
        _unknown(summary, _TRAINING_DATA, "training.data", source)
        try:
            return cls(
                volumes=tuple(str(v) for v in summary.get("volumes", ())),
                val_volumes=tuple(str(v) for v in summary.get("val_volumes", ())),
                **{k: summary[k] for k in ("train_slices", "val_slices", "preprocessing")
                   if k in summary},
                **{k: data[k] for k in known if k in data},
            )  # fmt: skip
        except TypeError as err:
            raise CheckpointError(f"{source}: training record is invalid ({err})") from err

    def card_rows(self) -> list[tuple[str, str]]:
        """Model-card rows: what the model saw and how far it trained."""
        volumes = self.volumes
        rows = [
            (
                "trained on",
                f"{len(volumes)} volume(s), {_or_unknown(self.train_slices)} slices"
                + (f" ({', '.join(volumes[:3])})" if volumes else ""),
            ),
            ("validation", f"{_or_unknown(self.val_slices)} slices"),
            ("epochs", _or_unknown(self.epochs_completed)),
            ("skull-stripped data", _SKULL_STRIPPED[self.skull_stripped]),
            ("modality", self.modality or "MR (not recorded: the MR template)"),
        ]
        if self.started_from is not None:
            rows.append(("fine-tuned from", str(self.started_from.get("file"))))
        if "val_loss" in self.final_losses:
            rows.append(("final val loss", f"{self.final_losses['val_loss']:.4g}"))
        return rows


_SKULL_STRIPPED = {True: "yes", False: "no (heads)", None: "unknown (taken as yes)"}


def trained_on_brains(training: TrainingRecord | None) -> bool:
    """Whether a model learnt skull-stripped brains; unknown counts as yes, because every
    checkpoint written before the field (the bundled ones too) was trained on the
    brain-masked MNI152 template."""
    return training is None or training.skull_stripped is not False


def trained_modality(training: TrainingRecord | None) -> str:
    """The DICOM Modality a model learnt; ``MR`` where not recorded, because every
    checkpoint written before the field was trained on the MR template."""
    return (training.modality if training is not None else None) or "MR"


def _or_unknown(value: Any) -> str:
    return "?" if value is None else str(value)


@dataclass(frozen=True)
class BenchmarkRecord:
    """How a checkpoint's scorers did on a benchmark (written by ``make-sample-data``).

    Attributes
    ----------
    data
        What the benchmark was (name, seed, grid, counts, template).
    command
        The command line that evaluated the model.
    scores
        Scorer -> :data:`BENCHMARK_METRICS` -> value (``None`` where it does not apply).
    """

    data: str
    command: str | None = None
    scores: dict[str, dict[str, float | None]] = field(default_factory=dict)

    record_version: ClassVar[int] = 1

    @classmethod
    def from_results(
        cls, results: Iterable[Any], *, data: str, command: str | None = None
    ) -> BenchmarkRecord:
        """From :class:`~anomaly_maps.evaluation.Result` rows (those of group ``all``),
        values rounded to 4 decimals, NaN as ``None``."""

        def finite(value: float) -> float | None:
            return None if math.isnan(value) else round(float(value), 4)

        scores = {
            row.scorer: {k: finite(getattr(row, k)) for k in BENCHMARK_METRICS}
            for row in results
            if row.group == "all"
        }
        return cls(data=data, command=command, scores=scores)

    def to_dict(self) -> dict[str, Any]:
        """The header's ``metrics["benchmark"]`` object: one key per scorer."""
        record = {_VERSION_KEY: self.record_version, "data": self.data, "command": self.command}
        return {**record, **{s: dict(v) for s, v in self.scores.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: object = "checkpoint") -> BenchmarkRecord:
        _version(data, "benchmark", cls.record_version, source)
        scores = {}
        for scorer, values in data.items():
            if scorer in ("data", "command", _VERSION_KEY):
                continue
            values = _mapping(values, f"'metrics.benchmark.{scorer}'", source)
            _unknown(values, BENCHMARK_METRICS, f"metrics.benchmark.{scorer}", source)
            scores[scorer] = {k: values.get(k) for k in BENCHMARK_METRICS}
        return cls(data=str(data.get("data", "")), command=data.get("command"), scores=scores)

    def card_rows(self) -> list[tuple[str, str]]:
        """Model-card rows ``benchmark.data``, ``benchmark.SCORER.METRIC``, ..."""
        rows = [("benchmark.data", self.data), ("benchmark.command", str(self.command))]
        for scorer, values in self.scores.items():
            rows += [(f"benchmark.{scorer}.{k}", _shown(v)) for k, v in values.items()]
        return rows


def _shown(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _as_json(value: Any) -> Any:
    """``value`` as it reads back from JSON: tuples become lists."""
    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_as_json(v) for v in value]
    return value


def _flat(prefix: str, value: Any) -> list[tuple[str, str]]:
    """Rows ``a.b.c: value`` of nested metrics a user stored (long lists counted)."""
    if isinstance(value, dict):
        return [row for k, v in value.items() for row in _flat(f"{prefix}{k}.", v)]
    if isinstance(value, list | tuple) and len(value) > 4:
        return [(prefix[:-1], f"{len(value)} values")]
    return [(prefix[:-1], _shown(value))]


@dataclass(frozen=True)
class CheckpointRecords:
    """Every record of one checkpoint header, typed.

    Attributes
    ----------
    training
        How the models were trained; ``None`` for models not trained by ``train``.
    calibrations
        One per (scorer, parameters), in the order they were added.
    benchmark
        Benchmark results, if the model was evaluated on one.
    other_metrics
        Any other ``metrics`` keys, as stored (JSON values).
    """

    training: TrainingRecord | None = None
    calibrations: tuple[Calibration, ...] = ()
    benchmark: BenchmarkRecord | None = None
    other_metrics: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_header(
        cls,
        training: Mapping[str, Any] | None,
        metrics: Mapping[str, Any] | None,
        source: object = "checkpoint",
    ) -> CheckpointRecords:
        """Parse a header's ``training`` and ``metrics`` objects (``{}``/``None``: none).

        Raises
        ------
        CheckpointError
            A malformed record or one newer than this code reads; the message names
            ``source`` (the checkpoint file).
        """
        training = _mapping({} if training is None else training, "'training'", source)
        metrics = dict(_mapping({} if metrics is None else metrics, "'metrics'", source))
        entries = metrics.pop("calibration", [])
        if not isinstance(entries, list):
            raise CheckpointError(
                f"{source}: checkpoint header is invalid ('metrics.calibration' is "
                f"{type(entries).__name__}: expected a list of calibrations)"
            )
        try:
            calibrations = tuple(
                Calibration.from_dict(_mapping(e, "a calibration", source), source)
                for e in entries
            )
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{source}: calibration record is invalid ({err!r})") from err
        benchmark = metrics.pop("benchmark", None)
        if benchmark is not None:
            benchmark = BenchmarkRecord.from_dict(
                _mapping(benchmark, "'metrics.benchmark'", source), source
            )
        return cls(
            training=TrainingRecord.from_dict(training, source) if training else None,
            calibrations=calibrations,
            benchmark=benchmark,
            other_metrics=metrics,
        )

    def to_header(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(training, metrics)`` objects for the header, as they read back from its JSON
        (:meth:`from_header` inverted)."""
        metrics: dict[str, Any] = {}
        if self.benchmark is not None:
            metrics["benchmark"] = self.benchmark.to_dict()
        if self.calibrations:
            metrics["calibration"] = [c.to_dict() for c in self.calibrations]
        metrics.update(self.other_metrics)
        training = {} if self.training is None else self.training.to_dict()
        return _as_json(training), _as_json(metrics)

    def with_calibration(self, calibration: Calibration) -> CheckpointRecords:
        """These records with ``calibration`` replacing any of the same scorer and params."""
        kept = tuple(
            c
            for c in self.calibrations
            if (c.scorer, c.params) != (calibration.scorer, calibration.params)
        )
        return replace(self, calibrations=(*kept, calibration))

    def card_rows(self) -> list[tuple[str, str]]:
        """Model-card rows: training (an ensemble's: its first member's, then the
        members), then results (at most 12), then calibrations."""
        rows = (self.training or TrainingRecord()).card_rows()
        others = dict(self.other_metrics)
        members = others.pop("ensemble", None)  # written by anomaly_maps.ensemble
        if isinstance(members, list):
            rows.append(("members", ", ".join(_member_text(m) for m in members)))
        results = (self.benchmark.card_rows() if self.benchmark else []) + _flat("", others)
        rows += results[:12] or [("metrics", "none reported")]
        if self.calibrations:
            rows.append(("calibrated", "; ".join(c.summary() for c in self.calibrations)))
        return rows


def _member_text(entry: Any) -> str:
    """``file (healthy fpi p99 x)`` of one ``metrics["ensemble"]`` entry."""
    if not isinstance(entry, Mapping):
        return str(entry)
    scale = entry.get("scale")
    unit = f" (healthy fpi p99 {scale:.3g})" if isinstance(scale, int | float) else ""
    return f"{entry.get('file')}{unit}"
