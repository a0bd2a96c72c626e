"""Top-k predictions for OCT images from a trained model.

Why this module is long: it is one class, the :class:`Predictor`, whose public methods each
carry a NumPy docstring with parameters, errors and examples; its small result types
(:class:`Prediction`, :class:`ClassProbability`, :class:`SkippedImage`) belong with it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast, overload

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

from retinalnet._core.articles import type_with_article
from retinalnet._core.classes import in_words
from retinalnet._core.counts import as_integer
from retinalnet._core.device import default_num_workers
from retinalnet._core.images import (
    ImageInput,
    UnreadableImageError,
    coerce_image,
    warn_of_full_scale_images,
)
from retinalnet._core.loader_settings import check_batch_size, check_num_workers
from retinalnet._core.loaders import make_loader
from retinalnet._core.log_marks import SAID_BY_THE_COMMAND_LINE
from retinalnet._core.model_use import exclusive_use
from retinalnet._core.proportion_text import percent
from retinalnet.checkpoint import load_checkpoint
from retinalnet.engine import InferenceEngine, first_nonfinite_row
from retinalnet.gradcam._cam import explain_image
from retinalnet.models import Classifier
from retinalnet.precision import Precision, precision_name
from retinalnet.transforms import Preprocessing

if TYPE_CHECKING:
    from retinalnet.export import OnnxPredictor

__all__ = ["ClassProbability", "ImageInput", "Prediction", "Predictor", "SkippedImage"]

logger = logging.getLogger(__name__)

OnError = Literal["raise", "skip"]  # what a Predictor does with a file it cannot read

_ON_ERROR = ("raise", "skip")

ImageT = TypeVar("ImageT", bound=ImageInput)
"""The images of a list given to ``topk``: a ``list[str]`` or ``list[Path]`` is taken as it is
(``list[ImageInput]`` would refuse it under mypy, a list being invariant)."""


@dataclass(frozen=True)
class ClassProbability:
    """One class and the probability the model gives it.

    ``str()`` gives the class and its probability as a percentage that is never rounded to
    an end it did not reach (0.9996 is ``">99.9%"``, not ``"100.0%"``).

    .. versionchanged:: 0.2
       ``str()`` reads as text, not the dataclass's fields.

    Examples
    --------
    >>> str(ClassProbability("CNV", 0, 0.9996)), str(ClassProbability("DME", 1, 0.0312))
    ('CNV >99.9%', 'DME 3.1%')
    """

    name: str
    index: int
    probability: float

    def __str__(self) -> str:
        return f"{self.name} {percent(self.probability)}"


@dataclass(frozen=True)
class Prediction:
    """The top-k classes of one image, most probable first.

    Attributes
    ----------
    source : str
        The file path, or ``"<image N>"`` for an in-memory image.
    top : tuple of ClassProbability
        ``k`` classes sorted by descending probability.
    """

    source: str
    top: tuple[ClassProbability, ...]

    def __str__(self) -> str:
        """The source and its classes, most probable first, as ``print()`` shows them:
        ``"scan.jpeg: CNV >99.9%, DME <0.1%"`` (see :class:`ClassProbability`).

        .. versionchanged:: 0.2
           Was the dataclass's fields.
        """
        return f"{self.source}: {', '.join(map(str, self.top))}"

    @property
    def label(self) -> str:
        """The most probable class."""
        return self.top[0].name

    @property
    def probability(self) -> float:
        """Probability of the most probable class."""
        return self.top[0].probability

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {
            "source": self.source,
            "label": self.label,
            "top": [{"class": c.name, "probability": c.probability} for c in self.top],
        }


@dataclass(frozen=True)
class SkippedImage:
    """An image that ``Predictor(on_error="skip")`` left out, and why.

    .. versionadded:: 0.2

    Attributes
    ----------
    source : str
        The file path, as given.
    reason : str
        What went wrong, in a few words (as :class:`~retinalnet.datasets.UnreadableImageError`
        says it).
    """

    source: str
    reason: str


def log_skipped(skipped: Sequence[SkippedImage], *, of: int, owner: str) -> None:
    """Say in one WARNING line which images a call left out (``owner.skipped`` lists them);
    the command line lists them itself, so it does not print this line again."""
    if not skipped:
        return
    names = ", ".join(Path(s.source).name for s in skipped[:3])
    more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
    logger.warning(
        "skipped %d unreadable image(s) of %d: %s%s (%s.skipped lists them)",
        len(skipped),
        of,
        names,
        more,
        owner,
        extra={SAID_BY_THE_COMMAND_LINE: True},
    )


class Predictor:
    """Batched, device-independent top-k prediction with the model's own preprocessing.

    Parameters
    ----------
    model
        A trained :class:`~retinalnet.models.Classifier`; its preprocessing and class names
        are used, so images are prepared exactly as in training.
    device
        ``"auto"`` (CUDA, then MPS, then CPU), or any device; CPU always works.
    batch_size
        Images per forward pass.
    tta
        Test-time augmentation: average the probabilities of each prepared image (resized
        and centre-cropped) and of its horizontal mirror, which can sit a pixel off the
        crop of the mirrored scan. Each batch goes through the model twice, so prediction
        takes about twice as long.

        .. versionadded:: 0.2
    num_workers
        Processes that read and prepare image files while the model runs; by default 0 on a
        CPU (measured faster on 2 cores) and up to 8 with a GPU.
        In-memory images are always prepared in the calling process.

        .. versionadded:: 0.2
    precision
        ``"auto"`` (default) runs under bf16 autocast on GPUs and on CPUs with native bf16,
        where it was measured faster (frozen VGG16 at 224 px on 2 CPU cores: 8.6 images/s in
        fp32, 25.0 in bf16 with channels-last); fp32 elsewhere. The weights are cast to
        bf16 once (:func:`~retinalnet.precision.low_precision_forward`) and again only
        after one of them changes; the model keeps its fp32 weights, and the cast copy
        takes half their memory (in fp32, channels-last copies of the convolutions' weights
        are kept the same way). A change is told by the weight's tensor (a replaced one:
        ``load_state_dict(assign=True)``, ``module.weight = nn.Parameter(w)``,
        ``weight.data = w``), its storage and PyTorch's version counter, which an in-place
        write through ``.data`` (``weight.data.copy_(w)``) does not move: after such a
        write, build a new Predictor (``load_state_dict``, an optimizer step or
        ``with torch.no_grad(): weight.copy_(w)`` are seen). ``"fp32"`` gives exact fp32
        probabilities; ``"bf16"``/``"fp16"`` force one. Images go through the network in the
        channels-last memory layout, which changes no result.

        .. versionadded:: 0.2
    on_error
        What to do with an image file that cannot be read (missing, corrupt, truncated, not
        an image; see :class:`~retinalnet.datasets.UnreadableImageError`): ``"raise"`` (the
        default) raises the error, which names the file; ``"skip"`` leaves the file out of
        the results of a list, logs one warning per call, and records it in
        :attr:`skipped`, so one bad file does not cost the predictions of the others.
        A single image (not in a list) is always raised: there is nothing else to return,
        so nothing is logged or recorded as skipped for it.

        .. versionadded:: 0.2

    Attributes
    ----------
    skipped : list of SkippedImage
        The files the last :meth:`topk` or :meth:`predict_proba` call left out (empty with
        ``on_error="raise"``), in input order. A call that raises returned nothing, so it
        left nothing out: it leaves the list empty, as :meth:`gradcam` (one image) does.

        .. versionadded:: 0.2

    Notes
    -----
    Every forward pass goes through :class:`~retinalnet.engine.InferenceEngine`, the same
    engine evaluation and the feature cache use; it divides the outputs by the model's
    calibration :attr:`temperature` before the softmax. The model is moved to ``device``; nothing
    else about it changes (its weights, memory layout and the train/eval mode of each of its
    modules stay as they are, a frozen backbone in eval mode under a head in train mode
    included).

    Thread-safe: calls on one model run one at a time. A call from a thread (a web server's
    request, a notebook's background task) waits while another thread's :meth:`topk`,
    :meth:`predict_proba` or :meth:`gradcam`, an :func:`~retinalnet.training.evaluate` or a
    Trainer's validation runs the same model, whether through this Predictor or another
    one; each gives the result it gives alone. Different models run at the same time.
    Training a model in one thread while predicting with it in another is not supported.
    :attr:`skipped` belongs to the Predictor: with threads sharing one, read the skipped
    files of a call before another call starts, or give each thread its own Predictor.

    Examples
    --------
    >>> from retinalnet import Predictor
    >>> predictor = Predictor.from_checkpoint("runs/best.pt")  # doctest: +SKIP
    >>> result = predictor.topk("CNV-1016042-1.jpeg", k=2)  # doctest: +SKIP
    >>> print(result)  # doctest: +SKIP
    CNV-1016042-1.jpeg: CNV 97.3%, DME 2.1%
    """

    def __init__(
        self,
        model: Classifier,
        *,
        device: str | torch.device = "auto",
        batch_size: int = 32,
        tta: bool = False,
        precision: Precision = "auto",
        num_workers: int | None = None,
        on_error: OnError = "raise",
    ) -> None:
        if not isinstance(model, Classifier):
            raise TypeError(
                f"Predictor needs a retinalnet Classifier (got {type(model).__name__}), which "
                "carries the class names and preprocessing: Classifier(network, classes=[...])"
            )
        batch_size = check_batch_size(batch_size)
        num_workers = check_num_workers(num_workers)
        if on_error not in _ON_ERROR:
            raise ValueError(
                f"on_error must be 'raise' or 'skip', got {on_error!r}; 'skip' leaves "
                "unreadable files out and lists them in Predictor.skipped"
            )
        self.engine = InferenceEngine(model, device=device, precision=precision, tta=tta)
        self.model = model
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.on_error: OnError = on_error
        self.skipped: list[SkippedImage] = []

    @property
    def device(self) -> torch.device:
        """Where the model runs."""
        return self.engine.device

    @property
    def precision(self) -> Precision:
        """The precision asked for (see the constructor)."""
        return self.engine.precision

    @property
    def precision_name(self) -> str:
        """The precision the probabilities are computed in on this device: ``"fp32"``,
        ``"bf16"`` or ``"fp16"`` (``"auto"`` resolved; see
        :func:`~retinalnet.precision.resolve_precision`). ``retinalnet predict`` reports it
        with its results, as ``evaluate`` does.

        .. versionadded:: 0.2
        """
        return precision_name(self.engine.dtype)

    @property
    def tta(self) -> bool:
        """Whether each image is averaged with its mirror."""
        return self.engine.tta

    @property
    def temperature(self) -> float:
        """The calibration temperature applied before the softmax: the model's own
        (:attr:`Classifier.temperature <retinalnet.models.Classifier.temperature>`, 1.0
        when uncalibrated, as saved in its checkpoint).

        .. versionadded:: 0.2
        """
        return self.engine.temperature

    @property
    def preprocessing(self) -> Preprocessing:
        """How images are prepared: the model's own preprocessing."""
        return self.model.preprocessing

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike[str],
        *,
        device: str | torch.device = "auto",
        batch_size: int = 32,
        model: nn.Module | None = None,
        tta: bool = False,
        precision: Precision = "auto",
        num_workers: int | None = None,
        on_error: OnError = "raise",
    ) -> Predictor:
        """Load a checkpoint (safely, offline) and wrap it in a Predictor.

        Parameters
        ----------
        path
            A checkpoint written by retinalnet (``best.pt``).
        device, batch_size, tta, precision, num_workers, on_error
            As in the constructor.
        model
            The untrained network, only for checkpoints of networks built by hand.
        """
        classifier = load_checkpoint(path).build_model(model)
        return cls(
            classifier,
            device=device,
            batch_size=batch_size,
            tta=tta,
            precision=precision,
            num_workers=num_workers,
            on_error=on_error,
        )

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names in output order."""
        return self.model.classes

    def predict_proba(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """Class probabilities, shape ``(len(images), num_classes)``, float32 on the CPU.

        With ``on_error="skip"`` the rows are those of the readable images, in input order,
        and :attr:`skipped` lists the others.

        Raises
        ------
        retinalnet.datasets.UnreadableImageError
            If a file cannot be read and ``on_error="raise"``.
        ValueError
            If the model's output for an image is NaN or infinite (whatever ``on_error``
            says: the model, not the file, is at fault); the message names the image.
        TypeError
            If ``images`` is not a list or tuple: a single path would be read letter by
            letter, a tensor row by row. Pass ``[image]``, or ``list(batch)``; a NumPy array
            of paths, a pandas Series or a generator is told to be passed as
            ``list(images)``.
        """
        check_image_list(images)
        with exclusive_use(self.model):  # also keeps `skipped` this call's own
            log_probabilities, readable = self._call(images)
        return log_probabilities[readable].exp().float()

    def _call(
        self, images: Sequence[ImageInput], *, single: bool = False
    ) -> tuple[torch.Tensor, list[bool]]:
        """:meth:`_log_probabilities` for a :meth:`topk` or :meth:`predict_proba` call (the
        caller holds the model), and the one place its skipped files are recorded in
        :attr:`skipped` and logged: only when the call returns a result. A call that raises
        (a ``single`` image that cannot be read among them) leaves :attr:`skipped` empty."""
        self.skipped = []
        log_probabilities, readable, skipped = self._log_probabilities(images, single=single)
        self.skipped = skipped
        log_skipped(skipped, of=len(images), owner="Predictor")
        return log_probabilities, readable

    def _log_probabilities(
        self, images: Sequence[ImageInput], *, single: bool = False
    ) -> tuple[torch.Tensor, list[bool], list[SkippedImage]]:
        """Log-probabilities (float64, on the CPU) of every image (a blank row for a skipped
        one), which are real, and the skipped ones; a ``single`` image that cannot be read is
        raised (there is nothing else to return)."""
        if not images:
            return torch.empty(0, len(self.classes)), [], []
        # Workers pay off for files to decode; in-memory images (CUDA tensors among them)
        # are prepared in this process rather than copied to workers.
        files_only = all(isinstance(image, (str, os.PathLike)) for image in images)
        warn_of_full_scale_images(images, target_size=self.preprocessing.decode_size)
        skip = self.on_error == "skip"
        # a pool of workers starts again at every call (seconds under macOS's and Windows'
        # "spawn"): for one batch (one image in a loop, a web service) it costs more than it
        # saves, and a worker per batch is the most that is ever busy
        batches = math.ceil(len(images) / self.batch_size)
        workers = min(self._workers(), batches) if files_only and batches > 1 else 0
        loader = make_loader(
            _PreparedImages(images, self.preprocessing, skip=skip),
            batch_size=self.batch_size,
            shuffle=False,
            transform=None,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            checked=True,  # the model's own preparation: no second decode to look at it
        )
        rows: list[torch.Tensor] = []
        reasons: list[str] = []
        # closed at once on an error (nothing waits for the garbage collector to give the
        # model back and put its modes back)
        with contextlib.closing(self.engine.run(loader)) as results:
            for log_probs, rest in results:
                start = len(reasons)
                reasons.extend(rest[0] if skip else [""] * len(log_probs))
                # every answer is a finite one: a NaN output stops here, naming its image
                read = [row for row in range(len(log_probs)) if not reasons[start + row]]
                bad = first_nonfinite_row(log_probs[read])
                if bad is not None:
                    index = start + read[bad]
                    source = image_source(images[index], index)
                    raise nonfinite_output_error(
                        source, low_precision=self.engine.dtype is not None
                    )
                rows.append(log_probs.cpu().double())  # float64 from MPS's float32 too
        skipped = [
            SkippedImage(image_source(image, index), reason)
            for index, (image, reason) in enumerate(zip(images, reasons, strict=True))
            if reason
        ]
        if single and skipped:
            raise UnreadableImageError(skipped[0].source, skipped[0].reason)
        return torch.cat(rows), [not reason for reason in reasons], skipped

    def _workers(self) -> int:
        return default_num_workers(self.device, self.num_workers)

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

        Parameters
        ----------
        images
            One image (path, PIL image, image tensor or NumPy array of pixels) or a list or
            tuple of them. Lists are processed in batches of ``batch_size``. Another
            collection (a NumPy array of paths, a pandas Series, a generator) is refused:
            pass ``list(images)``.
        k
            How many classes to return, 1 to the number of classes; default 3 (every
            class of a model of fewer, such as a two-class study's).

        Returns
        -------
        Prediction or list of Prediction
            One per image, in input order; each sorted by descending probability. With
            ``on_error="skip"``, one per readable image (:attr:`skipped` lists the others).

        Raises
        ------
        retinalnet.datasets.UnreadableImageError
            If a file cannot be read; the message names it. With ``on_error="skip"``, only
            for a single image (not in a list).
        ValueError
            If ``k`` is out of range, a tensor is not an image, or the model's output for
            an image is NaN or infinite (whatever ``on_error`` says); the message names the
            image.
        TypeError
            If an image is of no accepted type, or ``images`` is a collection other than a
            list or tuple (it would be read as one image); the message says to pass
            ``list(images)``, as :meth:`predict_proba`'s does.
        """
        k = check_k(k, len(self.classes))
        batch, single = image_batch(images)
        with exclusive_use(self.model):  # also keeps `skipped` this call's own
            log_probabilities, readable = self._call(batch, single=single)
        rows = log_probabilities[readable]
        # ranked by the log-probabilities: a confident model's small probabilities round to
        # 0.0 as floats, and the tie rule would then order them by class index
        predictions = top_predictions(rows.exp(), batch, readable, self.classes, k, ranking=rows)
        return predictions[0] if single else predictions

    def gradcam(
        self, image: ImageInput, *, class_index: int | str | None = None
    ) -> npt.NDArray[np.float32]:
        """Grad-CAM heatmap of one image: where the model looked for a class.

        The map explains the class's score before the softmax (its logit), as
        :func:`retinalnet.gradcam.grad_cam` does, at the model's declared Grad-CAM layer
        (:meth:`Classifier.gradcam_target <retinalnet.models.Classifier.gradcam_target>`).

        .. versionadded:: 0.2

        Parameters
        ----------
        image
            A path, PIL image or image tensor, as for :meth:`topk`.
        class_index
            The class to explain, by index or name; by default the class :meth:`topk`
            ranks first for this image (at this Predictor's precision, test-time
            augmentation and temperature), so the map explains the answer it gave.

        Returns
        -------
        numpy.ndarray
            float32 ``(height, width)`` in [0, 1], at the size of the image as given
            (mapped back through the resize and centre crop; see
            :func:`retinalnet.gradcam.heatmap_to_image`).

        Raises
        ------
        retinalnet.datasets.UnreadableImageError
            If the file cannot be read, whatever ``on_error`` says (there is nothing else to
            return); the message names it.
        TypeError
            If ``image`` is a list, tuple or other collection of images (a NumPy array of
            paths, a pandas Series, a generator): one map per call.
        ValueError
            If ``class_index`` is not a class of the model, or the model's Grad-CAM layer
            cannot be explained (not spatial, not run, a 1 x 1 map): the message names the
            fix, another layer declared with ``Classifier(network, ...,
            gradcam_layer=PATH)``.

        Examples
        --------
        >>> heatmap = predictor.gradcam("CNV-1016042-1.jpeg")  # doctest: +SKIP
        >>> from retinalnet.plots import plot_gradcam  # doctest: +SKIP
        >>> plot_gradcam("CNV-1016042-1.jpeg", heatmap, save="cam.png")  # doctest: +SKIP
        """
        refuse_open_file(image, "gradcam", "{}")
        several = several_images(image)
        if several is not None:
            raise TypeError(
                f"gradcam() explains one image, got {several}; "
                "call it once per image: [predictor.gradcam(image) for image in images]"
            )
        if isinstance(class_index, str):
            if class_index not in self.classes:
                raise ValueError(
                    f"class_index {class_index!r} is not a class of this model; choose from "
                    f"{in_words(self.classes)}"
                )
            class_index = self.classes.index(class_index)
        if class_index is not None and not 0 <= class_index < len(self.classes):
            raise ValueError(
                f"class_index must be from 0 to {len(self.classes) - 1} or a class name, got "
                f"{class_index!r}"
            )
        with exclusive_use(self.model):  # the class and the map from the same weights
            self.skipped = []  # one image, raised if unreadable: nothing is left out
            # the class topk reports (its precision, TTA, temperature), from the input the
            # map explains: the image is decoded once
            return explain_image(
                self.model,
                image,
                class_index=class_index,
                choose_class=lambda prepared: self._top_class(prepared, image),
            )

    def _top_class(self, prepared: torch.Tensor, image: ImageInput) -> int:
        """The class :meth:`topk` ranks first for ``image``, prepared as ``prepared``.

        Raises
        ------
        ValueError
            If the model's output for it is NaN or infinite, naming the image.
        """
        log_probabilities = self.engine.log_probabilities(prepared[None]).cpu()
        if first_nonfinite_row(log_probabilities) is not None:
            raise nonfinite_output_error(
                image_source(image, 0), low_precision=self.engine.dtype is not None
            )
        top = top_predictions(
            log_probabilities.exp(), [image], [True], self.classes, 1, ranking=log_probabilities
        )
        return top[0].top[0].index

    @classmethod
    def from_onnx(
        cls,
        path: str | os.PathLike[str],
        *,
        batch_size: int = 32,
        on_error: OnError = "raise",
        threads: int | None = None,
    ) -> OnnxPredictor:
        """Predict with an exported ONNX model through onnxruntime, no PyTorch model needed.

        The returned :class:`~retinalnet.export.OnnxPredictor` has the same :meth:`topk`,
        :meth:`predict_proba`, :attr:`classes` and :attr:`skipped`, and prepares images the
        same way, from the preprocessing stored in the file (see the docs page "Deploying a
        model"). Needs ``pip install 'retinalnet[onnx]'``.

        .. versionadded:: 0.2

        Parameters
        ----------
        path
            An ONNX file written by :func:`~retinalnet.export.to_onnx`
            (``retinalnet export``).
        batch_size, on_error
            As in the constructor.
        threads
            onnxruntime's threads; one per core by default.

        Examples
        --------
        >>> predictor = Predictor.from_onnx("model.onnx")  # doctest: +SKIP
        >>> predictor.topk("CNV-1016042-1.jpeg", k=2).label  # doctest: +SKIP
        'CNV'
        """
        from retinalnet.export._onnx_predictor import OnnxPredictor

        return OnnxPredictor(path, batch_size=batch_size, on_error=on_error, threads=threads)


