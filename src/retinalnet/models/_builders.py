"""The 0.1 builders, now registry entries: :func:`vgg16_transfer` and :func:`small_cnn`."""

from __future__ import annotations

from collections.abc import Sequence

from retinalnet.models._classifier import Classifier
from retinalnet.models._factory import create
from retinalnet.models._freeze import trainable_blocks_arg
from retinalnet.models._registry import model_spec
from retinalnet.models._weights import WeightsArg
from retinalnet.transforms import Preprocessing

__all__ = ["small_cnn", "vgg16_transfer"]


def vgg16_transfer(
    *,
    num_classes: int | None = None,
    weights: WeightsArg = "IMAGENET1K_V1",
    hidden: int | None = 256,
    dropout: float = 0.2,
    freeze: bool = True,
    except_last_blocks: int | None = None,
    trainable_blocks: int | None = None,
    classes: Sequence[str] | None = None,
    preprocessing: Preprocessing | None = None,
    progress: bool = True,
) -> Classifier:
    """The tutorial's model: ImageNet VGG16, frozen, with a new 2-layer head.

    ``classifier[6]`` (ImageNet's 1000-way layer) is replaced by
    ``Linear(4096, hidden) - ReLU - Dropout - Linear(hidden, num_classes) - LogSoftmax``.
    With the defaults the model has 135,310,404 parameters, of which 1,049,860 (the head)
    are trainable. Same as ``create_model("vgg16_transfer", ...)``, except for
    ``hidden=None``: here it means no hidden layer (0.1's meaning), where
    :func:`~retinalnet.models.create_model` takes ``None`` as the architecture's default
    width (256).

    Parameters
    ----------
    num_classes
        Outputs: as many as ``classes`` when they are given, else 4 (CNV, DME, DRUSEN,
        NORMAL).
    weights
        ``"IMAGENET1K_V1"`` / ``"DEFAULT"`` / a :class:`torchvision.models.VGG16_Weights`
        member (downloaded once, then cached by torchvision), a path to a local VGG16 state
        dict (offline sites), or ``None`` (random initialisation; for tests).
    hidden
        Width of the head's hidden layer; ``None`` or 0 for a single ``Linear``.
    dropout
        Dropout in the head (0.2 as in the tutorial's run; its article used 0.4), after
        the hidden layer: without one only 0 and 0.2 are taken.
    freeze
        Freeze every pretrained parameter, as the tutorial did.
    trainable_blocks
        With ``freeze``, keep this many final conv blocks trainable (fine-tuning); 0 by
        default.

        .. versionadded:: 0.2
    except_last_blocks
        The 0.1 name of ``trainable_blocks``.
    classes
        Class names in output order; the Kermany classes by default.
    preprocessing
        Defaults to the tutorial's 224 px pipelines with ImageNet normalisation.
    progress
        Show a progress bar while downloading weights.

    Returns
    -------
    Classifier
        ``model.network`` is the torchvision VGG; the head is ``model.network.classifier[6]``.

    Raises
    ------
    retinalnet.models.WeightsUnavailableError
        If weights must be downloaded and cannot be; the message says how to work offline.
    TypeError
        If ``classes`` is a string, a set or a mapping rather than a list of names, or
        holds a name that is not a string.
    ValueError
        If the block count is out of range or given under both names, the class names are
        not 2 or more distinct, non-blank names or do not match ``num_classes``, or
        ``num_classes``, ``hidden`` or ``dropout`` is out of range.

    Examples
    --------
    >>> from retinalnet.models import parameter_summary, vgg16_transfer
    >>> model = vgg16_transfer(weights=None)  # ImageNet weights: the default
    >>> print(parameter_summary(model))
    135,310,404 parameters, 1,049,860 trainable (0.78%)
    """
    blocks, blocks_name = trainable_blocks_arg(trainable_blocks, except_last_blocks)
    return create(
        model_spec("vgg16_transfer"),
        num_classes=num_classes,
        weights=weights,
        freeze=freeze,
        trainable_blocks=blocks,
        hidden=0 if hidden is None else hidden,
        dropout=dropout,
        classes=classes,
        preprocessing=preprocessing,
        progress=progress,
        options={},
        blocks_name=blocks_name,
    )


def small_cnn(
    *,
    num_classes: int | None = None,
    width: int = 16,
    hidden: int | None = 64,
    dropout: float = 0.2,
    classes: Sequence[str] | None = None,
    preprocessing: Preprocessing | None = None,
) -> Classifier:
    """A small CNN trained from scratch: the fallback when no pretrained weights are at hand.

    About 100k parameters at ``width=16``; trains on a laptop CPU in seconds per epoch at
    128 px. It is what ``retinalnet demo`` uses offline; for the real Kermany data use
    :func:`vgg16_transfer` or another pretrained backbone. Same as
    ``create_model("small_cnn", width=width, ...)``, except for ``hidden=None`` (below).

    Parameters
    ----------
    num_classes
        Outputs: as many as ``classes`` when they are given, else 4 (CNV, DME, DRUSEN,
        NORMAL).
    width
        Channels of the first convolution (each of the later ones doubles it).
    hidden
        Width of the head's hidden layer; ``None`` or 0 for a single ``Linear``, as in
        :func:`vgg16_transfer` (:func:`~retinalnet.models.create_model` takes ``None`` as the
        default width, 64).
    dropout
        Dropout in the head, after the hidden layer: without one only 0 and 0.2 are taken.
    classes
        The class names, in the order of the outputs (default: the Kermany classes).
    preprocessing
        The :class:`~retinalnet.transforms.Preprocessing` the model carries (default: the
        tutorial's, 224 px).

    Raises
    ------
    TypeError
        If ``classes`` is a string, a set or a mapping rather than a list of names, or
        holds a name that is not a string.
    ValueError
        If the class names are not 2 or more distinct, non-blank names or do not match
        ``num_classes``, or ``num_classes``, ``width``, ``hidden`` or ``dropout`` is out of
        range.

    Examples
    --------
    >>> from retinalnet.models import small_cnn
    >>> model = small_cnn()
    >>> model.classes
    ('CNV', 'DME', 'DRUSEN', 'NORMAL')
    """
    return create(
        model_spec("small_cnn"),
        num_classes=num_classes,
        weights=None,
        freeze=False,
        trainable_blocks=0,
        hidden=0 if hidden is None else hidden,
        dropout=dropout,
        classes=classes,
        preprocessing=preprocessing,
        progress=False,
        options={"width": width},
    )
