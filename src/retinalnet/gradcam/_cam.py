"""Grad-CAM heatmaps of a classifier, and mapping them back onto the scan."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.nn import functional

from retinalnet._core.images import ImageInput, coerce_image, image_size
from retinalnet._core.model_inputs import refuse_model_input
from retinalnet._core.model_use import (
    check_float32_weights,
    check_no_inference_weights,
    exclusive_use,
    modes_restored,
)
from retinalnet.gradcam._checks import (
    another_layer,
    check_heatmap,
    check_image_size,
    check_inputs,
    check_map_size,
    class_indices,
    forward_scores,
    layer_name,
)
from retinalnet.gradcam._layers import choose_target, own_target, reshape_for
from retinalnet.gradcam._scores import ScoresBeforeSoftmax
from retinalnet.models import Classifier
from retinalnet.precision import autocast
from retinalnet.transforms import Preprocessing

__all__ = ["find_target_layer", "grad_cam", "grad_cam_image", "heatmap_to_image"]


def find_target_layer(model: nn.Module) -> nn.Module:
    """The layer whose activation Grad-CAM explains.

    For a :class:`~retinalnet.models.Classifier`, its declared layer
    (:meth:`~retinalnet.models.Classifier.gradcam_target`: for VGG16 the ReLU after
    ``conv5_3``, 14x14 at 224 px as in the Grad-CAM paper; ``layer4`` for a ResNet; the
    last block's first LayerNorm for ViT). Otherwise the 0.1 guess: the last module of the
    backbone's last feature block (see :func:`retinalnet.models.feature_blocks`), whose
    *input* :func:`grad_cam` takes when it is a pooling layer, else the last ``Conv2d``.
    Passed back as ``layer=``, it gives the same map as the default (read through the
    model's ``gradcam_reshape``, at its input where so guessed).

    Parameters
    ----------
    model
        A :class:`~retinalnet.models.Classifier` or a torchvision-style network.

    Raises
    ------
    TypeError
        If nothing is declared and the network has no ``Conv2d``.

    Examples
    --------
    >>> from retinalnet.gradcam import find_target_layer
    >>> from retinalnet.models import vgg16_transfer
    >>> find_target_layer(vgg16_transfer(weights=None))
    ReLU(inplace=True)
    """
    return own_target(model).module


def grad_cam(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    class_index: int | Sequence[int] | torch.Tensor | None = None,
    layer: nn.Module | None = None,
) -> torch.Tensor:
    """Grad-CAM heatmaps of a batch of model inputs, at the inputs' size.

    The map explains the class score before the softmax (the logit ``y^c`` of Selvaraju et
    al., 2017), whether the network returns logits or ends in an ``nn.LogSoftmax`` (as the
    retinalnet builders do) or ``nn.Softmax`` module: then the gradient is taken from that
    module's input, so the same weights give the same map with or without it (the
    log-probability ``y^c - logsumexp(y)`` also falls where the other classes' scores rise).
    Computed in fp32, whatever a caller's ``torch.autocast`` says.

    Parameters
    ----------
    model
        The classifier (any module mapping ``(N, 3, H, W)`` to class scores: logits, or
        the output of a final ``nn.LogSoftmax`` module, as the retinalnet builders give). A
        forward that normalises with a function (``F.log_softmax``) leaves no logits to
        take: its map explains the log-probability, with a ``UserWarning``; end such a
        network in ``nn.LogSoftmax(dim=1)`` instead.
    inputs
        Preprocessed images, ``(N, 3, H, W)`` or one ``(3, H, W)``, of any floating-point
        dtype (cast to float32). For a :class:`~retinalnet.models.Classifier`, inputs of
        another size than its preprocessing's, or with no negative value (not normalised),
        are explained with a warning: :func:`grad_cam_image` prepares an image itself.

        .. versionchanged:: 0.2
           float64 and fp16 inputs are cast; unprepared-looking inputs are warned about.
    class_index
        The class to explain: one index for every image, one per image, or ``None`` for
        each image's predicted class (the argmax of the model's outputs).
    layer
        The module to explain; :func:`find_target_layer` by default, read as the model
        declares it, whether given here or not (through its ``gradcam_reshape``: ViT's
        tokens, Swin's channels-last map; at its input where the 0.1 guess is a pooling
        layer). Another module is explained at its output, read by its form: a 4-d output
        as ``(N, C, H, W)``, or as channels-last ``(N, H, W, C)`` (Swin's stages, ConvNeXt's
        block internals) when only that has the input's proportions (else a forward pass
        of a larger input tells which sides grow with it); a token sequence through the
        model's declared ``gradcam_reshape``.

    Returns
    -------
    torch.Tensor
        ``(N, H, W)`` float32 on the CPU, each map scaled to [0, 1] (all zeros when no
        location speaks for the class).

    Notes
    -----
    The model runs in eval mode; the mode of each of its modules is put back afterwards.
    Thread-safe: calls on one model run one at a time (with predictions and evaluations on
    it too).

    Raises
    ------
    TypeError
        If ``inputs`` is not a floating-point torch tensor (an image file, a PIL image or
        a NumPy array: use :func:`grad_cam_image`, or ``torch.as_tensor`` for an array),
        or the network returns a tuple or a dict (see
        :func:`~retinalnet._core.model_outputs.class_scores`, as at every door).
    ValueError
        If ``inputs`` is not an image batch (or is smaller than the architecture's smallest
        input, or holds NaN or infinite values), the network's outputs are no class scores
        ``(N, number of classes)``, a class index is out of range, or the
        layer is not part of the forward pass or not spatial (the message names the fix:
        ``layer=`` here, ``Classifier(gradcam_layer=...)`` for a Classifier's own layer,
        which the Predictor explains; for a model declaring a ``gradcam_reshape``, its
        declared layer, or a module whose output that reshape takes; a 4-d output of such a
        model that is not clearly ``(N, C, H, W)`` or ``(N, H, W, C)`` is refused too), or
        its map is 1 x 1 (a
        stride-32 backbone on inputs under 33 pixels each side: the heatmap would be
        constant; the message gives the smallest input size that the layer maps to 2 x 2).
        A 1 x N map is explained: its heatmap varies along N only.

    Warns
    -----
    UserWarning
        If a Classifier's inputs do not look prepared, or the model's output is a
        functional (log-)softmax, whose map explains the (log-)probability.

    Examples
    --------
    >>> import torch
    >>> from retinalnet.gradcam import grad_cam
    >>> from retinalnet.models import small_cnn
    >>> from retinalnet.transforms import Preprocessing
    >>> model = small_cnn(preprocessing=Preprocessing(size=64))  # its inputs: 64 x 64
    >>> grad_cam(model, torch.randn(2, 3, 64, 64)).shape
    torch.Size([2, 64, 64])
    """
    return _grad_cam(model, inputs, class_index, layer, prepared=False)


def _grad_cam(
    model: nn.Module,
    inputs: torch.Tensor,
    class_index: int | Sequence[int] | torch.Tensor | None,
    layer: nn.Module | None,
    *,
    prepared: bool,
) -> torch.Tensor:
    """:func:`grad_cam`; ``prepared``: the inputs are the library's own preparation of an
    image (:func:`grad_cam_image`), not to be warned of as looking unprepared."""
    batch, single = check_inputs(model, inputs, prepared=prepared)
    check_no_inference_weights(model, "explained by Grad-CAM")
    check_float32_weights(model, "explained by Grad-CAM")
    target, own = choose_target(model, layer)
    captured: list[torch.Tensor] = []

    def as_leaf(activation: object) -> torch.Tensor:
        if not isinstance(activation, torch.Tensor):  # nn.MultiheadAttention's tuple
            raise ValueError(
                f"the Grad-CAM layer {layer_name(model, target.module)!r} gives a "
                f"{type(activation).__name__}, not a tensor: "
                f"{another_layer(model, layer is not None, 'a module giving a tensor')}"
            )
        # A fresh leaf that requires grad: the frozen backbone below gives the activation
        # no grad_fn, and in-place ReLUs after it must not touch the tensor we differentiate
        # against, so the network continues on a copy.
        leaf = activation.detach().requires_grad_(True)
        captured.append(leaf)
        return leaf.clone()

    def pre_hook(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return (as_leaf(args[0]), *args[1:])

    def post_hook(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
        return as_leaf(output)

    # one thread at a time (the hook and eval mode would act on other threads' passes too);
    # the mode of each module put back, not just the model's
    with exclusive_use(model), modes_restored(model):
        handle = (
            target.module.register_forward_pre_hook(pre_hook)
            if target.at_input
            else target.module.register_forward_hook(post_hook)
        )
        device = next((p.device for p in model.parameters()), batch.device)
        try:
            # fp32 whatever a caller's autocast says, as the fp32 prediction it explains
            with (
                torch.inference_mode(False),
                torch.enable_grad(),
                autocast(device, None),
                ScoresBeforeSoftmax(model) as before_softmax,
            ):
                model.eval()
                # the score before a final (Log)Softmax module, as Selvaraju et al.
                copy = batch.detach().clone().to(device)  # the caller's tensor left as it is
                logits = forward_scores(model, copy, before_softmax.scores)
                given = layer is not None
                if not captured:
                    fix = another_layer(model, given, "a module that it runs", suggest=False)
                    name = layer_name(model, target.module)
                    raise ValueError(
                        f"the Grad-CAM layer {name!r} did not run in the forward pass; {fix}"
                    )
                activation = captured[-1]
                # the declared reading of the model's own layer; another layer's by its output
                reshape = reshape_for(model, copy, activation, target, own, given=given)
                spatial = activation if reshape is None else reshape(activation)
                check_map_size(
                    model,
                    batch,
                    spatial,
                    target.module,
                    at_input=target.at_input,
                    reshape=reshape,
                    given=given,
                )
                classes = class_indices(class_index, logits)
                selected = logits.gather(1, classes[:, None]).sum()
                (gradient,) = torch.autograd.grad(selected, activation)
                if reshape is not None:
                    gradient = reshape(gradient)
                weights = gradient.mean(dim=(2, 3), keepdim=True)
                cam = functional.relu((weights * spatial).sum(dim=1, keepdim=True)).detach()
        finally:
            handle.remove()
    cam = functional.interpolate(
        cam.float(), size=tuple(batch.shape[-2:]), mode="bilinear", align_corners=False
    )[:, 0]
    peak = cam.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
    cam = (cam / peak).clamp(0, 1).cpu()
    return cam[0] if single else cam


def heatmap_to_image(
    heatmap: torch.Tensor | npt.ArrayLike,
    image_size: tuple[int, int],
    preprocessing: Preprocessing,
) -> npt.NDArray[np.float32]:
    """Map a heatmap of the model's input back onto the original image.

    The heatmap is placed where the model's input lies in the image
    (:meth:`Preprocessing.crop_box <retinalnet.transforms.Preprocessing.crop_box>`: the
    centre crop after the resize), with zeros elsewhere (the model never saw the cut-off
    sides).

    Parameters
    ----------
    heatmap
        ``(size, size)`` map of the model input.
    image_size
        The original image's ``(width, height)``, as PIL gives it.
    preprocessing
        The model's preprocessing.

    Returns
    -------
    numpy.ndarray
        float32 ``(height, width)``.

    Raises
    ------
    TypeError
        If ``preprocessing`` is not a :class:`~retinalnet.transforms.Preprocessing`.
    ValueError
        If ``heatmap`` is not a non-empty 2-d array of finite numbers, or ``image_size``
        is not a ``(width, height)`` pair of positive ints.

    Examples
    --------
    >>> import numpy as np
    >>> from retinalnet.gradcam import heatmap_to_image
    >>> from retinalnet.transforms import Preprocessing
    >>> prep = Preprocessing(size=224)
    >>> heatmap_to_image(np.ones((224, 224)), (768, 496), prep).shape
    (496, 768)
    """
    width, height = check_image_size(image_size)
    if not isinstance(preprocessing, Preprocessing):
        raise TypeError(
            f"preprocessing must be a retinalnet Preprocessing, got "
            f"{type(preprocessing).__name__}; pass model.preprocessing"
        )
    cam = check_heatmap(heatmap)
    left, top, right, bottom = (round(edge) for edge in preprocessing.crop_box((width, height)))
    # at least one pixel: a crop much smaller than the resize rounds to nothing on a tiny image
    right, bottom = max(right, left + 1), max(bottom, top + 1)
    # the map resized onto the crop, in the image's pixels; zeros around it
    placed = functional.interpolate(
        cam[None, None], size=(bottom - top, right - left), mode="bilinear", align_corners=False
    )[0, 0]
    full = torch.zeros(height, width)
    full[top:bottom, left:right] = placed
    return full.clamp(0, 1).numpy().astype(np.float32)


def grad_cam_image(
    model: Classifier,
    image: ImageInput,
    *,
    class_index: int | None = None,
    layer: nn.Module | None = None,
) -> npt.NDArray[np.float32]:
    """Grad-CAM heatmap of one image, at the image's own size.

    The image is prepared with the model's evaluation preprocessing, and the map is
    mapped back through its resize and centre crop (see :func:`heatmap_to_image`).

    Parameters
    ----------
    model
        A :class:`~retinalnet.models.Classifier`.
    image
        A file path, a PIL image or an image tensor, as for
        :meth:`Predictor.topk <retinalnet.Predictor.topk>`. A file is decoded as the
        model's preprocessing decodes it (perhaps at reduced scale); the map is returned at
        the file's own size.
    class_index, layer
        As in :func:`grad_cam`.

    Returns
    -------
    numpy.ndarray
        float32 ``(height, width)`` in [0, 1].

    Examples
    --------
    >>> from retinalnet import SyntheticOCT
    >>> from retinalnet.gradcam import grad_cam_image
    >>> from retinalnet.models import small_cnn
    >>> from retinalnet.transforms import Preprocessing
    >>> image = SyntheticOCT(1, shape=(96, 128)).image(0)
    >>> grad_cam_image(small_cnn(preprocessing=Preprocessing(size=64)), image).shape
    (96, 128)
    """
    if not isinstance(model, Classifier):
        raise TypeError(
            f"grad_cam_image needs a retinalnet Classifier (got {type(model).__name__}) for "
            "its preprocessing; for a bare network call grad_cam on prepared inputs"
        )
    return explain_image(model, image, class_index=class_index, layer=layer)


def explain_image(
    model: Classifier,
    image: ImageInput,
    *,
    class_index: int | None = None,
    layer: nn.Module | None = None,
    choose_class: Callable[[torch.Tensor], int] | None = None,
) -> npt.NDArray[np.float32]:
    """:func:`grad_cam_image`; without ``class_index``, ``choose_class`` picks the class from
    the prepared input (the Predictor's answer), so the image is read once for both."""
    fix = "explain a prepared input x with grad_cam(model, x[None]), or pass its image"
    refuse_model_input(image, name="image", fix=fix)
    preprocessing = model.preprocessing
    inputs = preprocessing.prepare(image)  # the one path from an image to a model input
    if class_index is None and choose_class is not None:
        class_index = choose_class(inputs)
    cam = _grad_cam(model, inputs, class_index, layer, prepared=True)
    return heatmap_to_image(cam, _full_size(image), preprocessing)


def _full_size(image: ImageInput) -> tuple[int, int]:
    """``(width, height)`` of an image as given: a file's own size, however it is decoded."""
    if isinstance(image, (str, os.PathLike)):
        return image_size(image)
    return coerce_image(image).size
