"""Strict JSON text: what every ``--json`` output and ``--out`` file of retinalnet is written as."""

from __future__ import annotations

import json
import math
from typing import Any

from retinalnet._core.utf_8_names import utf_8_data

__all__ = ["strict_json"]


def strict_json(data: Any, **kwargs: Any) -> str:
    """``json.dumps(data)`` with every NaN or infinite float written as ``null``, and every
    file name as UTF-8 text (:func:`~retinalnet._core.utf_8_names.utf_8_data`).

    Python's ``json`` writes ``NaN``, which JavaScript's ``JSON.parse``, ``jq`` and strict
    parsers refuse, and with ``allow_nan=False`` it fails instead: an undefined number (the
    accuracy of a class without images) would cost the whole output. A file name read under
    ``LANG=C`` holds its non-ASCII bytes as lone surrogates (``'d\\udcc3\\udca9'``), which
    no UTF-8 reader takes: it is written as the text it is (``'dé'``), as under UTF-8.

    Examples
    --------
    >>> strict_json({"DRUSEN": float("nan"), "CNV": 0.5})
    '{"DRUSEN": null, "CNV": 0.5}'
    """
    return json.dumps(utf_8_data(_finite(data)), allow_nan=False, **kwargs)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value
