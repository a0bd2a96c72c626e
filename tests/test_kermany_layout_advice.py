"""The advice a data root gets when its split folders are misnamed (``valid/``, the PyTorch
tutorials' name) or lie one or two levels down (Kaggle's ``OCT2017 /``): the same words from
KermanyOCT, count_images and ``retinalnet train`` (datasets/_root_layout.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from retinalnet.cli import main
from retinalnet.datasets import KermanyOCT, count_images

_SPLIT_FILES = {
    "train/CNV": ["CNV-1-1.jpeg", "CNV-1-2.jpeg"],
    "train/NORMAL": ["NORMAL-2-1.jpeg", "NORMAL-2-2.jpeg"],
    "test/CNV": ["CNV-3-1.jpeg"],
    "test/NORMAL": ["NORMAL-4-1.jpeg"],
}


def _with_val_named(make_tree, name: str) -> Path:
    """A Kermany tree whose validation split (2 images) lies in ``name`` instead of ``val``."""
    return make_tree(
        {
            **_SPLIT_FILES,
            f"{name}/CNV": ["CNV-5-1.jpeg"],
            f"{name}/NORMAL": ["NORMAL-6-1.jpeg"],
        }
    )


def _case_sensitive(folder: Path) -> bool:
    probe = folder / "CaseProbe"
    probe.mkdir()
    try:
        return not (folder / "caseprobe").exists()
    finally:
        probe.rmdir()


@pytest.mark.parametrize("name", ["valid", "validation", "Val"])
def test_a_misnamed_val_folder_is_to_be_renamed_not_replaced(make_tree, name):
    root = _with_val_named(make_tree, name)
    if name == "Val" and not _case_sensitive(root):
        pytest.skip("a case-insensitive file system reads Val/ as val/")
    message = (
        rf"no split folder 'val' under {re.escape(repr(str(root)))} .*a folder "
        rf"{re.escape(repr(name))} \(2 images\) looks like the val split but is not read under "
        r"that name: rename it to 'val'"
    )
    with pytest.raises(FileNotFoundError, match=message) as raised:
        KermanyOCT(root, "val")
    # was: "a download without val/ gets a patient-aware one from train/: `retinalnet split
    # ROOT ...`", which carves a new validation set out of train and drops the user's own
    assert "retinalnet split" not in str(raised.value)


def test_every_misnamed_split_is_named_in_one_message(make_tree):
    root = make_tree(
        {
            "training/CNV": ["CNV-1-1.jpeg"],
            "testing/CNV": ["CNV-2-1.jpeg", "CNV-2-2.jpeg", "CNV-2-3.jpeg"],
        }
    )
    with pytest.raises(FileNotFoundError) as raised:
        KermanyOCT(root, "test")
    text = str(raised.value)
    assert "a folder 'testing' (3 images) looks like the test split" in text
    assert "rename it to 'test'" in text
    assert "a folder 'training' (1 image) looks like the train split" in text


def test_a_split_asked_for_by_the_folder_name_is_refused_naming_the_split(tmp_path):
    message = (
        r"split 'valid' is not one of train, val, test: the val split is 'val', read from the "
        r"folder ROOT/val \(a folder named 'valid' is not read: rename it to 'val'\)"
    )
    with pytest.raises(ValueError, match=message):
        KermanyOCT(tmp_path, "valid")
    with pytest.raises(ValueError, match=r"'valid' is not one of .*rename it to 'val'"):
        KermanyOCT.from_manifest(tmp_path / "split.csv", "valid")


def test_kaggles_folder_with_a_trailing_space_is_pointed_at(tmp_path, make_tree):
    # the Kaggle download unpacks to 'OCT2017 /{train,val,test}', its name ending in a space
    inner = make_tree(_SPLIT_FILES)
    root = tmp_path / "download"
    root.mkdir()
    nested = root / "OCT2017 "
    inner.rename(nested)
    (root / "__MACOSX").mkdir()  # a zip tool's folder: never the root
    message = (
        rf"no split folder 'train' under {re.escape(repr(str(root)))} \(found: "
        rf"'OCT2017 ', __MACOSX\); the split folders are in {re.escape(repr(str(nested)))} "
        r"\(its name ends in a space\): pass that folder as the data root"
    )
    with pytest.raises(FileNotFoundError, match=message):
        KermanyOCT(root, "train")


def test_split_folders_two_levels_down_are_pointed_at(tmp_path, make_tree):
    # the Mendeley download: CellData/OCT/{train,test}
    inner = make_tree(_SPLIT_FILES)
    root = tmp_path / "mendeley"
    (root / "CellData").mkdir(parents=True)
    inner.rename(root / "CellData" / "OCT")
    nested = str(root / "CellData" / "OCT")
    with pytest.raises(FileNotFoundError, match=re.escape(f"split folders are in {nested!r}")):
        KermanyOCT(root, "test")


def test_count_images_warns_of_a_misnamed_split_it_leaves_out(make_tree):
    root = _with_val_named(make_tree, "valid")
    message = (
        rf"not counted under {re.escape(repr(str(root)))}: a folder 'valid' \(2 images\) "
        r"looks like the val split but is not read under that name: rename it to 'val'"
    )
    with pytest.warns(UserWarning, match=message):  # was: left out without a word
        counts = count_images(root)
    assert list(counts.counts) == ["train", "test"]  # as training reads them
    assert counts.total == 6


def test_count_images_says_a_misnamed_copy_beside_the_split_is_not_read(make_tree):
    root = _with_val_named(make_tree, "valid")
    make_tree({"val/CNV": ["CNV-7-1.jpeg"], "val/NORMAL": ["NORMAL-8-1.jpeg"]})
    message = (
        r"'valid' \(2 images\) looks like the val split but is not read, 'val' is: move its "
        r"images into 'val' or remove it"
    )
    with pytest.warns(UserWarning, match=message):
        assert count_images(root).total == 8


def test_count_images_of_the_chosen_splits_says_nothing_of_other_folders(make_tree, recwarn):
    root = _with_val_named(make_tree, "valid")
    assert count_images(root, splits=["train"]).total == 4
    assert not [w for w in recwarn if "not counted" in str(w.message)]


def test_count_images_without_split_folders_points_at_the_nested_root(tmp_path, make_tree):
    inner = make_tree(_SPLIT_FILES)
    root = tmp_path / "download"
    root.mkdir()
    inner.rename(root / "OCT2017 ")
    with pytest.raises(FileNotFoundError, match=r"the split folders are in .*OCT2017 '"):
        count_images(root)


def test_retinalnet_train_gives_the_rename_advice(make_tree, tmp_path, capsys):
    root = _with_val_named(make_tree, "valid")
    status = main(
        ["train", "--data", str(root), "--out", str(tmp_path / "run"), "--arch", "small_cnn",
         "--size", "32", "--epochs", "1", "-q"]
    )  # fmt: skip
    assert status == 1
    error = capsys.readouterr().err
    assert "a folder 'valid' (2 images) looks like the val split" in error
    assert "rename it to 'val'" in error
    assert "retinalnet split" not in error
