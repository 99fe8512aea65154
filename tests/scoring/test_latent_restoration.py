"""Latent space restoration and latent NLL (seed 002) against naive code.

Batched vs. the per-slice, per-restoration reference: test_references.
"""

from __future__ import annotations

import pytest
import torch

from anomaly_maps.scoring import latent_restoration as lr

KIND = "vqvae+prior"


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _naive_min_mean(maps: torch.Tensor, size: int, reduce) -> torch.Tensor:
    lo, hi = (size - 1) // 2, size // 2
    out = torch.empty_like(maps)
    height, width = maps.shape[-2:]
    for b in range(maps.shape[0]):
        for i in range(height):
            for j in range(width):
                window = maps[b, max(0, i - lo) : i + hi + 1, max(0, j - lo) : j + hi + 1]
                out[b, i, j] = reduce(window)
    return out


@pytest.mark.parametrize("size", [1, 2, 3, 4, 7])
def test_filters_equal_naive(size):
    maps = torch.rand((2, 9, 11), generator=_gen(size))
    torch.testing.assert_close(lr.min_filter(maps, size), _naive_min_mean(maps, size, torch.min))
    torch.testing.assert_close(lr.mean_filter(maps, size), _naive_min_mean(maps, size, torch.mean))


def _nll(models, x, position):
    with torch.no_grad():
        return models["prior"].nll(models["vqvae"].codes(x), position)


class _Recorder:
    """Wraps ``prior.resample`` and records its calls."""

    def __init__(self, resample):
        self.resample, self.calls = resample, []

    def __call__(self, codes, mask, position=None, generator=None, temperature=1.0):
        out = self.resample(codes, mask, position, generator, temperature)
        self.calls.append((codes.clone(), mask.clone(), position, out.clone()))
        return out


def test_only_codes_above_lambda_p_are_redrawn(tiny_models, tiny_batch, monkeypatch):
    models = tiny_models[KIND]
    x, position = tiny_batch
    prior, s = models["prior"], 6
    lambda_p = _nll(models, x, position).median().item()
    recorder = _Recorder(prior.resample)
    monkeypatch.setattr(prior, "resample", recorder)
    with torch.no_grad():
        codes, mask, restored = lr.restore_codes(
            models["vqvae"], prior, x, position, _gen(1), lambda_p, s
        )
    assert len(recorder.calls) == 1  # one stacked call
    stacked, stacked_mask, stacked_position, out = recorder.calls[0]
    assert stacked.shape == (3 * s, *codes.shape[1:])
    # sample-major: row j * B + b is restoration j of slice b
    torch.testing.assert_close(stacked, codes.repeat(s, 1, 1))
    torch.testing.assert_close(stacked_mask, mask.repeat(s, 1, 1))
    torch.testing.assert_close(stacked_position, position.repeat(s))
    torch.testing.assert_close(out, restored)
    assert bool((mask == (_nll(models, x, position) > lambda_p)).all())
    assert 0 < int(mask.sum()) < mask.numel()
    keep = ~stacked_mask
    assert bool((restored[keep] == stacked[keep]).all())  # NLL <= lambda_p: never changed
    assert bool((restored[stacked_mask] != stacked[stacked_mask]).any())  # some redraws
    # Restorations of one slice differ from each other (independent draws).
    assert bool((restored.view(s, 3, -1) != restored.view(s, 3, -1)[:1]).any())


def test_scorer_is_reproducible_and_shaped(tiny_models, tiny_batch):
    models = tiny_models[KIND]
    x, position = tiny_batch
    lambda_p = _nll(models, x, position).median().item()
    runs = [
        lr.latent_restoration(
            models, x, position=position, generator=_gen(5), lambda_p=lambda_p, n_restorations=4
        )
        for _ in range(2)
    ]
    assert runs[0].pixel.shape == (3, 16, 16)
    assert bool((runs[0].pixel >= 0).all())
    torch.testing.assert_close(runs[0].pixel, runs[1].pixel)
    torch.testing.assert_close(runs[0].slice_score, runs[0].pixel.flatten(1).mean(1))


def test_huge_lambda_p_gives_pooled_reconstruction_error(tiny_models, tiny_batch, monkeypatch):
    models = tiny_models[KIND]
    x, position = tiny_batch

    prior, passes = models["prior"], []
    hidden = prior._hidden
    monkeypatch.setattr(prior, "_hidden", lambda *a, **k: passes.append(1) or hidden(*a, **k))
    result = lr.latent_restoration(
        models, x, position=position, generator=_gen(), lambda_p=1e9, n_restorations=4
    )
    assert len(passes) == 1  # the NLL of the input's codes; nothing to resample
    with torch.no_grad():
        error = (x - models["vqvae"].decode_codes(models["vqvae"].codes(x))).abs()[:, 0]
    expected = _naive_min_mean(_naive_min_mean(error, 3, torch.min), 7, torch.mean)
    torch.testing.assert_close(result.pixel, expected, rtol=1e-4, atol=1e-6)


def test_latent_nll_equals_naive(tiny_models, tiny_batch):
    models = tiny_models[KIND]
    x, position = tiny_batch
    nll = _nll(models, x, position)
    lambda_s = nll.median().item()
    result = lr.latent_nll(models, x, position=position, generator=_gen(), lambda_s=lambda_s)
    for b in range(3):
        values = [v for v in nll[b].flatten().tolist() if v > lambda_s]
        assert result.slice_score[b].item() == pytest.approx(sum(values), rel=1e-5)
    assert result.pixel.shape == (3, 16, 16)
    cell = 16 // nll.shape[-1]
    kept = torch.where(nll > lambda_s, nll, 0.0)
    torch.testing.assert_close(
        result.pixel, kept.repeat_interleave(cell, 1).repeat_interleave(cell, 2)
    )


def test_registered_defaults_run_under_no_grad(tiny_models, tiny_batch):
    from anomaly_maps.scoring import get_scorer

    x, position = tiny_batch
    for name in ["latent_restoration", "latent_nll"]:
        info = get_scorer(name)
        assert info.fits(["vqvae", "prior"]) and not info.fits(["vqvae"])
        with torch.no_grad():
            result = info(
                tiny_models[KIND],
                x,
                position=position,
                generator=_gen(),
                **info.resolve_params(),
            )
        assert result.pixel.shape == (3, 16, 16) and result.slice_score.shape == (3,)