def image_source(image: ImageInput, index: int) -> str:
    """How results name an image: its path, or ``<image N>`` for one in memory."""
    return str(image) if isinstance(image, (str, os.PathLike)) else f"<image {index}>"


def several_images(images: object) -> str | None:
    """``images`` named with its length (``a Series of 3``, ``a generator``) when it is a
    collection of images rather than one image: a list or tuple, a NumPy array of paths or
    other objects (its dtype str, bytes or object), a pandas Series, a set, a generator or
    any other iterable that is not an image or a mapping (whose ``list()`` would be its
    keys); else ``None``.

    Both predictors ask it before reading a value as one image, so a column of paths
    (``df["path"]``) is never read as one image and refused for its shape or type.
    """
    if isinstance(images, (str, bytes, os.PathLike, Image.Image, torch.Tensor)):
        return None  # one image (a tensor or a path is iterable too)
    if isinstance(images, np.ndarray):
        if images.ndim == 0 or images.dtype.kind not in "OSU":
            return None  # pixels: one image, or what coerce_image refuses by its shape
    elif not isinstance(images, Iterable) or isinstance(images, Mapping):
        return None
    size = f" of {len(images)}" if isinstance(images, Sized) else ""
    return f"{type_with_article(images)}{size}"


def refuse_open_file(images: object, method: str, one: str) -> None:
    """Refuse an open file object (``open(path, "rb")``, a ``BytesIO``) given as the images
    of ``method``: it is iterable, and ``list(file)`` (the advice for a collection) gives its
    lines of bytes. The message names the file and the two ways that work; ``one`` is how
    ``method`` takes one image (``"[{}]"`` for a list, ``"{}"`` for itself).

    Raises
    ------
    TypeError
        If ``images`` has a ``read`` method.
    """
    if not callable(getattr(images, "read", None)):
        return
    name = getattr(images, "name", None)
    named = f" {name!r}" if isinstance(name, (str, os.PathLike)) else ""
    path = repr(os.fspath(name)) if named and name is not None else "path"
    raise TypeError(
        f"{method} does not read open files, got an open file{named} "
        f"({type(images).__name__}); pass the file's path: {method}({one.format(path)}), or "
        f"the image read from it: {method}({one.format('Image.open(file)')})"
    )


