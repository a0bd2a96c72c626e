"""Which files a folder search leaves out may still be scans (``looks_like_a_scan``), and the
one warning that counts them."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from retinalnet.datasets import find_images
from retinalnet.datasets._files_not_read import looks_like_a_scan

DICOM_START = bytes(128) + b"DICM" + bytes(16)


def _png(path: Path) -> None:
    Image.new("L", (8, 8), 90).save(path, format="PNG")


def _write(path: Path, content: str) -> None:
    """A file of ``content``: ``dicom`` (the preamble and ``DICM``), ``png``, ``text``,
    ``zeros`` or ``empty``."""
    if content == "png":
        _png(path)
        return
    data = {"dicom": DICOM_START, "text": b"not a scan", "zeros": bytes(200), "empty": b""}
    path.write_bytes(data[content])


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        # the first bytes decide without a suffix, or for one of digits (a UID) or .bin
        ("1.2.826.0.1.3680043.8.498.10254657", "dicom", True),  # was: False (its digits)
        ("IM0001.bin", "dicom", True),  # was: False
        ("IM0001", "dicom", True),
        # a backup or a partial download is no scan to read, whatever it starts with
        ("scan.backup", "png", False),
        ("c.jpeg.part", "png", False),
        ("a.jpeg.bak", "png", False),
        ("notes.42", "text", False),
        ("IM0001.bin", "zeros", False),
        ("LICENSE", "text", False),
        # the suffix decides for scan formats, documents and AppleDouble files
        ("scan.jfif", "empty", True),
        ("scan.e2e", "empty", True),
        ("report.pdf", "dicom", False),
        ("._1.2.826.0.1.3680043", "dicom", False),
    ],
)
def test_a_file_may_be_a_scan_by_its_suffix_or_else_its_first_bytes(
    tmp_path: Path, name: str, content: str, expected: bool
) -> None:
    path = tmp_path / name
    _write(path, content)
    assert looks_like_a_scan(str(path)) is expected


def test_a_folders_dicom_files_named_by_their_uid_are_counted_as_not_read(
    tmp_path: Path,
) -> None:
    # docs/dicom.rst: folders list .dcm files only; the others that start like DICOM are said
    # (was: left out without a word, their numeric "suffix" not a scan format's)
    _png(tmp_path / "scan.png")
    for index in range(3):
        (tmp_path / f"1.2.826.0.1.3680043.8.498.{index}").write_bytes(DICOM_START)
    (tmp_path / "notes.txt").write_text("not a scan")

    with pytest.warns(UserWarning, match="may be scans") as warned:
        found = find_images(tmp_path)

    assert found == [tmp_path / "scan.png"]
    [message] = [str(w.message) for w in warned]
    first = tmp_path / "1.2.826.0.1.3680043.8.498.0"
    assert message.startswith(
        f"3 file(s) under {str(tmp_path)!r} may be scans but are not read (3 without an image "
        f"suffix; e.g. {str(first)!r}): "
    )
    assert message.endswith(
        "convert such scans to PNG and give a file without an image suffix (a DICOM file named "
        "by its UID, a .bin) its format's (.dcm for DICOM, .png, .jpeg, ...), or move the files "
        "out of the folder"
    )
