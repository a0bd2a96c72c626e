"""Tests for retinalnet.datasets._folder_names: a copy's name, a name with spaces at its ends,
and the one hint every door gives for a folder in a split that is not a Kermany class."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
from PIL import Image

from retinalnet.datasets import KermanyOCT, audit, count_images
from retinalnet.datasets._folder_names import class_folder_hint, copied_name, shown_name

_COPY = "remove it, or move into {0!r} the images not already there"


@pytest.mark.parametrize(
    ("name", "made_from"),
    [("NORMAL copy", "NORMAL"), ("NORMAL copy 2", "NORMAL"), ("DME - Copy", "DME"),
     ("DME - Copy (2)", "DME"), ("CNV (1)", "CNV"), ("DRUSEN 2", "DRUSEN"),
     ("Copy of NORMAL", "NORMAL"), ("cnv_copy", "cnv"), ("NORMAL copy (1)", "NORMAL")],
)  # fmt: skip
def test_a_copys_name_gives_the_name_it_was_made_from(name: str, made_from: str) -> None:
    assert copied_name(name) == (made_from, True)


@pytest.mark.parametrize("name", ["CNV", "DRUSEN ", " NORMAL", "CNVV", "CNV2", "(1)", "2019"])
def test_other_names_are_no_copys(name: str) -> None:
    assert copied_name(name) == (name.strip(), False)


@pytest.mark.parametrize(
    ("name", "beside", "hint"),
    [
        # beside the class's folder: never "rename it to" (the rename puts it inside)
        ("NORMAL copy", ["NORMAL"], "it looks like a copy of the 'NORMAL' folder beside it: "
                                    + _COPY.format("NORMAL")),
        ("DME - Copy", ["CNV", "DME"], "it looks like a copy of the 'DME' folder beside it: "
                                       + _COPY.format("DME")),
        ("CNV (1)", ["CNV"], "it looks like a copy of the 'CNV' folder beside it: "
                             + _COPY.format("CNV")),
        ("DRUSEN 2", ["DRUSEN"], "it looks like a copy of the 'DRUSEN' folder beside it: "
                                 + _COPY.format("DRUSEN")),
        ("DRUSEN ", ["DRUSEN"], "it looks like a copy of the 'DRUSEN' folder beside it (its "
                                "name ends with a space): " + _COPY.format("DRUSEN")),
        ("cnv", ["CNV"], "it looks like a copy of the 'CNV' folder beside it (its name is in "
                         "another case): " + _COPY.format("CNV")),
        ("CNVV", ["CNV"], "its name is like that of the 'CNV' folder beside it: if it holds CNV "
                          "scans, move into 'CNV' those not already there and remove it"),
        # no such folder beside it: renamed
        ("NORMAL copy", ["CNV"], "it looks like a copy of a 'NORMAL' folder, and there is "
                                 "none: rename it to 'NORMAL' if it holds NORMAL scans"),
        ("DRUSEN ", ["CNV"], "rename it to 'DRUSEN' (its name ends with a space)"),
        (" Normal", [], "rename it to 'NORMAL' (its name begins with a space, and class names "
                        "are upper case)"),
        ("cnv", ["DME"], "rename it to 'CNV' (class names are upper case)"),
        ("CNVV", [], "rename it to 'CNV' if it holds CNV scans"),
    ],
)  # fmt: skip
def test_the_hint_knows_the_class_folders_beside_the_folder(
    name: str, beside: list[str], hint: str
) -> None:
    assert class_folder_hint(name, beside).startswith(hint)


def test_a_name_with_spaces_at_its_ends_is_shown_quoted() -> None:
    assert [shown_name(name) for name in ("DRUSEN ", " CNV", "NORMAL copy")] == [
        "'DRUSEN '",
        "' CNV'",
        "NORMAL copy",
    ]


def _tree(root: Path) -> Path:
    """One scan per class in train (a 16 x 16 PNG), and a Finder copy of NORMAL beside it."""
    for name in ("CNV", "DME", "DRUSEN", "NORMAL"):
        path = root / "train" / name / f"{name}-1-1.png"
        path.parent.mkdir(parents=True)
        Image.new("L", (16, 16), 40).save(path)
    shutil.copytree(root / "train" / "NORMAL", root / "train" / "NORMAL copy")
    return root


def test_every_door_says_a_copy_is_a_copy_not_to_be_renamed(tmp_path: Path) -> None:
    # was: "rename it to 'NORMAL' if it holds NORMAL scans" at every door: the rename puts
    # the copy inside NORMAL, each NORMAL scan is read twice, and the audit says OK
    root = _tree(tmp_path / "OCT2017")
    hint = "it looks like a copy of the 'NORMAL' folder beside it: " + _COPY.format("NORMAL")
    with pytest.raises(ValueError, match="class folder 'NORMAL copy' is not one of") as read:
        KermanyOCT(root, "train")
    with pytest.raises(ValueError, match="class folder 'NORMAL copy' is not one of") as counted:
        count_images(root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the missing val and test splits
        report = str(audit(root))
    for said in (str(read.value), str(counted.value), report):
        assert hint in said
        assert "rename" not in said
    assert f"  train/NORMAL copy (1 image): {hint}" in report
