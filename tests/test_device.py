"""resolve_device: 'auto' picks CUDA, then MPS, then the CPU; unknown or absent devices fail."""

from __future__ import annotations

import pytest
import torch

from retinalnet._core.device import resident_device, resolve_device


@pytest.fixture
def no_accelerator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.mark.skipif(
    torch.cuda.is_available() or torch.backends.mps.is_available(),
    reason="this machine has an accelerator",
)
def test_auto_is_the_cpu_on_a_machine_without_accelerator() -> None:
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device() == torch.device("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_auto_is_cuda_when_cuda_is_there() -> None:
    assert resolve_device("auto").type == "cuda"
    assert resolve_device("cuda:0") == torch.device("cuda:0")


@pytest.mark.usefixtures("no_accelerator")
def test_auto_falls_back_to_the_cpu() -> None:
    assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.parametrize(("cuda", "mps", "expected"), [(True, True, "cuda"), (False, True, "mps")])
def test_auto_prefers_cuda_then_mps(
    monkeypatch: pytest.MonkeyPatch, cuda: bool, mps: bool, expected: str
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)

    assert resolve_device("auto") == torch.device(expected)


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        ("cpu", torch.device("cpu")),
        (torch.device("cpu"), torch.device("cpu")),
        ("cpu:0", torch.device("cpu", 0)),
    ],
)
def test_explicit_cpu(device: str | torch.device, expected: torch.device) -> None:
    assert resolve_device(device) == expected


@pytest.mark.parametrize("name", ["gpu", "cpux", "", "cuda:x", "CUDA", "auto:0"])
def test_names_that_are_not_devices(name: str) -> None:
    with pytest.raises(
        ValueError,
        match=rf"device {name!r} is not a device name; use 'auto', 'cpu', 'cuda', 'cuda:N' or "
        r"'mps'",
    ):
        resolve_device(name)


@pytest.mark.usefixtures("no_accelerator")
@pytest.mark.parametrize("device", ["cuda", "cuda:1", torch.device("cuda")])
def test_cuda_on_a_machine_without_cuda(device: str | torch.device) -> None:
    with pytest.raises(
        ValueError,
        match=r"asks for CUDA, which this machine does not have; use device='auto' or 'cpu'",
    ):
        resolve_device(device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_really_absent_here() -> None:
    with pytest.raises(ValueError, match=r"device 'cuda' asks for CUDA"):
        resolve_device("cuda")


@pytest.mark.usefixtures("no_accelerator")
def test_mps_when_it_is_not_available() -> None:
    with pytest.raises(
        ValueError, match=r"device 'mps' asks for Apple MPS, which is not available"
    ):
        resolve_device("mps")


def test_resident_device_keeps_data_on_the_host_for_a_cpu() -> None:
    assert resident_device(10, torch.device("cpu")) is None


def test_resident_device_puts_data_on_the_gpu_only_when_it_fits_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1000, 8000))
    gpu = torch.device("cuda")
    assert resident_device(500, gpu) == gpu
    assert resident_device(501, gpu) is None


@pytest.mark.parametrize(
    ("device", "kind"),
    [("meta", "meta"), ("xpu", "xpu"), ("hpu", "hpu"), ("xpu:0", "xpu"), ("lazy", "lazy")],
)
def test_device_types_retinalnet_does_not_run_on_are_refused_in_one_line(
    device: str, kind: str
) -> None:
    with pytest.raises(
        ValueError,
        match=rf"^device {device!r} is not supported: retinalnet runs on the CPU, CUDA GPUs and "
        rf"Apple MPS, not {kind!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'$",
    ):
        resolve_device(device)


def test_a_torch_device_of_another_type_is_refused_too() -> None:
    with pytest.raises(ValueError, match=r"^device 'meta' is not supported"):
        resolve_device(torch.device("meta"))


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


@pytest.mark.usefixtures("two_gpus")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:1", torch.device("cuda", 1)])
def test_cuda_devices_this_machine_has(device: str | torch.device) -> None:
    assert resolve_device(device) == torch.device(device)


@pytest.mark.usefixtures("two_gpus")
@pytest.mark.parametrize("device", ["cuda:2", "cuda:7", torch.device("cuda", 2)])
def test_a_cuda_index_past_the_gpus_this_machine_has(device: str | torch.device) -> None:
    index = torch.device(device).index
    with pytest.raises(
        ValueError,
        match=rf"^device 'cuda:{index}' asks for CUDA GPU {index}, but this machine has 2 GPUs "
        r"\(cuda:0 to cuda:1\); use device='cuda' or a cuda:N with N below 2$",
    ):
        resolve_device(device)


def test_a_cuda_index_on_a_one_gpu_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"but this machine has 1 GPU \(cuda:0\);"):
        resolve_device("cuda:1")


def test_mps_has_one_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("mps") == torch.device("mps")
    with pytest.raises(ValueError, match=r"^device 'mps:1' asks for MPS device 1"):
        resolve_device("mps:1")
