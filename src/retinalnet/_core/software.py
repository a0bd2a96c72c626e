"""The software a result was computed with: what a JSON result records beside its numbers,
so that a published figure can be traced to the versions that made it."""

from __future__ import annotations

import platform

import torch
import torchvision

from retinalnet._version import __version__

__all__ = ["software_versions"]


def software_versions() -> dict[str, str]:
    """The versions of retinalnet, torch, torchvision and Python in this process.

    Examples
    --------
    >>> sorted(software_versions())
    ['python', 'retinalnet', 'torch', 'torchvision']
    """
    return {
        "retinalnet": __version__,
        "torch": str(torch.__version__),
        "torchvision": str(torchvision.__version__),
        "python": platform.python_version(),
    }
