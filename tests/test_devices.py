"""A device the machine lacks, or a name that is no device, is a one-line error listing
the devices there are, before any work starts."""

import pytest
import torch

from aiayn.devices import available_devices, resolve_device
from aiayn.errors import ConfigError


def test_auto_and_cpu():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert available_devices()[0] == "cpu"


@pytest.mark.parametrize("name", ["foo", "cuda:x", ""])
def test_a_name_that_is_no_device(name):
    with pytest.raises(ConfigError, match="is not a device name; devices here: cpu"):
        resolve_device(name, "--device")


def test_cuda_on_a_machine_without_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no CUDA GPU; devices here: cpu"):
        resolve_device("cuda", "--device")


def test_a_gpu_index_past_the_last(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ConfigError, match="no such GPU; devices here: cpu, cuda:0, cuda:1"):
        resolve_device("cuda:2")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)


def test_a_backend_aiayn_does_not_run_on():
    with pytest.raises(ConfigError, match="aiayn runs on cpu, cuda or mps"):
        resolve_device("xla")
