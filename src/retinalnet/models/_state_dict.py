"""Comparing a state dict with the one a model expects, and reading the state dicts that
other tools write as torch would load them into the model.

Other tools save a network's weights inside a container (Lightning's
``{"state_dict": ..., "epoch": ...}``, timm's ``{"model": ...}`` or ``"state_dict_ema"``),
under a prefix that a wrapper puts on every key (``module.`` for DistributedDataParallel),
and torchvision's own files keep names its modules have since changed (DenseNet's
``norm.1``, ViT's ``mlp.linear_1``), which torchvision renames while loading. These helpers
undo each, as timm's ``load_checkpoint`` and torchvision's loaders do, and say what they did.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any, TypeGuard

import torch

__all__ = [
    "CONTAINERS",
    "container_classes",
    "container_note",
    "fit_keys",
    "is_state_dict",
    "state_dict_mismatches",
    "unwrap_container",
]


def state_dict_mismatches(
    expected: Mapping[str, torch.Size], given: Mapping[str, torch.Size], *, given_name: str
) -> list[str]:
    """What differs between two ``name -> shape`` maps, as short phrases for an error.

    Each phrase lists at most three names (``missing keys [...] and 5 more``); a shape
    difference reads ``"<name>: <given_name> (8, 64) vs model (8, 128)"``. Empty when they fit.
    """
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    wrong = sorted(
        f"{k}: {given_name} {tuple(given[k])} vs model {tuple(expected[k])}"
        for k in set(expected) & set(given)
        if given[k] != expected[k]
    )
    return [
        f"{label} {items[:3]}" + (f" and {len(items) - 3} more" if len(items) > 3 else "")
        for label, items in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("wrong shapes", wrong),
        )
        if items
    ]


def is_state_dict(value: object) -> TypeGuard[Mapping[str, torch.Tensor]]:
    """Whether ``value`` is a non-empty dict of ``str -> tensor``."""
    return (
        isinstance(value, Mapping)
        and bool(value)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())
    )


CONTAINERS: dict[str, str] = {
    "state_dict_ema": "timm's moving average of the weights",
    "model_ema": "a moving average of the weights",
    "state_dict": "as PyTorch Lightning and timm save it",
    "model": "as timm's and DeiT's training scripts save it",
}
"""The entries other tools keep a state dict in, and what each is, in the order timm's
``load_checkpoint`` picks them (its moving average of the weights first, as timm does by
default)."""


def unwrap_container(loaded: object) -> tuple[object, str | None]:
    """The state dict a training tool's checkpoint keeps under a key of
    :data:`CONTAINERS`, and that key; ``loaded`` and ``None`` when it is no such container."""
    if not isinstance(loaded, Mapping) or is_state_dict(loaded):
        return loaded, None
    for key in CONTAINERS:
        inner = loaded.get(key)
        if is_state_dict(inner):
            return dict(inner), key
    return loaded, None


def container_classes(loaded: object) -> tuple[list[str], str] | None:
    """The class names a training checkpoint keeps beside its state dict, in output order,
    and the entry they came from: its ``idx_to_class`` (``{0: 'CNV', ...}``) or its
    ``class_to_idx`` (``{'CNV': 0, ...}``), as the PyTorch tutorials save them; ``None``
    when it has neither, or one whose indices are not 0 to n-1, or two that disagree.

    Examples
    --------
    >>> container_classes({"class_to_idx": {"DME": 1, "CNV": 0}, "state_dict": {}})
    (['CNV', 'DME'], 'class_to_idx')
    """
    if not isinstance(loaded, Mapping):
        return None
    found: dict[str, list[str] | None] = {}
    if "idx_to_class" in loaded:
        found["idx_to_class"] = _in_index_order(loaded["idx_to_class"], by_index=True)
    if "class_to_idx" in loaded:
        found["class_to_idx"] = _in_index_order(loaded["class_to_idx"], by_index=False)
    orders = list(found.values())
    if not orders or any(order is None or order != orders[0] for order in orders):
        return None
    first = orders[0]
    return (first, next(iter(found))) if first is not None else None


def _in_index_order(mapping: object, *, by_index: bool) -> list[str] | None:
    """The names of an ``index -> name`` (``by_index``) or ``name -> index`` mapping in
    index order; ``None`` unless its indices are the ints 0 to n-1 and its names distinct
    strings."""
    if not isinstance(mapping, Mapping) or not mapping:
        return None
    pairs = mapping.items() if by_index else ((i, n) for n, i in mapping.items())
    named = {}
    for index, name in pairs:
        if isinstance(index, bool) or not isinstance(index, int) or not isinstance(name, str):
            return None
        named[index] = name
    names = [named.get(index) for index in range(len(mapping))]
    if len(named) != len(mapping) or None in names or len(set(names)) != len(names):
        return None
    return [str(name) for name in names]


def container_note(loaded: object, key: str) -> str:
    """``"used its 'state_dict' entry (as PyTorch Lightning ...); left out ['epoch']"``."""
    others = sorted(str(k) for k in loaded if k != key) if isinstance(loaded, Mapping) else []
    left_out = f"; left out {others[:4]}" + (" ..." if len(others) > 4 else "") if others else ""
    return f"used its {key!r} entry ({CONTAINERS[key]}){left_out}"


# the prefix a wrapper puts on every key of the network it wraps
_PREFIXES = {
    "module.": "saved from DistributedDataParallel or DataParallel",
    "_orig_mod.": "saved from a torch.compile'd network",
    "model.": "saved from a PyTorch Lightning module's 'model' attribute",
}

# names torchvision's modules have changed since its weights files were written; it renames
# them while loading (DenseNet in densenet._load_state_dict, ViT in MLPBlock's
# _load_from_state_dict), so a genuine file holds the old ones
_DENSENET_OLD = re.compile(
    r"(?P<layer>.*denselayer\d+\.(?:norm|relu|conv))\.(?P<index>[12])\."
    r"(?P<tensor>weight|bias|running_mean|running_var|num_batches_tracked)"
)
_VIT_MLP_OLD = re.compile(
    r"(?P<block>.*encoder_layer_\d+\.mlp)\.linear_(?P<index>[12])\.(?P<tensor>weight|bias)"
)


def _new_name(key: str) -> str | None:
    found = _DENSENET_OLD.fullmatch(key)
    if found:  # "denselayer1.norm.1.weight" -> "denselayer1.norm1.weight"
        return f"{found['layer']}{found['index']}.{found['tensor']}"
    found = _VIT_MLP_OLD.fullmatch(key)
    if found:  # "mlp.linear_1.weight" -> "mlp.0.weight", "mlp.linear_2.bias" -> "mlp.3.bias"
        return f"{found['block']}.{3 * (int(found['index']) - 1)}.{found['tensor']}"
    return None


def _strip_prefix(state: dict[str, Any], expected: Collection[str]) -> tuple[dict[str, Any], str]:
    """``state`` without the prefix every key has, when no key is one the model expects
    and the keys without it are; ``""`` for no prefix."""
    prefix = ""
    stripped = state
    for _ in range(3):  # "module.model.": a wrapper of a wrapper
        if any(key in expected for key in stripped):
            break
        first = {key.partition(".")[0] for key in stripped}
        if len(first) != 1 or not all("." in key for key in stripped):
            break
        part = f"{first.pop()}."
        prefix += part
        stripped = {key[len(part) :]: value for key, value in stripped.items()}
    if not prefix or not any(key in expected for key in stripped):
        return state, ""
    return stripped, prefix


def fit_keys(state: Mapping[str, Any], expected: Collection[str]) -> tuple[dict[str, Any], str]:
    """``state`` with the keys torch or torchvision would load into a model whose state
    dict has the keys ``expected``, and a note on what was changed (``""`` for nothing).

    A prefix that every key has (``module.``) is removed when no key is one the model
    expects and the keys without it are (timm's ``clean_state_dict`` removes ``module.``);
    torchvision's old names (DenseNet's ``norm.1``, ViT's ``mlp.linear_1``) are renamed as
    torchvision renames them, when the model expects the new name and not the old one.

    Examples
    --------
    >>> import torch
    >>> fitted, note = fit_keys({"module.fc.weight": torch.zeros(1)}, {"fc.weight"})
    >>> list(fitted)
    ['fc.weight']
    >>> note[:37]
    "removed the prefix 'module.' that all"
    """
    fitted, prefix = _strip_prefix(dict(state), expected)
    notes = []
    if prefix:
        why = _PREFIXES.get(prefix, "saved from a network inside another module")
        notes.append(f"removed the prefix {prefix!r} that all its keys have ({why})")
    renamed = 0
    for key in list(fitted):
        new = _new_name(key)
        if new is not None and key not in expected and new in expected and new not in fitted:
            fitted[new] = fitted.pop(key)
            renamed += 1
    if renamed:
        notes.append(f"renamed {renamed} keys from torchvision's older names, as it does")
    return fitted, "; ".join(notes)
