"""Scoring many scans: sharded over ``torchrun`` ranks, resumable, reading ahead and
writing behind the model.

``anomaly-maps score`` calls :func:`score_scans` with the planned outputs
(:func:`~anomaly_maps.outputs.score_outputs`). Each rank scores every ``world``-th scan
(rank ``r`` takes scans ``r, r + world, ...``) on its own device; the maps do not depend on
which rank scored them (every draw is seeded from ``(seed, slice index)``), so the
outputs are those of one process. Worker processes read, brain-mask and preprocess the
next scans (:func:`~anomaly_maps.scoring.pipeline.prepare_volume`) while the model scores
the current one, and a writer thread writes the previous one's files. On CUDA the
prepared slices come in pinned memory, so their copies to the device do not block.

Each scan's files are written first (each through a temporary file and a rename), then
its completion record (:func:`record_path`), last and atomically: the run's settings,
the input's and the checkpoint's fingerprints and every output's SHA-256. ``resume``
skips a scan only when its record matches this run and its outputs' hashes; a scan
stopped half-way, changed or scored with other settings is scored again.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset

from ._fileio import write_text
from .checkpoint import Checkpoint
from .errors import AnomalyMapsError
from .findings import Finding, Regions
from .io import load_volume, source_files
from .model_space import Placement, checkpoint_space, write_model_space_map
from .outputs import WORKLIST, ScoreFiles, write_findings, write_score
from .preprocessing import check_scan_fits
from .scoring import get_scorer, score_volume
from .scoring.inferer import resolve_precision
from .scoring.pipeline import PreparedVolume, model_in_channels, prepare_volume
from .scoring.postprocess import normalize_result
from .training.distributed import Dist, dist_from_env, process_group
from .worklist import WorklistRow, worklist_csv

if TYPE_CHECKING:
    from .atlas import Atlas

__all__ = [
    "ScoringJob",
    "default_workers",
    "rank_device",
    "record_path",
    "records_folder",
    "score_scans",
]

RECORDS = ".anomaly-maps-done"
"""Name of the folder holding one completion record per scan (:func:`records_folder`)."""

RECORD_VERSION = 1

Progress = Callable[[int, int], None]


def default_workers() -> int:
    """Reader processes by default: two, or fewer on a machine with fewer cores."""
    return min(2, os.cpu_count() or 1)


def rank_device(env: Dist, requested: str) -> str:
    """This rank's device: ``cuda:LOCAL_RANK`` under torchrun with CUDA, else the CPU;
    an explicit device (``cpu``, ``cuda:N``, ``mps``) is kept."""
    if env.world == 1 or requested not in ("auto", "cuda"):
        return requested
    return f"cuda:{env.local_rank}" if torch.cuda.is_available() else "cpu"


def _share_cores(env: Dist, device: torch.device) -> None:
    """Ranks scoring on the CPU of one node split its cores instead of each taking all."""
    if env.world > 1 and device.type == "cpu":
        local = int(os.environ.get("LOCAL_WORLD_SIZE", env.world))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))


@dataclass(frozen=True)
class ScoringJob:
    """What every scan of a run is scored with (checked by the caller before any work)."""

    checkpoint: Checkpoint
    checkpoint_path: Path
    scorers: Sequence[tuple[str, dict[str, Any]]]
    calibrations: Mapping[str, Any] = field(default_factory=dict)
    thresholds: Mapping[str, tuple[float, str]] = field(default_factory=dict)
    normalize: str = "none"
    volume_score: str = "slice_mean"
    batch_size: int = 32
    seed: int = 0
    volume_index: int | None = None
    series: str | None = None
    brain_mask: str = "none"
    space: str = "native"
    min_ml: float = 0.1
    overwrite: bool = False
    atlas: Atlas | None = None
    precision: str = "float32"

    def __post_init__(self) -> None:
        """Resolve ``precision`` for the checkpoint's device and scorers (refusing
        ``bf16`` where it cannot run) before any scan is read; the job keeps what will
        run."""
        device = next(self.checkpoint.model.parameters()).device
        bf16_auto = all(get_scorer(name).bf16_auto for name, _ in self.scorers)
        precision = resolve_precision(self.precision, device, bf16_auto=bf16_auto)
        object.__setattr__(self, "precision", precision)

    def settings(self) -> dict[str, Any]:
        """Everything that changes a scan's outputs, for its completion record."""
        return {
            "scorers": [[name, dict(params)] for name, params in self.scorers],
            "normalize": self.normalize, "volume_score": self.volume_score,
            "seed": self.seed, "volume_index": self.volume_index, "series": self.series,
            "brain_mask": self.brain_mask, "precision": self.precision, "space": self.space,
            "thresholds": {k: list(v) for k, v in self.thresholds.items()},
            "min_ml": self.min_ml if self.thresholds else None,
            # only with --atlas: the records of runs without one stay valid
            **({"atlas": self.atlas.name} if self.atlas is not None else {}),
        }  # fmt: skip


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _input_fingerprint(scan: str) -> list:
    """Name, size and modification time of every file the scan is read from."""
    files = source_files(scan)
    return [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in files if p.exists()]


