"""Reading image files with errors that name the file, and the one gate every image input
passes (:func:`coerce_image`): whatever comes in leaves as an ``"L"`` or ``"RGB"`` image of a
plausible size, or is refused with an error that names it.

The rules are in :func:`to_model_mode` (what each PIL mode becomes, applied by
:mod:`retinalnet._core.pixel_modes` with one scale per file, and per volume:
:func:`coerce_volume`), :func:`coerce_image` (which tensors and NumPy arrays are refused)
and :func:`load_image` (sizes, decompression bombs, EXIF), and
together on the docs page "What retinalnet does with bad input". DICOM files pass the same
gate: :mod:`retinalnet._core.dicom` turns their pixels into grey levels (docs page "DICOM and
OCT volumes") and this module names the file in every error; :func:`load_frames` reads all
the B-scans of a volume.

Why this module is long: it is the one input gate. Decoding, the size and bomb checks, the
mode rules and the tensor and array checks share their private helpers and their error
type, and every door (files, PIL images, tensors, arrays, volumes given in order, data sets,
DataLoader workers) must pass all of them; kept in one module, no door can skip a rule.
"""

from __future__ import annotations

import ast
import io
import os
import re
import sys
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeAlias, Union

import numpy as np
import torch
from PIL import Image, ImageFile, UnidentifiedImageError
from torchvision.transforms.functional import to_pil_image

from retinalnet._core.articles import type_with_article
from retinalnet._core.caller_warnings import warn_caller
from retinalnet._core.codestreams import jpeg_frame
from retinalnet._core.counts import as_integer
from retinalnet._core.dicom import (
    DICOM_EXTENSIONS,
    DicomReadError,
    Unwindowed,
    has_dicom_preamble,
    read_frames,
    read_header,
)
from retinalnet._core.dicom_pixels import dark_reason
from retinalnet._core.gif_blocks import ends_before_trailer
from retinalnet._core.jpeg_damage import DATA_ENDS_EARLY, short_data_reason, with_end_withheld
from retinalnet._core.pixel_modes import (
    OVERSHOOT,
    FileScale,
    file_scale,
    in_frame,
    model_mode,
    sixteen_bit_colour,
    stretch_warning,
)
from retinalnet._core.pixel_modes import UnusablePixelsError as _UnusablePixelsError
from retinalnet._core.read_failure import EMPTY_FILE, is_empty, read_failure
from retinalnet._core.regular_files import SpecialFileError, check_regular_file, open_regular
from retinalnet._core.tiff_pages import cut_short_reason
from retinalnet._core.volume_pixels import volume_pixels_reason
from retinalnet._core.warning_filters import filter_in_this_thread

__all__ = [
    "MAX_IMAGE_ASPECT",
    "MIN_IMAGE_SIDE",
    "SMALL_IMAGE_SIDE",
    "ImageInput",
    "ImageNotFoundError",
    "UnreadableImageError",
    "bomb_reason",
    "check_decoded",
    "coerce_image",
    "coerce_volume",
    "draft_scale",
    "frame_count",
    "image_size",
    "is_dicom",
    "load_frames",
    "load_image",
    "pixels_over_limit",
    "to_model_mode",
    "warn_of_full_scale_images",
]

ImageInput: TypeAlias = Union[
    str, "os.PathLike[str]", Image.Image, torch.Tensor, "np.ndarray[Any, Any]"
]
"""A single image: a file path, a PIL image, an image tensor ``(H, W)``, ``(1, H, W)`` or
``(3, H, W)``, or a NumPy array ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` (channels last);
a tensor or array is uint8 or float in [0, 1] (not a normalised model input).

.. versionchanged:: 0.2
   NumPy arrays."""

MIN_IMAGE_SIDE = 8
"""Images with a side shorter than this (pixels) are refused: no B-scan is that small."""

SMALL_IMAGE_SIDE = 32
"""Images with a side shorter than this (pixels, the smallest model input) are accepted with
a warning: the model sees them upsampled, with little detail."""

MAX_IMAGE_ASPECT = 32
"""Images whose longer side is more than this many times their shorter side are refused: a
B-scan is about 1:1 (512 x 496) to 3:1 (1536 x 496), and resizing the shorter side of a
400,000 x 8 strip to 256 pixels would need a 13-gigapixel image."""

_DRAFT_SLACK = 0.95

_MESSAGE = re.compile(r"cannot read image ('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"): ([^\n]*)")
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


