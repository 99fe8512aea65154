"""bench: runs end to end and reports what it measured (no wall-clock assertions)."""

import numpy as np

from anomaly_maps.bench import _cube_brain, bench_score, bench_score_many, bench_train
from anomaly_maps.cli import main
from anomaly_maps.io import load_volume
from anomaly_maps.samples import sample_path


def test_bench_train_reports_each_model():
    [row] = bench_train(device="cpu", kinds=["vae"], batch_size=2, steps=1, warmup=1)
    assert row.kind == "vae"
    assert row.input_shape == (1, 64, 64)
    assert row.parameters > 1_000_000
    assert row.slices_per_second > 0


def test_bench_score_compares_with_the_reference(capsys, monkeypatch):
    import anomaly_maps.scoring as scoring

    calls, real = [], scoring.score_volume

    def recording(volume, checkpoint, scorers, **kwargs):
        calls.append((volume.shape[0], kwargs.get("batch_size"), kwargs.get("reference")))
        return real(volume, checkpoint, scorers, **kwargs)

    monkeypatch.setattr(scoring, "score_volume", recording)
    [row] = bench_score([("sample_std", {"n_samples": 2})], device="cpu", side=12, batch_size=4)
    assert (row.scorer, row.models) == ("sample_std", "vae")
    assert row.batched_seconds > 0 and row.reference_seconds > 0
    assert row.ratio == row.reference_seconds / row.batched_seconds
    # each implementation warmed up on a small cube, then timed on the same batches
    assert calls == [(8, None, False), (12, 4, False), (8, None, True), (12, 4, True)]
    assert main(["bench", "score", "--scorers", "kl", "--side", "8", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "reference s" in out
    assert out.splitlines()[-1].startswith("kl ")


def test_cube_brain_keeps_world_positions():
    brain = load_volume(sample_path("brain"))
    for side in (64, 256):  # cropped, padded
        cube = _cube_brain(side)
        assert cube.shape == (side,) * 3
        # the voxel at world (0, 0, 0) mm holds the same value in both
        world = np.array([0.0, 0.0, 0.0, 1.0])
        i = np.rint(np.linalg.solve(cube.affine, world)[:3]).astype(int)
        j = np.rint(np.linalg.solve(brain.affine, world)[:3]).astype(int)
        assert cube.data[tuple(i)] == brain.data[tuple(j)] > 0
    assert cube.data[0, 0, 0] == 0


def test_bench_score_many_reports_scans_per_minute(capsys):
    args = ["bench", "score-many", "--scans", "2", "--side", "12", "--workers", "1"]
    assert main([*args, "--device", "cpu", "--rounds", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("scoring 2 scans of 12^3 with rec")
    assert lines[0].endswith("median of 2 alternating runs")
    assert "scans/min" in lines[1] and lines[2].endswith("x)")
    assert lines[3].startswith("1-minute load average")


def test_bench_score_many_times_each_run_rounds_times(monkeypatch):
    import anomaly_maps.batch_scoring as batch_scoring

    runs, real = [], batch_scoring.score_scans

    def overlapped(job, planned, out, **kwargs):
        runs.append(out.name)
        return real(job, planned, out, **kwargs)

    monkeypatch.setattr(batch_scoring, "score_scans", overlapped)
    row = bench_score_many(("rec", {}), device="cpu", n_scans=1, side=8, workers=0, rounds=3)
    assert runs == ["overlapped0", "overlapped1", "overlapped2"]
    assert row.rounds == 3 and row.sequential_seconds > 0 and row.overlapped_seconds > 0


def test_bench_score_many_runs_both_loops_at_the_asked_precision(monkeypatch):
    import anomaly_maps.batch_scoring as batch_scoring
    import anomaly_maps.scoring as scoring

    asked, real = [], scoring.score_volume

    def spy(*args, precision="float32", **kwargs):
        asked.append(precision)
        return real(*args, precision=precision, **kwargs)

    monkeypatch.setattr(scoring, "score_volume", spy)
    monkeypatch.setattr(batch_scoring, "score_volume", spy)
    bench_score_many(("rec", {}), device="cpu", n_scans=1, side=8, workers=0, rounds=1,
                     precision="bf16")  # fmt: skip
    assert asked[1:] == ["bf16", "bf16"]  # after the float32 warm-up: both loops


def test_bench_head_extracts_and_registers_a_head(capsys, monkeypatch):
    from head_scans import small_brain

    import anomaly_maps.bench as bench

    row = bench.bench_head(small_brain())
    assert row.dice >= 0.93 and row.extraction_seconds > 0 and row.registration_seconds > 0
    assert row.total_seconds == row.extraction_seconds + row.registration_seconds
    assert row.zooms == (2.0, 2.0, 2.0)
    monkeypatch.setattr(bench, "bench_head", lambda: row)  # the CLI's 1 mm head takes ~20 s
    assert main(["bench", "head"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(
        f"a synthetic head of {'x'.join(map(str, row.shape))} voxels of 2x2x2 mm"
    )
    assert out[1].startswith("brain extraction:") and f"Dice {row.dice:.3f}" in out[1]
    assert out[2].startswith("registration:") and out[3].startswith("together:")