def records_folder(out: str | os.PathLike) -> Path:
    """Where a run's completion records live: the hidden ``.OUT.anomaly-maps-done`` beside
    ``OUT``, whose files stay those of its layout (MOOD's evaluator reads the folder)."""
    out = Path(out).absolute()
    return out.parent / f".{out.name}{RECORDS}"


def record_path(records: Path, files: Mapping[str, ScoreFiles]) -> Path:
    """The completion record of a scan: named after its first map, unique in a run."""
    return records / f"{next(iter(files.values())).map.name}.json"


def _outputs(files: Mapping[str, ScoreFiles]) -> list[Path]:
    return [p for f in files.values() for p in f.paths()]


def _tagged(value: object) -> dict:
    """JSON for numpy scalars, tagged with their dtype so they come back as they were
    (the worklist formats a numpy float unlike a Python one)."""
    if isinstance(value, np.generic):
        return {"__numpy__": value.dtype.str, "value": value.item()}
    raise TypeError(f"{type(value).__name__} in a completion record")


def _untagged(d: dict) -> object:
    return np.dtype(d["__numpy__"]).type(d["value"]) if "__numpy__" in d else d


def _row_to_json(row: WorklistRow) -> dict:
    regions = row.regions
    return {"scan": row.scan, "scorer": row.scorer, "volume_score": row.volume_score,
            "rank": row.rank, "threshold": regions.threshold, "min_ml": regions.min_ml,
            "findings": [asdict(f) for f in regions.findings]}  # fmt: skip


def _row_from_json(d: dict) -> WorklistRow:
    def finding(f: dict) -> Finding:
        tuples = {k: tuple(v) for k, v in f.items() if isinstance(v, list) and k != "bbox"}
        return Finding(**{**f, **tuples, "bbox": tuple(tuple(b) for b in f["bbox"])})

    findings = tuple(finding(f) for f in d["findings"])
    regions = Regions(findings, np.zeros((0, 0, 0), np.int32), d["threshold"], d["min_ml"])
    return WorklistRow(d["scan"], d["scorer"], d["volume_score"], d["rank"], regions)


