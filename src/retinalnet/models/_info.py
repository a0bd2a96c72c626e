"""What ``retinalnet models`` reports of a registered architecture: :func:`model_info`."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import torch

from retinalnet.models._factory import without_weights
from retinalnet.models._registry import model_spec
from retinalnet.models._summary import parameter_summary

__all__ = ["ModelInfo", "model_info"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    """One row of ``retinalnet models``: what :func:`model_info` reports.

    .. versionadded:: 0.2

    ``parameters`` and ``trainable`` count the model :func:`create_model` builds with its
    defaults; ``gflops`` is at 224 px (multiply-adds, torchvision's convention).
    """

    name: str
    parameters: int
    trainable: int
    gflops: float | None
    head: str
    gradcam_layer: str
    min_size: int
    fixed_size: int | None
    description: str

    def to_dict(self) -> dict[str, object]:
        """Plain values, for JSON."""
        return asdict(self)


def model_info(name: str, *, num_classes: int = 4) -> ModelInfo:
    """Parameter counts and declaration of a registered architecture, without weights.

    Built on the ``meta`` device (no memory, instant) where the builder allows it.

    .. versionadded:: 0.2

    Raises
    ------
    TypeError
        If ``name`` is not a str.
    ValueError
        If ``name`` is not registered.

    Examples
    --------
    >>> from retinalnet.models import model_info
    >>> info = model_info("vgg16_transfer")
    >>> info.parameters, info.trainable, info.gflops
    (135310404, 1049860, 15.47)
    """
    spec = model_spec(name)
    try:
        with torch.device("meta"):
            model = without_weights(name, num_classes=num_classes)
    except NotImplementedError:  # RegNet computes its widths with tensors: build it for real
        logger.debug("%s cannot be built on the meta device; building it on the CPU", name)
        with torch.device("cpu"):
            model = without_weights(name, num_classes=num_classes)
    summary = parameter_summary(model)
    return ModelInfo(
        name=spec.name,
        parameters=summary.total,
        trainable=summary.trainable,
        gflops=spec.gflops,
        head=spec.head,
        gradcam_layer=spec.gradcam_layer,
        min_size=spec.min_size,
        fixed_size=spec.fixed_size,
        description=spec.description,
    )
