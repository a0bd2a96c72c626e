"""Symbolic links in a data root: each image read once, none read from another split."""

from __future__ import annotations

import os
import re
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from retinalnet.cli import main
from retinalnet.datasets import (
    KermanyOCT,
    audit,
    count_images,
    find_images,
    patient_split,
    write_manifest,
)

pytestmark = pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links")

_TREE = {
    f"{split}/{name}": [f"{name}-{base + i}-1.jpeg" for i in range(3)]
    for split, base in (("train", 100), ("test", 200))
    for name in ("CNV", "DME", "DRUSEN", "NORMAL")
}

_DOORS: dict[str, Callable[[Path], Any]] = {
    "KermanyOCT": lambda root: KermanyOCT(root, "train"),
    "count_images": count_images,
    "patient_split": lambda root: patient_split(root, val_fraction=0.34),
    "cli split": lambda root: main(["split", str(root), "--out", str(root.parent / "s.csv")]),
}


@pytest.fixture
def root(make_tree: Any) -> Path:
    tree: Path = make_tree(_TREE)
    return tree


def _names(data: KermanyOCT, root: Path) -> list[str]:
    return [Path(path).relative_to(root).as_posix() for path, _ in data.samples]


# --- a link into another split: refused -----------------------------------------------------


@pytest.mark.parametrize("door", sorted(_DOORS))
@pytest.mark.parametrize(
    ("link", "target"),
    [
        ("train/CNV/more", "test/CNV"),  # a folder
        ("train/CNV/CNV-900-1.jpeg", "test/CNV/CNV-200-1.jpeg"),  # a file
        ("train/NORMAL/all", "test"),  # the whole split
    ],
)
def test_a_link_into_another_split_is_refused_at_every_door(
    root: Path, door: str, link: str, target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # was: the test images read as training images, without a word
    (root / link).symlink_to(root / target)
    message = (
        rf"the link {re.escape(repr(str(root / link)))} in split 'train' leads to "
        rf"{re.escape(repr(str(root / target)))}, in the 'test' folder of the same data root"
        r".*; remove the link, or copy the image\(s\) into 'train' if they really belong to both$"
    )
    if door == "cli split":
        assert _DOORS[door](root) != 0
        assert re.search(message.rstrip("$"), capsys.readouterr().err)
        return
    with pytest.raises(ValueError, match=message):
        _DOORS[door](root)


def test_a_class_folder_or_split_folder_that_is_another_split_is_refused(root: Path) -> None:
    shutil.rmtree(root / "train" / "DME")
    (root / "train" / "DME").symlink_to(root / "test" / "DME")
    with pytest.raises(ValueError, match=r"the link .*train/DME' in split 'train' leads to"):
        KermanyOCT(root, "train")
    (root / "val").symlink_to(root / "train")
    with pytest.raises(ValueError, match=r"the link .*val' in split 'val' leads to .*'train'"):
        KermanyOCT(root, "val")


def test_the_audit_reports_a_link_into_another_split_as_leakage(root: Path) -> None:
    (root / "train" / "CNV" / "more").symlink_to(root / "test" / "CNV")
    report = audit(root)  # reports, never refuses
    assert not report.ok
    assert report.cross_split_patients


# --- the same image reached twice in one split: read once -----------------------------------


@pytest.mark.parametrize(
    ("link", "target", "kept"),
    [
        ("train/CNV/CNV-999-1.jpeg", "CNV-100-1.jpeg", "train/CNV/CNV-100-1.jpeg"),
        ("train/NORMAL/moreDME", "../DME", "train/DME"),  # another class's folder
    ],
)
def test_the_same_image_reached_twice_in_a_split_is_read_once(
    root: Path, link: str, target: str, kept: str
) -> None:
    # was: read twice (double weight in training), and counted twice
    (root / link).symlink_to(target)
    with pytest.warns(
        RuntimeWarning, match=rf"skipping the link {re.escape(repr(str(root / link)))}"
    ):
        data = KermanyOCT(root, "train")
    names = _names(data, root)
    assert len(names) == 12
    assert not any(name.startswith(link) for name in names)
    assert any(name.startswith(kept) for name in names)
    with pytest.warns(RuntimeWarning, match=r"skipping the link"):
        assert count_images(root, "train").counts["train"] == dict.fromkeys(
            ("CNV", "DME", "DRUSEN", "NORMAL"), 3
        )
    with pytest.warns(RuntimeWarning, match=r"skipping the link"):
        assert len(find_images(root / "train")) == 12


def test_a_file_link_warning_names_both_paths(root: Path) -> None:
    link = root / "train" / "CNV" / "CNV-999-1.jpeg"
    link.symlink_to("CNV-100-1.jpeg")
    same = root / "train" / "CNV" / "CNV-100-1.jpeg"
    with pytest.warns(RuntimeWarning) as caught:
        KermanyOCT(root, "train")
    (said,) = [str(warning.message) for warning in caught]
    assert said.startswith(f"skipping the link {str(link)!r} in split 'train' under")
    assert f"it is the same image as {str(same)!r}, whose files are read there, each once" in said


@pytest.mark.parametrize(
    ("link", "target"),
    [("train/CNV/CNV-999-1.jpeg", "CNV-100-1.jpeg"), ("train/NORMAL/moreDME", "../DME")],
)
def test_the_audit_counts_a_linked_image_once(root: Path, link: str, target: str) -> None:
    (root / link).symlink_to(target)
    report = audit(root)
    assert report.counts["train"] == dict.fromkeys(("CNV", "DME", "DRUSEN", "NORMAL"), 3)
    assert report.symlink_loops == [link]


@pytest.mark.parametrize("door", ["python", "cli"])
def test_split_with_a_linked_file_writes_a_manifest_from_manifest_reads(
    root: Path, door: str
) -> None:
    # was: both paths written, as two patients; from_manifest then refused it as "listed
    # twice" and told to write it again with `retinalnet split`, which wrote the same
    (root / "train" / "CNV" / "CNV-999-1.jpeg").symlink_to("CNV-100-1.jpeg")
    manifest = root.parent / "s.csv"

    def split() -> None:
        if door == "python":
            write_manifest(patient_split(root, val_fraction=0.34), manifest)
        else:
            assert main(["split", str(root), "--out", str(manifest), "--val-fraction", "0.34"]) == 0

    with pytest.warns(RuntimeWarning, match=r"skipping the link"):
        split()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train = KermanyOCT.from_manifest(manifest, "train", root=root)
        val = KermanyOCT.from_manifest(manifest, "val", root=root)
    assert len(train) + len(val) == 12
    assert "CNV-999-1.jpeg" not in {Path(path).name for path, _ in train.samples + val.samples}


# --- links elsewhere: read ------------------------------------------------------------------


def test_a_folder_linked_in_from_outside_the_root_is_read_once(root: Path) -> None:
    elsewhere = root.parent / "disk2" / "CNV"
    elsewhere.mkdir(parents=True)
    for i in range(2):
        shutil.copyfile(root / "train" / "CNV" / "CNV-100-1.jpeg", elsewhere / f"CNV-30{i}-1.jpeg")
    (root / "train" / "CNV" / "disk2").symlink_to(elsewhere)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(KermanyOCT(root, "train")) == 14  # read, without a word
    (root / "train" / "CNV" / "again").symlink_to(elsewhere)  # twice: read once
    with pytest.warns(RuntimeWarning, match=r"skipping the link .*CNV-30\d-1\.jpeg.*and 1 more"):
        data = KermanyOCT(root, "train")
    assert len(data) == 14


def test_a_link_to_a_hidden_folder_the_walk_does_not_read_is_followed(root: Path) -> None:
    # train/NORMAL/current -> .v2 (git-sync worktrees, versioned folders): the walk never reads
    # the hidden .v2, so its images come through the link alone (they were skipped as "listed
    # there", and the split held no NORMAL image)
    hidden = root / "train" / "NORMAL" / ".v2"
    hidden.mkdir()
    for path in sorted((root / "train" / "NORMAL").glob("*.jpeg")):
        shutil.move(str(path), hidden / path.name)
    (root / "train" / "NORMAL" / "current").symlink_to(".v2", target_is_directory=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = KermanyOCT(root, "train")
    assert sorted(name for name in _names(data, root) if "/NORMAL/" in name) == [
        f"train/NORMAL/current/NORMAL-{n}-1.jpeg" for n in (100, 101, 102)
    ]


@pytest.mark.parametrize("listing", ["as listed", "reversed"])
def test_of_two_links_to_one_image_the_first_by_name_is_kept_whatever_the_listing_order(
    root: Path, monkeypatch: pytest.MonkeyPatch, listing: str
) -> None:
    # was: the link the file system listed first was kept, so the same tree copied to
    # another disk kept the other one, and a split and its manifest differed
    stored = root.parent / "store" / "scan.jpeg"
    stored.parent.mkdir()
    shutil.copyfile(root / "train" / "CNV" / "CNV-100-1.jpeg", stored)
    for name in ("CNV-222-1.jpeg", "CNV-111-1.jpeg"):  # created in reverse name order
        (root / "train" / "CNV" / name).symlink_to(stored)
    if listing == "reversed":
        import retinalnet.datasets._system_folders as system_folders

        scandir = os.scandir

        class _Reversed(list[os.DirEntry[str]]):
            def __enter__(self) -> _Reversed:
                return self

            def __exit__(self, *exc: object) -> None:
                return None

        def reversed_scandir(folder: Any) -> _Reversed:
            with scandir(folder) as entries:
                return _Reversed(sorted(entries, key=lambda entry: entry.name, reverse=True))

        monkeypatch.setattr(system_folders.os, "scandir", reversed_scandir)
    with pytest.warns(RuntimeWarning, match=r"skipping the link .*CNV-222-1\.jpeg"):
        data = KermanyOCT(root, "train")
    names = _names(data, root)
    assert "train/CNV/CNV-111-1.jpeg" in names
    assert "train/CNV/CNV-222-1.jpeg" not in names
    with pytest.warns(RuntimeWarning, match=r"CNV-222-1\.jpeg"):
        assert [Path(p).name for p in find_images(root / "train" / "CNV")].count(
            "CNV-111-1.jpeg"
        ) == 1
