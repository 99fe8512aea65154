"""Checkpoints: safetensors + JSON header round trips, and every way a file can be wrong."""

from __future__ import annotations

import json
import os
import pickle
import stat
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import anomaly_maps
from anomaly_maps import checkpoint as checkpoint_module
from anomaly_maps import device as device_module
from anomaly_maps.checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    Checkpoint,
    load_checkpoint,
    read_header,
    save_checkpoint,
)
from anomaly_maps.errors import CheckpointError, DeviceError
from anomaly_maps.models import (
    VAE,
    VQVAE,
    CodePrior,
    PriorConfig,
    VAEConfig,
    VQVAEConfig,
    build_model,
)
from anomaly_maps.preprocessing import PreprocessingSpec
from anomaly_maps.records import Calibration, CheckpointRecords, TrainingRecord

SPEC = PreprocessingSpec(axis="coronal", size=16, normalization="zscore", percentiles=(1, 99))
RECORDS = CheckpointRecords(
    training=TrainingRecord(
        volumes=("icbm152.nii.gz", "colin27.nii.gz"),
        train_slices=123,
        final_losses={"rec": 0.125, "kl": 3.5},
        command="anomaly-maps train --epochs 1 \u00e9",
    ),
    calibrations=(
        Calibration("rec", {"norm": "l1"}, (0.0, 0.5, 1.0), (0.0, 0.1, 0.9), (0.0, 0.2, 1.0), 2),
    ),
    other_metrics={"auroc": 0.75, "per_type": [1, 2, 3]},
)
TRAINING, METRICS = RECORDS.to_header()