def check_image_list(images: object, *, method: str = "predict_proba") -> None:
    """Refuse what ``predict_proba`` would misread as a list (both predictors' rule): a path
    is a sequence of letters, a tensor one of rows; a collection that is not a list or
    tuple (a NumPy array of paths, a pandas Series, a generator) is told to be passed as
    one.

    Raises
    ------
    TypeError
        If ``images`` is not a list or tuple.
    """
    if isinstance(images, (list, tuple)):
        return
    refuse_open_file(images, method, "[{}]")
    several = several_images(images)
    if several is not None:
        raise TypeError(f"{method} takes a list of images, got {several}; {_as_a_list(method)}")
    also = ", or use topk(image)" if method == "predict_proba" else ""  # a predictor's
    batch = " or" if not also else ","
    raise TypeError(
        f"{method} takes a list of images, got {type_with_article(images)}; pass "
        f"[image] for one image{batch} list(batch) for the images of a batch tensor{also}"
    )


def image_batch(images: object, *, method: str = "topk") -> tuple[Sequence[ImageInput], bool]:
    """The images of a call that takes one image or a list of them (both predictors'
    ``topk``) as a list, and whether one image was given.

    Raises
    ------
    TypeError
        If ``images`` is a collection of images other than a list or tuple (see
        :func:`several_images`): it would be read as one image. The message says to pass
        it as a list, as :func:`check_image_list` does.
    """
    if isinstance(images, (list, tuple)):
        return images, False
    refuse_open_file(images, method, "{}")
    several = several_images(images)
    if several is not None:
        raise TypeError(
            f"{method} takes one image or a list of images, got {several}; {_as_a_list(method)}"
        )
    return [cast("ImageInput", images)], True


