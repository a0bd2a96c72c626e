"""Files a folder search leaves out that may still hold scans (another raster format, a
DICOM or OCT device file, an image that lost its suffix or a DICOM file named by its UID),
and the one warning naming them; the same rule keeps a file named on the command line."""

from __future__ import annotations

import os
from pathlib import Path

from retinalnet._core.caller_warnings import warn_caller
from retinalnet._core.classes import IMAGE_EXTENSIONS
from retinalnet._core.regular_files import open_regular

__all__ = ["looks_like_a_scan", "warn_of_files_not_read"]

_OCT_AND_DICOM_SUFFIXES = frozenset({".dicom", ".ima", ".e2e", ".fds", ".vol", ".oct", ".img"})
"""Suffixes of DICOM files and of OCT devices' own formats (Heidelberg, Topcon, Bioptigen)."""


_NOT_SCANS = frozenset(
    {".pdf", ".ps", ".eps", ".h5", ".hdf", ".ico", ".icns", ".cur", ".mpeg", ".mpg"}
    | {".grib", ".bufr", ".fit", ".fits", ".wmf", ".emf"}
)
"""Suffixes Pillow registers that are documents, data files, icons or videos, not B-scans
(a report, a model's weights in HDF5)."""


_BMP_HEADER_SIZES = frozenset({12, 40, 52, 56, 64, 108, 124})
"""The sizes of the header after a BMP file's own (BITMAPINFOHEADER and its kin)."""


def _starts_like_an_image(head: bytes) -> bool:
    """Whether a file's first bytes are those of a format read as an image: DICOM's ``DICM``
    after the preamble, PNG, JPEG, TIFF (and BigTIFF), GIF, WebP or BMP."""
    return (
        head[128:132] == b"DICM"
        or head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a"))
        or head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
        or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
        or (head[:2] == b"BM" and int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES)
    )


def _has_image_magic(path: str) -> bool:
    try:
        with open_regular(path) as file:  # a named pipe would block: refused
            return _starts_like_an_image(file.read(132))
    except OSError:  # cannot be read: said when it is read, if it ever is
        return False


def looks_like_a_scan(path: str) -> bool:
    """Whether a file that is not read as an image may still hold one: a suffix of another
    raster format Pillow knows (``.jfif``, ``.jp2``, ``.ppm``, ...), of DICOM or of an OCT
    device's format (``.ima``, ``.e2e``, ``.vol``, ...), or, whatever else its name is, the
    first bytes of a format read as an image (DICOM's ``DICM`` preamble, PNG, JPEG, TIFF, GIF,
    WebP, BMP): DICOM files often have no suffix or are named by their UID
    (``1.2.826.0.1.3680043.8.498.10254657``, whose "suffix" is digits) or ``IM0001.bin``, and
    a suffix can be lost on the way. Notes, tables, reports and a ``LICENSE`` (``.txt``,
    ``.csv``, ``.md``, ``.pdf``) do not, nor do macOS's AppleDouble files (``._CNV-1-1.jpeg``,
    metadata of the file of that name).

    .. versionchanged:: 0.2
       A file without a suffix is recognised by the first bytes of PNG, JPEG, TIFF, GIF,
       WebP and BMP too (was: DICOM's only); AppleDouble files never look like scans; the
       first bytes are read also for a suffix of digits or ``.bin`` (was: only without a
       suffix, so a DICOM file named by its UID or ``.bin`` did not look like one); a file of
       another suffix (``scan.jpeg.part``, ``scan.jpeg.bak``) is not read as a scan.
    """
    from PIL import Image

    if Path(path).name.startswith("._"):
        return False
    suffix = os.path.splitext(path)[1].lower()
    if suffix in _OCT_AND_DICOM_SUFFIXES:
        return True
    if suffix in _NOT_SCANS:
        return False
    if suffix in Image.registered_extensions():
        return True
    if suffix and not (suffix[1:].isdigit() or suffix == ".bin"):
        return False  # a backup or a partial download ('a.jpeg.bak', 'c.jpeg.part'), a document
    return _has_image_magic(path)


_NO_SUFFIX = "no suffix"
_NO_IMAGE_SUFFIX = "without an image suffix"


def _counted_as(path: str) -> str:
    """How :func:`warn_of_files_not_read` counts a file that may be a scan: by its suffix when
    that is a scan format's, else as having none, or none of an image's (a DICOM file named
    by its UID: its "suffix" is digits)."""
    from PIL import Image

    suffix = os.path.splitext(path)[1].lower()
    if not suffix:
        return _NO_SUFFIX
    if suffix in _OCT_AND_DICOM_SUFFIXES or suffix in Image.registered_extensions():
        return suffix
    return _NO_IMAGE_SUFFIX


def warn_of_files_not_read(others: list[str], where: str) -> None:
    """Warn once that the files among ``others`` that may hold scans (see
    :func:`looks_like_a_scan`), found under ``where``, are not read, counting them by suffix
    and naming one; nothing when there are none."""
    scans = sorted(path for path in others if looks_like_a_scan(path))
    if not scans:
        return
    suffixes: dict[str, int] = {}
    for path in scans:
        suffix = _counted_as(path)
        suffixes[suffix] = suffixes.get(suffix, 0) + 1
    counted = ", ".join(f"{n} {suffix}" for suffix, n in sorted(suffixes.items()))
    read = ", ".join(sorted(IMAGE_EXTENSIONS))
    formats = "its format's (.dcm for DICOM, .png, .jpeg, ...)"
    if _NO_IMAGE_SUFFIX in suffixes:
        fix = (
            "convert such scans to PNG and give a file without an image suffix (a DICOM file "
            f"named by its UID, a .bin) {formats}"
        )
    elif _NO_SUFFIX in suffixes:
        fix = f"convert such scans to PNG and give a file without a suffix {formats}"
    else:
        fix = "convert such scans to PNG (a DICOM file needs the .dcm suffix)"
    warn_caller(
        f"{len(scans)} file(s) under {where!r} may be scans but are not read ({counted}; e.g. "
        f"{scans[0]!r}): the suffixes read are {read}; {fix}, or move the files out of the "
        "folder",
        UserWarning,
    )
