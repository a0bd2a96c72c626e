"""Comparing a state dict with the one a model expects."""

from __future__ import annotations

from collections.abc import Mapping

import torch

__all__ = ["state_dict_mismatches"]


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