def _as_a_list(method: str) -> str:
    """How to pass a collection of images to ``method``: as a list."""
    return f"pass it as a list: {method}(list(images))"


def finite_rows(
    probabilities: torch.Tensor,
    images: Sequence[ImageInput],
    readable: Sequence[bool] | torch.Tensor,
) -> torch.Tensor:
    """``probabilities`` (one row per readable image), refused if a row is NaN or infinite.

    Raises
    ------
    ValueError
        Naming the first image whose probabilities are not finite.
    """
    bad = first_nonfinite_row(probabilities)
    if bad is not None:
        sources = [image_source(image, i) for i, image in enumerate(images) if readable[i]]
        raise nonfinite_output_error(sources[bad], low_precision=False)
    return probabilities


def check_k(k: int | None, num_classes: int) -> int:
    """``k``, or 3 (all classes of a model of fewer) for ``None``; a ``k`` that is not an int
    from 1 to ``num_classes`` is refused (both predictors' rule).

    Raises
    ------
    ValueError
        Naming ``k`` and the range.
    """
    if k is None:  # a two-class study's model has fewer than the usual 3
        return min(3, num_classes)
    number = as_integer(k)
    if number is None or not 1 <= number <= num_classes:
        raise ValueError(f"k must be an int from 1 to {num_classes}, got {k!r}")
    return number


