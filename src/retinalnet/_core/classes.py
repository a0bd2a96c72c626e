"""The four Kermany OCT classes, in the fixed order every retinalnet model uses, the check
that a model and a data set agree on their classes, and the rule that a ``classes=``
argument never renames a model's own classes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from retinalnet._core.counts import as_integer
from retinalnet._core.utf_8_names import utf_8_data

KERMANY_CLASSES: Final[tuple[str, ...]] = ("CNV", "DME", "DRUSEN", "NORMAL")
"""Class names in output order: CNV=0, DME=1, DRUSEN=2, NORMAL=3."""

KERMANY_SPLITS: Final[tuple[str, ...]] = ("train", "val", "test")
"""Split folder names of the Kermany OCT2017 download."""

IMAGE_EXTENSIONS: Final[frozenset[str]] = frozenset(
    {".jpeg", ".jpg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".dcm"}
)
"""File suffixes (compared lower-case) that are read as images (``.dcm``: DICOM, with the
``dicom`` extra; a multi-frame DICOM file, multi-page TIFF or animated PNG, GIF or WebP is a
volume, refused as one image). Other files in a searched folder are left out, with a warning
for those that may be scans in another format (:func:`~retinalnet.datasets.find_images`,
:class:`~retinalnet.datasets.KermanyOCT`)."""


def _classes_of_mapping(mapping: object) -> tuple[str, ...] | None:
    """The class names of a ``class_to_idx`` mapping in target order, when its indices are
    0 to n - 1 once each; else ``None``."""
    if not isinstance(mapping, Mapping) or not mapping:
        return None
    indices = [as_integer(_scalar(index)) for index in mapping.values()]
    known = [index for index in indices if index is not None]
    if len(known) != len(indices) or sorted(known) != list(range(len(known))):
        return None
    by_index = dict(zip(known, mapping, strict=True))
    return tuple(str(by_index[index]) for index in range(len(known)))


def _scalar(value: object) -> object:
    """A one-number tensor or array (``torch.tensor(2)``) as its Python number; others as
    they are."""
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", None) == 0:
        return item()
    return value


def _named_classes(data: object, depth: int = 0) -> list[tuple[object, tuple[str, ...]]]:
    """The class lists of ``data`` and of the data sets it wraps, each with the data set that
    names it: a DataLoader's, a ``Subset``'s, every part of a ``ConcatDataset``, at any depth
    (up to 8 wrappers)."""
    own = getattr(data, "classes", None)
    if own is not None and not callable(own):
        return [(data, tuple(str(name) for name in own))]
    by_index = _classes_of_mapping(getattr(data, "class_to_idx", None))
    if by_index is not None:  # a data set that names its targets by a mapping only
        return [(data, by_index)]
    if depth >= 8:
        return []
    parts = getattr(data, "datasets", None)  # a ConcatDataset
    if isinstance(parts, Sequence) and not isinstance(parts, str):
        return [named for part in parts for named in _named_classes(part, depth + 1)]
    inner = getattr(data, "dataset", None)  # a DataLoader, a Subset
    return [] if inner is None or inner is data else _named_classes(inner, depth + 1)


def data_classes(data: object) -> tuple[str, ...] | None:
    """The class names ``data``'s targets mean, read as :func:`check_same_classes` reads
    them (``classes``, else ``class_to_idx``, through DataLoaders, Subsets and
    ConcatDatasets: the first part's); ``None`` when the data names none."""
    named = _named_classes(data)
    return named[0][1] if named else None


def _same_classes_fix(expected: tuple[str, ...], owner: object) -> str:
    """How to make data of other classes than the model's ``expected`` meet the model, for
    the data set ``owner`` that named them."""
    kermany = set(expected) <= set(KERMANY_CLASSES)
    if kermany and expected != in_kermany_order(expected):
        return (
            "the model's classes are Kermany classes out of the Kermany order, which "
            "KermanyOCT always gives: build the model with create_model(arch, "
            "classes=data.classes)"
        )
    rebuilt = "a model built for the data's classes (create_model(arch, classes=data.classes))"
    # by name: the data sets are above this module, which they import
    if type(owner).__name__ == "SyntheticOCT":
        some = (
            ", or write the scans with data.write(root, split) and read those of the model's "
            "classes with KermanyOCT(root, split, classes=model.classes)"
            if kermany
            else ""
        )
        return (
            "SyntheticOCT always has the four Kermany classes (a class given no images is "
            f"empty, not left out): use {rebuilt}{some}"
        )
    if kermany:
        return (
            "Use data with the model's classes in its order (KermanyOCT(root, split, "
            f"classes=model.classes) reads some of the four), or {rebuilt}"
        )
    return (
        "Use data of the model's classes in its order (e.g. torchvision's ImageFolder, whose "
        "class folders are read in sorted order; KermanyOCT reads only the Kermany classes), "
        f"or {rebuilt}"
    )


def check_same_classes(
    model_classes: Sequence[str], data: object, *, where: str, given: bool = False
) -> None:
    """Refuse data whose classes differ from the model's, by name and order.

    A model's output ``i`` means ``model_classes[i]``; a data set's target ``i`` means its
    ``classes[i]``. When the two lists differ, every number computed would silently compare
    different classes (a 3-class checkpoint on 4-class data, or class folders in another
    order), so nothing is computed. The data sets inside DataLoaders, Subsets and
    ConcatDatasets are checked, each part of a concatenation. A data set without
    ``classes`` is read by its ``class_to_idx`` mapping (targets 0 to n - 1); data with
    neither (tensors, cached features) cannot be checked and passes.

    ``given`` says that ``model_classes`` are the ``classes=`` argument that names the
    outputs of a model that is not a Classifier (see :func:`output_classes`): the message
    then names that argument, and the fix is to that argument or to the data, not to the
    model.

    Raises
    ------
    ValueError
        Listing both class lists and how to fix it: the fix the data set in hand allows
        (:class:`~retinalnet.datasets.SyntheticOCT` always has the four Kermany classes,
        :class:`~retinalnet.datasets.KermanyOCT` reads only Kermany classes).
    """
    expected = tuple(model_classes)
    for owner, found in _named_classes(data):
        # a class folder's name read under LANG=C ('Normal-\udcc3\udca9') is the class of
        # the same name read under UTF-8 ('Normal-é')
        if found == expected or utf_8_data(found) == utf_8_data(expected):
            continue
        if given:
            raise ValueError(
                f"{where}: classes= names the model's outputs {list(expected)} (output order) "
                f"but the data's classes are {list(found)}; every result would compare "
                "different classes. If the model's outputs are in the data's order, pass "
                f"classes={list(found)}; else use data of the classes {list(expected)} in "
                "that order"
            )
        raise ValueError(
            f"{where}: the model's classes are {list(expected)} (output order) but the data's "
            f"are {list(found)}; every result would compare different classes. "
            f"{_same_classes_fix(expected, owner)}"
        )


def output_classes(
    own: Sequence[str] | None,
    given: Sequence[str] | None,
    *,
    where: str,
    owner: str = "the model",
    given_for: str = (
        "classes= is only for a model that is not a Classifier: a Classifier's outputs are "
        "always in the order of its classes"
    ),
) -> tuple[str, ...]:
    """The class names of a model's outputs, in output order: its ``own`` (a Classifier's
    ``classes``), else those a ``classes=`` argument ``given`` names.

    The one rule of every call that takes something that names its classes and a
    ``classes=`` argument as well: ``given`` may repeat ``own`` but never reorder or rename
    it. Taken as given, another order would silently name every row and column of the
    results after another class when the data carry no class names (a ``TensorDataset``),
    and with data that do, the data would be blamed. ``owner`` is what errors call the
    holder of ``own`` and ``given_for`` what they say ``classes=`` is for.

    Raises
    ------
    TypeError
        If ``given`` is one string (``"CNV"`` instead of a list of names).
    ValueError
        If ``given`` differs from ``own`` (both lists are named), or neither is known.

    Examples
    --------
    >>> output_classes(("CNV", "NORMAL"), None, where="evaluate")
    ('CNV', 'NORMAL')
    >>> output_classes(None, ["a", "b"], where="evaluate")
    ('a', 'b')
    """
    if isinstance(given, str):
        raise TypeError(
            f"{where}: classes must be a list of class names in output order, got the string "
            f"{given!r}; e.g. classes=['CNV', 'NORMAL']"
        )
    named = None if given is None else tuple(str(name) for name in given)
    if own is None:
        if named is None:
            raise ValueError(
                f"{where}: pass classes=[...] when the model is not a retinalnet Classifier "
                "(the names of its outputs, in output order)"
            )
        return named
    outputs = tuple(own)
    if named is not None and named != outputs:
        raise ValueError(
            f"{where}: classes={list(named)} differs from the classes of {owner}, "
            f"{list(outputs)} (output order); {given_for}. Leave classes= out"
        )
    return outputs


def in_kermany_order(names: Sequence[str]) -> tuple[str, ...]:
    """The Kermany classes among ``names``, in the Kermany order (others left out).

    Examples
    --------
    >>> in_kermany_order(["NORMAL", "CNV"])
    ('CNV', 'NORMAL')
    """
    return tuple(name for name in KERMANY_CLASSES if name in names)


def kermany_subset(classes: Sequence[str] | None, *, name: str = "classes") -> tuple[str, ...]:
    """The Kermany classes a study keeps, in the fixed Kermany order.

    ``None`` keeps all four. A subset (a CNV-versus-NORMAL study, say) keeps the output
    order of the four (``CNV`` before ``NORMAL`` whatever order it is given in), so a model
    and its data sets always agree on it. ``name`` is what errors call the argument
    (``--classes`` at the command line).

    Raises
    ------
    TypeError
        If ``classes`` is one string (``"CNV"`` instead of ``["CNV", "NORMAL"]``).
    ValueError
        If a name is not a Kermany class (names are compared as written: ``"cnv"`` is not
        ``"CNV"``), a name is given twice, or fewer than two classes are given.

    Examples
    --------
    >>> kermany_subset(["NORMAL", "CNV"])
    ('CNV', 'NORMAL')
    >>> kermany_subset(None)
    ('CNV', 'DME', 'DRUSEN', 'NORMAL')
    """
    if classes is None:
        return KERMANY_CLASSES
    if isinstance(classes, str):
        raise TypeError(
            f"{name} must be a list of class names, got the string {classes!r}; "
            "e.g. ['CNV', 'NORMAL']"
        )
    names = [str(name) for name in classes]
    unknown = [name for name in names if name not in KERMANY_CLASSES]
    if unknown:
        raise ValueError(
            f"class {unknown[0]!r} is not one of {', '.join(KERMANY_CLASSES)} "
            "(names as written, upper case)"
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"class {repeated[0]!r} is given twice in {name} {' '.join(names)}")
    if len(names) < 2:
        raise ValueError(
            f"{name} {' '.join(names) or '(none)'} keeps {len(names)} class(es); a classifier "
            "needs at least two, e.g. CNV NORMAL"
        )
    return in_kermany_order(names)


def in_words(names: Iterable[str]) -> str:
    """Class names listed for a message: ``CNV, DME``; each quoted when one of them would
    make the list read otherwise (a comma in ``'Ödem, diabetic'``, spaces around a name, an
    empty name), so a list is never read as more classes than it has.

    Examples
    --------
    >>> in_words(["CNV", "DME"])
    'CNV, DME'
    >>> in_words(["wet AMD", "Ödem, diabetic"])
    "'wet AMD', 'Ödem, diabetic'"
    """
    listed = [str(name) for name in names]
    if any("," in name or name != name.strip() or not name for name in listed):
        return ", ".join(map(repr, listed))
    return ", ".join(listed)
