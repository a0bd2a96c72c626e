"""Strict JSON text: what every ``--json`` output and ``--out`` file of retinalnet is written as."""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["strict_json"]


def strict_json(data: Any, **kwargs: Any) -> str:
    """``json.dumps(data)`` with every NaN or infinite float written as ``null``.

    Python's ``json`` writes ``NaN``, which JavaScript's ``JSON.parse``, ``jq`` and strict
    parsers refuse, and with ``allow_nan=False`` it fails instead: an undefined number (the
    accuracy of a class without images) would cost the whole output.

    Examples
    --------
    >>> strict_json({"DRUSEN": float("nan"), "CNV": 0.5})
    '{"DRUSEN": null, "CNV": 0.5}'
    """
    return json.dumps(_finite(data), allow_nan=False, **kwargs)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value