def top_predictions(
    probabilities: torch.Tensor,
    images: Sequence[ImageInput],
    readable: Sequence[bool] | torch.Tensor,
    classes: Sequence[str],
    k: int,
    *,
    ranking: torch.Tensor | None = None,
) -> list[Prediction]:
    """One :class:`Prediction` per readable image: its ``k`` most probable classes.

    ``probabilities`` has one row per readable image, in the order of ``images``; classes
    are ranked by ``ranking`` (the log-probabilities, which keep the order of probabilities
    too small for a float) when given, else by ``probabilities``; the
    torch :class:`Predictor` and the ONNX one build their results here, so both name
    images and order classes the same way, and neither gives an answer for an image whose
    probabilities are NaN or infinite.

    Raises
    ------
    ValueError
        If an image's probabilities are NaN or infinite; the message names the image.
    """
    finite_rows(probabilities, images, readable)
    sources = [image_source(image, i) for i, image in enumerate(images) if readable[i]]
    # ties: the lower class index first, as argmax and retinalnet.metrics rank them
    # (torch.topk orders ties as it likes: four probabilities of 0.25 gave DRUSEN first)
    order = probabilities if ranking is None else ranking
    indices = order.sort(dim=1, descending=True, stable=True).indices[:, :k]
    values = probabilities.gather(1, indices)
    return [
        Prediction(
            source=source,
            top=tuple(
                ClassProbability(classes[int(i)], int(i), float(p))
                for p, i in zip(row_values, row_indices, strict=True)
            ),
        )
        for source, row_values, row_indices in zip(sources, values, indices, strict=True)
    ]


