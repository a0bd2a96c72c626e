"""A torch cache folder that cannot be written is said to be the problem, not the download.

torch.hub makes ``$TORCH_HOME/hub/checkpoints`` and writes the download there; when that
fails (a read-only folder, a file where a folder should be, a full disk) the error named the
folder and said how to work without it, instead of "cannot download". No test here
downloads: every download fails as if offline, and records that it was tried.
"""

from __future__ import annotations

import errno
import re
import tempfile
import urllib.error
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from retinalnet.models import WeightsUnavailableError, create_model, vgg16_transfer
from retinalnet.models._weights import load_network

RESNET18_URL = "https://download.pytorch.org/models/resnet18-f37072fd.pth"
META = torch.device("meta")


@pytest.fixture(autouse=True)
def downloads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URLs torch.hub tried to download; each fails as if offline."""
    tried: list[str] = []

    def offline(url: str, *args: object, **kwargs: object) -> None:
        tried.append(url)
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tried


def _cache_error(folder: Path, reason: str, download: str = "was not tried") -> str:
    return (
        rf"^cannot keep ResNet18 weights IMAGENET1K_V1 in torch's cache folder "
        rf"{re.escape(repr(str(folder)))}: {reason} \(the download {download}\); set "
        r"TORCH_HOME to a writable folder \(torch keeps downloads in \$TORCH_HOME/hub/"
        rf"checkpoints\), or download {re.escape(RESNET18_URL)} on a machine with internet "
        r"and pass weights='/path/to/resnet18-f37072fd\.pth'$"
    )


def _build_resnet18() -> nn.Module:
    with META:
        return create_model("resnet18", progress=False)


@pytest.mark.parametrize("file_at", ["", "hub", "hub/checkpoints"])
def test_a_file_where_the_cache_folder_should_be_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, downloads: list[str], file_at: str
) -> None:
    # was: "cannot download ResNet18 weights IMAGENET1K_V1 ([Errno 20] Not a directory: ...)"
    home = tmp_path / "torch-home"
    (home / file_at).parent.mkdir(parents=True, exist_ok=True)
    (home / file_at).write_text("not a folder")
    monkeypatch.setenv("TORCH_HOME", str(home))
    folder = home / "hub" / "checkpoints"
    message = _cache_error(
        folder, rf"{re.escape(repr(str(home / file_at)))} is a file, not a folder"
    )

    with pytest.raises(WeightsUnavailableError, match=message) as info:
        _build_resnet18()

    assert downloads == []
    assert isinstance(info.value.__cause__, OSError)


def _can_write(folder: Path) -> bool:
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def test_a_read_only_cache_folder_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, downloads: list[str]
) -> None:
    home = tmp_path / "torch-home"
    folder = home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    folder.chmod(0o500)
    try:
        if _can_write(folder):
            pytest.skip("this user writes into read-only folders (root)")
        monkeypatch.setenv("TORCH_HOME", str(home))
        with pytest.raises(
            WeightsUnavailableError, match=_cache_error(folder, "Permission denied")
        ):
            _build_resnet18()
    finally:
        folder.chmod(0o700)
    assert downloads == []


def test_a_read_only_torch_home_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, downloads: list[str]
) -> None:
    home = tmp_path / "torch-home"
    home.mkdir()
    home.chmod(0o500)
    try:
        if _can_write(home):
            pytest.skip("this user writes into read-only folders (root)")
        monkeypatch.setenv("TORCH_HOME", str(home))
        reason = rf"Permission denied: {re.escape(repr(str(home / 'hub')))}"
        with pytest.raises(
            WeightsUnavailableError, match=_cache_error(home / "hub" / "checkpoints", reason)
        ):
            _build_resnet18()
    finally:
        home.chmod(0o700)
    assert downloads == []


def _refuse(code: int, words: str) -> Callable[..., object]:
    def refuse(*args: object, **kwargs: object) -> object:
        raise OSError(code, words)

    return refuse


@pytest.mark.parametrize(
    ("code", "words"),
    [(errno.EROFS, "Read-only file system"), (errno.ENOSPC, "No space left on device")],
)
def test_a_folder_that_cannot_take_a_file_is_named(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    downloads: list[str],
    code: int,
    words: str,
) -> None:
    # a read-only file system or a full disk, simulated (they refuse root too)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(tempfile, "TemporaryFile", _refuse(code, words))
    folder = tmp_path / "torch-home" / "hub" / "checkpoints"

    with pytest.raises(WeightsUnavailableError, match=_cache_error(folder, words)):
        _build_resnet18()

    assert downloads == []


def test_a_disk_full_during_the_download_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(
        torch.hub, "download_url_to_file", _refuse(errno.ENOSPC, "No space left on device")
    )
    folder = tmp_path / "torch-home" / "hub" / "checkpoints"
    message = _cache_error(folder, "No space left on device", download="was stopped")

    with pytest.raises(WeightsUnavailableError, match=message):
        _build_resnet18()


@pytest.mark.parametrize(
    "failure",
    [
        urllib.error.URLError("no network"),
        ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
        TimeoutError("The read operation timed out"),
    ],
    ids=["offline", "reset", "timeout"],
)
def test_a_network_failure_is_still_a_failed_download(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, failure: OSError
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))

    def fail(*args: object, **kwargs: object) -> None:
        raise failure

    monkeypatch.setattr(torch.hub, "download_url_to_file", fail)
    with pytest.raises(WeightsUnavailableError, match=r"^cannot download ResNet18 weights "):
        _build_resnet18()


@pytest.mark.parametrize(
    "build",
    [
        lambda: vgg16_transfer(progress=False),
        lambda: load_network("resnet18", "DEFAULT", progress=False),
    ],
    ids=["vgg16_transfer", "load_network"],
)
def test_every_builder_names_the_cache_folder(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    downloads: list[str],
    build: Callable[[], nn.Module],
) -> None:
    (tmp_path / "torch-home").write_text("not a folder")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))

    with META, pytest.raises(WeightsUnavailableError, match=r"^cannot keep .* cache folder"):
        build()

    assert downloads == []


def test_a_cached_file_in_a_read_only_folder_loads(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, downloads: list[str]
) -> None:
    # the folder need not be writable when the file is there already
    import torchvision

    folder = tmp_path / "torch-home" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(torchvision.models.resnet18().state_dict(), folder / "resnet18-f37072fd.pth")
    folder.chmod(0o500)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(tempfile, "TemporaryFile", _refuse(errno.EROFS, "Read-only file system"))
    try:
        model = create_model("resnet18", progress=False)
    finally:
        folder.chmod(0o700)
    assert downloads == []
    assert model.arch == "resnet18"


def test_the_command_line_says_it_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    downloads: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from retinalnet.cli import main
    from retinalnet.datasets import make_synthetic_kermany

    data = make_synthetic_kermany(tmp_path / "data", train=2, val=1, test=1, shape=(40, 40))
    (tmp_path / "torch-home").write_text("not a folder")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    argv = ["train", "--data", str(data), "--arch", "resnet18", "--out", str(tmp_path / "run")]

    assert main([*argv, "--epochs", "1", "--size", "32", "-q"]) == 1

    err = capsys.readouterr().err
    assert err.startswith(
        "retinalnet train: error: cannot keep ResNet18 weights IMAGENET1K_V1 in torch's cache "
        f"folder {str(tmp_path / 'torch-home' / 'hub' / 'checkpoints')!r}: "
    ), err
    assert "set TORCH_HOME to a writable folder" in err
    assert err.count("\n") == 1
    assert downloads == []
