"""Restoration models joined into one ensemble: its map, its config, how it is built."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch

from anomaly_maps.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from anomaly_maps.cli import main
from anomaly_maps.ensemble import join_restorations
from anomaly_maps.errors import AnomalyMapsError, ParameterError
from anomaly_maps.models import (
    RestorationConfig,
    RestorationEnsemble,
    RestorationEnsembleConfig,
    VAEConfig,
    build_model,
)
from anomaly_maps.preprocessing import PreprocessingSpec, resize_planes
from anomaly_maps.records import CheckpointRecords
from anomaly_maps.scoring import get_scorer, score_volume
from anomaly_maps.scoring.calibration import LEVELS, Calibration

BIG = RestorationConfig(size=16, widths=(8, 16))
SMALL = RestorationConfig(size=8, widths=(8, 16))


def _slices(n: int = 3) -> torch.Tensor:
    return torch.rand(n, 1, 16, 16, generator=torch.Generator().manual_seed(0))


def _perturbed(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    with torch.no_grad():  # off the initialisation, so the maps differ between members
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def test_map_is_the_largest_member_map_in_healthy_p99_units():
    model = _perturbed(
        RestorationEnsemble(RestorationEnsembleConfig(members=(BIG, SMALL), scales=(0.4, 0.2))), 0
    )
    x = _slices()
    big, small = model.members
    with torch.no_grad():
        own = big.corruption_map(x) / 0.4
        # the small member reads the slice as a scan is resized to 8x8, its map brought back
        coarse = small.corruption_map(resize_planes(x[:, 0], (8, 8))[:, None])
        back = torch.nn.functional.interpolate(coarse, size=(16, 16), mode="bilinear") / 0.2
        expected = torch.maximum(own, back)
        result = model.corruption_map(x)
    torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-6)
    assert bool((result == own).any()) and bool((result == back).any())  # both contribute


def test_a_member_twice_gives_its_own_map_over_its_scale():
    member = _perturbed(build_model(BIG), 1)
    twice = RestorationEnsemble(RestorationEnsembleConfig(members=(BIG, BIG), scales=(0.5, 0.5)))
    for net in twice.members:
        net.load_state_dict(member.state_dict())
    x = _slices()
    with torch.no_grad():
        torch.testing.assert_close(twice.corruption_map(x), member.corruption_map(x) / 0.5)


def test_scan_units_divide_each_member_by_its_own_90th_percentile():
    """On a batch of slices alone (the score dock's preview) the batch stands for the scan:
    each member's map over its 90th percentile on the batch's foreground."""
    model = _perturbed(
        RestorationEnsemble(
            RestorationEnsembleConfig(members=(BIG, BIG), scales=(0.4, 0.2), units="scan")
        ),
        2,
    )
    x = _slices()
    x[:, :, :4] = 0  # background rows: outside the foreground
    with torch.no_grad():
        maps = [m.corruption_map(x) for m in model.members]
        inside = x > 0
        expected = torch.maximum(*(m / float(np.percentile(m[inside].numpy(), 90)) for m in maps))
        torch.testing.assert_close(model.corruption_map(x), expected, rtol=1e-3, atol=1e-4)


def test_config_round_trips_and_refuses_bad_members():
    config = RestorationEnsembleConfig(members=(BIG, SMALL), scales=(0.4, 0.2))
    assert RestorationEnsembleConfig.from_dict(config.to_dict()) == config
    assert config.units == "template"  # files written before units existed read as before
    old_file = {k: v for k, v in config.to_dict().items() if k != "units"}
    assert RestorationEnsembleConfig.from_dict(old_file) == config
    assert (config.size, config.in_channels) == (16, 1)
    bad = [
        ({"members": (BIG,), "scales": (0.4,)}, "members"),
        ({"members": (SMALL, BIG), "scales": (0.4, 0.2)}, "largest size first"),
        ({"members": (BIG, SMALL), "scales": (0.4,)}, "scales"),
        ({"members": (BIG, SMALL), "scales": (0.4, 0.0)}, "scales"),
        ({"members": (BIG, SMALL), "scales": (0.4, 0.2), "units": "site"}, "units"),
    ]
    for fields, message in bad:
        with pytest.raises(ParameterError, match=message):
            RestorationEnsembleConfig(**fields)
    with pytest.raises(ParameterError, match="unknown"):
        RestorationEnsembleConfig.from_dict({**config.to_dict(), "weights": [1, 1]})


def test_only_fpi_reads_an_ensemble():
    assert get_scorer("fpi").fits(("restoration_ensemble",))
    assert not get_scorer("disyre").fits(("restoration_ensemble",))


def _calibration(p99: float) -> Calibration:
    quantiles = tuple(p99 * level / 0.99 for level in LEVELS)  # rising; p99 at 0.99
    return Calibration(
        scorer="fpi",
        params={},
        levels=LEVELS,
        pixel_quantiles=quantiles,
        slice_quantiles=quantiles,
        n_volumes=1,
    )


def _member(
    folder: Path, config, seed: int, p99: float | None, normalization="percentile"
) -> Path:
    path = folder / f"{config.kind}{config.size}_{seed}.safetensors"
    calibrations = () if p99 is None else (_calibration(p99),)
    save_checkpoint(
        path,
        {config.kind: _perturbed(build_model(config), seed)},
        preprocessing=PreprocessingSpec(size=config.size, normalization=normalization),
        records=CheckpointRecords(calibrations=calibrations),
    )
    return path


def test_joined_checkpoint_orders_members_and_scores(tmp_path, tiny_volume):
    small, big = _member(tmp_path, SMALL, 2, 0.3), _member(tmp_path, BIG, 3, 0.6)
    joined = join_restorations([load_checkpoint(small), load_checkpoint(big)])
    assert joined.kinds == ("restoration_ensemble",)
    assert joined.model.config.scales == (0.6, 0.3)  # the largest size first
    assert joined.preprocessing.size == 16
    assert [e["file"] for e in joined.records.other_metrics["ensemble"]] == [big.name, small.name]
    out = save_checkpoint(
        tmp_path / "ensemble.safetensors",
        joined.models,
        preprocessing=joined.preprocessing,
        records=joined.records,
    )
    loaded = load_checkpoint(out)
    card = dict(loaded.card_rows())
    assert card["models"] == "restoration_ensemble (16x16 dag + 8x8 dag; scan units)"
    assert card["members"] == (
        f"{big.name} (healthy fpi p99 0.6), {small.name} (healthy fpi p99 0.3)"
    )
    x = _slices()
    with torch.no_grad():
        torch.testing.assert_close(loaded.model.corruption_map(x), joined.model.corruption_map(x))
    [result] = score_volume(tiny_volume, loaded, [("fpi", {})], batch_size=4)
    assert result.map.shape == tiny_volume.shape and float(result.map.max()) > 0


@pytest.mark.parametrize("units", ["template", "scan"])
def test_scan_score_is_the_largest_of_the_members_scored_alone(tmp_path, tiny_volume, units):
    """Each member scores the whole scan as its own checkpoint would (here with three
    views and through-plane smoothing); the ensemble keeps the largest map, each member's
    divided by its healthy p99 (template) or its own 90th percentile on the scan."""
    paths = _member(tmp_path, BIG, 9, 0.6), _member(tmp_path, SMALL, 10, 0.3)
    alone = [load_checkpoint(p) for p in paths]
    joined = join_restorations(alone, units)
    scorers = [("fpi", {"views": "orthogonal", "through": 1.0})]
    seen = []
    [result] = score_volume(
        tiny_volume, joined, scorers, batch_size=4, volume_score="map_p99",
        progress=lambda done, total: seen.append((done, total)),
    )  # fmt: skip
    members = [score_volume(tiny_volume, c, scorers, batch_size=4)[0] for c in alone]
    if units == "template":
        a, b = 0.6, 0.3
    else:  # the naive reference: each map's 90th percentile over the scan's foreground
        a, b = (float(np.percentile(m.map[m.foreground], 90)) for m in members)
        assert a != pytest.approx(0.6) and b != pytest.approx(0.3)
    expected = np.maximum(members[0].map / a, members[1].map / b)
    np.testing.assert_allclose(result.map, expected, rtol=1e-6)
    assert (result.map == members[0].map / a).any() and (result.map == members[1].map / b).any()
    np.testing.assert_allclose(
        result.slice_scores,
        np.maximum(members[0].slice_scores / a, members[1].slice_scores / b),
        rtol=1e-6,
    )
    assert result.volume_score == pytest.approx(np.percentile(expected[result.foreground], 99))
    assert seen[-1][0] == seen[-1][1] and all(a[0] <= b[0] for a, b in pairwise(seen))


def test_join_refuses_what_does_not_fit(tmp_path):
    good = load_checkpoint(_member(tmp_path, BIG, 4, 0.5))
    cases = [
        ([good], "at least two"),
        ([good, load_checkpoint(_member(tmp_path, SMALL, 5, None))], "no fpi calibration"),
        (
            [good, load_checkpoint(_member(tmp_path, SMALL, 6, 0.3, normalization="zscore"))],
            "share axis and normalisation",
        ),
    ]
    vae = VAEConfig(size=16, widths=(8, 16), latent_dim=4)
    vae_checkpoint = Checkpoint(
        path=tmp_path / "vae.safetensors",
        models={"vae": build_model(vae)},
        preprocessing=PreprocessingSpec(size=16),
    )
    cases.append(([good, vae_checkpoint], "expected one restoration model"))
    for members, message in cases:
        with pytest.raises(AnomalyMapsError, match=message):
            join_restorations(members)


def test_cli_writes_the_ensemble_and_keeps_an_existing_file(tmp_path, capsys):
    a, b = _member(tmp_path, BIG, 7, 0.5), _member(tmp_path, SMALL, 8, 0.25)
    out = tmp_path / "joined.safetensors"
    assert main(["ensemble", str(a), str(b), "--out", str(out)]) == 0
    config = load_checkpoint(out).model.config
    assert (config.scales, config.units) == ((0.5, 0.25), "scan")
    assert "unit its 90th percentile over each scan (its healthy fpi p99 0.5 unused)" in (
        capsys.readouterr().out
    )
    before = out.read_bytes()
    assert main(["ensemble", str(a), str(b), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == before


def test_cli_units_template_and_a_bad_choice(tmp_path, capsys):
    a, b = _member(tmp_path, BIG, 11, 0.5), _member(tmp_path, SMALL, 12, 0.25)
    out = tmp_path / "joined.safetensors"
    assert main(["ensemble", str(a), str(b), "--units", "template", "--out", str(out)]) == 0
    assert load_checkpoint(out).model.config.units == "template"
    assert "unit its healthy fpi p99 0.25" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["ensemble", str(a), str(b), "--units", "site", "--out", str(tmp_path / "x")])
    assert "invalid choice: 'site'" in capsys.readouterr().err
