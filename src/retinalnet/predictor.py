"""Top-k predictions for OCT images from a trained model."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.utils.data import Dataset

from retinalnet._core.device import default_num_workers
from retinalnet._core.images import ImageInput, coerce_image
from retinalnet._core.loaders import make_loader
from retinalnet.checkpoint import load_checkpoint
from retinalnet.engine import InferenceEngine
from retinalnet.gradcam import grad_cam_image
from retinalnet.models import Classifier
from retinalnet.precision import Precision
from retinalnet.transforms import Preprocessing

__all__ = ["ClassProbability", "ImageInput", "Prediction", "Predictor"]


@dataclass(frozen=True)
class ClassProbability:
    """One class and the probability the model gives it."""

    name: str
    index: int
    probability: float


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
        Test-time augmentation: average the probabilities of each image and of its
        horizontal mirror. Each batch goes through the model twice, so prediction takes
        about twice as long.

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
        takes half their memory. ``"fp32"`` gives exact fp32 probabilities;
        ``"bf16"``/``"fp16"`` force one. Images go through the network in the
        channels-last memory layout, which changes no result.

        .. versionadded:: 0.2

    Notes
    -----
    Every forward pass goes through :class:`~retinalnet.engine.InferenceEngine`, the same
    engine evaluation and the feature cache use. The model is moved to ``device``; nothing
    else about it changes (its weights, memory layout and train/eval mode stay as they
    are).

    Examples
    --------
    >>> from retinalnet import Predictor
    >>> predictor = Predictor.from_checkpoint("runs/best.pt")  # doctest: +SKIP
    >>> result = predictor.topk("CNV-1016042-1.jpeg", k=2)  # doctest: +SKIP
    >>> result.label, round(result.probability, 3)  # doctest: +SKIP
    ('CNV', 0.973)
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
    ) -> None:
        if not isinstance(model, Classifier):
            raise TypeError(
                f"Predictor needs a retinalnet Classifier (got {type(model).__name__}), which "
                "carries the class names and preprocessing: Classifier(network, classes=[...])"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        self.engine = InferenceEngine(model, device=device, precision=precision, tta=tta)
        self.model = model
        self.batch_size = batch_size
        self.num_workers = num_workers

    @property
    def device(self) -> torch.device:
        """Where the model runs."""
        return self.engine.device

    @property
    def precision(self) -> Precision:
        """The precision asked for (see the constructor)."""
        return self.engine.precision

    @property
    def tta(self) -> bool:
        """Whether each image is averaged with its mirror."""
        return self.engine.tta

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
    ) -> Predictor:
        """Load a checkpoint (safely, offline) and wrap it in a Predictor.

        Parameters
        ----------
        path
            A checkpoint written by retinalnet (``best.pt``).
        device, batch_size, tta, precision, num_workers
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
        )

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names in output order."""
        return self.model.classes

    def predict_proba(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """Class probabilities, shape ``(len(images), num_classes)``, float32 on the CPU."""
        if not images:
            return torch.empty(0, len(self.classes))
        # Workers pay off for files to decode; in-memory images (CUDA tensors among them)
        # are prepared in this process rather than copied to workers.
        files_only = all(isinstance(image, (str, os.PathLike)) for image in images)
        loader = make_loader(
            _PreparedImages(images, self.preprocessing),
            batch_size=self.batch_size,
            shuffle=False,
            transform=None,
            num_workers=self._workers() if files_only else 0,
            pin_memory=self.device.type == "cuda",
        )
        return torch.cat(
            [log_probs.exp().float().cpu() for log_probs, _ in self.engine.run(loader)]
        )

    def _workers(self) -> int:
        return default_num_workers(self.device, self.num_workers)

    @overload
    def topk(self, images: ImageInput, k: int = ...) -> Prediction: ...

    @overload
    def topk(
        self, images: list[ImageInput] | tuple[ImageInput, ...], k: int = ...
    ) -> list[Prediction]: ...

    def topk(
        self, images: ImageInput | list[ImageInput] | tuple[ImageInput, ...], k: int = 3
    ) -> Prediction | list[Prediction]:
        """The ``k`` most probable classes of one image, or of each image in a list.

        Parameters
        ----------
        images
            One image (path, PIL image, image tensor) or a list of them. Lists are processed
            in batches of ``batch_size``.
        k
            How many classes to return, 1 to the number of classes.

        Returns
        -------
        Prediction or list of Prediction
            One per image, in input order; each sorted by descending probability.

        Raises
        ------
        retinalnet.datasets.UnreadableImageError
            If a file cannot be read; the message names it.
        ValueError
            If ``k`` is out of range or a tensor is not an image.
        """
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(self.classes):
            raise ValueError(f"k must be an int from 1 to {len(self.classes)}, got {k!r}")
        single = not isinstance(images, (list, tuple))
        batch: Sequence[ImageInput] = images if isinstance(images, (list, tuple)) else [images]
        sources = [
            str(image) if isinstance(image, (str, os.PathLike)) else f"<image {i}>"
            for i, image in enumerate(batch)
        ]
        probabilities = self.predict_proba(batch)
        values, indices = probabilities.topk(k, dim=1)
        predictions = [
            Prediction(
                source=source,
                top=tuple(
                    ClassProbability(self.classes[int(i)], int(i), float(p))
                    for p, i in zip(row_values, row_indices, strict=True)
                ),
            )
            for source, row_values, row_indices in zip(sources, values, indices, strict=True)
        ]
        return predictions[0] if single else predictions

    def gradcam(
        self, image: ImageInput, *, class_index: int | str | None = None
    ) -> npt.NDArray[np.float32]:
        """Grad-CAM heatmap of one image: where the model looked for a class.

        .. versionadded:: 0.2

        Parameters
        ----------
        image
            A path, PIL image or image tensor, as for :meth:`topk`.
        class_index
            The class to explain, by index or name; the predicted class by default.

        Returns
        -------
        numpy.ndarray
            float32 ``(height, width)`` in [0, 1], at the size of the image as given
            (mapped back through the resize and centre crop; see
            :func:`retinalnet.gradcam.heatmap_to_image`).

        Raises
        ------
        ValueError
            If ``class_index`` is not a class of the model.

        Examples
        --------
        >>> heatmap = predictor.gradcam("CNV-1016042-1.jpeg")  # doctest: +SKIP
        >>> from retinalnet.plots import plot_gradcam  # doctest: +SKIP
        >>> plot_gradcam("CNV-1016042-1.jpeg", heatmap, save="cam.png")  # doctest: +SKIP
        """
        if isinstance(class_index, str):
            if class_index not in self.classes:
                raise ValueError(
                    f"class_index {class_index!r} is not a class of this model; choose from "
                    f"{', '.join(self.classes)}"
                )
            class_index = self.classes.index(class_index)
        if class_index is not None and not 0 <= class_index < len(self.classes):
            raise ValueError(
                f"class_index must be from 0 to {len(self.classes) - 1} or a class name, got "
                f"{class_index!r}"
            )
        return grad_cam_image(self.model, image, class_index=class_index)


class _PreparedImages(Dataset[torch.Tensor]):
    """The images of one predict call, read and prepared on demand (in worker processes)."""

    def __init__(self, images: Sequence[ImageInput], preprocessing: Preprocessing) -> None:
        self.images = images
        self.transform = preprocessing.eval_transform()
        self.decode = preprocessing.load

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        image = coerce_image(self.images[index], name=f"image {index}", decode=self.decode)
        prepared: torch.Tensor = self.transform(image)
        return prepared