def _scramble(model: nn.Module, seed: int) -> nn.Module:
    """Move every float parameter and buffer away from a fresh initialisation, so that a
    loader that forgot to read weights (and re-initialised with the same seed) is caught."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # state_dict: non-persistent buffers are derived, never saved
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.add_(torch.randn(t.shape, generator=g) * 0.05)
    return model


@pytest.fixture(scope="module")
def vae() -> VAE:
    torch.manual_seed(0)
    return _scramble(VAE(VAEConfig(size=16, widths=(8, 16), latent_dim=8)), 1).train()


@pytest.fixture(scope="module")
def vqvae_prior() -> tuple[VQVAE, CodePrior]:
    torch.manual_seed(0)
    vq_config = VQVAEConfig(size=16, widths=(8, 16), res_blocks=1, num_codes=8, code_dim=8)
    vq = _scramble(VQVAE(vq_config), 2)
    prior = _scramble(CodePrior(PriorConfig.for_vqvae(vq_config, width=16, depth=1, heads=2)), 3)
    return vq.train(), prior.train()


@pytest.fixture(scope="module")
def saved_vae(tmp_path_factory, vae) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "vae.safetensors"
    return save_checkpoint(
        path, {"vae": vae}, preprocessing=SPEC, training=TRAINING, metrics=METRICS
    )


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(device_module, "_mps_available", lambda: False)


def _same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert sa[key].dtype == sb[key].dtype, key
        assert torch.equal(sa[key].cpu(), sb[key].cpu()), key


def _rewrite(src: Path, dst: Path, edit=None, tensors_edit=None) -> Path:
    """Copy a checkpoint with its header (and/or tensors) edited."""
    header = read_header(src)
    tensors = load_file(str(src))
    if edit is not None:
        edit(header)
    if tensors_edit is not None:
        tensors = tensors_edit(tensors)
    save_file(tensors, str(dst), metadata={"anomaly_maps": json.dumps(header)})
    return dst


def _header_length(path: Path) -> int:
    return struct.unpack("<Q", path.read_bytes()[:8])[0]


# -- round trips -----------------------------------------------------------------------


def test_vae_round_trip_identical_outputs_and_state(saved_vae, vae):
    ckpt = load_checkpoint(saved_vae)
    assert isinstance(ckpt, Checkpoint)
    assert ckpt.path == saved_vae
    assert ckpt.kinds == ("vae",)
    loaded = ckpt.model
    assert isinstance(loaded, VAE) and loaded is ckpt.models["vae"]
    assert loaded.config == vae.config
    _same_state(vae, loaded)
    x = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    vae.eval()
    try:
        with torch.no_grad():
            want, got = vae(x, sample=False), loaded(x, sample=False)
    finally:
        vae.train()
    assert torch.equal(want.x_hat, got.x_hat) and torch.equal(want.mu, got.mu)
    assert torch.equal(want.logvar, got.logvar)


def test_vqvae_prior_round_trip(tmp_path, vqvae_prior):
    vq, prior = vqvae_prior
    path = save_checkpoint(
        tmp_path / "vq.safetensors", {"vqvae": vq, "prior": prior}, preprocessing=SPEC
    )
    ckpt = load_checkpoint(path)
    assert ckpt.kinds == ("vqvae", "prior")
    assert isinstance(ckpt.models["vqvae"], VQVAE) and isinstance(ckpt.models["prior"], CodePrior)
    assert ckpt.models["vqvae"].config == vq.config
    assert ckpt.models["prior"].config == prior.config
    _same_state(vq, ckpt.models["vqvae"])
    _same_state(prior, ckpt.models["prior"])
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    position = torch.tensor([0.2, 0.7])
    vq.eval(), prior.eval()
    try:
        with torch.no_grad():
            codes = vq.codes(x)
            assert torch.equal(codes, ckpt.models["vqvae"].codes(x))
            assert torch.equal(vq(x), ckpt.models["vqvae"](x))
            assert torch.equal(
                prior.logits(codes, position), ckpt.models["prior"].logits(codes, position)
            )
    finally:
        vq.train(), prior.train()


def test_model_order_is_kept(tmp_path, vqvae_prior):
    vq, prior = vqvae_prior
    path = save_checkpoint(
        tmp_path / "p.safetensors", {"prior": prior, "vqvae": vq}, preprocessing=SPEC
    )
    ckpt = load_checkpoint(path)
    assert ckpt.kinds == ("prior", "vqvae")
    assert isinstance(ckpt.model, CodePrior)


def test_header_fields_survive(saved_vae, vae):
    ckpt = load_checkpoint(saved_vae)
    assert ckpt.preprocessing == SPEC
    assert ckpt.records == RECORDS
    assert ckpt.training == TRAINING
    assert ckpt.metrics == METRICS
    assert ckpt.project_version == anomaly_maps.__version__


def test_defaults_for_training_and_metrics(tmp_path, vae):
    ckpt = load_checkpoint(
        save_checkpoint(tmp_path / "m.safetensors", {"vae": vae}, preprocessing=SPEC)
    )
    assert ckpt.training == {} and ckpt.metrics == {}


def test_read_header_contents(saved_vae, vae):
    header = read_header(str(saved_vae))  # str paths too
    assert header["format"] == FORMAT == "anomaly-maps-checkpoint"
    assert header["format_version"] == FORMAT_VERSION == 1
    assert header["project_version"] == anomaly_maps.__version__
    assert header["models"] == {"vae": vae.config.to_dict()}
    assert header["preprocessing"] == SPEC.to_dict()
    assert header["training"] == TRAINING and header["metrics"] == METRICS


def test_read_header_reads_no_tensor(saved_vae, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("read_header opened the tensors")

    monkeypatch.setattr(checkpoint_module, "safe_open", boom)
    monkeypatch.setattr(checkpoint_module, "build_model", boom)
    assert read_header(saved_vae)["models"].keys() == {"vae"}


def test_tensors_are_prefixed_by_kind_and_on_cpu(saved_vae, vae):
    tensors = load_file(str(saved_vae))
    assert set(tensors) == {f"vae.{k}" for k in vae.state_dict()}


@pytest.mark.parametrize("device", ["cpu", torch.device("cpu"), "auto"])
def test_models_load_in_eval_mode_on_the_device(saved_vae, vae, device, no_gpu):
    assert vae.training  # saved in training mode
    ckpt = load_checkpoint(saved_vae, device=device)
    modules = list(ckpt.model.modules())
    assert len(modules) > 3 and not any(m.training for m in modules)
    assert {t.device for t in ckpt.model.state_dict().values()} == {torch.device("cpu")}


@pytest.mark.usefixtures("no_gpu")
def test_unavailable_device_is_a_device_error(saved_vae):
    with pytest.raises(DeviceError, match="cuda:1"):
        load_checkpoint(saved_vae, device="cuda:1")


def test_loads_on_a_simulated_gpu_index(saved_vae, monkeypatch):
    """The resolved device is what the models are moved to (simulated, nothing moves)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=None: "fake")
    moved = []
    monkeypatch.setattr(nn.Module, "to", lambda self, *a, **k: moved.append(a) or self)
    load_checkpoint(saved_vae, device="cuda:1")
    assert moved == [(torch.device("cuda", 1),)]