class _Fingerprints:
    """The run's side of a completion record: settings, checkpoint hash (computed once)."""

    def __init__(self, job: ScoringJob) -> None:
        self.settings = job.settings()
        self.checkpoint = _sha256(job.checkpoint_path)

    def record(self, scan: str, files: Mapping[str, ScoreFiles], rows: list) -> dict:
        return {"record_version": RECORD_VERSION, "scan": scan,
                "input": _input_fingerprint(scan), "checkpoint": self.checkpoint,
                "settings": self.settings,
                "outputs": {str(p): _sha256(p) for p in _outputs(files) if p.exists()},
                "worklist": [_row_to_json(r) for r in rows]}  # fmt: skip

    def completed(self, records: Path, scan: str, files: Mapping[str, ScoreFiles]) -> list | None:
        """The scan's worklist rows when its record matches this run and its outputs,
        else None (no record, a partial or stale one, an output changed or missing)."""
        try:
            saved = json.loads(record_path(records, files).read_text(), object_hook=_untagged)
            if saved.get("record_version") != RECORD_VERSION or not self._matches(
                saved, scan, {str(p) for p in _outputs(files)}
            ):
                return None
            return [_row_from_json(r) for r in saved["worklist"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _matches(self, saved: dict, scan: str, outputs: set[str]) -> bool:
        same_run = (saved["scan"], saved["input"], saved["checkpoint"], saved["settings"]) == (
            scan, _input_fingerprint(scan), self.checkpoint, json.loads(json.dumps(self.settings))
        )  # fmt: skip
        return (same_run and set(saved["outputs"]) <= outputs
                and all(_sha256(Path(p)) == h for p, h in saved["outputs"].items()))  # fmt: skip


class _ScanReader(Dataset):
    """Reads scan ``i``, masks its brain as ``--brain-mask`` says and preprocesses it for
    the model, in a worker process."""

    def __init__(self, scans: Sequence[str], job: ScoringJob):
        from .records import trained_modality, trained_on_brains

        self.scans, self.volume_index, self.series = list(scans), job.volume_index, job.series
        self.brain_mask, self.preprocessing = job.brain_mask, job.checkpoint.preprocessing
        self.on_brains = trained_on_brains(job.checkpoint.records.training)
        self.space, self.model_space = job.space, checkpoint_space(job.checkpoint)
        # what check_model_takes reads of the checkpoint, kept here so that the worker
        # processes this reader is sent to do not carry the model
        self.in_channels = model_in_channels(job.checkpoint)
        self.modality = trained_modality(job.checkpoint.records.training)

    def __len__(self) -> int:
        return len(self.scans)

    def __getitem__(
        self, i: int
    ) -> tuple[tuple[Placement, PreparedVolume] | AnomalyMapsError, list, str | None]:
        """The volume and its model input (or the error refusing it), the warnings
        reading it raised, which a worker process would otherwise not show, and the
        brain mask's note."""
        from .brain_mask import prepare_scan
        from .model_space import place_scan

        note = None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                volume = load_volume(self.scans[i], volume_index=self.volume_index,
                                     series=self.series)  # fmt: skip
                check_scan_fits(volume, self.preprocessing, self.in_channels, self.modality)
                volume, note = prepare_scan(volume, self.brain_mask, self.on_brains)
                placed = place_scan(volume, self.space, self.model_space)
                note = "\n".join(n for n in (note, placed.note) if n) or None
                read = placed, prepare_volume(placed.scored, self.preprocessing)
            except AnomalyMapsError as err:  # re-raised as it is in the main process
                read = err
        return read, [(w.category, str(w.message)) for w in caught], note


def _as_read(item: tuple) -> tuple:
    """Volumes pass through the loader unchanged (no tensor conversion)."""
    return item


def _read_ahead(
    scans: Sequence[str], job: ScoringJob, workers: int, device: torch.device
) -> Iterator[tuple[Placement, PreparedVolume]]:
    """The scans' volumes and model inputs in order, read and preprocessed ``workers``
    processes ahead (0: in this one); in pinned memory for a CUDA ``device``.

    At most ``len(scans) - 1`` processes: a reader only hides its reading behind the
    scoring of an earlier scan, and starting one (importing torch) costs seconds, so a
    single scan is read here (the MOOD docker's one-volume run: 4-5 s saved on 256^3).
    """
    workers = max(0, min(workers, len(scans) - 1))
    loader = DataLoader(_ScanReader(scans, job), batch_size=None, num_workers=workers,
                        collate_fn=_as_read, pin_memory=device.type == "cuda")  # fmt: skip
    for read, caught, note in loader:
        for category, message in caught:
            warnings.warn(message, category, stacklevel=2)
        if note:
            print(note, file=sys.stderr)
        if isinstance(read, AnomalyMapsError):
            raise read
        yield read


def _write_scan(job: ScoringJob, scan: str, placement: Placement, results: list,
                files: Mapping[str, ScoreFiles], overwrite: bool,
                log: Callable[[str], None]) -> list[WorklistRow]:  # fmt: skip
    """Normalise and write one scan's results; returns its worklist rows."""
    rows, volume = [], placement.native
    for model_raw, raw in zip(results, placement.to_native(results), strict=True):
        result = normalize_result(raw, job.normalize, job.calibrations.get(raw.scorer))
        if job.space == "model" and model_raw.map is not None:
            in_model = normalize_result(model_raw, job.normalize, job.calibrations.get(raw.scorer))
            write_model_space_map(placement, in_model.map, files[raw.scorer].map,
                                  overwrite=overwrite)  # fmt: skip
        write_score(volume, result, files[result.scorer], overwrite=overwrite)
        log(f"{scan}: {result.scorer} volume score {result.volume_score:.6g}")
        if job.thresholds:
            row = write_findings(
                volume, raw, result.volume_score, files[raw.scorer], job.checkpoint,
                job.thresholds[raw.scorer], calibration=job.calibrations.get(raw.scorer),
                min_ml=job.min_ml, atlas=job.atlas, overwrite=overwrite,
            )  # fmt: skip
            rows.append(row)
            log(f"{scan}: {raw.scorer} {len(row.regions.findings)} finding(s) at "
                f"threshold {row.regions.threshold:.4g}")  # fmt: skip
    return rows


def _gathered(rows: dict[int, list], env: Dist) -> dict[int, list]:
    """Every rank's worklist rows, on every rank (one process: as they are)."""
    if env.world == 1:
        return rows
    parts: list = [None] * env.world
    dist.all_gather_object(parts, rows)
    return {i: r for part in parts for i, r in part.items()}


def score_scans(
    job: ScoringJob,
    planned: Mapping[str, Mapping[str, ScoreFiles]],
    out: str | os.PathLike,
    *,
    workers: int = 0,
    resume: bool = False,
    worklist: bool = False,
    env: Dist | None = None,
    progress: Callable[[str], AbstractContextManager[Progress | None]] | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> list[WorklistRow]:
    """Score this rank's share of ``planned`` (scan -> scorer -> files) and write them.

    Parameters
    ----------
    workers
        Processes reading the next scans while the model scores (0: read in turn).
    resume
        Skip scans whose completion record matches this run and its outputs; score
        the others again, replacing what they had written.
    worklist
        Write :data:`~anomaly_maps.outputs.WORKLIST` in ``out`` (rank 0, after
        gathering every rank's rows).
    env
        The torchrun layout (default: from the environment); under several ranks the
        caller has loaded the checkpoint on :func:`rank_device`.
    progress
        ``progress(scan)`` gives a context manager yielding the scan's slice callback.
    log
        Receives one line per scan and scorer.

    Returns
    -------
    list of WorklistRow
        Every scan's rows (all ranks'), in planned order.
    """
    env = dist_from_env() if env is None else env
    out, scans = Path(out), list(planned)
    fingerprints = _Fingerprints(job)
    device = next(job.checkpoint.model.parameters()).device
    _share_cores(env, device)
    records = records_folder(out)
    rows: dict[int, list] = {}
    mine = [i for i in range(len(scans)) if i % env.world == env.rank]
    todo = []
    for i in mine:
        done = fingerprints.completed(records, scans[i], planned[scans[i]]) if resume else None
        if done is None:
            todo.append(i)
        else:
            rows[i] = done
            log(f"{scans[i]}: complete, skipped (--resume)")
    overwrite = job.overwrite or resume
    with process_group(env, device), ThreadPoolExecutor(1) as writer:
        pending: tuple[int, Future] | None = None
        volumes = _read_ahead([scans[i] for i in todo], job, workers, device)
        for i, (placement, prepared) in zip(todo, volumes, strict=True):
            scan, files = scans[i], planned[scans[i]]
            record_path(records, files).unlink(missing_ok=True)
            with (progress or (lambda _: nullcontext()))(scan) as callback:
                results = score_volume(
                    placement.scored, job.checkpoint, job.scorers, batch_size=job.batch_size,
                    seed=job.seed, progress=callback, volume_score=job.volume_score,
                    precision=job.precision, prepared=prepared,
                )  # fmt: skip
            if pending is not None:
                rows[pending[0]] = pending[1].result()
            pending = (i, writer.submit(_finish, job, fingerprints, records, scan, placement,
                                        results, files, overwrite, log))  # fmt: skip
        if pending is not None:
            rows[pending[0]] = pending[1].result()
        every = _gathered(rows, env)
    ordered = [r for i in sorted(every) for r in every[i]]
    if worklist and env.main:
        write_text(out / WORKLIST, worklist_csv(ordered), overwrite=overwrite)
    return ordered


def _finish(job: ScoringJob, fingerprints: _Fingerprints, records: Path, scan: str,
            placement: Placement, results: list, files: Mapping[str, ScoreFiles],
            overwrite: bool, log: Callable[[str], None]) -> list[WorklistRow]:  # fmt: skip
    """Write a scan's outputs, then its completion record, last."""
    rows = _write_scan(job, scan, placement, results, files, overwrite, log)
    record = fingerprints.record(scan, files, rows)
    write_text(record_path(records, files), json.dumps(record, default=_tagged), overwrite=True)
    return rows
