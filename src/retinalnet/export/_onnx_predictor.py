"""Prediction with an exported ONNX model through onnxruntime, no PyTorch model needed.

:class:`OnnxPredictor` answers as :class:`~retinalnet.Predictor` does (the same
:meth:`~OnnxPredictor.topk` and :meth:`~OnnxPredictor.predict_proba`, the same result types)
and prepares images by the same gate (:func:`~retinalnet._core.images.coerce_image`) and the
same :class:`~retinalnet.transforms.Preprocessing`, rebuilt from the model's metadata.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np
import torch

from retinalnet._core.images import (
    ImageInput,
    UnreadableImageError,
    coerce_image,
    warn_of_full_scale_images,
)
from retinalnet._core.loader_settings import check_batch_size
from retinalnet._core.model_inputs import refuse_model_input
from retinalnet.export._metadata import OnnxMetadata, read_metadata
from retinalnet.export._onnx_runtime import inference_session
from retinalnet.predictor import (
    OnError,
    Prediction,
    SkippedImage,
    check_image_list,
    check_k,
    finite_rows,
    image_source,
    top_predictions,
)
from retinalnet.transforms import Preprocessing

__all__ = ["OnnxPredictor"]

_IMAGES_ONLY = (
    "an OnnxPredictor takes images (file paths, PIL images, uint8 tensors or float ones in "
    "[0, 1], NumPy arrays) and prepares them with the exported model's preprocessing: pass "
    "the image the input was prepared from"
)
"""What an OnnxPredictor takes, for a model input given in place of an image."""

logger = logging.getLogger(__name__)


class OnnxPredictor:
    """Top-k prediction with a model exported by :func:`~retinalnet.export.to_onnx`, run by
    onnxruntime on the CPU.

    The class names and the preprocessing come from the file's metadata; images pass the
    same input gate and preprocessing as with :class:`~retinalnet.Predictor`, so both give
    the same probabilities on the same files (within the export's parity tolerance).
    ``Predictor.from_onnx(path)`` builds one.

    .. versionadded:: 0.2

    Parameters
    ----------
    path
        An ONNX file written by :func:`~retinalnet.export.to_onnx`
        (``retinalnet export``).
    batch_size
        Images per forward pass.
    on_error
        ``"raise"`` or ``"skip"`` an unreadable file, as for :class:`~retinalnet.Predictor`.
    threads
        onnxruntime's intra-op threads; one per core by default.

    Attributes
    ----------
    metadata : OnnxMetadata
        What the file says about the model.
    skipped : list of SkippedImage
        The files the last call left out (with ``on_error="skip"``).

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ValueError
        If it is not a model exported by retinalnet (a PyTorch file, such as a checkpoint
        named ``.onnx``, is named as one), is damaged or incomplete (a copy cut short), or
        an argument is out of range.
    ModuleNotFoundError
        If ``onnxruntime`` or ``onnx`` is missing (``pip install 'retinalnet[onnx]'``).

    Examples
    --------
    >>> from retinalnet import Predictor
    >>> predictor = Predictor.from_onnx("model.onnx")  # doctest: +SKIP
    >>> predictor.topk("CNV-1016042-1.jpeg", k=2).label  # doctest: +SKIP
    'CNV'
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        batch_size: int = 32,
        on_error: OnError = "raise",
        threads: int | None = None,
    ) -> None:
        check_batch_size(batch_size)
        if on_error not in ("raise", "skip"):
            raise ValueError(
                f"on_error must be 'raise' or 'skip', got {on_error!r}; 'skip' leaves "
                "unreadable files out and lists them in OnnxPredictor.skipped"
            )
        self.path = Path(path)
        self.metadata: OnnxMetadata = read_metadata(self.path)
        self.session: Any = inference_session(str(self.path), threads=threads)
        self._input = self.session.get_inputs()[0].name
        self.batch_size = batch_size
        self.on_error: OnError = on_error
        self.skipped: list[SkippedImage] = []
        self._transform = self.preprocessing.eval_transform()

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names in output order."""
        return self.metadata.classes

    @property
    def preprocessing(self) -> Preprocessing:
        """How images are prepared: the exported model's own preprocessing."""
        return self.metadata.preprocessing

    def _prepare(self, image: ImageInput, index: int) -> torch.Tensor:
        refuse_model_input(image, name=f"image {index}", fix=_IMAGES_ONLY)
        loaded = coerce_image(image, name=f"image {index}", decode=self.preprocessing.load)
        prepared: torch.Tensor = self._transform(loaded)
        return prepared

    def _probabilities(self, images: Sequence[ImageInput]) -> tuple[torch.Tensor, list[bool]]:
        """Probabilities of the readable images, in order, and which images were readable."""
        self.skipped = []
        readable: list[bool] = []
        rows: list[np.ndarray[Any, Any]] = []
        warn_of_full_scale_images(images, target_size=self.preprocessing.decode_size)
        for start in range(0, len(images), self.batch_size):
            batch: list[torch.Tensor] = []
            for index in range(start, min(start + self.batch_size, len(images))):
                try:
                    batch.append(self._prepare(images[index], index))
                except UnreadableImageError as error:
                    if self.on_error == "raise":
                        raise
                    reason = error.reason or str(error)
                    self.skipped.append(SkippedImage(image_source(images[index], index), reason))
                    readable.append(False)
                    continue
                readable.append(True)
            if batch:
                inputs = torch.stack(batch).float().numpy()
                rows.append(self.session.run(None, {self._input: inputs})[0])
        if self.skipped:
            names = ", ".join(Path(s.source).name for s in self.skipped[:3])
            more = f" and {len(self.skipped) - 3} more" if len(self.skipped) > 3 else ""
            logger.warning(
                "skipped %d unreadable image(s) of %d: %s%s (OnnxPredictor.skipped lists them)",
                len(self.skipped),
                len(images),
                names,
                more,
            )
        if not rows:
            return torch.empty(0, len(self.classes)), readable
        return torch.from_numpy(np.concatenate(rows).astype(np.float32)), readable

    def predict_proba(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """Class probabilities, shape ``(len(images), num_classes)``, float32 on the CPU.

        With ``on_error="skip"`` the rows are those of the readable images, in input order,
        and :attr:`skipped` lists the others.

        Raises
        ------
        retinalnet.datasets.UnreadableImageError
            If a file cannot be read and ``on_error="raise"``.
        ValueError
            If the model's output for an image is NaN or infinite; the message names it.
        TypeError
            If ``images`` is not a list or tuple (pass ``[image]`` for one image).
        """
        check_image_list(images)
        probabilities, readable = self._probabilities(images)
        return finite_rows(probabilities, images, readable)

    @overload
    def topk(self, images: ImageInput, k: int | None = ...) -> Prediction: ...

    @overload
    def topk(
        self, images: list[ImageInput] | tuple[ImageInput, ...], k: int | None = ...
    ) -> list[Prediction]: ...

    def topk(
        self,
        images: ImageInput | list[ImageInput] | tuple[ImageInput, ...],
        k: int | None = None,
    ) -> Prediction | list[Prediction]:
        """The ``k`` most probable classes of one image, or of each image in a list.

        As :meth:`retinalnet.Predictor.topk`: one :class:`~retinalnet.Prediction` per image
        (per readable image with ``on_error="skip"``), in input order, each sorted by
        descending probability.

        Raises
        ------
        retinalnet.datasets.UnreadableImageError
            If a file cannot be read; with ``on_error="skip"``, only for a single image.
        ValueError
            If ``k`` is out of range or a tensor is not an image.
        """
        k = check_k(k, len(self.classes))
        single = not isinstance(images, (list, tuple))
        batch: Sequence[ImageInput] = images if isinstance(images, (list, tuple)) else [images]
        probabilities, readable = self._probabilities(batch)
        if single and self.skipped:
            raise UnreadableImageError(self.skipped[0].source, self.skipped[0].reason)
        predictions = top_predictions(probabilities, batch, readable, self.classes, k)
        return predictions[0] if single else predictions
