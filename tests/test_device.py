"""Device resolution: auto picks CUDA, then MPS, then CPU; unknown devices list the known."""

from __future__ import annotations

import pytest
import torch

from anomaly_maps import device as device_module
from anomaly_maps.device import available_devices, resolve_device
from anomaly_maps.errors import AnomalyMapsError, DeviceError


@pytest.fixture
def no_gpu(monkeypatch):
    """This machine as the tests assume it: no CUDA, no MPS (true on the CI runner too)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(device_module, "_mps_available", lambda: False)


@pytest.fixture
def two_gpus(monkeypatch):
    """Simulated CUDA with two GPUs (nothing is allocated on them)."""
    names = ["Fake GPU A", "Fake GPU B"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(names))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=None: names[i or 0])
    monkeypatch.setattr(device_module, "_mps_available", lambda: False)


@pytest.fixture
def mps_only(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(device_module, "_mps_available", lambda: True)


def test_this_machine_has_no_gpu_so_auto_is_cpu():
    """Unpatched: the test environment is CPU-only, so auto must fall back to the CPU."""
    if torch.cuda.is_available() or device_module._mps_available():
        pytest.skip("a GPU is present")
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device() == torch.device("cpu")
    assert available_devices() == [("cpu", "CPU")]


@pytest.mark.usefixtures("no_gpu")
@pytest.mark.parametrize("name", ["cpu", "CPU", " cpu ", torch.device("cpu")])
def test_cpu_resolves(name):
    dev = resolve_device(name)
    assert isinstance(dev, torch.device) and dev.type == "cpu"


@pytest.mark.usefixtures("no_gpu")
@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("cuda", "CUDA is not available"),
        ("cuda:3", "CUDA is not available"),
        (torch.device("cuda:0"), "CUDA is not available"),
        ("mps", "MPS is not available"),
    ],
)
def test_absent_accelerators_are_refused_listing_available(name, reason):
    with pytest.raises(DeviceError, match=reason) as info:
        resolve_device(name)
    msg = str(info.value)
    assert repr(str(name).strip().lower()) in msg  # names what was asked for
    assert "available: ['cpu']" in msg


@pytest.mark.usefixtures("no_gpu")
@pytest.mark.parametrize("name", ["gpu", "", "cuda:x", "cuda:-1", "tpu", "banana:0"])
def test_garbage_names_are_refused(name):
    with pytest.raises(DeviceError, match=r"expected auto or \['cpu'\]"):
        resolve_device(name)


@pytest.mark.usefixtures("no_gpu")
@pytest.mark.parametrize("name", ["meta", "xla"])
def test_real_but_unsupported_device_types_are_refused(name):
    with pytest.raises(DeviceError, match="not supported"):
        resolve_device(name)


@pytest.mark.usefixtures("no_gpu")
@pytest.mark.parametrize("name", [0, None, 1.5])
def test_non_string_names_are_refused(name):
    with pytest.raises(DeviceError, match="expected auto"):
        resolve_device(name)


def test_device_error_is_an_anomaly_maps_error():
    assert issubclass(DeviceError, AnomalyMapsError)


@pytest.mark.usefixtures("two_gpus")
def test_two_gpus_listed_best_first_with_cpu_last():
    assert available_devices() == [
        ("cuda:0", "CUDA 0: Fake GPU A"),
        ("cuda:1", "CUDA 1: Fake GPU B"),
        ("cpu", "CPU"),
    ]


@pytest.mark.usefixtures("two_gpus")
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("auto", torch.device("cuda", 0)),
        ("cuda", torch.device("cuda", 0)),
        ("cuda:0", torch.device("cuda", 0)),
        ("cuda:1", torch.device("cuda", 1)),
        ("CUDA:1", torch.device("cuda", 1)),
        (torch.device("cuda", 1), torch.device("cuda", 1)),
        ("cpu", torch.device("cpu")),
    ],
)
def test_two_gpus_resolve(name, expected):
    assert resolve_device(name) == expected


@pytest.mark.usefixtures("two_gpus")
@pytest.mark.parametrize("name", ["cuda:2", "cuda:7"])
def test_two_gpus_missing_index_is_refused(name):
    with pytest.raises(DeviceError, match="no such GPU") as info:
        resolve_device(name)
    assert "['cuda:0', 'cuda:1', 'cpu']" in str(info.value)


@pytest.mark.usefixtures("two_gpus")
def test_two_gpus_mps_still_refused():
    with pytest.raises(DeviceError, match=r"MPS is not available.*'cuda:1'"):
        resolve_device("mps")


@pytest.mark.usefixtures("mps_only")
def test_mps_is_picked_before_cpu():
    assert available_devices() == [("mps", "Apple MPS"), ("cpu", "CPU")]
    assert resolve_device("auto") == torch.device("mps")
    assert resolve_device("mps") == torch.device("mps")


def test_cuda_and_mps_order(monkeypatch, two_gpus):
    monkeypatch.setattr(device_module, "_mps_available", lambda: True)
    assert [d for d, _ in available_devices()] == ["cuda:0", "cuda:1", "mps", "cpu"]
    assert resolve_device("auto") == torch.device("cuda", 0)


def test_mps_probe_tolerates_missing_backend(monkeypatch):
    monkeypatch.setattr(torch.backends, "mps", None)  # old torch builds lack it
    assert device_module._mps_available() is False


def test_mps_probe_asks_the_backend(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert device_module._mps_available() is True