class UnreadableImageError(OSError):
    """An image file could not be opened or decoded, or holds no usable image.

    Raised for missing, corrupt and truncated files, decompression bombs, images smaller than
    :data:`MIN_IMAGE_SIDE` and pixels without a meaning to give the model (see
    :func:`load_image`). It is an :class:`OSError`, so ``KermanyOCT(on_error="skip")`` skips
    every one of them; a missing file's is an :class:`ImageNotFoundError`, also a
    :class:`FileNotFoundError`.

    Parameters
    ----------
    path
        The file that failed.
    reason
        What went wrong, in a few words. When it is omitted, ``path`` is taken as a whole
        message: torch's DataLoader re-raises a worker's error as ``type(error)(text)``, and
        the path and reason are read back from that text, so the error arrives in the main
        process with the same one-line message (the worker's traceback is kept as a note).

    Attributes
    ----------
    path : pathlib.Path or None
        The file that failed, so callers can skip or report it (``None`` only if it could
        not be read back from a worker's message).
    reason : str
        What went wrong.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str | None = None) -> None:
        self.path: Path | None
        if reason is None:
            message = str(path)
            matches = _MESSAGE.findall(message)
            if not matches:
                self.path, self.reason = None, message
                super().__init__(message)
                return
            quoted, reason = matches[-1]  # the worker's own error line comes last
            path = ast.literal_eval(quoted)
            if message != f"cannot read image {quoted}: {reason}" and sys.version_info >= (3, 11):
                self.add_note(message)  # the worker's traceback, shown below a traceback
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot read image {str(self.path)!r}: {reason}")

    def __reduce__(self) -> tuple[type[UnreadableImageError], tuple[str, str | None]]:
        if self.path is None:
            return (type(self), (str(self), None))
        return (type(self), (str(self.path), self.reason))


class ImageNotFoundError(UnreadableImageError, FileNotFoundError):
    """An image file that does not exist: an :class:`UnreadableImageError` (skipped by
    ``on_error="skip"`` as any other) that a program's ``except FileNotFoundError`` catches
    too, as it catches ``open()``'s.

    .. versionadded:: 0.2
    """


def draft_scale(size: tuple[int, int], target_size: int) -> int:
    """The JPEG reduction (1, 2, 4 or 8) :func:`load_image` uses for ``target_size``.

    The largest reduction whose shorter side stays at least ``0.95 * target_size``: the
    resize that follows then upsamples by 5% at most (a 512 x 496 Kermany scan is read at
    256 x 248 for the default 256 px resize). After the evaluation preprocessing the result
    differs from a full decode by about 1 to 2 grey levels on average (1.9 over the 80 real
    scans of the developer sample, at most 4.4 for one scan): libjpeg's scaled decode
    smooths the speckle a little differently from an antialiased resize.

    Parameters
    ----------
    size
        The image's (width, height).
    target_size
        The shorter side the image is resized to next.

    Returns
    -------
    int
        The divisor of both sides; 1 means a full decode.

    Examples
    --------
    >>> draft_scale((512, 496), 256)
    2
    >>> draft_scale((512, 496), 300)
    1
    >>> draft_scale((1536, 1536), 64)
    8

    .. versionadded:: 0.2
    """
    shorter = min(size)
    for scale in (8, 4, 2):
        if shorter / scale >= _DRAFT_SLACK * target_size:
            return scale
    return 1


def load_image(path: str | os.PathLike[str], *, target_size: int | None = None) -> Image.Image:
    """Open and fully decode an image file, as an ``"L"`` or ``"RGB"`` image.

    The pixels are read immediately (not lazily), so a truncated or corrupt file fails here,
    with its path, rather than later inside a transform. Every other mode is converted by
    the rules of :func:`to_model_mode` (a 16-bit scan is rescaled by its bit depth, not
    clipped). The EXIF orientation tag is ignored, as torchvision and OCT exporters do: the
    pixels are used as stored, never rotated.

    Parameters
    ----------
    path
        An image file PIL can read (JPEG and PNG for OCT scans; 16-bit PNG and TIFF too), or
        a single-frame DICOM file (``.dcm``, or any file with the DICOM preamble; needs the
        ``dicom`` extra), whose pixels become grey levels by the rules of the docs page
        "DICOM and OCT volumes". A multi-frame DICOM file, a multi-page TIFF and an
        animated PNG are volumes and are refused here: read them with :func:`load_frames`
        (:func:`retinalnet.volume.read_volume`).

        .. versionchanged:: 0.2
           DICOM files.
    target_size
        The shorter side the image will be resized to next (``Preprocessing().resize``, 256
        by default). When given, a JPEG at least about twice as large is decoded at 1/2,
        1/4 or 1/8 scale by libjpeg (PIL's draft mode, see :func:`draft_scale`), which is
        much faster; the image returned is then smaller than the file. ``None`` (the
        default) always decodes at full size. PNG and DICOM files are always decoded at
        full size.

        .. versionadded:: 0.2

    Returns
    -------
    PIL.Image.Image
        The decoded image, ``"L"`` (Kermany scans) or ``"RGB"``.

    Raises
    ------
    UnreadableImageError
        If the file is missing, cannot be read (permissions, a symbolic link loop: said in
        words), is a device or a named pipe (refused before it is opened), is empty (0
        bytes), is not an image, is truncated or corrupt (also a multi-frame GIF or TIFF
        whose frames cannot be counted, and a JPEG closed with an end
        marker whose data end before its last rows, or are too short for the size its
        header claims: docs page "What retinalnet does with bad input"), claims more
        pixels than PIL's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``, about
        89 megapixels; set it higher, or to ``None``, to read such a file), has a side shorter
        than :data:`MIN_IMAGE_SIDE` pixels or more than :data:`MAX_IMAGE_ASPECT` times the
        other, holds several frames (a multi-page TIFF, an animated PNG), or holds pixels
        :func:`to_model_mode` refuses (NaN, a 16-bit image holding 12-bit data). For DICOM
        also: no pixel data, a non-image SOP class, a transfer syntax no installed decoder
        reads (named with its UID), several frames, a compressed frame claiming another
        size than the header's. The message names the file (never a patient tag).
    ModuleNotFoundError
        For a DICOM file when pydicom is not installed (``pip install "retinalnet[dicom]"``).

    Warns
    -----
    UserWarning
        If a side is shorter than :data:`SMALL_IMAGE_SIDE` pixels.

    Examples
    --------
    >>> from retinalnet.datasets import load_image
    >>> image = load_image("CNV-1016042-1.jpeg")  # doctest: +SKIP
    >>> small = load_image("CNV-1016042-1.jpeg", target_size=256)  # doctest: +SKIP

    .. versionchanged:: 0.2
       Returns ``"L"`` or ``"RGB"`` images only; refuses decompression bombs, tiny and
       strip-shaped images, files of several frames and unusable pixels with
       :class:`UnreadableImageError`.
    """
    size = None if target_size is None else as_integer(target_size)
    if target_size is not None and (size is None or size < 1):
        raise ValueError(
            f"target_size must be a positive int (the shorter side after resizing) or None, "
            f"got {target_size!r}"
        )
    file = Path(path)
    decoded = _decode(file, size)
    if decoded.admitted:
        return decoded.image
    return _admit(decoded.image, decoded.size, file, decoded.wide)


@dataclass(frozen=True)
class _Decoded:
    """One frame of a file, decoded and not yet through the gate (:func:`_admit`)."""

    image: Image.Image
    size: tuple[int, int]  # the file's, before a reduced decode
    wide: bool  # it held 16-bit colour samples (sixteen_bit_colour)
    admitted: bool  # a DICOM file's: through its own rules and the gate already
    format: str | None  # the file's format (PIL's name), which a copy does not keep
    unwindowed: Unwindowed | None = None  # a DICOM file's, when its dark check was left


def _decode(file: Path, target_size: int | None, *, check_dark: bool = True) -> _Decoded:
    """The one frame of a file (refusing several), as :func:`load_image` reads it; a JPEG
    file is read once and parsed once (:func:`_decode_jpeg`).

    ``check_dark=False``: a DICOM file's nearly black frame is not refused but said in
    ``unwindowed``, for the check over the whole volume (:func:`coerce_volume`)."""
    if file.suffix.lower() in DICOM_EXTENSIONS:
        return _decode_dicom(file, check_dark)
    try:
        data = _jpeg_file(file)
        if data is not None:
            return _decode_jpeg(data, file, target_size)
        with _open(file) as opened:
            pages = _frame_indices(opened, file)
            if len(pages) > 1:
                raise UnreadableImageError(file, _volume_reason(len(pages)))
            opened.seek(pages[0])  # past a TIFF's preview pages
            size = opened.size
            wide = sixteen_bit_colour(opened)
            decoded = _decoded_frame(opened, file, target_size)
            image = decoded.copy() if decoded is opened else decoded  # the file closes next
            kind = opened.format
    except UnreadableImageError:
        raise
    except SpecialFileError as error:
        raise UnreadableImageError(file, error.reason) from None
    except UnidentifiedImageError:
        if has_dicom_preamble(file):
            return _decode_dicom(file, check_dark)
        raise UnreadableImageError(file, _unrecognised(file)) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise _read_error(file, error) from None
    return _Decoded(image, size, wide, admitted=False, format=kind)


def _jpeg_file(file: Path) -> bytes | None:
    """The bytes of ``file`` when they begin as a JPEG's (read once, for the damage checks
    and the decode alike: :func:`_decode_jpeg`); ``None`` for any other file, which PIL
    opens by its path, for a file over 64 MiB, and under ``ImageFile.LOAD_TRUNCATED_IMAGES``
    (both decoded as they are, as :func:`_jpeg_bytes` leaves them).

    Raises
    ------
    SpecialFileError
        For a device, a named pipe or a socket, before it is opened.
    OSError
        As ``open``: a missing file, a folder, permissions.
    """
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        return None
    with open_regular(file) as stream:
        head = stream.read(len(_JPEG_START))
        if head != _JPEG_START or os.fstat(stream.fileno()).st_size > _JPEG_READ_WHOLE:
            return None
        return head + stream.read()


def _decode_jpeg(data: bytes, file: Path, target_size: int | None) -> _Decoded:
    """:func:`_decode` for a file whose bytes ``data`` begin as a JPEG's: PIL parses one
    copy of them, the one it decodes, with the end marker withheld where the damage checks
    need it (:mod:`retinalnet._core.jpeg_damage`); the checks, their order and their errors
    are those of a file opened by its path (:func:`_decoded_frame`). A multi-picture file
    (MPO) is decoded as PIL reads it, as then."""
    frame = jpeg_frame(data)
    withheld = None if frame is None else with_end_withheld(data, frame)
    opened = _opened(io.BytesIO(data if withheld is None else withheld), file)
    if opened.format != "JPEG":
        if withheld is not None:
            opened = _opened(io.BytesIO(data), file)
        frame = withheld = None
    pages = _frame_indices(opened, file)
    if len(pages) > 1:
        raise UnreadableImageError(file, _volume_reason(len(pages)))
    opened.seek(pages[0])
    size = opened.size
    wide = sixteen_bit_colour(opened)
    if frame is not None:
        reason = short_data_reason(data, frame)
        if reason is not None:
            raise UnreadableImageError(file, reason)
    _load(opened, file, target_size, withheld=withheld is not None)
    # read from bytes, the image holds no file: returned as it is, not copied
    return _Decoded(opened, size, wide, admitted=False, format=opened.format)


def _decode_dicom(file: Path, check_dark: bool) -> _Decoded:
    frames, unwindowed = _dicom_frames(file, single=True, check_dark=check_dark)
    frame = frames[0]
    return _Decoded(
        frame, frame.size, wide=False, admitted=True, format="DICOM", unwindowed=unwindowed
    )


def check_decoded(image: Image.Image, path: str | os.PathLike[str]) -> Image.Image:
    """The checks :func:`load_image` makes on a decoded file, for an image opened elsewhere.

    One frame, a plausible size (:data:`MIN_IMAGE_SIDE`, :data:`MAX_IMAGE_ASPECT`) and
    pixels :func:`to_model_mode` gives a meaning: ``retinalnet audit`` decodes each file once
    (to hash it too) and calls this, so it refuses exactly the files the data sets refuse.

    Parameters
    ----------
    image
        An opened PIL image of ``path`` (its frames are counted, its pixels decoded; a
        JPEG's from its file's bytes, by the checks of damaged data :func:`load_image`
        makes, into the image returned).
    path
        The file, named in the error.

    Returns
    -------
    PIL.Image.Image
        The image in ``"L"`` or ``"RGB"``.

    Raises
    ------
    UnreadableImageError
        As :func:`load_image`, naming ``path``.

    .. versionadded:: 0.2
    """
    file = Path(path)
    pages = _frame_indices(image, file)
    if len(pages) > 1:
        raise UnreadableImageError(file, _volume_reason(len(pages)))
    try:
        image.seek(pages[0])  # past a TIFF's preview pages
        wide = sixteen_bit_colour(image)
        decoded = _decoded_frame(image, file)
    except UnreadableImageError:
        raise
    except (OSError, SyntaxError, ValueError) as error:
        raise _read_error(file, error) from None
    return _admit(decoded, decoded.size, file, wide)


_JPEG_READ_WHOLE = 64 * 2**20
"""JPEG files up to this size are read into memory for the damage checks (a scan is well
under 1 MiB); larger ones are decoded as they are."""

_JPEG_START = b"\xff\xd8"
"""A JPEG's first bytes, its start-of-image marker (an MPO file's too)."""


def _decoded_frame(opened: Image.Image, file: Path, target_size: int | None = None) -> Image.Image:
    """The current frame of ``opened``, decoded (a JPEG's at reduced scale for
    ``target_size``, :func:`draft_scale`): ``opened`` itself, or for a JPEG file not
    decoded yet, a new image decoded from its bytes with its end marker withheld, so that
    data ending before the last rows are refused, not filled with grey
    (:mod:`retinalnet._core.jpeg_damage`). Not under ``ImageFile.LOAD_TRUNCATED_IMAGES``,
    which asks PIL to read truncated files."""
    data = _jpeg_bytes(opened)
    frame = None if data is None else jpeg_frame(data)
    source = opened
    if data is not None and frame is not None:
        reason = short_data_reason(data, frame)
        if reason is not None:
            raise UnreadableImageError(file, reason)
        withheld = with_end_withheld(data, frame)
        if withheld is not None:
            source = Image.open(io.BytesIO(withheld), formats=["JPEG"])
    _load(source, file, target_size, withheld=source is not opened)
    return source  # an image of bytes needs no closing: loaded, it holds no file


def _load(source: Image.Image, file: Path, target_size: int | None, *, withheld: bool) -> None:
    """Decode ``source``, a JPEG at reduced scale for ``target_size`` (:func:`draft_scale`).
    ``withheld``: it is read from bytes whose end marker was withheld, and data that run out
    before its last rows are refused (:data:`DATA_ENDS_EARLY`)."""
    if target_size is not None and source.format == "JPEG":
        scale = draft_scale(source.size, target_size)
        if scale > 1:
            width, height = source.size
            source.draft(source.mode, (width // scale, height // scale))
    try:
        source.load()
    except OSError as error:
        if withheld and str(error).startswith("image file is truncated"):
            raise UnreadableImageError(file, DATA_ENDS_EARLY) from None
        raise


def _jpeg_bytes(opened: Image.Image) -> bytes | None:
    """The bytes of a JPEG file ``opened`` is read from, not decoded yet; ``None`` for any
    other image, a file over 64 MiB, or under ``ImageFile.LOAD_TRUNCATED_IMAGES``."""
    stream = getattr(opened, "fp", None)
    if (
        opened.format != "JPEG"
        or not getattr(opened, "tile", None)
        or stream is None
        or ImageFile.LOAD_TRUNCATED_IMAGES
    ):
        return None
    try:
        place = stream.tell()
        size = stream.seek(0, os.SEEK_END)
        if size > _JPEG_READ_WHOLE:
            stream.seek(place)
            return None
        stream.seek(0)
        data: bytes = stream.read()
        stream.seek(place)
    except (OSError, ValueError, AttributeError):  # closed, or not seekable: decoded as it is
        return None
    return data


def _admit(image: Image.Image, size: tuple[int, int], file: Path, wide: bool) -> Image.Image:
    """A decoded file's size and pixels through the gate; errors name the file.

    ``wide``: the file held 16-bit colour samples (:func:`sixteen_bit_colour`)."""
    try:
        _check_size(size, repr(str(file)))
        scale = file_scale([image], [wide])
        admitted = model_mode(image, scale)
    except _UnusablePixelsError as error:
        raise UnreadableImageError(file, str(error)) from None
    _warn_of_stretch(scale, f"image {str(file)!r}")
    return admitted


def _admit_frames(images: list[Image.Image], wide: list[bool], file: Path) -> list[Image.Image]:
    """The frames of a volume through the gate, its numbers read by one scale chosen from all
    of them (a dim B-scan stays dim); errors name the file, and the B-scan where it is one."""
    count = len(images)
    try:
        for index, image in enumerate(images):
            try:
                _check_size(image.size, repr(str(file)), warn=False)
            except _UnusablePixelsError as error:
                raise _UnusablePixelsError(in_frame(index, count, str(error))) from None
        scale = file_scale(images, wide)
        admitted = []
        for index, image in enumerate(images):
            try:
                admitted.append(model_mode(image, scale))
            except _UnusablePixelsError as error:
                raise _UnusablePixelsError(in_frame(index, count, str(error))) from None
    except _UnusablePixelsError as error:
        raise UnreadableImageError(file, str(error)) from None
    _warn_of_stretch(scale, f"the volume {str(file)!r} (its {count} B-scans together)")
    _warn_of_small_frames(admitted, f"the volume {str(file)!r}")
    return admitted


_SAID_SMALL: dict[int, weakref.ref[Image.Image]] = {}
"""The B-scans of a volume whose small size its one warning said (by ``id``, while they
live; PIL images cannot be hashed): not said again, one by one, when they are predicted
(``image 3 is only 16 x 16 pixels``)."""


def _mark_said(images: Sequence[Image.Image]) -> None:
    for image in images:
        key = id(image)

        def forget(_: weakref.ref[Image.Image], key: int = key) -> None:
            _SAID_SMALL.pop(key, None)

        _SAID_SMALL[key] = weakref.ref(image, forget)


def _was_said(image: Image.Image) -> bool:
    ref = _SAID_SMALL.get(id(image))
    return ref is not None and ref() is image


def _warn_of_small_frames(images: Sequence[Image.Image], name: str) -> None:
    """One warning for a volume's B-scans shorter than :data:`SMALL_IMAGE_SIDE`, counting
    them and naming the first (not one per B-scan: 20,000 lines for an animated GIF)."""
    small = [index for index, image in enumerate(images) if min(image.size) < SMALL_IMAGE_SIDE]
    _mark_said(images)
    if not small:
        return
    width, height = images[small[0]].size
    warn_caller(
        f"{len(small)} of the {len(images)} B-scans of {name} are smaller than the smallest "
        f"model input ({SMALL_IMAGE_SIDE} pixels), e.g. B-scan {small[0]} of {width} x "
        f"{height}: the model sees them upsampled, with little detail; check that they are "
        "whole B-scans",
        UserWarning,
    )


def _warn_of_stretch(scale: FileScale, name: str) -> None:
    """Warn, at the caller's code, that ``name``'s pixels were stretched from their own range
    (values no bit depth explains: :func:`to_model_mode`)."""
    for low, high in scale.stretches:
        warn_caller(stretch_warning(name, low, high), UserWarning)


def _read_error(file: Path, error: Exception) -> UnreadableImageError:
    """The error for a file that failed to open or decode: the operating system's reason in
    words (a missing file, permissions, a link loop), else a corrupt or truncated file. A
    missing file's is an :class:`ImageNotFoundError`, which ``except FileNotFoundError``
    catches too."""
    kind = ImageNotFoundError if isinstance(error, FileNotFoundError) else UnreadableImageError
    return kind(file, read_failure(file, error))


def _dicom_error(file: Path, error: DicomReadError) -> UnreadableImageError:
    """The error for a DICOM file that cannot be read, of the kind :func:`_read_error` gives."""
    kind = ImageNotFoundError if error.not_found else UnreadableImageError
    return kind(file, str(error))


def _frames_of(opened: Image.Image, file: Path) -> int:
    """How many B-scans an opened file holds (see :func:`_frame_indices`)."""
    return len(_frame_indices(opened, file))


_REDUCED_RESOLUTION = 1  # bit 0 of a TIFF page's NewSubfileType (tag 254): a preview


def _frame_indices(opened: Image.Image, file: Path) -> list[int]:
    """The frames of an opened file that are images: a TIFF's pages less its previews
    (pages marked as reduced-resolution copies of another), an animated PNG's or GIF's
    frames. The file is left at the frame it was at.

    A multi-picture JPEG (MPO, from stereo cameras) counts as one: its first picture is the
    image and the others are alternate views of it.

    Every reader of a file of frames passes here first, so this is where a file cut short
    is refused, naming ``file``: PIL walks the frames to count them, and on a truncated file
    raises whatever its parser meets (``IndexError`` or ``struct.error`` for a GIF,
    ``TypeError: Missing dimensions`` for a TIFF), which become an
    :class:`UnreadableImageError` (``"corrupt or truncated (...)"``), skipped by
    ``on_error="skip"`` as any other. A GIF of several frames that ends before its trailer
    (cut between two frames, which PIL reads as a shorter volume) is refused too
    (:mod:`retinalnet._core.gif_blocks`), and so is a TIFF that ends before its last
    directory, a value of one or a page's strips or tiles (cut inside a page's directory,
    which PIL reads as a shorter volume with only its own warning, naming no file):
    :mod:`retinalnet._core.tiff_pages`, before PIL walks the pages.
    """
    reason = _tiff_cut_short(opened)
    if reason is not None:
        raise UnreadableImageError(file, reason)
    try:
        pages = _counted_frames(opened)
    except Image.DecompressionBombError as error:  # a GIF frame larger than the screen
        raise UnreadableImageError(file, bomb_reason(error)) from None
    except OSError as error:
        raise _read_error(file, error) from None
    except MemoryError:
        raise
    except Exception as error:  # PIL's parsers raise any type on cut data
        raise UnreadableImageError(file, _uncountable(error)) from None
    if len(pages) > 1 and opened.format == "GIF" and _gif_cut_short(opened):
        raise UnreadableImageError(
            file,
            f"corrupt or truncated (its data end before the GIF trailer, after {len(pages)} "
            "frames: a volume cut short, its last B-scans missing); copy it again from its "
            "source",
        )
    return pages


def _counted_frames(opened: Image.Image) -> list[int]:
    """:func:`_frame_indices` as PIL reads them, its errors as PIL raises them."""
    frames = int(getattr(opened, "n_frames", 1))
    if opened.format == "MPO" or frames == 1:
        return [0]
    if opened.format != "TIFF":
        return list(range(frames))
    current, pages = opened.tell(), []
    for index in range(frames):
        opened.seek(index)
        subfile = getattr(opened, "tag_v2", {}).get(254, 0)
        if not int(subfile) & _REDUCED_RESOLUTION:
            pages.append(index)
    opened.seek(current)
    return pages or [0]


def _uncountable(error: Exception) -> str:
    """Why a file whose frames PIL could not count is refused, with PIL's error."""
    kind = type(error)
    name = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"
    said = f"{name}: {error}" if str(error) else name
    return f"corrupt or truncated (its frames cannot be counted: {said})"


