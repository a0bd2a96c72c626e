"""What to say of a training checkpoint that torch's safe loading refuses for the Python
objects it pickles beside its state dict (Lightning's hyper-parameters, the tutorial's
classifier and optimizer), with the way to its weights that works as written.

The file's pickle is read as opcodes (:mod:`pickletools`): nothing in it runs. Every class it
needs that ``torch.load(weights_only=True)`` does not allow is listed, where torch names only
the first it meets.
"""

from __future__ import annotations

import _compat_pickle
import builtins
import pickletools
import sys
import zipfile
from pathlib import Path

__all__ = ["pickled_objects_beside_state_dict"]


def pickled_objects_beside_state_dict(file: Path, found: str) -> str | None:
    """What to say of a training tool's checkpoint that ``torch.load(weights_only=True)``
    refused for a pickled object ``found`` kept beside its ``"state_dict"`` (Lightning's
    hyper-parameters as an ``argparse.Namespace``, the tutorial's pickled classifier and
    optimizer), with the way to its weights; ``None`` for any other file, or for one whose
    pickle also names a function that runs code (``os.system``, ``eval``): no advice allows
    that. The pickle is read as opcodes (``pickletools``): nothing in it runs.

    The advice names every class the pickle needs that torch's safe loading does not allow,
    not only ``found`` (torch names the first it meets), so it works as written; a class
    mapping beside the state dict (``idx_to_class``, ``class_to_idx``, as the tutorial
    saves) is kept in the file it writes, so the class order is not lost. A ``defaultdict``
    (a trained optimizer's state), which torch's safe loading does not fill, is read as a
    ``dict``.
    """
    operations = _pickle_operations(file)
    strings = {arg for _, arg in operations if isinstance(arg, str)}
    if "state_dict" not in strings:
        return None
    module, _, name = found.rpartition(".")
    needed = _refused_globals(operations) or [(module or "builtins", name)]
    if any(_runs_code(module, name) for module, name in needed):
        return None
    lightning = "pytorch-lightning_version" in strings
    kind = "a PyTorch Lightning checkpoint" if lightning else "a training checkpoint"
    held = "; Lightning keeps hyper-parameters so" if lightning else ""
    imports, names = _python_names(needed)
    if len(names) == 1:
        shown, allowed = ".".join(needed[0]).removeprefix("builtins."), "that class"
    else:
        short = [name.rpartition(".")[2] for _, name in needed]
        shown, allowed = f"{', '.join(short[:-1])} and {short[-1]}", "those classes"
    loaded = f"torch.load({str(file)!r}, weights_only=True)"
    kept = [key for key in _CLASS_MAPPINGS if key in strings]
    if kept:  # the class order travels with the weights
        keys = ", ".join(repr(key) for key in ("state_dict", *kept))
        saved = f"{{k: v for k, v in {loaded}.items() if k in ({keys})}}"
    else:
        saved = f"{loaded}['state_dict']"
    what = " and class mapping" if kept else ""
    return (
        f"{str(file)!r} is {kind} whose entries beside its 'state_dict' hold pickled Python "
        f"objects ({shown}{held}), which retinalnet does not unpickle, as unpickling can run "
        f"arbitrary code. Where you trust the file, save its state dict{what} alone with "
        f"{allowed} allowed, and use that file: {f'`{imports}`, then ' if imports else ''}`with "
        f"torch.serialization.safe_globals([{', '.join(names)}]): torch.save({saved}, "
        "'weights.pt')`"
    )


# containers torch's safe loading builds but does not fill ("Can only SETITEMS for dict"), so
# allowing them is not enough: each is read as one it fills, by a function in its name (the
# state of an optimizer that took a step is a defaultdict)
_READ_AS = {("collections", "defaultdict"): "lambda *args: {}"}
# the entries a checkpoint keeps its class order in (the tutorial's save_checkpoint: both)
_CLASS_MAPPINGS = ("idx_to_class", "class_to_idx")
# modules whose functions run code or touch the system, and builtins that do: a pickle that
# names one is never advised to be allowed
_SYSTEM_MODULES = frozenset(
    {"os", "posix", "nt", "sys", "subprocess", "shutil", "socket", "pty", "runpy", "code"}
    | {"importlib", "pickle", "marshal"}
)
_CODE_BUILTINS = frozenset(
    {"eval", "exec", "compile", "getattr", "setattr", "delattr", "__import__", "open"}
)


def _runs_code(module: str, name: str) -> bool:
    """Whether the global ``module.name`` runs code or reaches the system when called."""
    blocked = getattr(_weights_only_unpickler(), "_blocklisted_modules", ())
    top = module.partition(".")[0]
    if top in _SYSTEM_MODULES or module in blocked:
        return True
    return module == "builtins" and name in _CODE_BUILTINS


