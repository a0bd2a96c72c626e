"""Grad-CAM: where in a scan the model looked for the class it gives.

Grad-CAM (Selvaraju et al., ICCV 2017) weights each channel of a late convolutional
activation by the mean gradient of the class score with respect to it, sums the channels,
keeps the positive part and scales it to [0, 1]. The map is coarse (14x14 for VGG16 at
224 px) and is upsampled to the image. The class score is the one before the softmax: for
a network ending in an ``nn.LogSoftmax`` module (the retinalnet builders) or ``nn.Softmax``
module, the input of that module, so the map does not depend on it.

It works with a frozen backbone (no parameter needs a gradient: the hooked activation is
made a leaf that requires one) and with torchvision's in-place ReLUs (the activation is
taken with a forward hook and its gradient with :func:`torch.autograd.grad`, never with
module backward hooks, which in-place operations break). It runs with gradients enabled
even when called inside :func:`torch.inference_mode`, leaves no hook behind and restores
the model's train/eval mode.

.. versionadded:: 0.2

Examples
--------
>>> from retinalnet.gradcam import grad_cam_image
>>> heatmap = grad_cam_image(model, image)  # doctest: +SKIP
>>> heatmap.shape == (image.height, image.width)  # doctest: +SKIP
True
"""

from retinalnet.gradcam._cam import find_target_layer as find_target_layer
from retinalnet.gradcam._cam import grad_cam as grad_cam
from retinalnet.gradcam._cam import grad_cam_image as grad_cam_image
from retinalnet.gradcam._cam import heatmap_to_image as heatmap_to_image
from retinalnet.gradcam._pointing import PointingGame as PointingGame
from retinalnet.gradcam._pointing import pointing_game as pointing_game

__all__ = [
    "PointingGame",
    "find_target_layer",
    "grad_cam",
    "grad_cam_image",
    "heatmap_to_image",
    "pointing_game",
]