def _gif_cut_short(opened: Image.Image) -> bool:
    """Whether the GIF file ``opened`` is read from ends before its trailer
    (:func:`~retinalnet._core.gif_blocks.ends_before_trailer`); ``False`` when its file
    cannot be read again (closed: an image given in memory)."""
    stream = getattr(opened, "fp", None)
    if stream is None:
        return False
    try:
        place = stream.tell()
        stream.seek(0)
        data: bytes = stream.read()
        stream.seek(place)
    except (OSError, ValueError, AttributeError):
        return False
    return ends_before_trailer(data)


def _tiff_cut_short(opened: Image.Image) -> str | None:
    """Why the TIFF file ``opened`` is read from is refused as cut short
    (:func:`~retinalnet._core.tiff_pages.cut_short_reason`), or ``None``: it is whole, no
    TIFF, or its file cannot be read again (closed: an image given in memory)."""
    stream = getattr(opened, "fp", None)
    if opened.format != "TIFF" or stream is None:
        return None
    try:
        where = cut_short_reason(stream)
    except (OSError, ValueError, AttributeError):
        return None
    return None if where is None else _tiff_cut_reason(where)


def _tiff_cut_reason(where: str) -> str:
    """The refusal of a TIFF file cut short, from where it ends too early."""
    return (
        f"corrupt or truncated ({where}: the file was cut short, so pages or their data are "
        "missing); copy it again from its source"
    )


