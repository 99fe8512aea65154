"""2D images (seed 004): PNG/JPEG/TIFF as one-slice volumes, RGB as channels, TIFF maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from anomaly_maps.cli import main
from anomaly_maps.errors import AnomalyMapsError, VolumeError
from anomaly_maps.io import Volume, load_volume, save_volume
from anomaly_maps.preprocessing import PreprocessingSpec, check_scan_fits, to_slices
from anomaly_maps.training import load_slices


def disk(rows: int = 20, cols: int = 30, seed: int = 0) -> np.ndarray:
    """``(rows, cols)`` uint8: a bright off-centre disk on a mid-grey field, some noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:rows, :cols]
    inside = (yy - rows // 3) ** 2 + (xx - cols // 3) ** 2 <= (rows // 4) ** 2
    return np.clip(100 + 120 * inside + rng.normal(0, 5, (rows, cols)), 0, 255).astype(np.uint8)


def rgb_pixels(seed: int) -> np.ndarray:
    """``(20, 30, 3)`` uint8: the disk, its inverse and other noise as R, G, B."""
    return np.stack([disk(seed=seed), 255 - disk(seed=seed), disk(seed=seed + 5) // 2], axis=-1)


def rgb_lesions(folder, n: int = 3) -> list:
    """``n`` RGB PNGs in ``folder``."""
    paths = [folder / f"lesion{i}.png" for i in range(n)]
    for i, path in enumerate(paths):
        Image.fromarray(rgb_pixels(i)).save(path)
    return paths


@pytest.fixture
def grey_png(tmp_path):
    path = tmp_path / "grey.png"
    Image.fromarray(disk()).save(path)
    return path


@pytest.fixture
def rgb_png(tmp_path):
    path = tmp_path / "rgb.png"
    Image.fromarray(rgb_pixels(0)).save(path)
    return path


def test_grey_png_is_a_one_slice_volume_upright_in_the_axial_plane(grey_png):
    volume = load_volume(grey_png)
    assert (volume.shape, volume.channels, volume.is_image2d) == ((20, 30, 1), 1, True)
    np.testing.assert_array_equal(volume.data[:, :, 0], disk())
    # columns run to +R, rows to -A, 1 mm apart (no dpi in the file)
    np.testing.assert_allclose(volume.affine @ [2, 5, 0, 1], [5, -2, 0, 1])
    stack = to_slices(volume, PreprocessingSpec(size=30, normalization="zscore"))
    assert stack.images.shape == (1, 30, 30)
    # padded 5 rows above and below to a square, nothing resized: the image itself
    fg = stack.foreground[:, :, 0]
    expected = (disk() - disk()[fg].mean()) / disk()[fg].std()
    np.testing.assert_allclose(stack.images[0, 5:25], expected, rtol=1e-4, atol=1e-4)


def test_rgb_png_has_three_channels_each_normalised(rgb_png):
    volume = load_volume(rgb_png)
    assert (volume.shape, volume.channels) == ((20, 30, 1), 3)
    stack = to_slices(volume, PreprocessingSpec(size=30))
    assert stack.images.shape == (1, 3, 30, 30)
    assert stack.mask.shape == (1, 30, 30)
    for c in range(3):  # percentile normalisation of each channel spans [0, 1]
        image = stack.images[0, c, 5:25]
        assert (image.min(), image.max()) == (pytest.approx(0.0), pytest.approx(1.0))
    # the second channel is the inverse of the first
    inner = stack.images[0, :, 5:25].reshape(3, -1)
    assert np.corrcoef(inner[0], inner[1])[0, 1] < -0.9


def test_tiff_16_bit_and_dpi_spacing(tmp_path):
    path = tmp_path / "scan.tif"
    pixels = disk().astype(np.uint16) * 200
    Image.fromarray(pixels).save(path, dpi=(254, 254))
    volume = load_volume(path)
    np.testing.assert_array_equal(volume.data[:, :, 0], pixels)
    np.testing.assert_allclose(volume.zooms, [0.1, 0.1, 1.0])


def test_map_saves_as_tiff_of_the_image_size(grey_png, tmp_path):
    volume = load_volume(grey_png)
    heat = np.random.default_rng(0).random(volume.shape).astype(np.float32)
    out = save_volume(volume.with_data(heat), tmp_path / "map.tiff")
    with Image.open(out) as img:
        assert (img.size, img.mode) == ((30, 20), "F")  # (width, height)
        np.testing.assert_array_equal(np.asarray(img), heat[:, :, 0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grey.png", "map.tiff"]  # no temp
    with pytest.raises(VolumeError, match="already exists"):
        save_volume(volume.with_data(heat), out)
    with pytest.raises(VolumeError, match=r"shape \(4, 4, 4\) as TIFF: expected one slice"):
        save_volume(Volume(np.zeros((4, 4, 4)), np.eye(4)), tmp_path / "v.tif")


def test_a_model_refuses_the_other_kind_of_input(grey_png, rgb_png):
    grey, rgb = load_volume(grey_png), load_volume(rgb_png)
    images = PreprocessingSpec(size=16, images=True)
    check_scan_fits(grey, images, 1)
    check_scan_fits(rgb, images, 3)
    with pytest.raises(VolumeError, match=r"rgb.png: has 3 channel\(s\), but the model takes 1"):
        check_scan_fits(rgb, images, 1)
    with pytest.raises(VolumeError, match=r"grey.png: is a 2D image, but .* on 3D"):
        check_scan_fits(grey, PreprocessingSpec(size=16), 1)
    head = Volume(np.zeros((8, 8, 8)), np.eye(4))
    with pytest.raises(VolumeError, match=r"is a 3D volume \(8, 8, 8\), but .* on 2D images"):
        check_scan_fits(head, images, 1)


def test_training_slices_of_rgb_images_and_mixed_channels_refused(grey_png, rgb_png):
    data = load_slices([rgb_png, rgb_png], PreprocessingSpec(size=16))
    assert data.images.shape == (2, 3, 16, 16)
    assert load_slices([grey_png], PreprocessingSpec(size=16)).images.shape == (1, 1, 16, 16)
    with pytest.raises(AnomalyMapsError, match=r"rgb.png: has 3 channel\(s\) but .*png has 1"):
        load_slices([grey_png, rgb_png], PreprocessingSpec(size=16))


def test_rgb_vae_trains_on_images(tmp_path, capsys):
    """``train --channels 3`` on RGB PNGs: the model takes 3 channels and its loss is finite."""
    paths = rgb_lesions(tmp_path)
    out = tmp_path / "rgb.safetensors"
    args = ["train", "--model", "vae", "--data", *map(str, paths), "--out", str(out),
            "--size", "16", "--set", "widths=[8,16]", "latent_dim=4", "--channels", "3",
            "--epochs", "1", "--batch-size", "2", "--device", "cpu",
            "--val-fraction", "0"]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    from anomaly_maps.checkpoint import load_checkpoint

    model = load_checkpoint(out).model
    assert model.config.in_channels == 3
    x = load_slices(paths, PreprocessingSpec(size=16)).images
    assert torch.isfinite(model.training_loss(x).total)


def test_grey_image_scores_end_to_end_with_iwae(grey_png, tmp_path, capsys):
    """train, then score a PNG: the map has the image's size, the IWAE score is per image."""
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"healthy{i}.png")
        Image.fromarray(disk(seed=i + 1)).save(paths[-1])
    ckpt = tmp_path / "grey.safetensors"
    train = ["train", "--model", "vae", "--data", *map(str, paths), "--out", str(ckpt),
             "--size", "16", "--set", "widths=[8,16]", "latent_dim=4", "--epochs", "1",
             "--batch-size", "2", "--device", "cpu", "--val-fraction", "0"]  # fmt: skip
    assert main(train) == 0, capsys.readouterr().err
    out = tmp_path / "scores"
    score = ["score", str(grey_png), "--checkpoint", str(ckpt), "--scorer", "iwae",
             "--param", "iwae:n_samples=3", "--scorer", "rec", "--out", str(out),
             "--device", "cpu"]  # fmt: skip
    assert main(score) == 0, capsys.readouterr().err
    heat = np.asarray(Image.open(out / "grey_rec.tiff"))
    assert heat.shape == (20, 30) and heat.dtype == np.float32 and np.isfinite(heat).all()
    assert not (out / "grey_rec.nii.gz").exists()
    value = float((out / "grey_iwae.txt").read_text())
    assert np.isfinite(value)
    rows = (out / "grey_iwae_slices.csv").read_text().splitlines()
    assert len(rows) == 2  # header and the one image
    assert main(["info", str(grey_png), "--checkpoint", str(ckpt)]) == 0
    printed = capsys.readouterr().out
    assert "shape        (20, 30, 1)  dtype uint8" in printed
    assert "kind         2D image" in printed and "head scan" not in printed
    assert "registration  no: a 2D image is scored on its own grid" in printed


def test_a_2d_image_with_a_model_of_3d_scans_is_refused_before_registration(
    grey_png, tmp_path, capsys
):
    """The bundled model is 3D: ``score`` says so in one line (it tried to register the
    image into the template before, and failed with an ITK message) and writes nothing;
    ``info`` says it would be refused."""
    from anomaly_maps.samples import sample_path

    ckpt = str(sample_path("restoration"))
    out = tmp_path / "out"
    score = ["score", str(grey_png), "--checkpoint", ckpt, "--scorer", "fpi", "--out", str(out)]
    assert main(score) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "grey.png: is a 2D image, but the model was trained on 3D" in err[0]
    assert not out.exists() or not any(out.iterdir())
    assert main(["info", str(grey_png), "--checkpoint", ckpt]) == 0
    printed = capsys.readouterr().out
    assert "refused       is a 2D image, but the model was trained on 3D" in printed


def test_rgb_image_scores_end_to_end(tmp_path):
    from anomaly_maps.checkpoint import load_checkpoint
    from anomaly_maps.models import VAEConfig
    from anomaly_maps.scoring import score_volume
    from anomaly_maps.training import TrainConfig, train

    paths = rgb_lesions(tmp_path)
    ckpt = tmp_path / "rgb.safetensors"
    train(
        paths,
        ckpt,
        model_config=VAEConfig(size=16, widths=(8, 16), latent_dim=4, in_channels=3),
        preprocessing=PreprocessingSpec(size=16, images=True),
        config=TrainConfig(epochs=1, batch_size=2, val_fraction=0.0),
        device="cpu",
    )
    volume = load_volume(paths[0])
    iwae, rec = score_volume(
        volume, load_checkpoint(ckpt), [("iwae", {"n_samples": 3}), ("rec", {})]
    )
    assert np.isfinite(iwae.volume_score) and iwae.map is None
    assert rec.map.shape == volume.shape == (20, 30, 1)
