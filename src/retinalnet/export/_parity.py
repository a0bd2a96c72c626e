"""The parity check of an export: the ONNX model gives the PyTorch model's probabilities.

Both see the same prepared tensors; the PyTorch side runs through
:class:`~retinalnet.engine.InferenceEngine` in fp32 on the CPU, the ONNX side through
onnxruntime on the CPU.
"""

from __future__ import annotations

import copy
import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from retinalnet._core.counts import as_integer, as_number
from retinalnet._core.images import ImageInput
from retinalnet._core.model_use import exclusive_use
from retinalnet.engine import InferenceEngine
from retinalnet.export._onnx_runtime import inference_session
from retinalnet.models import Classifier
from retinalnet.predictor import check_image_list

__all__ = [
    "PARITY_TOLERANCE",
    "ParityError",
    "ParityReport",
    "check_parity",
    "reference_probabilities",
    "synthetic_images",
]

PARITY_TOLERANCE = 1e-4
"""Largest difference allowed between an ONNX probability and the PyTorch one (fp32).

Measured on the 20 registered architectures (random weights) and on the real sample scans:
at most about 1e-6; the tolerance leaves two orders of magnitude for other CPUs and
onnxruntime versions, and is still far below any difference that could change a label.
"""


class ParityError(ValueError):
    """An exported model does not give the PyTorch model's probabilities.

    .. versionadded:: 0.2

    Attributes
    ----------
    max_abs_diff : float
        The largest difference of one probability.
    image : str
        The image it was measured on.
    tolerance : float
        The largest difference allowed.
    """

    def __init__(self, message: str, *, max_abs_diff: float, image: str, tolerance: float) -> None:
        super().__init__(message)
        self.max_abs_diff = max_abs_diff
        self.image = image
        self.tolerance = tolerance


@dataclass(frozen=True)
class ParityReport:
    """What the parity check of an export measured.

    .. versionadded:: 0.2

    Attributes
    ----------
    max_abs_diff : float
        The largest difference of one probability, over every image and class.
    image : str
        The image where it was largest.
    images : int
        How many images were compared.
    tolerance : float
        The largest difference allowed.
    """

    max_abs_diff: float
    image: str
    images: int
    tolerance: float


_MAX_SYNTHETIC = 1024
"""The most images :func:`synthetic_images` makes: a parity check needs a few."""
_SIDES = (32, 4096)
"""The smallest and largest side of a synthetic image, in pixels."""


def _synthetic_for(model: Classifier) -> list[Image.Image]:
    """:func:`synthetic_images` a little larger than ``model``'s resize (300 x 280 at the
    default 256): never so large that a model decoding its files at reduced scale would
    shrink them, so no warning of images "given in memory" the user did not give."""
    resize = model.preprocessing.resize
    width, height = (
        min(max(_SIDES[0], round(resize * side / 256)), _SIDES[1]) for side in (300, 280)
    )
    return synthetic_images(size=(width, height))


def synthetic_images(count: int = 4, *, size: tuple[int, int] = (300, 280)) -> list[Image.Image]:
    """A few deterministic grey images (smooth bands and speckle), for a parity check when
    no real scans are given.

    Parameters
    ----------
    count
        How many, an int from 1 to 1024.
    size
        ``(width, height)`` of each, as PIL gives it: ints from 32 to 4096.

    Raises
    ------
    ValueError
        If ``count`` or ``size`` is out of range or not made of ints.

    Examples
    --------
    >>> [image.size for image in synthetic_images(2)]
    [(300, 280), (300, 280)]
    """
    number = as_integer(count)
    if number is None or not 1 <= number <= _MAX_SYNTHETIC:
        raise ValueError(
            f"count must be an int from 1 to {_MAX_SYNTHETIC} (images), got {count!r}; e.g. 4"
        )
    low, high = _SIDES
    sides = list(size) if isinstance(size, (tuple, list)) else []
    if len(sides) != 2 or not all(
        (side := as_integer(value)) is not None and low <= side <= high for value in sides
    ):
        raise ValueError(
            f"size must be a (width, height) pair of ints from {low} to {high} (pixels), got "
            f"{size!r}; e.g. size=(300, 280)"
        )
    width, height = int(sides[0]), int(sides[1])
    generator = np.random.default_rng(0)
    rows = np.linspace(0, np.pi * 3, height)[:, None]
    images = []
    for index in range(count):
        bands = 0.5 + 0.4 * np.sin(rows * (index + 1) + np.linspace(0, 1, width)[None, :])
        noisy = bands + generator.normal(0, 0.15, (height, width))
        images.append(Image.fromarray((np.clip(noisy, 0, 1) * 255).astype(np.uint8), mode="L"))
    return images


def reference_probabilities(model: Classifier, inputs: torch.Tensor) -> torch.Tensor:
    """The PyTorch model's probabilities (float64) for prepared inputs, as exported:
    ``softmax(outputs / temperature)`` through the inference engine in fp32 on the CPU."""
    temperature = float(getattr(model, "temperature", 1.0))
    engine = InferenceEngine(_on_cpu(model), device="cpu", precision="fp32")
    outputs = engine.outputs(inputs).double()
    return torch.softmax(outputs / temperature, dim=1)


def _on_cpu(model: Classifier) -> Classifier:
    """``model`` itself when all its tensors are on the CPU, else a copy there: the check
    leaves a model on a GPU where it is."""
    with exclusive_use(model):  # not mid-way through another thread's pass (a ViT's swap)
        tensors = itertools.chain(model.parameters(), model.buffers())
        if all(tensor.device.type == "cpu" for tensor in tensors):
            return model
        return copy.deepcopy(model).cpu()