def _volume_reason(frames: int) -> str:
    return (
        f"it holds {frames} frames (a multi-page TIFF or an animated image: an OCT volume), "
        "not one B-scan: read it with retinalnet.volume.read_volume, or predict it with "
        "retinalnet.volume.predict_volume (`retinalnet predict` summarises volumes)"
    )


def is_dicom(path: str | os.PathLike[str]) -> bool:
    """Whether a file is read as DICOM: a ``.dcm`` suffix, or the ``DICM`` preamble.

    .. versionadded:: 0.2
    """
    file = Path(path)
    return file.suffix.lower() in DICOM_EXTENSIONS or has_dicom_preamble(file)


def load_frames(path: str | os.PathLike[str], *, single: bool = False) -> list[Image.Image]:
    """Every B-scan of a file: the frames of a DICOM file, the pages of a multi-page TIFF
    or the frames of an animated PNG, or ``[load_image(path)]``.

    Parameters
    ----------
    path
        A file of one or more frames: DICOM, TIFF, PNG, or any image :func:`load_image`
        reads. Every frame passes the checks of :func:`load_image` (size, pixel meaning),
        by one rule for the whole file (:func:`to_model_mode`): the range of float or 32-bit
        frames and the 12-bit refusal of 16-bit ones are those of all the frames together.
    single
        Refuse a file of several frames (what :func:`load_image` does).

    Returns
    -------
    list of PIL.Image.Image
        ``"L"`` (or ``"RGB"``) images, in the file's frame order.

    Raises
    ------
    UnreadableImageError
        As :func:`load_image`; the message names the file, and the B-scan (numbered from
        0) when the fault is in one. A volume cut short (an interrupted copy) is refused,
        never read as a shorter one: frames PIL cannot count, data ending inside a frame,
        a GIF of several frames that ends before its trailer, a TIFF that ends before its
        last page's directory or data.
    ModuleNotFoundError
        For a DICOM file when pydicom is not installed.

    .. versionadded:: 0.2

    .. versionchanged:: 0.2
       Multi-page TIFF files and animated PNGs. A volume claiming more pixels in all than
       four times ``PIL.Image.MAX_IMAGE_PIXELS`` is refused from its header, before any
       frame is decoded; small B-scans are warned of once for the file, counted.
    """
    file = Path(path)
    if not is_dicom(file):
        return _pil_frames(file, single=single)
    return _dicom_frames(file, single=single, check_dark=True)[0]