# -- writing safely --------------------------------------------------------------------


def test_refuses_to_overwrite_unless_asked(tmp_path, vae):
    path = save_checkpoint(tmp_path / "m.safetensors", {"vae": vae}, preprocessing=SPEC)
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match=r"m\.safetensors.*already exists"):
        save_checkpoint(path, {"vae": vae}, preprocessing=SPEC, metrics={"new": 1})
    assert path.read_bytes() == before
    save_checkpoint(path, {"vae": vae}, preprocessing=SPEC, metrics={"new": 1}, overwrite=True)
    assert read_header(path)["metrics"] == {"new": 1}
    assert sorted(os.listdir(tmp_path)) == ["m.safetensors"]  # no temporary file left


@pytest.mark.parametrize("overwrite", [False, True])
def test_refuses_to_write_over_a_directory(tmp_path, vae, overwrite):
    folder = tmp_path / "run.safetensors"
    folder.mkdir()
    with pytest.raises(CheckpointError, match=r"run\.safetensors: is a directory"):
        save_checkpoint(folder, {"vae": vae}, preprocessing=SPEC, overwrite=overwrite)
    assert os.listdir(tmp_path) == ["run.safetensors"] and folder.is_dir()


def test_creates_parent_folders(tmp_path, vae):
    path = save_checkpoint(
        tmp_path / "a" / "b" / "m.safetensors", {"vae": vae}, preprocessing=SPEC
    )
    assert path.is_file() and read_header(path)


@pytest.mark.parametrize("name", ["model.pt", "model.pth", "model", "model.safetensors.tmp"])
def test_name_must_end_in_safetensors(tmp_path, vae, name):
    with pytest.raises(CheckpointError, match=rf"{name}.*\.safetensors"):
        save_checkpoint(tmp_path / name, {"vae": vae}, preprocessing=SPEC)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("training", "metrics", "match"),
    [
        ({"command": object()}, None, "not JSON-serialisable"),
        (None, {"auroc": float("nan")}, "not JSON-serialisable"),
        (None, {"q": torch.tensor(0.5)}, "not JSON-serialisable"),
        (None, {("tuple", "key"): 1}, "not JSON-serialisable"),
        ({"when": 1}, None, r"unknown training keys \['when'\]"),
        (None, {"calibration": {"q50": 0.1}}, "'metrics.calibration' is dict"),
    ],
)
def test_unserialisable_metadata_is_refused_and_nothing_written(
    tmp_path, vae, training, metrics, match
):
    path = tmp_path / "m.safetensors"
    with pytest.raises(CheckpointError, match=rf"m\.safetensors.*{match}"):
        save_checkpoint(path, {"vae": vae}, preprocessing=SPEC, training=training, metrics=metrics)
    assert os.listdir(tmp_path) == []


def test_failed_write_leaves_nothing(tmp_path, vae, monkeypatch):
    def broken(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "m.safetensors", {"vae": vae}, preprocessing=SPEC)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("models", "match"),
    [
        ({}, "no model to save"),
        ({"dae": "vae"}, "saved as 'dae' is a 'vae' model"),
        ({"linear": nn.Linear(2, 2)}, "has no ModelConfig"),
    ],
)
def test_bad_models_are_refused(tmp_path, vae, models, match):
    models = {k: vae if v == "vae" else v for k, v in models.items()}
    with pytest.raises(CheckpointError, match=rf"m\.safetensors.*{match}"):
        save_checkpoint(tmp_path / "m.safetensors", models, preprocessing=SPEC)
    assert os.listdir(tmp_path) == []


