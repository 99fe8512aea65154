"""Many scans: sharded over torchrun ranks, resumable, read ahead and written behind."""

import os
import socket

import numpy as np
import pytest
import torch.multiprocessing as mp

from anomaly_maps import batch_scoring
from anomaly_maps.batch_scoring import records_folder
from anomaly_maps.cli import main
from anomaly_maps.io import save_volume
from anomaly_maps.scoring import score_volume

N_SCANS = 4


class Stopped(Exception):
    """A run stopped (or killed) at a chosen point."""


@pytest.fixture(scope="module")
def scans(tmp_path_factory, tiny_volume):
    """Four different scans (the tiny head with its own noise each)."""
    folder = tmp_path_factory.mktemp("scans")
    paths = []
    for i in range(N_SCANS):
        data = tiny_volume.data
        noise = np.random.default_rng(i).normal(0, 0.1 * data.max(), data.shape) * (data > 0)
        scan = tiny_volume.with_data((data + noise).astype(np.float32))
        paths.append(str(save_volume(scan, folder / f"scan{i}.nii.gz")))
    return paths


def _score(scans, checkpoint, out, *extra):
    return main(["score", *scans, "--checkpoint", str(checkpoint), "--out", str(out),
                 "--device", "cpu", "--scorer", "rec", "--findings", "--threshold", "0",
                 *extra])  # fmt: skip


def _files(out):
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


@pytest.fixture(scope="module")
def reference(scans, tiny_checkpoint, tmp_path_factory):
    """Today's loop: one process, reading each scan in turn."""
    out = tmp_path_factory.mktemp("reference") / "out"
    assert _score(scans, tiny_checkpoint, out, "--workers", "0") == 0
    return _files(out)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, world: int, port: int, scans, checkpoint: str, out: str) -> None:
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    assert _score(scans, checkpoint, out, "--workers", "1") == 0


def test_two_gloo_ranks_write_what_one_process_writes(scans, tiny_checkpoint, reference, tmp_path):
    out = tmp_path / "out"
    mp.spawn(_rank, args=(2, _free_port(), scans, str(tiny_checkpoint), str(out)), nprocs=2)
    assert "worklist.csv" in reference
    assert _files(out) == reference


def _count_calls(monkeypatch, fail_at: int | None = None) -> list:
    calls = []

    def counted(volume, *args, **kwargs):
        if len(calls) == fail_at:
            raise Stopped("stopped")
        calls.append(volume.path)
        return score_volume(volume, *args, **kwargs)

    monkeypatch.setattr(batch_scoring, "score_volume", counted)
    return calls


def test_resume_after_a_stop_scores_only_the_rest(
    scans, tiny_checkpoint, reference, tmp_path, monkeypatch
):
    out = tmp_path / "out"
    _count_calls(monkeypatch, fail_at=2)
    with pytest.raises(Stopped):
        _score(scans, tiny_checkpoint, out)
    calls = _count_calls(monkeypatch)
    assert _score(scans, tiny_checkpoint, out, "--resume") == 0
    assert len(calls) == N_SCANS - 2
    assert _files(out) == reference


def test_resume_redoes_a_corrupted_output_and_a_stale_run(
    scans, tiny_checkpoint, reference, tmp_path, monkeypatch
):
    out = tmp_path / "out"
    assert _score(scans, tiny_checkpoint, out) == 0
    (out / "scan1_rec.nii.gz").write_bytes(reference["scan1_rec.nii.gz"][:100])  # truncated
    calls = _count_calls(monkeypatch)
    assert _score(scans, tiny_checkpoint, out, "--resume") == 0
    assert [os.path.basename(p) for p in calls] == ["scan1.nii.gz"]
    assert _files(out) == reference
    calls.clear()
    assert _score(scans, tiny_checkpoint, out, "--resume", "--seed", "1") == 0
    assert len(calls) == N_SCANS  # other settings: nothing is complete


