"""One warning, in one wording, for images named for another class than their label says:
a file named ``DME-...`` in the CNV folder, or a manifest row of a CNV scan labelled DME."""

from __future__ import annotations

from retinalnet._core.caller_warnings import warn_caller

__all__ = ["warn_misnamed"]


def warn_misnamed(counted: str, example: str, named: str, labelled: str, *, door: str) -> None:
    """Warn once of images named for another class than their label.

    Parameters
    ----------
    counted
        How many, and where: ``"3 image(s) in split 'train' under 'OCT2017'"``.
    example
        One of them, as the user wrote or sees it (``"train/CNV/DME-123-1.jpeg"``).
    named, labelled
        The class its folder or file name gives, and the class it is read as.
    door
        ``"folder"``: the label is the class folder's; ``"manifest"``: the manifest row's.
    """
    if door == "folder":
        than, read_with = "their folder", "their folder's label"
        fix = "move it to the folder of its true class (`retinalnet audit` lists them all)"
    else:
        than, read_with = "their label in the manifest", "the manifest's label"
        fix = "correct its label, or write the manifest again with `retinalnet split`"
    warn_caller(
        f"{counted} are named for another class than {than}, e.g. {example!r} (named "
        f"{named}, labelled {labelled}): each is mislabelled or misfiled; they are read with "
        f"{read_with}. Check each scan and {fix}",
        UserWarning,
    )
