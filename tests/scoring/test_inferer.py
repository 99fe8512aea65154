"""The slice inferer: batching, OOM back-off, per-slice generators, progress, cancel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anomaly_maps.errors import Cancelled, ParameterError
from anomaly_maps.models import SliceGenerators
from anomaly_maps.scoring import ScoreResult, SliceInferer, Slices
from anomaly_maps.scoring.inferer import iter_batches_adaptive

N = 7


@pytest.fixture
def slices() -> Slices:
    g = torch.Generator().manual_seed(0)
    masks = torch.ones(N, 4, 4, dtype=torch.bool)
    masks[:, 0] = False
    return Slices(
        images=torch.rand(N, 1, 4, 4, generator=g),
        positions=torch.linspace(0, 1, N),
        masks=masks,
        indices=np.arange(10, 10 + N),
    )


def noisy(models, x, *, position, generator, scale: float) -> ScoreResult:
    """A stand-in scorer: the slice plus noise from each slice's generator."""
    noise = generator.normal((2, *x.shape), batch_dim=1)  # like SmoothGrad: (S, B, ...)
    return ScoreResult.from_map((x + scale * noise.mean(0))[:, 0])


def test_results_do_not_depend_on_the_batch_size(slices):
    runs = [SliceInferer(torch.device("cpu"), batch_size=b, seed=3) for b in (1, 3, N)]
    results = [run({}, slices, [(noisy, {"scale": 1.0})])[0] for run in runs]
    for other in results[1:]:
        torch.testing.assert_close(other.maps, results[0].maps, rtol=0, atol=0)
        np.testing.assert_array_equal(other.scores, results[0].scores)
    assert bool((results[0].maps[:, 0] == 0).all())  # masked
    again = SliceInferer(torch.device("cpu"), seed=4)({}, slices, [(noisy, {"scale": 1.0})])
    assert not torch.allclose(again[0].maps, results[0].maps)


def test_each_scorer_draws_from_its_own_generators(slices):
    inferer = SliceInferer(torch.device("cpu"), batch_size=2, seed=0)
    [alone] = inferer({}, slices, [(noisy, {"scale": 1.0})])
    _, second = inferer({}, slices, [(noisy, {"scale": 2.0}), (noisy, {"scale": 1.0})])
    torch.testing.assert_close(second.maps, alone.maps, rtol=0, atol=0)


def test_a_slice_is_seeded_by_its_index_in_the_stack(slices):
    """Slice 12 of the stack alone draws what it draws among the others."""
    inferer = SliceInferer(torch.device("cpu"), seed=1)
    [whole] = inferer({}, slices, [(noisy, {"scale": 1.0})])
    one = Slices(slices.images[2:3], slices.positions[2:3], slices.masks[2:3], np.array([12]))
    [single] = inferer({}, one, [(noisy, {"scale": 1.0})])
    torch.testing.assert_close(single.maps[0], whole.maps[2], rtol=0, atol=0)


def test_generators_are_seeded_per_slice_on_the_device(slices):
    seen = []

    def record(models, x, *, position, generator):
        seen.append((len(generator), position.clone()))
        assert isinstance(generator, SliceGenerators)
        return ScoreResult(None, position * 0)

    [result] = SliceInferer(torch.device("cpu"), batch_size=3)({}, slices, [(record, {})])
    assert [n for n, _ in seen] == [3, 3, 1]
    torch.testing.assert_close(torch.cat([p for _, p in seen]), slices.positions)
    assert result.maps is None and result.scores.shape == (N,)


def test_progress_and_cancel(slices):
    reported = []
    inferer = SliceInferer(
        torch.device("cpu"), batch_size=3, progress=lambda *a: reported.append(a)
    )
    inferer({}, slices, [(noisy, {"scale": 0.0})])
    assert reported == [(3, N), (6, N), (7, N)]
    stopping = SliceInferer(torch.device("cpu"), batch_size=3, should_stop=lambda: True)
    with pytest.raises(Cancelled, match=f"stopped after 3 of {N} slices"):
        stopping({}, slices, [(noisy, {"scale": 0.0})])


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, True])
def test_batch_size_must_be_positive(batch_size):
    """Before the check, batch size 0 never finished (the loop did not advance)."""
    with pytest.raises(ParameterError, match=f"batch_size={batch_size!r}: expected an int >= 1"):
        SliceInferer(torch.device("cpu"), batch_size=batch_size)


@pytest.mark.parametrize("seed", [-1, 1.5])
def test_seed_must_be_a_non_negative_int(seed):
    with pytest.raises(ParameterError, match=f"seed={seed!r}: expected an int >= 0"):
        SliceInferer(torch.device("cpu"), seed=seed)


def test_out_of_memory_halves_the_batch():
    seen = []

    def run(batch):
        seen.append(batch.stop - batch.start)
        if batch.stop - batch.start > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return batch.start

    done = list(iter_batches_adaptive(10, 16, run, torch.device("cuda")))
    assert seen[:3] == [10, 5, 2]
    assert [b.start for b, _ in done] == [0, 2, 4, 6, 8]
    with pytest.raises(RuntimeError, match="boom"):  # other errors are not swallowed
        list(iter_batches_adaptive(4, 4, lambda b: (_ for _ in ()).throw(RuntimeError("boom")),
                                   torch.device("cuda")))  # fmt: skip
    with pytest.raises(torch.cuda.OutOfMemoryError):  # on the CPU, OOM is not retried
        list(iter_batches_adaptive(10, 16, run, torch.device("cpu")))


def test_volume_preview_calibration_and_bench_all_score_through_it(
    monkeypatch, tiny_checkpoint, tiny_volume
):
    from anomaly_maps.bench import bench_score
    from anomaly_maps.checkpoint import load_checkpoint
    from anomaly_maps.napari._slicing import score_model_slice
    from anomaly_maps.preprocessing import to_slices
    from anomaly_maps.scoring import score_volume
    from anomaly_maps.scoring.calibration import calibrate

    calls, real = [], SliceInferer.__call__

    def counting(self, models, slices, scorers):
        calls.append(len(slices))
        return real(self, models, slices, scorers)

    monkeypatch.setattr(SliceInferer, "__call__", counting)
    checkpoint = load_checkpoint(tiny_checkpoint)
    [volume] = score_volume(tiny_volume, checkpoint, [("rec", {})])
    assert calls == [volume.scored.sum()]
    stack = to_slices(tiny_volume, checkpoint.preprocessing)
    score_model_slice(stack, checkpoint, [("rec", {})], 5, device="cpu")
    assert calls[-1] == 1
    calibrate(checkpoint, "rec", {}, [tiny_volume])
    bench_score([("kl", {})], device="cpu", side=8, batch_size=4)
    assert len(calls) == 2 + 1 + 4  # bench: warm-up and timed run, batched and reference