def test_resume_of_a_complete_run_scores_nothing(scans, tiny_checkpoint, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert _score(scans, tiny_checkpoint, out) == 0
    calls = _count_calls(monkeypatch)
    assert _score(scans, tiny_checkpoint, out, "--resume") == 0
    assert calls == []
    assert len(list(records_folder(out).iterdir())) == N_SCANS


def test_a_run_killed_while_writing_leaves_no_partial_file(
    scans, tiny_checkpoint, tmp_path, monkeypatch
):
    """The map is half written when the run dies: nothing appears under its final name."""
    import nibabel as nib

    def dies_half_way(img, path):
        with open(path, "wb") as f:
            f.write(b"\x1f\x8b partial")
        raise Stopped("killed")

    monkeypatch.setattr(nib, "save", dies_half_way)
    out = tmp_path / "out"
    with pytest.raises(Stopped):
        _score(scans[:1], tiny_checkpoint, out)
    assert [p for p in out.iterdir() if not p.name.endswith(".txt")] == []
    assert not any(records_folder(out).glob("*.json"))


@pytest.mark.parametrize("value", ["-1", "65", "two"])
def test_workers_out_of_range_is_refused(scans, tiny_checkpoint, tmp_path, value, capsys):
    with pytest.raises(SystemExit) as exit_:
        _score(scans, tiny_checkpoint, tmp_path / "out", "--workers", value)
    assert exit_.value.code == 2
    assert "--workers" in capsys.readouterr().err


def test_overlapped_scoring_writes_what_the_plain_loop_writes(scans, tiny_checkpoint, tmp_path):
    """Workers read and preprocess, the writer thread writes: the bytes of the loop that
    reads, scores (preprocessing inside score_volume) and writes each scan in turn."""
    from anomaly_maps.checkpoint import load_checkpoint
    from anomaly_maps.io import load_volume
    from anomaly_maps.outputs import score_outputs, write_score

    checkpoint = load_checkpoint(tiny_checkpoint, device="cpu")
    scorers = [("rec", {}), ("elbo_grad", {"n_smooth": 2})]
    names = [name for name, _ in scorers]
    loop = tmp_path / "loop"
    for scan, files in score_outputs(loop, scans, names).items():
        volume = load_volume(scan)
        for result in score_volume(volume, checkpoint, scorers, batch_size=3):
            write_score(volume, result, files[result.scorer])
    overlapped = tmp_path / "overlapped"
    job = batch_scoring.ScoringJob(checkpoint, tiny_checkpoint, scorers, batch_size=3)
    batch_scoring.score_scans(job, score_outputs(overlapped, scans, names), overlapped,
                              workers=2)  # fmt: skip
    assert len(_files(loop)) == 3 * len(names) * N_SCANS
    assert _files(overlapped) == _files(loop)


@pytest.mark.parametrize(("device", "pinned"), [("cpu", False), ("cuda:1", True)])
def test_readers_pin_memory_only_for_cuda(scans, tiny_checkpoint, monkeypatch, device, pinned):
    import torch

    from anomaly_maps.checkpoint import load_checkpoint

    requested = []

    def loader(dataset, **kwargs):
        requested.append(kwargs["pin_memory"])
        return [dataset[0]]

    monkeypatch.setattr(batch_scoring, "DataLoader", loader)
    job = batch_scoring.ScoringJob(load_checkpoint(tiny_checkpoint), tiny_checkpoint, [])
    [(placed, prepared)] = batch_scoring._read_ahead(scans[:1], job, 1, torch.device(device))
    assert requested == [pinned]
    assert prepared.stack.geometry.shape == placed.scored.shape  # preprocessed by the reader


@pytest.mark.parametrize(("n_scans", "readers"), [(1, 0), (2, 1), (3, 2), (5, 2)])
def test_no_more_reader_processes_than_scans_after_the_first(
    scans, tiny_checkpoint, monkeypatch, n_scans, readers
):
    """A reader process costs its start-up and only hides reading behind an earlier
    scan's scoring: one scan is read in this process."""
    import torch

    from anomaly_maps.checkpoint import load_checkpoint

    started = []
    monkeypatch.setattr(batch_scoring, "DataLoader",
                        lambda dataset, **kw: started.append(kw["num_workers"]) or [])  # fmt: skip
    job = batch_scoring.ScoringJob(load_checkpoint(tiny_checkpoint), tiny_checkpoint, [])
    list(batch_scoring._read_ahead([scans[0]] * n_scans, job, 2, torch.device("cpu")))
    assert started == [readers]


def test_precision_is_in_the_completion_record(scans, tiny_checkpoint, tmp_path):
    import json

    out = tmp_path / "out"
    assert _score(scans[:1], tiny_checkpoint, out, "--precision", "bf16") == 0
    [record] = records_folder(out).glob("*.json")
    assert json.loads(record.read_text())["settings"]["precision"] == "bf16"


def test_bf16_where_it_cannot_run_is_refused_before_any_work(
    scans, tiny_checkpoint, tmp_path, monkeypatch, capsys
):
    from anomaly_maps.scoring import inferer

    monkeypatch.setattr(inferer, "bf16_supported", lambda device: False)
    calls = _count_calls(monkeypatch)
    assert _score(scans, tiny_checkpoint, tmp_path / "out", "--precision", "bf16") == 2
    assert calls == []
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["anomaly-maps score: error: precision 'bf16': cpu does not run bfloat16 "
                   "autocast; use fp32 or auto"]  # fmt: skip
