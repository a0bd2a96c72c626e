"""A device or a named pipe where a scan, a checkpoint or a weights file should be (tar
restores both): refused in one line, at every door, before it is opened; never read for
ever (``/dev/zero`` filled the memory) nor waited on (a named pipe blocked ``open``)."""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from retinalnet._core.files import file_digest
from retinalnet._core.images import frame_count, image_size, is_dicom, load_frames
from retinalnet._core.read_failure import EMPTY_FILE, is_empty, read_failure
from retinalnet._core.regular_files import SpecialFileError, check_regular_file, open_regular
from retinalnet.datasets import KermanyOCT, UnreadableImageError, audit, load_image, patient_split

pytestmark = pytest.mark.skipif(
    not hasattr(os, "mkfifo") or not os.path.exists("/dev/null"),  # noqa: PTH110
    reason="no named pipes or /dev/null",
)

_FIFO = (
    r"it is not a regular file but a named pipe \(FIFO\): remove it, or put the real file in "
    r"its place"
)
_DEVICE = (
    r"it is not a regular file but a character device \(a symbolic link to '/dev/null'\): "
    r"remove it, or put the real file in its place"
)


def _fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


def _device_link(path: Path) -> Path:
    """A link to ``/dev/null``: a character device as ``/dev/zero`` is, that a reader
    without the rule takes for an empty file (where ``/dev/zero`` is read for ever)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to("/dev/null")
    return path


def _within(seconds: float, call: Callable[[], Any], pipe: Path | None = None) -> Any:
    """``call()``'s result (or its error, raised), failing the test if it has not returned
    after ``seconds``; readers blocked on ``pipe`` are then released by a writer that opens
    and closes it (a reader blocked in ``Image.open`` holds the library's warnings lock,
    which would stop every later test)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        for _ in range(200):  # each reader waiting on the pipe gets its end, until none does
            if pipe is None or not thread.is_alive():
                break
            with contextlib.suppress(OSError):  # no reader waiting just now
                os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
            thread.join(0.05)
        pytest.fail(f"still reading after {seconds} s: it waited on the named pipe")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


_IMAGE_DOORS: dict[str, Callable[[Path], Any]] = {
    "load_image": load_image,
    "load_image reduced": lambda path: load_image(path, target_size=16),
    "load_frames": load_frames,
    "image_size": image_size,
    "frame_count": frame_count,
}


@pytest.mark.parametrize("door", sorted(_IMAGE_DOORS))
@pytest.mark.parametrize("name", ["CNV-9-1.jpeg", "CNV-9-1.dcm", "CNV-9-1.png"])
def test_a_named_pipe_named_like_a_scan_is_refused_at_every_door(
    tmp_path: Path, door: str, name: str
) -> None:
    # was: Image.open (or pydicom) blocked for ever, waiting for a writer
    pipe = _fifo(tmp_path / name)
    message = rf"^cannot read image {re.escape(repr(str(pipe)))}: {_FIFO}$"
    with pytest.raises(UnreadableImageError, match=message):
        _within(10, lambda: _IMAGE_DOORS[door](pipe), pipe)


@pytest.mark.parametrize("door", sorted(_IMAGE_DOORS))
@pytest.mark.parametrize("name", ["CNV-9-1.jpeg", "CNV-9-1.dcm"])
def test_a_link_to_a_device_named_like_a_scan_is_refused_as_one(
    tmp_path: Path, door: str, name: str
) -> None:
    # was "the file is empty, 0 bytes: was it cut short ...?" (a device has no size)
    link = _device_link(tmp_path / name)
    with pytest.raises(UnreadableImageError, match=rf": {_DEVICE}$"):
        _IMAGE_DOORS[door](link)


def test_a_device_is_not_an_empty_file_and_reads_in_the_rules_words(tmp_path: Path) -> None:
    link = _device_link(tmp_path / "scan.jpeg")
    assert not is_empty(link)  # was True: "the file is empty, 0 bytes"
    assert not is_dicom(link)
    empty = tmp_path / "empty.jpeg"
    empty.write_bytes(b"")
    assert is_empty(empty)
    with pytest.raises(UnreadableImageError, match=re.escape(EMPTY_FILE)):
        load_image(empty)
    with pytest.raises(SpecialFileError) as caught:
        check_regular_file(link)
    assert re.fullmatch(_DEVICE, read_failure(link, caught.value))
    assert str(caught.value) == f"cannot read {str(link)!r}: {caught.value.reason}"
    again = pickle.loads(pickle.dumps(caught.value))  # from a DataLoader worker
    assert (str(again), again.reason) == (str(caught.value), caught.value.reason)