def _python_names(globals_: list[tuple[str, str]]) -> tuple[str, list[str]]:
    """The import statements (one line, ``""`` for none) after which each of ``globals_``
    (``(module, name)``) is named by the Python expression listed for it.

    ``import argparse`` and ``argparse.Namespace``, as one writes it; but a module that is
    not an attribute of its package once imported (``torch.optim.adam``: ``torch.optim``
    deletes the names of its modules) is imported from: ``from torch.optim.adam import
    Adam``. A builtin needs no import (``dict``). A container torch's safe loading does not
    fill is read as one it fills: ``(lambda *args: {}, 'collections.defaultdict')``.
    """
    modules: list[str] = []
    imported: dict[str, list[str]] = {}
    names: list[str] = []
    taken = set(dir(builtins))
    for module, name in globals_:
        top = name.partition(".")[0]  # a nested class, "Outer.Inner", is reached from Outer
        if (module, name) in _READ_AS:
            names.append(f"({_READ_AS[module, name]}, {f'{module}.{name}'!r})")
        elif module == "builtins":
            names.append(name)
        elif _reached_by_attributes(module):
            modules += [] if module in modules else [module]
            names.append(f"{module}.{name}")
        else:
            alias = top if top not in taken else f"{top}_{len(taken)}"
            taken.add(alias)
            imported.setdefault(module, []).append(top if alias == top else f"{top} as {alias}")
            names.append(alias + name[len(top) :])
    statements = [f"import {', '.join(modules)}"] if modules else []
    statements += [f"from {module} import {', '.join(tops)}" for module, tops in imported.items()]
    return "; ".join(statements), names


def _reached_by_attributes(module: str) -> bool:
    """Whether ``module`` is reached from its top package by attributes once imported: true
    of a module not imported yet (an import binds it in its package), and of one imported
    that its package still holds."""
    if module not in sys.modules:
        return True
    value: object = sys.modules.get(module.partition(".")[0])
    for part in module.split(".")[1:]:
        value = getattr(value, part, None)
    return value is sys.modules[module]


def _pickle_operations(file: Path) -> list[tuple[str, object]]:
    """The opcodes (their names) and arguments of a zip-format torch file's pickle; empty
    when it cannot be read so."""
    try:
        with zipfile.ZipFile(file) as archive:
            name = next(n for n in archive.namelist() if n.endswith("/data.pkl"))
            if archive.getinfo(name).file_size > 64 * 2**20:
                return []  # tensors live outside data.pkl: this is no state dict's pickle
            data = archive.read(name)
        return [(code.name, arg) for code, arg, _ in pickletools.genops(data)]
    except (OSError, StopIteration, ValueError, zipfile.BadZipFile):
        return []


def _refused_globals(operations: list[tuple[str, object]]) -> list[tuple[str, str]]:
    """The ``(module, name)`` of every global a pickle names (its ``GLOBAL`` opcodes, read
    as torch's safe unpickler reads them) that torch's safe loading does not allow, in the
    order the pickle names them."""
    allowed = _allowed_globals()
    refused: dict[tuple[str, str], None] = {}
    for code, arg in operations:
        if code != "GLOBAL" or not isinstance(arg, str) or " " not in arg:
            continue
        module, name = arg.split(" ", 1)
        # protocol 2 writes Python 2's names (``__builtin__ dict``), as unpicklers map back
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        if not _is_allowed(module, name, allowed):
            refused[(module, name)] = None
    return list(refused)


def _weights_only_unpickler() -> object:
    """torch's safe unpickler module (private: it may move), or ``None``."""
    try:
        import torch._weights_only_unpickler as unpickler
    except ImportError:
        return None
    return unpickler


def _allowed_globals() -> frozenset[str]:
    """The globals (``module.name``) torch's safe loading allows now, by default or through
    ``torch.serialization.add_safe_globals``; empty when this torch does not say (every
    global is then advised but those a state dict always holds)."""
    unpickler = _weights_only_unpickler()
    names: set[str] = set()
    for getter in ("_get_allowed_globals", "_get_user_allowed_globals"):
        listed = getattr(unpickler, getter, None)
        if not callable(listed):
            continue
        try:
            names.update(str(key) for key in listed())
        except Exception:  # a private function whose signature changed: advise more, not less
            continue
    return frozenset(names)


def _is_allowed(module: str, name: str, allowed: frozenset[str]) -> bool:
    """Whether torch's safe loading takes the global ``module.name``: as it says, or (where
    it does not say) the tensor rebuilders, storages and ``OrderedDict`` of every state
    dict."""
    if f"{module}.{name}" in allowed:
        return True
    state_dict_parts = (
        (module == "torch._utils" and name.startswith("_rebuild_"))
        or (module == "torch" and name.endswith("Storage"))
        or (module, name) == ("collections", "OrderedDict")
    )
    return not allowed and state_dict_parts