def _dicom_frames(
    file: Path, *, single: bool, check_dark: bool
) -> tuple[list[Image.Image], Unwindowed | None]:
    """The frames of a DICOM file, as :func:`load_frames` reads them; ``check_dark=False``
    leaves the nearly-black check to the caller (:func:`coerce_volume`, for all the files
    of a volume), giving it what the check reads."""
    try:
        pixels, header, unwindowed = read_frames(file, single=single, check_dark=check_dark)
        _check_size((header.columns, header.rows), repr(str(file)), warn=header.frames == 1)
    except DicomReadError as error:
        raise _dicom_error(file, error) from None
    except _UnusablePixelsError as error:
        raise UnreadableImageError(file, str(error)) from None
    frames = [Image.fromarray(frame) for frame in pixels]
    if len(frames) > 1:
        _warn_of_small_frames(frames, f"the volume {str(file)!r}")
    return frames, unwindowed


def frame_count(path: str | os.PathLike[str]) -> int:
    """How many B-scans a file holds, from its header: a DICOM file's frames, a TIFF's pages,
    an animated PNG's frames; 1 for any other image.

    Raises
    ------
    UnreadableImageError
        If the header cannot be read, or the file is cut short: its frames cannot be
        counted, a GIF of several frames ends before its trailer, or a TIFF before its last
        page's directory or data (the message names the file).
    ModuleNotFoundError
        For a DICOM file when pydicom is not installed.

    .. versionadded:: 0.2

    .. versionchanged:: 0.2
       Counts the pages of a multi-page TIFF and the frames of an animated PNG.
    """
    file = Path(path)
    if not is_dicom(file):
        try:
            with _open(file) as opened:
                return _frames_of(opened, file)
        except UnreadableImageError:
            raise
        except UnidentifiedImageError:
            raise UnreadableImageError(file, _unrecognised(file)) from None
        except (OSError, SyntaxError, ValueError) as error:
            raise _read_error(file, error) from None
    try:
        return read_header(file).frames
    except DicomReadError as error:
        raise _dicom_error(file, error) from None


def _pil_frames(file: Path, *, single: bool) -> list[Image.Image]:
    """Every frame of a file PIL reads, each through the gate of :func:`load_image`."""
    if single:
        return [load_image(file)]
    try:
        with _open(file) as opened:
            pages = _frame_indices(opened, file)
            if len(pages) == 1:
                return [load_image(file)]
            _check_volume_pixels(opened, pages, file)  # before any page is decoded
            images: list[Image.Image] = []
            wide: list[bool] = []
            for index in pages:
                opened.seek(index)
                wide.append(sixteen_bit_colour(opened))
                opened.load()
                images.append(opened.copy())
    except UnreadableImageError:
        raise
    except UnidentifiedImageError:
        raise UnreadableImageError(file, _unrecognised(file)) from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise _read_error(file, error) from None
    return _admit_frames(images, wide, file)


def _check_volume_pixels(opened: Image.Image, pages: list[int], file: Path) -> None:
    """Refuse a volume whose pages claim, in their headers, more pixels in all than a volume
    may hold (:func:`~retinalnet._core.volume_pixels.volume_pixels_reason`), or one page
    more than PIL's limit for an image; a TIFF's pages each have their size, the frames of
    an animated image the file's."""
    if opened.format != "TIFF":
        sizes = [opened.size] * len(pages)
    else:
        current, sizes = opened.tell(), []
        for index in pages:
            opened.seek(index)
            sizes.append(opened.size)
        opened.seek(current)
    largest = pixels_over_limit(max(sizes, key=lambda size: size[0] * size[1]))
    if largest is not None:
        raise UnreadableImageError(file, bomb_reason(ValueError(f"({largest} pixels)")))
    reason = volume_pixels_reason(len(pages), sum(width * height for width, height in sizes))
    if reason is not None:
        raise UnreadableImageError(file, reason)


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """An image file's ``(width, height)``, from its header alone (no pixels decoded).

    Raises
    ------
    UnreadableImageError
        If the header cannot be read, or claims more pixels than PIL's decompression-bomb
        limit (as in :func:`load_image`), or a TIFF file is cut short (as in
        :func:`load_frames`); the message names the file.
    """
    if Path(path).suffix.lower() in DICOM_EXTENSIONS:
        try:
            header = read_header(path)
        except DicomReadError as error:
            raise _dicom_error(Path(path), error) from None
        return header.columns, header.rows
    try:
        with _open(Path(path)) as image:
            size: tuple[int, int] = image.size
            cut = _tiff_cut_short(image)
            if cut is not None:
                raise UnreadableImageError(path, cut)
    except UnreadableImageError:
        raise
    except UnidentifiedImageError:
        raise UnreadableImageError(path, _unrecognised(path)) from None
    except OSError as error:
        reason = read_failure(Path(path), error)
        if reason.startswith("corrupt or truncated"):
            reason = f"cannot read its header ({error})"
        raise UnreadableImageError(path, reason) from None
    return size


def _open(file: Path) -> Image.Image:
    """``Image.open(file)``, a decompression bomb turned into an error naming the file
    (:func:`_opened`). A device or a named pipe is refused before it is opened
    (``/dev/zero`` would be read for ever, a named pipe waited on):
    :func:`~retinalnet._core.regular_files.check_regular_file`.
    """
    try:
        check_regular_file(file)
    except SpecialFileError as error:
        raise UnreadableImageError(file, error.reason) from None
    return _opened(file, file)


def _opened(source: Path | IO[bytes], file: Path) -> Image.Image:
    """``Image.open(source)`` (``file``, or its bytes), a decompression bomb turned into an
    error naming ``file``.

    PIL refuses files claiming more than twice ``Image.MAX_IMAGE_PIXELS`` pixels and only
    warns between once and twice the limit; both are refused here, at the limit: the size
    is compared with the limit once the file is open, and PIL's warning is not shown.
    """
    # PIL warns inside Image.open, before its image could be looked at: only a filter keeps
    # that warning from being shown. The filters are the process's, and callers' threads
    # (a web service's Predictor.topk) open images at once: this thread's filter only. It
    # ignores the warning rather than raising it: an "error" filter is not reached by a
    # warning already shown at its place (the host's own image of the same size) unless the
    # filters' version changes, which shows the user's once-per-place warnings again
    # (retinalnet._core.warning_filters); the size check below refuses the file either way.
    # A TIFF's directory past the end of its file: PIL warns, naming no file, and the
    # readers refuse the file in words that do (_frame_indices, image_size, _unrecognised).
    # Filtered for every file (no second open of each image to tell a TIFF first).
    with (
        filter_in_this_thread("ignore", Image.DecompressionBombWarning),
        filter_in_this_thread("ignore", UserWarning, _CUT_DIRECTORY),
    ):
        try:
            opened = Image.open(source)
        except Image.DecompressionBombError as error:
            raise UnreadableImageError(file, bomb_reason(error)) from None
    pixels = pixels_over_limit(opened.size)
    if pixels is not None:
        opened.close()
        raise UnreadableImageError(file, bomb_reason(ValueError(f"({pixels} pixels)")))
    return opened


