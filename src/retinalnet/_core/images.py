"""Reading image files with errors that name the file, and the one gate every image input
passes (:func:`coerce_image`)."""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeAlias, Union

import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms.functional import to_pil_image

__all__ = [
    "ImageInput",
    "UnreadableImageError",
    "coerce_image",
    "draft_scale",
    "image_size",
    "load_image",
]

ImageInput: TypeAlias = Union[str, "os.PathLike[str]", Image.Image, torch.Tensor]
"""A single image: a file path, a PIL image, or an image tensor ``(H, W)``, ``(1, H, W)`` or
``(3, H, W)``, uint8 or float in [0, 1] (not a normalised model input)."""

_DRAFT_SLACK = 0.95

_MESSAGE = re.compile(r"cannot read image ('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"): ([^\n]*)")


class UnreadableImageError(OSError):
    """An image file could not be opened or decoded.

    Parameters
    ----------
    path
        The file that failed.
    reason
        What went wrong, in a few words. When it is omitted, ``path`` is taken as a whole
        message: torch's DataLoader re-raises a worker's error as ``type(error)(text)``, and
        the path is read back from that text.

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
            match = _MESSAGE.search(message)
            self.path = Path(ast.literal_eval(match.group(1))) if match else None
            self.reason = match.group(2) if match else message
            super().__init__(message)
            return
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot read image {str(self.path)!r}: {reason}")

    def __reduce__(self) -> tuple[type[UnreadableImageError], tuple[str, str | None]]:
        if self.path is None:
            return (type(self), (str(self), None))
        return (type(self), (str(self.path), self.reason))


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
    """Open and fully decode an image file.

    The pixels are read immediately (not lazily), so a truncated or corrupt file fails here,
    with its path, rather than later inside a transform.

    Parameters
    ----------
    path
        An image file PIL can read (JPEG and PNG for OCT scans).
    target_size
        The shorter side the image will be resized to next (``Preprocessing().resize``, 256
        by default). When given, a JPEG at least about twice as large is decoded at 1/2,
        1/4 or 1/8 scale by libjpeg (PIL's draft mode, see :func:`draft_scale`), which is
        much faster; the image returned is then smaller than the file. ``None`` (the
        default) always decodes at full size. PNG files are always decoded at full size.

        .. versionadded:: 0.2

    Returns
    -------
    PIL.Image.Image
        The decoded image in its own mode (``"L"`` for Kermany scans).

    Raises
    ------
    UnreadableImageError
        If the file is missing, is not an image, or is truncated or corrupt.

    Examples
    --------
    >>> from retinalnet.datasets import load_image
    >>> image = load_image("CNV-1016042-1.jpeg")  # doctest: +SKIP
    >>> small = load_image("CNV-1016042-1.jpeg", target_size=256)  # doctest: +SKIP
    """
    if target_size is not None and (
        isinstance(target_size, bool) or not isinstance(target_size, int) or target_size < 1
    ):
        raise ValueError(
            f"target_size must be a positive int (the shorter side after resizing) or None, "
            f"got {target_size!r}"
        )
    file = Path(path)
    try:
        with Image.open(file) as opened:
            if target_size is not None and opened.format == "JPEG":
                scale = draft_scale(opened.size, target_size)
                if scale > 1:
                    width, height = opened.size
                    opened.draft(opened.mode, (width // scale, height // scale))
            opened.load()
            image: Image.Image = opened.copy()
            return image
    except FileNotFoundError:
        raise UnreadableImageError(file, "no such file") from None
    except IsADirectoryError:
        raise UnreadableImageError(file, "it is a directory, not an image file") from None
    except UnidentifiedImageError:
        raise UnreadableImageError(file, "not a recognised image format") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise UnreadableImageError(file, f"corrupt or truncated ({error})") from None


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """An image file's ``(width, height)``, from its header alone (no pixels decoded).

    Raises
    ------
    UnreadableImageError
        If the header cannot be read; the message names the file.
    """
    try:
        with Image.open(path) as image:
            size: tuple[int, int] = image.size
    except OSError as error:
        raise UnreadableImageError(path, f"cannot read its header ({error})") from None
    return size


def coerce_image(
    image: ImageInput,
    *,
    name: str = "image",
    decode: Callable[[str | os.PathLike[str]], Image.Image] = load_image,
) -> Image.Image:
    """The PIL image of a path, a PIL image or an image tensor: the gate every image passes.

    The Predictor, Grad-CAM, the plots and the command line all turn their inputs into
    images here, so a scan given as a file, a PIL image or a tensor is read the same way.

    Parameters
    ----------
    image
        A file path, a PIL image, or an image tensor ``(H, W)``, ``(1, H, W)`` or
        ``(3, H, W)``, uint8 or float in [0, 1].
    name
        How errors refer to the image (``"image 3"``).
    decode
        Reads a file; a model's :meth:`~retinalnet.transforms.Preprocessing.load` decodes at
        the scale its preprocessing uses.

    Raises
    ------
    UnreadableImageError
        If a file cannot be read (the message names it).
    ValueError
        If a tensor is not an image (a batch, a normalised model input, a wrong shape or
        dtype).
    TypeError
        If ``image`` is none of the accepted types.

    Examples
    --------
    >>> import torch
    >>> coerce_image(torch.zeros(32, 48, dtype=torch.uint8)).size
    (48, 32)
    """
    if isinstance(image, (str, os.PathLike)):
        return decode(image)
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, torch.Tensor):
        return _tensor_to_pil(image, name)
    raise TypeError(
        f"{name} is a {type(image).__name__}; expected a path, a PIL image or an image tensor"
    )


def _tensor_to_pil(tensor: torch.Tensor, name: str) -> Image.Image:
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
    if tensor.is_floating_point():
        low, high = float(tensor.min()), float(tensor.max())
        if low < 0 or high > 1:
            raise ValueError(
                f"{name} is a float tensor with values in [{low:.3g}, {high:.3g}]; "
                "expected an image in [0, 1] (a normalised tensor is a model input: call the "
                "model directly)"
            )
    elif tensor.dtype != torch.uint8:
        raise ValueError(f"{name} has dtype {tensor.dtype}; expected uint8 or float")
    image: Image.Image = to_pil_image(tensor.detach().cpu())
    return image
