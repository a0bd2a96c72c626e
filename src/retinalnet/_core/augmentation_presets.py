"""The named training augmentations, as data: each preset's settings by name.

:data:`retinalnet.transforms.AUGMENTATION_PRESETS` is this table; it lives here, with no
torch import, so that ``retinalnet --help`` lists the presets without waiting for torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["PRESETS"]

_OCT: Mapping[str, Any] = {
    "rotation": 8.0,
    "scale": (0.6, 1.0),
    "hflip": True,
    "jitter": 0.2,
    "translate": 0.0,
    "gamma": 0.0,
    "speckle": 0.0,
}
_OCT_SHIFT_GAMMA: Mapping[str, Any] = {**_OCT, "translate": 0.05, "gamma": 0.2}

PRESETS: Mapping[str, Mapping[str, Any]] = {
    "none": {
        "rotation": 0.0,
        "scale": (1.0, 1.0),
        "hflip": False,
        "jitter": 0.0,
        "translate": 0.0,
        "gamma": 0.0,
        "speckle": 0.0,
    },
    "light": {
        "rotation": 5.0,
        "scale": (0.85, 1.0),
        "hflip": True,
        "jitter": 0.1,
        "translate": 0.0,
        "gamma": 0.0,
        "speckle": 0.0,
    },
    "tutorial": {
        "rotation": 15.0,
        "scale": (0.8, 1.0),
        "hflip": True,
        "jitter": 0.0,
        "translate": 0.0,
        "gamma": 0.0,
        "speckle": 0.0,
    },
    # the oct family differs in its extras only: each is the one before plus what it adds
    "oct": _OCT,
    "oct-shift-gamma": _OCT_SHIFT_GAMMA,
    "oct-strong": {**_OCT_SHIFT_GAMMA, "speckle": 0.1},
}