def pixels_over_limit(size: tuple[int, int]) -> int | None:
    """The pixels of an image of ``size``, as PIL counts them, if more than PIL's
    decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``); ``None`` within it.

    The readers ignore PIL's bomb warning and refuse by this instead: an ``"error"`` filter
    would not reach a warning already shown at its place (see
    :mod:`retinalnet._core.warning_filters`).
    """
    limit = Image.MAX_IMAGE_PIXELS
    pixels = max(1, size[0]) * max(1, size[1])
    return pixels if limit is not None and pixels > limit else None


_CUT_DIRECTORY = r"(possibly )?corrupt EXIF data"
"""PIL's warning (naming no file) for a TIFF directory past the end of the file, which
:func:`_open` keeps from being shown: :func:`_frame_indices` and :func:`_unrecognised`
refuse the file in words that name it."""


def _unrecognised(file: str | os.PathLike[str]) -> str:
    """Why PIL could not identify ``file``: it is empty (a copy cut short), a TIFF cut
    inside its first directory (:mod:`retinalnet._core.tiff_pages`), or no image."""
    if is_empty(file):
        return EMPTY_FILE
    try:
        with Path(file).open("rb") as stream:
            where = cut_short_reason(stream)
    except OSError:
        where = None
    return "not a recognised image format" if where is None else _tiff_cut_reason(where)


def bomb_reason(error: Exception) -> str:
    """The words of every door for a decompression bomb, from PIL's error (whose text
    names no fix): the pixels claimed, the limit, and how to raise it."""
    found = _BOMB_PIXELS.search(str(error))
    claimed = f"{int(found.group(1)):,} pixels" if found else "more pixels"
    return (
        f"possible decompression bomb: its header claims {claimed}, more than the limit of "
        f"{Image.MAX_IMAGE_PIXELS or 0:,} pixels (PIL.Image.MAX_IMAGE_PIXELS); if the file "
        "is a genuine image, raise that limit before reading it"
    )


def _check_size(size: tuple[int, int], name: str, *, warn: bool = True) -> None:
    """Refuse a size no B-scan has; warn about a small one (at the caller's code), unless
    ``warn=False`` (a volume's B-scans: one warning for all, :func:`_warn_of_small_frames`)."""
    width, height = size
    if min(width, height) < MIN_IMAGE_SIDE:
        raise _UnusablePixelsError(
            f"it is {width} x {height} pixels; images need both sides of at least "
            f"{MIN_IMAGE_SIDE} pixels (an OCT B-scan is about 512 x 496)"
        )
    if max(width, height) > MAX_IMAGE_ASPECT * min(width, height):
        ratio = f"{max(width, height) / min(width, height):,.1f}".removesuffix(".0")
        raise _UnusablePixelsError(
            f"it is {width} x {height} pixels, one side {ratio} times the other; a B-scan is "
            f"at most about 3:1 (1536 x 496), and images over {MAX_IMAGE_ASPECT}:1 are "
            "refused: crop it to one B-scan"
        )
    if warn and min(width, height) < SMALL_IMAGE_SIDE:
        warn_caller(
            f"{name} is only {width} x {height} pixels, smaller than the smallest model "
            f"input ({SMALL_IMAGE_SIDE} pixels): the model sees it upsampled, with little "
            "detail; check that it is a whole B-scan",
            UserWarning,
        )


def to_model_mode(image: Image.Image, name: str = "image") -> Image.Image:
    """The image in ``"L"`` or ``"RGB"``, converted without changing what its pixels mean.

    ``"L"`` and ``"RGB"`` images are returned as they are (no copy). Every other PIL mode:

    - ``"1"``: ``"L"``, black 0 and white 255.
    - ``"LA"``, ``"La"``: ``"L"``; ``"RGBA"``, ``"RGBa"``, ``"RGBX"``, ``"P"``, ``"PA"``:
      ``"RGB"``. Transparency is dropped: every pixel keeps its stored grey or colour, as
      PIL's ``convert`` does (premultiplied modes are un-premultiplied first).
    - ``"CMYK"``, ``"YCbCr"``, ``"LAB"``, ``"HSV"``: ``"RGB"`` by PIL's conversion.
    - 16-bit grayscale (``"I;16"``, ``"I;16L"``, ``"I;16B"``, ``"I;16N"``): ``"L"``,
      rescaled by the bit depth, ``round(value * 255 / 65535)``; the same 0 to 65535 scale
      for every scan, so intensities keep their meaning across scans (stretching each scan
      by its own range would not). A 16-bit image whose brightest pixel is below 4096 holds
      12-bit data or less (common in DICOM conversions) and would turn nearly black: it is
      refused, and the message says how to rescale it by its real bit depth.
    - 32-bit integer (``"I"``): values from 0 to 255 are taken as 8-bit grey levels, from 0
      to 65535 as 16-bit ones (the rule above); other ranges (negative values, values above
      65535) are stretched from the image's own minimum and maximum to 0 to 255, with a
      ``UserWarning`` naming the image and its range.
    - 32-bit float (``"F"``): values within [0, 1] are fractions of white, scaled by 255 (a
      resampling overshoot down to -0.1 and up to 1.1 is clipped); any other values are
      rounded to whole numbers and read as the ``"I"`` image of them (grey levels 0 to
      153.4 become 0 to 153, as a PNG of the scan gives them), stretched with the warning
      only where that rule stretches. NaN and infinite values are refused.
    - 16-bit colour (a 16-bit RGB, RGBA or grey+alpha PNG or TIFF, which PIL opens as
      ``"RGB"`` or ``"RGBA"`` keeping the high byte of each sample): read by that high
      byte, within one grey level of the 16-bit rule; refused when no sample reaches 4096
      (12-bit data), as for 16-bit grey. Seen only in an image not decoded yet
      (``Image.open``), or a file.

    A volume (:func:`load_frames`) is read by one rule for all its B-scans, chosen from all
    of them: the range of a float or 32-bit volume, and the 12-bit refusal, are those of the
    whole volume, so a dim B-scan stays dim.

    Parameters
    ----------
    image
        Any PIL image.
    name
        How errors refer to the image (``"image 3"``).

    Raises
    ------
    ValueError
        If the pixels have no meaning to convert (NaN or infinite values, a constant image
        no bit depth explains, 12-bit data in a 16-bit image or in floats rounded to whole
        numbers above 255, an unknown mode).

    Warns
    -----
    UserWarning
        If values no bit depth explains (negative, above 65535) are stretched from their
        own range.

    Examples
    --------
    >>> from PIL import Image
    >>> scan = Image.new("I;16", (64, 48), 65535)
    >>> to_model_mode(scan).mode, to_model_mode(scan).getpixel((0, 0))
    ('L', 255)

    .. versionadded:: 0.2

    .. versionchanged:: 0.2
       Float values within [0, 255] are grey levels, with or without fractions (values
       with fractions were stretched from the image's own range); a stretch warns.
    """
    return _to_model_mode(image, name, wide=sixteen_bit_colour(image))


def _to_model_mode(image: Image.Image, name: str, *, wide: bool) -> Image.Image:
    try:
        scale = file_scale([image], [wide])
        admitted = model_mode(image, scale)
    except _UnusablePixelsError as error:
        raise ValueError(f"cannot use {name}: {error}") from None
    _warn_of_stretch(scale, name)
    return admitted


