"""``retinalnet predict --order``: the class names of a volume's referral rule, as a shell
user writes them.

Commas separate the names; a name that holds a comma (``"Ödem, diabetic"``) or a double
quote goes in double quotes, a double quote in it doubled, as in a CSV row, so every class
name a model can have can be given.
"""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from retinalnet.predictor import Predictor

__all__ = ["check_order", "given_order", "order_argument", "order_refused"]

# one name of --order and the comma after it: plain (spaces around it dropped), or in double
# quotes as in a CSV row, a quote in it doubled ("Ödem, diabetic"), for a name with a comma
_ORDER_NAME = re.compile(
    r'\s*(?:"(?P<quoted>(?:[^"]|"")*)"\s*|(?P<plain>[^,"]*))(?P<comma>,|\Z)', re.DOTALL
)
_QUOTING = (
    "commas separate the names of --order: write a name that holds a comma or a double "
    "quote in double quotes, a double quote in it doubled, as in a CSV row"
)


def _order_names(text: str) -> list[str]:
    """The class names of ``--order``: separated by commas, a name in double quotes taken as
    written (a comma in it kept), others with the spaces around them dropped.

    Raises
    ------
    ValueError
        If a double quote is out of place, in words that follow ``--order``.
    """
    names: list[str] = []
    position = 0
    while True:
        found = _ORDER_NAME.match(text, position)
        if found is None:
            raise ValueError(
                f"{text!r} has a double quote out of place; {_QUOTING} (--order "
                f"'\"wet AMD, active\",NORMAL')"
            )
        quoted = found["quoted"]
        names.append(found["plain"].strip() if quoted is None else quoted.replace('""', '"'))
        if found["comma"] != ",":
            return names
        position = found.end()


_FIX = (
    "give every class of the model once, highest concern first and the fallback class "
    "last (--order CNV,DME,DRUSEN,NORMAL for the Kermany classes), or leave --order out"
)


def _names_refused(text: str) -> str | None:
    """Why the ``--order`` text ``text`` is refused on its own (empty, a class named twice or
    empty, a double quote out of place), in words that follow ``--order``; ``None`` when its
    names can be checked against the model's classes."""
    if not text.strip():
        return f"is empty; {_FIX}"
    try:
        names = _order_names(text)
    except ValueError as error:  # a double quote out of place
        return str(error)
    if "" in names:
        return f"names an empty class ({text!r}); {_FIX}"
    twice = next((name for name in names if names.count(name) > 1), None)
    if twice is not None:
        return f"names {twice} twice ({text!r}); {_FIX}"
    return None


def order_argument(text: str) -> str:
    """An argparse type for ``--order``: its names checked on their own before anything
    runs (none empty, none twice, double quotes in place), a refusal being a bad argument
    (status 2, ``argument --order: names CNV twice ...``); the text is kept as given
    (:func:`given_order` reads it, :func:`order_refused` checks it against the model).

    Raises
    ------
    argparse.ArgumentTypeError
        Saying what is wrong and how to write ``--order``.
    """
    refused = _names_refused(text)
    if refused is not None:
        raise argparse.ArgumentTypeError(refused)
    return text


order_argument.__name__ = "order"  # how argparse names the type in its messages


def given_order(args: argparse.Namespace) -> list[str] | None:
    """``--order`` as a list of class names (``None`` when not given); an empty one, or one
    naming a class twice or an empty class, is refused (the model's classes are checked by
    :func:`check_order`)."""
    if args.order is None:
        return None
    refused = _names_refused(args.order)
    if refused is not None:
        raise ValueError(f"--order {refused}")
    return _order_names(args.order)


def _written_for_order(name: str) -> str:
    """A class name as ``--order`` takes it: in double quotes when it holds a comma or a
    double quote, or starts or ends with a space."""
    if "," in name or '"' in name or name != name.strip():
        return '"' + name.replace('"', '""') + '"'
    return name


def order_refused(args: argparse.Namespace, classes: Sequence[str]) -> str | None:
    """Why ``--order`` does not fit the model of ``classes`` (the one in ``--checkpoint``),
    in the words argparse refuses a bad value with, as ``-k`` beyond the number of classes
    is (status 2): the names given, the model's classes, and the ``--order`` to paste, with
    how to quote a name when one of the classes needs it. ``None`` when ``--order`` is not
    given or lists every class once.

    Raises
    ------
    ValueError
        As :func:`given_order` does.
    """
    order = given_order(args)
    if order is None or sorted(order) == sorted(classes):
        return None
    written = [_written_for_order(name) for name in classes]
    quoting = f"{_QUOTING}; " if written != list(classes) else ""
    return (
        f"argument --order: {args.order!r} names {order}, not every class of the model in "
        f"{str(args.checkpoint)!r} once ({list(classes)}): {quoting}this model's classes, to "
        "put in order, highest concern first and the fallback class last: --order "
        f"{shlex.quote(','.join(written))}"
    )


def check_order(predictor: Predictor, args: argparse.Namespace) -> None:
    """Refuse an ``--order`` that is not every class of the model once, whatever the paths
    (an order given for images only is a mistake too, not a flag to ignore).

    Raises
    ------
    ValueError
        As :func:`given_order` does, or if ``--order`` is not a permutation of the model's
        classes (:func:`order_refused` says why).
    """
    from retinalnet.volume import _check_order

    refused = order_refused(args, predictor.classes)
    if refused is not None:
        raise ValueError(refused)
    order = given_order(args)
    if order is not None:
        _check_order(list(predictor.classes), order)
