"""The checkpoint format's version, the versions of retinalnet that wrote a file, and the
fields of ``model`` a reader knows.

A reader of an older retinalnet loads a checkpoint whose ``format_version`` it knows, and
ignores the fields it does not know. That is safe for a field that changes no answer (the
loop state, say), and silently wrong for one that does: retinalnet 0.1 ignores a
calibration temperature, and would give other probabilities without a word. So a file is
written in format 2 exactly when it holds such a field (:func:`format_needed`: a
temperature other than 1, declared parts), which retinalnet 0.1 refuses with "upgrade", and
stays in format 1, which 0.1 reads as before, otherwise.

Every write stamps the writing version (:func:`stamped`): ``retinalnet_version`` is the
last writer, and ``written_by`` lists every version that wrote the file, oldest first (a
0.1.0 checkpoint calibrated by 0.2.0: ``["0.1.0", "0.2.0"]``). The current reader refuses
fields under ``model`` it does not know (:func:`unknown_model_fields`), as a newer
retinalnet's file may hold one that changes the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from retinalnet._version import __version__

__all__ = [
    "FORMAT_VERSION",
    "TRAIN_OPTIONS_KEY",
    "format_needed",
    "stamped",
    "train_record",
    "unknown_model_fields",
]

FORMAT_VERSION = 2
"""The newest checkpoint format this retinalnet reads and writes: 1 (retinalnet 0.1), or 2
(0.2: adds ``model.temperature`` other than 1 and ``model.declarations``)."""

TRAIN_OPTIONS_KEY = "TrainOptions"
"""The callback state that holds the options ``retinalnet train`` ran with
(``callbacks.TrainOptions``): written by the command line, read by ``describe`` too."""


def train_record(callback_states: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The options ``retinalnet train`` recorded in a checkpoint's ``callback_states``;
    ``None`` where there is no such record (the Python API, retinalnet before 0.2) or it is
    not a mapping (a damaged or foreign file)."""
    record = callback_states.get(TRAIN_OPTIONS_KEY)
    return record if isinstance(record, Mapping) else None


_MODEL_FIELDS = ("arch", "arch_kwargs", "state_dict", "temperature", "declarations")


def format_needed(model: Mapping[str, Any]) -> int:
    """The format a checkpoint's ``model`` fields need: 2 when a format-1 reader would
    ignore one of them and answer otherwise (a temperature other than 1, declared parts),
    else 1."""
    temperature = model.get("temperature", 1.0)
    declared = model.get("declarations")
    return 2 if temperature != 1 or bool(declared) else 1


def stamped(payload: Mapping[str, Any]) -> dict[str, Any]:
    """``payload`` as this retinalnet writes it: the format its fields need, this version as
    ``retinalnet_version`` (the last writer), appended to ``written_by`` (every version that
    wrote the file, oldest first; a file without it was written by its
    ``retinalnet_version``), and this torch's version, which serialises it."""
    data = dict(payload)
    before = data.get("written_by")
    if isinstance(before, list):
        history = [str(version) for version in before]
    else:
        first = data.get("retinalnet_version")
        history = [first] if isinstance(first, str) else []
    if not history or history[-1] != __version__:
        history.append(__version__)
    model = data.get("model")
    data["format_version"] = format_needed(model) if isinstance(model, Mapping) else 1
    data["retinalnet_version"] = __version__
    data["written_by"] = history
    data["torch_version"] = str(torch.__version__)
    return data


def unknown_model_fields(model: Mapping[str, Any], written_by: object) -> str | None:
    """What to say of fields under ``model`` this retinalnet does not know (a newer
    retinalnet's, ``written_by`` its version), which it would load without and answer
    otherwise; ``None`` when it knows them all."""
    unknown = sorted(str(name) for name in model if name not in _MODEL_FIELDS)
    if not unknown:
        return None
    fields = ", ".join(repr(f"model.{name}") for name in unknown)
    return (
        f"holds {fields}, which retinalnet {__version__} does not know (written by retinalnet "
        f"{written_by}): loaded without, the model would answer otherwise; upgrade with pip "
        "install -U retinalnet"
    )