def warn_of_full_scale_images(images: Sequence[ImageInput], *, target_size: int | None) -> None:
    """Warn when images given in memory meet a model that decodes its files at reduced scale.

    A model with ``reduced_decode`` reads a large JPEG file at 1/2, 1/4 or 1/8 scale
    (:func:`draft_scale`, ``target_size`` its resize), as it was trained; a PIL image or a
    tensor is already decoded at full size, so the same scan given that way can get other
    probabilities (a top class changed in 3 of 16 scans of a random-weight test model).
    Images that a reduced decode would not shrink (small ones, PIL images read from other
    formats than JPEG) are not counted. ``target_size=None`` (no reduced decode) warns of
    nothing.
    """
    if target_size is None:
        return
    shrunk: list[int] = []
    for index, image in enumerate(images):
        if isinstance(image, Image.Image):
            if image.format not in (None, "JPEG", "MPO"):
                continue
            size = image.size
        elif isinstance(image, torch.Tensor) and image.dim() >= 2:
            size = (int(image.shape[-1]), int(image.shape[-2]))
        elif isinstance(image, np.ndarray) and image.ndim >= 2:  # channels last
            size = (int(image.shape[1]), int(image.shape[0]))
        else:
            continue
        if draft_scale(size, target_size) > 1:
            shrunk.append(index)
    if shrunk:
        which = f"{len(shrunk)} image(s) (e.g. image {shrunk[0]})"
        if len(images) == 1:
            which = "image 0"
        warn_caller(
            f"{which} given in memory, decoded at full size, but this model decodes JPEG "
            "files at reduced scale (reduced_decode=True, as it was trained): their "
            "probabilities can differ from those of the files; pass the files' paths",
            UserWarning,
        )


def coerce_image(
    image: ImageInput,
    *,
    name: str = "image",
    decode: Callable[[str | os.PathLike[str]], Image.Image] = load_image,
) -> Image.Image:
    """The ``"L"`` or ``"RGB"`` image of a path, a PIL image, an image tensor or a NumPy
    array: the gate every image passes.

    The Predictor, Grad-CAM, the plots and the command line all turn their inputs into
    images here, so a scan given as a file, a PIL image, a tensor or an array is read the
    same way
    (except that a file may be decoded at reduced scale, ``decode``, where an image in memory
    already is at full size: :func:`warn_of_full_scale_images`).
    Files are read by ``decode`` (:func:`load_image` by default), PIL images converted by
    :func:`to_model_mode`; images with a side shorter than :data:`MIN_IMAGE_SIDE` pixels are
    refused and those shorter than :data:`SMALL_IMAGE_SIDE` warned about.

    Parameters
    ----------
    image
        A file path, a PIL image, an image tensor ``(H, W)``, ``(1, H, W)`` or
        ``(3, H, W)``, or a NumPy array ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` (channels
        last, RGB order); a tensor or array is uint8 or float in [0, 1] (rounded to the
        nearest of 256 grey levels). Other integer dtypes are refused: a tensor carries no
        bit depth, so scale it to float in [0, 1] yourself (``tensor / 65535`` for 16-bit
        data); float values outside [0, 1] are refused with what they look like and the fix
        (``/ 255`` for 0-255 grey levels, ``clamp(0, 1)`` for a resampling overshoot).

        .. versionchanged:: 0.2
           NumPy arrays (they were refused).
    name
        How errors refer to the image (``"image 3"``).
    decode
        Reads a file; a model's :meth:`~retinalnet.transforms.Preprocessing.load` decodes at
        the scale its preprocessing uses.

    Raises
    ------
    UnreadableImageError
        If a file cannot be read (the message names it; see :func:`load_image`).
    ValueError
        If a PIL image, tensor or array is not a usable image: a batch, a normalised model
        input, NaN or infinite values, a wrong shape (an array channels first) or dtype, a
        side shorter than
        :data:`MIN_IMAGE_SIDE` pixels, a side more than :data:`MAX_IMAGE_ASPECT` times the
        other, pixels :func:`to_model_mode` refuses, a PIL image of several frames, or a
        lazily opened PIL image whose file is truncated or already closed.
    TypeError
        If ``image`` is none of the accepted types.

    Examples
    --------
    >>> import numpy, torch
    >>> coerce_image(torch.zeros(32, 48, dtype=torch.uint8)).size
    (48, 32)
    >>> coerce_image(numpy.zeros((32, 48, 3), dtype=numpy.uint8)).mode
    'RGB'
    """
    if isinstance(image, (str, os.PathLike)):
        return to_model_mode(decode(image), name)
    if isinstance(image, Image.Image):
        decoded, wide = _loaded(image, name)
        return _to_model_mode(decoded, name, wide=wide)
    if isinstance(image, torch.Tensor):
        return _tensor_to_pil(image, name)
    if isinstance(image, np.ndarray):
        return _tensor_to_pil(_array_to_tensor(image, name), name, kind="array")
    raise TypeError(
        f"{name} is {type_with_article(image)}; expected a path, a PIL image or an image tensor "
        "or NumPy array"
    )


def _loaded(image: Image.Image, name: str, *, warn: bool = True) -> tuple[Image.Image, bool]:
    """Decode a PIL image of one frame and check its size: the decoded image (``image``
    itself, or for a JPEG opened lazily the decode of its file that refuses damaged data,
    :func:`_decoded_frame`), and whether it held 16-bit colour samples
    (:func:`sixteen_bit_colour`, seen only before it is decoded). A small image is warned of
    unless ``warn=False`` or a volume's warning said it already."""
    try:
        frames = _frames_of(image, Path(getattr(image, "filename", "") or name))
    except UnreadableImageError as error:  # its file cut short
        raise ValueError(f"cannot use {name}: {error.reason}") from None
    if frames > 1:
        raise ValueError(
            f"cannot use {name}: it is a PIL image of {frames} frames (an OCT volume), "
            "not one B-scan: pass its frames one by one (PIL.ImageSequence), or predict it "
            "with retinalnet.volume.predict_volume"
        )
    wide = sixteen_bit_colour(image)  # before its tiles are decoded
    try:  # an image from Image.open is decoded lazily, here
        decoded = _decoded_frame(image, Path(getattr(image, "filename", "") or name))
    except UnreadableImageError as error:  # damaged JPEG data
        raise ValueError(f"cannot use {name}: {error.reason}") from None
    except (OSError, SyntaxError, ValueError, AssertionError, AttributeError) as error:
        raise ValueError(
            f"cannot use {name}: its pixels cannot be decoded ({type(error).__name__}: "
            f"{error or 'its file was closed'}); pass the path instead, or an image "
            "loaded while its file was open (Image.open(path).convert('L'))"
        ) from None
    try:
        _check_size(decoded.size, name, warn=warn and not _was_said(image))
    except _UnusablePixelsError as error:
        raise ValueError(f"cannot use {name}: {error}") from None
    return decoded, wide


def _array_to_tensor(array: np.ndarray[Any, Any], name: str) -> torch.Tensor:
    """A NumPy image, channels last, as the channels-first tensor the tensor rules read; its
    shape and dtype checked here, in NumPy's words."""
    shape = tuple(int(side) for side in array.shape)
    if array.ndim == 4:
        raise ValueError(
            f"{name} is a batch array of shape {shape}; pass list(batch) to predict each image"
        )
    if array.ndim == 3 and array.shape[2] not in (1, 3) and array.shape[0] in (1, 3):
        raise ValueError(
            f"{name} has shape {shape}, channels first; NumPy images are channels last, "
            "(H, W, 1) or (H, W, 3): pass array.transpose(1, 2, 0)"
        )
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3)):
        raise ValueError(f"{name} has shape {shape}; expected (H, W), (H, W, 1) or (H, W, 3)")
    if array.dtype != np.uint8 and array.dtype.kind != "f":
        raise ValueError(
            f"{name} has dtype {array.dtype}; expected uint8 or float. An array carries no bit "
            "depth: convert it to float in [0, 1] yourself (array / 65535 for 16-bit data, "
            "array / 4095 for 12-bit data)"
        )
    native = np.array(array, dtype=array.dtype.newbyteorder("="))  # a copy torch may own
    tensor = torch.from_numpy(native)
    return tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1)


