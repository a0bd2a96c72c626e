"""Reading a local weights file (offline sites) and loading it into a network's backbone.

A file is a state dict saved with ``torch.save(model.state_dict(), path)``: torchvision's
own downloads, a network trained elsewhere, or a training tool's checkpoint that keeps one
(Lightning, timm), read with ``weights_only=True`` and fitted to the network's keys as torch
and torchvision would load it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from retinalnet._core.articles import type_with_article
from retinalnet._core.caller_warnings import warn_caller
from retinalnet._core.pickled_objects import pickled_objects_beside_state_dict
from retinalnet._core.torch_load import (
    check_archive,
    damaged_file_error,
    first_nonfinite,
    not_torch_file,
    pickled_global,
    torch_load_reason,
)
from retinalnet.models._bare_state_dict import trained_head_message
from retinalnet.models._registry import ModelSpec
from retinalnet.models._state_dict import (
    CONTAINERS,
    container_note,
    fit_keys,
    is_state_dict,
    state_dict_mismatches,
    unwrap_container,
)

__all__ = ["expected_file", "load_file", "read_state_dict", "weights_label"]

logger = logging.getLogger(__name__)


def weights_label(spec: ModelSpec) -> str:
    """``VGG16`` for ``VGG16_Weights``, ``EfficientNet_B0``; the registry name otherwise."""
    if spec.weights is None:
        return spec.name
    return str(spec.weights.__name__).removesuffix("_Weights")


def expected_file(spec: ModelSpec) -> str:
    default = spec.default_weights
    if default is None:
        return (
            f"a {spec.name} network's state dict, saved with "
            "torch.save(model.network.state_dict(), path)"
        )
    builder = getattr(spec.builder, "__name__", spec.name)
    return (
        f"torchvision's {weights_label(spec)} state dict (torchvision.models.{builder}), e.g. "
        f"{Path(default.url).name} from {default.url}"
    )


def read_state_dict(path: Path, spec: ModelSpec) -> dict[str, torch.Tensor]:
    """Load a state-dict file with ``weights_only=True``, refusing anything else.

    Raises
    ------
    ValueError
        If the file is not a readable state dict (corrupt, truncated, not a PyTorch file),
        is damaged (a part fails its CRC-32 check, as for checkpoints), holds NaN or infinite
        weights, holds pickled Python objects (a whole model saved with
        ``torch.save(model)``), or is a retinalnet checkpoint. The message is one line:
        torch's reason, never its advice to load the file with ``weights_only=False``.

    Notes
    -----
    A training tool's checkpoint that keeps the state dict under a key of
    :data:`~retinalnet.models._state_dict.CONTAINERS` (Lightning's ``"state_dict"``,
    timm's ``"model"`` or ``"state_dict_ema"``) gives that state dict, as timm's
    ``load_checkpoint`` does; an info log line says which entry was used.
    """
    archive = check_archive(path, "weights file")  # before torch.load, which checks no CRC
    foreign = not_torch_file(Path(path)) if archive == "legacy" else None
    if foreign is not None:  # torch.load would name the byte its unpickler tripped on
        raise ValueError(
            f"cannot read weights file {str(path)!r} as a PyTorch state dict: it is not a "
            f"file torch.save wrote ({foreign}); expected {expected_file(spec)}"
        )
    try:
        loaded: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any failure means "not a usable weights file"
        found = pickled_global(error)
        beside = found and pickled_objects_beside_state_dict(Path(path), found)
        if beside:
            raise ValueError(f"weights file {beside}") from None
        if found is not None:
            raise ValueError(
                f"weights file {str(path)!r} holds pickled Python objects ({found}), as a whole "
                "model saved with torch.save(model) does, which retinalnet does not load because "
                f"unpickling can run arbitrary code; pass {expected_file(spec)}"
            ) from None
        raise ValueError(
            f"cannot read weights file {str(path)!r} as a PyTorch state dict "
            f"({torch_load_reason(error)}); expected {expected_file(spec)}"
        ) from None
    if isinstance(loaded, dict) and "format" in loaded and "model" in loaded:
        raise ValueError(_checkpoint_as_weights(Path(path), loaded, spec))
    state, container = unwrap_container(loaded)
    if not is_state_dict(state):
        keys = f" with keys {sorted(map(str, loaded))[:5]}" if isinstance(loaded, dict) else ""
        raise ValueError(
            f"weights file {str(path)!r} does not hold a state dict (a dict of name -> tensor, "
            f"or a training checkpoint holding one under {', '.join(map(repr, CONTAINERS))}) "
            f"but {type_with_article(loaded)}{keys}; save one with "
            "torch.save(model.state_dict(), path)"
        )
    if container is not None:
        logger.info("weights file %r: %s", str(path), container_note(loaded, container))
    if archive == "unreadable":  # torch read what Python's zipfile could not: be safe
        raise damaged_file_error(path, "weights file", "its zip directory cannot be read")
    broken = first_nonfinite(state)
    if broken is not None:
        raise ValueError(
            f"weights file {str(path)!r} holds NaN or infinite values in {broken!r}: a model "
            "built on them gives no valid predictions; download the weights again"
        )
    return dict(state)


def _checkpoint_as_weights(path: Path, loaded: dict[Any, Any], spec: ModelSpec) -> str:
    """The error for a retinalnet checkpoint given as weights: a resumed run continues it
    on its own data only, so a new run (other data or classes) starts from its network's
    weights, written as a state-dict file by one line of Python."""
    model = loaded.get("model")
    arch = model.get("arch") if isinstance(model, dict) else None
    arch = arch if isinstance(arch, str) else spec.name
    network = path.with_name(f"{path.stem}_network.pth")
    return (
        f"{str(path)!r} is a retinalnet checkpoint, not backbone weights: to continue its run "
        f"(same data and settings) use fit(..., resume_from={str(path)!r}); to predict with it "
        f"use Predictor.from_checkpoint({str(path)!r}); to start a new run from its weights "
        "(other data or classes), write its network's weights as a state-dict file in Python, "
        f"`torch.save(load_checkpoint({str(path)!r}).build_model().network.state_dict(), "
        f"{str(network)!r})`, and use create_model({arch!r}, weights={str(network)!r})"
    )


def load_file(network: nn.Module, path: Path, spec: ModelSpec) -> None:
    """Load the state-dict file ``path`` into ``network``, but for its head.

    The file's keys are first fitted to the network's as torch and torchvision would load
    them (:func:`~retinalnet.models._state_dict.fit_keys`: a wrapper's prefix, torchvision's
    older names); a missing ``num_batches_tracked`` (files saved before torch 0.4.1) keeps
    the network's own, as torch's batch norm does. A head trained for another task is
    warned about, since only the backbone is loaded.
    """
    own = network.state_dict()
    state, note = fit_keys(read_state_dict(path, spec), own)
    if note:
        logger.info("weights file %r: %s", str(path), note)
    head = f"{spec.head}."
    body = {k: v for k, v in state.items() if not k.startswith(head)}
    expected = {
        k: v.shape
        for k, v in own.items()
        if not k.startswith(head) and (k in body or not k.endswith(".num_batches_tracked"))
    }
    problems = state_dict_mismatches(
        expected, {k: v.shape for k, v in body.items()}, given_name="file"
    )
    if problems:
        raise ValueError(
            f"weights file {str(path)!r} does not fit {weights_label(spec)}: "
            f"{'; '.join(problems)}. Expected {expected_file(spec)}"
        )
    try:  # strict: every tensor of the network comes from the file, its head, or its counters
        network.load_state_dict({**own, **body}, strict=True)
    except RuntimeError as error:
        raise ValueError(
            f"weights file {str(path)!r} does not fit {weights_label(spec)} "
            f"({torch_load_reason(error)}); expected {expected_file(spec)}"
        ) from None
    message = trained_head_message(
        path,
        spec,
        {k: v for k, v in state.items() if k.startswith(head)},
        {k: v for k, v in own.items() if k.startswith(head)},
    )
    if message is not None:
        warn_caller(message, UserWarning)
