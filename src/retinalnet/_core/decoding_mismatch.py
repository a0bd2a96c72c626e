"""A data set read by another preprocessing's ``load`` than its model's, warned of once.

The model's decoding (:meth:`~retinalnet.transforms.Preprocessing.load`, reduced JPEG
decoding or not) travels in its checkpoints, and prediction decodes files that way. A data
set given ``with_loader(Preprocessing(reduced_decode=True).load)`` for a model decoding at
full size trained it on pixels prediction never sees, without a word.
"""

from __future__ import annotations

from retinalnet._core.caller_warnings import warn_caller

__all__ = ["warn_of_other_decoding"]

_SAID = "_other_decoding_said"
"""Where a data set keeps the decodings it was warned of (copies made after keep it)."""


def warn_of_other_decoding(data: object, loader: object, decode: object) -> None:
    """Warn, once per data set, when ``loader`` is another preprocessing's ``load`` whose
    decoding differs from ``decode``'s (both bound ``Preprocessing.load`` methods)."""
    function = getattr(decode, "__func__", None)
    if function is None or getattr(loader, "__func__", None) is not function:
        return  # not a preprocessing's load: the user's own way of reading files
    theirs = getattr(getattr(loader, "__self__", None), "decode_size", None)
    ours = getattr(getattr(decode, "__self__", None), "decode_size", None)
    if theirs == ours:
        return
    said = (theirs, ours)
    kept = getattr(data, "__dict__", None)
    if kept is not None:
        if kept.get(_SAID) == said:
            return
        kept[_SAID] = said
    if theirs is not None and ours is not None:  # both reduced, towards other sizes
        fix = (
            "leave with_loader out (the model's own decoding is used then), or pass "
            "with_loader(model.preprocessing.load)"
        )
    else:
        fix = (
            "leave with_loader out (the model's own decoding is used then), or build the "
            "model with the preprocessing whose load it is"
            + (
                ", e.g. Preprocessing(reduced_decode=True) (retinalnet train --reduced-decode)"
                if theirs is not None
                else ""
            )
        )
    warn_caller(
        f"{type(data).__name__} reads its files with another Preprocessing's load, which "
        f"decodes {_decoding(theirs)}, while the model decodes {_decoding(ours)}: that loader "
        "is used as given, so this data reaches the model as other pixels than prediction "
        f"gives it (the model's checkpoint records the model's decoding); {fix}",
        UserWarning,
    )


def _decoding(decode_size: int | None) -> str:
    """A preprocessing's decoding in words, from its ``decode_size``."""
    if decode_size is None:
        return "at full size (reduced_decode=False)"
    return (
        f"large JPEGs at reduced scale, towards a shorter side of {decode_size} pixels "
        "(reduced_decode=True)"
    )