def _name(image: ImageInput, index: int) -> str:
    return str(image) if isinstance(image, (str, os.PathLike)) else f"<image {index}>"


def check_tolerance(tolerance: object) -> float:
    """``tolerance`` as a float if it is a probability difference in (0, 1), the rule of
    :func:`check_parity` and :func:`~retinalnet.export.to_onnx`: two probabilities differ by
    at most 1, so a tolerance of 1 or more (``1`` meant as 1%, ``50``) makes a check that can
    never fail.

    Raises
    ------
    TypeError
        If ``tolerance`` is not a number (a bool, a string).
    ValueError
        If it is not in (0, 1); at 1 or more, the message says it is a fraction, not a
        percentage.

    Examples
    --------
    >>> check_tolerance(1e-3)
    0.001
    >>> check_tolerance(1)
    Traceback (most recent call last):
    ValueError: tolerance must be a probability difference in (0, 1), got 1; it is a ...
    """
    number = as_number(tolerance)
    if number is None:
        raise TypeError(
            f"tolerance must be a number, a probability difference in (0, 1), got "
            f"{tolerance!r}; the default is {PARITY_TOLERANCE:g}"
        )
    if not 0 < number < 1:  # NaN fails too
        fix = (
            f"it is a fraction of 1, not a percentage (the default {PARITY_TOLERANCE:g} allows "
            "0.01 percentage points)"
            if number >= 1
            else f"the default is {PARITY_TOLERANCE:g}"
        )
        raise ValueError(
            f"tolerance must be a probability difference in (0, 1), got {tolerance!r}; {fix}"
        )
    return number


def check_parity(
    model: Classifier,
    onnx_model: str | os.PathLike[str] | bytes,
    images: Sequence[ImageInput] | None = None,
    *,
    tolerance: float = PARITY_TOLERANCE,
) -> ParityReport:
    """Check that an ONNX export gives the PyTorch model's probabilities.

    Each image is prepared once by the model's preprocessing; the same tensors go through
    the PyTorch model (fp32, CPU, :class:`~retinalnet.engine.InferenceEngine`) and through
    onnxruntime (CPU), all in one batch and the first image alone as well (the batch axis
    is dynamic).

    .. versionadded:: 0.2

    Parameters
    ----------
    model
        The model that was exported (its ``temperature``, if any, included).
    onnx_model
        The ONNX file, or its bytes.
    images
        Paths, PIL images or image tensors; a few synthetic images when ``None``
        (:func:`synthetic_images`).
    tolerance
        The largest difference allowed in any probability, a fraction in (0, 1)
        (:data:`PARITY_TOLERANCE`, 1e-4, is 0.01 percentage points).

    Returns
    -------
    ParityReport
        The largest difference and where it was.

    Raises
    ------
    ParityError
        If a probability differs by more than ``tolerance``; the message names the image,
        the class and the difference.
    ValueError
        If ``tolerance`` is not in (0, 1): at 1 or more no probability can differ by more,
        and the check could never fail (a ``TypeError`` if it is not a number). Refused
        before any work.
    TypeError
        If ``images`` is not ``None``, a list or a tuple (one path would be read letter by
        letter): pass ``[path]``.

    Examples
    --------
    >>> from retinalnet.export import check_parity
    >>> check_parity(model, "model.onnx", ["CNV-1016042-1.jpeg"]).max_abs_diff  # doctest: +SKIP
    2.9802322387695312e-08
    """
    if images is not None:  # a path is a sequence of letters: "cannot read image 'd'"
        check_image_list(images, method="check_parity")
    tolerance = check_tolerance(tolerance)
    sources: Sequence[ImageInput] = _synthetic_for(model) if images is None else images
    if not sources:
        raise ValueError("check_parity needs at least one image; give images=None for synthetic")
    names = [_name(image, index) for index, image in enumerate(sources)]
    prepare = model.preprocessing.prepare
    inputs = torch.stack([prepare(image) for image in sources]).float().contiguous()
    expected = reference_probabilities(model, inputs).numpy()
    session = inference_session(onnx_model if isinstance(onnx_model, bytes) else str(onnx_model))
    feed: Any = inputs.numpy()
    input_name = session.get_inputs()[0].name
    got = np.asarray(session.run(None, {input_name: feed})[0], dtype=np.float64)
    alone = np.asarray(session.run(None, {input_name: feed[:1]})[0], dtype=np.float64)
    got_first = np.maximum(np.abs(got[:1] - expected[:1]), np.abs(alone - expected[:1]))
    differences = np.abs(got - expected)
    differences[:1] = got_first
    row, column = np.unravel_index(int(np.argmax(differences)), differences.shape)
    largest = float(differences[row, column])
    if not largest <= tolerance:  # NaN fails too
        classes = model.classes
        raise ParityError(
            f"the ONNX export does not give the PyTorch model's probabilities: the largest "
            f"difference is {largest:.3g} (class {classes[column]!r}: ONNX "
            f"{got[row, column]:.6f}, PyTorch {expected[row, column]:.6f}) on image "
            f"{names[row]!r}, above the tolerance {tolerance:g}. The exporter or onnxruntime "
            "computes an operation of this network differently; nothing was written",
            max_abs_diff=largest,
            image=names[row],
            tolerance=tolerance,
        )
    return ParityReport(largest, names[row], len(sources), tolerance)
