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
    ImageT,
    OnError,
    Prediction,
    SkippedImage,
    check_image_list,
    check_k,
    finite_rows,
    image_batch,
    image_source,
    log_skipped,
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
        The files the last :meth:`topk` or :meth:`predict_proba` call left out (with
        ``on_error="skip"``), in input order; a call that raises leaves it empty.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    IsADirectoryError
        If ``path`` is a folder; the message lists the ONNX models in it (or a run
        folder's checkpoints).
    ValueError
        If it is not a model exported by retinalnet (a PyTorch file, such as a checkpoint
        named ``.onnx``, is named as one), is damaged or incomplete (a copy cut short), or
        an argument is out of range.
    ModuleNotFoundError
        If ``onnxruntime`` or ``onnx`` is missing (``pip install 'retinalnet[onnx]'``).

    Notes
    -----
    Thread-safe: threads may share one OnnxPredictor, and each call gives the result it gives
    alone (an unreadable file's error names that file, in the call that was given it).
    :attr:`skipped` belongs to the predictor: with threads sharing one, read the skipped
    files of a call before another call starts, or give each thread its own predictor.

    An OnnxPredictor can be pickled (handed to a process pool) and deep-copied: the copy
    opens the same file again, so the file must still be where it was, unchanged.

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
        self.batch_size = batch_size
        self.on_error: OnError = on_error
        self.skipped: list[SkippedImage] = []
        self._threads = threads
        self._file = self.path.absolute()  # found again by a copy unpickled in another folder
        self._open(self.path)

    def _open(self, file: Path) -> None:
        """Read the file's metadata and open the onnxruntime session on it."""
        self.metadata: OnnxMetadata = read_metadata(file)
        self._stamp = _stamp(file)
        self.session: Any = inference_session(str(file), threads=self._threads)
        self._input: str = self.session.get_inputs()[0].name
        self._transform = self.preprocessing.eval_transform()

    def __getstate__(self) -> dict[str, Any]:
        """The settings and the file's place, without the onnxruntime session (which cannot
        be pickled): a copy opens the file again."""
        state = self.__dict__.copy()
        for opened in ("metadata", "session", "_input", "_transform"):
            del state[opened]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Open the file again, refusing one that is gone or changed since it was opened
        (a copy would not give the original's answers).

        Raises
        ------
        FileNotFoundError
            If the file is no longer there.
        ValueError
            If the file was changed since the original opened it.
        """
        self.__dict__.update(state)
        file: Path = self._file
        if not file.is_file():
            raise FileNotFoundError(
                f"cannot copy or unpickle the OnnxPredictor of {str(file)!r}: the file is no "
                "longer there (a copy opens the file again); keep it in place, or copy the "
                "file to where the predictor is needed and build one there with "
                "Predictor.from_onnx(path)"
            )
        if _stamp(file) != self._stamp:
            raise ValueError(
                f"cannot copy or unpickle the OnnxPredictor of {str(file)!r}: the file was "
                "changed since the predictor opened it, so a copy would not give its answers; "
                "build a new one with Predictor.from_onnx(path)"
            )
        self._open(file)

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

    def _call(
        self, images: Sequence[ImageInput], *, single: bool = False
    ) -> tuple[torch.Tensor, list[bool]]:
        """:meth:`_probabilities` for a :meth:`topk` or :meth:`predict_proba` call, refused if
        a row is not finite, and the one place its skipped files are recorded in
        :attr:`skipped` and logged: only when the call returns a result. A call that raises
        (a ``single`` image that cannot be read among them) leaves :attr:`skipped` empty.

        The skipped files are the call's own until it returns (no lock is needed: threads
        sharing the predictor each decide from their own list, and onnxruntime sessions
        take calls from several threads).
        """
        try:
            probabilities, readable, skipped = self._probabilities(images)
            if single and skipped:  # nothing else to return
                raise UnreadableImageError(skipped[0].source, skipped[0].reason)
            finite_rows(probabilities, images, readable)
        except BaseException:
            self.skipped = []
            raise
        self.skipped = skipped
        log_skipped(skipped, of=len(images), owner="OnnxPredictor")
        return probabilities, readable

    def _probabilities(
        self, images: Sequence[ImageInput]
    ) -> tuple[torch.Tensor, list[bool], list[SkippedImage]]:
        """Probabilities of the readable images, in order, which images were readable, and
        the skipped ones."""
        skipped: list[SkippedImage] = []
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
                    skipped.append(SkippedImage(image_source(images[index], index), reason))
                    readable.append(False)
                    continue
                readable.append(True)
            if batch:
                inputs = torch.stack(batch).float().numpy()
                rows.append(self.session.run(None, {self._input: inputs})[0])
        if not rows:
            return torch.empty(0, len(self.classes)), readable, skipped
        return torch.from_numpy(np.concatenate(rows).astype(np.float32)), readable, skipped

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
            If ``images`` is not a list or tuple (pass ``[image]`` for one image, and
            ``list(images)`` for a NumPy array of paths, a pandas Series or a generator).
        """
        check_image_list(images)
        probabilities, _ = self._call(images)
        return probabilities

    @overload
    def topk(self, images: ImageInput, k: int | None = ...) -> Prediction: ...

    @overload
    def topk(
        self, images: list[ImageInput] | tuple[ImageInput, ...], k: int | None = ...
    ) -> list[Prediction]: ...  # a list literal mixing kinds ([Path(...), "b.jpeg"])

    @overload
    def topk(
        self, images: list[ImageT] | tuple[ImageT, ...], k: int | None = ...
    ) -> list[Prediction]: ...  # a list of one kind (a list[str] variable)

    def topk(
        self,
        images: ImageInput | list[ImageT] | tuple[ImageT, ...],
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
        TypeError
            If an image is of no accepted type, or ``images`` is a collection other than a
            list or tuple (a NumPy array of paths, a pandas Series, a generator: it would be
            read as one image); pass ``list(images)``, as :meth:`predict_proba` says.
        """
        k = check_k(k, len(self.classes))
        batch, single = image_batch(images)
        probabilities, readable = self._call(batch, single=single)
        predictions = top_predictions(probabilities, batch, readable, self.classes, k)
        return predictions[0] if single else predictions


def _stamp(file: Path) -> tuple[int, int]:
    """What tells a changed file: its size and its time of last change, in nanoseconds."""
    status = file.stat()
    return status.st_size, status.st_mtime_ns
