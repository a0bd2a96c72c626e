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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from retinalnet.predictor import Predictor

__all__ = ["check_order", "given_order"]

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
    written (a comma in it kept), others with the spaces around them dropped."""
    names: list[str] = []
    position = 0
    while True:
        found = _ORDER_NAME.match(text, position)
        if found is None:
            raise ValueError(
                f"--order {text!r} has a double quote out of place; {_QUOTING} (--order "
                f"'\"wet AMD, active\",NORMAL')"
            )
        quoted = found["quoted"]
        names.append(found["plain"].strip() if quoted is None else quoted.replace('""', '"'))
        if found["comma"] != ",":
            return names
        position = found.end()


def given_order(args: argparse.Namespace) -> list[str] | None:
    """``--order`` as a list of class names (``None`` when not given); an empty one, or one
    naming a class twice or an empty class, is refused (the model's classes are checked by
    :func:`check_order`)."""
    if args.order is None:
        return None
    fix = (
        "give every class of the model once, highest concern first and the fallback class "
        "last (--order CNV,DME,DRUSEN,NORMAL for the Kermany classes), or leave --order out"
    )
    if not args.order.strip():
        raise ValueError(f"--order is empty; {fix}")
    names = _order_names(args.order)
    if "" in names:
        raise ValueError(f"--order names an empty class ({args.order!r}); {fix}")
    twice = next((name for name in names if names.count(name) > 1), None)
    if twice is not None:
        raise ValueError(f"--order names {twice} twice ({args.order!r}); {fix}")
    return names


def _written_for_order(name: str) -> str:
    """A class name as ``--order`` takes it: in double quotes when it holds a comma or a
    double quote, or starts or ends with a space."""
    if "," in name or '"' in name or name != name.strip():
        return '"' + name.replace('"', '""') + '"'
    return name


def check_order(predictor: Predictor, args: argparse.Namespace) -> None:
    """Refuse an ``--order`` that is not every class of the model once, whatever the paths
    (an order given for images only is a mistake too, not a flag to ignore).

    Raises
    ------
    ValueError
        As :func:`given_order` does, or if ``--order`` is not a permutation of the model's
        classes (the message names them).
    """
    from retinalnet.volume import _check_order

    order = given_order(args)
    if order is None:
        return
    classes = list(predictor.classes)
    written = [_written_for_order(name) for name in classes]
    if sorted(order) != sorted(classes) and written != classes:
        raise ValueError(
            f"--order {args.order!r} names {order}, not every class of the model once "
            f"({classes}): "
            f"{_QUOTING}; this model's classes, to put in order, highest concern first and "
            f"the fallback class last: --order {shlex.quote(','.join(written))}"
        )
    _check_order(classes, order)
