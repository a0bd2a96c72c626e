"""Names that lived in :mod:`retinalnet.training` in 0.1 and moved in 0.2, kept as aliases."""

from __future__ import annotations

import importlib
import warnings
from typing import Any

__all__ = ["moved_attribute"]

MOVED: dict[str, tuple[str, str]] = {
    # name in retinalnet.training: (module it lives in now, name there)
    "Checkpoint": ("retinalnet.checkpoint", "Checkpoint"),
    "CHECKPOINT_FORMAT": ("retinalnet.checkpoint", "CHECKPOINT_FORMAT"),
    "load_checkpoint": ("retinalnet.checkpoint", "load_checkpoint"),
    "save_checkpoint": ("retinalnet.checkpoint", "save_checkpoint"),
    "resolve_device": ("retinalnet._core.device", "resolve_device"),
    "default_num_workers": ("retinalnet._core.device", "default_num_workers"),
}


def moved_attribute(package: str, name: str) -> Any:
    """The object now behind ``package.name``, with a :class:`DeprecationWarning`.

    Raises
    ------
    AttributeError
        If ``name`` never lived in ``package``.
    """
    if name not in MOVED:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    module, attribute = MOVED[name]
    public = module if not module.startswith("retinalnet._") else None
    advice = f"import it from {public}" if public else "it is internal now; pass device='auto'"
    warnings.warn(
        f"{package}.{name} is deprecated since retinalnet 0.2 and will be removed in 0.3: {advice}",
        DeprecationWarning,
        stacklevel=3,
    )
    return getattr(importlib.import_module(module), attribute)