def test_preprocessing_must_be_a_spec(tmp_path, vae):
    with pytest.raises(CheckpointError, match="expected a PreprocessingSpec"):
        save_checkpoint(tmp_path / "m.safetensors", {"vae": vae}, preprocessing=SPEC.to_dict())


def test_tied_weights_are_saved_as_copies(tmp_path):
    """Shared storage (tied weights) is cloned: safetensors refuses shared tensors."""
    model = build_model(VAEConfig(size=16, widths=(8, 16), latent_dim=8))
    model.register_buffer("tied", model.encoder[0].weight.data)  # shares storage
    path = save_checkpoint(tmp_path / "t.safetensors", {"vae": model}, preprocessing=SPEC)
    tensors = load_file(str(path))
    assert torch.equal(tensors["vae.tied"], tensors["vae.encoder.0.weight"])
    # a VAE has no such buffer: loading is strict and names the key
    with pytest.raises(CheckpointError, match=r"(?s)do not fit.*tied"):
        load_checkpoint(path)


# -- refusing pickles ------------------------------------------------------------------


class _Payload:
    """Unpickling this creates (opens for writing) ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_payload_would_really_run_code(tmp_path):
    """Sanity check of the attack itself: unpickling it does create the marker."""
    marker = tmp_path / "pwned-sanity"
    pickle.loads(pickle.dumps(_Payload(marker))).close()
    assert marker.exists()


def _pickle_dumps(path, payload, protocol=None):
    path.write_bytes(pickle.dumps({"state_dict": payload}, protocol=protocol))


def _torch_save(path, payload, protocol=None):
    torch.save({"state_dict": payload}, path)


def _torch_save_legacy(path, payload, protocol=None):
    torch.save({"state_dict": payload}, path, _use_new_zipfile_serialization=False)


@pytest.fixture
def forbid_unpickling(monkeypatch):
    """Any unpickling during the test fails it (defence in depth besides the marker)."""

    def forbidden(*args, **kwargs):
        raise AssertionError("something unpickled")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)


@pytest.mark.parametrize("name", ["model.pt", "model.safetensors", "model.bin"])
@pytest.mark.parametrize(
    ("write", "protocol"),
    [
        (_pickle_dumps, None),
        (_pickle_dumps, 2),
        (_pickle_dumps, 5),
        (_torch_save, None),
        (_torch_save_legacy, None),
    ],
)
def test_malicious_pickle_is_refused_and_never_run(tmp_path, name, write, protocol, request):
    marker = tmp_path / "pwned"
    path = tmp_path / name
    write(path, _Payload(marker), protocol)
    request.getfixturevalue("forbid_unpickling")
    for call in (read_header, load_checkpoint):
        with pytest.raises(CheckpointError) as info:
            call(path)
        msg = str(info.value)
        assert str(path) in msg
        assert "pickle" in msg and "arbitrary code" in msg  # why
        assert "weights_only=True" in msg and "save_checkpoint" in msg  # how to convert
        assert "safetensors" in msg
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 1])
def test_old_protocol_pickles_are_refused_too(tmp_path, protocol, forbid_unpickling):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.safetensors"
    path.write_bytes(pickle.dumps(_Payload(marker), protocol=protocol))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not a safetensors"):
        load_checkpoint(path)
    assert not marker.exists()


def test_pickle_suffix_is_refused_even_if_unreadable(tmp_path):
    path = tmp_path / "weights.pth"
    path.write_bytes(b"\x00\x01")
    with pytest.raises(CheckpointError, match=r"weights\.pth: looks like a PyTorch pickle"):
        read_header(path)


# -- broken, foreign and unsupported files ---------------------------------------------


def test_truncated_checkpoint_cut_points(tmp_path, saved_vae):
    data = saved_vae.read_bytes()
    n = _header_length(saved_vae)
    cuts = {
        "empty": 0,
        "in length": 4,
        "after length": 8,
        "at brace": 9,
        "in header": 8 + n // 2,
        "header end": 8 + n - 1,
        "no data": 8 + n,
        "in data": 8 + n + (len(data) - 8 - n) // 2,
        "last byte": len(data) - 1,
    }
    header_intact = {"no data", "in data", "last byte"}
    for label, cut in cuts.items():
        path = tmp_path / f"cut-{cut}.safetensors"
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(path)
        assert str(path) in str(info.value), label
        assert "truncated" in str(info.value), (label, str(info.value))
        if label in header_intact:  # header alone is fine: read_header never reads tensors
            assert read_header(path)["models"].keys() == {"vae"}
        else:
            with pytest.raises(CheckpointError, match=rf"cut-{cut}\.safetensors"):
                read_header(path)


def test_appended_garbage_is_refused(tmp_path, saved_vae):
    path = tmp_path / "long.safetensors"
    path.write_bytes(saved_vae.read_bytes() + b"\x00" * 64)
    with pytest.raises(CheckpointError, match=r"long\.safetensors.*corrupt"):
        load_checkpoint(path)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.safetensors"
    for call in (read_header, load_checkpoint):
        with pytest.raises(CheckpointError, match=rf"{path.name}: no such checkpoint file"):
            call(path)


def test_directory(tmp_path, saved_vae):
    folder = tmp_path / "run.safetensors"
    folder.mkdir()
    with pytest.raises(CheckpointError, match=r"run\.safetensors: is a directory") as info:
        load_checkpoint(folder)
    assert "found" not in str(info.value)
    (folder / "best.safetensors").write_bytes(saved_vae.read_bytes())
    with pytest.raises(CheckpointError, match=r"is a directory.*found \['best\.safetensors'\]"):
        load_checkpoint(folder)


@pytest.mark.parametrize(
    "metadata", [None, {"format": "pt"}], ids=["no metadata", "other metadata"]
)
def test_foreign_safetensors_file(tmp_path, metadata):
    path = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(3)}, str(path), metadata=metadata)
    with pytest.raises(
        CheckpointError, match=r"foreign\.safetensors: a safetensors file, but not"
    ):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "content",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        b"hello, this is text and not a checkpoint",
        struct.pack("<Q", 0) + b"{}",
        struct.pack("<Q", 1) + b"{",
        struct.pack("<Q", 4) + b"{\xff\xfe}",
        struct.pack("<Q", 4) + b"[1 ]",
        struct.pack("<Q", 2**40) + b"{}",
        struct.pack("<Q", 31) + b'{"__metadata__":"anomaly_maps"}',
    ],
)
def test_other_formats_are_refused_naming_the_file(tmp_path, content):
    path = tmp_path / "weird.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"weird\.safetensors"):
        load_checkpoint(path)


def test_header_length_zero_is_refused_as_bogus(tmp_path):
    path = tmp_path / "zero.safetensors"
    path.write_bytes(struct.pack("<Q", 0) + b'{"__metadata__": {"anomaly_maps": "{}"}}')
    with pytest.raises(CheckpointError, match=r"zero\.safetensors: .*header claims 0 bytes"):
        read_header(path)


def test_unreadable_file(tmp_path, saved_vae, monkeypatch):
    def denied(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", denied)
    with pytest.raises(CheckpointError, match=r"vae\.safetensors: cannot read.*Permission"):
        read_header(saved_vae)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda h: h.update(format_version=FORMAT_VERSION + 1), "version 2 is newer.*upgrade"),
        (lambda h: h.update(format_version=99), "version 99 is newer"),
        (lambda h: h.update(format_version="1"), "format_version '1' is invalid"),
        (lambda h: h.update(format_version=0), "format_version 0 is invalid"),
        (lambda h: h.update(format_version=True), "format_version True is invalid"),
        (lambda h: h.pop("format_version"), "format_version None is invalid"),
        (lambda h: h.update(format="something-else"), "unknown checkpoint format 'something"),
        (lambda h: h.pop("format"), "unknown checkpoint format None"),
    ],
)
def test_unsupported_headers_are_refused_by_read_header(tmp_path, saved_vae, edit, match):
    path = _rewrite(saved_vae, tmp_path / "edited.safetensors", edit)
    for call in (read_header, load_checkpoint):
        with pytest.raises(CheckpointError, match=rf"edited\.safetensors: .*{match}"):
            call(path)


def _rename_kind(old: str, new: str):
    def edit(tensors):
        return {new + k[len(old) :]: v for k, v in tensors.items()}

    return edit


@pytest.mark.parametrize(
    ("edit", "tensors_edit", "match"),
    [
        (
            lambda h: h.update(models={"gan": h["models"]["vae"]}),
            _rename_kind("vae", "gan"),
            r"checkpoint header is invalid \(unknown model kind 'gan'.*'vae'",
        ),
        (
            lambda h: h["models"]["vae"].update(depth=3),
            None,
            r"checkpoint header is invalid.*'depth'",
        ),
        (
            lambda h: h["models"]["vae"].update(latent_dim=-1),
            None,
            "checkpoint header is invalid.*latent_dim=-1",
        ),
        (lambda h: h.update(models={}), None, "checkpoint holds no model"),
        (lambda h: h.update(models=[1]), None, "checkpoint header is invalid.*'models' is list"),
        (
            lambda h: h.pop("preprocessing"),
            None,
            "checkpoint header is invalid.*'preprocessing' is NoneType",
        ),
        (
            lambda h: h["preprocessing"].update(axis="oblique"),
            None,
            "checkpoint header is invalid.*axis='oblique'",
        ),
        (
            lambda h: h["preprocessing"].update(percentiles=[1, 2, 3]),
            None,
            "checkpoint header is invalid",
        ),
        (None, _rename_kind("vae", "dae"), r"tensors \['dae\..*belong to no model"),
        (
            None,
            lambda t: {k: v for k, v in t.items() if "decoder" not in k},
            r"weights do not fit the 'vae' model.*Missing key",
        ),
        (None, lambda t: {**t, "vae.extra": torch.zeros(1)}, "weights do not fit.*Unexpected key"),
    ],
)
def test_invalid_contents_are_refused_by_load(tmp_path, saved_vae, edit, tensors_edit, match):
    path = _rewrite(saved_vae, tmp_path / "edited.safetensors", edit, tensors_edit)
    with pytest.raises(CheckpointError, match=rf"(?s)edited\.safetensors: {match}"):
        load_checkpoint(path)


def test_weights_that_do_not_fit_the_header(tmp_path):
    """Header says latent_dim=8, tensors come from a latent_dim=4 model."""
    small = build_model(VAEConfig(size=16, widths=(8, 16), latent_dim=4))
    path = save_checkpoint(tmp_path / "small.safetensors", {"vae": small}, preprocessing=SPEC)
    path = _rewrite(
        path,
        tmp_path / "lying.safetensors",
        lambda h: h["models"]["vae"].update(latent_dim=8),
    )
    assert read_header(path)["models"]["vae"]["latent_dim"] == 8  # header itself is fine
    with pytest.raises(
        CheckpointError,
        match=r"(?s)lying\.safetensors: weights do not fit the 'vae'.*size mismatch",
    ):
        load_checkpoint(path)


def test_prior_tensors_missing_from_a_two_model_checkpoint(tmp_path, vqvae_prior):
    vq, prior = vqvae_prior
    path = save_checkpoint(
        tmp_path / "vq.safetensors", {"vqvae": vq, "prior": prior}, preprocessing=SPEC
    )
    path = _rewrite(
        path,
        tmp_path / "half.safetensors",
        tensors_edit=lambda t: {k: v for k, v in t.items() if not k.startswith("prior.")},
    )
    with pytest.raises(
        CheckpointError, match=r"half\.safetensors: weights do not fit the 'prior'"
    ):
        load_checkpoint(path)


def test_corrupt_header_json(tmp_path, saved_vae):
    path = tmp_path / "bad.safetensors"
    save_file(load_file(str(saved_vae)), str(path), metadata={"anomaly_maps": "{not json"})
    with pytest.raises(CheckpointError, match=r"bad\.safetensors: checkpoint header is corrupt"):
        read_header(path)
    save_file(load_file(str(saved_vae)), str(path), metadata={"anomaly_maps": "[1, 2]"})
    with pytest.raises(CheckpointError, match=r"bad\.safetensors: checkpoint header is corrupt"):
        read_header(path)


def test_checkpoint_file_mode_follows_the_umask(tmp_path, tiny_models):
    path = save_checkpoint(
        tmp_path / "m.safetensors", tiny_models["vae"], preprocessing=PreprocessingSpec(size=16)
    )
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