def nonfinite_output_error(source: str, *, low_precision: bool) -> ValueError:
    """The error for a model whose output for the image ``source`` is NaN or infinite."""
    fix = (
        "Predict in fp32 (precision='fp32'), or check the model's weights"
        if low_precision
        else "Check the model: its weights, or a layer that overflows"
    )
    return ValueError(
        f"the model's output for {source!r} is NaN or infinite, so it gives no answer for "
        f"this image (the image passed its checks: the model fails on it). {fix}"
    )


class _PreparedImages(Dataset[Any]):
    """The images of one predict call, read and prepared on demand (in worker processes).

    With ``skip``, an item is ``(tensor, reason)``: an unreadable file gives a blank input
    and the reason it was not read (``""`` for a readable one), so its row can be dropped.
    """

    def __init__(
        self, images: Sequence[ImageInput], preprocessing: Preprocessing, *, skip: bool = False
    ) -> None:
        self.images = images
        self.transform = preprocessing.eval_transform()
        self.decode = preprocessing.load
        self.size = preprocessing.size
        self.skip = skip

    def __len__(self) -> int:
        return len(self.images)

    def _prepare(self, index: int) -> torch.Tensor:
        image = coerce_image(self.images[index], name=f"image {index}", decode=self.decode)
        prepared: torch.Tensor = self.transform(image)
        return prepared

    def __getitem__(self, index: int) -> Any:
        if not self.skip:
            return self._prepare(index)
        try:
            return self._prepare(index), ""
        except UnreadableImageError as error:
            return torch.zeros(3, self.size, self.size), error.reason or str(error)
