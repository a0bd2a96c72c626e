"""Declared feature blocks, checked: every door that reads a declaration reads it through
:func:`feature_blocks_of`, so freezing, fine-tuning and training see modules of the network
that hold parameters, disjoint and first to last, in a new list (what a selector returns is
only read: a network's own ``nn.ModuleList`` is never changed)."""

from __future__ import annotations

import reprlib
from collections.abc import Iterable, Mapping, Sequence

from torch import nn

from retinalnet.models._registry import BlockSelector

__all__ = ["feature_blocks_of"]


_STAGES = (
    "declare the blocks that hold parameters, whole stages, not single activation or pooling "
    "layers (for a VGG-style net.features: lambda net: [net.features[:3], net.features[3:]], "
    "a slice up to each max-pool)"
)
"""The fix named for a feature block without parameters."""


def feature_blocks_of(
    network: nn.Module, declaration: BlockSelector | Sequence[str], owner: str
) -> list[nn.Module]:
    """The feature blocks that ``declaration`` gives for ``network``: a new list, checked.

    Every door that reads a declaration of feature blocks reads it here
    (:meth:`~retinalnet.models.Classifier.feature_block_modules`, and ``create_model``'s
    count before a download), so that freezing, fine-tuning and training see checked
    blocks, and what a selector returns is only read: the list given back is a new one,
    and a network's own ``nn.ModuleList`` or ``nn.Sequential`` that a selector returns is
    never changed.

    Parameters
    ----------
    network
        The network the blocks are modules of.
    declaration
        A selector (called with ``network``; any iterable of modules it returns is taken)
        or module paths.
    owner
        Who declared them, first in every message:
        ``"ModelSpec.feature_blocks of 'resnet18'"``.

    Raises
    ------
    TypeError
        If a selector gives names, objects that are not modules, or something that is not
        a list of modules.
    ValueError
        If a block cannot be found in the network (a selector's ``AttributeError``,
        ``IndexError`` or ``KeyError``, a path that is not a module), a block holds no
        parameters or is not part of ``network``, two blocks share parameters (one holds
        the other, or one is given twice), or the blocks are not listed first to last, in
        the order ``network`` registers its modules.
    """
    paths: list[str] | None = None
    if callable(declaration):
        blocks = _selected(network, declaration, owner)
        labels = [f"{i} ({type(block).__name__})" for i, block in enumerate(blocks)]
    else:
        paths = list(declaration)
        blocks = []
        for path in paths:
            try:
                blocks.append(network.get_submodule(path))
            except AttributeError:
                raise ValueError(
                    f"{owner}: {path!r} is not a module of {type(network).__name__} (its "
                    f"children: {[name for name, _ in network.named_children()]})"
                ) from None
        labels = [repr(path) for path in paths]
    _check_parameters(network, blocks, labels, owner, named=paths is not None)
    _check_disjoint(blocks, labels, owner, named=paths is not None)
    _check_order(network, blocks, labels, owner, paths)
    return blocks


def _selected(network: nn.Module, selector: BlockSelector, owner: str) -> list[nn.Module]:
    """What ``selector`` returns for ``network``, as a new list of modules."""
    try:
        selected: object = selector(network)
    except (AttributeError, IndexError, KeyError) as error:
        children = [name for name, _ in network.named_children()]
        raise ValueError(
            f"{owner} fails on {type(network).__name__}: {type(error).__name__}: {error}; "
            f"return modules the network has (its children: {children})"
        ) from error
    if isinstance(selected, (str, bytes, Mapping)) or not isinstance(selected, Iterable):
        raise TypeError(
            f"{owner} must return the feature blocks as a list of modules, first to last, got "
            f"{_shown(selected)}; e.g. "
            "lambda net: [net.layer1, net.layer2, net.layer3, net.layer4]"
        )
    blocks: list[nn.Module] = []
    for i, block in enumerate(selected):
        if isinstance(block, str):
            raise TypeError(
                f"{owner} returned the name {block!r} as block {i}, not the module; return "
                f"the modules themselves, e.g. net.get_submodule({block!r})"
            )
        if not isinstance(block, nn.Module):
            raise TypeError(
                f"{owner} returned {_shown(block)} as block {i}; each feature block is a "
                "torch.nn.Module of the network"
            )
        blocks.append(block)
    return blocks


def _check_parameters(
    network: nn.Module, blocks: list[nn.Module], labels: list[str], owner: str, *, named: bool
) -> None:
    """Refuse blocks without parameters (freezing them changes nothing), and blocks whose
    parameters are not the network's."""
    empty = [i for i, block in enumerate(blocks) if next(block.parameters(), None) is None]
    if empty:
        shown = [labels[i] + (f" ({type(blocks[i]).__name__})" if named else "") for i in empty]
        one = len(empty) == 1
        raise ValueError(
            f"{owner}: feature block{'' if one else 's'} {', '.join(shown)} "
            f"hold{'s' if one else ''} no parameters, so freezing or fine-tuning "
            f"{'it' if one else 'them'} changes nothing; {_STAGES}"
        )
    own = {id(p) for p in network.parameters()}
    for block, label in zip(blocks, labels, strict=True):
        if any(id(p) not in own for p in block.parameters()):
            raise ValueError(
                f"{owner}: feature block {label} is not part of {type(network).__name__} (its "
                "parameters are not the network's); return modules of the network the "
                "selector is given"
            )


def _check_disjoint(blocks: list[nn.Module], labels: list[str], owner: str, *, named: bool) -> None:
    """Refuse two blocks that share a parameter: one holds the other, or one is twice."""
    held = [{id(p) for p in block.parameters()} for block in blocks]
    for i, outer in enumerate(labels):
        for j in range(i + 1, len(blocks)):
            if held[i] & held[j]:
                instead = f", e.g. the children of {outer} in place of {outer}" if named else ""
                raise ValueError(
                    f"{owner}: feature blocks {outer} and {labels[j]} overlap (one holds the "
                    f"other, or they are the same module); declare disjoint blocks, first to "
                    f"last{instead}"
                )


def _check_order(
    network: nn.Module,
    blocks: list[nn.Module],
    labels: list[str],
    owner: str,
    paths: list[str] | None,
) -> None:
    """Refuse blocks that are not listed first to last (by their first parameter)."""
    position = {id(p): i for i, p in enumerate(network.parameters())}
    first = [min(position[id(p)] for p in block.parameters()) for block in blocks]
    order = sorted(range(len(blocks)), key=first.__getitem__)
    if order == list(range(len(blocks))):
        return
    if paths is not None:
        given, fix = f", got {paths!r}", f"write {[paths[i] for i in order]!r}"
    else:
        given, fix = "", f"return them in the order {order!r} of the blocks it returns now"
    raise ValueError(
        f"{owner}: feature blocks must be listed first to last, in the order "
        f"{type(network).__name__} registers its modules (named_modules()){given}; "
        f"{fix} (fine-tuning unfreezes them from the last)"
    )


def _shown(value: object) -> str:
    """``value``'s type and a short repr on one line (a module's repr spans lines: its
    type alone)."""
    if isinstance(value, nn.Module):
        return type(value).__name__
    return f"{type(value).__name__} {' '.join(reprlib.repr(value).split())}"
