"""A model's evaluation preprocessing on batches of JPEG bytes, on any device (a GPU too).

:class:`~retinalnet.transforms.Preprocessing` prepares one image at a time with PIL on a CPU
core: on one H200 that fed frozen VGG16 at about 1,300 images/s, 5% of what the GPU computes.
:class:`TensorPreprocessing` does the same steps on tensors, a batch at a time:
``torchvision.io.decode_jpeg`` (nvJPEG on a GPU), an antialiased bilinear resize of the
shorter side to ``resize`` (rounded back to 8 bits, as PIL's resize of an 8-bit image is), the
centre ``size`` crop, a grey scan repeated into three channels, and normalisation. CPU
workers only read the files' bytes (:meth:`TensorPreprocessing.read`).

What it gives is the PIL path's numbers within a tolerance, not bit for bit: libjpeg and
nvJPEG round their inverse DCT and colour upsampling differently, and torchvision's
antialiased resize matches PIL's to about one grey level. The tests check it against
:meth:`Preprocessing.prepare <retinalnet.transforms.Preprocessing.prepare>` on synthetic and
real scans (:data:`TOLERANCE`); their largest difference on a CPU is one grey level.

Files it cannot decode the same way go the PIL way, in the reading worker: anything but an
8-bit grey or RGB JPEG (PNG, CMYK, 16-bit, ...), images with a side under 32 pixels or one
side more than 32 times the other (which the PIL path warns about or refuses), and every file
when the preprocessing uses ``reduced_decode`` (libjpeg's reduced-scale decoding has no tensor
equivalent).

.. versionadded:: 0.2

Examples
--------
>>> import torch
>>> from retinalnet.tensor_preprocessing import TensorPreprocessing
>>> from retinalnet.transforms import Preprocessing
>>> prep = TensorPreprocessing(Preprocessing(size=64), device="cpu")
>>> batch = prep.prepare_files(["scan-1.jpeg", "scan-2.jpeg"])  # doctest: +SKIP
>>> batch.shape  # doctest: +SKIP
torch.Size([2, 3, 64, 64])
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms.v2 import functional as tvf

from retinalnet._core.device import resolve_device
from retinalnet._core.device_copies import copy_to
from retinalnet._core.images import (
    MAX_IMAGE_ASPECT,
    SMALL_IMAGE_SIDE,
    UnreadableImageError,
    pixels_over_limit,
)
from retinalnet._core.model_inputs import describe, refuse_unprepared
from retinalnet._core.warning_filters import filter_in_this_thread
from retinalnet.transforms import Preprocessing, check_preprocessing

__all__ = ["TOLERANCE", "TensorPreprocessing", "read_encoded"]

TOLERANCE: dict[str, float] = {"cpu": 0.05, "cuda": 0.1}
"""Largest difference allowed per pixel between :class:`TensorPreprocessing` and
:meth:`Preprocessing.prepare <retinalnet.transforms.Preprocessing.prepare>`, in normalised
units (one grey level is 1/255/0.229 = 0.017 of them for ImageNet's std), by device type; the
mean absolute difference is held to a tenth of it. On a CPU the measured maximum over the 80
real sample scans is one grey level (0.0175), the mean 0.0001. nvJPEG rounds its inverse DCT
differently from libjpeg, so a GPU is allowed about six grey levels (not yet measured on
one: ``benchmarks/gpu_check.sh`` runs the test there)."""

_JPEG_START = b"\xff\xd8\xff"


class TensorPreprocessing:
    """Evaluation preprocessing of batches of JPEG file bytes, on ``device``.

    Parameters
    ----------
    preprocessing
        The model's :class:`~retinalnet.transforms.Preprocessing`; its ``resize``,
        ``size``, ``mean`` and ``std`` are used.
    device
        Where the batches go: ``"cpu"``, ``"cuda"``, ``"mps"``, ``"auto"``... Decoding and
        the steps after it run there on a CUDA GPU (nvJPEG) and on the CPU, and on the CPU
        for any other device (torchvision decodes JPEGs on the CPU and CUDA only), the
        prepared batch then copied to it: on Apple MPS the numbers are the CPU's.

    Examples
    --------
    >>> from retinalnet.transforms import Preprocessing
    >>> TensorPreprocessing(Preprocessing(size=64), device="cpu").device
    device(type='cpu')
    """

    def __init__(self, preprocessing: Preprocessing, *, device: str | torch.device = "cpu") -> None:
        self.preprocessing = check_preprocessing(preprocessing, optional=False)
        self.device = resolve_device(device)
        # torchvision decodes JPEGs on the CPU or CUDA alone: for MPS, the CPU prepares
        self._work_device = self.device if self.device.type == "cuda" else torch.device("cpu")
        # float32 whatever torch's default dtype (MPS has no float64)
        mean = torch.tensor(preprocessing.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(preprocessing.std, dtype=torch.float32).view(1, 3, 1, 1)
        # (x / 255 - mean) / std as one multiply-add
        self._scale = (1.0 / (255.0 * std)).to(self._work_device)
        self._shift = (-mean / std).to(self._work_device)
        # torchvision's uint8 resize kernel (CPU only) is PIL's filter with PIL's rounding;
        # elsewhere the resize runs in float32 and is rounded back to 8 bits
        self._uint8_resize = self._work_device.type == "cpu"

    def read(self, path: str | os.PathLike[str]) -> torch.Tensor:
        """What a loading worker gives for one file: its bytes (1-D uint8) when it is a JPEG
        the tensor path decodes like PIL, else the PIL path's prepared input ``(3, size,
        size)`` (float32). The same as :func:`read_encoded` with this preprocessing.

        Raises
        ------
        retinalnet.datasets.UnreadableImageError
            If the file cannot be read (from the PIL path, which names it).
        """
        _check_path(path, "read()")
        return read_encoded(path, self.preprocessing)

    def prepare_files(self, paths: Sequence[str | os.PathLike[str]]) -> torch.Tensor:
        """Model inputs ``(N, 3, size, size)`` float32 on :attr:`device` for ``paths``.

        Raises
        ------
        TypeError
            If ``paths`` is not a list of file paths (images in memory go through
            :meth:`Preprocessing.prepare <retinalnet.transforms.Preprocessing.prepare>`).
        retinalnet.datasets.UnreadableImageError
            If a file cannot be read.
        """
        if isinstance(paths, (str, os.PathLike)):
            raise TypeError(
                f"prepare_files() takes a list of file paths, got the one path {paths!r}: "
                "pass [path]"
            )
        for index, path in enumerate(paths):
            _check_path(path, f"prepare_files() item {index}")
        return self.batch([self.read(path) for path in paths], names=paths)

    def batch(
        self,
        items: Sequence[torch.Tensor],
        *,
        names: Sequence[str | os.PathLike[str]] | None = None,
    ) -> torch.Tensor:
        """Model inputs ``(N, 3, size, size)`` float32 on :attr:`device`, in the order of
        ``items`` (each from :meth:`read`: JPEG bytes to decode, or a prepared input).

        JPEGs are decoded together (one ``decode_jpeg`` call), and images of the same size
        are resized together. ``names`` (the files' paths) name a file that fails.

        Raises
        ------
        TypeError
            If an item is not a tensor.
        ValueError
            If ``items`` is empty or holds a tensor :meth:`read` does not give: JPEG bytes
            that are not uint8, or a prepared input that is not float ``(3, size, size)``
            (an image tensor, say). A prepared input with no negative value is warned
            about: it looks like an image that was never normalised.

            .. versionchanged:: 0.2
               A prepared input must be floating point (a uint8 image was taken as one).
        retinalnet.datasets.UnreadableImageError
            If a JPEG cannot be decoded (a truncated or corrupt file whose header is fine).
        """
        if not items:
            raise ValueError("batch() needs at least one item (from read())")
        size = self.preprocessing.size
        out = torch.empty(len(items), 3, size, size, dtype=torch.float32, device=self.device)
        fix = (
            "pass what read() gives (JPEG bytes, 1-D uint8, or a prepared input); for an "
            "image in memory use Preprocessing.prepare(image)"
        )
        for i, item in enumerate(items):
            if isinstance(item, torch.Tensor) and item.dim() == 1:
                if item.dtype != torch.uint8:
                    raise ValueError(f"item {i} is {describe(item)}, not JPEG bytes; {fix}")
                continue
            refuse_unprepared(item, self.preprocessing, name=f"item {i}", fix=fix)
            out[i] = copy_to(item, self.device, torch.float32)  # float64 under its default
        encoded = [i for i, item in enumerate(items) if item.dim() == 1]
        if not encoded:
            return out
        decoded = self._decode([items[i] for i in encoded], encoded, names)
        groups: dict[tuple[int, ...], list[int]] = {}
        for position, image in enumerate(decoded):
            groups.setdefault(tuple(image.shape), []).append(position)
        for shape, positions in groups.items():
            images = torch.stack([decoded[p] for p in positions])
            index = torch.tensor([encoded[p] for p in positions], device=self.device)
            out[index] = copy_to(self._prepare_same_size(images, shape[1], shape[2]), self.device)
        return out

    def _decode(
        self,
        data: list[torch.Tensor],
        positions: list[int],
        names: Sequence[str | os.PathLike[str]] | None,
    ) -> list[torch.Tensor]:
        try:
            return _decode_jpeg(data, self._work_device)
        except RuntimeError:
            pass
        for position, one in zip(positions, data, strict=True):  # find the one that fails
            try:
                _decode_jpeg([one], self._work_device)
            except RuntimeError as error:
                name = names[position] if names is not None else f"<item {position}>"
                raise UnreadableImageError(name, f"corrupt or truncated ({error})") from None
        raise RuntimeError("decode_jpeg failed on the batch but on none of its images alone")

    def _prepare_same_size(self, images: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Resize, crop, three channels, normalise: ``images`` is ``(N, C, H, W)`` uint8."""
        resize, size = self.preprocessing.resize, self.preprocessing.size
        # torchvision's Resize(int) on a PIL image: the shorter side becomes `resize`, the
        # longer one is truncated (see Preprocessing.crop_box)
        if width <= height:
            target = [int(resize * height / width), resize]
        else:
            target = [resize, int(resize * width / height)]
        if self._uint8_resize:
            resized = tvf.resize(images, target, antialias=True)
        else:
            resized = tvf.resize(images.float(), target, antialias=True)
            resized = resized.round_().clamp_(0, 255)
        cropped = tvf.center_crop(resized, [size, size]).float()
        if cropped.shape[1] == 1:
            cropped = cropped.expand(-1, 3, -1, -1)
        prepared: torch.Tensor = cropped * self._scale + self._shift
        return prepared


def read_encoded(path: str | os.PathLike[str], preprocessing: Preprocessing) -> torch.Tensor:
    """One file as :meth:`TensorPreprocessing.read` gives it; a plain function of picklable
    arguments, for DataLoader worker processes.

    Raises
    ------
    retinalnet.datasets.UnreadableImageError
        If the file cannot be read (from the PIL path, which names it).
    TypeError
        If ``path`` is not a file path, or ``preprocessing`` not a
        :class:`~retinalnet.transforms.Preprocessing`.
    """
    _check_path(path, "read_encoded")
    preprocessing = check_preprocessing(preprocessing, optional=False)
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError:
        return preprocessing.prepare(file)  # raises UnreadableImageError, naming the file
    if not _tensor_decodable(data, preprocessing):
        return preprocessing.prepare(file)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def _check_path(path: object, where: str) -> None:
    """Refuse what is not a file path in one line (a PIL image, an array, a tensor)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"{where} takes a file path (str or os.PathLike), got {describe(path)}; for an "
            "image in memory use Preprocessing.prepare(image), which gives the model input"
        )


def _tensor_decodable(data: bytes, preprocessing: Preprocessing) -> bool:
    if preprocessing.reduced_decode or not data.startswith(_JPEG_START):
        return False
    try:
        with (
            filter_in_this_thread("ignore", Image.DecompressionBombWarning),
            Image.open(io.BytesIO(data)) as header,  # reads the header only
        ):
            width, height = header.size
            mode = header.mode
    except Exception:  # anything wrong: the PIL path names the error
        return False
    if pixels_over_limit((width, height)) is not None:  # a bomb: the PIL path refuses it
        return False
    short, long = sorted((width, height))
    return mode in ("L", "RGB") and short >= SMALL_IMAGE_SIDE and long <= MAX_IMAGE_ASPECT * short


def _decode_jpeg(data: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """``decode_jpeg`` without the deprecation warning torchvision 0.29 gives on every call
    (its image decoders are to move to TorchCodec), silenced for this call only."""
    with filter_in_this_thread("ignore", DeprecationWarning, message="The image decoding"):
        decoded: list[torch.Tensor] = decode_jpeg(data, mode=ImageReadMode.UNCHANGED, device=device)
    return decoded