def _tensor_to_pil(tensor: torch.Tensor, name: str, *, kind: str = "tensor") -> Image.Image:
    """The image of a tensor (or of an array, ``kind="array"``, already channels first)."""
    if tensor.dim() == 4:
        raise ValueError(
            f"{name} is a batch tensor of shape {tuple(tensor.shape)}; pass "
            "list(batch) to predict each image"
        )
    if tensor.dim() == 2:
        tensor = tensor.unsqueeze(0)
    if tensor.dim() != 3 or tensor.shape[0] not in (1, 3):
        raise ValueError(
            f"{name} has shape {tuple(tensor.shape)}; expected (H, W), (1, H, W) or (3, H, W)"
        )
    try:
        _check_size((tensor.shape[2], tensor.shape[1]), name)
    except _UnusablePixelsError as error:
        raise ValueError(f"cannot use {name}: {error}") from None
    tensor = tensor.detach().cpu()
    if tensor.is_floating_point():
        finite = torch.isfinite(tensor)
        if not bool(finite.all()):
            raise ValueError(
                f"{name} has {int((~finite).sum())} NaN or infinite values of "
                f"{tensor.numel()}; expected an image in [0, 1]"
            )
        low, high = float(tensor.min()), float(tensor.max())
        if low < 0 or high > 1:
            raise ValueError(
                f"{name} is a float {kind} with values in [{low:.3g}, {high:.3g}]; expected "
                f"an image in [0, 1] ({_float_range_fix(low, high, kind)})"
            )
        tensor = (tensor.float() * 255).round().to(torch.uint8)
    elif tensor.dtype != torch.uint8:
        raise ValueError(
            f"{name} has dtype {tensor.dtype}; expected uint8 or float. A tensor carries no "
            "bit depth: convert it to float in [0, 1] yourself (tensor / 65535 for 16-bit "
            "data, tensor / 4095 for 12-bit data)"
        )
    image: Image.Image = to_pil_image(tensor)
    return image


def _float_range_fix(low: float, high: float, kind: str) -> str:
    """What a float tensor or array outside [0, 1] most likely is, and its fix."""
    clip = "tensor.clamp(0, 1)" if kind == "tensor" else "numpy.clip(array, 0, 1)"
    if low >= -OVERSHOOT and high <= 1 + OVERSHOOT:
        return f"a resampling overshoot? clip it: {clip}"
    if low >= 0 and high <= 255:
        return f"0-255 grey levels? divide by 255: {kind} / 255"
    if low < 0:
        return f"a normalised {kind} is a model input: call the model directly"
    return f"16-bit values? divide by 65535: {kind} / 65535"


def coerce_volume(
    scans: Sequence[ImageInput], *, target_size: int | None = None
) -> list[Image.Image]:
    """The B-scans of a volume given in order, as ``"L"`` or ``"RGB"`` images read by one
    rule for the whole volume, as the frames of a volume file are (:func:`load_frames`).

    The numbers of 16-bit, 32-bit and float B-scans (PIL images, or files of one B-scan
    each) are read by one scale chosen from all of them (:func:`to_model_mode`): a dim
    B-scan (a blink) stays dim, where read one by one it would be stretched as bright as the
    others, and one dim 16-bit B-scan does not get the volume refused as 12-bit data.
    DICOM files (one B-scan each) are likewise checked together, as the frames of one
    multi-frame file are: one dim B-scan without a window does not get the volume refused
    for its ``BitsStored``; the volume is refused when all of them would be nearly black.
    Tensors and NumPy arrays keep their fixed rule (uint8, or float in [0, 1]).

    Parameters
    ----------
    scans
        Paths, PIL images, image tensors or arrays, as :func:`coerce_image` takes them, in
        volume order.
    target_size
        As for :func:`load_image`: JPEG files are decoded at reduced scale for it.

    Returns
    -------
    list of PIL.Image.Image
        One image per B-scan, in order.

    Raises
    ------
    UnreadableImageError
        If a file cannot be read, or holds several frames (the message names it and the
        B-scan).
    ValueError
        As :func:`coerce_image`, naming the B-scan (``B-scan 2``), or for values the volume's
        scale gives no meaning (naming the volume, or the B-scan), such as DICOM files
        without a window that would all be nearly black (a wrong ``BitsStored``).
    TypeError
        If a B-scan is none of the accepted types.

    Warns
    -----
    UserWarning
        As :func:`to_model_mode`, once for the volume, when its values were stretched.
    UserWarning
        Once for the volume, counting them, when B-scans are smaller than
        :data:`SMALL_IMAGE_SIDE` (not one warning per B-scan; B-scans a volume file's
        warning already counted are not warned of again).

    .. versionadded:: 0.2
    """
    count = len(scans)
    frames: list[Image.Image] = []
    wide: list[bool] = []
    formats: dict[int, str | None] = {}  # the files' formats, kept on their images
    unwindowed: dict[int, Unwindowed] = {}  # DICOM files': checked together, as one file's
    for index, scan in enumerate(scans):
        name = f"B-scan {index}"
        if isinstance(scan, (str, os.PathLike)):
            file = Path(scan)
            decoded = _decode(file, target_size, check_dark=False)
            if decoded.unwindowed is not None:
                unwindowed[index] = decoded.unwindowed
            if not decoded.admitted:
                try:
                    _check_size(decoded.size, repr(str(file)), warn=False)
                except _UnusablePixelsError as error:
                    raise UnreadableImageError(file, in_frame(index, count, str(error))) from None
            frames.append(decoded.image)
            wide.append(decoded.wide)
            formats[index] = decoded.format
        elif isinstance(scan, Image.Image):
            loaded, held_wide = _loaded(scan, name, warn=False)
            wide.append(held_wide)
            frames.append(loaded)
        else:
            frames.append(coerce_image(scan, name=name))  # tensors, arrays: their fixed rule
            wide.append(False)
    _check_dicom_darkness(unwindowed, scans)
    try:
        scale = file_scale(frames, wide)
    except _UnusablePixelsError as error:
        raise ValueError(f"cannot use the volume: {error}") from None
    admitted: list[Image.Image] = []
    for index, frame in enumerate(frames):
        try:
            image = model_mode(frame, scale)
        except _UnusablePixelsError as error:
            raise ValueError(f"cannot use B-scan {index}: {error}") from None
        if index in formats:
            if image is frame:
                image = image.copy()
            image.format = formats[index]  # a file's image is not warned of as in memory
        admitted.append(image)
    _warn_of_stretch(scale, f"the volume (its {count} B-scan{'s' * (count > 1)} together)")
    if all(_was_said(frame) for frame in frames):  # a volume file's, said when it was read
        _mark_said(admitted)
    else:
        _warn_of_small_frames(admitted, "the volume")
    return admitted


def _check_dicom_darkness(unwindowed: dict[int, Unwindowed], scans: Sequence[ImageInput]) -> None:
    """Refuse a volume whose DICOM files (``unwindowed``: by B-scan) would all be nearly black
    (a wrong ``BitsStored``), checked together as the frames of one multi-frame file are: a
    dim B-scan among bright ones is read as it is."""
    reason = dark_reason(list(unwindowed.values()))
    if reason is None:
        return
    if len(unwindowed) == 1:
        index = next(iter(unwindowed))
        raise ValueError(f"cannot use B-scan {index} ({str(scans[index])!r}): {reason}")
    raise ValueError(f"cannot use the volume: {reason}")