def test_the_digest_refuses_a_device_or_a_pipe_and_reads_a_file(tmp_path: Path) -> None:
    # was: a digest of /dev/zero never ended; of a named pipe, never started
    with pytest.raises(SpecialFileError, match=_DEVICE):
        file_digest(_device_link(tmp_path / "best.pt"))
    pipe = _fifo(tmp_path / "weights.pth")
    with pytest.raises(SpecialFileError, match=_FIFO):
        _within(10, lambda: file_digest(pipe), pipe)
    real = tmp_path / "real.pt"
    real.write_bytes(b"abc")
    assert file_digest(real).hex().startswith("ba7816bf")
    (tmp_path / "folder").mkdir()
    with pytest.raises(IsADirectoryError):
        open_regular(tmp_path / "folder")
    with pytest.raises(FileNotFoundError):
        open_regular(tmp_path / "missing.pt")


def _tree(make_tree: Any) -> Path:
    root: Path = make_tree(
        {
            f"{split}/{name}": [f"{name}-{base + i}-1.jpeg" for i in range(2)]
            for split, base in (("train", 100), ("test", 200))
            for name in ("CNV", "DME", "DRUSEN", "NORMAL")
        }
    )
    return root


def test_the_audit_lists_a_pipe_and_a_device_as_unreadable(make_tree: Any) -> None:
    # was: the audit read /dev/zero until the memory ran out, and waited on a named pipe
    root = _tree(make_tree)
    pipe = _fifo(root / "train" / "CNV" / "CNV-900-1.jpeg")
    _device_link(root / "train" / "DME" / "DME-901-1.jpeg")
    report = _within(30, lambda: audit(root), pipe)
    assert not report.ok
    reasons = {Path(path).name: reason for path, reason in report.unreadable.items()}
    assert set(reasons) == {"CNV-900-1.jpeg", "DME-901-1.jpeg"}
    assert re.fullmatch(_FIFO, reasons["CNV-900-1.jpeg"])
    assert re.fullmatch(_DEVICE, reasons["DME-901-1.jpeg"])


def test_finding_duplicates_refuses_a_pipe_in_one_line(make_tree: Any) -> None:
    # was: `retinalnet split --drop-duplicates` hashed /dev/zero for ever
    root = _tree(make_tree)
    pipe = _fifo(root / "train" / "CNV" / "CNV-900-1.jpeg")
    with pytest.raises(UnreadableImageError, match=rf"{_FIFO} \(finding duplicates reads"):
        _within(30, lambda: patient_split(root, val_fraction=0.5, drop_duplicates=True), pipe)


def test_a_data_set_lists_a_pipe_and_skips_it_as_any_unreadable_file(make_tree: Any) -> None:
    root = _tree(make_tree)
    pipe = _fifo(root / "train" / "CNV" / "CNV-900-1.jpeg")
    data = KermanyOCT(root, "train", on_error="skip")
    assert str(pipe) in [path for path, _ in data.samples]  # listed by name, as a broken link
    index = [path for path, _ in data.samples].index(str(pipe))
    with pytest.warns(RuntimeWarning, match=_FIFO):
        image, _ = _within(10, lambda: data[index], pipe)  # the next readable scan
    assert image.size == (40, 36)
    strict = KermanyOCT(root, "train")
    with pytest.raises(UnreadableImageError, match=_FIFO):
        _within(10, lambda: strict[index], pipe)


def test_a_checkpoint_or_weights_file_that_is_a_pipe_or_a_device_is_said_so(
    tmp_path: Path,
) -> None:
    """They were called missing ("no checkpoint file", "does not exist")."""
    from retinalnet.checkpoint import load_checkpoint
    from retinalnet.models import vgg16_transfer

    pipe = _fifo(tmp_path / "ck.pt")
    device = tmp_path / "weights.pth"
    device.symlink_to("/dev/null")
    for path in (pipe, device):
        with pytest.raises(SpecialFileError, match=r"is not a regular file but a "):
            load_checkpoint(path)
        with pytest.raises(SpecialFileError, match=r"is not a regular file but a "):
            vgg16_transfer(weights=path)


def test_the_first_bytes_of_a_pipe_are_never_waited_for(tmp_path: Path) -> None:
    """The doors that read a file's first bytes (a scan without an image suffix, a file told
    by its content as PyTorch or ONNX) opened it plainly: a named pipe blocked them."""
    from retinalnet._core.torch_load import not_torch_file
    from retinalnet.datasets._files_not_read import looks_like_a_scan
    from retinalnet.export._metadata import file_head

    pipe = _fifo(tmp_path / "IM0001")
    answers: list[object] = []

    def read() -> None:
        answers.append(looks_like_a_scan(str(pipe)))
        for head in (not_torch_file, file_head):
            with contextlib.suppress(SpecialFileError):
                head(pipe)
                answers.append("read")
        answers.append("done")

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=10)
    if reader.is_alive():  # release the blocked reader, so that the suite goes on
        with open(pipe, "wb"):
            pass
        reader.join(timeout=10)
    assert answers == [False, "done"]
