"""One file of an audit: read once, hashed, and decoded through the data sets' own checks,
so a file the audit passes is one they read; every failure is recorded as the file's reason
and the audit goes on."""

from __future__ import annotations

import hashlib
import io
import os
from typing import IO, Any, BinaryIO

from PIL import Image, UnidentifiedImageError

from retinalnet._core.images import (
    UnreadableImageError,
    bomb_reason,
    check_decoded,
    load_frames,
    pixels_over_limit,
)
from retinalnet._core.pixel_modes import model_mode, sixteen_bit_colour
from retinalnet._core.read_failure import EMPTY_FILE, read_failure
from retinalnet._core.regular_files import open_regular
from retinalnet._core.warning_filters import filter_in_this_thread, warnings_ignored

__all__ = ["inspect_file"]

_READ_WHOLE = 64 * 2**20
"""Files up to this size are read into memory once, hashed and decoded from there."""

_Decoded = tuple[str | None, str, tuple[int, int], str, bool, int]
"""Failure reason (or ``None``), mode, size, format, whether the pixels are flat, and the
EXIF orientation (1, as stored, when there is no tag)."""
_UNREAD: tuple[str, tuple[int, int], str, bool, int] = ("", (0, 0), "", False, 1)

_EXIF_ORIENTATION = 0x0112
_TURNED = range(2, 9)
"""The EXIF orientations that rotate or mirror the image (1 is as stored; others are invalid,
and ignored by viewers)."""

_FLAT_LEVELS = 2
"""The most two pixels of a flat image differ by, in 8-bit grey levels: a blank export
saved as JPEG keeps a level or two of ringing; an OCT scan's speckle spans dozens."""


def _is_flat(image: Image.Image) -> bool:
    """Whether every pixel the model gets from ``image`` has one grey level, give or take
    :data:`_FLAT_LEVELS` (every band: a blank page, not a scan). Judged on the grey levels
    of the one rule the data sets read the file by (:func:`model_mode`), not on its
    container: a 32-bit TIFF of 8-bit levels is read on the 8-bit scale."""
    extrema: Any = model_mode(image).getextrema()
    bands = extrema if isinstance(extrema[0], tuple) else (extrema,)
    return all(high - low <= _FLAT_LEVELS for low, high in bands)


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation of a decoded image, 2 to 8; 1 (as stored) when it has no tag,
    or an invalid one. Read from the header PIL has parsed: no pixel is touched again. A
    malformed EXIF block is no fault of the pixels (every reader ignores it): 1."""
    try:
        value = image.getexif().get(_EXIF_ORIENTATION)
    except Exception:  # PIL's errors for a malformed EXIF block are of many kinds
        return 1
    return value if isinstance(value, int) and value in _TURNED else 1


def _decode(source: IO[bytes], path: str) -> _Decoded:
    """Failure reason (or ``None``), mode, size, format, flatness and EXIF orientation of
    one image, decoded through the data sets' own checks (:func:`check_decoded`), so a file
    the audit passes is one they read. Every failure is this file's problem, recorded as a
    reason: the audit goes on."""
    try:
        with (
            filter_in_this_thread("ignore", Image.DecompressionBombWarning),
            Image.open(source) as image,
        ):
            mode, size, kind = image.mode, image.size, image.format or ""
            pixels = pixels_over_limit(size)  # refused as the readers refuse it
            if pixels is not None:
                return bomb_reason(ValueError(f"({pixels} pixels)")), *_UNREAD
            if sixteen_bit_colour(image):  # PIL reads them as 8-bit "RGB" or "RGBA"
                mode += ";16"
            with filter_in_this_thread("ignore", UserWarning):  # small scans: sizes reported
                admitted = check_decoded(image, path)  # a JPEG's damaged data refused too
            return None, mode, size, kind, _is_flat(admitted), _orientation(image)
    except UnreadableImageError as error:
        return error.reason or str(error), *_UNREAD
    except Image.DecompressionBombError as error:
        return bomb_reason(error), *_UNREAD
    except UnidentifiedImageError:
        return "not a recognised image format", *_UNREAD
    except (OSError, SyntaxError, ValueError) as error:
        return f"corrupt or truncated ({error})", *_UNREAD
    except Exception as error:  # a decoder bug on a crafted file must not stop the audit
        return f"cannot be decoded ({type(error).__name__}: {error})", *_UNREAD


def _is_dicom(path: str, head: bytes) -> bool:
    return path.lower().endswith(".dcm") or head[128:132] == b"DICM"


def _decode_dicom(path: str) -> _Decoded:
    """As :func:`_decode`, for a DICOM file: read as the data sets read it (one frame)."""
    try:
        with warnings_ignored():  # a small scan's warning: the sizes are reported
            image = load_frames(path, single=True)[0]
    except UnreadableImageError as error:
        return error.reason or str(error), *_UNREAD
    except ModuleNotFoundError as error:  # no pydicom: said for each DICOM file
        return str(error).split(": ", 1)[-1], *_UNREAD
    return None, image.mode, image.size, "DICOM", _is_flat(image), 1


def _first_bytes(file: BinaryIO) -> bytes:
    """The whole of ``file``, or its first ``_READ_WHOLE + 1`` bytes when it is larger.

    Read for the size the file has (``read(n)`` reserves ``n`` bytes first: 64 MiB for each
    scan of a few kilobytes), and on to the limit only if it grew meanwhile."""
    size = os.fstat(file.fileno()).st_size
    data = file.read(min(size, _READ_WHOLE) + 1)
    if len(data) > size:  # written to while read: never more than the limit
        data += file.read(_READ_WHOLE + 1 - len(data))
    return data


def inspect_file(
    path: str,
) -> tuple[bytes | None, str | None, str, tuple[int, int], str, bool, int]:
    """Digest (``None`` if unreadable or empty), failure reason, mode, size, format,
    flatness and EXIF orientation of one file.

    A file up to 64 MiB is read once into memory, hashed and decoded from there; a larger
    one is hashed in chunks and decoded from disk. A device or a named pipe named like a
    scan is not read (``/dev/zero`` never ends): its reason says what it is.
    """
    try:
        with open_regular(path) as file:
            data = _first_bytes(file)
            if not data:  # no copy of another file: two would be "leakage"
                return None, EMPTY_FILE, *_UNREAD
            if len(data) <= _READ_WHOLE:
                if _is_dicom(path, data[:132]):
                    return (hashlib.sha256(data).digest(), *_decode_dicom(path))
                return (hashlib.sha256(data).digest(), *_decode(io.BytesIO(data), path))
            hasher = hashlib.sha256(data)
            for chunk in iter(lambda: file.read(2**20), b""):
                hasher.update(chunk)
            if _is_dicom(path, data[:132]):
                return (hasher.digest(), *_decode_dicom(path))
            file.seek(0)
            return (hasher.digest(), *_decode(file, path))
    except OSError as error:  # in the words every door uses (a link loop, permissions)
        return None, read_failure(path, error), *_UNREAD
